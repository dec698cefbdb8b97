// Device memory is countable (tfjs's tf.memory(), STYLE.md): the caching allocator's bytes in use come
// back to where they were once buffers are freed, and freed blocks are reused rather than reallocated.
import { describe, expect, it } from 'vitest';
import { device } from '@alexnet/tensor';
import type { CudaEngine } from './index.js';
import './index.js'; // registers the backends

describe('cuda-emu memory', () => {
  it('bytes in use return to the baseline, and freed blocks are reused from the cache', () => {
    const e = device('cuda-emu:0').engine as CudaEngine;
    const before = e.memoryStats();
    const a = e.alloc('float32', 1000), b = e.alloc('int32', 10), c = e.alloc('uint8', 3);
    const during = e.memoryStats();
    expect(during.liveBuffers).toBe(before.liveBuffers + 3);
    expect(during.liveBytes).toBeGreaterThanOrEqual(before.liveBytes + 4000 + 40 + 3);
    expect(during.peakLiveBytes).toBeGreaterThanOrEqual(during.liveBytes);
    for (const buf of [a, b, c]) e.free(buf);
    const after = e.memoryStats();
    expect(after.liveBytes).toBe(before.liveBytes);
    expect(after.liveBuffers).toBe(before.liveBuffers);
    expect(after.cachedBytes).toBeGreaterThan(before.cachedBytes);
    expect(after.cachedBuffers).toBe(before.cachedBuffers + 3);
    // The same size again comes out of the cache: nothing new is cached or allocated.
    const again = e.alloc('float32', 1000);
    expect(e.memoryStats().cachedBytes).toBe(after.cachedBytes - 4096);
    e.free(again);
    expect(e.trimCache()).toBe(after.cachedBytes);
    expect(e.memoryStats()).toMatchObject({ cachedBytes: 0, cachedBuffers: 0 });
  });

  it('a buffer of another engine, or a freed one, is an error naming the argument', () => {
    const e0 = device('cuda-emu:0').engine, e1 = device('cuda-emu:1').engine;
    const x = e1.alloc('float32', 4), y = e0.alloc('float32', 4);
    expect(() => e0.reluForward(x, y)).toThrow(/reluForward: x belongs to another engine/);
    e0.free(y);
    expect(() => e0.reluForward(y, y)).toThrow(/x was freed/);
    e1.free(x);
  });
});
