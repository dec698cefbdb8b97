// The reference softmax, softmax cross-entropy and top-k count (§6).
import type { FloatArray, IntArray } from './common.js';

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
