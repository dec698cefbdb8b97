// decodeResizeCrop's fast path (colour: 'fast', the default) against its exact path ('exact': libvips'
// own orientation and ICC handling): EXIF orientations and greyscale bit-identical, sRGB-like
// profiles skipped (identical), Display P3 and Adobe RGB applied in JavaScript after the resize (mean difference from lcms on the
// full image below 1 level; up to 16 at edges between saturated colours, where the order of resize and
// transform shows).
import { describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeResizeCrop, isSrgbLike, matrixProfile, readJpegHeader } from './decode.js';
import { ADOBE_RGB_ICC, withExifOrientation } from './bench/jpegs.js';

/** w x h of hashed noise (every pixel differs from its neighbours, so a one-pixel shift shows). */
function noise(w: number, h: number): Buffer {
  const b = Buffer.alloc(w * h * 3);
  for (let i = 0; i < b.length; i++) b[i] = ((i * 2654435761) >>> 24) & 255;
  return b;
}
const rgb = (w: number, h: number, px = noise(w, h)) => sharp(px, { raw: { width: w, height: h, channels: 3 } });

function diff(a: Uint8Array, b: Uint8Array): { max: number; mean: number } {
  let max = 0, sum = 0;
  for (let i = 0; i < a.length; i++) { const d = Math.abs(a[i]! - b[i]!); max = Math.max(max, d); sum += d; }
  return { max, mean: sum / a.length };
}

describe('decodeResizeCrop fast path', () => {
  it('applies all eight EXIF orientations exactly as libvips does (odd margins, greyscale too)', async () => {
    for (const [w, h] of [[505, 379], [379, 505], [301, 300], [600, 257]] as const) {
      for (const grey of [false, true]) {
        const base = await (grey ? rgb(w, h).toColourspace('b-w') : rgb(w, h)).jpeg({ quality: 95 }).toBuffer();
        for (let o = 1; o <= 8; o++) {
          const b = o === 1 ? base : withExifOrientation(base, o);
          expect(readJpegHeader(b)!.orientation).toBe(o);
          const exact = await decodeResizeCrop(b, { colour: 'exact' }), fast = await decodeResizeCrop(b);
          expect(diff(fast, exact).max, `${w}x${h} ${grey ? 'grey' : 'rgb'} orientation ${o}`).toBe(0);
        }
      }
    }
  });

  it('skips sRGB-like profiles and applies Display P3 and Adobe RGB (within 16 levels at saturated edges, mean < 1, of lcms)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'alexnet-icc-'));
    try {
      const adobe = join(dir, 'adobe.icc');
      writeFileSync(adobe, ADOBE_RGB_ICC());
      // Saturated colours, where the gamuts differ most, and a smooth ramp.
      const w = 320, h = 300, px = Buffer.alloc(w * h * 3);
      for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) px.set([(x * 255) / w, (y * 255) / h, x < w / 2 ? 230 : 20], (y * w + x) * 3);
      for (const [profile, srgbLike] of [['srgb', true], ['p3', false], [adobe, false]] as const) {
        const b = await rgb(w, h, px).withIccProfile(profile).jpeg({ quality: 95 }).toBuffer();
        const icc = readJpegHeader(b)!.icc!;
        expect(icc.length).toBeGreaterThan(100);
        expect(isSrgbLike(icc), String(profile)).toBe(srgbLike);
        if (!srgbLike) expect(matrixProfile(icc)).not.toBeNull();
        const exact = await decodeResizeCrop(b, { colour: 'exact' }), fast = await decodeResizeCrop(b);
        const d = diff(fast, exact);
        expect(d.max, String(profile)).toBeLessThanOrEqual(srgbLike ? 1 : 16);
        expect(d.mean, String(profile)).toBeLessThan(1);
        if (!srgbLike) {
          // The transform was applied: taking the pixels as sRGB differs clearly.
          const ignored = new Uint8Array(await sharp(b, { ignoreIcc: true }).resize(256, 256, { fit: 'cover', kernel: 'linear' }).raw().toBuffer());
          expect(diff(ignored, exact).mean, String(profile)).toBeGreaterThan(3 * d.mean + 1);
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('leaves CMYK and other formats to the exact path', async () => {
    const cmyk = await rgb(64, 48, Buffer.alloc(64 * 48 * 3, 120)).toColourspace('cmyk').jpeg({ quality: 95 }).toBuffer();
    expect(readJpegHeader(cmyk)!.components).toBe(4);
    expect(diff(await decodeResizeCrop(cmyk), await decodeResizeCrop(cmyk, { colour: 'exact' })).max).toBe(0);
    const png = await rgb(300, 200).png().toBuffer();
    expect(readJpegHeader(png)).toBeNull();
    expect(diff(await decodeResizeCrop(png), await decodeResizeCrop(png, { colour: 'exact' })).max).toBe(0);
  });
});
