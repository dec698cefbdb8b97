/**
 * The work that runs on worker threads (or inline when workers = 0): building one shard, and
 * producing one batch. The same code runs in both places, which is what makes results independent
 * of the number of workers.
 */
import sharp, { type OutputInfo } from 'sharp';
import { existsSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { decodeResizeCrop, type DecodeOptions } from './decode.js';
import { ImageNetDataError, UndecodableImageError, fsReason } from './errors.js';
import { ShardReader, ShardWriter, readShardInfo, shardFileName, type ShardEncoding, type ShardInfo } from './shard.js';
import { StatisticsAccumulator } from './stats.js';
import { cropToCHW, cropsPerImage, transformImage, type CropFunction, type TransformSpec } from './transform.js';
import { createSimdCrop, type KernelMemory } from './simd.js';

export interface ShardTask {
  type: 'shard';
  out: string;
  root: string;
  split: string;
  shard: number;
  first: number;
  end: number;
  capacity: number;
  paths: string[];
  labels: number[];
  size: number;
  encoding: ShardEncoding;
  quality: number;
  kernel: NonNullable<DecodeOptions['kernel']>;
  limitInputPixels: number;
  stats: boolean;
  /** Images decoded at once by this task (overlaps file reads with decoding). */
  inflight: number;
}

export interface ShardResult {
  images: number;
  reused: boolean;
  failures: { path: string; reason: string }[];
  stats?: PackedStats;
}

/** Where a loader finds its images: shard records, or image files decoded on the fly. */
export type DatasetSource =
  | { kind: 'shards'; files: string[]; file: Int32Array; offset: Float64Array; length: Int32Array; encoding: ShardEncoding; size: number }
  | { kind: 'folder'; paths: string[]; size: number; kernel: NonNullable<DecodeOptions['kernel']> }
  /** Decoded images in memory (CIFAR-10): image `index[s]` of `pixels`, size x size x 3 HWC each; shared with the workers, not copied. */
  | { kind: 'pixels'; pixels: SharedArrayBuffer; index: Int32Array; size: number };

export interface InitTask {
  type: 'init';
  source: DatasetSource;
  spec: TransformSpec;
  seed: number;
  /** Shared WebAssembly memory for the SIMD kernel, holding the planar mean and the batch slots. */
  kernel?: KernelMemory;
}

export interface BatchTask {
  type: 'batch';
  epoch: number;
  samples: Int32Array;
  /**
   * Where to write the batch: a recycled slot of shared memory (`buffer`, or the kernel memory when
   * absent) with a scratch image at `scratchOffset` (-1: none); else a new buffer is transferred back.
   */
  slot?: { buffer?: SharedArrayBuffer; imagesOffset: number; scratchOffset: number };
}

export interface BatchResult {
  images: Float32Array;
  /** Samples that could not be decoded (folder sources); their slots hold zeros. */
  failures: { sample: number; reason: string }[];
}

/** Statistics (§2, §4.1) over some images of a data set, decoded as the loader decodes them. */
export interface StatsTask {
  type: 'stats';
  source: DatasetSource;
  /** Data-set positions. */
  samples: Int32Array;
  /** Images decoded at once. */
  inflight: number;
}

/** The sums of a StatisticsAccumulator, to merge on the calling thread. */
export interface PackedStats {
  images: number;
  sumImage: Float64Array;
  moments: Float64Array;
}

export interface StatsResult {
  stats: PackedStats;
  /** Images that could not be decoded (skipped, as prepare skips them). */
  failures: { sample: number; reason: string }[];
}

export type Task = ShardTask | InitTask | BatchTask | StatsTask;

/** What a task is doing, for messages about a worker thread that died on it. */
export function describeTask(t: Task): string {
  switch (t.type) {
    case 'shard': return `writing shard ${join(t.out, shardFileName(t.split, t.shard))}`;
    case 'init': return 'starting the loader';
    case 'batch': return `making a batch of epoch ${t.epoch}`;
    case 'stats': return `decoding ${t.samples.length} images for statistics`;
  }
}

/**
 * Yields f(0), f(1), ..., f(n-1) in order with at most `inflight` of them running at once, so that
 * file reads overlap decoding.
 */
async function* inOrder<T>(n: number, inflight: number, f: (i: number) => Promise<T>): AsyncGenerator<T> {
  const pending: Promise<T>[] = [];
  let next = 0;
  for (let i = 0; i < n; i++) {
    while (next < n && next < i + inflight) pending.push(f(next++));
    yield await pending.shift()!;
  }
}

/**
 * Sample `s` of a source as size x size x 3 uint8 HWC: what the loader transforms. A shard that
 * cannot be read is an ImageNetDataError naming it; an image or JPEG record that cannot be decoded is
 * an UndecodableImageError naming the file (the caller lists and skips those).
 */
export async function readSourceImage(source: DatasetSource, s: number, reader: ShardReader): Promise<Uint8Array> {
  if (source.kind === 'folder') return decodeResizeCrop(source.paths[s]!, { size: source.size, kernel: source.kernel });
  if (source.kind === 'pixels') {
    const n = source.size * source.size * 3;
    return new Uint8Array(source.pixels, source.index[s]! * n, n);
  }
  const file = source.files[source.file[s]!]!;
  const bytes = reader.read(file, source.offset[s]!, source.length[s]!);
  return source.encoding === 'jpeg' ? decodeJpegRecord(bytes, source.size, `${file} (sample ${s})`) : bytes;
}

/** A finished shard is reused only if it was made with the same options from the same files and labels. */
function sameShard(info: ShardInfo, t: ShardTask): boolean {
  const h = info.header, m = info.meta;
  if (
    h.height !== t.size || h.width !== t.size || h.channels !== 3 || h.encoding !== t.encoding ||
    (t.encoding === 'jpeg' && h.quality !== t.quality) || m.first !== t.first || m.end !== t.end || m.split !== t.split ||
    m.sources.length !== info.entries.length || m.sources.length + m.failures.length !== t.paths.length
  ) {
    return false;
  }
  const label = new Map(t.paths.map((p, i) => [relative(t.root, p), t.labels[i]!] as const));
  if (!m.failures.every((f) => label.has(f.path))) return false;
  return m.sources.every((p, i) => label.get(p) === info.entries[i]!.label);
}

/** Decodes a JPEG record; `what` names it in the UndecodableImageError of a bad one. */
async function decodeJpegRecord(bytes: Uint8Array, size: number, what: string): Promise<Uint8Array> {
  let decoded: { data: Buffer; info: OutputInfo };
  try {
    decoded = await sharp(bytes).raw().toBuffer({ resolveWithObject: true });
  } catch (e) {
    throw new UndecodableImageError(what, (e as Error).message.split('\n')[0]!);
  }
  const { data, info } = decoded;
  if (info.width !== size || info.height !== size || info.channels !== 3) {
    throw new UndecodableImageError(what, `the JPEG record decodes to ${info.width}x${info.height}x${info.channels}, not ${size}x${size}x3`);
  }
  return new Uint8Array(data.buffer, data.byteOffset, data.length);
}

/** Encodes a size x size x 3 record as prepare stores JPEG records (4:4:4 chroma). */
export async function encodeJpeg(pixels: Uint8Array, size: number, quality: number): Promise<Uint8Array> {
  const b = await sharp(pixels, { raw: { width: size, height: size, channels: 3 } })
    .jpeg({ quality, chromaSubsampling: '4:4:4', mozjpeg: false })
    .toBuffer();
  return new Uint8Array(b.buffer, b.byteOffset, b.length);
}

/** A complete shard from an earlier run, if it matches the task, with its statistics read back. */
async function reuseShard(final: string, t: ShardTask, acc: StatisticsAccumulator | null): Promise<ShardInfo | null> {
  const reader = new ShardReader();
  try {
    const info = readShardInfo(final, { size: t.size, encoding: t.encoding });
    if (!sameShard(info, t)) return null;
    if (acc) {
      for (const e of info.entries) {
        const rec = reader.read(final, e.offset, e.length);
        acc.add(info.header.encoding === 'jpeg' ? await decodeJpegRecord(rec, t.size, `${final} (sample ${e.sample})`) : rec);
      }
    }
    return info;
  } catch {
    // Damaged or unreadable: built again.
    acc?.reset();
    return null;
  } finally {
    reader.close();
  }
}

/**
 * Builds shard `t.shard` of a split (or reuses a complete one), with the statistics of its images.
 * Images that cannot be decoded are listed and skipped; a shard that cannot be written is an
 * ImageNetDataError "cannot write shard PATH: ...".
 */
export async function runShardTask(t: ShardTask, progress: (images: number) => void): Promise<ShardResult> {
  const final = join(t.out, shardFileName(t.split, t.shard));
  const writeError = (e: unknown) =>
    e instanceof ImageNetDataError ? e : new ImageNetDataError(`cannot write shard ${final}: ${fsReason(e)}`, final);
  const acc = t.stats ? new StatisticsAccumulator(t.size) : null;
  if (existsSync(final)) {
    const info = await reuseShard(final, t, acc);
    if (info) {
      progress(t.end - t.first);
      return { images: info.entries.length, reused: true, failures: info.meta.failures, ...(acc ? { stats: pack(acc) } : {}) };
    }
    await rm(final, { force: true }).catch((e: unknown) => {
      throw writeError(e);
    });
  }
  const tmp = `${final}.tmp`;
  let writer: ShardWriter;
  try {
    writer = await ShardWriter.create(tmp, t.capacity, {
      height: t.size, width: t.size, channels: 3, encoding: t.encoding, quality: t.encoding === 'jpeg' ? t.quality : 0,
    });
  } catch (e) {
    throw writeError(e);
  }
  const failures: ShardResult['failures'] = [];
  const sources: string[] = [];
  const opts: DecodeOptions = { size: t.size, kernel: t.kernel, limitInputPixels: t.limitInputPixels };
  try {
    const n = t.paths.length;
    const decode = (i: number) =>
      decodeResizeCrop(t.paths[i]!, opts, relative(t.root, t.paths[i]!)).then(
        (px) => ({ ok: true as const, px }),
        (e: unknown) => ({ ok: false as const, reason: (e as Error).message }),
      );
    let i = 0;
    for await (const r of inOrder(n, t.inflight, decode)) {
      const rel = relative(t.root, t.paths[i]!);
      if (!r.ok) {
        failures.push({ path: rel, reason: r.reason });
      } else {
        let record = r.px;
        if (t.encoding === 'jpeg') {
          record = await encodeJpeg(r.px, t.size, t.quality);
          // Statistics over what the loader will see: the decoded record.
          if (acc) acc.add(await decodeJpegRecord(record, t.size, `${tmp} (sample ${t.first + i})`));
        } else if (acc) {
          acc.add(r.px);
        }
        await writer.append(record, t.labels[i]!, t.first + i);
        sources.push(rel);
      }
      if ((i & 15) === 15 || i === n - 1) progress((i & 15) + 1);
      i++;
    }
    await writer.finish({ split: t.split, shard: t.shard, first: t.first, end: t.end, sources, failures });
    await rename(tmp, final);
  } catch (e) {
    await writer.abandon();
    await rm(tmp, { force: true }).catch(() => undefined);
    throw writeError(e);
  }
  return { images: sources.length, reused: false, failures, ...(acc ? { stats: pack(acc) } : {}) };
}

/** Accumulates the statistics of `t.samples`, skipping (and listing) images that cannot be decoded. */
export async function runStatsTask(t: StatsTask, progress: (images: number) => void): Promise<StatsResult> {
  const acc = new StatisticsAccumulator(t.source.size);
  const failures: StatsResult['failures'] = [];
  const reader = new ShardReader();
  try {
    const n = t.samples.length;
    const read = (i: number) =>
      readSourceImage(t.source, t.samples[i]!, reader).then(
        (px) => ({ ok: true as const, px }),
        (e: unknown) => {
          if (e instanceof UndecodableImageError) return { ok: false as const, reason: e.message };
          throw e;
        },
      );
    let i = 0;
    for await (const r of inOrder(n, t.inflight, read)) {
      if (r.ok) acc.add(r.px);
      else failures.push({ sample: t.samples[i]!, reason: r.reason });
      if ((i & 15) === 15 || i === n - 1) progress((i & 15) + 1);
      i++;
    }
  } finally {
    reader.close();
  }
  return { stats: pack(acc), failures };
}

function pack(acc: StatisticsAccumulator): PackedStats {
  return { images: acc.images, sumImage: acc.sumImage, moments: acc.moments };
}

/** Per-thread loader state: the source, the transform and an open-file cache. */
export class BatchMaker {
  private reader = new ShardReader();
  private scratch: Uint8Array;
  private readonly simdCrop: CropFunction | null;
  constructor(private readonly init: InitTask) {
    this.scratch = new Uint8Array(init.source.size * init.source.size * 3);
    this.simdCrop = init.kernel ? createSimdCrop(init.kernel) : null;
  }

  async run(t: BatchTask): Promise<BatchResult> {
    const { source, spec, seed } = this.init;
    const per = cropsPerImage(spec) * 3 * spec.crop * spec.crop;
    const count = t.samples.length * per;
    // Shared memory spares the allocation and page faults of ~77 MB per batch of 128 (~250 us an image).
    const shared = t.slot ? (t.slot.buffer ?? this.init.kernel!.memory.buffer) : null;
    const images = shared ? new Float32Array(shared, t.slot!.imagesOffset, count) : new Float32Array(count);
    // With the kernel, pixels go through the slot's scratch image inside the kernel's memory.
    const kernel = this.simdCrop && shared === this.init.kernel!.memory.buffer ? this.simdCrop : null;
    const scratch = kernel ? new Uint8Array(shared!, t.slot!.scratchOffset, source.size * source.size * 3) : this.scratch;
    const crop = kernel ?? cropToCHW;
    const failures: BatchResult['failures'] = [];
    if (source.kind === 'shards' && source.encoding === 'raw') {
      for (let i = 0; i < t.samples.length; i++) {
        const s = t.samples[i]!;
        const px = this.reader.read(source.files[source.file[s]!]!, source.offset[s]!, source.length[s]!, scratch);
        transformImage(px, spec, seed, t.epoch, s, images, i * per, crop);
      }
      return { images, failures };
    }
    // Decoding sources: decode the whole batch concurrently on libuv's pool, transform in order.
    // A shard that cannot be read stops the batch (an ImageNetDataError naming it); an image that
    // cannot be decoded is listed in `failures` and its crops are zeros.
    const decoded = await Promise.all(
      Array.from(t.samples, (s) =>
        readSourceImage(source, s, this.reader).catch((e: unknown) => {
          if (!(e instanceof UndecodableImageError)) throw e;
          failures.push({ sample: s, reason: e.message });
          return null;
        }),
      ),
    );
    failures.sort((a, b) => a.sample - b.sample);
    decoded.forEach((px, i) => {
      if (px && kernel) {
        scratch.set(px);
        transformImage(scratch, spec, seed, t.epoch, t.samples[i]!, images, i * per, kernel);
      } else if (px) {
        transformImage(px, spec, seed, t.epoch, t.samples[i]!, images, i * per);
      } else {
        images.fill(0, i * per, (i + 1) * per);
      }
    });
    return { images, failures };
  }

  close(): void {
    this.reader.close();
  }
}

/** One handler per thread: dispatches tasks and keeps the loader state between batches. */
export class TaskHandler {
  private maker: BatchMaker | null = null;

  async handle(task: Task, progress: (n: number) => void): Promise<{ result: unknown; transfer: ArrayBuffer[] }> {
    switch (task.type) {
      case 'shard': {
        const r = await runShardTask(task, progress);
        return { result: r, transfer: r.stats ? [r.stats.sumImage.buffer as ArrayBuffer] : [] };
      }
      case 'init':
        this.maker?.close();
        this.maker = new BatchMaker(task);
        return { result: null, transfer: [] };
      case 'stats': {
        const r = await runStatsTask(task, progress);
        return { result: r, transfer: [r.stats.sumImage.buffer as ArrayBuffer] };
      }
      case 'batch': {
        if (!this.maker) throw new Error('a batch task arrived before the loader was started (init)');
        const r = await this.maker.run(task);
        if (task.slot) return { result: { images: null, failures: r.failures }, transfer: [] };
        return { result: r, transfer: [r.images.buffer as ArrayBuffer] };
      }
    }
  }

  close(): void {
    this.maker?.close();
  }
}
