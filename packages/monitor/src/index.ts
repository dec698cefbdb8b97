/**
 * @alexnet/monitor: a live page for a training run, read from its folder (metrics.jsonl,
 * checkpoint.safetensors, conv1-kernels.png); no other @alexnet package and no front-end build.
 */
export { startMonitor } from './server.js';
export type { Monitor, MonitorOptions, KernelsInfo } from './server.js';
export { LineFollower } from './follow.js';
export type { FollowerSink, ResetReason } from './follow.js';
export { readConv1, kernelGrid, kernelsPng, towersOf, CONV1_NAMES } from './kernels.js';
export type { Conv1, KernelGrid } from './kernels.js';
export { encodePng, crc32 } from './png.js';
