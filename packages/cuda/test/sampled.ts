// Float64 references of single output elements of the GEMM-shaped ops, for checking full-size
// outputs (the AlexNet layers at batch 8) at a sample of positions: the whole float64 reference of a
// batch-8 convolution would take minutes in JavaScript, one element of it microseconds.
import type { ConvGeometry } from '@alexnet/tensor';

type A = ArrayLike<number>;

/** y[i, o, oy, ox] (with bias) of conv2dForward. */
export function convForwardAt(x: A, w: A, bias: A | null, g: ConvGeometry, idx: number): number {
  const ox = idx % g.outW, oy = Math.floor(idx / g.outW) % g.outH, o = Math.floor(idx / (g.outW * g.outH)) % g.k;
  const i = Math.floor(idx / (g.outW * g.outH * g.k));
  const cg = g.c / g.groups, kg = g.k / g.groups, grp = Math.floor(o / kg);
  let s = bias ? bias[o]! : 0;
  for (let ci = 0; ci < cg; ci++) for (let ky = 0; ky < g.r; ky++) {
    const iy = oy * g.strideH - g.padH + ky;
    if (iy < 0 || iy >= g.h) continue;
    for (let kx = 0; kx < g.s; kx++) {
      const ix = ox * g.strideW - g.padW + kx;
      if (ix < 0 || ix >= g.w) continue;
      s += x[((i * g.c + grp * cg + ci) * g.h + iy) * g.w + ix]! * w[((o * cg + ci) * g.r + ky) * g.s + kx]!;
    }
  }
  return s;
}

/** dx[i, ch, iy, ix] of conv2dBackwardData. */
export function convBackwardDataAt(dy: A, w: A, g: ConvGeometry, idx: number): number {
  const ix = idx % g.w, iy = Math.floor(idx / g.w) % g.h, ch = Math.floor(idx / (g.w * g.h)) % g.c, i = Math.floor(idx / (g.w * g.h * g.c));
  const cg = g.c / g.groups, kg = g.k / g.groups, grp = Math.floor(ch / cg), ci = ch % cg;
  let s = 0;
  for (let o = grp * kg; o < (grp + 1) * kg; o++) for (let ky = 0; ky < g.r; ky++) {
    const ty = iy + g.padH - ky;
    if (ty < 0 || ty % g.strideH) continue;
    const oy = ty / g.strideH;
    if (oy >= g.outH) continue;
    for (let kx = 0; kx < g.s; kx++) {
      const tx = ix + g.padW - kx;
      if (tx < 0 || tx % g.strideW) continue;
      const ox = tx / g.strideW;
      if (ox >= g.outW) continue;
      s += dy[((i * g.k + o) * g.outH + oy) * g.outW + ox]! * w[((o * cg + ci) * g.r + ky) * g.s + kx]!;
    }
  }
  return s;
}

/** dw[o, ci, ky, kx] (beta 0) of conv2dBackwardFilter: the sum over every sample and position. */
export function convBackwardFilterAt(x: A, dy: A, g: ConvGeometry, idx: number): number {
  const cg = g.c / g.groups, kg = g.k / g.groups;
  const kx = idx % g.s, ky = Math.floor(idx / g.s) % g.r, ci = Math.floor(idx / (g.s * g.r)) % cg, o = Math.floor(idx / (g.s * g.r * cg));
  const grp = Math.floor(o / kg);
  let s = 0;
  for (let i = 0; i < g.n; i++) for (let oy = 0; oy < g.outH; oy++) {
    const iy = oy * g.strideH - g.padH + ky;
    if (iy < 0 || iy >= g.h) continue;
    for (let ox = 0; ox < g.outW; ox++) {
      const ix = ox * g.strideW - g.padW + kx;
      if (ix < 0 || ix >= g.w) continue;
      s += dy[((i * g.k + o) * g.outH + oy) * g.outW + ox]! * x[((i * g.c + grp * cg + ci) * g.h + iy) * g.w + ix]!;
    }
  }
  return s;
}

/** C[r, c] = alpha op(A)[r, :] op(B)[:, c] + beta C0[r, c] (row-major, as Engine.gemm). */
export function gemmAt(tA: boolean, tB: boolean, m: number, n: number, k: number, alpha: number, a: A, b: A, beta: number, c0: A | null, idx: number): number {
  const r = Math.floor(idx / n), c = idx % n;
  let s = 0;
  for (let q = 0; q < k; q++) s += (tA ? a[q * m + r]! : a[r * k + q]!) * (tB ? b[c * k + q]! : b[q * n + c]!);
  return alpha * s + (beta !== 0 && c0 ? beta * c0[idx]! : 0);
}

/** `count` positions of [0, n): the first and the last, the rest spread by a fixed-seed generator. */
export function samplePositions(n: number, count: number, seed = 1): number[] {
  const out = new Set<number>([0, n - 1]);
  let s = seed >>> 0;
  while (out.size < Math.min(n, count)) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out.add(Math.floor((s / 2 ** 32) * n));
  }
  return [...out];
}

/**
 * The norm-wise relative error of `got` against `at(i)` over `positions` (as the conformance suite's
 * relativeError, restricted to them), and whether every element of `got` was written (no NaN left
 * from the poisoned output, where the reference has none).
 */
export function sampledError(got: ArrayLike<number>, positions: number[], at: (i: number) => number): { error: number; unwritten: number } {
  let d = 0, r = 0;
  for (const i of positions) {
    const want = at(i);
    d += (got[i]! - want) ** 2;
    r += want * want;
  }
  let unwritten = 0;
  for (let i = 0; i < got.length; i++) if (Number.isNaN(got[i]!)) unwritten++;
  return { error: r > 0 ? Math.sqrt(d / r) : Math.sqrt(d), unwritten };
}
