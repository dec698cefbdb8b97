/**
 * Counter-based randomness: every random draw is a pure function of a key such as
 * (seed, epoch, sample index, stream), so an augmentation does not depend on which worker
 * computed it, in which order, or how many workers there are.
 *
 * The key is hashed with the murmur3 finaliser into the 128-bit state of sfc32 (Chris Doty-Humphrey's
 * small fast counter generator, PractRand-clean), which then produces the short stream of draws one
 * sample needs (a crop offset, a flip, three lighting coefficients).
 */

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

const TWO32 = 4294967296;

/** Random streams keyed by integers; `Rng.forKey(seed, epoch, index)` is the usual entry point. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  private spare: number | null = null;

  private constructor(a: number, b: number, c: number, d: number) {
    this.a = a; this.b = b; this.c = c; this.d = d;
    for (let i = 0; i < 12; i++) this.uint32();
  }

  /** A generator whose whole stream is determined by the key (each part a non-negative safe integer). */
  static forKey(...key: number[]): Rng {
    let h0 = 0x243f6a88, h1 = 0x85a308d3, h2 = 0x13198a2e, h3 = 0x03707344;
    for (const k of key) {
      if (!Number.isSafeInteger(k) || k < 0) {
        throw new TypeError(`Expected non-negative safe integers for a random key but received ${String(k)}`);
      }
      const lo = k >>> 0, hi = Math.floor(k / TWO32) >>> 0;
      h0 = fmix32(h0 ^ lo ^ fmix32(hi + 0x9e3779b9));
      h1 = fmix32(h1 ^ fmix32(lo + 0x7f4a7c15) ^ hi);
      h2 = fmix32(h2 + fmix32(lo ^ 0xbb67ae85) + Math.imul(hi, 0x2545f491));
      h3 = fmix32(h3 ^ fmix32((lo ^ hi) + 0x3c6ef372) ^ h0);
    }
    return new Rng(h0, h1, h2, h3 | 1);
  }

  /** sfc32: a uniform 32-bit word. */
  uint32(): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0;
    this.d = (this.d + 1) >>> 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0;
    this.c = (this.c + t) >>> 0;
    return t;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  uniform(): number {
    return ((this.uint32() >>> 5) * 67108864 + (this.uint32() >>> 6)) / 9007199254740992;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }

  /** Standard normal (Box-Muller, both values of a pair used). */
  normal(): number {
    if (this.spare !== null) {
      const s = this.spare;
      this.spare = null;
      return s;
    }
    const u1 = 1 - this.uniform();
    const u2 = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u1));
    this.spare = r * Math.sin(2 * Math.PI * u2);
    return r * Math.cos(2 * Math.PI * u2);
  }
}

/** A seeded permutation of 0..n-1 (Fisher-Yates), the same for the same key. */
export function permutation(n: number, rng: Rng): Int32Array {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = p[i]!;
    p[i] = p[j]!;
    p[j] = t;
  }
  return p;
}
