/**
 * Reference kernels: plain loops with float64 accumulation, written for obviousness, never speed.
 * They are the oracle the conformance suite compares every backend against, and their backward
 * functions are themselves checked against finite differences in float64 (reference.test.ts).
 * Arrays may be Float32Array (results rounded once on store) or Float64Array (exact float64). By op
 * family, one file each in ./kernels/, named as the native engines' kernels are.
 */
export type { FloatArray } from './kernels/common.js';
export { gemm } from './kernels/gemm.js';
export { conv2dForward, conv2dBackwardData, conv2dBackwardFilter } from './kernels/conv.js';
export {
  biasAdd, biasGrad, reluForward, reluBackward, tanhForward, tanhBackward, dropoutForward, dropoutBackward, channelCopy, sgdUpdate, random,
} from './kernels/elementwise.js';
export { lrnForward, lrnBackward } from './kernels/lrn.js';
export { maxPoolForward, maxPoolBackward } from './kernels/pool.js';
export { softmax, softmaxCrossEntropy, topkCorrect } from './kernels/loss.js';
export { uniformAt } from '../philox.js';
