// The reference elementwise ops, bias add and gradient, ReLU and tanh, dropout (§4.2), channel copies, the
// Philox draws and the SGD update (§5).
import type { SgdParams } from '../../backend.js';
import { fillNormal, fillUniform } from '../../philox.js';
import type { FloatArray } from './common.js';

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

// §3.1 (Figure 1): tanh, the saturating nonlinearity. Math.tanh is float64 (tanh(NaN) = NaN,
// tanh(±Infinity) = ±1); the backward uses the forward output: d tanh(x)/dx = 1 - tanh(x)².
export function tanhForward(x: FloatArray, y: FloatArray): void {
  for (let i = 0; i < x.length; i++) y[i] = Math.tanh(x[i]!);
}

export function tanhBackward(y: FloatArray, dy: FloatArray, dx: FloatArray): void {
  for (let i = 0; i < y.length; i++) { const v = y[i]!; dx[i] = dy[i]! * ((1 - v) * (1 + v)); }
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
