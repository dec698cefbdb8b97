// The shared conformance suite (packages/tensor/src/conformance) on the emulated CUDA backend:
// every kernel of native/cuda, compiled for the host, against the float64 reference.
// '@alexnet/tensor/conformance' resolves to the tensor package's source through vitest.config.ts.
import { afterAll, expect } from 'vitest';
import { runConformanceSuite } from '@alexnet/tensor/conformance';
import { cudaEmu } from './index.js';

runConformanceSuite('cuda-emu', { required: true, alexnetShapes: true, randomCases: 4 });

// No kernel may reach a barrier in divergent code (some threads returned, others waiting).
afterAll(() => expect(cudaEmu.barrierDivergences()).toBe(0));
