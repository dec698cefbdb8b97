// The reference convolutions (§3.1), forward and both gradients.
import type { ConvGeometry } from '../../backend.js';
import type { FloatArray } from './common.js';
import { biasGrad } from './elementwise.js';

// x [n, c, h, w]; w [k, c/G, r, s]; y [n, k, outH, outW]   (§3.1, groups = §3.2 "same GPU only").
// The three passes are one loop over every (output, weight, input) triple a convolution multiplies
// (padding skipped), each pass accumulating its own product in float64. Every element's sum is taken
// in the order of the textbook loops (forward: the bias, then by channel, ky, kx).
const enum ConvPass { Forward, Data, Filter }

function convLoop(pass: ConvPass, g: ConvGeometry, a: FloatArray, b: FloatArray, acc: Float64Array): void {
  const cg = g.c / g.groups, kg = g.k / g.groups;
  for (let i = 0; i < g.n; i++) {
    for (let o = 0; o < g.k; o++) {
      const grp = Math.floor(o / kg);
      for (let oy = 0; oy < g.outH; oy++) {
        for (let ox = 0; ox < g.outW; ox++) {
          const yi = ((i * g.k + o) * g.outH + oy) * g.outW + ox;
          for (let ci = 0; ci < cg; ci++) {
            for (let ky = 0; ky < g.r; ky++) {
              const iy = oy * g.strideH - g.padH + ky;
              if (iy < 0 || iy >= g.h) continue;
              // the taps kx in [k0, k1) fall inside the row: x index xr + kx, weight index wr + kx
              const x0 = ox * g.strideW - g.padW, k0 = Math.max(0, -x0), k1 = Math.min(g.s, g.w - x0);
              const xr = ((i * g.c + grp * cg + ci) * g.h + iy) * g.w + x0, wr = ((o * cg + ci) * g.r + ky) * g.s;
              if (pass === ConvPass.Forward) { // a = x, b = w
                let sum = acc[yi]!;
                for (let kx = k0; kx < k1; kx++) sum += a[xr + kx]! * b[wr + kx]!;
                acc[yi] = sum;
              } else if (pass === ConvPass.Data) { // a = dy, b = w
                const d = a[yi]!;
                for (let kx = k0; kx < k1; kx++) acc[xr + kx]! += d * b[wr + kx]!;
              } else { // a = x, b = dy
                const d = b[yi]!;
                for (let kx = k0; kx < k1; kx++) acc[wr + kx]! += a[xr + kx]! * d;
              }
            }
          }
        }
      }
    }
  }
}

export function conv2dForward(x: FloatArray, w: FloatArray, bias: FloatArray | null, y: FloatArray, g: ConvGeometry): void {
  const acc = new Float64Array(g.n * g.k * g.outH * g.outW), P = g.outH * g.outW;
  if (bias) for (let i = 0; i < acc.length; i++) acc[i] = bias[Math.floor(i / P) % g.k]!;
  convLoop(ConvPass.Forward, g, x, w, acc);
  y.set(acc);
}

// dy [n, k, outH, outW]; w [k, c/G, r, s] -> dx [n, c, h, w]
export function conv2dBackwardData(dy: FloatArray, w: FloatArray, dx: FloatArray, g: ConvGeometry): void {
  const acc = new Float64Array(g.n * g.c * g.h * g.w);
  convLoop(ConvPass.Data, g, dy, w, acc);
  dx.set(acc);
}

// x [n, c, h, w]; dy [n, k, outH, outW] -> dw [k, c/G, r, s] (= beta dw + grad), db [k]
export function conv2dBackwardFilter(x: FloatArray, dy: FloatArray, dw: FloatArray, db: FloatArray | null,
  g: ConvGeometry, beta: number): void {
  const acc = new Float64Array(g.k * (g.c / g.groups) * g.r * g.s);
  convLoop(ConvPass.Filter, g, x, dy, acc);
  for (let i = 0; i < acc.length; i++) dw[i] = beta === 0 ? acc[i]! : beta * dw[i]! + acc[i]!;
  if (db) biasGrad(dy, db, g.n, g.k, g.outH * g.outW, beta);
}
