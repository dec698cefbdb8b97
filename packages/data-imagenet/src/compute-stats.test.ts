// Statistics (§2 mean image, §4.1 PCA lighting) from a raw folder, without prepare.
import { describe, it, expect, beforeAll } from 'vitest';
import { cpSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { prepareImageNet } from './prepare.js';
import { indexImageNet } from './layout.js';
import { computeStatistics } from './compute-stats.js';
import { createLoader, openImageFolder, openShards, withStatistics, type Batch, type Dataset } from './loader.js';
import { loadStatistics, saveStatistics, type Statistics } from './stats.js';
import { sampleImageNet } from './test-util.js';

const SIZE = 48;
let dir: string;
let folder: Dataset;
let prepared: Statistics;
beforeAll(async () => {
  const s = await sampleImageNet('compute-stats', 'in', { classes: 3, perClass: 5, valPerClass: 1, seed: 8, longSide: 56 });
  dir = s.dir;
  await prepareImageNet({ source: join(dir, 'in'), out: join(dir, 'out'), size: SIZE, shardSize: 8, workers: 0 });
  prepared = await loadStatistics(join(dir, 'out'));
  const idx = await indexImageNet(join(dir, 'in'));
  folder = await openImageFolder({ samples: idx.splits.train!, classes: idx.classes }, { size: SIZE });
  return s.remove;
});

function expectSameStatistics(a: Statistics, b: Statistics): void {
  expect(a.images).toBe(b.images);
  expect(a.size).toBe(b.size);
  expect(a.meanImage.length).toBe(b.meanImage.length);
  let worst = 0;
  for (let i = 0; i < a.meanImage.length; i++) worst = Math.max(worst, Math.abs(a.meanImage[i]! - b.meanImage[i]!));
  expect(worst).toBeLessThan(1e-4);
  for (let c = 0; c < 3; c++) {
    expect(a.channelMean[c]).toBeCloseTo(b.channelMean[c]!, 9);
    expect(a.eigenvalues[c]).toBeCloseTo(b.eigenvalues[c]!, 7);
    for (let k = 0; k < 3; k++) {
      expect(a.covariance[c]![k]).toBeCloseTo(b.covariance[c]![k]!, 7);
      expect(a.eigenvectors[c]![k]).toBeCloseTo(b.eigenvectors[c]![k]!, 7);
    }
  }
}

describe('computeStatistics', () => {
  it('over all images of a folder equals what prepareImageNet writes', async () => {
    const s = await computeStatistics(folder, { workers: 2 });
    expect(s.images).toBe(15);
    expect(Array.from(s.positions)).toEqual(Array.from({ length: 15 }, (_, i) => i));
    expect(s.sample).toEqual({ seed: 0, drawn: 15, of: 15 });
    expect(s.failures).toEqual([]);
    expectSameStatistics(s, prepared);
    // From the shards too (the loader's other decode path).
    expectSameStatistics(await computeStatistics(await openShards(join(dir, 'out')), { workers: 0 }), prepared);
  });

  it('draws a seeded uniform sample: same seed, same result whatever the workers; another seed, another subset', async () => {
    const a = await computeStatistics(folder, { samples: 6, seed: 1, workers: 0 });
    const b = await computeStatistics(folder, { samples: 6, seed: 1, workers: 2 });
    const c = await computeStatistics(folder, { samples: 6, seed: 2, workers: 1 });
    expect(a.images).toBe(6);
    expect(a.sample).toEqual({ seed: 1, drawn: 6, of: 15 });
    expect(Array.from(a.positions)).toEqual(Array.from(b.positions));
    expect(Buffer.from(a.meanImage.buffer).equals(Buffer.from(b.meanImage.buffer))).toBe(true);
    expect(a.covariance).toEqual(b.covariance);
    expect(Array.from(a.positions)).not.toEqual(Array.from(c.positions));
    expect(a.covariance).not.toEqual(c.covariance);
    // Increasing positions, each drawn once.
    expect(Array.from(a.positions)).toEqual([...new Set(a.positions)].sort((x, y) => x - y));
  });

  it('skips and lists images it cannot decode', async () => {
    const copy = join(dir, 'broken');
    cpSync(join(dir, 'in'), copy, { recursive: true });
    const idx = await indexImageNet(copy);
    const ds = await openImageFolder({ samples: idx.splits.train!, classes: idx.classes }, { size: SIZE });
    unlinkSync(idx.splits.train![4]!.path);
    const s = await computeStatistics(ds, { workers: 1 });
    expect(s.images).toBe(14);
    expect(s.failures).toEqual([{ sample: 4, reason: `${idx.splits.train![4]!.path} could not be decoded: it could not be read (the file does not exist)` }]);
  });

  it('attached to a folder data set, makes the loader subtract the mean image and apply PCA lighting as with shards', async () => {
    const s = await computeStatistics(folder, { workers: 1 });
    const withStats = withStatistics(folder, s);
    expect(withStats.statistics).toBe(s);
    expect(folder.statistics).toBeNull(); // the original is left alone
    const shards = await openShards(join(dir, 'out'));
    const batches = async (ds: Dataset): Promise<Batch[]> => {
      const l = createLoader(ds, { batchSize: 5, crop: 40, seed: 3, workers: 1, recycle: false });
      expect(l.spec.mean.kind).toBe('image');
      expect(l.spec.lighting).not.toBeNull();
      const out: Batch[] = [];
      for await (const b of l.epoch(0)) out.push(b);
      await l.close();
      return out;
    };
    const [a, b] = [await batches(withStats), await batches(shards)];
    expect(a.length).toBe(3);
    a.forEach((x, i) => expect(Buffer.from(x.images.buffer).equals(Buffer.from(b[i]!.images.buffer))).toBe(true));
    expect(() => withStatistics(folder, { ...s, size: 64, meanImage: new Float32Array(64 * 64 * 3) })).toThrow(
      'statistics are of 64x64 images but the data set holds 48x48 images: compute them at the data set\'s size',
    );
  });

  it('saves into a run folder (created) and loads back the same statistics and sample', async () => {
    const s = await computeStatistics(folder, { samples: 7, seed: 4, workers: 0 });
    const run = join(dir, 'runs', 'first', 'statistics');
    await saveStatistics(run, s);
    const back = await loadStatistics(run);
    expectSameStatistics(back, s);
    expect(Buffer.from(back.meanImage.buffer).equals(Buffer.from(s.meanImage.buffer))).toBe(true);
    expect(back.sample).toEqual({ seed: 4, drawn: 7, of: 15 });
    await expect(loadStatistics(join(dir, 'runs', 'none'))).rejects.toThrow(`${join(dir, 'runs', 'none')} has no stats.json`);
  });
});
