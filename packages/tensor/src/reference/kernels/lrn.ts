// The reference local response normalisation (§3.3).
import type { LrnParams } from '../../backend.js';
import type { FloatArray } from './common.js';

function lrnScale(x: FloatArray, p: LrnParams, c: number, hw: number, base: number, ch: number, pos: number): number {
  const half = Math.floor(p.size / 2);
  let sum = 0;
  for (let j = Math.max(0, ch - half); j <= Math.min(c - 1, ch + half); j++) {
    const v = x[base + j * hw + pos]!;
    sum += v * v;
  }
  return p.k + p.alpha * sum;
}

// §3.3: y[i] = x[i] (k + alpha sum_window x[j]^2)^-beta, x [n, c, hw]
export function lrnForward(x: FloatArray, y: FloatArray, p: LrnParams, n: number, c: number, hw: number): void {
  for (let i = 0; i < n; i++) {
    const base = i * c * hw;
    for (let ch = 0; ch < c; ch++) for (let pos = 0; pos < hw; pos++) {
      const s = lrnScale(x, p, c, hw, base, ch, pos);
      y[base + ch * hw + pos] = x[base + ch * hw + pos]! * Math.pow(s, -p.beta);
    }
  }
}

export function lrnBackward(x: FloatArray, y: FloatArray, dy: FloatArray, dx: FloatArray, p: LrnParams,
  n: number, c: number, hw: number): void {
  const half = Math.floor(p.size / 2);
  for (let i = 0; i < n; i++) {
    const base = i * c * hw;
    for (let ch = 0; ch < c; ch++) for (let pos = 0; pos < hw; pos++) {
      const s = lrnScale(x, p, c, hw, base, ch, pos);
      let cross = 0;
      for (let j = Math.max(0, ch - half); j <= Math.min(c - 1, ch + half); j++) {
        const sj = lrnScale(x, p, c, hw, base, j, pos);
        cross += dy[base + j * hw + pos]! * y[base + j * hw + pos]! / sj;
      }
      const idx = base + ch * hw + pos;
      dx[idx] = dy[idx]! * Math.pow(s, -p.beta) - 2 * p.alpha * p.beta * x[idx]! * cross;
    }
  }
}
