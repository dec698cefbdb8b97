// Convolution (im2col + GEMM, col2im) and LRN of the CPU engine against the float64 reference
// (reference/kernels.ts), on every ISA path: groups, stride, padding, and batches that split into
// several GEMM chunks.
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { ConvGeometry, LrnParams } from '../backend.js';
import { relativeError, TestRng } from '../conformance/compare.js';
import { convGeometry } from '../geometry.js';
import * as R from '../reference/kernels.js';
import { CpuEngine, cpuIsa, cpuIsaPaths, setCpuIsa } from './index.js';

const engine = new CpuEngine(0);
engine.setThreads(2);
const best = cpuIsa().detected;
afterEach(() => setCpuIsa(best));
afterAll(() => engine.destroy());

function upload(data: ArrayLike<number>) {
  const b = engine.alloc('float32', data.length);
  engine.write(b, Float32Array.from(data));
  return b;
}

/** Seeded float32 values in [-scale, scale), as float64 (what the engine sees, exactly). */
const floats = (n: number, seed: number, scale = 1) => new TestRng(seed).floats(n, scale);
const relErr = (a: ArrayLike<number>, e: ArrayLike<number>) => relativeError(a, e).error;

function checkConv(g: ConvGeometry, seed: number): void {
  const xs = g.n * g.c * g.h * g.w, ws = g.k * (g.c / g.groups) * g.r * g.s, ys = g.n * g.k * g.outH * g.outW;
  const x = floats(xs, seed), w = floats(ws, seed + 1), bias = floats(g.k, seed + 2), dy = floats(ys, seed + 3);
  const dw0 = floats(ws, seed + 4), db0 = floats(g.k, seed + 5);
  const X = upload(x), W = upload(w), Bi = upload(bias), DY = upload(dy);
  const Y = upload(new Float32Array(ys).fill(NaN)), DX = upload(new Float32Array(xs).fill(NaN));
  const DW = upload(dw0), DB = upload(db0);
  engine.conv2dForward(X, W, Bi, Y, g);
  engine.conv2dBackwardData(DY, W, DX, g);
  engine.conv2dBackwardFilter(X, DY, DW, DB, g, 1); // beta 1 accumulates
  const y = new Float64Array(ys), dx = new Float64Array(xs), dw = dw0.slice(), db = db0.slice(), dw1 = new Float64Array(ws);
  R.conv2dForward(x, w, bias, y, g);
  R.conv2dBackwardData(dy, w, dx, g);
  R.conv2dBackwardFilter(x, dy, dw, db, g, 1);
  R.conv2dBackwardFilter(x, dy, dw1, null, g, 0);
  const label = JSON.stringify(g);
  expect(relErr(engine.readSync(Y), y), `forward ${label}`).toBeLessThan(1e-5);
  expect(relErr(engine.readSync(DX), dx), `backward data ${label}`).toBeLessThan(1e-5);
  expect(relErr(engine.readSync(DW), dw), `backward filter ${label}`).toBeLessThan(1e-5);
  expect(relErr(engine.readSync(DB), db), `bias grad ${label}`).toBeLessThan(1e-5);
  engine.conv2dBackwardFilter(X, DY, DW, null, g, 0); // beta 0 overwrites
  expect(relErr(engine.readSync(DW), dw1), `backward filter beta 0 ${label}`).toBeLessThan(1e-5);
  for (const b of [X, W, Bi, DY, Y, DX, DW, DB]) engine.free(b);
}

describe.each(cpuIsaPaths())('conv2d on %s', (isa) => {
  it('matches naive loops (groups, stride, padding, multi-chunk batches)', () => {
    setCpuIsa(isa);
    const cases = [
      convGeometry([2, 3, 23, 23], [8, 3, 11, 11], { stride: 4 }),               // conv1-like: 11x11 stride 4
      convGeometry([3, 4, 9, 9], [6, 2, 5, 5], { padding: 2, groups: 2 }),        // conv2-like: 5x5 pad 2, 2 groups
      convGeometry([5, 6, 7, 7], [4, 3, 3, 3], { padding: 1, groups: 2 }),        // conv4-like: 3x3 pad 1, 2 groups
      convGeometry([1, 2, 5, 6], [3, 2, 2, 3], { stride: 2, padding: 1 }),        // uneven kernel and stride
      convGeometry([130, 2, 4, 4], [3, 2, 3, 3], { padding: 1 }),                 // tiny planes: several samples per GEMM, ragged last chunk
      convGeometry([2, 1, 3, 3], [2, 1, 5, 5], { padding: 2 }),                   // kernel larger than the image
      convGeometry([2, 4, 30, 30], [4, 2, 5, 5], { padding: 2, groups: 2 }),      // long output rows: im2col by row segments
      convGeometry([1, 3, 53, 53], [5, 3, 3, 3], { stride: 2, padding: 1 }),      // long rows, stride 2 with padding
      convGeometry([16, 4, 30, 30], [6, 2, 5, 5], { padding: 2, groups: 2 }),     // many chunks: each thread takes whole chunks
      convGeometry([20, 2, 35, 35], [4, 2, 3, 3], { padding: 1 }),
    ];
    cases.forEach((g, i) => checkConv(g, 10 * i + 1));
  });
});

describe('conv2d thread counts', () => {
  it('gives bit-identical results on 1, 2 and 3 threads (chunk ranges are fixed, not per thread)', () => {
    const g = convGeometry([24, 4, 20, 20], [6, 2, 3, 3], { padding: 1, groups: 2 });
    const xs = g.n * g.c * g.h * g.w, ws = g.k * (g.c / g.groups) * g.r * g.s, ys = g.n * g.k * g.outH * g.outW;
    const X = upload(floats(xs, 1)), W = upload(floats(ws, 2)), DY = upload(floats(ys, 3));
    const Y = engine.alloc('float32', ys), DX = engine.alloc('float32', xs), DW = engine.alloc('float32', ws);
    const results: Float32Array[][] = [];
    for (const threads of [1, 2, 3]) {
      engine.setThreads(threads);
      engine.conv2dForward(X, W, null, Y, g);
      engine.conv2dBackwardData(DY, W, DX, g);
      engine.conv2dBackwardFilter(X, DY, DW, null, g, 0);
      results.push([Y, DX, DW].map((b) => engine.readSync(b) as Float32Array));
    }
    engine.setThreads(2);
    expect(results[1]).toEqual(results[0]);
    expect(results[2]).toEqual(results[0]);
    for (const b of [X, W, DY, Y, DX, DW]) engine.free(b);
  });
});

describe.each(cpuIsaPaths())('LRN on %s', (isa) => {
  it('fused forward and backward match naive loops', () => {
    setCpuIsa(isa);
    const params: LrnParams[] = [
      { size: 5, alpha: 1e-4, beta: 0.75, k: 2 },   // §3.3
      { size: 5, alpha: 0.3, beta: 0.75, k: 1 },    // strong normalisation, so the backward term matters
      { size: 3, alpha: 0.2, beta: 0.6, k: 1.5 },   // general power
      { size: 4, alpha: 0.1, beta: 0.5, k: 1 },
    ];
    for (const [n, c, hw] of [[2, 7, 70], [1, 3, 5], [3, 16, 129]] as const) {
      for (const p of params) {
        const x = floats(n * c * hw, n + c + hw, 2), dy = floats(n * c * hw, hw);
        const X = upload(x), DY = upload(dy);
        const Y = upload(new Float32Array(x.length).fill(NaN)), DX = upload(new Float32Array(x.length).fill(NaN));
        engine.lrnForward(X, Y, p, n, c, hw);
        engine.lrnBackward(X, Y, DY, DX, p, n, c, hw);
        const label = `${n}x${c}x${hw} ${JSON.stringify(p)}`;
        const y = new Float64Array(x.length), dx = new Float64Array(x.length);
        R.lrnForward(x, y, p, n, c, hw);
        R.lrnBackward(x, y, dy, dx, p, n, c, hw);
        expect(relErr(engine.readSync(Y), y), `forward ${label}`).toBeLessThan(1e-5);
        expect(relErr(engine.readSync(DX), dx), `backward ${label}`).toBeLessThan(1e-4);
        for (const b of [X, DY, Y, DX]) engine.free(b);
      }
    }
  });
});
