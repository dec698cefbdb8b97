import { describe, it, expect, beforeAll } from 'vitest';
import { cpSync, copyFileSync, readdirSync, readFileSync, writeFileSync, existsSync, truncateSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { indexImageNet } from './layout.js';
import { prepareImageNet, estimatePrepareBytes, formatBytes, type PrepareReport } from './prepare.js';
import { decodeResizeCrop } from './decode.js';
import { openShards } from './loader.js';
import { readShardInfo, ShardReader, HEADER_BYTES, ENTRY_BYTES } from './shard.js';
import { loadStatistics } from './stats.js';
import { collect, sampleImageNet } from './test-util.js';

let dir: string;
let src: string;
beforeAll(async () => {
  const s = await sampleImageNet('prepare', 'imagenet', { classes: 3, perClass: 7, valPerClass: 2, seed: 4, longSide: 72 });
  ({ dir, src } = s);
  return s.remove;
});

const shardFiles = (out: string) => readdirSync(out).filter((f) => f.endsWith('.shard')).sort();

describe('prepareImageNet', () => {
  it('writes shards in the documented format, with records equal to decodeResizeCrop of each file', async () => {
    const out = join(dir, 'raw');
    const report = await prepareImageNet({ source: src, out, shardSize: 8, workers: 2 });
    expect(report.splits).toEqual({ train: { images: 21, failed: 0, shards: 3 }, val: { images: 6, failed: 0, shards: 1 } });
    expect(shardFiles(out)).toEqual(['train-00000.shard', 'train-00001.shard', 'train-00002.shard', 'val-00000.shard']);
    // Header fields by hand, at the documented offsets.
    const b = readFileSync(join(out, 'train-00002.shard'));
    expect(b.toString('latin1', 0, 8)).toBe('ALXSHRD1');
    expect([b.readUInt32LE(8), b.readUInt32LE(12), b.readUInt32LE(16), b.readUInt32LE(20), b.readUInt32LE(24), b.readUInt32LE(28)]).toEqual([1, 5, 256, 256, 3, 0]);
    const dataOffset = Number(b.readBigUInt64LE(48));
    expect(dataOffset).toBe(HEADER_BYTES + 8 * ENTRY_BYTES);
    expect(Number(b.readBigUInt64LE(64))).toBe(dataOffset); // first record right after the index
    expect(b.readUInt32LE(64 + 8)).toBe(256 * 256 * 3);
    expect(b.readUInt32LE(64 + 16)).toBe(16); // sample position in the split
    const metaOffset = Number(b.readBigUInt64LE(40));
    expect(b.length).toBe(metaOffset + b.readUInt32LE(36));
    expect(JSON.parse(b.toString('utf8', metaOffset)).first).toBe(16);

    const idx = await indexImageNet(src);
    const reader = new ShardReader();
    for (const split of ['train', 'val'] as const) {
      const samples = idx.splits[split]!;
      let k = 0;
      for (const f of shardFiles(out).filter((f) => f.startsWith(split))) {
        const info = readShardInfo(join(out, f));
        for (const e of info.entries) {
          expect(e.sample).toBe(k);
          expect(e.label).toBe(samples[k]!.label);
          const rec = reader.read(join(out, f), e.offset, e.length);
          if (k % 5 === 0) expect(Buffer.from(rec).equals(Buffer.from(await decodeResizeCrop(samples[k]!.path)))).toBe(true);
          k++;
        }
      }
      expect(k).toBe(samples.length);
    }
    reader.close();
    expect(readdirSync(out).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('saves the mean image, channel mean and RGB covariance of the training set (not val)', async () => {
    const out = join(dir, 'raw');
    const stats = await loadStatistics(out);
    const idx = await indexImageNet(src);
    // Independent float64 computation from freshly decoded training images.
    const imgs = await Promise.all(idx.splits.train!.map((s) => decodeResizeCrop(s.path)));
    const n = imgs.length;
    expect(stats.images).toBe(21);
    for (const i of [0, 1, 2, 999, 98304, 196607]) {
      const m = imgs.reduce((a, im) => a + im[i]!, 0) / n;
      expect(stats.meanImage[i]).toBeCloseTo(m, 3);
    }
    const px = n * 256 * 256;
    const mu = [0, 1, 2].map((c) => imgs.reduce((a, im) => { for (let p = c; p < im.length; p += 3) a += im[p]!; return a; }, 0) / px);
    for (let c = 0; c < 3; c++) expect(stats.channelMean[c]).toBeCloseTo(mu[c]!, 8);
    let crg = 0;
    for (const im of imgs) for (let p = 0; p < im.length; p += 3) crg += (im[p]! - mu[0]!) * (im[p + 1]! - mu[1]!);
    expect(stats.covariance[0]![1]).toBeCloseTo(crg / px, 6);
    // Eigen-decomposition consistent with the covariance: C p1 = l1 p1.
    const C = stats.covariance, p1 = stats.eigenvectors[0];
    for (let i = 0; i < 3; i++) expect(C[i]!.reduce((a, v, j) => a + v * p1[j]!, 0)).toBeCloseTo(stats.eigenvalues[0] * p1[i]!, 6);
    const js = JSON.parse(readFileSync(join(out, 'stats.json'), 'utf8'));
    expect(js.scale).toBe('uint8 pixel values, 0..255');
    expect(statSync(join(out, 'mean-image.f32')).size).toBe(256 * 256 * 3 * 4);
  });

  it('resumes after an interrupted prepare, redoing only missing or incomplete shards, to the same bytes', async () => {
    const out = join(dir, 'resume');
    const ac = new AbortController();
    let seen = 0;
    await expect(
      prepareImageNet({
        source: src, out, shardSize: 3, workers: 1,
        progress: (p) => { seen = p.done; if (p.done >= 8) ac.abort(); },
        signal: ac.signal,
      }),
    ).rejects.toThrow(/was aborted; the complete shards are kept and the next run resumes/);
    expect(seen).toBeGreaterThanOrEqual(8);
    expect(existsSync(join(out, 'manifest.json'))).toBe(false);
    const done = shardFiles(out);
    expect(done.length).toBeGreaterThanOrEqual(2);
    expect(done.length).toBeLessThan(9);
    // A crash mid-write leaves a temporary file; a damaged final shard must not be trusted either.
    writeFileSync(join(out, 'train-00006.shard.tmp'), 'half a shard');
    truncateSync(join(out, done[1]!), 1000);

    let progressed = 0;
    const r: PrepareReport = await prepareImageNet({ source: src, out, shardSize: 3, workers: 2, progress: (p) => (progressed = p.done) });
    expect(progressed).toBe(27);
    expect(r.reusedShards).toBe(done.length - 1);
    expect(r.splits.train!.images).toBe(21);
    expect(readdirSync(out).filter((f) => f.endsWith('.tmp'))).toEqual([]);

    const fresh = join(dir, 'fresh');
    const r2 = await prepareImageNet({ source: src, out: fresh, shardSize: 3, workers: 2 });
    expect(shardFiles(out)).toEqual(shardFiles(fresh));
    for (const f of shardFiles(out)) expect(readFileSync(join(out, f)).equals(readFileSync(join(fresh, f)))).toBe(true);
    expect(readFileSync(join(out, 'mean-image.f32')).equals(readFileSync(join(fresh, 'mean-image.f32')))).toBe(true);
    expect(r.statistics!.covariance).toEqual(r2.statistics!.covariance);
    // Running again reuses everything.
    const r3 = await prepareImageNet({ source: src, out, shardSize: 3, workers: 2 });
    expect(r3.reusedShards).toBe(9);
  });

  it('does not reuse a shard whose files or labels changed since it was written', async () => {
    const copy = join(dir, 'changing');
    cpSync(src, copy, { recursive: true });
    const out = join(dir, 'changing-out');
    await prepareImageNet({ source: copy, out, shardSize: 4, workers: 2, splits: ['train'] });
    // A new image sorts into the middle of class 1: shards from there on hold different files.
    const idx0 = await indexImageNet(copy);
    const wnid = idx0.classes[1]!.wnid;
    copyFileSync(idx0.splits.train![0]!.path, join(copy, 'train', wnid, `${wnid}_1a.JPEG`));
    const r = await prepareImageNet({ source: copy, out, shardSize: 4, workers: 2, splits: ['train'] });
    const idx = await indexImageNet(copy);
    const firstChanged = Math.floor(idx.splits.train!.findIndex((s) => s.path.endsWith('_1a.JPEG')) / 4);
    expect(r.reusedShards).toBe(firstChanged);
    const ds = await openShards(out);
    expect(Array.from(ds.labels)).toEqual(idx.splits.train!.map((s) => s.label));
    expect(readShardInfo(join(out, 'train-00005.shard')).meta.sources).toEqual(idx.splits.train!.slice(20).map((s) => s.path.slice(copy.length + 1)));
  });

  it('optionally stores JPEG records at a chosen quality, close to the raw pixels', async () => {
    const out = join(dir, 'jpeg');
    await prepareImageNet({ source: src, out, shardSize: 16, workers: 2, encoding: 'jpeg', quality: 92, splits: ['train'] });
    const info = readShardInfo(join(out, 'train-00000.shard'));
    expect(info.header.encoding).toBe('jpeg');
    expect(info.header.quality).toBe(92);
    const rawBytes = statSync(join(dir, 'raw', 'train-00000.shard')).size;
    expect(statSync(join(out, 'train-00000.shard')).size * 3).toBeLessThan(rawBytes);
    const ds = await openShards(out);
    expect(ds.length).toBe(21);
    const rawDs = await openShards(join(dir, 'raw'));
    // Centre crops of JPEG records vs raw records: mean absolute difference of a few levels.
    const { createLoader } = await import('./loader.js');
    const a = createLoader(ds, { batchSize: 21, mode: 'center', mean: 'none', workers: 0 });
    const b = createLoader(rawDs, { batchSize: 21, mode: 'center', mean: 'none', workers: 0 });
    const [ba] = await collect(a.epoch(0));
    const [bb] = await collect(b.epoch(0));
    let d = 0;
    for (let i = 0; i < ba!.images.length; i++) d += Math.abs(ba!.images[i]! - bb!.images[i]!);
    expect(d / ba!.images.length).toBeLessThan(3);
    expect(d / ba!.images.length).toBeGreaterThan(0);
    await a.close();
    await b.close();
  });

  it("turns libvips' operation cache off for the run and restores it", async () => {
    const sharp = (await import('sharp')).default;
    sharp.cache({ memory: 40, files: 7, items: 90 });
    let during = -1;
    await prepareImageNet({
      source: src, out: join(dir, 'cache'), shardSize: 64, workers: 0, splits: ['val'],
      progress: () => (during = sharp.cache().items.max),
    });
    expect(during).toBe(0);
    const after = sharp.cache();
    expect([after.memory.max, after.files.max, after.items.max]).toEqual([40, 7, 90]);
    sharp.cache(true);
  });

  it('estimates the bytes it writes (raw and JPEG), and says so at the start', async () => {
    const folderBytes = (out: string) => readdirSync(out).reduce((a, f) => a + statSync(join(out, f)).size, 0);
    // The first test's output: 21 + 6 images in 3 + 1 shards of 8.
    const raw = join(dir, 'raw');
    const est = estimatePrepareBytes({ images: 27, trainImages: 21, shards: 4, shardSize: 8 });
    expect(Math.abs(est - folderBytes(raw)) / folderBytes(raw)).toBeLessThan(0.01);
    // ILSVRC-2012's training set at the defaults: about 252 GB; JPEG records at about 30 kB each.
    const ilsvrc = estimatePrepareBytes({ images: 1281167 });
    expect(ilsvrc / 1e9).toBeGreaterThan(251.5);
    expect(ilsvrc / 1e9).toBeLessThan(252.5);
    expect(formatBytes(ilsvrc)).toBe('252 GB');
    expect(formatBytes(estimatePrepareBytes({ images: 1281167, encoding: 'jpeg' }))).toBe('38.5 GB');

    for (const encoding of ['raw', 'jpeg'] as const) {
      const out = join(dir, `estimate-${encoding}`);
      const logs: string[] = [];
      const r = await prepareImageNet({ source: src, out, shardSize: 8, workers: 1, encoding, splits: ['train'], log: (m) => logs.push(m) });
      expect(r.bytes).toBe(folderBytes(out) - statSync(join(out, 'manifest.json')).size - statSync(join(out, 'prepare-report.json')).size);
      // Raw records have a fixed size; JPEG records are measured on a sample of the images first.
      expect(Math.abs(r.estimatedBytes - r.bytes) / r.bytes).toBeLessThan(encoding === 'raw' ? 0.01 : 0.05);
      expect(logs).toHaveLength(1);
      expect(logs[0]).toMatch(
        encoding === 'raw'
          ? new RegExp(`^prepare will write about ${formatBytes(r.estimatedBytes)} of raw shards \\(21 images at 256x256\\) to ${out}; JPEG records \\(encoding 'jpeg', quality 90\\) would take about [\\d.]+ [kM]B$`)
          : new RegExp(`^prepare will write about ${formatBytes(r.estimatedBytes)} of JPEG shards \\(21 images at 256x256, quality 90\\) to ${out}; raw records would take about [\\d.]+ MB$`),
      );
    }
  });

  it('validates its options with sentences', async () => {
    await expect(prepareImageNet({ source: src, out: join(dir, 'x'), shardSize: 0 })).rejects.toThrow('Expected a positive integer for shardSize but received 0 of type number');
    await expect(prepareImageNet({ source: src, out: join(dir, 'x'), quality: 101, encoding: 'jpeg' })).rejects.toThrow(/Expected an integer 1\.\.100 for quality/);
  });
});
