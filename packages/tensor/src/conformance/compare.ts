/** Comparison helpers of the conformance suite, with the tolerances it states. */

/** Float32 engines against the float64 reference: norm-wise relative error bound. */
export const FLOAT32_RTOL = 1e-4;

/**
 * max_i |actual_i - expected_i| / max_i |expected_i| (0 when both are all zeros), plus the index of
 * the worst element. NaN anywhere in actual (e.g. an element the op never wrote, since outputs are
 * poisoned with NaN first) makes the error Infinity.
 */
export function relativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): { error: number; worst: number } {
  if (actual.length !== expected.length) return { error: Infinity, worst: -1 };
  let maxRef = 0, maxDiff = 0, worst = -1;
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i]!, a = actual[i]!;
    if (Number.isNaN(a) !== Number.isNaN(e)) return { error: Infinity, worst: i };
    if (Number.isNaN(e)) continue;
    maxRef = Math.max(maxRef, Math.abs(e));
    const d = Math.abs(a - e);
    if (d > maxDiff) { maxDiff = d; worst = i; }
  }
  if (maxDiff === 0) return { error: 0, worst: -1 };
  return { error: maxRef === 0 ? Infinity : maxDiff / maxRef, worst };
}

/** A small seeded generator for test inputs (xorshift-multiply; independent of the Philox under test). */
export class TestRng {
  private s: number;
  constructor(seed: number) { this.s = (seed * 2654435761) >>> 0 || 1; }
  next(): number {
    let x = this.s;
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    this.s = x;
    return x / 4294967296;
  }
  int(lo: number, hi: number): number { return lo + Math.floor(this.next() * (hi - lo + 1)); }
  /** Values in [-1, 1) rounded to float32, as float64 (so the reference sees exactly what the engine sees). */
  floats(n: number, scale = 1): Float64Array {
    const f = new Float32Array(n);
    for (let i = 0; i < n; i++) f[i] = (this.next() * 2 - 1) * scale;
    return Float64Array.from(f);
  }
}
