/**
 * The conformance suite: one function over a backend, run with vitest. Every op of the Engine
 * interface runs on the backend and on the reference kernels (in float64) for random shapes and
 * the real AlexNet layer shapes (batch 1), with every output poisoned with NaN first so an element
 * the op never writes fails. Tolerance: norm-wise relative error < 1e-4 against float64 (exact for
 * integer outputs, dropout masks and uniform draws; 1e-6 for tanh, whose kernels are stated to within
 * a few float32 ulp, on inputs that saturate it and on tiny ones, where it is x). The reference's own backward kernels are checked
 * by finite differences in src/reference/gradcheck.test.ts, so passing here means every backward op of
 * the backend is a correct gradient too.
 *
 * The "NaN and ties" group holds every backend (the reference included) to hand-worked values, with
 * no reference kernel involved:
 * - NaN propagates, as in PyTorch: relu(NaN) = NaN; reluBackward gives 0 only where y <= 0, so the
 *   gradient passes where y is NaN; tanh(NaN) = NaN and tanh(±Infinity) = ±1 exactly, and
 *   tanhBackward = dy (1 - y²) is NaN where y or dy is (and where y = ±1 meets dy = ±Infinity); a max-pool window holding NaN outputs NaN with the first NaN (in
 *   row-major window order) as its argmax; a softmax row holding NaN is all NaN, and so is that row of
 *   the cross-entropy gradient, and the mean loss.
 * - topkCorrect ranks class j above the label t when z[j] > z[t], or z[j] = z[t] and j < t (a stable
 *   sort by descending score: ties go to the lower index, so an all-equal row counts only for labels
 *   below k); a NaN anywhere in a row makes that row wrong.
 *
 *   import { runConformanceSuite } from '@alexnet/tensor/conformance';
 *   runConformanceSuite('cpu');                  // in a *.test.ts file
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { ConvGeometry, DType, DeviceBuffer, Engine, LrnParams, PoolGeometry, SgdParams } from '../backend.js';
import { alexnetShapes, describeConv, describePool } from '../alexnet.js';
import { device, getBackend } from '../device.js';
import { convGeometry, poolGeometry } from '../geometry.js';
import * as R from '../reference/kernels.js';
import { FLOAT32_RTOL, relativeError, TestRng } from './compare.js';

export { relativeError, TestRng, FLOAT32_RTOL } from './compare.js';

export interface ConformanceOptions {
  /** Fail (instead of skip) when the backend is not available here. Default: process.env.CI is set. */
  required?: boolean;
  /** Include the real AlexNet layer shapes at batch 1 (default true). */
  alexnetShapes?: boolean;
  /** Random cases per op (default 4). */
  randomCases?: number;
  /** Norm-wise relative tolerance against float64 (default 1e-4). */
  rtol?: number;
}

type Arr = Float64Array | Int32Array;
interface BufSpec { dtype: 'float32' | 'int32'; data?: Arr; length?: number }
export interface Case {
  name: string;
  buffers: Record<string, BufSpec>;
  run(e: Engine, b: Record<string, DeviceBuffer>): void;
  reference(a: Record<string, Arr>): void;
  check: string[];
  exact?: boolean;
  rtol?: number;
}

const INT_POISON = -0x7fffffff;

function runCase(engine: Engine, c: Case, rtol: number): void {
  const bufs: Record<string, DeviceBuffer> = {};
  const host: Record<string, Arr> = {};
  try {
    for (const [name, spec] of Object.entries(c.buffers)) {
      const length = spec.data ? spec.data.length : spec.length!;
      const buf = engine.alloc(spec.dtype as DType, length);
      bufs[name] = buf;
      if (spec.data) {
        engine.write(buf, spec.dtype === 'float32' ? Float32Array.from(spec.data) : Int32Array.from(spec.data));
        host[name] = spec.data.slice();
      } else {
        engine.fill(buf, spec.dtype === 'float32' ? NaN : INT_POISON);
        host[name] = spec.dtype === 'float32' ? new Float64Array(length).fill(NaN) : new Int32Array(length).fill(INT_POISON);
      }
    }
    c.run(engine, bufs);
    const got: Record<string, ArrayLike<number>> = {};
    for (const name of c.check) got[name] = engine.readSync(bufs[name]!);
    c.reference(host);
    for (const name of c.check) {
      const { error, worst } = relativeError(got[name]!, host[name]!);
      const tol = c.exact || c.buffers[name]!.dtype === 'int32' ? 0 : c.rtol ?? rtol;
      if (!(error <= tol)) {
        throw new Error(`${c.name}: output ${name} differs from the float64 reference: relative error ${error.toExponential(3)} > ${tol}` +
          (worst >= 0 ? ` (element ${worst}: got ${got[name]![worst]}, expected ${host[name]![worst]})` : ''));
      }
    }
  } finally {
    for (const b of Object.values(bufs)) engine.free(b);
  }
}

const f = (a: Arr) => a as Float64Array;
const i32 = (a: Arr) => a as Int32Array;

/** The geometry of a square-padded, square-strided convolution (the random cases). */
function convOut(n: number, c: number, h: number, w: number, k: number, r: number, s: number,
  stride: number, pad: number, groups: number): ConvGeometry {
  return convGeometry([n, c, h, w], [k, c / groups, r, s], { stride, padding: pad, groups });
}

function convCases(rng: TestRng, g: ConvGeometry, label: string): Case[] {
  const xs = g.n * g.c * g.h * g.w, ws = g.k * (g.c / g.groups) * g.r * g.s, ys = g.n * g.k * g.outH * g.outW;
  const x = rng.floats(xs), w = rng.floats(ws, 0.1), bias = rng.floats(g.k), dy = rng.floats(ys), dw0 = rng.floats(ws), db0 = rng.floats(g.k);
  return [
    { name: `conv2dForward ${label}`, buffers: { x: { dtype: 'float32', data: x }, w: { dtype: 'float32', data: w }, b: { dtype: 'float32', data: bias }, y: { dtype: 'float32', length: ys } },
      run: (e, b) => e.conv2dForward(b.x!, b.w!, b.b!, b.y!, g), reference: (a) => R.conv2dForward(f(a.x!), f(a.w!), f(a.b!), f(a.y!), g), check: ['y'] },
    { name: `conv2dBackwardData ${label}`, buffers: { dy: { dtype: 'float32', data: dy }, w: { dtype: 'float32', data: w }, dx: { dtype: 'float32', length: xs } },
      run: (e, b) => e.conv2dBackwardData(b.dy!, b.w!, b.dx!, g), reference: (a) => R.conv2dBackwardData(f(a.dy!), f(a.w!), f(a.dx!), g), check: ['dx'] },
    { name: `conv2dBackwardFilter ${label}`, buffers: { x: { dtype: 'float32', data: x }, dy: { dtype: 'float32', data: dy }, dw: { dtype: 'float32', length: ws }, db: { dtype: 'float32', length: g.k } },
      run: (e, b) => e.conv2dBackwardFilter(b.x!, b.dy!, b.dw!, b.db!, g, 0), reference: (a) => R.conv2dBackwardFilter(f(a.x!), f(a.dy!), f(a.dw!), f(a.db!), g, 0), check: ['dw', 'db'] },
    { name: `conv2dBackwardFilter accumulate ${label}`, buffers: { x: { dtype: 'float32', data: x }, dy: { dtype: 'float32', data: dy }, dw: { dtype: 'float32', data: dw0 }, db: { dtype: 'float32', data: db0 } },
      run: (e, b) => e.conv2dBackwardFilter(b.x!, b.dy!, b.dw!, b.db!, g, 1), reference: (a) => R.conv2dBackwardFilter(f(a.x!), f(a.dy!), f(a.dw!), f(a.db!), g, 1), check: ['dw', 'db'] },
  ];
}

function gemmCase(rng: TestRng, tA: boolean, tB: boolean, m: number, n: number, k: number, alpha: number, beta: number, label = ''): Case {
  const a = rng.floats(m * k), b = rng.floats(k * n), c0 = rng.floats(m * n);
  const cSpec: BufSpec = beta === 0 ? { dtype: 'float32', length: m * n } : { dtype: 'float32', data: c0 };
  return {
    name: `gemm ${tA ? 'T' : 'N'}${tB ? 'T' : 'N'} ${m}x${n}x${k} alpha=${alpha} beta=${beta} ${label}`,
    buffers: { a: { dtype: 'float32', data: a }, b: { dtype: 'float32', data: b }, c: cSpec },
    run: (e, bf) => e.gemm(tA, tB, m, n, k, alpha, bf.a!, bf.b!, beta, bf.c!),
    reference: (h) => R.gemm(tA, tB, m, n, k, alpha, f(h.a!), f(h.b!), beta, f(h.c!)),
    check: ['c'],
  };
}

function lrnCases(rng: TestRng, n: number, c: number, hw: number, p: LrnParams, label: string): Case[] {
  // Post-ReLU-like magnitudes (§3.3 follows ReLU), large enough that the normaliser matters.
  const x = rng.floats(n * c * hw, 20), dy = rng.floats(n * c * hw);
  const y = new Float64Array(x.length);
  R.lrnForward(x, y, p, n, c, hw);
  const y32 = Float64Array.from(Float32Array.from(y));
  return [
    { name: `lrnForward ${label}`, buffers: { x: { dtype: 'float32', data: x }, y: { dtype: 'float32', length: x.length } },
      run: (e, b) => e.lrnForward(b.x!, b.y!, p, n, c, hw), reference: (a) => R.lrnForward(f(a.x!), f(a.y!), p, n, c, hw), check: ['y'] },
    { name: `lrnBackward ${label}`, buffers: { x: { dtype: 'float32', data: x }, y: { dtype: 'float32', data: y32 }, dy: { dtype: 'float32', data: dy }, dx: { dtype: 'float32', length: x.length } },
      run: (e, b) => e.lrnBackward(b.x!, b.y!, b.dy!, b.dx!, p, n, c, hw), reference: (a) => R.lrnBackward(f(a.x!), f(a.y!), f(a.dy!), f(a.dx!), p, n, c, hw), check: ['dx'] },
  ];
}

function poolCases(rng: TestRng, g: PoolGeometry, label: string): Case[] {
  const xs = g.n * g.c * g.h * g.w, ys = g.n * g.c * g.outH * g.outW;
  const x = rng.floats(xs);
  const y = new Float64Array(ys), am = new Int32Array(ys);
  R.maxPoolForward(x, y, am, g);
  const dy = rng.floats(ys);
  return [
    { name: `maxPoolForward ${label}`, buffers: { x: { dtype: 'float32', data: x }, y: { dtype: 'float32', length: ys }, argmax: { dtype: 'int32', length: ys } },
      run: (e, b) => e.maxPoolForward(b.x!, b.y!, b.argmax!, g), reference: (a) => R.maxPoolForward(f(a.x!), f(a.y!), i32(a.argmax!), g), check: ['y', 'argmax'], exact: true },
    { name: `maxPoolBackward ${label}`, buffers: { dy: { dtype: 'float32', data: dy }, argmax: { dtype: 'int32', data: am }, dx: { dtype: 'float32', length: xs } },
      run: (e, b) => e.maxPoolBackward(b.dy!, b.argmax!, b.dx!, g), reference: (a) => R.maxPoolBackward(f(a.dy!), i32(a.argmax!), f(a.dx!), g), check: ['dx'] },
  ];
}

function poolGeom(n: number, c: number, h: number, w: number, k: number, s: number, pad = 0): PoolGeometry {
  return poolGeometry([n, c, h, w], { size: k, stride: s, padding: pad });
}

function elementwiseCases(rng: TestRng, len: number, label: string): Case[] {
  const x = rng.floats(len), y0 = rng.floats(len), dy = rng.floats(len);
  const relu = Float64Array.from(x, (v) => Math.max(0, v));
  const cases: Case[] = [
    { name: `reluForward ${label}`, buffers: { x: { dtype: 'float32', data: x }, y: { dtype: 'float32', length: len } },
      run: (e, b) => e.reluForward(b.x!, b.y!), reference: (a) => R.reluForward(f(a.x!), f(a.y!)), check: ['y'], exact: true },
    { name: `reluForward in place ${label}`, buffers: { x: { dtype: 'float32', data: x } },
      run: (e, b) => e.reluForward(b.x!, b.x!), reference: (a) => R.reluForward(f(a.x!), f(a.x!)), check: ['x'], exact: true },
    { name: `reluBackward ${label}`, buffers: { y: { dtype: 'float32', data: relu }, dy: { dtype: 'float32', data: dy }, dx: { dtype: 'float32', length: len } },
      run: (e, b) => e.reluBackward(b.y!, b.dy!, b.dx!), reference: (a) => R.reluBackward(f(a.y!), f(a.dy!), f(a.dx!)), check: ['dx'], exact: true },
    { name: `axpy ${label}`, buffers: { x: { dtype: 'float32', data: x }, y: { dtype: 'float32', data: y0 } },
      run: (e, b) => e.axpy(-0.75, b.x!, b.y!), reference: (a) => { const xa = f(a.x!), ya = f(a.y!); for (let i = 0; i < len; i++) ya[i] = ya[i]! - 0.75 * xa[i]!; }, check: ['y'] },
    { name: `scale ${label}`, buffers: { x: { dtype: 'float32', data: x } },
      run: (e, b) => e.scale(0.3, b.x!), reference: (a) => { const xa = f(a.x!); for (let i = 0; i < len; i++) xa[i] = 0.3 * xa[i]!; }, check: ['x'] },
    { name: `add ${label}`, buffers: { x: { dtype: 'float32', data: x }, y: { dtype: 'float32', data: y0 }, o: { dtype: 'float32', length: len } },
      run: (e, b) => e.add(b.x!, b.y!, b.o!), reference: (a) => { const o = f(a.o!); for (let i = 0; i < len; i++) o[i] = f(a.x!)[i]! + f(a.y!)[i]!; }, check: ['o'] },
    { name: `fill ${label}`, buffers: { o: { dtype: 'float32', length: len } },
      run: (e, b) => e.fill(b.o!, 2.5), reference: (a) => f(a.o!).fill(2.5), check: ['o'], exact: true },
    { name: `copy ${label}`, buffers: { x: { dtype: 'float32', data: x }, o: { dtype: 'float32', data: y0 } },
      run: (e, b) => e.copy(b.x!, 1, b.o!, 0, len - 1), reference: (a) => f(a.o!).set(f(a.x!).subarray(1), 0), check: ['o'], exact: true },
  ];
  for (const p of [0.5, 0.1]) {
    const seed = rng.int(0, 1e9), offset = rng.int(0, 1e6);
    cases.push(
      { name: `dropoutForward p=${p} ${label}`, buffers: { x: { dtype: 'float32', data: x }, y: { dtype: 'float32', length: len } },
        run: (e, b) => e.dropoutForward(b.x!, b.y!, p, seed, offset), reference: (a) => R.dropoutForward(f(a.x!), f(a.y!), p, seed, offset), check: ['y'], rtol: 1e-6 },
      { name: `dropoutBackward p=${p} ${label}`, buffers: { dy: { dtype: 'float32', data: dy }, dx: { dtype: 'float32', length: len } },
        run: (e, b) => e.dropoutBackward(b.dy!, b.dx!, p, seed, offset), reference: (a) => R.dropoutBackward(f(a.dy!), f(a.dx!), p, seed, offset), check: ['dx'], rtol: 1e-6 },
    );
  }
  const seed = rng.int(0, 2 ** 40), offset = rng.int(0, 2 ** 33);
  cases.push(
    { name: `random uniform ${label}`, buffers: { o: { dtype: 'float32', length: len } },
      run: (e, b) => e.random(b.o!, 'uniform', seed, offset, -2, 3), reference: (a) => R.random(f(a.o!), 'uniform', seed, offset, -2, 3), check: ['o'], rtol: 1e-7 },
    { name: `random normal ${label}`, buffers: { o: { dtype: 'float32', length: len } },
      run: (e, b) => e.random(b.o!, 'normal', seed, offset, 0.5, 0.01), reference: (a) => R.random(f(a.o!), 'normal', seed, offset, 0.5, 0.01), check: ['o'], rtol: 1e-6 },
  );
  for (const form of ['paper', 'pytorch'] as const) {
    const p: SgdParams = { lr: 0.01, momentum: 0.9, weightDecay: 0.0005, form };
    const w = rng.floats(len), g = rng.floats(len), v = rng.floats(len, 0.01);
    cases.push({ name: `sgdUpdate ${form} ${label}`, buffers: { w: { dtype: 'float32', data: w }, g: { dtype: 'float32', data: g }, v: { dtype: 'float32', data: v } },
      run: (e, b) => e.sgdUpdate(b.w!, b.g!, b.v!, p), reference: (a) => R.sgdUpdate(f(a.w!), f(a.g!), f(a.v!), p), check: ['w', 'v'], rtol: 1e-6 });
  }
  return cases;
}

/** Norm-wise tolerance of the tanh cases: the kernels are within a few float32 ulp of tanh (CPU 1.5e-7 relative). */
const TANH_RTOL = 1e-6;

/**
 * tanh forward (also in place) and backward (§3.1, Figure 1) over `len` elements: |x| < 3 (both sides
 * of the CPU kernel's switch at 0.625), |x| up to 30 (saturated: tanh = ±1 in float32 from 9.01), and
 * |x| < 1e-3 (tanh(x) = x to within float32; the norm-wise error is then relative to those values).
 */
function tanhCases(rng: TestRng, len: number, label: string): Case[] {
  const cases: Case[] = [];
  for (const [range, scale] of [['', 3], [' saturating', 30], [' tiny', 1e-3]] as const) {
    const x = rng.floats(len, scale), dy = rng.floats(len);
    const y = Float64Array.from(Float32Array.from(x, Math.tanh)); // the float32 output backward is given
    cases.push(
      { name: `tanhForward${range} ${label}`, buffers: { x: { dtype: 'float32', data: x }, y: { dtype: 'float32', length: len } },
        run: (e, b) => e.tanhForward(b.x!, b.y!), reference: (a) => R.tanhForward(f(a.x!), f(a.y!)), check: ['y'], rtol: TANH_RTOL },
      { name: `tanhBackward${range} ${label}`, buffers: { y: { dtype: 'float32', data: y }, dy: { dtype: 'float32', data: dy }, dx: { dtype: 'float32', length: len } },
        run: (e, b) => e.tanhBackward(b.y!, b.dy!, b.dx!), reference: (a) => R.tanhBackward(f(a.y!), f(a.dy!), f(a.dx!)), check: ['dx'], rtol: TANH_RTOL },
    );
    if (range === '') {
      cases.push(
        { name: `tanhForward in place ${label}`, buffers: { x: { dtype: 'float32', data: x } },
          run: (e, b) => e.tanhForward(b.x!, b.x!), reference: (a) => R.tanhForward(f(a.x!), f(a.x!)), check: ['x'], rtol: TANH_RTOL },
        { name: `tanhBackward in place ${label}`, buffers: { y: { dtype: 'float32', data: y }, dy: { dtype: 'float32', data: dy } },
          run: (e, b) => e.tanhBackward(b.y!, b.dy!, b.dy!), reference: (a) => R.tanhBackward(f(a.y!), f(a.dy!), f(a.dy!)), check: ['dy'], rtol: TANH_RTOL },
      );
    }
  }
  return cases;
}

function lossCases(rng: TestRng, n: number, c: number, label: string): Case[] {
  const logits = rng.floats(n * c, 8);
  const labels = Int32Array.from({ length: n }, () => rng.int(0, c - 1));
  return [
    { name: `softmaxCrossEntropy ${label}`, buffers: { x: { dtype: 'float32', data: logits }, l: { dtype: 'int32', data: labels }, loss: { dtype: 'float32', length: 1 }, dx: { dtype: 'float32', length: n * c } },
      run: (e, b) => e.softmaxCrossEntropy(b.x!, b.l!, b.loss!, b.dx!, n, c), reference: (a) => R.softmaxCrossEntropy(f(a.x!), i32(a.l!), f(a.loss!), f(a.dx!), n, c), check: ['loss', 'dx'] },
    { name: `softmaxCrossEntropy without grad ${label}`, buffers: { x: { dtype: 'float32', data: logits }, l: { dtype: 'int32', data: labels }, loss: { dtype: 'float32', length: 1 } },
      run: (e, b) => e.softmaxCrossEntropy(b.x!, b.l!, b.loss!, null, n, c), reference: (a) => R.softmaxCrossEntropy(f(a.x!), i32(a.l!), f(a.loss!), null, n, c), check: ['loss'] },
    { name: `softmax ${label}`, buffers: { x: { dtype: 'float32', data: logits }, y: { dtype: 'float32', length: n * c } },
      run: (e, b) => e.softmax(b.x!, b.y!, n, c), reference: (a) => R.softmax(f(a.x!), f(a.y!), n, c), check: ['y'] },
    ...[1, Math.min(5, c)].map((k): Case => ({ name: `topkCorrect k=${k} ${label}`, buffers: { x: { dtype: 'float32', data: logits }, l: { dtype: 'int32', data: labels }, o: { dtype: 'int32', length: 1 } },
      run: (e, b) => e.topkCorrect(b.x!, b.l!, b.o!, n, c, k), reference: (a) => R.topkCorrect(f(a.x!), i32(a.l!), i32(a.o!), n, c, k), check: ['o'] })),
  ];
}

function layoutCases(rng: TestRng, n: number, c: number, hw: number, label: string): Case[] {
  const src = rng.floats(n * c * hw), dst = rng.floats(n * (c + 3) * hw), dy = rng.floats(n * c * hw), db0 = rng.floats(c);
  const bias = rng.floats(c), y0 = rng.floats(n * c * hw);
  const count = Math.max(1, c - 1);
  return [
    { name: `channelCopy ${label}`, buffers: { s: { dtype: 'float32', data: src }, d: { dtype: 'float32', data: dst } },
      run: (e, b) => e.channelCopy(b.s!, b.d!, n, hw, c, 1 % c === 0 ? 0 : c - count, c + 3, 2, count),
      reference: (a) => R.channelCopy(f(a.s!), f(a.d!), n, hw, c, 1 % c === 0 ? 0 : c - count, c + 3, 2, count), check: ['d'], exact: true },
    { name: `biasAdd ${label}`, buffers: { y: { dtype: 'float32', data: y0 }, b: { dtype: 'float32', data: bias } },
      run: (e, b) => e.biasAdd(b.y!, b.b!, n, c, hw), reference: (a) => R.biasAdd(f(a.y!), f(a.b!), n, c, hw), check: ['y'] },
    { name: `biasGrad ${label}`, buffers: { dy: { dtype: 'float32', data: dy }, db: { dtype: 'float32', length: c } },
      run: (e, b) => e.biasGrad(b.dy!, b.db!, n, c, hw, 0), reference: (a) => R.biasGrad(f(a.dy!), f(a.db!), n, c, hw, 0), check: ['db'] },
    { name: `biasGrad accumulate ${label}`, buffers: { dy: { dtype: 'float32', data: dy }, db: { dtype: 'float32', data: db0 } },
      run: (e, b) => e.biasGrad(b.dy!, b.db!, n, c, hw, 1), reference: (a) => R.biasGrad(f(a.dy!), f(a.db!), n, c, hw, 1), check: ['db'] },
  ];
}

/**
 * NaN inputs and ties, with hand-worked expected values (written out below, not computed by the
 * reference kernels), so the reference is held to them like any other backend.
 */
export function nanAndTieCases(rng: TestRng): Case[] {
  const cases: Case[] = [];
  const set = (values: number[]) => (a: Arr) => { a.set(values); };
  // relu forward and backward (§3.1), small by hand and long with NaN sprinkled (every vector lane).
  const rx = [1, -1, NaN, 0, -0, 2.5, NaN, -Infinity, Infinity];
  const ry = [1, 0, NaN, 0, 0, 2.5, NaN, 0, Infinity];
  cases.push(
    { name: 'reluForward NaN by hand', buffers: { x: { dtype: 'float32', data: Float64Array.from(rx) }, y: { dtype: 'float32', length: rx.length } },
      run: (e, b) => e.reluForward(b.x!, b.y!), reference: (a) => set(ry)(a.y!), check: ['y'], exact: true },
    { name: 'reluBackward NaN by hand', buffers: {
      y: { dtype: 'float32', data: Float64Array.of(1, 0, NaN, -0, 2, NaN, -1, NaN) },
      dy: { dtype: 'float32', data: Float64Array.of(0.5, 0.5, 0.5, 0.5, NaN, NaN, NaN, -3) },
      dx: { dtype: 'float32', length: 8 } },
    run: (e, b) => e.reluBackward(b.y!, b.dy!, b.dx!), reference: (a) => set([0.5, 0, 0.5, 0, NaN, NaN, 0, -3])(a.dx!), check: ['dx'], exact: true },
  );
  const len = 5000, x = rng.floats(len), dy = rng.floats(len);
  for (let i = 0; i < len; i += 1 + rng.int(0, 40)) x[i] = NaN;
  cases.push(
    { name: `reluForward NaN sprinkled [${len}]`, buffers: { x: { dtype: 'float32', data: x }, y: { dtype: 'float32', length: len } },
      run: (e, b) => e.reluForward(b.x!, b.y!), reference: (a) => set(Array.from(x, (v) => (Number.isNaN(v) ? NaN : Math.max(v, 0))))(a.y!), check: ['y'], exact: true },
    { name: `reluBackward NaN sprinkled [${len}]`, buffers: { y: { dtype: 'float32', data: x }, dy: { dtype: 'float32', data: dy }, dx: { dtype: 'float32', length: len } },
      run: (e, b) => e.reluBackward(b.y!, b.dy!, b.dx!), reference: (a) => set(Array.from(x, (v, i) => (v <= 0 ? 0 : dy[i]!)))(a.dx!), check: ['dx'], exact: true },
  );
  // tanh (§3.1, Figure 1): NaN stays NaN, ±Infinity and |x| >= 10 give exactly ±1, ±0 give ±0;
  // backward dy (1 - y²) by hand (1.5 * 0.5 = 0.75: exact), NaN from y or dy, and 0 * Infinity.
  const big = 3.4028234663852886e38; // the largest float32
  cases.push(
    { name: 'tanhForward NaN, Infinity and saturation by hand', buffers: {
      x: { dtype: 'float32', data: Float64Array.of(NaN, Infinity, -Infinity, 0, -0, 10, -10, 20, -20, 88, -1e10, big, -big, NaN) },
      y: { dtype: 'float32', length: 14 } },
    run: (e, b) => e.tanhForward(b.x!, b.y!), reference: (a) => set([NaN, 1, -1, 0, -0, 1, -1, 1, -1, 1, -1, 1, -1, NaN])(a.y!), check: ['y'], exact: true },
    { name: 'tanhBackward NaN by hand', buffers: {
      y: { dtype: 'float32', data: Float64Array.of(1, -1, 0, NaN, 0.5, -0.5, 1, NaN, -0) },
      dy: { dtype: 'float32', data: Float64Array.of(3, 3, 2, 1, NaN, 4, Infinity, NaN, -2) },
      dx: { dtype: 'float32', length: 9 } },
    run: (e, b) => e.tanhBackward(b.y!, b.dy!, b.dx!), reference: (a) => set([0, 0, 2, NaN, NaN, 3, NaN, NaN, -2])(a.dx!), check: ['dx'], exact: true },
  );
  // Tiny |x|, float32's smallest normal and subnormals among them: tanh(x) = x to within rounding. One
  // value per case (37 copies: every vector lane and a remainder), so the norm-wise error is relative to it.
  for (const v of [1e-30, -1e-30, 2 ** -126, -(2 ** -126), 2 ** -149, 1e-40, -3e-39, 1e-20, 2 ** -60, 2 ** -13, -3e-5]) {
    const t = Math.fround(v), tv = new Float64Array(37).fill(t);
    cases.push({ name: `tanhForward tiny x = ${t} by hand`, buffers: { x: { dtype: 'float32', data: tv }, y: { dtype: 'float32', length: 37 } },
      run: (e, b) => e.tanhForward(b.x!, b.y!), reference: (a) => f(a.y!).fill(Math.tanh(t)), check: ['y'], rtol: TANH_RTOL });
  }
  {
    const tx = rng.floats(len, 12), tdy = rng.floats(len), ty = rng.floats(len);
    for (let i = 0; i < len; i += 1 + rng.int(0, 40)) tx[i] = NaN;
    for (let i = 0; i < len; i += 1 + rng.int(0, 40)) ty[i] = NaN;
    cases.push(
      { name: `tanhForward NaN sprinkled [${len}]`, buffers: { x: { dtype: 'float32', data: tx }, y: { dtype: 'float32', length: len } },
        run: (e, b) => e.tanhForward(b.x!, b.y!), reference: (a) => set(Array.from(tx, Math.tanh))(a.y!), check: ['y'], rtol: TANH_RTOL },
      { name: `tanhBackward NaN sprinkled [${len}]`, buffers: { y: { dtype: 'float32', data: ty }, dy: { dtype: 'float32', data: tdy }, dx: { dtype: 'float32', length: len } },
        run: (e, b) => e.tanhBackward(b.y!, b.dy!, b.dx!), reference: (a) => set(Array.from(ty, (v, i) => tdy[i]! * (1 - v * v)))(a.dx!), check: ['dx'], rtol: TANH_RTOL },
    );
  }
  // Max-pool (§3.4) of one 4x4 plane, worked by hand for 2x2/2 and for 3x3/2 padded by 1.
  const px = [1, NaN, 3, 4, 5, 6, NaN, NaN, -1, -2, -3, -4, NaN, -9, -8, -7];
  const pools: [string, PoolGeometry, number[], number[]][] = [
    ['2x2/2', poolGeom(1, 1, 4, 4, 2, 2), [NaN, NaN, NaN, -3], [1, 6, 12, 10]],
    ['3x3/2 pad 1', poolGeom(1, 1, 4, 4, 3, 2, 1), [NaN, NaN, NaN, NaN], [1, 1, 12, 6]],
  ];
  for (const [label, g, y, am] of pools) {
    cases.push({ name: `maxPoolForward NaN by hand ${label}`, buffers: { x: { dtype: 'float32', data: Float64Array.from(px) }, y: { dtype: 'float32', length: 4 }, argmax: { dtype: 'int32', length: 4 } },
      run: (e, b) => e.maxPoolForward(b.x!, b.y!, b.argmax!, g), reference: (a) => { set(y)(a.y!); set(am)(a.argmax!); }, check: ['y', 'argmax'], exact: true });
  }
  // Backward through those argmax: dy [1, 2, 4, 8] lands on cells 1 (1 + 2), 12 (4) and 6 (8).
  cases.push({ name: 'maxPoolBackward to NaN winners by hand', buffers: { dy: { dtype: 'float32', data: Float64Array.of(1, 2, 4, 8) }, argmax: { dtype: 'int32', data: Int32Array.of(1, 1, 12, 6) }, dx: { dtype: 'float32', length: 16 } },
    run: (e, b) => e.maxPoolBackward(b.dy!, b.argmax!, b.dx!, pools[1]![1]), reference: (a) => set([0, 3, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 4, 0, 0, 0])(a.dx!), check: ['dx'], exact: true });
  // Many planes and a wide row (every vector lane of the CPU kernels): NaN in some windows only. The
  // expected values are a direct scan of each window with the rule above.
  const bg = poolGeom(2, 3, 11, 37, 3, 2);
  const bx = rng.floats(bg.n * bg.c * bg.h * bg.w);
  for (let i = 0; i < bx.length; i += 1 + rng.int(0, 60)) bx[i] = NaN;
  const by: number[] = [], bam: number[] = [];
  for (let pl = 0; pl < bg.n * bg.c; pl++) for (let oy = 0; oy < bg.outH; oy++) for (let ox = 0; ox < bg.outW; ox++) {
    let best = NaN, arg = -1;
    for (let ky = 0; ky < 3 && arg < 0; ky++) for (let kx = 0; kx < 3; kx++) { // the first NaN, if any
      const idx = (oy * 2 + ky) * bg.w + ox * 2 + kx;
      if (Number.isNaN(bx[pl * bg.h * bg.w + idx]!)) { arg = idx; break; }
    }
    if (arg < 0) {
      best = -Infinity;
      for (let ky = 0; ky < 3; ky++) for (let kx = 0; kx < 3; kx++) {
        const idx = (oy * 2 + ky) * bg.w + ox * 2 + kx, v = bx[pl * bg.h * bg.w + idx]!;
        if (v > best) { best = v; arg = idx; }
      }
    }
    by.push(best); bam.push(arg);
  }
  cases.push({ name: 'maxPoolForward NaN sprinkled [2,3,11,37] 3/2', buffers: { x: { dtype: 'float32', data: bx }, y: { dtype: 'float32', length: by.length }, argmax: { dtype: 'int32', length: by.length } },
    run: (e, b) => e.maxPoolForward(b.x!, b.y!, b.argmax!, bg), reference: (a) => { set(by)(a.y!); set(bam)(a.argmax!); }, check: ['y', 'argmax'], exact: true });
  // Ties: values from {0, 1, 2, 3}, so most windows hold equal maxima; the first in the window's
  // row-major order wins (as PyTorch's CPU kernel: a later cell replaces only when larger). 3/2 and
  // 2/2 on wide rows (every vector lane, and a partial last vector).
  for (const tg of [poolGeom(2, 3, 11, 37, 3, 2), poolGeom(1, 2, 9, 70, 2, 2), poolGeom(1, 2, 7, 55, 3, 2)]) {
    const tx = Float64Array.from({ length: tg.n * tg.c * tg.h * tg.w }, () => rng.int(0, 3));
    const ty: number[] = [], tam: number[] = [];
    for (let pl = 0; pl < tg.n * tg.c; pl++) for (let oy = 0; oy < tg.outH; oy++) for (let ox = 0; ox < tg.outW; ox++) {
      let best = -Infinity, arg = -1;
      for (let ky = 0; ky < tg.kh; ky++) for (let kx = 0; kx < tg.kw; kx++) {
        const idx = (oy * tg.strideH + ky) * tg.w + ox * tg.strideW + kx, v = tx[pl * tg.h * tg.w + idx]!;
        if (arg < 0 || v > best) { best = v; arg = idx; }
      }
      ty.push(best); tam.push(arg);
    }
    cases.push({ name: `maxPoolForward ties [${tg.n},${tg.c},${tg.h},${tg.w}] ${tg.kh}/${tg.strideH}`, buffers: { x: { dtype: 'float32', data: tx }, y: { dtype: 'float32', length: ty.length }, argmax: { dtype: 'int32', length: ty.length } },
      run: (e, b) => e.maxPoolForward(b.x!, b.y!, b.argmax!, tg), reference: (a) => { set(ty)(a.y!); set(tam)(a.argmax!); }, check: ['y', 'argmax'], exact: true });
  }
  // Softmax and cross-entropy: a NaN row is NaN throughout; the other rows are unaffected.
  const sx = [0, Math.log(2), Math.log(3), 1, NaN, 2, -1, -1, -1];
  const sy = [1 / 6, 1 / 3, 1 / 2, NaN, NaN, NaN, 1 / 3, 1 / 3, 1 / 3];
  const sl = Int32Array.of(2, 0, 1);
  const sd = [1 / 18, 1 / 9, -1 / 6, NaN, NaN, NaN, 1 / 9, -2 / 9, 1 / 9];
  cases.push(
    { name: 'softmax NaN row by hand', buffers: { x: { dtype: 'float32', data: Float64Array.from(sx) }, y: { dtype: 'float32', length: 9 } },
      run: (e, b) => e.softmax(b.x!, b.y!, 3, 3), reference: (a) => set(sy)(a.y!), check: ['y'] },
    { name: 'softmaxCrossEntropy NaN row by hand', buffers: { x: { dtype: 'float32', data: Float64Array.from(sx) }, l: { dtype: 'int32', data: sl }, loss: { dtype: 'float32', length: 1 }, dx: { dtype: 'float32', length: 9 } },
      run: (e, b) => e.softmaxCrossEntropy(b.x!, b.l!, b.loss!, b.dx!, 3, 3), reference: (a) => { set([NaN])(a.loss!); set(sd)(a.dx!); }, check: ['loss', 'dx'] },
  );
  // topkCorrect, 4 classes: [logits, label, rank of the label (Infinity: never counted)].
  const rows: [number[], number, number][] = [
    [[1, 2, 3, 4], 3, 0],
    [[5, 5, 5, 5], 0, 0], // all equal: the label's rank is its index
    [[5, 5, 5, 5], 2, 2],
    [[1, NaN, 0, 0], 0, Infinity], // NaN anywhere: wrong
    [[NaN, NaN, NaN, NaN], 1, Infinity],
    [[0, 7, 7, 1], 2, 1], // tie with a lower index ranks above
    [[0, 7, 7, 1], 1, 0],
    [[-Infinity, -Infinity, 3, -Infinity], 0, 1],
    [[-Infinity, -Infinity, 3, -Infinity], 3, 3],
    [[Infinity, 1, 2, 3], 0, 0],
    [[1, 1, 2, 2], 3, 1],
    [[0, 0, 0, 0], 4, Infinity], // label outside [0, c)
  ];
  const tz = Float64Array.from(rows.flatMap(([z]) => z)), tl = Int32Array.from(rows, ([, l]) => l);
  for (const k of [1, 2, 3, 4, 5]) {
    cases.push({ name: `topkCorrect ties and NaN by hand k=${k}`, buffers: { x: { dtype: 'float32', data: tz }, l: { dtype: 'int32', data: tl }, o: { dtype: 'int32', length: 1 } },
      run: (e, b) => e.topkCorrect(b.x!, b.l!, b.o!, rows.length, 4, k), reference: (a) => set([rows.filter(([, , r]) => r < k).length])(a.o!), check: ['o'] });
  }
  // 1000 equal logits (ties across every thread of a CUDA block): label t has rank t.
  const eq = new Float64Array(3 * 1000).fill(0.25), eqL = Int32Array.of(0, 700, 999);
  eq[2 * 1000 + 500] = NaN;
  for (const k of [1, 700, 701, 1000]) {
    cases.push({ name: `topkCorrect 1000 equal logits k=${k}`, buffers: { x: { dtype: 'float32', data: eq }, l: { dtype: 'int32', data: eqL }, o: { dtype: 'int32', length: 1 } },
      run: (e, b) => e.topkCorrect(b.x!, b.l!, b.o!, 3, 1000, k), reference: (a) => set([1 + (k > 700 ? 1 : 0)])(a.o!), check: ['o'] });
  }
  return cases;
}

/** Runs cases on `engine`; returns the failures (empty when every case matches). */
export function checkCases(engine: Engine, cases: Case[], rtol = FLOAT32_RTOL): string[] {
  const failures: string[] = [];
  for (const c of cases) {
    try { runCase(engine, c, rtol); } catch (err) { failures.push((err as Error).message); }
  }
  return failures;
}

/**
 * The AlexNet layer shapes (§3, Figure 2; ../alexnet.ts, which @alexnet/layers checks against its
 * description of the net) at batch 1 on 227 x 227 inputs; the fully connected layers at batch 2.
 */
export function alexnetCases(rng: TestRng): Case[] {
  const { conv, lrn, pool, fc } = alexnetShapes(1);
  const byName = <T extends { name: string }>(list: T[], name: string) => list.find((l) => l.name === name)!;
  const [fc6, fc7, fc8] = [byName(fc, 'fc6'), byName(fc, 'fc7'), byName(fc, 'fc8')];
  const conv3 = byName(conv, 'conv3').geometry;
  return [
    ...conv.flatMap(({ name, geometry }) => convCases(rng, geometry, describeConv(name, geometry))),
    ...lrn.flatMap((l) => lrnCases(rng, l.n, l.c, l.hw, l.params, `${l.name} [${l.n},${l.c},${l.hw}]`)),
    ...pool.flatMap(({ name, geometry }) => poolCases(rng, geometry, describePool(name, geometry))),
    gemmCase(rng, false, true, 2, fc6.out, fc6.in, 1, 0, 'fc6 forward'),
    gemmCase(rng, false, false, 2, fc6.in, fc6.out, 1, 0, 'fc6 backward data'),
    gemmCase(rng, true, false, fc6.out, fc6.in, 2, 1, 1, 'fc6 backward weights'),
    gemmCase(rng, false, true, 2, fc7.out, fc7.in, 1, 0, 'fc7 forward'),
    gemmCase(rng, false, true, 2, fc8.out, fc8.in, 1, 0, 'fc8 forward'),
    ...lossCases(rng, 2, fc8.out, `fc8 [2,${fc8.out}]`),
    ...elementwiseCases(rng, 2 * fc6.out, `fc6 [2,${fc6.out}]`),
    // tanh in place of every ReLU (Figure 1's comparison): each conv layer's output, and fc6 / fc7 at batch 2.
    ...conv.flatMap(({ name, geometry: g }) => tanhCases(rng, g.n * g.k * g.outH * g.outW, `${name} output [${g.n},${g.k},${g.outH},${g.outW}]`)),
    ...[fc6, fc7].flatMap((l) => tanhCases(rng, 2 * l.out, `${l.name} [2,${l.out}]`)),
    ...layoutCases(rng, 2, conv3.c / 2, conv3.h * conv3.w, `conv3 halves [2,${conv3.c / 2},${conv3.h},${conv3.w}]`),
  ];
}

/**
 * Stride-1 3x3 and 5x5 convolutions with at least 16 channels per group in and out: the shapes for which
 * an engine may pick a fast algorithm (the CPU engine's Winograd F(4x4,3x3), F(2x2,3x3), F(2x2,5x5)),
 * with every padding up to r - 1, groups, odd and uneven planes, and batches of several tile chunks.
 */
export function stride1ConvCases(rng: TestRng): Case[] {
  const shapes: [number[], number[], { padding: number; groups?: number }][] = [
    [[2, 32, 13, 13], [32, 32, 3, 3], { padding: 1 }],
    [[3, 32, 9, 11], [32, 16, 3, 3], { padding: 0, groups: 2 }],
    [[2, 16, 7, 6], [16, 16, 3, 3], { padding: 2 }],
    [[9, 16, 13, 13], [24, 16, 3, 3], { padding: 1 }],
    [[2, 32, 12, 12], [32, 16, 5, 5], { padding: 2, groups: 2 }],
    [[2, 16, 9, 7], [16, 16, 5, 5], { padding: 4 }],
    [[3, 16, 8, 9], [16, 16, 5, 5], { padding: 1 }],
  ];
  return shapes.flatMap(([x, w, o]) => {
    const g = convGeometry(x, w, { stride: 1, ...o });
    return convCases(rng, g, `stride 1 [${x.join(',')}] k=${w[0]} ${w[2]}x${w[3]} p${o.padding} g${o.groups ?? 1}`);
  });
}

/**
 * Strided convolutions whose kernel spans 3 strides (conv1's 11x11 stride 4 among them), which an
 * engine may compute as the stride-1 3x3 convolution of the input's phases (space to depth): strides
 * 2, 3 and 4, odd and even kernels, paddings, uneven planes, and more samples than one chunk (16).
 */
export function stridedConvCases(rng: TestRng): Case[] {
  const shapes: [number[], number[], { stride: number; padding: number }][] = [
    [[2, 3, 35, 35], [16, 3, 11, 11], { stride: 4, padding: 0 }],
    [[3, 3, 30, 29], [24, 3, 11, 11], { stride: 4, padding: 2 }],
    [[18, 3, 23, 23], [16, 3, 11, 11], { stride: 4, padding: 0 }],
    [[2, 1, 26, 27], [16, 1, 9, 9], { stride: 4, padding: 1 }],
    [[2, 4, 15, 17], [16, 4, 5, 5], { stride: 2, padding: 1 }],
    [[2, 4, 14, 14], [20, 4, 6, 6], { stride: 2, padding: 0 }],
    [[2, 2, 20, 19], [16, 2, 7, 7], { stride: 3, padding: 3 }],
  ];
  return shapes.flatMap(([x, w, o]) => {
    const g = convGeometry(x, w, o);
    return convCases(rng, g, `strided [${x.join(',')}] k=${w[0]} ${w[2]}x${w[3]} s${o.stride} p${o.padding}`);
  });
}

export function randomCases(rng: TestRng, count: number): Case[] {
  const cases: Case[] = [];
  for (let t = 0; t < count; t++) {
    const tag = `random #${t}`;
    for (const [tA, tB] of [[false, false], [false, true], [true, false], [true, true]] as const) {
      const m = rng.int(1, 70), n = rng.int(1, 90), k = rng.int(1, 130);
      cases.push(gemmCase(rng, tA, tB, m, n, k, 1, 0, tag));
      cases.push(gemmCase(rng, tA, tB, m, n, k, -0.5, 0.25, tag));
    }
    const groups = rng.int(1, 3);
    const c = groups * rng.int(1, 4), k = groups * rng.int(1, 5);
    const r = rng.int(1, 5), s = rng.int(1, 5), stride = rng.int(1, 3), pad = rng.int(0, 2);
    const h = r + rng.int(0, 9), w = s + rng.int(0, 9);
    cases.push(...convCases(rng, convOut(rng.int(1, 3), c, h, w, k, r, s, stride, pad, groups), `${tag} [c=${c},h=${h},w=${w}] k=${k} ${r}x${s} s${stride} p${pad} g${groups}`));
    const lc = rng.int(1, 12), size = [1, 3, 5, 7][rng.int(0, 3)]!;
    cases.push(...lrnCases(rng, rng.int(1, 3), lc, rng.int(1, 40), { size, alpha: rng.next() * 1e-3, beta: 0.5 + rng.next(), k: 1 + rng.next() * 2 }, `${tag} c=${lc} n=${size}`));
    const ksz = rng.int(1, 4), kst = rng.int(1, 3), pp = rng.int(0, Math.floor(ksz / 2));
    cases.push(...poolCases(rng, poolGeom(rng.int(1, 3), rng.int(1, 4), ksz + rng.int(0, 10), ksz + rng.int(0, 10), ksz, kst, pp), `${tag} ${ksz}/${kst} pad ${pp}`));
    cases.push(...elementwiseCases(rng, rng.int(1, 3000), tag));
    cases.push(...tanhCases(rng, rng.int(1, 3000), tag));
    cases.push(...lossCases(rng, rng.int(1, 9), rng.int(2, 40), tag));
    cases.push(...layoutCases(rng, rng.int(1, 3), rng.int(1, 6), rng.int(1, 30), tag));
  }
  return cases;
}

/** Registers the whole suite for `backendName` (the backend must be registered with @alexnet/tensor). */
export function runConformanceSuite(backendName: string, options: ConformanceOptions = {}): void {
  const required = options.required ?? !!process.env.CI;
  const rtol = options.rtol ?? FLOAT32_RTOL;
  const backend = getBackend(backendName);
  const availability = backend?.availability() ?? { available: false, reason: `no backend named "${backendName}" is registered` };
  const suite = availability.available || required ? describe : describe.skip;

  suite(`conformance: ${backendName}${availability.available ? '' : ` (unavailable: ${availability.reason})`}`, () => {
    let e: Engine;
    beforeAll(() => {
      if (!availability.available) throw new Error(`backend ${backendName} is required here but unavailable: ${availability.reason}`);
      e = device(`${backendName}:0`).engine;
    });

    const groups: [string, (rng: TestRng) => Case[]][] = [
      ['random shapes', (rng) => randomCases(rng, options.randomCases ?? 4)],
      ['NaN and ties', nanAndTieCases],
      ['stride-1 convolutions', stride1ConvCases],
      ['strided convolutions spanning 3 strides', stridedConvCases],
    ];
    if (options.alexnetShapes ?? true) groups.push(['AlexNet layer shapes', alexnetCases]);
    for (const [title, make] of groups) {
      it(`${title}: every op matches the float64 reference`, () => {
        const failures = checkCases(e, make(new TestRng(title.length * 7919)), rtol);
        expect(failures, failures.join('\n')).toEqual([]);
      }, 600_000);
    }

    it('queues: ops run in order and reads wait for them', async () => {
      const len = 1 << 16;
      const a = e.alloc('float32', len);
      e.fill(a, 1);
      for (let i = 0; i < 20; i++) e.scale(2, a);
      const p = e.read(a, 5, 3);
      e.fill(a, 7); // queued after the read: must not affect it
      expect(Array.from(await p)).toEqual([2 ** 20, 2 ** 20, 2 ** 20]);
      expect(e.readSync(a, 0, 1)[0]).toBe(7);
      // Host data may live in a SharedArrayBuffer (worker-thread batches), at an offset.
      const shared = new Float32Array(new SharedArrayBuffer(64), 16, 4);
      shared.set([1.5, -2, 3, 4]);
      e.write(a, shared, 10);
      expect(Array.from(e.readSync(a, 9, 6))).toEqual([7, 1.5, -2, 3, 4, 7]);
      await e.synchronize();
      e.free(a);
    });

    it('free while an op still uses the buffer is safe', () => {
      const len = 1 << 18;
      const x = e.alloc('float32', len), y = e.alloc('float32', len);
      e.fill(x, 3);
      e.reluForward(x, y);
      e.free(x); // freed after the op that uses it
      expect(e.readSync(y, len - 2, 2)).toEqual(Float32Array.of(3, 3));
      e.free(x); // idempotent
      e.free(y);
    });

    it('cross-device copies are ordered with events', () => {
      const e1 = device(`${backendName}:1`).engine;
      const len = 1 << 16;
      const a = e.alloc('float32', len), b = e1.alloc('float32', len);
      e.fill(a, 1);
      for (let i = 0; i < 10; i++) e.scale(3, a);
      e.waitEvent(e1.recordEvent());
      e.copyToPeer(a, e1, b, len);
      e1.waitEvent(e.recordEvent());
      e1.scale(2, b);
      expect(e1.readSync(b, len - 1, 1)[0]).toBe(2 * 3 ** 10);
      e.free(a);
      e1.free(b);
    });

    it('buffers too small for the sizes given are errors, not crashes', () => {
      const small = e.alloc('float32', 4), big = e.alloc('float32', 64), lbl = e.alloc('int32', 2);
      expect(() => e.gemm(false, false, 4, 4, 4, 1, small, big, 0, big)).toThrow(/a\b/);
      expect(() => e.gemm(false, false, 4, 4, 4, 1, big, big, 0, small)).toThrow(/c\b/);
      const g = convOut(1, 1, 8, 8, 1, 3, 3, 1, 0, 1);
      expect(() => e.conv2dForward(small, big, null, big, g)).toThrow(/x\b/);
      expect(() => e.softmaxCrossEntropy(big, lbl, small, null, 4, 16)).toThrow(/labels/);
      expect(() => e.write(small, new Float32Array(5))).toThrow();
      expect(() => e.readSync(small, 2, 3)).toThrow();
      for (const b of [small, big, lbl]) e.free(b);
    });
  });
}
