// The emulation layer itself (native/cuda/emu): __syncthreads must be a real barrier between the
// fibers of a block, and atomics must hold across blocks running on several worker threads.
import { describe, expect, it } from 'vitest';
import { cudaEmu } from './index.js';

describe('cuda-emu emulation layer', () => {
  it('loads and is available', () => {
    expect(cudaEmu.reason()).toBeUndefined();
    expect(cudaEmu.available()).toBe(true);
  });

  it('__syncthreads is a barrier: a block-wide tree reduction is right with it and wrong without it', () => {
    const r = cudaEmu.selfTest(2);
    expect(r.withBarrier).toEqual(r.expected);
    // Without the barriers thread 0 runs every level of the tree before its partners store their inputs.
    expect(r.withoutBarrier).not.toEqual(r.expected);
  });

  it('a barrier that only part of a block reaches is detected', () => {
    const before = cudaEmu.barrierDivergences();
    const r = cudaEmu.selfTest(2);
    expect(r.divergencesDetected).toBe(4); // one per block of the deliberately wrong kernel
    expect(cudaEmu.barrierDivergences()).toBe(before + 4);
  });

  it('the kernels\' fast division by launch-time divisors matches / and % (divisors 1..4100, n up to 2^31 - 1)', () => {
    expect(cudaEmu.selfTest(1).fastDivErrors).toBe(0);
  });

  it('atomicAdd from every thread of a grid spread over two workers counts each thread once', () => {
    const r = cudaEmu.selfTest(2);
    expect(r.threads).toBe(2);
    expect(r.atomicCount).toBe(r.atomicExpected);
  });
});
