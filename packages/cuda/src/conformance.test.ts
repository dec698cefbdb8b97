// The shared conformance suite (packages/tensor/src/conformance) on the emulated CUDA backend:
// every kernel of native/cuda, compiled for the host, against the float64 reference.
// Imported from the tensor package's source by relative path: the test alias maps '@alexnet/tensor'
// to its src/index.ts, which does not cover the '/conformance' subpath.
import { runConformanceSuite } from '../../tensor/src/conformance/index.js';
import './index.js';

runConformanceSuite('cuda-emu', { required: true, alexnetShapes: true, randomCases: 4 });
