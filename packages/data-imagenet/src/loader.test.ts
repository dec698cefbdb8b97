import { describe, it, expect, beforeAll } from 'vitest';
import { join } from 'node:path';
import { prepareImageNet } from './prepare.js';
import { createLoader, openImageFolder, openShards, type Batch, type Dataset, type LoaderOptions } from './loader.js';
import { drawAugmentation, transformImage } from './transform.js';
import { ShardReader } from './shard.js';
import { collect, sampleImageNet } from './test-util.js';

let dir: string;
let shards: string;
let train: Dataset;
beforeAll(async () => {
  const s = await sampleImageNet('loader', 'in', { classes: 3, perClass: 6, valPerClass: 1, seed: 2, longSide: 64 });
  dir = s.dir;
  shards = join(dir, 'shards');
  await prepareImageNet({ source: join(dir, 'in'), out: shards, shardSize: 5, workers: 2 });
  train = await openShards(shards);
  return s.remove;
});

async function epochs(ds: Dataset, opts: LoaderOptions, es: number[]): Promise<Batch[][]> {
  const l = createLoader(ds, { recycle: false, ...opts });
  try {
    const out: Batch[][] = [];
    for (const e of es) out.push(await collect(l.epoch(e)));
    return out;
  } finally {
    await l.close();
  }
}

function same(a: Batch[], b: Batch[]): boolean {
  return a.length === b.length && a.every((x, i) => Buffer.from(x.images.buffer).equals(Buffer.from(b[i]!.images.buffer)) && x.labels.join() === b[i]!.labels.join());
}

describe('Loader', () => {
  it('gives identical batches for a seed whatever the number of workers (0, 1, 2, 3)', async () => {
    const opts = { batchSize: 4, seed: 17, lighting: true, prefetch: 3 } as const;
    const runs = await Promise.all([0, 1, 2, 3].map((w) => epochs(train, { ...opts, workers: w }, [0, 1])));
    for (const r of runs.slice(1)) {
      expect(same(r[0]!, runs[0]![0]!)).toBe(true);
      expect(same(r[1]!, runs[0]![1]!)).toBe(true);
    }
    // A different epoch or seed is a different stream.
    expect(same(runs[0]![0]!, runs[0]![1]!)).toBe(false);
    const other = await epochs(train, { ...opts, seed: 18, workers: 0 }, [0]);
    expect(same(other[0]!, runs[0]![0]!)).toBe(false);
  });

  it('parts of every batch (data-parallel ranks) put together are the whole batches, bytes and all', async () => {
    const opts = { batchSize: 7, seed: 5, lighting: true, workers: 1 } as const;
    const [whole] = await epochs(train, opts, [1]);
    for (const size of [2, 3]) {
      const parts = await Promise.all(Array.from({ length: size }, (_, rank) => epochs(train, { ...opts, part: { rank, size } }, [1])));
      whole!.forEach((b, i) => {
        const ps = parts.map((p) => p[0]![i]!);
        expect(ps.map((p) => p.offset)).toEqual(ps.map((_, r) => Math.floor((r * b.labels.length) / size)));
        expect(ps.every((p) => p.total === b.labels.length && p.index === b.index)).toBe(true);
        expect(ps.flatMap((p) => [...p.samples])).toEqual([...b.samples]);
        expect(ps.flatMap((p) => [...p.labels])).toEqual([...b.labels]);
        expect(Buffer.concat(ps.map((p) => Buffer.from(p.images.buffer, p.images.byteOffset, p.images.byteLength))).equals(Buffer.from(b.images.buffer))).toBe(true);
      });
    }
    expect(() => createLoader(train, { batchSize: 4, part: { rank: 2, size: 2 } })).toThrow(/part\.rank < part\.size but received rank 2 of size 2/);
  });

  it('starts an epoch at a given batch (resume) with the same batches as the whole epoch', async () => {
    const whole = await epochs(train, { batchSize: 5, seed: 4, workers: 1 }, [1]);
    const loader = createLoader(train, { batchSize: 5, seed: 4, workers: 1 });
    const tail: { index: number; images: Float32Array; samples: Int32Array }[] = [];
    for await (const b of loader.epoch(1, { from: 2 })) tail.push({ index: b.index, images: b.images.slice(), samples: b.samples.slice() });
    await loader.close();
    expect(tail.map((b) => b.index)).toEqual(whole[0]!.slice(2).map((b) => b.index));
    tail.forEach((b, i) => {
      expect(b.samples).toEqual(whole[0]![i + 2]!.samples);
      expect(b.images).toEqual(whole[0]![i + 2]!.images);
    });
  });

  it('covers every sample once per epoch in a seeded shuffle, as float32 NCHW with int32 labels', async () => {
    const [e0, e1] = await epochs(train, { batchSize: 4, seed: 1, workers: 2 }, [0, 1]);
    expect(e0!.map((b) => b.shape)).toEqual([[4, 3, 224, 224], [4, 3, 224, 224], [4, 3, 224, 224], [4, 3, 224, 224], [2, 3, 224, 224]]);
    const order0 = e0!.flatMap((b) => Array.from(b.samples)), order1 = e1!.flatMap((b) => Array.from(b.samples));
    expect([...order0].sort((a, b) => a - b)).toEqual(Array.from({ length: 18 }, (_, i) => i));
    expect(order0).not.toEqual(order1);
    expect(order0).not.toEqual([...order0].sort((a, b) => a - b));
    for (const b of e0!) {
      expect(b.images).toBeInstanceOf(Float32Array);
      expect(b.labels).toBeInstanceOf(Int32Array);
      expect(b.images.length).toBe(b.shape.reduce((a, v) => a * v));
      expect(Array.from(b.labels)).toEqual(Array.from(b.samples, (s) => train.labels[s]!));
    }
    const dropped = await epochs(train, { batchSize: 4, workers: 0, dropLast: true }, [0]);
    expect(dropped[0]!.length).toBe(4);
  });

  it('computes each training image as transformImage of its record with (seed, epoch, sample) randomness and the mean image', async () => {
    const [e] = await epochs(train, { batchSize: 5, seed: 9, workers: 2, crop: 227, lighting: { std: 0.1 } }, [3]);
    const stats = train.statistics!;
    const src = train.source as Extract<Dataset['source'], { kind: 'shards' }>;
    const reader = new ShardReader();
    const b = e![1]!;
    const n = 3 * 227 * 227;
    for (let i = 0; i < b.samples.length; i++) {
      const s = b.samples[i]!;
      const px = reader.read(src.files[src.file[s]!]!, src.offset[s]!, src.length[s]!);
      const out = new Float32Array(n);
      const spec = { mode: 'train' as const, size: 256, crop: 227, flip: true, mean: { kind: 'image' as const, image: stats.meanImage }, lighting: { eigenvalues: stats.eigenvalues, eigenvectors: stats.eigenvectors, std: 0.1, magnitude: 'eigenvalue' as const } };
      transformImage(px, spec, 9, 3, s, out, 0);
      expect(Buffer.from(out.buffer).equals(Buffer.from(b.images.buffer, i * n * 4, n * 4))).toBe(true);
      // And by hand for one value: pixel - mean + lighting shift at the drawn position.
      const a = drawAugmentation(9, 3, s, spec);
      const j = (a.y * 256 + a.x + (a.flip ? 226 : 0)) * 3;
      const shift = [0, 1, 2].reduce((acc, k) => acc + stats.eigenvectors[k]![0]! * a.alpha[k]! * stats.eigenvalues[k]! / 255, 0);
      expect(b.images[i * n]!).toBeCloseTo(px[j]! - stats.meanImage[j]! + shift, 2);
    }
    reader.close();
  });

  it('groups the ten crops of each image consecutively; crop 5 is the centre crop', async () => {
    const val = await openShards(shards, 'val');
    const stats = train.statistics!;
    const [ten] = await epochs(val, { batchSize: 2, mode: 'tenCrop', statistics: stats, workers: 1 }, [0]);
    const [centre] = await epochs(val, { batchSize: 2, mode: 'center', statistics: stats, workers: 0 }, [0]);
    const n = 3 * 224 * 224;
    expect(ten![0]!.shape).toEqual([20, 3, 224, 224]);
    expect(ten![0]!.cropsPerImage).toBe(10);
    expect(ten![0]!.labels.length).toBe(2);
    for (let b = 0; b < ten!.length; b++) {
      for (let i = 0; i < ten![b]!.labels.length; i++) {
        const c5 = ten![b]!.images.subarray((i * 10 + 4) * n, (i * 10 + 5) * n);
        expect(Array.from(c5)).toEqual(Array.from(centre![b]!.images.subarray(i * n, (i + 1) * n)));
      }
    }
    await expect(epochs(val, { batchSize: 2, mode: 'center', lighting: true, statistics: stats }, [0])).rejects.toThrow(/PCA lighting is a training augmentation/);
  });

  it('reads an image folder on the fly, giving the same batches as its shards', async () => {
    const folder = await openImageFolder(join(dir, 'in', 'train'), { statistics: train.statistics! });
    expect(folder.length).toBe(train.length);
    expect(Array.from(folder.labels)).toEqual(Array.from(train.labels));
    const opts = { batchSize: 6, seed: 3, lighting: true } as const;
    const [a] = await epochs(folder, { ...opts, workers: 2 }, [0]);
    const [b] = await epochs(train, { ...opts, workers: 0 }, [0]);
    expect(same(a!, b!)).toBe(true);
    expect(a!.every((x) => x.failures.length === 0)).toBe(true);
  });

  it('recycles batch memory: identical values, in at most prefetch + 1 shared buffers', async () => {
    const opts = { batchSize: 4, seed: 5, workers: 2, prefetch: 2 } as const;
    const want = await epochs(train, opts, [0, 1]);
    for (const workers of [0, 2]) {
      const l = createLoader(train, { ...opts, workers, recycle: true });
      const seen = new Set<ArrayBufferLike>();
      for (let e = 0; e < 2; e++) {
        let k = 0;
        for await (const b of l.epoch(e)) {
          expect(b.images.buffer).toBeInstanceOf(SharedArrayBuffer);
          seen.add(b.images.buffer);
          expect(Buffer.from(b.images.buffer, b.images.byteOffset, b.images.byteLength).equals(Buffer.from(want[e]![k]!.images.buffer))).toBe(true);
          k++;
        }
        expect(k).toBe(5);
      }
      // An early exit returns the in-flight buffers too.
      for await (const b of l.epoch(2)) if (b.index === 0) break;
      await new Promise((r) => setTimeout(r, 100));
      for await (const b of l.epoch(3)) seen.add(b.images.buffer);
      expect(seen.size).toBeLessThanOrEqual(3);
      await l.close();
    }
  });

  it('gives the same bits with the SIMD kernel as with the JavaScript loop, in every mode and source', async () => {
    const folder = await openImageFolder(join(dir, 'in', 'train'), { statistics: train.statistics! });
    const cases: [Dataset, LoaderOptions][] = [
      [train, { batchSize: 5, seed: 3, lighting: true }],
      [train, { batchSize: 5, seed: 3, crop: 227, mean: 'channel', lighting: { magnitude: 'stddev' } }],
      [train, { batchSize: 4, mode: 'tenCrop', crop: 227 }],
      [train, { batchSize: 4, mode: 'center', mean: 'none' }],
      [folder, { batchSize: 6, seed: 2, lighting: true }],
    ];
    for (const [ds, opts] of cases) {
      const [js] = await epochs(ds, { ...opts, workers: 0, recycle: false }, [1]);
      for (const workers of [0, 2]) {
        const l = createLoader(ds, { ...opts, workers, recycle: true, simd: true });
        let k = 0;
        for await (const b of l.epoch(1)) {
          expect(Buffer.from(b.images.buffer, b.images.byteOffset, b.images.byteLength).equals(Buffer.from(js![k]!.images.buffer))).toBe(true);
          k++;
        }
        expect(k).toBe(js!.length);
        await l.close();
      }
    }
  });

  it('bounds the prefetch queue', async () => {
    const l = createLoader(train, { batchSize: 2, workers: 2, prefetch: 3 });
    let most = 0;
    for await (const b of l.epoch(0)) {
      void b;
      await new Promise((r) => setTimeout(r, 30)); // a slow consumer
      most = Math.max(most, l.pendingBatches);
    }
    expect(most).toBe(2); // 3 requested ahead, one of them just handed out
    expect(l.pendingBatches).toBe(0);
    for await (const b of l.epoch(1)) if (b.index === 1) break; // stop early
    expect(l.pendingBatches).toBe(0);
    await l.close();
  });

  it('prepares any ImageFolder index as a train split', async () => {
    const { indexImageFolder } = await import('./layout.js');
    const out = join(dir, 'folder-shards');
    const r = await prepareImageNet({ source: await indexImageFolder(join(dir, 'in', 'train')), out, workers: 1 });
    expect(r.splits.train!.images).toBe(18);
    const ds = await openShards(out);
    const [a] = await epochs(ds, { batchSize: 18, mode: 'center', workers: 0 }, [0]);
    const [b] = await epochs(train, { batchSize: 18, mode: 'center', workers: 0 }, [0]);
    expect(same(a!, b!)).toBe(true);
  });

  it('caps the default prefetch at about 2 GiB of batches', async () => {
    // A ten-crop batch of 128 at 224: 128 * 10 * 3 * 224 * 224 * 4 bytes = 770 MB, so 2 (the floor).
    const big = createLoader(train, { batchSize: 128, mode: 'tenCrop', workers: 0, simd: false });
    const small = createLoader(train, { batchSize: 4, workers: 3 });
    expect([big.prefetch, small.prefetch]).toEqual([2, 6]);
    await big.close();
    await small.close();
  });

  it('validates options with sentences', async () => {
    expect(() => createLoader(train, { batchSize: 0 })).toThrow('Expected a positive integer for batchSize but received 0 of type number');
    expect(() => createLoader(train, { batchSize: 1, crop: 300, workers: 0 })).toThrow('Expected crop <= 256 (the image side) but received 300');
    const folder = await openImageFolder(join(dir, 'in', 'train'));
    expect(() => createLoader(folder, { batchSize: 1, mean: 'image', workers: 0 })).toThrow(/mean: 'image' needs statistics/);
    await expect(openShards(shards, 'val').then(() => openShards(join(dir, 'in')))).rejects.toThrow(/has no manifest\.json: prepare the data set first/);
  });
});
