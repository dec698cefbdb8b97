/**
 * Prepare (once per data set, §2): decode every image, rescale to shorter side 256, crop the central
 * 256x256, write shards, and compute the training-set statistics. Parallel over worker threads, one
 * shard per task; a shard appears under its final name only when complete, so running prepare again
 * after a crash or an abort redoes only the missing shards.
 */
import sharp from 'sharp';
import { mkdir, readdir, rm, stat, writeFile, rename } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { ImageNetDataError, checkPositiveInteger } from './errors.js';
import { indexImageNet, type ImageFolderIndex, type ImageNetIndex, type SplitName, type ClassInfo } from './layout.js';
import { WorkerPool } from './pool.js';
import { progressOption, type ProgressState } from './progress.js';
import { ENTRY_BYTES, HEADER_BYTES, shardFileName, type ShardEncoding } from './shard.js';
import { MEAN_IMAGE_FILE, STATS_JSON, StatisticsAccumulator, saveStatistics, type Statistics } from './stats.js';
import { samplePositions } from './subset.js';
import { encodeJpeg, type ShardResult, type ShardTask } from './worker-tasks.js';
import { decodeResizeCrop, type DecodeOptions } from './decode.js';

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
  /**
   * Called with sentences worth showing the user, first the estimate of the bytes the run will
   * write (estimatePrepareBytes). Default: stderr when `progress` is true, else nowhere.
   */
  log?: (message: string) => void;
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
  /** Bytes of the shards and statistics files (the manifest and report add a few kB). */
  bytes: number;
  /** What the estimate at the start said `bytes` would be. */
  estimatedBytes: number;
}

/**
 * Bytes of a 256x256 JPEG record at quality 90 with 4:4:4 chroma, for photographs (about 25 to 40 kB
 * each): the default of estimatePrepareBytes. prepareImageNet measures it on a sample of the
 * images instead, since it depends on their content.
 */
export const JPEG_RECORD_BYTES = 30_000;

/** Mean bytes of a record's source path in a shard's JSON block, as ILSVRC's "train/n01440764/n01440764_10026.JPEG". */
const PATH_BYTES = 37;

export interface PrepareEstimateOptions {
  /** Images written, all splits together. */
  images: number;
  /** Of which training images: the statistics files (a size*size*3 float32 mean image) exist when > 0. Default `images`. */
  trainImages?: number;
  /** Side of the stored images (default 256). */
  size?: number;
  /** 'raw' (default) or 'jpeg'. */
  encoding?: ShardEncoding;
  /** Images per shard (default 1024): each shard reserves index entries for this many. */
  shardSize?: number;
  /** Shard files (default ceil(images / shardSize); each split is cut separately, so pass the sum). */
  shards?: number;
  /** Mean bytes of a JPEG record (default JPEG_RECORD_BYTES scaled by (size/256)^2). */
  jpegRecordBytes?: number;
  /** Mean bytes of a source path relative to the data set's folder (default 37). */
  pathBytes?: number;
}

/**
 * The bytes prepareImageNet will write: shards (header, index, records, JSON block of source paths)
 * and the statistics files. Exact for raw records but for the paths; JPEG records depend on the
 * images (see JPEG_RECORD_BYTES). ILSVRC-2012's 1 281 167 training images at 256x256: about 252 GB
 * raw, about 39 GB as JPEG at quality 90.
 */
export function estimatePrepareBytes(o: PrepareEstimateOptions): number {
  const images = o.images;
  const size = o.size ?? 256;
  const shardSize = o.shardSize ?? 1024;
  const shards = o.shards ?? Math.ceil(images / shardSize);
  const record = (o.encoding ?? 'raw') === 'raw' ? size * size * 3 : (o.jpegRecordBytes ?? JPEG_RECORD_BYTES * (size / 256) ** 2);
  // JSON block: {"split":"train","shard":0,"first":0,"end":1024,"sources":[...],"failures":[]}, a path per record.
  const perShard = HEADER_BYTES + ENTRY_BYTES * shardSize + 90;
  const perImage = record + (o.pathBytes ?? PATH_BYTES) + 3;
  const statistics = (o.trainImages ?? images) > 0 ? size * size * 3 * 4 + 700 : 0;
  return Math.round(shards * perShard + images * perImage + statistics);
}

/** "252 GB", "4.82 MB": decimal units, three significant digits. */
export function formatBytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let u = 0;
  while (n >= 999.5 && u < units.length - 1) {
    n /= 1000;
    u++;
  }
  return `${Number(n.toPrecision(3))} ${units[u]}`;
}

/** "1 281 167". */
function groupDigits(n: number): string {
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ' ');
}

/** Mean bytes of a JPEG record over a seeded sample of up to 16 images (undefined if none decodes). */
async function measureJpegRecordBytes(paths: string[], size: number, quality: number, kernel: DecodeOptions['kernel']): Promise<number | undefined> {
  let bytes = 0, n = 0;
  for (const i of samplePositions(paths.length, 16, 0)) {
    try {
      bytes += (await encodeJpeg(await decodeResizeCrop(paths[i]!, { size, kernel }), size, quality)).length;
      n++;
    } catch {
      // Undecodable: prepare will list it; it does not count here.
    }
  }
  return n > 0 ? bytes / n : undefined;
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
  const log = opts.log ?? (opts.progress === true ? (m: string) => process.stderr.write(m + '\n') : null);
  const all = splits.flatMap((sp) => index.splits[sp]!);
  const trainImages = index.splits.train && splits.includes('train') ? index.splits.train.length : 0;
  const pathBytes = all.reduce((a, x) => a + Buffer.byteLength(relative(index.root, x.path)), 0) / Math.max(1, all.length);
  // JPEG records depend on the images: measured on a few of them, when anyone will read the figure.
  const jpegRecordBytes = encoding === 'jpeg' || log ? await measureJpegRecordBytes(all.map((x) => x.path), size, quality, opts.kernel ?? 'linear') : undefined;
  const estimate = (enc: ShardEncoding) =>
    estimatePrepareBytes({ images: total, trainImages, size, encoding: enc, shardSize, shards: tasks.length, pathBytes, ...(jpegRecordBytes ? { jpegRecordBytes } : {}) });
  const estimatedBytes = estimate(encoding);
  log?.(
    encoding === 'raw'
      ? `prepare will write about ${formatBytes(estimatedBytes)} of raw shards (${groupDigits(total)} images at ${size}x${size}) to ${out}; ` +
          `JPEG records (encoding 'jpeg', quality ${quality}) would take about ${formatBytes(estimate('jpeg'))}`
      : `prepare will write about ${formatBytes(estimatedBytes)} of JPEG shards (${groupDigits(total)} images at ${size}x${size}, quality ${quality}) to ${out}; ` +
          `raw records would take about ${formatBytes(estimate('raw'))}`,
  );
  const meter = progressOption(opts.progress, 'prepare', total);
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
    meter.finish();
    opts.signal?.removeEventListener('abort', onAbort);
    await pool.close();
    sharp.cache({ memory: cache.memory.max, files: cache.files.max, items: cache.items.max });
  }

  const report: PrepareReport = { out, splits: {}, failures: [], reusedShards: 0, seconds: 0, imagesPerSecond: 0, statistics: null, bytes: 0, estimatedBytes };
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
    manifest.statistics = STATS_JSON;
  }
  const written = [...Object.values(manifest.splits).flatMap((m) => m.shards), ...(manifest.statistics ? [STATS_JSON, MEAN_IMAGE_FILE] : [])];
  for (const f of written) report.bytes += (await stat(join(out, f))).size;
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
