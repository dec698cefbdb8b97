// GEMM of the CPU engine against the float64 reference (reference/kernels.ts): every transpose
// combination, odd and edge sizes, alpha / beta (beta = 0 must not read C), on every ISA path this
// machine has.
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { relativeError, TestRng } from '../conformance/compare.js';
import * as R from '../reference/kernels.js';
import { CpuEngine, cpuIsa, cpuIsaPaths, setCpuIsa } from './index.js';

const engine = new CpuEngine(0);
engine.setThreads(2);
const best = cpuIsa().detected;
afterEach(() => setCpuIsa(best));
afterAll(() => engine.destroy());

function run(ta: boolean, tb: boolean, m: number, n: number, k: number, alpha: number, beta: number, seed: number) {
  const a = new TestRng(seed).floats(m * k), b = new TestRng(seed + 1).floats(k * n);
  const c0 = beta === 0 ? new Float64Array(m * n).fill(NaN) : new TestRng(seed + 2).floats(m * n); // beta = 0 overwrites: NaN must not leak through
  const A = engine.alloc('float32', m * k), B = engine.alloc('float32', k * n), C = engine.alloc('float32', m * n);
  engine.write(A, Float32Array.from(a)); engine.write(B, Float32Array.from(b)); engine.write(C, Float32Array.from(c0));
  engine.gemm(ta, tb, m, n, k, alpha, A, B, beta, C);
  const got = engine.readSync(C) as Float32Array;
  for (const x of [A, B, C]) engine.free(x);
  R.gemm(ta, tb, m, n, k, alpha, a, b, beta, c0);
  return relativeError(got, c0).error;
}

describe.each(cpuIsaPaths())('gemm on %s', (isa) => {
  it('all transposes, odd sizes and edge tiles, alpha and beta', () => {
    setCpuIsa(isa);
    expect(cpuIsa().active).toBe(isa);
    const shapes: [number, number, number][] = [
      [1, 1, 1], [1, 37, 5], [13, 1, 7], [15, 33, 17], [29, 65, 3], [64, 64, 64], [97, 31, 401], [130, 97, 50],
    ];
    let seed = 1;
    for (const [m, n, k] of shapes) {
      for (const ta of [false, true]) for (const tb of [false, true]) {
        for (const [alpha, beta] of [[1, 0], [0.5, 1], [-2, 0.25]] as const) {
          const err = run(ta, tb, m, n, k, alpha, beta, seed++);
          expect(err, `${isa} ${ta ? 'T' : 'N'}${tb ? 'T' : 'N'} ${m}x${n}x${k} alpha ${alpha} beta ${beta}`).toBeLessThan(1e-5);
        }
      }
    }
  });

  it('a short A times a wide B^T (m 1 to 4: a linear layer at batch 1 to 4), odd n and k, alpha and beta', () => {
    setCpuIsa(isa);
    let seed = 500;
    for (const [m, n, k] of [[1, 64, 64], [1, 4097, 1000], [2, 67, 1001], [3, 130, 95], [4, 200, 777], [4, 65, 64], [5, 70, 300]] as const) {
      for (const [alpha, beta] of [[1, 0], [0.5, 1], [-2, 0.25]] as const) {
        const err = run(false, true, m, n, k, alpha, beta, seed++);
        expect(err, `${isa} NT ${m}x${n}x${k} alpha ${alpha} beta ${beta}`).toBeLessThan(1e-5);
      }
    }
  });

  it('blocks larger than one cache block (k > KC, m > MC, n > NC) split across threads', () => {
    setCpuIsa(isa);
    expect(run(false, false, 1100, 530, 800, 1, 0, 99)).toBeLessThan(1e-5);
    expect(run(true, true, 300, 1100, 777, 1.5, 1, 100)).toBeLessThan(1e-5);
  });
});

describe('thread counts', () => {
  it('1 to 5 threads (more than the cores) give the same results, with short and long parallel regions', () => {
    for (const threads of [1, 3, 5]) {
      engine.setThreads(threads);
      expect(run(false, true, 200, 300, 100, 1, 0, 7), `${threads} threads`).toBeLessThan(1e-5);
      expect(run(false, false, 3, 5, 7, 1, 0, 8), `${threads} threads`).toBeLessThan(1e-5);
      const n = 100_000, x = engine.alloc('float32', n);
      engine.fill(x, 1);
      engine.scale(3, x);
      expect(engine.readSync(x, n - 1, 1)[0]).toBe(3);
      engine.free(x);
    }
    engine.setThreads(2);
  });
});

describe('gemm degenerate sizes', () => {
  it('k = 0 scales C by beta; alpha = 0 never reads A or B; m = 0 is a no-op', () => {
    const C = engine.alloc('float32', 6), A = engine.alloc('float32', 6), B = engine.alloc('float32', 6);
    engine.write(C, Float32Array.of(1, 2, 3, 4, 5, 6));
    engine.gemm(false, false, 2, 3, 0, 1, A, B, 2, C);
    expect(Array.from(engine.readSync(C))).toEqual([2, 4, 6, 8, 10, 12]);
    engine.write(A, new Float32Array(6).fill(NaN));
    engine.gemm(false, false, 2, 3, 2, 0, A, B, 0.5, C);
    expect(Array.from(engine.readSync(C))).toEqual([1, 2, 3, 4, 5, 6]);
    engine.gemm(false, false, 2, 3, 2, 1, A, B, 0, C);
    engine.gemm(false, false, 0, 3, 2, 1, A, B, 0, C);
    engine.synchronizeSync();
    for (const x of [A, B, C]) engine.free(x);
  });
});
