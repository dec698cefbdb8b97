// The reference max-pool (§3.4).
import type { PoolGeometry } from '../../backend.js';
import type { FloatArray, IntArray } from './common.js';

// §3.4: overlapping max-pool (kh = kw = 3, stride 2 in the paper); argmax = ih * w + iw.
// Ties keep the first cell in row-major window order; a window holding NaN outputs NaN, and its
// argmax is the first NaN (NaN propagates, as in PyTorch).
export function maxPoolForward(x: FloatArray, y: FloatArray, argmax: IntArray, g: PoolGeometry): void {
  for (let plane = 0; plane < g.n * g.c; plane++) {
    const xb = plane * g.h * g.w, yb = plane * g.outH * g.outW;
    for (let oy = 0; oy < g.outH; oy++) for (let ox = 0; ox < g.outW; ox++) {
      let best = -Infinity, bi = -1;
      for (let ky = 0; ky < g.kh; ky++) {
        const iy = oy * g.strideH - g.padH + ky;
        if (iy < 0 || iy >= g.h) continue;
        for (let kx = 0; kx < g.kw; kx++) {
          const ix = ox * g.strideW - g.padW + kx;
          if (ix < 0 || ix >= g.w) continue;
          const v = x[xb + iy * g.w + ix]!;
          if (bi < 0 || v > best || (Number.isNaN(v) && !Number.isNaN(best))) { best = v; bi = iy * g.w + ix; }
        }
      }
      y[yb + oy * g.outW + ox] = best;
      argmax[yb + oy * g.outW + ox] = bi;
    }
  }
}

export function maxPoolBackward(dy: FloatArray, argmax: IntArray, dx: FloatArray, g: PoolGeometry): void {
  const acc = new Float64Array(g.n * g.c * g.h * g.w);
  for (let plane = 0; plane < g.n * g.c; plane++) {
    const xb = plane * g.h * g.w, yb = plane * g.outH * g.outW;
    for (let o = 0; o < g.outH * g.outW; o++) acc[xb + argmax[yb + o]!]! += dy[yb + o]!;
  }
  dx.set(acc);
}
