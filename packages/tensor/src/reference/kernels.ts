/**
 * Reference kernels: plain loops with float64 accumulation, written for obviousness, never speed.
 * They are the oracle the conformance suite compares every backend against, and their backward
 * functions are themselves checked against finite differences in float64 (reference.test.ts).
 * Arrays may be Float32Array (results rounded once on store) or Float64Array (exact float64).
 */
import type { ConvGeometry, LrnParams, PoolGeometry, SgdParams } from '../backend.js';
import { fillNormal, fillUniform, uniformAt } from '../philox.js';

export type FloatArray = Float32Array | Float64Array;
type IntArray = Int32Array;

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

export function biasAdd(y: FloatArray, bias: FloatArray, n: number, c: number, hw: number): void {
  for (let i = 0; i < n; i++) for (let j = 0; j < c; j++) {
    const base = (i * c + j) * hw, b = bias[j]!;
    for (let p = 0; p < hw; p++) y[base + p] = y[base + p]! + b;
  }
}

export function biasGrad(dy: FloatArray, db: FloatArray, n: number, c: number, hw: number, beta: number): void {
  for (let j = 0; j < c; j++) {
    let acc = 0;
    for (let i = 0; i < n; i++) {
      const base = (i * c + j) * hw;
      for (let p = 0; p < hw; p++) acc += dy[base + p]!;
    }
    db[j] = beta === 0 ? acc : beta * db[j]! + acc;
  }
}

// NaN propagates, as in PyTorch: relu(NaN) = NaN, and the gradient passes where y is NaN
// (dx = 0 only where y <= 0, like torch's threshold_backward).
export function reluForward(x: FloatArray, y: FloatArray): void {
  for (let i = 0; i < x.length; i++) { const v = x[i]!; y[i] = v > 0 || Number.isNaN(v) ? v : 0; }
}

export function reluBackward(y: FloatArray, dy: FloatArray, dx: FloatArray): void {
  for (let i = 0; i < y.length; i++) dx[i] = y[i]! <= 0 ? 0 : dy[i]!;
}

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

// §4.2 dropout, inverted form: kept units are scaled by 1/(1-p) at training time.
export function dropoutForward(x: FloatArray, y: FloatArray, p: number, seed: number, offset: number): void {
  const u = new Float64Array(x.length);
  fillUniform(u, seed, offset);
  const s = 1 / (1 - p);
  for (let i = 0; i < x.length; i++) y[i] = u[i]! >= p ? x[i]! * s : 0;
}

export function dropoutBackward(dy: FloatArray, dx: FloatArray, p: number, seed: number, offset: number): void {
  dropoutForward(dy, dx, p, seed, offset);
}

export function softmax(x: FloatArray, y: FloatArray, n: number, c: number): void {
  for (let i = 0; i < n; i++) {
    let mx = -Infinity;
    for (let j = 0; j < c; j++) mx = Math.max(mx, x[i * c + j]!);
    let sum = 0;
    const e = new Float64Array(c);
    for (let j = 0; j < c; j++) { e[j] = Math.exp(x[i * c + j]! - mx); sum += e[j]!; }
    for (let j = 0; j < c; j++) y[i * c + j] = e[j]! / sum;
  }
}

export function softmaxCrossEntropy(logits: FloatArray, labels: IntArray, loss: FloatArray,
  dlogits: FloatArray | null, n: number, c: number): void {
  let total = 0;
  for (let i = 0; i < n; i++) {
    const label = labels[i]!;
    let mx = -Infinity;
    for (let j = 0; j < c; j++) mx = Math.max(mx, logits[i * c + j]!);
    let sum = 0;
    for (let j = 0; j < c; j++) sum += Math.exp(logits[i * c + j]! - mx);
    const valid = Number.isInteger(label) && label >= 0 && label < c;
    total += valid ? -(logits[i * c + label]! - mx - Math.log(sum)) : NaN;
    if (dlogits) {
      for (let j = 0; j < c; j++) {
        const pj = Math.exp(logits[i * c + j]! - mx) / sum;
        dlogits[i * c + j] = valid ? (pj - (j === label ? 1 : 0)) / n : NaN;
      }
    }
  }
  loss[0] = total / n;
}

/**
 * Rows whose label t ranks among the first k, where class j ranks above t when z[j] > z[t], or
 * z[j] = z[t] and j < t (the order of a stable sort by descending score: ties go to the lower
 * index). A NaN anywhere in the row, or a label outside [0, c), makes the row wrong.
 */
export function topkCorrect(logits: FloatArray, labels: IntArray, out: IntArray, n: number, c: number, k: number): void {
  let correct = 0;
  for (let i = 0; i < n; i++) {
    const label = labels[i]!;
    if (label < 0 || label >= c) continue;
    const v = logits[i * c + label]!;
    let above = 0, nan = false;
    for (let j = 0; j < c; j++) {
      const z = logits[i * c + j]!;
      if (Number.isNaN(z)) nan = true;
      else if (z > v || (z === v && j < label)) above++;
    }
    if (!nan && above < k) correct++;
  }
  out[0] = correct;
}

export function channelCopy(src: ArrayLike<number>, dst: { [i: number]: number }, n: number, hw: number,
  srcC: number, srcOffset: number, dstC: number, dstOffset: number, count: number): void {
  for (let i = 0; i < n; i++) for (let j = 0; j < count; j++) {
    const s = (i * srcC + srcOffset + j) * hw, d = (i * dstC + dstOffset + j) * hw;
    for (let p = 0; p < hw; p++) dst[d + p] = src[s + p]!;
  }
}

// §5: the paper's rule v <- m v - wd lr w - lr g; w <- w + v, or PyTorch's v <- m v + g + wd w; w <- w - lr v.
export function sgdUpdate(w: FloatArray, g: FloatArray, v: FloatArray, p: SgdParams): void {
  for (let i = 0; i < w.length; i++) {
    if (p.form === 'paper') {
      const nv = p.momentum * v[i]! - p.weightDecay * p.lr * w[i]! - p.lr * g[i]!;
      v[i] = nv;
      w[i] = w[i]! + nv;
    } else {
      const nv = p.momentum * v[i]! + g[i]! + p.weightDecay * w[i]!;
      v[i] = nv;
      w[i] = w[i]! - p.lr * nv;
    }
  }
}

export function random(out: FloatArray, dist: 'uniform' | 'normal', seed: number, offset: number, a: number, b: number): void {
  if (dist === 'uniform') fillUniform(out, seed, offset, a, b);
  else fillNormal(out, seed, offset, a, b);
}

export { uniformAt };
