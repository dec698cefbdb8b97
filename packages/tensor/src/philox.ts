/**
 * Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011): a
 * counter-based generator, so element i of a draw depends only on (seed, offset + i). Every backend
 * implements exactly this (native/common/philox.h for C++ and CUDA), so the same seed gives the same
 * weights, dropout masks and augmentations on every device and for any number of threads.
 *
 * Mapping (normative for all backends):
 * - key = (seed mod 2^32, floor(seed / 2^32) mod 2^32), seed an integer in [0, 2^53).
 * - global index gi uses block b = floor(gi / 4), counter (b mod 2^32, floor(b / 2^32), 0, 0), and
 *   output word gi mod 4 of that block.
 * - uniform: (word >>> 8) * 2^-24, in [0, 1), exact in float32.
 * - normal: Box-Muller on the block's word pairs (0,1) and (2,3), computed in double:
 *   u1 = ((w_even >>> 8) + 1) * 2^-24 in (0, 1], u2 = (w_odd >>> 8) * 2^-24,
 *   r = sqrt(-2 ln u1); even word -> r cos(2 pi u2), odd word -> r sin(2 pi u2).
 */

const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;
const TWO32 = 4294967296;
const INV24 = 1 / 16777216;

/** High 32 bits of the 64-bit product of two uint32 values (exact, with doubles). */
function mulhi32(a: number, b: number): number {
  const ah = a >>> 16, al = a & 0xffff, bh = b >>> 16, bl = b & 0xffff;
  const mid = ah * bl + al * bh + ((al * bl) >>> 16);
  return (ah * bh + Math.floor(mid / 65536)) >>> 0;
}

/** The four 32-bit words of block `block` for `seed`. */
export function philoxBlock(seed: number, block: number, out: Uint32Array = new Uint32Array(4)): Uint32Array {
  let k0 = seed >>> 0;
  let k1 = Math.floor(seed / TWO32) >>> 0;
  let c0 = block >>> 0;
  let c1 = Math.floor(block / TWO32) >>> 0;
  let c2 = 0, c3 = 0;
  for (let round = 0; round < 10; round++) {
    const hi0 = mulhi32(M0, c0), lo0 = Math.imul(M0, c0) >>> 0;
    const hi1 = mulhi32(M1, c2), lo1 = Math.imul(M1, c2) >>> 0;
    const n0 = (hi1 ^ c1 ^ k0) >>> 0;
    const n2 = (hi0 ^ c3 ^ k1) >>> 0;
    c0 = n0; c1 = lo1; c2 = n2; c3 = lo0;
    k0 = (k0 + W0) >>> 0;
    k1 = (k1 + W1) >>> 0;
  }
  out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
  return out;
}

export function checkSeed(seed: number, what = 'seed'): void {
  if (!Number.isSafeInteger(seed) || seed < 0) {
    throw new TypeError(`Expected a non-negative safe integer for ${what} but received ${String(seed)}`);
  }
}

/** out[i] = a + (b - a) * uniform(seed, offset + i). */
export function fillUniform(out: Float32Array | Float64Array, seed: number, offset: number, a = 0, b = 1): void {
  const words = new Uint32Array(4);
  let block = -1;
  for (let i = 0; i < out.length; i++) {
    const gi = offset + i;
    const bi = Math.floor(gi / 4);
    if (bi !== block) { philoxBlock(seed, bi, words); block = bi; }
    const u = (words[gi % 4]! >>> 8) * INV24;
    out[i] = a + (b - a) * u;
  }
}

/** out[i] = mean + std * normal(seed, offset + i). */
export function fillNormal(out: Float32Array | Float64Array, seed: number, offset: number, mean = 0, std = 1): void {
  const words = new Uint32Array(4);
  const z = new Float64Array(4);
  let block = -1;
  for (let i = 0; i < out.length; i++) {
    const gi = offset + i;
    const bi = Math.floor(gi / 4);
    if (bi !== block) {
      philoxBlock(seed, bi, words);
      for (let p = 0; p < 4; p += 2) {
        const u1 = ((words[p]! >>> 8) + 1) * INV24;
        const u2 = (words[p + 1]! >>> 8) * INV24;
        const r = Math.sqrt(-2 * Math.log(u1));
        z[p] = r * Math.cos(2 * Math.PI * u2);
        z[p + 1] = r * Math.sin(2 * Math.PI * u2);
      }
      block = bi;
    }
    out[i] = mean + std * z[gi % 4]!;
  }
}

/** The uniform draw in [0, 1) at global index gi (used by dropout masks). */
export function uniformAt(seed: number, gi: number): number {
  const w = philoxBlock(seed, Math.floor(gi / 4));
  return (w[gi % 4]! >>> 8) * INV24;
}
