// Finite-difference checks, in float64, of every backward kernel of the reference: the conformance
// suite compares each backend's backward ops with these, so they must be true gradients.
// For y = f(x) and L = sum(r * y) with random r, dL/dx must equal the backward op applied to r.
// Central differences with h = 1e-6; tolerance: relative error 1e-6 (norm-wise over the checked entries).
import { describe, expect, it } from 'vitest';
import type { ConvGeometry, LrnParams } from '../backend.js';
import { relativeError, TestRng } from '../conformance/compare.js';
import { convGeometry, poolGeometry } from '../geometry.js';
import * as R from './kernels.js';

const H = 1e-6;
const TOL = 1e-6;

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

/** Numerical gradient of loss() wrt x at up to `samples` entries; returns [numeric, analytic] at those entries. */
function numeric(x: Float64Array, loss: () => number, analytic: Float64Array, samples = 80): [number[], number[]] {
  const idx = x.length <= samples ? [...x.keys()] : Array.from({ length: samples }, (_, i) => Math.floor((i * x.length) / samples));
  const num: number[] = [], ana: number[] = [];
  for (const i of idx) {
    const v = x[i]!;
    x[i] = v + H; const lp = loss();
    x[i] = v - H; const lm = loss();
    x[i] = v;
    num.push((lp - lm) / (2 * H));
    ana.push(analytic[i]!);
  }
  return [num, ana];
}

function expectGrad(name: string, x: Float64Array, loss: () => number, analytic: Float64Array): void {
  const [num, ana] = numeric(x, loss, analytic);
  const { error } = relativeError(ana, num);
  expect(error, `${name}: relative error ${error}`).toBeLessThan(TOL);
}


describe('reference backward kernels are gradients (finite differences, float64)', () => {
  const rng = new TestRng(42);

  const convs: ConvGeometry[] = [
    convGeometry([2, 4, 7, 6], [6, 2, 3, 3], { padding: 1, groups: 2 }),
    convGeometry([1, 3, 11, 11], [4, 3, 5, 5], { stride: 2 }),
    convGeometry([2, 2, 9, 9], [2, 1, 3, 2], { stride: 3, padding: 2, groups: 2 }),
  ];
  for (const g of convs) {
    it(`conv2d x[${g.n},${g.c},${g.h},${g.w}] w ${g.k}x${g.r}x${g.s} stride ${g.strideH} pad ${g.padH} groups ${g.groups}`, () => {
      const x = rng.floats(g.n * g.c * g.h * g.w), w = rng.floats(g.k * (g.c / g.groups) * g.r * g.s), b = rng.floats(g.k);
      const r = rng.floats(g.n * g.k * g.outH * g.outW);
      const y = new Float64Array(r.length);
      const loss = () => { R.conv2dForward(x, w, b, y, g); return dot(y, r); };
      const dx = new Float64Array(x.length), dw = new Float64Array(w.length), db = new Float64Array(g.k);
      R.conv2dBackwardData(r, w, dx, g);
      R.conv2dBackwardFilter(x, r, dw, db, g, 0);
      expectGrad('dx', x, loss, dx);
      expectGrad('dw', w, loss, dw);
      expectGrad('db', b, loss, db);
    });
  }

  it('relu', () => {
    const x = rng.floats(200).map((v) => (Math.abs(v) < 0.01 ? 0.5 : v)), r = rng.floats(200);
    const y = new Float64Array(200), dx = new Float64Array(200);
    R.reluForward(x, y);
    R.reluBackward(y, r, dx);
    expectGrad('dx', x, () => { R.reluForward(x, y); return dot(y, r); }, dx);
  });

  it('tanh (§3.1, Figure 1): backward from the output y', () => {
    for (const scale of [1, 4]) { // around 0, and out where tanh saturates
      const x = rng.floats(200, scale), r = rng.floats(200);
      const y = new Float64Array(200), dx = new Float64Array(200);
      R.tanhForward(x, y);
      R.tanhBackward(y, r, dx);
      expectGrad(`dx (|x| < ${scale})`, x, () => { R.tanhForward(x, y); return dot(y, r); }, dx);
    }
  });

  for (const p of [{ size: 5, alpha: 1e-4, beta: 0.75, k: 2 }, { size: 3, alpha: 0.05, beta: 0.6, k: 1 }, { size: 4, alpha: 0.01, beta: 1.2, k: 1.5 }] as LrnParams[]) {
    it(`local response normalisation size=${p.size} alpha=${p.alpha} beta=${p.beta} k=${p.k}`, () => {
      const n = 2, c = 7, hw = 5;
      const x = rng.floats(n * c * hw, 10), r = rng.floats(n * c * hw);
      const y = new Float64Array(x.length), dx = new Float64Array(x.length);
      R.lrnForward(x, y, p, n, c, hw);
      R.lrnBackward(x, y, r, dx, p, n, c, hw);
      expectGrad('dx', x, () => { R.lrnForward(x, y, p, n, c, hw); return dot(y, r); }, dx);
    });
  }

  it('overlapping max-pool 3/2 with padding', () => {
    const g = poolGeometry([2, 2, 9, 8], { size: 3, stride: 2, padding: 1 });
    const x = Float64Array.from({ length: 2 * 2 * 9 * 8 }, (_, i) => ((i * 7919) % 997) / 97); // distinct values: no ties
    const r = rng.floats(2 * 2 * 5 * 4);
    const y = new Float64Array(r.length), am = new Int32Array(r.length), dx = new Float64Array(x.length);
    R.maxPoolForward(x, y, am, g);
    R.maxPoolBackward(r, am, dx, g);
    expectGrad('dx', x, () => { R.maxPoolForward(x, y, am, g); return dot(y, r); }, dx);
  });

  it('dropout', () => {
    const x = rng.floats(300), r = rng.floats(300), y = new Float64Array(300), dx = new Float64Array(300);
    R.dropoutBackward(r, dx, 0.5, 7, 11);
    expectGrad('dx', x, () => { R.dropoutForward(x, y, 0.5, 7, 11); return dot(y, r); }, dx);
  });

  it('softmax cross-entropy', () => {
    const n = 4, c = 9;
    const x = rng.floats(n * c, 3), labels = Int32Array.of(0, 8, 3, 3);
    const loss = new Float64Array(1), dx = new Float64Array(n * c);
    R.softmaxCrossEntropy(x, labels, loss, dx, n, c);
    expectGrad('dlogits', x, () => { R.softmaxCrossEntropy(x, labels, loss, null, n, c); return loss[0]!; }, dx);
  });

  it('bias add', () => {
    const n = 3, c = 4, hw = 5;
    const y0 = rng.floats(n * c * hw), b = rng.floats(c), r = rng.floats(n * c * hw), db = new Float64Array(c);
    R.biasGrad(r, db, n, c, hw, 0);
    expectGrad('db', b, () => { const y = y0.slice(); R.biasAdd(y, b, n, c, hw); return dot(y, r); }, db);
  });

  it('gemm: op(A) op(B) gradients are gemms of the output gradient', () => {
    const m = 5, n = 4, k = 6;
    const a = rng.floats(m * k), b = rng.floats(k * n), r = rng.floats(m * n), c = new Float64Array(m * n);
    const da = new Float64Array(m * k), dbb = new Float64Array(k * n);
    R.gemm(false, true, m, k, n, 1, r, b, 0, da);   // dA = R B^T
    R.gemm(true, false, k, n, m, 1, a, r, 0, dbb);  // dB = A^T R
    const loss = () => { R.gemm(false, false, m, n, k, 1, a, b, 0, c); return dot(c, r); };
    expectGrad('dA', a, loss, da);
    expectGrad('dB', b, loss, dbb);
  });
});

describe('hand-worked values', () => {
  it('LRN of a single position: paper and the alpha/n convention', () => {
    // x = [1, 2, 3] across channels, size 3, k = 2, alpha = 0.1, beta = 0.75.
    // channel 0 sums 1 + 4 = 5 -> y = 1 / (2 + 0.5)^0.75; channel 1 sums 14 -> 2 / 3.4^0.75; channel 2 sums 13 -> 3 / 3.3^0.75
    const y = new Float64Array(3);
    R.lrnForward(Float64Array.of(1, 2, 3), y, { size: 3, alpha: 0.1, beta: 0.75, k: 2 }, 1, 3, 1);
    expect(y[0]).toBeCloseTo(1 / 2.5 ** 0.75, 12);
    expect(y[1]).toBeCloseTo(2 / 3.4 ** 0.75, 12);
    expect(y[2]).toBeCloseTo(3 / 3.3 ** 0.75, 12);
  });

  it('overlapping 3/2 max-pool on a 5x5 ramp', () => {
    // x[i][j] = 5 i + j: each window's maximum is its bottom-right corner.
    const x = Float64Array.from({ length: 25 }, (_, i) => i);
    const y = new Float64Array(4), am = new Int32Array(4);
    R.maxPoolForward(x, y, am, poolGeometry([1, 1, 5, 5], { size: 3, stride: 2 }));
    expect(Array.from(y)).toEqual([12, 14, 22, 24]);
    expect(Array.from(am)).toEqual([12, 14, 22, 24]);
  });

  it('the paper SGD rule differs from PyTorch once the learning rate changes', () => {
    // w = 1, g = 0.5, m = 0.9, wd = 0.1. Step 1 at lr 0.1, step 2 at lr 0.01.
    const w = Float64Array.of(1), g = Float64Array.of(0.5), v = Float64Array.of(0);
    R.sgdUpdate(w, g, v, { lr: 0.1, momentum: 0.9, weightDecay: 0.1, form: 'paper' });
    // v = -0.1*0.1*1 - 0.1*0.5 = -0.06; w = 0.94
    expect(v[0]).toBeCloseTo(-0.06, 15); expect(w[0]).toBeCloseTo(0.94, 15);
    R.sgdUpdate(w, g, v, { lr: 0.01, momentum: 0.9, weightDecay: 0.1, form: 'paper' });
    // v = 0.9*-0.06 - 0.1*0.01*0.94 - 0.01*0.5 = -0.054 - 0.00094 - 0.005 = -0.05994; w = 0.88006
    expect(v[0]).toBeCloseTo(-0.05994, 15); expect(w[0]).toBeCloseTo(0.88006, 15);
    const wp = Float64Array.of(1), vp = Float64Array.of(0);
    R.sgdUpdate(wp, g, vp, { lr: 0.1, momentum: 0.9, weightDecay: 0.1, form: 'pytorch' });
    // v = 0.5 + 0.1 = 0.6; w = 1 - 0.06 = 0.94 (same as the paper at constant lr)
    expect(wp[0]).toBeCloseTo(0.94, 15);
    R.sgdUpdate(wp, g, vp, { lr: 0.01, momentum: 0.9, weightDecay: 0.1, form: 'pytorch' });
    // v = 0.54 + 0.5 + 0.094 = 1.134; w = 0.94 - 0.01134 = 0.92866 (differs: momentum is not rescaled by the new lr)
    expect(wp[0]).toBeCloseTo(0.92866, 15);
  });
});
