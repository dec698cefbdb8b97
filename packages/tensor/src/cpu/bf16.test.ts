// The bf16 precision mode of the CPU engine (docs/cpu-engine.md, "bf16"): GEMM operands rounded to
// bfloat16 (nearest even), products summed in fp32. Two references per result: float64 on the
// bf16-ROUNDED inputs (proves the kernel: only fp32 summation error remains, held to 1e-6), and
// float64 on the fp32 inputs (the mode's error against fp32 arithmetic, held to the bf16 bound).
// Every bf16 micro-kernel this CPU has (AMX-BF16 tiles, AVX512_BF16's vdpbf16ps) is run; on a CPU
// without AVX512_BF16 the mode falls back to fp32, and that is what is tested there.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { ConvGeometry } from '../backend.js';
import { relativeError, TestRng } from '../conformance/compare.js';
import { convGeometry } from '../geometry.js';
import * as R from '../reference/kernels.js';
import {
  CpuEngine, cpuIsa, cpuPrecision, setCpuBf16Kernel, setCpuConvAlgorithm, setCpuIsa, setCpuPrecision,
  type CpuBf16Kernel, type CpuConvPass,
} from './index.js';

const engine = new CpuEngine(0);
engine.setThreads(2);
const bestIsa = cpuIsa().detected;
const state0 = cpuPrecision();
const detected = state0.bf16KernelDetected;
const kernels: CpuBf16Kernel[] = detected === 'amx' ? ['amx', 'avx512bf16'] : detected === 'avx512bf16' ? ['avx512bf16'] : [];
const PASSES: CpuConvPass[] = ['forward', 'backwardData', 'backwardFilter'];
afterEach(() => {
  setCpuIsa(bestIsa);
  setCpuPrecision('fp32');
  if (detected !== 'none') setCpuBf16Kernel(detected);
  for (const p of PASSES) setCpuConvAlgorithm(p, 'auto');
});
afterAll(() => engine.destroy());

/** Round-to-nearest-even to bfloat16 (8 significant bits), NaN kept NaN: what the engine's packing does. */
const bits = new Uint32Array(1), asFloat = new Float32Array(bits.buffer);
function bf16(x: number): number {
  asFloat[0] = x;
  const u = bits[0]!;
  bits[0] = (u & 0x7fffffff) > 0x7f800000 ? (u | 0x00400000) & 0xffff0000 : ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) << 16;
  return asFloat[0];
}
const roundAll = (a: Float64Array) => a.map(bf16);

/** The bf16 unit roundoff: 8 significant bits (7 stored), rounding to nearest: u = 2^-8. */
const U = 2 ** -8;
/** Relative error (max-norm) allowed against fp32 inputs: one rounding on each operand, 2u = 2^-7. */
const BF16_TOL = 2 * U;
/** F(2x2,3x3) in bf16: the transforms amplify the transformed operands' rounding (3.7e-3 to 5.0e-3 measured). */
const WINOGRAD_BF16_TOL = 1e-2;
/** Against float64 on the rounded inputs only the fp32 summation differs. */
const KERNEL_TOL = 1e-6;

function upload(data: ArrayLike<number>) {
  const b = engine.alloc('float32', data.length);
  engine.write(b, Float32Array.from(data));
  return b;
}
const relErr = (a: ArrayLike<number>, e: ArrayLike<number>) => relativeError(a, e).error;

interface GemmRun { got: Float32Array; rounded: Float64Array; exact: Float64Array; bound: Float64Array }

function runGemm(ta: boolean, tb: boolean, m: number, n: number, k: number, alpha: number, beta: number, seed: number): GemmRun {
  const a = new TestRng(seed).floats(m * k), b = new TestRng(seed + 1).floats(k * n);
  const c0 = beta === 0 ? new Float64Array(m * n).fill(NaN) : new TestRng(seed + 2).floats(m * n);
  const A = upload(a), B = upload(b), C = upload(c0);
  engine.gemm(ta, tb, m, n, k, alpha, A, B, beta, C);
  const got = engine.readSync(C) as Float32Array;
  for (const x of [A, B, C]) engine.free(x);
  const rounded = c0.slice(), exact = c0.slice(), bound = new Float64Array(m * n);
  R.gemm(ta, tb, m, n, k, alpha, roundAll(a), roundAll(b), beta, rounded);
  R.gemm(ta, tb, m, n, k, alpha, a, b, beta, exact);
  // Elementwise: |alpha| (|op(A)| |op(B)|)_ij (2u + u^2 for the two roundings, k 2^-23 for fp32 sums).
  R.gemm(ta, tb, m, n, k, Math.abs(alpha) * (2 * U + U * U + (k + 2) * 2 ** -23), a.map(Math.abs), b.map(Math.abs), 0, bound);
  return { got, rounded, exact, bound };
}

describe('the precision switch', () => {
  it('is fp32 by default, refuses unknown values with a sentence, and reports what is in effect', () => {
    expect(state0.requested).toBe('fp32');
    expect(state0.active).toBe('fp32');
    expect(() => setCpuPrecision('fp16' as never)).toThrow(/Expected the CPU precision 'fp32' or 'bf16' but received "fp16"/);
    expect(cpuPrecision().active).toBe('fp32');
    const got = setCpuPrecision('bf16');
    if (state0.bf16Supported) {
      expect(got).toBe('bf16');
      expect(cpuPrecision()).toMatchObject({ requested: 'bf16', active: 'bf16' });
      expect(cpuPrecision().reason).toBeUndefined();
    } else {
      // No AVX512_BF16: fp32 in effect, and why.
      console.log(`bf16 falls back to fp32 here: ${cpuPrecision().reason}`);
      expect(got).toBe('fp32');
      expect(cpuPrecision().reason).toMatch(/this CPU lacks AVX512_BF16/);
    }
    expect(setCpuPrecision('fp32')).toBe('fp32');
  });

  it('falls back to fp32, bit-identical, with a reason, when the kernels are capped below AVX-512', () => {
    const m = 37, n = 45, k = 70;
    const before = runGemm(false, true, m, n, k, 1, 0, 5).got;
    if (bestIsa !== 'avx512') return; // no lower path to cap to that would change anything
    setCpuIsa('avx2');
    expect(setCpuPrecision('bf16')).toBe('fp32');
    expect(cpuPrecision().reason).toMatch(state0.bf16Supported ? /capped below AVX-512/ : /lacks AVX512_BF16/);
    setCpuIsa('avx512');
    setCpuPrecision('fp32');
    expect(Array.from(runGemm(false, true, m, n, k, 1, 0, 5).got)).toEqual(Array.from(before));
  });

  it('ALEXNET_CPU_PRECISION sets it at load; another value is ignored and cpuPrecision() says so', () => {
    const addon = fileURLToPath(new URL('../../build/Release/alexnet_cpu.node', import.meta.url));
    const probe = (value: string) => {
      const r = spawnSync(process.execPath, ['-e', `console.log(JSON.stringify(require(${JSON.stringify(addon)}).precision()))`],
        { env: { ...process.env, ALEXNET_CPU_PRECISION: value }, encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      return JSON.parse(r.stdout) as { requested: string; active: string; envInvalid: string | null };
    };
    expect(probe('bf16')).toMatchObject({ requested: 'bf16', active: state0.bf16Supported ? 'bf16' : 'fp32', envInvalid: null });
    expect(probe('fp16')).toMatchObject({ requested: 'fp32', active: 'fp32', envInvalid: 'fp16' });
  });

  it('fp32 after bf16 gives the same bits as before', () => {
    const before = runGemm(true, false, 50, 70, 90, 1, 0, 9).got;
    setCpuPrecision('bf16');
    runGemm(true, false, 50, 70, 90, 1, 0, 9);
    setCpuPrecision('fp32');
    expect(Array.from(runGemm(true, false, 50, 70, 90, 1, 0, 9).got)).toEqual(Array.from(before));
  });
});

describe.skipIf(kernels.length === 0).each(kernels)('bf16 gemm on %s', (kernel) => {
  it('all transposes, odd sizes and edge tiles, alpha and beta: float64 on rounded inputs within 1e-6, fp32 within 2^-7', () => {
    setCpuBf16Kernel(kernel);
    expect(setCpuPrecision('bf16')).toBe('bf16');
    expect(cpuPrecision().bf16Kernel).toBe(kernel);
    const shapes: [number, number, number][] = [
      [1, 1, 1], [1, 37, 5], [13, 1, 7], [15, 33, 17], [29, 65, 3], [33, 64, 64], [97, 31, 401], [130, 97, 50],
    ];
    let seed = 1, worst = 0;
    for (const [m, n, k] of shapes) {
      for (const ta of [false, true]) for (const tb of [false, true]) {
        for (const [alpha, beta] of [[1, 0], [0.5, 1], [-2, 0.25]] as const) {
          const r = runGemm(ta, tb, m, n, k, alpha, beta, seed++);
          const label = `${kernel} ${ta ? 'T' : 'N'}${tb ? 'T' : 'N'} ${m}x${n}x${k} alpha ${alpha} beta ${beta}`;
          expect(relErr(r.got, r.rounded), label).toBeLessThan(KERNEL_TOL);
          const e = relErr(r.got, r.exact);
          expect(e, label).toBeLessThan(BF16_TOL);
          if (k >= 50) worst = Math.max(worst, e);
          if (beta === 0) {
            for (let i = 0; i < r.got.length; ++i) {
              if (!(Math.abs(r.got[i]! - r.exact[i]!) <= r.bound[i]!)) expect.fail(`${label}: element ${i} off by ${Math.abs(r.got[i]! - r.exact[i]!)} > ${r.bound[i]}`);
            }
          }
        }
      }
    }
    // Measured: about 2.1e-3 (uniform inputs, k >= 50), about half of u = 2^-8; fp32 would give 1e-7.
    console.log(`bf16 gemm on ${kernel}: largest relative error against fp32 inputs ${worst.toExponential(2)}`);
    expect(worst).toBeGreaterThan(5e-4);
  });

  it('blocks larger than one cache block (k > KC, m > MC) split across threads', () => {
    setCpuBf16Kernel(kernel);
    setCpuPrecision('bf16');
    for (const [ta, tb, m, n, k, alpha, beta, seed] of [
      [false, false, 1100, 40, 1300, 1, 0, 99], [true, true, 70, 1100, 777, 1.5, 1, 100], [false, true, 128, 300, 1030, 1, 0, 101],
    ] as const) {
      const r = runGemm(ta, tb, m, n, k, alpha, beta, seed);
      expect(relErr(r.got, r.rounded), `${m}x${n}x${k}`).toBeLessThan(KERNEL_TOL);
      expect(relErr(r.got, r.exact), `${m}x${n}x${k}`).toBeLessThan(BF16_TOL);
    }
  });

  it('NaN and infinity propagate through the rounding', () => {
    setCpuBf16Kernel(kernel);
    setCpuPrecision('bf16');
    const A = upload([NaN, 1, Infinity, 1]), B = upload([1, 1]), C = upload([0, 0]);
    engine.gemm(false, false, 2, 1, 2, 1, A, B, 0, C);
    const c = engine.readSync(C);
    expect(Number.isNaN(c[0])).toBe(true);
    expect(c[1]).toBe(Infinity);
    for (const x of [A, B, C]) engine.free(x);
  });
});

function checkConv(g: ConvGeometry, seed: number, label: string, roundedTol: number | null = KERNEL_TOL, tol = BF16_TOL): number[] {
  const xs = g.n * g.c * g.h * g.w, ws = g.k * (g.c / g.groups) * g.r * g.s, ys = g.n * g.k * g.outH * g.outW;
  const rng = (n: number, s: number) => new TestRng(s).floats(n);
  const x = rng(xs, seed), w = rng(ws, seed + 1), bias = rng(g.k, seed + 2), dy = rng(ys, seed + 3), dw0 = rng(ws, seed + 4);
  const X = upload(x), W = upload(w), Bi = upload(bias), DY = upload(dy);
  const Y = upload(new Float32Array(ys).fill(NaN)), DX = upload(new Float32Array(xs).fill(NaN)), DW = upload(dw0), DB = upload(new Float32Array(g.k));
  engine.conv2dForward(X, W, Bi, Y, g);
  engine.conv2dBackwardData(DY, W, DX, g);
  engine.conv2dBackwardFilter(X, DY, DW, DB, g, 1);
  const got = [engine.readSync(Y), engine.readSync(DX), engine.readSync(DW)];
  const db = engine.readSync(DB);
  for (const b of [X, W, Bi, DY, Y, DX, DW, DB]) engine.free(b);
  const refs = (xx: Float64Array, ww: Float64Array, dd: Float64Array) => {
    const y = new Float64Array(ys), dx = new Float64Array(xs), dw = dw0.slice(), dbr = new Float64Array(g.k);
    R.conv2dForward(xx, ww, bias, y, g);
    R.conv2dBackwardData(dd, ww, dx, g);
    R.conv2dBackwardFilter(xx, dd, dw, dbr, g, 1);
    return { out: [y, dx, dw], db: dbr };
  };
  const rounded = refs(roundAll(x), roundAll(w), roundAll(dy)), exact = refs(x, w, dy);
  const errs: number[] = [];
  ['forward', 'backward data', 'backward filter'].forEach((pass, i) => {
    if (roundedTol !== null) expect(relErr(got[i]!, rounded.out[i]!), `${label} ${pass} against rounded inputs`).toBeLessThan(roundedTol);
    const e = relErr(got[i]!, exact.out[i]!);
    expect(e, `${label} ${pass} against fp32 inputs`).toBeLessThan(tol);
    errs.push(e);
  });
  // The bias gradient is no GEMM: fp32 either way.
  expect(relErr(db, exact.db), `${label} bias gradient`).toBeLessThan(1e-5);
  return errs;
}

describe.skipIf(kernels.length === 0).each(kernels)('bf16 convolutions (im2col + GEMM) on %s', (kernel) => {
  it('forward, data and filter gradients at AlexNet-like shapes, against both references', () => {
    setCpuBf16Kernel(kernel);
    setCpuPrecision('bf16');
    for (const p of PASSES) setCpuConvAlgorithm(p, 'direct');
    const cases: [string, ConvGeometry][] = [
      // conv1: 11x11 stride 4 on 3 channels; 3 samples of 13 x 13 per GEMM: an odd k for the filter gradient
      ['conv1-like', convGeometry([3, 3, 59, 59], [16, 3, 11, 11], { stride: 4 })],
      // conv2: 5x5 pad 2, two groups (§3.2), 13 x 13 planes
      ['conv2-like', convGeometry([4, 16, 13, 13], [32, 8, 5, 5], { padding: 2, groups: 2 })],
      // conv3: 3x3 pad 1, a batch of several chunks (filter gradient summed over ranges of chunks)
      ['conv3-like', convGeometry([16, 24, 13, 13], [40, 24, 3, 3], { padding: 1 })],
      // uneven: odd kernel counts, stride 2 and padding, odd columns per chunk
      ['odd', convGeometry([1, 5, 17, 15], [7, 5, 3, 3], { stride: 2, padding: 1 })],
    ];
    let worst = 0;
    cases.forEach(([label, g], i) => { worst = Math.max(worst, ...checkConv(g, 40 + 10 * i, `${kernel} ${label}`)); });
    console.log(`bf16 convolutions on ${kernel}: largest relative error against fp32 inputs ${worst.toExponential(2)}`);
    expect(worst).toBeGreaterThan(5e-4);
  });
});

describe.skipIf(kernels.length === 0).each(kernels)('bf16 Winograd convolutions on %s', (kernel) => {
  it('F(2x2,3x3) (stride 1, and conv1 by space to depth) with bf16 GEMMs within 1e-2; F(4x4,3x3) and F(2x2,5x5) keep fp32 GEMMs', () => {
    setCpuBf16Kernel(kernel);
    setCpuPrecision('bf16');
    // 'auto' takes F(4x4,3x3) and F(2x2,5x5), whose GEMMs stay fp32 in bf16 mode: fp32's errors.
    const auto: [string, ConvGeometry][] = [
      ['conv2-like F(2x2,5x5)', convGeometry([4, 32, 13, 13], [32, 16, 5, 5], { padding: 2, groups: 2 })],
      ['conv3-like F(4x4,3x3)', convGeometry([16, 24, 13, 13], [40, 24, 3, 3], { padding: 1 })], // batch 16: 256 tiles of 4x4
    ];
    auto.forEach(([label, g], i) => { for (const e of checkConv(g, 60 + 10 * i, `${kernel} ${label}`, null, 1e-4)) expect(e).toBeLessThan(1e-4); });
    for (const p of PASSES) setCpuConvAlgorithm(p, 'winograd2');
    const cases: [string, ConvGeometry][] = [
      ['conv1-like (space to depth)', convGeometry([2, 3, 59, 59], [16, 3, 11, 11], { stride: 4 })],
      ['conv3-like F(2x2,3x3)', convGeometry([16, 24, 13, 13], [40, 24, 3, 3], { padding: 1 })],
    ];
    let worst = 0;
    // The rounding falls on the transformed tiles (B^T x B, G f G^T), not on x and w: no rounded-input
    // reference; against fp32 inputs the transforms' amplification is stated instead.
    cases.forEach(([label, g], i) => { worst = Math.max(worst, ...checkConv(g, 80 + 10 * i, `${kernel} ${label}`, null, WINOGRAD_BF16_TOL)); });
    console.log(`bf16 Winograd convolutions on ${kernel}: largest relative error against fp32 inputs ${worst.toExponential(2)}`);
    expect(worst).toBeGreaterThan(5e-4);
  });
});
