// The paper net's layers at their full shapes (227 x 227 input) and batch 8 on cuda-emu, our kernels:
// every convolution pass, the fully connected GEMMs, LRN, max-pool and the loss, in float32 and with
// TF32 tensor cores (conv1 and conv4), against float64 (at 1,500 sampled positions of each output for the GEMM-shaped
// ops, whose full float64 reference would take minutes here; every element must have been written).
// Batch 8 on the H200-sized emulated GPU (132 SMs) is where the launch heuristics choose every GEMM
// configuration, which the kernel counters prove: the 128x128, 64x64 and 16x128 tiles, split-K, the
// TF32 wmma kernel and the direct data-gradient kernel. ALEXNET_CONFORMANCE_BATCH changes the batch.
import { afterAll, describe, expect, it } from 'vitest';
import { alexnetShapes, device, referenceKernels as R, type ConvGeometry, type DeviceBuffer, type Engine } from '@alexnet/tensor';
import { relativeError, TestRng } from '@alexnet/tensor/conformance';
import { convBackwardDataAt, convBackwardFilterAt, convForwardAt, gemmAt, sampledError, samplePositions } from '../test/sampled.js';
import { cudaEmu } from './index.js';

const BATCH = Number(process.env.ALEXNET_CONFORMANCE_BATCH ?? 8);
const SAMPLES = 1500;
const shapes = alexnetShapes(BATCH);

function upload(e: Engine, a: Float64Array): DeviceBuffer {
  const b = e.alloc('float32', a.length);
  e.write(b, Float32Array.from(a));
  return b;
}
function poisoned(e: Engine, n: number): DeviceBuffer {
  const b = e.alloc('float32', n);
  e.fill(b, NaN);
  return b;
}
const f32 = (a: Float64Array) => Float64Array.from(Float32Array.from(a));

const before = cudaEmu.kernels()!.counters;
afterAll(() => {
  cudaEmu.setTf32(false);
  expect(cudaEmu.barrierDivergences()).toBe(0);
});

describe(`cuda-emu: the AlexNet layers at batch ${BATCH}, full shapes`, () => {
  const e = () => device('cuda-emu:0').engine;
  const rng = new TestRng(2012);

  const convPasses = (g: ConvGeometry, tol: number) => {
    const xs = g.n * g.c * g.h * g.w, ws = g.k * (g.c / g.groups) * g.r * g.s, ys = g.n * g.k * g.outH * g.outW;
    const x = f32(rng.floats(xs)), w = f32(rng.floats(ws, 0.1)), bias = f32(rng.floats(g.k)), dy = f32(rng.floats(ys));
    const X = upload(e(), x), W = upload(e(), w), B = upload(e(), bias), DY = upload(e(), dy);
    const out: Record<string, { error: number; unwritten: number }> = {};
    const Y = poisoned(e(), ys);
    e().conv2dForward(X, W, B, Y, g);
    out.forward = sampledError(e().readSync(Y), samplePositions(ys, SAMPLES), (i) => convForwardAt(x, w, bias, g, i));
    const DX = poisoned(e(), xs);
    e().conv2dBackwardData(DY, W, DX, g);
    out.backwardData = sampledError(e().readSync(DX), samplePositions(xs, SAMPLES), (i) => convBackwardDataAt(dy, w, g, i));
    const DW = poisoned(e(), ws), DB = poisoned(e(), g.k);
    e().conv2dBackwardFilter(X, DY, DW, DB, g, 0);
    out.backwardFilter = sampledError(e().readSync(DW), samplePositions(ws, SAMPLES), (i) => convBackwardFilterAt(x, dy, g, i));
    const db = new Float64Array(g.k);
    R.biasGrad(dy, db, g.n, g.k, g.outH * g.outW, 0);
    out.biasGrad = { error: relativeError(e().readSync(DB), db).error, unwritten: 0 };
    for (const b of [X, W, B, DY, Y, DX, DW, DB]) e().free(b);
    for (const [pass, r] of Object.entries(out)) {
      expect(r.unwritten, `${pass}: elements never written`).toBe(0);
      expect(r.error, pass).toBeLessThan(tol);
    }
    return out;
  };

  const fcPasses = (tol: number) => {
    const errors: Record<string, number> = {};
    for (const { name, in: inF, out: outF } of shapes.fc) {
      const n = BATCH;
      const x = f32(rng.floats(n * inF)), w = f32(rng.floats(outF * inF, 0.05)), dy = f32(rng.floats(n * outF)), dw0 = f32(rng.floats(outF * inF));
      const X = upload(e(), x), W = upload(e(), w), DY = upload(e(), dy);
      const cases: [string, boolean, boolean, number, number, number, DeviceBuffer, DeviceBuffer, Float64Array, Float64Array, number, Float64Array | null][] = [
        ['forward', false, true, n, outF, inF, X, W, x, w, 0, null],  // y = x W^T
        ['backward data', false, false, n, inF, outF, DY, W, dy, w, 0, null],  // dx = dy W
        ['backward weights', true, false, outF, inF, n, DY, X, dy, x, 1, dw0],  // dW += dy^T x
      ];
      for (const [pass, tA, tB, m, nn, k, Ab, Bb, a, b, beta, c0] of cases) {
        const C = c0 ? upload(e(), c0) : poisoned(e(), m * nn);
        e().gemm(tA, tB, m, nn, k, 1, Ab, Bb, beta, C);
        const r = sampledError(e().readSync(C), samplePositions(m * nn, SAMPLES), (i) => gemmAt(tA, tB, m, nn, k, 1, a, b, beta, c0, i));
        expect(r.unwritten, `${name} ${pass}`).toBe(0);
        expect(r.error, `${name} ${pass}`).toBeLessThan(tol);
        errors[`${name} ${pass}`] = r.error;
        e().free(C);
      }
      for (const b of [X, W, DY]) e().free(b);
    }
    return errors;
  };

  it('float32: every convolution pass and fully connected GEMM within 1e-4', () => {
    for (const { geometry } of shapes.conv) convPasses(geometry, 1e-4);
    fcPasses(1e-4);
  }, 600_000);

  // conv1 (strided: its data gradient is the direct kernel) and conv4 (grouped): the wmma kernel's
  // emulation costs a few times the float32 kernel's, so not every layer again
  it('TF32 tensor cores (the wmma kernel) on conv1 and conv4: within 5e-3, and visibly not float32', () => {
    cudaEmu.setTf32(true);
    try {
      let worst = 0;
      for (const { geometry } of shapes.conv.filter((l) => l.name === 'conv1' || l.name === 'conv4')) {
        const out = convPasses(geometry, 5e-3);
        worst = Math.max(worst, out.forward.error, out.backwardFilter.error);
      }
      expect(worst).toBeGreaterThan(2e-5);
    } finally {
      cudaEmu.setTf32(false);
    }
  }, 600_000);

  it('LRN, max-pool, the loss and the fc6 activations at full size against float64 (all elements)', () => {
    for (const l of shapes.lrn) {
      const len = l.n * l.c * l.hw, x = f32(rng.floats(len, 20)), dy = f32(rng.floats(len));
      const y = new Float64Array(len), dx = new Float64Array(len);
      R.lrnForward(x, y, l.params, l.n, l.c, l.hw);
      const y32 = f32(y);
      R.lrnBackward(x, y32, dy, dx, l.params, l.n, l.c, l.hw);
      const X = upload(e(), x), Y = poisoned(e(), len), Y32 = upload(e(), y32), DY = upload(e(), dy), DX = poisoned(e(), len);
      e().lrnForward(X, Y, l.params, l.n, l.c, l.hw);
      e().lrnBackward(X, Y32, DY, DX, l.params, l.n, l.c, l.hw);
      expect(relativeError(e().readSync(Y), y).error, `${l.name} forward`).toBeLessThan(1e-4);
      expect(relativeError(e().readSync(DX), dx).error, `${l.name} backward`).toBeLessThan(1e-4);
      for (const b of [X, Y, Y32, DY, DX]) e().free(b);
    }
    for (const { name, geometry: g } of shapes.pool) {
      const xs = g.n * g.c * g.h * g.w, ys = g.n * g.c * g.outH * g.outW;
      const x = f32(rng.floats(xs)), dy = f32(rng.floats(ys));
      const y = new Float64Array(ys), am = new Int32Array(ys), dx = new Float64Array(xs);
      R.maxPoolForward(x, y, am, g);
      R.maxPoolBackward(dy, am, dx, g);
      const X = upload(e(), x), Y = poisoned(e(), ys), AM = e().alloc('int32', ys), DY = upload(e(), dy), DX = poisoned(e(), xs);
      e().maxPoolForward(X, Y, AM, g);
      e().maxPoolBackward(DY, AM, DX, g);
      expect(relativeError(e().readSync(Y), y).error, `${name} forward`).toBe(0);
      expect(Array.from(e().readSync(AM)), `${name} argmax`).toEqual(Array.from(am));
      expect(relativeError(e().readSync(DX), dx).error, `${name} backward`).toBeLessThan(1e-6);
      for (const b of [X, Y, AM, DY, DX]) e().free(b);
    }
    const c = 1000, n = BATCH, logits = f32(rng.floats(n * c, 8)), labels = Int32Array.from({ length: n }, (_, i) => (i * 131) % c);
    const loss = new Float64Array(1), dl = new Float64Array(n * c);
    R.softmaxCrossEntropy(logits, labels, loss, dl, n, c);
    const L = upload(e(), logits), LB = e().alloc('int32', n), LOSS = poisoned(e(), 1), DL = poisoned(e(), n * c);
    e().write(LB, labels);
    e().softmaxCrossEntropy(L, LB, LOSS, DL, n, c);
    expect(relativeError(e().readSync(LOSS), loss).error).toBeLessThan(1e-5);
    expect(relativeError(e().readSync(DL), dl).error).toBeLessThan(1e-5);
    for (const b of [L, LB, LOSS, DL]) e().free(b);
  }, 600_000);

  it('every GEMM configuration ran: the 128x128, 64x64 and 16x128 tiles, split-K, TF32 wmma, the direct data gradient', () => {
    const now = cudaEmu.kernels()!.counters;
    const ran = (k: string) => now[k]! - (before[k] ?? 0);
    for (const k of ['gemm.large', 'gemm.small', 'gemm.thin', 'gemm.tf32', 'gemm.splitK', 'conv.backwardData.direct']) {
      expect(ran(k), k).toBeGreaterThan(0);
    }
  });
});
