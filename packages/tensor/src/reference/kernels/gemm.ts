// The reference GEMM (fully connected layers).
import type { FloatArray } from './common.js';

/** C[m, n] = alpha op(A) op(B) + beta C, row-major. */
export function gemm(transA: boolean, transB: boolean, m: number, n: number, k: number,
  alpha: number, a: FloatArray, b: FloatArray, beta: number, c: FloatArray): void {
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let acc = 0;
      for (let p = 0; p < k; p++) {
        const av = transA ? a[p * m + i]! : a[i * k + p]!;
        const bv = transB ? b[j * k + p]! : b[p * n + j]!;
        acc += av * bv;
      }
      c[i * n + j] = beta === 0 ? alpha * acc : alpha * acc + beta * c[i * n + j]!;
    }
  }
}
