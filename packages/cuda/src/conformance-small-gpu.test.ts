// The conformance suite again on cuda-emu, with the emulated GPU shrunk to 2 SMs: the launch
// heuristics then pick the large 128x128 GEMM tiles and skip split-K for shapes where the H200-sized
// default run (conformance.test.ts) takes the small tiles and split-K, so both paths are covered.
// Vitest runs each file in its own process, so the setting stays in this file.
process.env.ALEXNET_CUDA_EMU_SMS = '2';

const { runConformanceSuite } = await import('@alexnet/tensor/conformance');
await import('./index.js');

runConformanceSuite('cuda-emu', { required: true, alexnetShapes: true, randomCases: 2 });
