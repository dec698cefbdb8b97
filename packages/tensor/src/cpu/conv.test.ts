// Convolution (im2col + GEMM, col2im) and LRN of the CPU engine against naive float64 loops, on
// every ISA path: groups, stride, padding, and batches that split into several GEMM chunks.
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { ConvGeometry } from '../backend.js';
import { CpuEngine, cpuIsa, setCpuIsa } from './index.js';
import {
  convGeometry, floats, isaPaths, naiveConvBackwardData, naiveConvBackwardFilter, naiveConvForward,
  naiveLrnBackward, naiveLrnForward, relErr, type Lrn,
} from './testing.js';

const engine = new CpuEngine(0);
engine.setThreads(2);
const best = cpuIsa().detected;
afterEach(() => setCpuIsa(best));
afterAll(() => engine.destroy());

function upload(data: Float32Array) {
  const b = engine.alloc('float32', data.length);
  engine.write(b, data);
  return b;
}

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
  const label = JSON.stringify(g);
  expect(relErr(engine.readSync(Y), naiveConvForward(x, w, bias, g)), `forward ${label}`).toBeLessThan(1e-5);
  expect(relErr(engine.readSync(DX), naiveConvBackwardData(dy, w, g)), `backward data ${label}`).toBeLessThan(1e-5);
  const dwRef = naiveConvBackwardFilter(x, dy, g).map((v, i) => v + dw0[i]!);
  expect(relErr(engine.readSync(DW), dwRef), `backward filter ${label}`).toBeLessThan(1e-5);
  const P = g.outH * g.outW, dbRef = new Float64Array(g.k);
  for (let i = 0; i < ys; i++) dbRef[Math.floor(i / P) % g.k]! += dy[i]!;
  expect(relErr(engine.readSync(DB), dbRef.map((v, i) => v + db0[i]!)), `bias grad ${label}`).toBeLessThan(1e-5);
  engine.conv2dBackwardFilter(X, DY, DW, null, g, 0); // beta 0 overwrites
  expect(relErr(engine.readSync(DW), naiveConvBackwardFilter(x, dy, g)), `backward filter beta 0 ${label}`).toBeLessThan(1e-5);
  for (const b of [X, W, Bi, DY, Y, DX, DW, DB]) engine.free(b);
}

describe.each(isaPaths())('conv2d on %s', (isa) => {
  it('matches naive loops (groups, stride, padding, multi-chunk batches)', () => {
    setCpuIsa(isa);
    const cases = [
      convGeometry(2, 3, 23, 23, 8, 11, 11, 4, 0, 1),  // conv1-like: 11x11 stride 4
      convGeometry(3, 4, 9, 9, 6, 5, 5, 1, 2, 2),      // conv2-like: 5x5 pad 2, 2 groups
      convGeometry(5, 6, 7, 7, 4, 3, 3, 1, 1, 2),      // conv4-like: 3x3 pad 1, 2 groups
      convGeometry(1, 2, 5, 6, 3, 2, 3, 2, 1, 1),      // uneven kernel and stride
      convGeometry(130, 2, 4, 4, 3, 3, 3, 1, 1, 1),    // tiny planes: several samples per GEMM, ragged last chunk
      convGeometry(2, 1, 3, 3, 2, 5, 5, 1, 2, 1),      // kernel larger than the image
      convGeometry(2, 4, 30, 30, 4, 5, 5, 1, 2, 2),    // long output rows: im2col by row segments
      convGeometry(1, 3, 53, 53, 5, 3, 3, 2, 1, 1),    // long rows, stride 2 with padding
      convGeometry(16, 4, 30, 30, 6, 5, 5, 1, 2, 2),   // many chunks: each thread takes whole chunks
      convGeometry(20, 2, 35, 35, 4, 3, 3, 1, 1, 1),
    ];
    cases.forEach((g, i) => checkConv(g, 10 * i + 1));
  });
});

describe('conv2d thread counts', () => {
  it('gives bit-identical results on 1, 2 and 3 threads (chunk ranges are fixed, not per thread)', () => {
    const g = convGeometry(24, 4, 20, 20, 6, 3, 3, 1, 1, 2);
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

describe.each(isaPaths())('LRN on %s', (isa) => {
  it('fused forward and backward match naive loops', () => {
    setCpuIsa(isa);
    const params: Lrn[] = [
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
        expect(relErr(engine.readSync(Y), naiveLrnForward(x, p, n, c, hw)), `forward ${label}`).toBeLessThan(1e-5);
        expect(relErr(engine.readSync(DX), naiveLrnBackward(x, dy, p, n, c, hw)), `backward ${label}`).toBeLessThan(1e-4);
        for (const b of [X, DY, Y, DX]) engine.free(b);
      }
    }
  });
});
