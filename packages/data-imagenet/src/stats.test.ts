import { describe, it, expect } from 'vitest';
import { StatisticsAccumulator, symmetricEigen3 } from './stats.js';
import { Rng } from './rng.js';

function matmul(a: number[][], b: number[][]): number[][] {
  return a.map((r) => b[0]!.map((_, j) => r.reduce((s, v, k) => s + v * b[k]![j]!, 0)));
}
const T = (a: number[][]) => a[0]!.map((_, j) => a.map((r) => r[j]!));

// An orthonormal basis by hand: rotation by 30 degrees about z, then 45 degrees about x.
const c30 = Math.cos(Math.PI / 6), s30 = Math.sin(Math.PI / 6), r2 = Math.SQRT1_2;
const Q = matmul([[1, 0, 0], [0, r2, -r2], [0, r2, r2]], [[c30, -s30, 0], [s30, c30, 0], [0, 0, 1]]);

describe('symmetricEigen3', () => {
  it('recovers eigenvalues 9, 4, 1 and their eigenvectors from Q diag(9,4,1) Q^T', () => {
    const m = matmul(matmul(Q, [[9, 0, 0], [0, 4, 0], [0, 0, 1]]), T(Q));
    const { values, vectors } = symmetricEigen3(m);
    expect(values[0]).toBeCloseTo(9, 12);
    expect(values[1]).toBeCloseTo(4, 12);
    expect(values[2]).toBeCloseTo(1, 12);
    for (let i = 0; i < 3; i++) {
      const col = [Q[0]![i]!, Q[1]![i]!, Q[2]![i]!];
      const dot = col.reduce((s, v, k) => s + v * vectors[i]![k]!, 0);
      expect(Math.abs(dot)).toBeCloseTo(1, 12);
      // Convention: the largest-magnitude component is positive.
      const big = vectors[i]!.reduce((b, v, k) => (Math.abs(v) > Math.abs(vectors[i]![b]!) ? k : b), 0);
      expect(vectors[i]![big]!).toBeGreaterThan(0);
    }
  });

  it('handles a diagonal matrix and repeated eigenvalues', () => {
    expect(symmetricEigen3([[2, 0, 0], [0, 5, 0], [0, 0, 3]]).values).toEqual([5, 3, 2]);
    const { values } = symmetricEigen3([[2, 1, 0], [1, 2, 0], [0, 0, 3]]);
    expect(values.map((v) => Math.round(v * 1e9) / 1e9)).toEqual([3, 3, 1]);
  });
});

describe('StatisticsAccumulator', () => {
  it('gives the exact mean image of hand-made images', () => {
    const size = 2;
    const acc = new StatisticsAccumulator(size);
    acc.add(Uint8Array.from([0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110]));
    acc.add(Uint8Array.from([2, 10, 21, 31, 40, 50, 60, 71, 80, 90, 100, 255]));
    const s = acc.finish();
    expect(Array.from(s.meanImage)).toEqual([1, 10, 20.5, 30.5, 40, 50, 60, 70.5, 80, 90, 100, 182.5]);
    // Per-channel mean over all 8 pixels.
    expect(s.channelMean[0]).toBeCloseTo((0 + 30 + 60 + 90 + 2 + 31 + 60 + 90) / 8, 12);
    expect(s.images).toBe(2);
  });

  it('recovers a known RGB covariance and its PCA from synthetic pixels; partial sums merge exactly', () => {
    // Pixels = mu + Q diag(sqrt(l)) z, z ~ N(0, 1): covariance Q diag(l) Q^T with l = (900, 225, 25).
    const l = [900, 225, 25];
    const A = Q.map((r) => r.map((v, j) => v * Math.sqrt(l[j]!)));
    const mu = [120, 110, 100];
    const size = 32, images = 40;
    const rng = Rng.forKey(11);
    const whole = new StatisticsAccumulator(size);
    const parts = [new StatisticsAccumulator(size), new StatisticsAccumulator(size)];
    // Independent float64 reference of the exact pixel covariance.
    let n = 0;
    const sum = [0, 0, 0], sq = [[0, 0, 0], [0, 0, 0], [0, 0, 0]];
    for (let k = 0; k < images; k++) {
      const im = new Uint8Array(size * size * 3);
      for (let p = 0; p < size * size; p++) {
        const z = [rng.normal(), rng.normal(), rng.normal()];
        for (let c = 0; c < 3; c++) {
          const v = Math.round(mu[c]! + A[c]![0]! * z[0]! + A[c]![1]! * z[1]! + A[c]![2]! * z[2]!);
          im[p * 3 + c] = Math.max(0, Math.min(255, v));
        }
        const px = [im[p * 3]!, im[p * 3 + 1]!, im[p * 3 + 2]!];
        n++;
        for (let i = 0; i < 3; i++) {
          sum[i]! += px[i]!;
          for (let j = 0; j < 3; j++) sq[i]![j]! += px[i]! * px[j]!;
        }
      }
      whole.add(im);
      parts[k % 2]!.add(im);
    }
    const s = whole.finish();
    const exact = sq.map((r, i) => r.map((v, j) => v / n - (sum[i]! / n) * (sum[j]! / n)));
    for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) expect(s.covariance[i]![j]!).toBeCloseTo(exact[i]![j]!, 6);
    // Against the population covariance: sampling error of ~41k pixels plus clipping and rounding.
    for (let i = 0; i < 3; i++) expect(Math.abs(s.eigenvalues[i]! - l[i]!) / l[i]!).toBeLessThan(0.05);
    for (let i = 0; i < 3; i++) {
      const col = [Q[0]![i]!, Q[1]![i]!, Q[2]![i]!];
      expect(Math.abs(col.reduce((a, v, k) => a + v * s.eigenvectors[i]![k]!, 0))).toBeGreaterThan(0.995);
    }
    const merged = new StatisticsAccumulator(size);
    merged.merge(parts[0]!);
    merged.merge(parts[1]!);
    const m = merged.finish();
    expect(m.covariance).toEqual(s.covariance);
    expect(Array.from(m.meanImage)).toEqual(Array.from(s.meanImage));
  });
});
