import { describe, it, expect, beforeAll } from 'vitest';
import sharp from 'sharp';
import { mkdtempSync, rmSync, readFileSync, readdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createSampleImageNet, drawSampleImage } from './sample.js';
import { indexImageNet } from './layout.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'alexnet-sample-'));
  return () => rmSync(dir, { recursive: true, force: true });
});

function listAll(root: string): string[] {
  return readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name).slice(root.length + 1))
    .sort();
}

describe('createSampleImageNet', () => {
  it('writes real JPEGs in the ILSVRC-2012 layout whose labels index back correctly, deterministically', async () => {
    const a = join(dir, 'a'), b = join(dir, 'b'), c = join(dir, 'c'), f = join(dir, 'f');
    const opts = { classes: 4, perClass: 3, valPerClass: 2, seed: 5, longSide: 48 };
    const r = await createSampleImageNet({ dir: a, ...opts });
    await createSampleImageNet({ dir: b, ...opts });
    await createSampleImageNet({ dir: c, ...opts, seed: 6 });
    await createSampleImageNet({ dir: f, ...opts, valLayout: 'folders' });
    expect(r.train).toBe(12);
    expect(r.val).toBe(8);
    const files = listAll(a);
    expect(files).toContain('LOC_synset_mapping.txt');
    expect(files).toContain('ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt');
    expect(files).toContain('ILSVRC2012_devkit_t12/data/meta.mat');
    expect(files).toContain(`train/${r.classes[0]!.wnid}/${r.classes[0]!.wnid}_1.JPEG`);
    expect(files).toContain('val/ILSVRC2012_val_00000008.JPEG');
    expect(r.classes[0]!.wnid).toMatch(/^n\d{8}$/);
    for (const p of files) expect(readFileSync(join(a, p)).equals(readFileSync(join(b, p)))).toBe(true);
    expect(readFileSync(join(a, 'val/ILSVRC2012_val_00000001.JPEG')).equals(readFileSync(join(c, 'val/ILSVRC2012_val_00000001.JPEG')))).toBe(false);
    const meta = await sharp(readFileSync(join(a, files.find((p) => p.startsWith('train/'))!))).metadata();
    expect(meta.format).toBe('jpeg');
    expect(meta.channels).toBe(3);
    // The flat val/ labels (ground truth in devkit order via meta.mat) agree with the val/<wnid>/ variant.
    const flat = await indexImageNet(a);
    const folders = await indexImageNet(f);
    const byName = new Map(folders.splits.val!.map((s) => [s.path.split('/').pop(), s.label]));
    expect(flat.splits.val!.map((s) => byName.get(s.path.split('/').pop()))).toEqual(flat.splits.val!.map((s) => s.label));
    expect(new Set(flat.splits.val!.map((s) => s.label)).size).toBe(4);
    expect(flat.classes.map((x) => x.name)).toEqual(r.classes.map((x) => x.name));
  });

  it('varies position, scale and background within a class, and colour alone does not give the class', () => {
    // Nearest class-mean classifier on the mean RGB of each image: well below perfect.
    const classes = 10, per = 24;
    const feats: number[][][] = [];
    for (let c = 0; c < classes; c++) {
      feats.push([]);
      for (let i = 0; i < per; i++) {
        const im = drawSampleImage(1, c, i, 40);
        const m = [0, 0, 0];
        for (let p = 0; p < im.data.length; p++) m[p % 3]! += im.data[p]!;
        feats[c]!.push(m.map((v) => v / (im.data.length / 3)));
      }
    }
    const half = per / 2;
    const centroid = feats.map((fs) => [0, 1, 2].map((k) => fs.slice(0, half).reduce((a, f) => a + f[k]!, 0) / half));
    let right = 0;
    for (let c = 0; c < classes; c++) {
      for (const f of feats[c]!.slice(half)) {
        const d = centroid.map((m) => m.reduce((a, v, k) => a + (v - f[k]!) ** 2, 0));
        if (d.indexOf(Math.min(...d)) === c) right++;
      }
    }
    const acc = right / (classes * half);
    expect(acc).toBeLessThan(0.5);
    // Two images of one class differ (position, scale, background).
    const x = drawSampleImage(1, 0, 0, 40), y = drawSampleImage(1, 0, 1, 40);
    expect(Buffer.from(x.data).equals(Buffer.from(y.data))).toBe(false);
  });


});
