/**
 * Seeds derived from names. Every parameter is drawn from its own Philox stream keyed by
 * (model seed, parameter name), and every dropout mask from (seed, layer name, step), so the same
 * numbers come out whatever the placement (one device or two towers), the backend or the order in
 * which layers are built.
 */

/** A 53-bit seed (an integer in [0, 2^53), as Philox keys accept) from a seed and names. */
export function seedFor(seed: number, ...parts: (string | number)[]): number {
  const s = `${seed}/${parts.join('/')}`;
  // Two independent 32-bit FNV-1a style lanes; the second contributes the top 21 bits.
  let h1 = 0x811c9dc5, h2 = 0x9747b28c;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x01000193) >>> 0;
    h2 = Math.imul(h2 ^ c, 0x5bd1e995) >>> 0;
    h2 = (h2 ^ (h2 >>> 15)) >>> 0;
  }
  return h1 + (h2 & 0x1fffff) * 4294967296;
}
