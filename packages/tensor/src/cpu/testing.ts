// Helpers for the CPU engine's own tests (naive float64 loops, seeded inputs, ISA sweeps).
import type { ConvGeometry } from '../backend.js';
import { cpuIsa, type CpuIsa } from './index.js';

/** The ISA paths this machine can run (the detected one and every lower one). */
export function isaPaths(): CpuIsa[] {
  const order: CpuIsa[] = ['portable', 'avx2', 'avx512'];
  return order.slice(0, order.indexOf(cpuIsa().detected) + 1);
}

/** Seeded float32-representable values in [-scale, scale). */
export function floats(n: number, seed: number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  let s = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    out[i] = (s / 4294967296 * 2 - 1) * scale;
  }
  return out;
}

/** max |a - e| / max |e| (Infinity on a NaN mismatch). */
export function relErr(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let maxRef = 0, maxDiff = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!, e = expected[i]!;
    if (Number.isNaN(a) !== Number.isNaN(e)) return Infinity;
    if (Number.isNaN(e)) continue;
    maxRef = Math.max(maxRef, Math.abs(e));
    maxDiff = Math.max(maxDiff, Math.abs(a - e));
  }
  return maxDiff === 0 ? 0 : maxDiff / maxRef;
}

export function naiveGemm(ta: boolean, tb: boolean, m: number, n: number, k: number, alpha: number,
  a: ArrayLike<number>, b: ArrayLike<number>, beta: number, c: ArrayLike<number>): Float64Array {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += (ta ? a[p * m + i]! : a[i * k + p]!) * (tb ? b[j * k + p]! : b[p * n + j]!);
      out[i * n + j] = alpha * s + (beta === 0 ? 0 : beta * c[i * n + j]!);
    }
  }
  return out;
}

export function convGeometry(n: number, c: number, h: number, w: number, k: number, r: number, s: number,
  stride: number, pad: number, groups: number): ConvGeometry {
  return {
    n, c, h, w, k, r, s, strideH: stride, strideW: stride, padH: pad, padW: pad, groups,
    outH: Math.floor((h + 2 * pad - r) / stride) + 1, outW: Math.floor((w + 2 * pad - s) / stride) + 1,
  };
}

/** Visits every (sample, out channel, oh, ow, in channel of group, kr, ks, input index or -1). */
function convVisit(g: ConvGeometry, f: (yi: number, wi: number, xi: number) => void): void {
  const cg = g.c / g.groups, kg = g.k / g.groups;
  for (let n = 0; n < g.n; n++) for (let k = 0; k < g.k; k++) {
    const grp = Math.floor(k / kg);
    for (let oh = 0; oh < g.outH; oh++) for (let ow = 0; ow < g.outW; ow++) {
      const yi = ((n * g.k + k) * g.outH + oh) * g.outW + ow;
      for (let c = 0; c < cg; c++) for (let r = 0; r < g.r; r++) for (let s = 0; s < g.s; s++) {
        const ih = oh * g.strideH - g.padH + r, iw = ow * g.strideW - g.padW + s;
        if (ih < 0 || ih >= g.h || iw < 0 || iw >= g.w) continue;
        f(yi, ((k * cg + c) * g.r + r) * g.s + s, ((n * g.c + grp * cg + c) * g.h + ih) * g.w + iw);
      }
    }
  }
}

export function naiveConvForward(x: ArrayLike<number>, w: ArrayLike<number>, bias: ArrayLike<number> | null,
  g: ConvGeometry): Float64Array {
  const y = new Float64Array(g.n * g.k * g.outH * g.outW);
  const P = g.outH * g.outW;
  if (bias) for (let i = 0; i < y.length; i++) y[i] = bias[Math.floor(i / P) % g.k]!;
  convVisit(g, (yi, wi, xi) => { y[yi]! += w[wi]! * x[xi]!; });
  return y;
}

export function naiveConvBackwardData(dy: ArrayLike<number>, w: ArrayLike<number>, g: ConvGeometry): Float64Array {
  const dx = new Float64Array(g.n * g.c * g.h * g.w);
  convVisit(g, (yi, wi, xi) => { dx[xi]! += w[wi]! * dy[yi]!; });
  return dx;
}

export function naiveConvBackwardFilter(x: ArrayLike<number>, dy: ArrayLike<number>, g: ConvGeometry): Float64Array {
  const dw = new Float64Array(g.k * (g.c / g.groups) * g.r * g.s);
  convVisit(g, (yi, wi, xi) => { dw[wi]! += x[xi]! * dy[yi]!; });
  return dw;
}

export interface Lrn { size: number; alpha: number; beta: number; k: number }

function lrnScale(x: ArrayLike<number>, p: Lrn, c: number, hw: number, n: number, i: number, q: number): number {
  const half = Math.floor(p.size / 2);
  let s = 0;
  for (let j = Math.max(0, i - half); j <= Math.min(c - 1, i + half); j++) s += x[(n * c + j) * hw + q]! ** 2;
  return p.k + p.alpha * s;
}

export function naiveLrnForward(x: ArrayLike<number>, p: Lrn, n: number, c: number, hw: number): Float64Array {
  const y = new Float64Array(n * c * hw);
  for (let b = 0; b < n; b++) for (let i = 0; i < c; i++) for (let q = 0; q < hw; q++) {
    const idx = (b * c + i) * hw + q;
    y[idx] = x[idx]! * lrnScale(x, p, c, hw, b, i, q) ** -p.beta;
  }
  return y;
}

export function naiveLrnBackward(x: ArrayLike<number>, dy: ArrayLike<number>, p: Lrn, n: number, c: number,
  hw: number): Float64Array {
  const y = naiveLrnForward(x, p, n, c, hw);
  const dx = new Float64Array(n * c * hw), half = Math.floor(p.size / 2);
  for (let b = 0; b < n; b++) for (let i = 0; i < c; i++) for (let q = 0; q < hw; q++) {
    const idx = (b * c + i) * hw + q;
    let s = 0;
    for (let j = Math.max(0, i - half); j <= Math.min(c - 1, i + half); j++) {
      const jd = (b * c + j) * hw + q;
      s += dy[jd]! * y[jd]! / lrnScale(x, p, c, hw, b, j, q);
    }
    dx[idx] = dy[idx]! * lrnScale(x, p, c, hw, b, i, q) ** -p.beta - 2 * p.alpha * p.beta * x[idx]! * s;
  }
  return dx;
}
