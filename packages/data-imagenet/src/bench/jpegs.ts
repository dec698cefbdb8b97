/**
 * The benchmark's input: JPEGs like ImageNet's typical image, drawn the way the PyTorch reference
 * (as the PIL reference pipeline's benchmark draws them) draws them: 80 % 500x375 and 20 % 375x500,
 * smooth per-channel gradients with four Gaussian blobs, mid-frequency texture and pixel noise,
 * quality 90. Cached in a folder so that the PIL figure can be measured on the same files.
 */
import sharp from 'sharp';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Rng } from '../rng.js';

export async function makeBenchJpegs(dir: string, n: number, seed = 0): Promise<string[]> {
  mkdirSync(dir, { recursive: true });
  const name = (i: number) => join(dir, `img${String(i).padStart(4, '0')}.jpg`);
  const have = new Set(readdirSync(dir));
  for (let i = 0; i < n; i++) {
    if (have.has(`img${String(i).padStart(4, '0')}.jpg`)) continue;
    const rng = Rng.forKey(seed, i);
    const [w, h] = i % 5 ? [500, 375] : [375, 500];
    const img = new Float32Array(w * h * 3);
    for (let c = 0; c < 3; c++) {
      const ax = (rng.uniform() - 0.5) * 0.8, ay = (rng.uniform() - 0.5) * 0.8, base = 40 + 160 * rng.uniform();
      const blobs = Array.from({ length: 4 }, () => ({ x: rng.uniform() * w, y: rng.uniform() * h, r: 20 + 100 * rng.uniform(), a: (rng.uniform() - 0.5) * 160 }));
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          let g = base + ax * x + ay * y;
          for (const b of blobs) g += b.a * Math.exp(-((x - b.x) ** 2 + (y - b.y) ** 2) / (2 * b.r * b.r));
          img[(y * w + x) * 3 + c] = g;
        }
      }
    }
    const lw = (w >> 1) + 1;
    const lo = Float32Array.from({ length: ((h >> 1) + 1) * lw * 3 }, () => rng.normal() * 20);
    const px = new Uint8Array(w * h * 3);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        for (let c = 0; c < 3; c++) {
          const v = img[(y * w + x) * 3 + c]! + lo[((y >> 1) * lw + (x >> 1)) * 3 + c]! + rng.normal() * 16;
          px[(y * w + x) * 3 + c] = Math.max(0, Math.min(255, Math.round(v)));
        }
      }
    }
    await sharp(px, { raw: { width: w, height: h, channels: 3 } }).jpeg({ quality: 90 }).toFile(name(i));
  }
  return Array.from({ length: n }, (_, i) => name(i));
}

export function benchJpegsExist(dir: string, n: number): boolean {
  return existsSync(join(dir, `img${String(n - 1).padStart(4, '0')}.jpg`));
}

/**
 * An ICC v2 matrix/TRC display profile with the given D50 colorants and one gamma for all three
 * channels (the form of Adobe RGB (1998)), for the realistic set: sharp embeds it with withIccProfile.
 */
export function matrixIccProfile(description: string, colorants: number[][], gamma: number): Buffer {
  const tags: [string, Buffer][] = [];
  const xyz = (v: number[]) => {
    const b = Buffer.alloc(20);
    b.write('XYZ ', 0, 'latin1');
    v.forEach((x, i) => b.writeInt32BE(Math.round(x * 65536), 8 + 4 * i));
    return b;
  };
  const desc = Buffer.alloc(12 + description.length + 1 + 4 + 4 + 2 + 1 + 67);
  desc.write('desc', 0, 'latin1');
  desc.writeUInt32BE(description.length + 1, 8);
  desc.write(description, 12, 'latin1');
  const cprt = Buffer.alloc(8 + 'No copyright, generated'.length + 1);
  cprt.write('text', 0, 'latin1');
  cprt.write('No copyright, generated', 8, 'latin1');
  const curv = Buffer.alloc(14);
  curv.write('curv', 0, 'latin1');
  curv.writeUInt32BE(1, 8);
  curv.writeUInt16BE(Math.round(gamma * 256), 12);
  tags.push(['desc', desc], ['cprt', cprt], ['wtpt', xyz([0.9642, 1, 0.8249])],
    ['rXYZ', xyz(colorants[0]!)], ['gXYZ', xyz(colorants[1]!)], ['bXYZ', xyz(colorants[2]!)],
    ['rTRC', curv], ['gTRC', curv], ['bTRC', curv]);
  const pad4 = (n: number) => (n + 3) & ~3;
  let off = pad4(128 + 4 + 12 * tags.length);
  const table = Buffer.alloc(4 + 12 * tags.length);
  table.writeUInt32BE(tags.length, 0);
  const body: Buffer[] = [];
  tags.forEach(([sig, data], i) => {
    table.write(sig, 4 + 12 * i, 'latin1');
    table.writeUInt32BE(off, 8 + 12 * i);
    table.writeUInt32BE(data.length, 12 + 12 * i);
    const padded = Buffer.alloc(pad4(data.length));
    data.copy(padded);
    body.push(padded);
    off += padded.length;
  });
  const header = Buffer.alloc(128);
  header.writeUInt32BE(off, 0);
  header.writeUInt32BE(0x02100000, 8);
  header.write('mntrRGB XYZ ', 12, 'latin1');
  header.writeUInt16BE(2026, 24);
  header.writeUInt16BE(1, 26);
  header.writeUInt16BE(1, 28);
  header.write('acsp', 36, 'latin1');
  [0.9642, 1, 0.8249].forEach((x, i) => header.writeInt32BE(Math.round(x * 65536), 68 + 4 * i));
  const out = Buffer.concat([header, table, Buffer.alloc(pad4(128 + table.length) - 128 - table.length), ...body]);
  return out;
}

/** Adobe RGB (1998): its D50 colorants and gamma 563/256. */
export const ADOBE_RGB_ICC = () => matrixIccProfile('Adobe RGB (1998) (generated)',
  [[0.60974, 0.31111, 0.01947], [0.20528, 0.62567, 0.06087], [0.14919, 0.06322, 0.74457]], 563 / 256);

/** jpeg with an APP1 Exif segment holding only IFD0 Orientation = o, right after SOI. */
export function withExifOrientation(jpeg: Buffer, o: number): Buffer {
  const tiff = Buffer.alloc(26);
  tiff.write('MM', 0, 'latin1');
  tiff.writeUInt16BE(42, 2);
  tiff.writeUInt32BE(8, 4);
  tiff.writeUInt16BE(1, 8); // one entry
  tiff.writeUInt16BE(0x0112, 10);
  tiff.writeUInt16BE(3, 12); // SHORT
  tiff.writeUInt32BE(1, 14);
  tiff.writeUInt16BE(o, 18);
  tiff.writeUInt32BE(0, 22); // no next IFD
  const body = Buffer.concat([Buffer.from('Exif\0\0', 'latin1'), tiff]);
  const seg = Buffer.alloc(4);
  seg.writeUInt16BE(0xffe1, 0);
  seg.writeUInt16BE(body.length + 2, 2);
  return Buffer.concat([jpeg.subarray(0, 2), seg, body, jpeg.subarray(2)]);
}

/** How one image of the realistic set is made (a function of its index). */
export interface RealisticSpec {
  width: number; height: number; quality: number; progressive: boolean;
  profile: 'none' | 'srgb' | 'p3' | 'adobe'; orientation: number; kind: 'rgb' | 'grey' | 'cmyk';
  /** Chroma subsampling: cameras' 4:2:0, and 4:4:4 for some high-quality files. */
  chroma: '4:2:0' | '4:4:4';
}

export function realisticSpec(i: number, seed = 0): RealisticSpec {
  const rng = Rng.forKey(seed, 7, i);
  const u = rng.uniform();
  // Longer side: most near ImageNet's typical 500 px, a tail up to 4000 px (several megapixels).
  const long = Math.round(u < 0.6 ? 400 + 240 * rng.uniform() : u < 0.88 ? 640 + 560 * rng.uniform() : u < 0.97 ? 1200 + 1200 * rng.uniform() : 2400 + 1600 * rng.uniform());
  const aspect = [4 / 3, 3 / 2, 4 / 3, 16 / 9, 1][rng.int(5)]!;
  const short = Math.max(300, Math.round(long / aspect));
  const portrait = rng.uniform() < 0.2;
  const p = rng.uniform();
  const profile = p < 0.12 ? 'srgb' : p < 0.225 ? 'p3' : p < 0.3 ? 'adobe' : 'none';
  const o = rng.uniform();
  const orientation = o < 0.05 ? 6 : o < 0.08 ? 8 : o < 0.1 ? 3 : o < 0.12 ? 2 : 1;
  const k = rng.uniform();
  const kind = k < 0.04 ? 'grey' : k < 0.046 ? 'cmyk' : 'rgb';
  const quality = 75 + rng.int(21);
  return {
    width: portrait ? short : long, height: portrait ? long : short, quality,
    progressive: rng.uniform() < 0.15, profile: kind === 'rgb' ? profile : 'none', orientation, kind,
    chroma: quality >= 90 && rng.uniform() < 0.3 ? '4:4:4' : '4:2:0',
  };
}

/**
 * The realistic set: photos as real ImageNet holds them. Sizes 300 to 4000 px on the longer side (60 %
 * 400-640 px, 28 % 640-1200, 9 % 1200-2400, 3 % 2400-4000), quality 75-95 (4:2:0, a third of those
 * from 90 up 4:4:4), 15 % progressive, 30 % with an embedded ICC profile (12 % sRGB, 10.5 % Display P3,
 * 7.5 % Adobe RGB (1998)), 12 % with an EXIF orientation other than 1, 4 % greyscale (one channel),
 * 0.6 % CMYK (real ImageNet has 22 CMYK files in 1.28 million: these cost 10x a photo to convert). Content: smooth gradients and blobs drawn at up to 640 px and resized
 * up, plus texture and pixel noise at full resolution (so entropy decoding costs what a photo's does).
 */
export async function makeRealisticJpegs(dir: string, n: number, seed = 0): Promise<string[]> {
  mkdirSync(dir, { recursive: true });
  const adobe = join(dir, 'adobe-rgb-1998.icc');
  if (!existsSync(adobe)) writeFileSync(adobe, ADOBE_RGB_ICC());
  const name = (i: number) => join(dir, `real${String(i).padStart(4, '0')}.jpg`);
  const have = new Set(readdirSync(dir));
  for (let i = 0; i < n; i++) {
    if (have.has(`real${String(i).padStart(4, '0')}.jpg`)) continue;
    const s = realisticSpec(i, seed);
    const rng = Rng.forKey(seed, 8, i);
    const f = Math.min(1, 640 / Math.max(s.width, s.height));
    const bw = Math.max(8, Math.round(s.width * f)), bh = Math.max(8, Math.round(s.height * f));
    const base = new Uint8Array(bw * bh * 3);
    for (let c = 0; c < 3; c++) {
      const ax = (rng.uniform() - 0.5) * 0.8 / f, ay = (rng.uniform() - 0.5) * 0.8 / f, b0 = 40 + 160 * rng.uniform();
      const blobs = Array.from({ length: 4 }, () => ({ x: rng.uniform() * bw, y: rng.uniform() * bh, r: (20 + 100 * rng.uniform()) * Math.max(f, 0.3), a: (rng.uniform() - 0.5) * 160 }));
      for (let y = 0; y < bh; y++)
        for (let x = 0; x < bw; x++) {
          let g = b0 + ax * x * f + ay * y * f;
          for (const b of blobs) g += b.a * Math.exp(-((x - b.x) ** 2 + (y - b.y) ** 2) / (2 * b.r * b.r));
          base[(y * bw + x) * 3 + c] = Math.max(0, Math.min(255, Math.round(g)));
        }
    }
    const px = await sharp(base, { raw: { width: bw, height: bh, channels: 3 } }).resize(s.width, s.height, { kernel: 'cubic' }).raw().toBuffer();
    // Texture (noise at half resolution) and pixel noise at full resolution.
    // Normal draws from a table of 2^16 indexed by a xorshift generator (a draw per value was most of the time).
    const normals = new Float32Array(1 << 16);
    for (let j = 0; j < normals.length; j++) normals[j] = rng.normal();
    let st = (rng.uint32() | 1) >>> 0;
    const next = () => { st ^= st << 13; st ^= st >>> 17; st ^= st << 5; return normals[(st >>> 0) & 0xffff]!; };
    const lw = (s.width >> 1) + 1;
    const lo = new Float32Array(((s.height >> 1) + 1) * lw);
    for (let j = 0; j < lo.length; j++) lo[j] = next() * 18;
    for (let y = 0; y < s.height; y++)
      for (let x = 0; x < s.width; x++) {
        const t = lo[(y >> 1) * lw + (x >> 1)]!;
        for (let c = 0; c < 3; c++) {
          const o = (y * s.width + x) * 3 + c;
          px[o] = Math.max(0, Math.min(255, Math.round(px[o]! + t + next() * 12)));
        }
      }
    let img = sharp(px, { raw: { width: s.width, height: s.height, channels: 3 } });
    if (s.kind === 'grey') img = img.toColourspace('b-w');
    if (s.kind === 'cmyk') img = img.toColourspace('cmyk');
    if (s.profile !== 'none') img = img.withIccProfile(s.profile === 'adobe' ? adobe : s.profile);
    const jpeg = await img.jpeg({ quality: s.quality, progressive: s.progressive, chromaSubsampling: s.chroma }).toBuffer();
    // sharp's withMetadata({ orientation }) also converts to sRGB with its profile: add the EXIF segment here.
    writeFileSync(name(i), s.orientation === 1 ? jpeg : withExifOrientation(jpeg, s.orientation));
  }
  return Array.from({ length: n }, (_, i) => name(i));
}
