import { describe, expect, it } from 'vitest';
import { fillNormal, fillUniform, philoxBlock } from './philox.js';

describe('Philox4x32-10', () => {
  it('matches the Random123 known-answer vectors', () => {
    // Random123's kat_vectors: philox4x32 10 rounds, counter 0, key 0.
    expect(Array.from(philoxBlock(0, 0), (v) => v.toString(16).padStart(8, '0'))).toEqual(['6627e8d5', 'e169c58d', 'bc57ac4c', '9b00dbd8']);
  });

  it('depends only on the global index, so any split of a range draws the same numbers', () => {
    const whole = new Float64Array(37);
    fillNormal(whole, 123, 5);
    const a = new Float64Array(10), b = new Float64Array(27);
    fillNormal(a, 123, 5);
    fillNormal(b, 123, 15);
    expect([...a, ...b]).toEqual([...whole]);
  });

  it('uniform draws have mean 1/2 and variance 1/12; normal draws mean 0, variance 1', () => {
    const u = new Float64Array(200_000), z = new Float64Array(200_000);
    fillUniform(u, 9, 0);
    fillNormal(z, 9, 0);
    const mean = (x: Float64Array) => x.reduce((s, v) => s + v, 0) / x.length;
    const vari = (x: Float64Array) => { const m = mean(x); return x.reduce((s, v) => s + (v - m) ** 2, 0) / x.length; };
    // Standard errors: 0.00065 and 0.0022 for n = 2e5; bounds are ~5 sigma.
    expect(Math.abs(mean(u) - 0.5)).toBeLessThan(0.0033);
    expect(Math.abs(vari(u) - 1 / 12)).toBeLessThan(0.001);
    expect(Math.abs(mean(z))).toBeLessThan(0.011);
    expect(Math.abs(vari(z) - 1)).toBeLessThan(0.016);
    expect(u.reduce((a, b) => Math.min(a, b), 1)).toBeGreaterThanOrEqual(0);
    expect(u.reduce((a, b) => Math.max(a, b), 0)).toBeLessThan(1);
  });
});
