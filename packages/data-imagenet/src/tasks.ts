/**
 * The work that runs on worker threads (or inline when workers = 0): building one shard, and
 * producing one batch. The same code runs in both places, which is what makes results independent
 * of the number of workers.
 */
import sharp from 'sharp';
import { existsSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { decodeResizeCrop, UndecodableImageError, type DecodeOptions } from './decode.js';
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
  stats?: { images: number; sumImage: Float64Array; moments: Float64Array };
}

/** Where a loader finds its images: shard records, or image files decoded on the fly. */
export type DatasetSource =
  | { kind: 'shards'; files: string[]; file: Int32Array; offset: Float64Array; length: Int32Array; encoding: ShardEncoding; size: number }
  | { kind: 'folder'; paths: string[]; size: number; kernel: NonNullable<DecodeOptions['kernel']> };

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

export type Task = ShardTask | InitTask | BatchTask;

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

async function decodeJpegRecord(bytes: Uint8Array, size: number): Promise<Uint8Array> {
  const { data, info } = await sharp(bytes).raw().toBuffer({ resolveWithObject: true });
  if (info.width !== size || info.height !== size || info.channels !== 3) {
    throw new Error(`a JPEG record decoded to ${info.width}x${info.height}x${info.channels}, expected ${size}x${size}x3`);
  }
  return new Uint8Array(data.buffer, data.byteOffset, data.length);
}

async function encodeJpeg(pixels: Uint8Array, size: number, quality: number): Promise<Uint8Array> {
  const b = await sharp(pixels, { raw: { width: size, height: size, channels: 3 } })
    .jpeg({ quality, chromaSubsampling: '4:4:4', mozjpeg: false })
    .toBuffer();
  return new Uint8Array(b.buffer, b.byteOffset, b.length);
}

/** Builds shard `t.shard` of a split (or reuses a complete one), with the statistics of its images. */
export async function runShardTask(t: ShardTask, progress: (images: number) => void): Promise<ShardResult> {
  const final = join(t.out, shardFileName(t.split, t.shard));
  const acc = t.stats ? new StatisticsAccumulator(t.size) : null;
  if (existsSync(final)) {
    let info: ShardInfo | null = null;
    try {
      info = readShardInfo(final);
    } catch {
      info = null;
    }
    if (info && sameShard(info, t)) {
      if (acc) {
        const reader = new ShardReader();
        try {
          for (const e of info.entries) {
            const rec = reader.read(final, e.offset, e.length);
            acc.add(info.header.encoding === 'jpeg' ? await decodeJpegRecord(rec, t.size) : rec);
          }
        } finally {
          reader.close();
        }
      }
      progress(t.end - t.first);
      return { images: info.entries.length, reused: true, failures: info.meta.failures, ...(acc ? { stats: pack(acc) } : {}) };
    }
    await rm(final, { force: true });
  }
  const tmp = `${final}.tmp`;
  const writer = await ShardWriter.create(tmp, t.capacity, {
    height: t.size, width: t.size, channels: 3, encoding: t.encoding, quality: t.encoding === 'jpeg' ? t.quality : 0,
  });
  const failures: ShardResult['failures'] = [];
  const sources: string[] = [];
  const opts: DecodeOptions = { size: t.size, kernel: t.kernel, limitInputPixels: t.limitInputPixels };
  try {
    const n = t.paths.length;
    const decode = (i: number) =>
      decodeResizeCrop(t.paths[i]!, opts, relative(t.root, t.paths[i]!)).then(
        (px) => ({ ok: true as const, px }),
        (e: unknown) => ({ ok: false as const, reason: e instanceof UndecodableImageError ? e.message : String(e) }),
      );
    const pending: ReturnType<typeof decode>[] = [];
    let next = 0;
    for (let i = 0; i < n; i++) {
      while (next < n && next < i + t.inflight) pending.push(decode(next++));
      const r = await pending.shift()!;
      const rel = relative(t.root, t.paths[i]!);
      if (!r.ok) {
        failures.push({ path: rel, reason: r.reason });
      } else {
        let record = r.px;
        if (t.encoding === 'jpeg') {
          record = await encodeJpeg(r.px, t.size, t.quality);
          // Statistics over what the loader will see: the decoded record.
          if (acc) acc.add(await decodeJpegRecord(record, t.size));
        } else if (acc) {
          acc.add(r.px);
        }
        await writer.append(record, t.labels[i]!, t.first + i);
        sources.push(rel);
      }
      if ((i & 15) === 15 || i === n - 1) progress((i & 15) + 1);
    }
    await writer.finish({ split: t.split, shard: t.shard, first: t.first, end: t.end, sources, failures });
  } catch (e) {
    await writer.abandon();
    await rm(tmp, { force: true });
    throw e;
  }
  await rename(tmp, final);
  return { images: sources.length, reused: false, failures, ...(acc ? { stats: pack(acc) } : {}) };
}

function pack(acc: StatisticsAccumulator): NonNullable<ShardResult['stats']> {
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
    const decoded = await Promise.all(
      Array.from(t.samples, async (s) => {
        try {
          if (source.kind === 'shards') {
            const bytes = this.reader.read(source.files[source.file[s]!]!, source.offset[s]!, source.length[s]!);
            return await decodeJpegRecord(bytes, source.size);
          }
          return await decodeResizeCrop(source.paths[s]!, { size: source.size, kernel: source.kernel });
        } catch (e) {
          failures.push({ sample: s, reason: (e as Error).message });
          return null;
        }
      }),
    );
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
      case 'batch': {
        if (!this.maker) throw new Error('batch before init');
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
