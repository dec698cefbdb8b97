import { describe, it, expect, beforeAll } from 'vitest';
import sharp from 'sharp';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeResizeCrop, UndecodableImageError } from './decode.js';
import { prepareImageNet } from './prepare.js';
import { indexImageNet } from './layout.js';
import { openShards } from './loader.js';
import { readShardInfo, ShardReader } from './shard.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'alexnet-decode-'));
  return () => rmSync(dir, { recursive: true, force: true });
});

/** width x height RGB image with pixel(x, y) = f(x, y). */
function raw(width: number, height: number, f: (x: number, y: number) => [number, number, number]): Buffer {
  const b = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) b.set(f(x, y), (y * width + x) * 3);
  return b;
}
const img = (w: number, h: number, f: (x: number, y: number) => [number, number, number]) => sharp(raw(w, h, f), { raw: { width: w, height: h, channels: 3 } });

function at(px: Uint8Array, x: number, y: number, size = 256): number[] {
  const o = (y * size + x) * 3;
  return [px[o]!, px[o + 1]!, px[o + 2]!];
}
function near(a: number[], b: number[], tol: number): boolean {
  return a.every((v, i) => Math.abs(v - b[i]!) <= tol);
}

// The corpus of what real ImageNet holds (§2), generated here.
async function corpus(): Promise<Record<string, Buffer>> {
  const solid = (r: number, g: number, b: number) => img(64, 48, () => [r, g, b]);
  const jpeg = await solid(200, 40, 60).jpeg({ quality: 95 }).toBuffer();
  return {
    cmyk: await solid(200, 40, 60).toColourspace('cmyk').jpeg({ quality: 95 }).toBuffer(),
    grey: await solid(90, 90, 90).toColourspace('b-w').jpeg({ quality: 95 }).toBuffer(),
    pngAsJpeg: await solid(10, 200, 30).png().toBuffer(),
    truncated: (await img(300, 200, (x, y) => [x & 255, y & 255, (x * y) & 255]).jpeg({ quality: 90 }).toBuffer()).subarray(0, 3000),
    empty: Buffer.alloc(0),
    text: Buffer.from('this is not an image, it is a note someone saved as .JPEG\n'),
    good: jpeg,
  };
}

describe('decodeResizeCrop', () => {
  it('rescales the shorter side to 256 and keeps the central 256x256 (§2)', async () => {
    // 600x300: scaled by 256/300 to 512x256, the centre crop keeps source columns 150..450 (green).
    const src = await img(600, 300, (x) => (x < 150 ? [255, 0, 0] : x < 450 ? [0, 255, 0] : [0, 0, 255])).png().toBuffer();
    const px = await decodeResizeCrop(src);
    expect(px.length).toBe(256 * 256 * 3);
    for (const x of [3, 128, 252]) for (const y of [0, 255]) expect(at(px, x, y)).toEqual([0, 255, 0]);
    // Portrait 300x600: rows 150..450 kept; top of the crop is the boundary region, not red.
    const tall = await img(300, 600, (_, y) => (y < 150 ? [255, 0, 0] : y < 450 ? [0, 255, 0] : [0, 0, 255])).png().toBuffer();
    const pt = await decodeResizeCrop(tall);
    for (const y of [3, 128, 252]) expect(at(pt, 100, y)).toEqual([0, 255, 0]);
    // A red|green boundary at source column 300 of 600 lands at 256/300*300 - 128 = 128 in the crop.
    const half = await img(600, 300, (x) => (x < 300 ? [255, 0, 0] : [0, 255, 0])).png().toBuffer();
    const ph = await decodeResizeCrop(half);
    expect(at(ph, 125, 100)).toEqual([255, 0, 0]);
    expect(at(ph, 130, 100)).toEqual([0, 255, 0]);
  });

  it('upscales small images to 256 as well', async () => {
    const px = await decodeResizeCrop(await img(40, 30, () => [12, 34, 56]).png().toBuffer());
    expect(at(px, 0, 0)).toEqual([12, 34, 56]);
    expect(at(px, 255, 255)).toEqual([12, 34, 56]);
  });

  it('survives CMYK, greyscale and a PNG named .JPEG, giving 3-channel sRGB', async () => {
    const c = await corpus();
    const cmyk = await decodeResizeCrop(c.cmyk!);
    expect(near(at(cmyk, 128, 128), [200, 40, 60], 25)).toBe(true);
    const grey = await decodeResizeCrop(c.grey!);
    const g = at(grey, 128, 128);
    expect(g[0]).toBe(g[1]);
    expect(g[1]).toBe(g[2]);
    expect(Math.abs(g[0]! - 90)).toBeLessThanOrEqual(3);
    const png = await decodeResizeCrop(c.pngAsJpeg!, {}, 'x.JPEG');
    expect(at(png, 10, 10)).toEqual([10, 200, 30]);
    // 16-bit PNG: scaled to 8 bits, not rejected for its depth.
    const deep = await img(40, 30, () => [200, 100, 50]).toColourspace('rgb16').png().toBuffer();
    expect((await sharp(deep).metadata()).depth).toBe('ushort');
    expect(at(await decodeResizeCrop(deep), 20, 20)).toEqual([200, 100, 50]);
  });

  it('applies EXIF orientation', async () => {
    // Stored 200x100, left half red; orientation 6 = display rotated 90 degrees clockwise, so the
    // displayed image is 100x200 with red on top.
    const stored = await img(200, 100, (x) => (x < 100 ? [255, 0, 0] : [0, 0, 255])).jpeg({ quality: 95 }).withMetadata({ orientation: 6 }).toBuffer();
    expect((await sharp(stored).metadata()).orientation).toBe(6);
    const px = await decodeResizeCrop(stored);
    expect(near(at(px, 128, 20), [255, 0, 0], 30)).toBe(true);
    expect(near(at(px, 128, 235), [0, 0, 255], 30)).toBe(true);
  });

  it('decodes a huge JPEG (shrink-on-load) to the same picture', async () => {
    const huge = await img(4800, 3600, (x, y) => (x < 2400 ? [220, 30, 30] : y < 1800 ? [30, 220, 30] : [30, 30, 220])).jpeg({ quality: 80 }).toBuffer();
    const t0 = performance.now();
    const px = await decodeResizeCrop(huge);
    const ms = performance.now() - t0;
    expect(near(at(px, 40, 128), [220, 30, 30], 12)).toBe(true);
    expect(near(at(px, 220, 40), [30, 220, 30], 12)).toBe(true);
    expect(near(at(px, 220, 220), [30, 30, 220], 12)).toBe(true);
    expect(ms).toBeLessThan(5000);
  });

  it('rejects truncated, empty and non-image files with a reason', async () => {
    const c = await corpus();
    await expect(decodeResizeCrop(c.empty!, {}, 'e.JPEG')).rejects.toThrow('e.JPEG could not be decoded: the file is empty (0 bytes)');
    await expect(decodeResizeCrop(c.text!, {}, 't.JPEG')).rejects.toThrow('t.JPEG could not be decoded: not an image format sharp reads (JPEG, PNG, WebP, GIF, TIFF, ...)');
    await expect(decodeResizeCrop(c.truncated!, {}, 'tr.JPEG')).rejects.toThrow(/^tr\.JPEG could not be decoded: .*(premature end|truncated)/i);
    await expect(decodeResizeCrop(join(dir, 'missing.JPEG'))).rejects.toBeInstanceOf(UndecodableImageError);
  });
});

describe('prepare over a corpus of bad files', () => {
  it('skips, lists and counts the bad ones, never fails, and keeps the good ones', async () => {
    const c = await corpus();
    const root = join(dir, 'imagenet');
    const put = (rel: string, b: Buffer) => {
      mkdirSync(join(root, rel, '..'), { recursive: true });
      writeFileSync(join(root, rel), b);
    };
    put('train/n01000000/n01000000_1.JPEG', c.good!);
    put('train/n01000000/n01000000_2.JPEG', c.cmyk!);
    put('train/n01000000/n01000000_3.JPEG', c.truncated!);
    put('train/n01000000/n01000000_4.JPEG', c.empty!);
    put('train/n02000000/n02000000_1.JPEG', c.grey!);
    put('train/n02000000/n02000000_2.JPEG', c.pngAsJpeg!);
    put('train/n02000000/n02000000_3.JPEG', c.text!);
    const out = join(dir, 'shards');
    const report = await prepareImageNet({ source: root, out, shardSize: 3, workers: 2 });
    expect(report.splits.train).toEqual({ images: 4, failed: 3, shards: 3 });
    expect(report.failures.map((f) => f.path).sort()).toEqual([
      'train/n01000000/n01000000_3.JPEG', 'train/n01000000/n01000000_4.JPEG', 'train/n02000000/n02000000_3.JPEG',
    ]);
    for (const f of report.failures) expect(f.reason).toMatch(new RegExp(`^${f.path.replace(/\./g, '\\.')} could not be decoded: .+`));
    const saved = JSON.parse(readFileSync(join(out, 'prepare-report.json'), 'utf8'));
    expect(saved.failed).toBe(3);
    const ds = await openShards(out);
    expect(Array.from(ds.labels)).toEqual([0, 0, 1, 1]);
    // Each stored record is exactly what decodeResizeCrop gives for its file.
    const idx = await indexImageNet(root);
    const kept = idx.splits.train!.filter((s) => !report.failures.some((f) => s.path.endsWith(f.path)));
    const reader = new ShardReader();
    const src = ds.source as Extract<typeof ds.source, { kind: 'shards' }>;
    for (let i = 0; i < kept.length; i++) {
      const rec = reader.read(src.files[src.file[i]!]!, src.offset[i]!, src.length[i]!);
      expect(Buffer.from(rec).equals(Buffer.from(await decodeResizeCrop(kept[i]!.path)))).toBe(true);
    }
    reader.close();
    expect(readShardInfo(src.files[0]!).meta.sources).toEqual(['train/n01000000/n01000000_1.JPEG', 'train/n01000000/n01000000_2.JPEG']);
  });
});
