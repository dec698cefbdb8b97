// The engine's caching allocator: freed memory is reused by size class once no queued op (on any
// engine) uses it, the cache is bounded and can be emptied, and alloc queues no zero-fill.
import { afterAll, describe, expect, it } from 'vitest';
import { CpuEngine } from './index.js';

const e0 = new CpuEngine(0);
const e1 = new CpuEngine(1);
afterAll(() => { e0.destroy(); e1.destroy(); });

const MiB = 1 << 20;

function clean(e: CpuEngine): void {
  e.synchronizeSync();
  e.trimCache();
  expect(e.memoryStats()).toMatchObject({ liveBytes: 0, liveBuffers: 0, cachedBytes: 0, cachedBuffers: 0 });
}

describe('caching allocator', () => {
  it('alloc after free reuses the block: held bytes do not grow', () => {
    clean(e0);
    const n = MiB; // 4 MiB of float32
    const a = e0.alloc('float32', n);
    expect(e0.memoryStats()).toMatchObject({ liveBytes: 4 * MiB, cachedBytes: 0 });
    e0.free(a);
    expect(e0.memoryStats()).toMatchObject({ liveBytes: 0, cachedBytes: 4 * MiB, cachedBuffers: 1 });
    const b = e0.alloc('float32', n);
    expect(e0.memoryStats()).toMatchObject({ liveBytes: 4 * MiB, cachedBytes: 0, cachedBuffers: 0 });
    e0.free(b);
    // Same size class (4 MiB + 1 element and 4.4 MiB are both in the 4.5 MiB class), other dtype.
    const c = e0.alloc('int32', n + 1);
    expect(e0.memoryStats()).toMatchObject({ liveBytes: 4.5 * MiB, cachedBytes: 4 * MiB });
    e0.free(c);
    const d = e0.alloc('float32', Math.floor(1.1 * MiB));
    expect(e0.memoryStats()).toMatchObject({ liveBytes: 4.5 * MiB, cachedBytes: 4 * MiB });
    // Contents are the caller's to write: a reused block works like a fresh one.
    e0.fill(d, 3);
    expect(e0.readSync(d, Math.floor(1.1 * MiB) - 1, 1)[0]).toBe(3);
    e0.free(d);
    expect(e0.memoryStats()).toMatchObject({ liveBytes: 0, cachedBytes: 8.5 * MiB, cachedBuffers: 2 });
    expect(e0.memoryStats()).toMatchObject({ liveBytes: 0, liveBuffers: 0 });
    clean(e0);
  });

  it('alloc queues nothing (no zero-fill on the queue)', () => {
    const s0 = e0.recordEvent().token;
    const a = e0.alloc('float32', 4 * MiB);
    expect(e0.recordEvent().token).toBe(s0); // the number of ops queued
    e0.free(a);
    clean(e0);
  });

  it('a block freed while an op is queued on it is not reused until the op is done', () => {
    clean(e0);
    const n = MiB;
    const a = e0.alloc('float32', n), y = e0.alloc('float32', n);
    e0.write(a, new Float32Array(n).fill(7));
    const t0 = performance.now();
    e0.sleep(1500);
    e0.reluForward(a, y); // reads a after the sleep
    e0.free(a);
    expect(e0.memoryStats().cachedBytes).toBe(0); // the queued relu still holds a
    const b = e0.alloc('float32', n); // must be fresh memory
    // Overwrite b from another engine's queue while e0 still sleeps: if b were a's memory, the
    // relu would read -1 and write 0.
    const src = e1.alloc('float32', n);
    e1.fill(src, -1);
    e1.copyToPeer(src, e0, b, n);
    e1.synchronizeSync();
    expect(performance.now() - t0).toBeLessThan(1200); // e0 was still sleeping throughout (else the test proves nothing)
    const out = e0.readSync(y);
    expect(out[0]).toBe(7);
    expect(out[n - 1]).toBe(7);
    expect(e0.readSync(b, n - 1, 1)[0]).toBe(-1);
    // Now a is back in the cache and the next alloc of its size takes it.
    expect(e0.memoryStats()).toMatchObject({ cachedBytes: 4 * MiB, liveBytes: 8 * MiB });
    e0.free(b); e0.free(y); e1.free(src);
    clean(e0); clean(e1);
  });

  it('a peer copy queued on the source engine keeps the destination block out of the cache', () => {
    clean(e0); clean(e1);
    const n = MiB;
    const src = e1.alloc('float32', n), dst = e0.alloc('float32', n);
    e1.fill(src, 5);
    e1.sleep(300);
    e1.copyToPeer(src, e0, dst, n); // runs on e1 after the sleep, writes dst
    e0.free(dst);
    expect(e0.memoryStats()).toMatchObject({ liveBuffers: 1, cachedBytes: 0 }); // e1's copy holds dst
    const other = e0.alloc('float32', n);
    e0.write(other, new Float32Array(n).fill(9)); // e0 is idle: copied at once
    e1.synchronizeSync(); // the copy into dst has run
    const back = e0.readSync(other);
    expect(back[0]).toBe(9);
    expect(back[n - 1]).toBe(9);
    expect(e0.memoryStats()).toMatchObject({ cachedBytes: 4 * MiB, liveBytes: 4 * MiB });
    e0.free(other); e1.free(src);
    clean(e0); clean(e1);
  });

  it('the cache is bounded, oldest blocks go first, and trimCache empties it', () => {
    clean(e0);
    expect(e0.memoryStats().cacheLimit).toBe(Math.max(2 ** 30, 2 * e0.memoryStats().peakLiveBytes));
    e0.setCacheLimit(8 * MiB);
    const bufs = [1, 2, 3, 4].map((k) => e0.alloc('uint8', k * MiB));
    for (const b of bufs) e0.free(b); // 1 + 2 + 3 + 4 MiB: the 1 and 2 MiB blocks are evicted
    expect(e0.memoryStats()).toMatchObject({ cachedBytes: 7 * MiB, cachedBuffers: 2 });
    const big = e0.alloc('uint8', 16 * MiB);
    e0.free(big); // above the bound: freed at once
    expect(e0.memoryStats()).toMatchObject({ cachedBytes: 7 * MiB, cachedBuffers: 2 });
    e0.setCacheLimit(4 * MiB); // trims to the new bound
    expect(e0.memoryStats()).toMatchObject({ cachedBytes: 4 * MiB, cachedBuffers: 1 });
    expect(e0.trimCache()).toBe(4 * MiB);
    expect(e0.memoryStats()).toMatchObject({ cachedBytes: 0, cachedBuffers: 0 });
    e0.setCacheLimit(-1);
    expect(e0.memoryStats().cacheLimit).toBe(Math.max(2 ** 30, 2 * e0.memoryStats().peakLiveBytes));
    expect(() => e0.setCacheLimit(1.5)).toThrow(/setCacheLimit/);
  });

  it('destroy empties the cache; a buffer that outlives its engine is freed at once', () => {
    const e = new CpuEngine(7);
    const a = e.alloc('float32', 16 * MiB), b = e.alloc('float32', 1024);
    e.free(a);
    expect(e.memoryStats()).toMatchObject({ cachedBytes: 64 * MiB, liveBytes: 4096 });
    e.destroy();
    expect(() => e.memoryStats()).toThrow(/destroyed/);
    expect(() => e.alloc('float32', 4)).toThrow(/destroyed/);
    e.free(b); // after destroy: the memory goes at once (the cache is closed)
    e.free(b);
  });
});
