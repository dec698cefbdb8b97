import { describe, it, expect } from 'vitest';
import { cropToCHW, drawAugmentation, pcaLighting, tenCropOffsets, transformImage, type TransformSpec } from './transform.js';

const SIZE = 256;
/** R = x, G = y, B = (x + 2y) mod 256: every pixel says where it came from. */
function coordImage(): Uint8Array {
  const a = new Uint8Array(SIZE * SIZE * 3);
  for (let y = 0; y < SIZE; y++) for (let x = 0; x < SIZE; x++) a.set([x, y, (x + 2 * y) & 255], (y * SIZE + x) * 3);
  return a;
}
const spec = (over: Partial<TransformSpec>): TransformSpec => ({ mode: 'train', size: SIZE, crop: 224, flip: true, lighting: null, mean: { kind: 'none' }, ...over });

/** Straightforward reference: out[c][r][k] = img[y + r][x + (flip ? crop-1-k : k)][c]. */
function naive(img: Uint8Array, y: number, x: number, crop: number, flip: boolean): Float32Array {
  const out = new Float32Array(3 * crop * crop);
  for (let c = 0; c < 3; c++) for (let r = 0; r < crop; r++) for (let k = 0; k < crop; k++) {
    const sx = x + (flip ? crop - 1 - k : k);
    out[c * crop * crop + r * crop + k] = img[((y + r) * SIZE + sx) * 3 + c]!;
  }
  return out;
}

describe('ten-crop geometry (§4.1)', () => {
  it('gives the 4 corners and the centre, then their reflections, in TenCrop order', () => {
    const img = coordImage();
    const crop = 224, n = 3 * crop * crop;
    const out = new Float32Array(10 * n);
    transformImage(img, spec({ mode: 'tenCrop' }), 0, 0, 0, out, 0);
    const expected = [[0, 0], [0, 32], [32, 0], [32, 32], [16, 16]]; // [y, x] of each crop's top-left
    for (let k = 0; k < 10; k++) {
      const [y0, x0] = expected[k % 5]!;
      const flip = k >= 5;
      const at = (c: number, r: number, col: number) => out[k * n + c * crop * crop + r * crop + col]!;
      // Top-left output pixel comes from (y0, x0) or, reflected, from (y0, x0 + 223).
      expect([at(0, 0, 0), at(1, 0, 0)]).toEqual([x0! + (flip ? crop - 1 : 0), y0]);
      expect([at(0, crop - 1, crop - 1), at(1, crop - 1, crop - 1)]).toEqual([x0! + (flip ? 0 : crop - 1), y0! + crop - 1]);
      expect(Array.from(out.subarray(k * n, (k + 1) * n))).toEqual(Array.from(naive(img, y0!, x0!, crop, flip)));
    }
  });

  it('centres a 227 crop at floor(29 / 2) = 14', () => {
    expect(tenCropOffsets(256, 227)[4]).toEqual({ y: 14, x: 14, flip: false });
    const out = new Float32Array(3 * 227 * 227);
    transformImage(coordImage(), spec({ mode: 'center', crop: 227 }), 0, 0, 0, out, 0);
    expect([out[0], out[227 * 227]]).toEqual([14, 14]);
  });
});

describe('random crop and reflection', () => {
  it('draws offsets uniformly over 0..32 and reflects with p = 0.5, each a function of (seed, epoch, sample)', () => {
    const s = spec({});
    const ys = new Array(33).fill(0);
    let flips = 0;
    const N = 4000;
    for (let i = 0; i < N; i++) {
      const a = drawAugmentation(5, 0, i, s);
      expect(a.y).toBeGreaterThanOrEqual(0);
      expect(a.x).toBeLessThanOrEqual(32);
      ys[a.y]++;
      if (a.flip) flips++;
    }
    // Binomial(4000, 0.5): sd 31.6; 4 sd.
    expect(Math.abs(flips - N / 2)).toBeLessThan(127);
    // Each of 33 offsets expected 121 times (sd ~10.8); all within 5 sd.
    for (const c of ys) expect(Math.abs(c - N / 33)).toBeLessThan(55);
    expect(drawAugmentation(5, 0, 7, s)).toEqual(drawAugmentation(5, 0, 7, s));
    expect(drawAugmentation(5, 1, 7, s)).not.toEqual(drawAugmentation(5, 0, 7, s));
    expect(drawAugmentation(6, 0, 7, s)).not.toEqual(drawAugmentation(5, 0, 7, s));
    expect(drawAugmentation(5, 0, 7, spec({ flip: false })).flip).toBe(false);
  });

  it('writes exactly the drawn crop, reflected when drawn so', () => {
    const img = coordImage();
    const s = spec({});
    const n = 3 * 224 * 224;
    let sawFlip = false, sawPlain = false;
    for (let i = 0; i < 6; i++) {
      const a = drawAugmentation(3, 2, i, s);
      sawFlip ||= a.flip;
      sawPlain ||= !a.flip;
      const out = new Float32Array(n);
      transformImage(img, s, 3, 2, i, out, 0);
      expect(Array.from(out)).toEqual(Array.from(naive(img, a.y, a.x, 224, a.flip)));
    }
    expect(sawFlip && sawPlain).toBe(true);
  });
});

describe('mean subtraction', () => {
  it('subtracts the mean image at the same position as the pixel, reflected with it', () => {
    const img = coordImage();
    const mean = new Float32Array(SIZE * SIZE * 3);
    for (let i = 0; i < mean.length; i++) mean[i] = img[i]! - 0.25 * (i % 7);
    const out = new Float32Array(3 * 224 * 224);
    cropToCHW(img, SIZE, 5, 9, 224, true, mean, [0, 0, 0], out, 0);
    // out = img - mean = 0.25 * (index mod 7) of the source pixel.
    for (const [c, r, k] of [[0, 0, 0], [1, 10, 200], [2, 223, 223]] as const) {
      const j = ((5 + r) * SIZE + 9 + 223 - k) * 3 + c;
      expect(out[c * 224 * 224 + r * 224 + k]).toBeCloseTo(0.25 * (j % 7), 5);
    }
  });

  it('subtracts a per-channel mean', () => {
    const img = coordImage();
    const out = new Float32Array(3 * 224 * 224);
    transformImage(img, spec({ mode: 'center', mean: { kind: 'channel', values: [100, 50.5, 1] } }), 0, 0, 0, out, 0);
    expect([out[0], out[224 * 224], out[2 * 224 * 224]]).toEqual([16 - 100, 16 - 50.5, ((16 + 32) & 255) - 1]);
  });
});

describe('PCA lighting (§4.1)', () => {
  it('adds [p1 p2 p3][a1 l1, a2 l2, a3 l3]^T: a hand-worked case', () => {
    const p = [[0.6, 0.8, 0], [-0.8, 0.6, 0], [0, 0, 1]];
    expect(pcaLighting([0.1, -0.2, 0.5], [100, 10, 4], p)).toEqual([
      0.6 * 10 + -0.8 * -2, 0.8 * 10 + 0.6 * -2, 2,
    ].map((v) => expect.closeTo(v, 12)) as unknown as number[]);
  });

  it('has the covariance P diag((0.1 l / 255)^2) P^T over many uses (l on the 0..255 scale), zero mean, and a constant shift per image', () => {
    const c30 = Math.cos(Math.PI / 6), s30 = Math.sin(Math.PI / 6);
    const vectors = [[c30, s30, 0], [-s30, c30, 0], [0, 0, 1]];
    // Eigenvalues on the 0..255 scale; the shift in grey levels is 0.1 l / 255 (the paper's formula on the 0..1 scale).
    const values = [50 * 255, 20 * 255, 5 * 255];
    const size = 4, crop = 2;
    const img = new Uint8Array(size * size * 3).fill(100);
    const s: TransformSpec = { mode: 'train', size, crop, flip: true, lighting: { eigenvalues: values, eigenvectors: vectors, std: 0.1 }, mean: { kind: 'none' } };
    const N = 20000;
    const shifts: number[][] = [];
    const out = new Float32Array(3 * crop * crop);
    for (let i = 0; i < N; i++) {
      transformImage(img, s, 9, i % 3, i, out, 0);
      const sh = [out[0]! - 100, out[4]! - 100, out[8]! - 100];
      // Same shift for every pixel of the image.
      for (let k = 0; k < 4; k++) for (let c = 0; c < 3; c++) expect(out[c * 4 + k]! - 100).toBeCloseTo(sh[c]!, 4);
      shifts.push(sh);
    }
    const mean = [0, 1, 2].map((c) => shifts.reduce((a, v) => a + v[c]!, 0) / N);
    const cov = [0, 1, 2].map((i) => [0, 1, 2].map((j) => shifts.reduce((a, v) => a + (v[i]! - mean[i]!) * (v[j]! - mean[j]!), 0) / N));
    const expected = [0, 1, 2].map((i) => [0, 1, 2].map((j) => [0, 1, 2].reduce((a, k) => a + vectors[k]![i]! * vectors[k]![j]! * (0.1 * values[k]! / 255) ** 2, 0)));
    // Largest variance 25: the standard error of a variance from 20000 draws is ~1 % of it; 5 %.
    for (let i = 0; i < 3; i++) {
      expect(Math.abs(mean[i]!)).toBeLessThan(0.15);
      for (let j = 0; j < 3; j++) expect(Math.abs(cov[i]![j]! - expected[i]![j]!)).toBeLessThan(0.05 * 25);
    }
    // 'stddev' magnitude: sqrt(l) instead of l.
    const sd: TransformSpec = { ...s, lighting: { ...s.lighting!, magnitude: 'stddev' } };
    let v0 = 0;
    for (let i = 0; i < 4000; i++) {
      transformImage(img, sd, 9, 0, i, out, 0);
      const sh = [out[0]! - 100, out[4]! - 100, out[8]! - 100];
      v0 += (sh[2]!) ** 2;
    }
    // Channel B only sees p3 = (0,0,1): variance (0.1 sqrt(5 * 255))^2 = 12.75.
    expect(v0 / 4000).toBeGreaterThan(12.75 * 0.9);
    expect(v0 / 4000).toBeLessThan(12.75 * 1.1);
  });
});
