// What the engine does beyond one kernel per op, on cuda-emu with our kernels: the fusion of
// consecutive ops (the dense layer's gemm + biasAdd + in-place ReLU in one epilogue, a convolution and
// its in-place ReLU, an optimizer step's sgdUpdates in one launch) and the cases that must not fuse;
// copyToPeer ordered by the engine itself on both streams; launches in pieces within gridDim's
// limits (the emulation's limit lowered in a child process, so small shapes reach them).
import { spawnSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { convGeometry, device, referenceKernels as R, type DeviceBuffer, type Engine, type SgdParams } from '@alexnet/tensor';
import { relativeError, TestRng } from '@alexnet/tensor/conformance';
import { cudaEmu } from './index.js';

const counters = () => cudaEmu.kernels()!.counters;
const delta = <T extends Record<string, number>>(before: T) => {
  const now = counters();
  return Object.fromEntries(Object.entries(now).map(([k, v]) => [k, v - (before[k] ?? 0)]).filter(([, v]) => v !== 0));
};

function upload(e: Engine, a: Float64Array): DeviceBuffer {
  const b = e.alloc('float32', a.length);
  e.write(b, Float32Array.from(a));
  return b;
}

describe('cuda-emu: fused ops', () => {
  const e = () => device('cuda-emu:0').engine;
  const rng = new TestRng(11);

  it("the dense layer's gemm, biasAdd and in-place ReLU run as one GEMM with a fused epilogue (NaN kept, as reluForward)", () => {
    const m = 3, n = 70, k = 33;
    const a = rng.floats(m * k), w = rng.floats(n * k), bias = rng.floats(n);
    a[5] = NaN;  // row 0 of y is NaN throughout: ReLU keeps it
    const A = upload(e(), a), W = upload(e(), w), B = upload(e(), bias), Y = e().alloc('float32', m * n);
    const before = counters();
    e().gemm(false, true, m, n, k, 1, A, W, 0, Y);
    e().biasAdd(Y, B, m, n, 1);
    e().reluForward(Y, Y);
    const got = e().readSync(Y);
    const want = new Float64Array(m * n);
    R.gemm(false, true, m, n, k, 1, a, w, 0, want);
    for (let i = 0; i < m * n; i++) want[i] = Number.isNaN(want[i]! + bias[i % n]!) ? NaN : Math.max(0, want[i]! + bias[i % n]!);
    expect(relativeError(got, want).error).toBeLessThan(1e-6);
    expect(Array.from(got.slice(0, n)).every(Number.isNaN)).toBe(true);
    expect(delta(before)).toEqual({ 'gemm.thin': 1, 'fused.bias': 1, 'fused.relu': 1 });  // one launch: no bias or ReLU kernel
    for (const b of [A, W, B, Y]) e().free(b);
  });

  it('a convolution and the in-place ReLU after it: one launch; not fused when the ReLU writes elsewhere, or a read comes between', () => {
    const g = convGeometry([2, 4, 7, 7], [8, 4, 3, 3], { padding: 1 });
    const x = rng.floats(g.n * g.c * g.h * g.w), w = rng.floats(g.k * g.c * 9), bias = rng.floats(g.k);
    const ys = g.n * g.k * g.outH * g.outW;
    const X = upload(e(), x), W = upload(e(), w), B = upload(e(), bias), Y = e().alloc('float32', ys), Z = e().alloc('float32', ys);
    const want = new Float64Array(ys);
    R.conv2dForward(x, w, bias, want, g);
    const relu = Float64Array.from(want, (v) => Math.max(0, v));
    let before = counters();
    e().conv2dForward(X, W, B, Y, g);
    e().reluForward(Y, Y);
    expect(relativeError(e().readSync(Y), relu).error).toBeLessThan(1e-6);
    expect(delta(before)).toMatchObject({ 'fused.relu': 1 });
    before = counters();
    e().conv2dForward(X, W, B, Y, g);
    e().reluForward(Y, Z);  // out of place: the convolution's output must stay as it is
    expect(relativeError(e().readSync(Y), want).error).toBeLessThan(1e-6);
    expect(relativeError(e().readSync(Z), relu).error).toBeLessThan(1e-6);
    e().conv2dForward(X, W, B, Y, g);
    expect(relativeError(e().readSync(Y), want).error).toBeLessThan(1e-6);  // the read flushes the held convolution
    e().reluForward(Y, Y);
    expect(relativeError(e().readSync(Y), relu).error).toBeLessThan(1e-6);
    expect(delta(before)['fused.relu'] ?? 0).toBe(0);
    for (const b of [X, W, B, Y, Z]) e().free(b);
  });

  it("an optimizer step's sgdUpdates (each its own lr and decay) run as one launch, exactly as one launch each would", () => {
    const sizes = [5000, 1, 300, 4096, 17];
    const ps = sizes.map((len, i) => ({ len, w: rng.floats(len), g: rng.floats(len), v: rng.floats(len, 0.01), lr: 0.01 * (i + 1), wd: i === 1 ? 0 : 5e-4 }));
    for (const form of ['paper', 'pytorch'] as const) {
      const bufs = ps.map((p) => ({ w: upload(e(), p.w), g: upload(e(), p.g), v: upload(e(), p.v) }));
      const before = counters();
      for (const [i, p] of ps.entries()) e().sgdUpdate(bufs[i]!.w, bufs[i]!.g, bufs[i]!.v, { lr: p.lr, momentum: 0.9, weightDecay: p.wd, form });
      for (const [i, p] of ps.entries()) {
        const w = p.w.slice(), v = p.v.slice();
        const params: SgdParams = { lr: p.lr, momentum: 0.9, weightDecay: p.wd, form };
        R.sgdUpdate(w, p.g, v, params);
        expect(relativeError(e().readSync(bufs[i]!.w), w).error, `${form} w ${i}`).toBeLessThan(1e-6);
        expect(relativeError(e().readSync(bufs[i]!.v), v).error, `${form} v ${i}`).toBeLessThan(1e-6);
      }
      expect(delta(before)).toEqual({ 'sgd.launches': 1, 'sgd.tensors': sizes.length });
      for (const b of bufs) for (const x of Object.values(b)) e().free(x);
    }
  });

  it('sgdUpdates that share memory, or differ in momentum, are not merged (each sees the one before)', () => {
    const len = 1000, w0 = rng.floats(len), g = rng.floats(len), v0 = rng.floats(len, 0.01);
    const W = upload(e(), w0), G = upload(e(), g), V = upload(e(), v0);
    const before = counters();
    const p1: SgdParams = { lr: 0.1, momentum: 0.9, weightDecay: 5e-4, form: 'paper' };
    const p2: SgdParams = { ...p1, momentum: 0.5 };
    e().sgdUpdate(W, G, V, p1);
    e().sgdUpdate(W, G, V, p1);  // the same tensors again
    e().sgdUpdate(W, G, V, p2);
    const w = w0.slice(), v = v0.slice();
    R.sgdUpdate(w, g, v, p1);
    R.sgdUpdate(w, g, v, p1);
    R.sgdUpdate(w, g, v, p2);
    expect(relativeError(e().readSync(W), w).error).toBeLessThan(1e-6);
    expect(relativeError(e().readSync(V), v).error).toBeLessThan(1e-6);
    expect(delta(before)).toEqual({ 'sgd.launches': 3, 'sgd.tensors': 3 });
    for (const b of [W, G, V]) e().free(b);
  });
});

describe('cuda-emu: copyToPeer orders both streams itself', () => {
  it('the copy waits for the work queued on the peer, and the peer\'s later work waits for the copy, with no events from the caller', () => {
    const e0 = device('cuda-emu:0').engine, e1 = device('cuda-emu:1').engine;
    const len = 1 << 17;
    const src = e0.alloc('float32', len), dst = e1.alloc('float32', len);
    for (let round = 0; round < 3; round++) {
      e0.fill(src, 1);
      for (let i = 0; i < 12; i++) e0.scale(2, src);  // src = 4096, late on cuda-emu:0's stream
      e1.fill(dst, 3);
      for (let i = 0; i < 12; i++) e1.scale(3, dst);  // long work on dst, queued before the copy
      e0.copyToPeer(src, e1, dst, len);
      e1.scale(0.5, dst);  // after the copy, in program order
      const got = e1.readSync(dst);
      expect(got[0]).toBe(2048);
      expect(got[len - 1]).toBe(2048);
    }
    e0.free(src);
    e1.free(dst);
  });
});

describe('cuda-emu: launches within gridDim\'s limits', () => {
  const pkg = resolve(dirname(fileURLToPath(import.meta.url)), '..');
  it('GEMMs and convolutions whose grids exceed the y and z limits run in pieces (the emulation refuses what a GPU would)', () => {
    const script = `
      import { convGeometry, device, referenceKernels as R } from '@alexnet/tensor';
      import { cudaEmu } from '@alexnet/cuda';
      const e = device('cuda-emu:0').engine;
      let s = 5; const rnd = (n) => Float64Array.from({ length: n }, () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1);
      const up = (a) => { const b = e.alloc('float32', a.length); e.write(b, Float32Array.from(a)); return b; };
      const err = (got, want) => { let d = 0, r = 0; for (let i = 0; i < want.length; i++) { d += (got[i] - want[i]) ** 2; r += want[i] ** 2; } return Math.sqrt(d / r); };
      const out = {};
      const g = convGeometry([9, 4, 6, 6], [6, 2, 3, 3], { padding: 1, groups: 2 });  // batch 18 in z
      const x = rnd(g.n * g.c * g.h * g.w), w = rnd(g.k * 2 * 9), dy = rnd(g.n * g.k * 36);
      const y = new Float64Array(dy.length); R.conv2dForward(x, w, null, y, g);
      const Y = e.alloc('float32', y.length); e.conv2dForward(up(x), up(w), null, Y, g); out.forward = err(e.readSync(Y), y);
      const dw = new Float64Array(w.length); R.conv2dBackwardFilter(x, dy, dw, null, g, 0);
      const DW = e.alloc('float32', w.length); e.conv2dBackwardFilter(up(x), up(dy), DW, null, g, 0); out.filter = err(e.readSync(DW), dw);
      const m = 400, n = 5, k = 300;  // 7 row tiles of 64 in y, and split-K in z
      const a = rnd(m * k), b = rnd(k * n), c = new Float64Array(m * n); R.gemm(false, false, m, n, k, 1, a, b, 0, c);
      const C = e.alloc('float32', m * n); e.gemm(false, false, m, n, k, 1, up(a), up(b), 0, C); out.gemm = err(e.readSync(C), c);
      out.pieces = cudaEmu.kernels().counters['grid.pieces'];
      console.log(JSON.stringify(out));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      cwd: pkg, encoding: 'utf8', timeout: 120_000, env: { ...process.env, ALEXNET_CUDA_EMU_GRID_YZ: '3', ALEXNET_CUDA_KERNELS: 'own' },
    });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(out.forward).toBeLessThan(1e-6);
    expect(out.filter).toBeLessThan(1e-6);
    expect(out.gemm).toBeLessThan(1e-6);
    expect(out.pieces).toBeGreaterThan(5);
  }, 150_000);
});
