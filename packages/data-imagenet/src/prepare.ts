/**
 * Prepare (once per data set, §2): decode every image, rescale to shorter side 256, crop the central
 * 256x256, write shards, and compute the training-set statistics. Parallel over worker threads, one
 * shard per task; a shard appears under its final name only when complete, so running prepare again
 * after a crash or an abort redoes only the missing shards.
 */
import sharp from 'sharp';
import { mkdir, readdir, rm, writeFile, rename } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { ImageNetDataError, checkPositiveInteger } from './errors.js';
import { indexImageNet, type ImageFolderIndex, type ImageNetIndex, type SplitName, type ClassInfo } from './layout.js';
import { WorkerPool } from './pool.js';
import { ProgressMeter, stderrProgress, type ProgressState } from './progress.js';
import { shardFileName, type ShardEncoding } from './shard.js';
import { StatisticsAccumulator, saveStatistics, type Statistics } from './stats.js';
import type { ShardResult, ShardTask } from './tasks.js';
import type { DecodeOptions } from './decode.js';

// sharp runs on libuv's thread pool (4 threads by default, for the whole process): widen it to the
// core count when the application has not chosen, before the pool first starts.
if (process.env.UV_THREADPOOL_SIZE === undefined) {
  process.env.UV_THREADPOOL_SIZE = String(Math.max(4, availableParallelism()));
}

export const MANIFEST = 'manifest.json';
export const REPORT = 'prepare-report.json';

export interface PrepareOptions {
  /**
   * An ImageNet folder (indexed with indexImageNet), an index you built, or an ImageFolder index
   * (indexImageFolder), which is prepared as the train split.
   */
  source: string | Pick<ImageNetIndex, 'root' | 'classes' | 'splits'> | ImageFolderIndex;
  /** Output folder for shards, manifest and statistics. */
  out: string;
  /** Splits to prepare; default every split the index has. */
  splits?: SplitName[];
  /** Side of the stored images; the paper's 256. */
  size?: number;
  /** Images per shard (default 1024). */
  shardSize?: number;
  /** 'raw' (default): 196 608 bytes per 256x256 image; 'jpeg': re-encoded at `quality`, as cuda-convnet stored them. */
  encoding?: ShardEncoding;
  quality?: number;
  kernel?: DecodeOptions['kernel'];
  limitInputPixels?: number;
  /** Worker threads (default: all cores). */
  workers?: number;
  /** true: a progress bar on stderr; a function: called with the counts. */
  progress?: boolean | ((p: ProgressState) => void);
  /** Stops the workers; the shards finished so far stay, and the next run resumes. */
  signal?: AbortSignal;
}

export interface PrepareReport {
  out: string;
  splits: Partial<Record<SplitName, { images: number; failed: number; shards: number }>>;
  /** Files that were skipped: unreadable, empty, truncated, not an image. */
  failures: { split: SplitName; path: string; reason: string }[];
  /** Shards found complete from an earlier run and kept. */
  reusedShards: number;
  seconds: number;
  imagesPerSecond: number;
  statistics: Statistics | null;
}

export interface Manifest {
  format: 'alexnet-imagenet-shards';
  version: 1;
  size: number;
  encoding: ShardEncoding;
  quality: number;
  shardSize: number;
  classes: { wnid: string; name: string }[];
  splits: Partial<Record<SplitName, { images: number; failed: number; shards: string[] }>>;
  statistics: string | null;
}

export async function prepareImageNet(opts: PrepareOptions): Promise<PrepareReport> {
  const t0 = performance.now();
  const src = opts.source;
  const index: Pick<ImageNetIndex, 'root' | 'classes' | 'splits'> =
    typeof src === 'string' ? await indexImageNet(src)
    : 'samples' in src ? { root: resolve(src.root, '..'), classes: src.classes, splits: { train: src.samples } }
    : src;
  const out = resolve(opts.out);
  const size = checkPositiveInteger(opts.size ?? 256, 'size');
  const shardSize = checkPositiveInteger(opts.shardSize ?? 1024, 'shardSize');
  const encoding = opts.encoding ?? 'raw';
  if (encoding !== 'raw' && encoding !== 'jpeg') throw new TypeError(`Expected 'raw' or 'jpeg' for encoding but received ${String(encoding)}`);
  const quality = opts.quality ?? 90;
  if (!Number.isInteger(quality) || quality < 1 || quality > 100) throw new TypeError(`Expected an integer 1..100 for quality but received ${String(quality)}`);
  const splits = opts.splits ?? (['train', 'val'] as SplitName[]).filter((s) => index.splits[s] !== undefined);
  for (const s of splits) {
    if (!index.splits[s]) throw new ImageNetDataError(`${index.root} has no ${s}/ split to prepare`, join(index.root, s));
  }
  if (splits.length === 0) throw new ImageNetDataError(`${index.root} has no train/ or val/ split to prepare`, index.root);

  await mkdir(out, { recursive: true });
  // Half-written shards of an interrupted run.
  for (const f of await readdir(out)) if (f.endsWith('.tmp')) await rm(join(out, f), { force: true });

  const tasks: ShardTask[] = [];
  for (const split of splits) {
    const samples = index.splits[split]!;
    for (let first = 0, k = 0; first < samples.length; first += shardSize, k++) {
      const part = samples.slice(first, first + shardSize);
      tasks.push({
        type: 'shard', out, root: index.root, split, shard: k, first, end: first + part.length, capacity: shardSize,
        paths: part.map((s) => s.path), labels: part.map((s) => s.label), size, encoding, quality,
        kernel: opts.kernel ?? 'linear', limitInputPixels: opts.limitInputPixels ?? 0x3fff * 0x3fff,
        stats: split === 'train', inflight: 2,
      });
    }
  }
  const total = tasks.reduce((a, t) => a + t.end - t.first, 0);
  const sink = opts.progress === true ? stderrProgress('prepare') : typeof opts.progress === 'function' ? opts.progress : null;
  const meter = new ProgressMeter(total, sink);
  const workers = Math.min(opts.workers ?? availableParallelism(), tasks.length);
  const pool = new WorkerPool(workers);
  const onAbort = () => void pool.close();
  if (opts.signal?.aborted) {
    await pool.close();
    throw new ImageNetDataError(`prepare of ${out} was aborted before it started`, out);
  }
  // libvips' operation cache never hits here (every image is new) and costs about 6 % per image:
  // off for the run (it is process-wide), restored afterwards.
  const cache = sharp.cache();
  sharp.cache(false);
  opts.signal?.addEventListener('abort', onAbort);
  let results: ShardResult[];
  try {
    results = await Promise.all(tasks.map((t) => pool.run<ShardResult>(t, [], (n) => meter.add(n))));
  } catch (e) {
    if (opts.signal?.aborted) {
      throw new ImageNetDataError(`prepare of ${out} was aborted; the complete shards are kept and the next run resumes`, out);
    }
    throw e;
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
    await pool.close();
    sharp.cache({ memory: cache.memory.max, files: cache.files.max, items: cache.items.max });
  }

  const report: PrepareReport = { out, splits: {}, failures: [], reusedShards: 0, seconds: 0, imagesPerSecond: 0, statistics: null };
  const manifest: Manifest = {
    format: 'alexnet-imagenet-shards', version: 1, size, encoding, quality: encoding === 'jpeg' ? quality : 0, shardSize,
    classes: index.classes.map((c: ClassInfo) => ({ wnid: c.wnid, name: c.name })), splits: {}, statistics: null,
  };
  const acc = new StatisticsAccumulator(size);
  tasks.forEach((t, i) => {
    const r = results[i]!;
    const s = (report.splits[t.split as SplitName] ??= { images: 0, failed: 0, shards: 0 });
    s.images += r.images;
    s.failed += r.failures.length;
    s.shards++;
    const m = (manifest.splits[t.split as SplitName] ??= { images: 0, failed: 0, shards: [] });
    m.images += r.images;
    m.failed += r.failures.length;
    m.shards.push(shardFileName(t.split, t.shard));
    if (r.reused) report.reusedShards++;
    for (const f of r.failures) report.failures.push({ split: t.split as SplitName, ...f });
    if (r.stats) acc.merge(r.stats);
  });
  if (acc.images > 0) {
    report.statistics = acc.finish();
    await saveStatistics(out, report.statistics);
    manifest.statistics = 'stats.json';
  }
  report.seconds = (performance.now() - t0) / 1000;
  report.imagesPerSecond = total / report.seconds;
  await writeJsonAtomic(join(out, REPORT), {
    splits: report.splits, failed: report.failures.length, failures: report.failures, reusedShards: report.reusedShards,
    seconds: report.seconds,
  });
  await writeJsonAtomic(join(out, MANIFEST), manifest);
  return report;
}

async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  await writeFile(path + '.tmp', JSON.stringify(value, null, 2) + '\n');
  await rename(path + '.tmp', path);
}
