import { describe, it, expect } from 'vitest';
import { Rng, permutation } from './rng.js';

describe('Rng', () => {
  it('is a pure function of its key', () => {
    const a = Rng.forKey(1, 2, 3), b = Rng.forKey(1, 2, 3), c = Rng.forKey(1, 2, 4), d = Rng.forKey(1, 2 ** 40, 3);
    const xa = [a.uint32(), a.uint32()], xb = [b.uint32(), b.uint32()];
    expect(xa).toEqual(xb);
    expect(c.uint32()).not.toBe(xa[0]);
    expect(d.uint32()).not.toBe(xa[0]);
    expect(() => Rng.forKey(-1)).toThrow('Expected non-negative safe integers for a random key but received -1');
  });

  it('draws uniform and normal values with the right moments', () => {
    const r = Rng.forKey(42);
    const N = 100000;
    let s = 0, s2 = 0, n = 0, n2 = 0, n4 = 0;
    for (let i = 0; i < N; i++) {
      const u = r.uniform();
      expect(u >= 0 && u < 1).toBe(true);
      s += u; s2 += u * u;
      const z = r.normal();
      n += z; n2 += z * z; n4 += z ** 4;
    }
    // Standard errors: mean 0.0009 (uniform), 0.003 (normal); 5 sd.
    expect(Math.abs(s / N - 0.5)).toBeLessThan(0.0046);
    expect(Math.abs(s2 / N - 1 / 3)).toBeLessThan(0.005);
    expect(Math.abs(n / N)).toBeLessThan(0.016);
    expect(Math.abs(n2 / N - 1)).toBeLessThan(0.023);
    expect(Math.abs(n4 / N - 3)).toBeLessThan(0.2);
  });

  it('makes seeded permutations', () => {
    const p = permutation(1000, Rng.forKey(7));
    expect([...p].sort((a, b) => a - b)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(Array.from(permutation(1000, Rng.forKey(7)))).toEqual(Array.from(p));
    // Position of element 0 is uniform: over 2000 permutations of 4, each place ~500 times.
    const counts = [0, 0, 0, 0];
    for (let k = 0; k < 2000; k++) counts[permutation(4, Rng.forKey(9, k)).indexOf(0)]!++;
    for (const c of counts) expect(Math.abs(c - 500)).toBeLessThan(100);
  });
});
