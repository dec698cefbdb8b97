import { describe, it, expect } from 'vitest';
import { createKernelMemory, createSimdCrop, simdAvailable } from './simd.js';
import { cropToCHW } from './transform.js';

describe('SIMD crop kernel', () => {
  it('is available on this Node (WebAssembly SIMD and shared memory)', () => {
    expect(simdAvailable()).toBe(true);
  });

  it('gives the same bits as cropToCHW for every crop size, reflection and mean mode, including odd tails', () => {
    const size = 256;
    const mean = Float32Array.from({ length: size * size * 3 }, (_, i) => (i % 251) * 0.37 + 0.001 * (i % 7));
    for (const crop of [224, 227, 1, 2, 5, 256]) {
      const km = createKernelMemory({ size, meanImage: mean, slotBytes: 3 * crop * crop * 4, slots: 1 })!;
      const simd = createSimdCrop(km);
      const src = new Uint8Array(km.memory.buffer, km.slotOffset, size * size * 3);
      for (let i = 0; i < src.length; i++) src[i] = (i * 7 + 3 + (i >> 9)) & 255;
      const out = new Float32Array(km.memory.buffer, km.slotOffset + km.scratchBytes, 3 * crop * crop);
      const ref = new Float32Array(3 * crop * crop);
      const y = Math.min(13, size - crop), x = Math.min(29, size - crop);
      for (const flip of [false, true]) {
        for (const m of [mean, null]) {
          const shift = [1.1, -2.3, 3.7]; // not float32-exact: both must round it the same way
          out.fill(NaN);
          simd(src, size, y, x, crop, flip, m, shift, out, 0);
          cropToCHW(src, size, y, x, crop, flip, m, shift, ref, 0);
          expect(Buffer.from(out.buffer, out.byteOffset, out.byteLength).equals(Buffer.from(ref.buffer))).toBe(true);
        }
      }
    }
  });

  it('refuses arrays outside its memory', () => {
    const km = createKernelMemory({ size: 4, meanImage: null, slotBytes: 3 * 4 * 4 * 4, slots: 1 })!;
    const simd = createSimdCrop(km);
    expect(() => simd(new Uint8Array(48), 4, 0, 0, 4, false, null, [0, 0, 0], new Float32Array(48), 0)).toThrow(/shared memory/);
  });
});
