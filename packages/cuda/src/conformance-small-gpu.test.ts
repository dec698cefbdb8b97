// The conformance suite again on cuda-emu, with the emulated GPU shrunk to 2 SMs: the launch
// heuristics then take their other branches (large 128x128 tiles, no split-K) for the random and
// stride-1 shapes where the H200-sized default run (conformance.test.ts) takes the small tiles and
// split-K. The AlexNet layers themselves run at batch 8 in alexnet-batch.test.ts, where the 132-SM
// heuristics choose every configuration (its counters say so), so they are not repeated here.
// Vitest runs each file in its own process, so the setting stays in this file.
process.env.ALEXNET_CUDA_EMU_SMS = '2';

const { runConformanceSuite } = await import('@alexnet/tensor/conformance');
await import('./index.js');

runConformanceSuite('cuda-emu', { required: true, alexnetShapes: false, randomCases: 4 });
