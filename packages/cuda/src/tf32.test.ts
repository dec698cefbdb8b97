// The opt-in TF32 tensor-core GEMM (native/cuda/kernels/gemm.cuh, gemmKernelTf32) on the emulated
// backend: wmma's tile loads, products and stores emulated, inputs rounded to TF32. It must agree with
// the float64 reference to TF32 accuracy, and actually be in use (its error is well above float32's).
import { describe, expect, it } from 'vitest';
import { convGeometry, device, referenceKernels as R, type Engine } from '@alexnet/tensor';
import { relativeError, TestRng } from '@alexnet/tensor/conformance';
import { cudaEmu } from './index.js';

function run(e: Engine, data: Record<string, Float64Array>, outs: Record<string, number>, op: (b: Record<string, ReturnType<Engine['alloc']>>) => void) {
  const b: Record<string, ReturnType<Engine['alloc']>> = {};
  for (const [k, v] of Object.entries(data)) { b[k] = e.alloc('float32', v.length); e.write(b[k]!, Float32Array.from(v)); }
  for (const [k, n] of Object.entries(outs)) b[k] = e.alloc('float32', n);
  op(b);
  const got: Record<string, Float32Array> = {};
  for (const k of Object.keys(outs)) got[k] = e.readSync(b[k]!) as Float32Array;
  for (const x of Object.values(b)) e.free(x);
  return got;
}

describe('cuda-emu TF32 tensor-core path', () => {
  const cases = (tf32: boolean) => {
    cudaEmu.setTf32(tf32);
    try {
      const e = device('cuda-emu:0').engine;
      const rng = new TestRng(42);
      const errs: number[] = [];
      // gemm, every transpose combination, with edges (sizes not multiples of the tiles) and split-K (2)
      for (const [tA, tB] of [[false, false], [false, true], [true, false], [true, true]] as const) {
        const m = 130, n = 70, k = 300;
        const a = rng.floats(m * k), bm = rng.floats(k * n), c0 = rng.floats(m * n);
        const want = c0.slice();
        R.gemm(tA, tB, m, n, k, 0.5, a, bm, 0.25, want);
        const res = (() => {
          const bf: Record<string, ReturnType<Engine['alloc']>> = {};
          for (const [key, v] of Object.entries({ a, b: bm, c: c0 })) { bf[key] = e.alloc('float32', v.length); e.write(bf[key]!, Float32Array.from(v)); }
          e.gemm(tA, tB, m, n, k, 0.5, bf.a!, bf.b!, 0.25, bf.c!);
          const r = e.readSync(bf.c!);
          for (const x of Object.values(bf)) e.free(x);
          return r;
        })();
        errs.push(relativeError(res, want).error);
      }
      // a grouped convolution, all three passes
      // (M, N >= 64 in forward and filter gradient: both take the tensor-core kernel)
      const g = convGeometry([2, 32, 12, 12], [128, 16, 3, 3], { padding: 1, groups: 2 });
      const xs = 2 * 32 * 144, ws = 128 * 16 * 9, ys = 2 * 128 * 144;
      const x = rng.floats(xs), w = rng.floats(ws), dy = rng.floats(ys);
      const y = new Float64Array(ys), dx = new Float64Array(xs), dw = new Float64Array(ws);
      R.conv2dForward(x, w, null, y, g);
      R.conv2dBackwardData(dy, w, dx, g);
      R.conv2dBackwardFilter(x, dy, dw, null, g, 0);
      const got = run(e, { x, w, dy }, { y: ys, dx: xs, dw: ws }, (b) => {
        e.conv2dForward(b.x!, b.w!, null, b.y!, g);
        e.conv2dBackwardData(b.dy!, b.w!, b.dx!, g);
        e.conv2dBackwardFilter(b.x!, b.dy!, b.dw!, null, g, 0);
      });
      errs.push(relativeError(got.y!, y).error, relativeError(got.dw!, dw).error);
      return errs;
    } finally {
      cudaEmu.setTf32(false);
    }
  };

  it('off (the default): float32 accuracy', () => {
    for (const err of cases(false)) expect(err).toBeLessThan(1e-5);
  });

  it('on: TF32 accuracy, and visibly not float32', () => {
    const errs = cases(true);
    for (const err of errs) expect(err).toBeLessThan(5e-3);
    for (const err of errs) expect(err).toBeGreaterThan(2e-5);
  });
});
