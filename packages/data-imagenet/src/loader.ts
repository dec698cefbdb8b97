/**
 * Load (every epoch): seeded shuffling, augmentation on worker threads, batches of N as float32
 * NCHW plus int32 labels, with a bounded prefetch queue. Sample i of epoch e is transformed with
 * randomness keyed by (seed, e, i), and batch b always holds the same samples, so a batch is the
 * same bytes whatever the number of workers.
 */
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ImageNetDataError, checkNonNegativeInteger, checkPositiveInteger } from './errors.js';
import { indexImageFolder, type ImageFolderIndex, type Sample } from './layout.js';
import { MANIFEST, type Manifest } from './prepare.js';
import { WorkerPool, defaultWorkers } from './pool.js';
import { permutation, Rng } from './rng.js';
import { readShardInfo } from './shard.js';
import { loadStatistics, type Statistics } from './stats.js';
import type { BatchResult, DatasetSource } from './worker-tasks.js';
import { createKernelMemory, type KernelMemory } from './simd.js';
import { cropsPerImage, type LightingSpec, type MeanSpec, type TransformSpec } from './transform.js';

/** A data set the loader can read: prepared shards or an image folder decoded on the fly. */
export interface Dataset {
  length: number;
  /** Class index of each sample. */
  labels: Int32Array;
  classes: { wnid: string; name: string }[];
  /** Side of the (prepared or on-the-fly) square images: 256. */
  size: number;
  source: DatasetSource;
  /** Training-set statistics saved beside the shards, if any. */
  statistics: Statistics | null;
}

/** Opens the shards of one split written by prepareImageNet. */
export async function openShards(dir: string, split: 'train' | 'val' = 'train'): Promise<Dataset> {
  const root = resolve(dir);
  const mf = join(root, MANIFEST);
  if (!existsSync(mf)) throw new ImageNetDataError(`${root} has no ${MANIFEST}: prepare the data set first (prepareImageNet), or finish an interrupted prepare`, mf);
  const manifest = JSON.parse(await readFile(mf, 'utf8')) as Manifest;
  const s = manifest.splits[split];
  if (!s) {
    throw new ImageNetDataError(`${root} has no ${split} shards: the manifest lists ${Object.keys(manifest.splits).join(', ') || 'no splits'}`, mf);
  }
  // The index of every shard is checked against the manifest now (a few bytes per image), so that a
  // damaged shard stops a run at its start, naming the file and the entry.
  const expect = { classes: manifest.classes.length, size: manifest.size, encoding: manifest.encoding, source: MANIFEST };
  const infos = s.shards.map((f) => readShardInfo(join(root, f), expect));
  const n = infos.reduce((a, i) => a + i.entries.length, 0);
  const file = new Int32Array(n), offset = new Float64Array(n), length = new Int32Array(n), labels = new Int32Array(n);
  let k = 0;
  infos.forEach((info, fi) => {
    for (const e of info.entries) {
      file[k] = fi;
      offset[k] = e.offset;
      length[k] = e.length;
      labels[k] = e.label;
      k++;
    }
  });
  return {
    length: n,
    labels,
    classes: manifest.classes,
    size: manifest.size,
    source: { kind: 'shards', files: infos.map((i) => i.path), file, offset, length, encoding: manifest.encoding, size: manifest.size },
    statistics: manifest.statistics ? await loadStatistics(root) : null,
  };
}

/**
 * An image folder (or any list of samples) as a data set decoded on the fly, for small sets: each
 * use decodes, rescales and centre-crops to `size` exactly as prepare does.
 */
export async function openImageFolder(
  source: string | ImageFolderIndex | { samples: Sample[]; classes: { wnid: string; name: string }[] },
  opts: { size?: number; kernel?: 'linear' | 'lanczos3' | 'cubic' | 'nearest'; statistics?: Statistics } = {},
): Promise<Dataset> {
  const idx = typeof source === 'string' ? await indexImageFolder(source) : source;
  const size = checkPositiveInteger(opts.size ?? 256, 'size');
  const ds: Dataset = {
    length: idx.samples.length,
    labels: Int32Array.from(idx.samples, (s) => s.label),
    classes: idx.classes.map((c) => ({ wnid: c.wnid, name: c.name })),
    size,
    source: { kind: 'folder', paths: idx.samples.map((s) => s.path), size, kernel: opts.kernel ?? 'linear' },
    statistics: null,
  };
  return opts.statistics ? withStatistics(ds, opts.statistics) : ds;
}

/**
 * The data set with `statistics` as its own (a new object; the original is unchanged): the loader
 * then subtracts their mean image (§2) and, in train mode, applies PCA lighting with their
 * eigen-decomposition (§4.1), exactly as for prepared shards. Typically the statistics of a raw
 * folder from computeStatistics, or loaded with loadStatistics from where they were saved.
 */
export function withStatistics(dataset: Dataset, statistics: Statistics): Dataset {
  const px = dataset.size * dataset.size * 3;
  if (statistics.size !== dataset.size) {
    throw new TypeError(
      `statistics are of ${statistics.size}x${statistics.size} images but the data set holds ${dataset.size}x${dataset.size} images: compute them at the data set's size`,
    );
  }
  if (statistics.meanImage.length !== px) {
    throw new TypeError(`Expected a mean image of ${dataset.size}x${dataset.size}x3 = ${px} values in the statistics but received ${statistics.meanImage.length}`);
  }
  return { ...dataset, statistics };
}

export interface LoaderOptions {
  batchSize: number;
  /** Seed of shuffling and augmentation (default 0). */
  seed?: number;
  /** 'train' (default), 'center' or 'tenCrop'. */
  mode?: TransformSpec['mode'];
  /** Crop side: 224 (default, the paper) or 227 (Caffe). */
  crop?: number;
  /** Horizontal reflection with p = 0.5 (train mode; default true). */
  flip?: boolean;
  /**
   * PCA lighting (§4.1): true uses the data set's statistics with std 0.1; or give eigenvalues and
   * eigenvectors (0..255 scale). Default: on in train mode when statistics exist.
   */
  lighting?:
    | boolean
    | { eigenvalues?: readonly number[]; eigenvectors?: readonly (readonly number[])[]; std?: number; magnitude?: 'eigenvalue' | 'stddev' };
  /**
   * Mean subtraction: 'image' (the 256x256x3 mean image, the paper's), 'channel', 'none', or the
   * values themselves (a size*size*3 HWC Float32Array or an [r, g, b] triple). Default 'image'
   * when statistics exist, else 'none'.
   */
  mean?: 'image' | 'channel' | 'none' | Float32Array | readonly [number, number, number];
  /** Statistics to use instead of the data set's own (e.g. the training set's, for val). */
  statistics?: Statistics;
  /** Seeded reshuffle every epoch (default: true in train mode). */
  shuffle?: boolean;
  /** Drop the last incomplete batch (default false). */
  dropLast?: boolean;
  /** Worker threads (default: all cores; 0 runs inline). */
  workers?: number;
  /** Batches requested ahead of the consumer (default 2 per worker, at most about 2 GiB of batches, at least 2). */
  prefetch?: number;
  /**
   * Reuse batch memory (default true): `images` is then a view on one of prefetch + 1
   * SharedArrayBuffers that the workers write in place, valid until you ask for the next batch,
   * after which it will be overwritten. A batch of 128 is 77 MB: fresh memory for each (allocation,
   * page faults, and the garbage collections that moving it between threads provokes) costs more
   * than the transform itself. Pass false, or copy, to keep batches.
   */
  recycle?: boolean;
  /**
   * Run the crop/flip/mean/lighting loop as a WebAssembly SIMD kernel when the runtime has it
   * (default true; needs `recycle`): about 4x the JavaScript loop, the same bits.
   */
  simd?: boolean;
  /**
   * Data-parallel training: this process takes part `rank` of `size` of every batch (samples
   * [floor(rank n / size), floor((rank + 1) n / size)) of each batch of n). Shuffling and the
   * augmentation of each image are those of the whole run (keyed by seed, epoch and image), so the
   * parts of all processes together are exactly the single-process batches. Default: the whole batch.
   */
  part?: { rank: number; size: number };
}

export interface Batch {
  /** Position of the batch in its epoch. */
  index: number;
  /** float32 NCHW: shape[0] = samples * cropsPerImage; the crops of one image are consecutive. */
  images: Float32Array;
  shape: [number, number, number, number];
  /** int32 class index per image (length = samples). */
  labels: Int32Array;
  /** Data-set positions of the images. */
  samples: Int32Array;
  cropsPerImage: number;
  /** Images that failed to decode (image-folder sources); their crops are zeros. */
  failures: { sample: number; reason: string }[];
  /** With `part`: these samples are [offset, offset + samples.length) of a batch of `total`. */
  offset: number;
  total: number;
}

export class Loader {
  readonly spec: TransformSpec;
  readonly seed: number;
  readonly batchSize: number;
  readonly batchesPerEpoch: number;
  /** Which part of every batch this loader yields (data-parallel training). */
  readonly part: { rank: number; size: number };
  private readonly pool: WorkerPool;
  private ready: Promise<unknown> | null = null;
  private readonly shuffle: boolean;
  /** Batches requested ahead of the consumer. */
  readonly prefetch: number;
  private readonly recycle: boolean;
  /** Recycled batch memory: free slots, and the slot the consumer holds now (freed when it asks for the next batch). */
  private free: Slot[] = [];
  private held: Slot | null = null;
  /** Shared WebAssembly memory for the SIMD kernel and its slots (null: JavaScript path, plain SharedArrayBuffer slots). */
  private readonly kernel: KernelMemory | null;
  private requested = 0;
  private yielded = 0;

  constructor(readonly dataset: Dataset, opts: LoaderOptions) {
    this.batchSize = checkPositiveInteger(opts.batchSize, 'batchSize');
    this.seed = checkNonNegativeInteger(opts.seed ?? 0, 'seed');
    const mode = opts.mode ?? 'train';
    if (mode !== 'train' && mode !== 'center' && mode !== 'tenCrop') {
      throw new TypeError(`Expected 'train', 'center' or 'tenCrop' for mode but received ${String(mode)}`);
    }
    const crop = checkPositiveInteger(opts.crop ?? 224, 'crop');
    if (crop > dataset.size) throw new TypeError(`Expected crop <= ${dataset.size} (the image side) but received ${crop}`);
    const stats = opts.statistics ?? dataset.statistics;
    const train = mode === 'train';

    let lighting: LightingSpec | null = null;
    const l = opts.lighting ?? (train && stats !== null);
    if (l === true) {
      if (!stats) throw new TypeError('lighting: true needs statistics (prepare the training set, or pass statistics or the eigen-decomposition)');
      lighting = { eigenvalues: stats.eigenvalues, eigenvectors: stats.eigenvectors, std: 0.1 };
    } else if (l && typeof l === 'object') {
      const values = l.eigenvalues ?? stats?.eigenvalues, vectors = l.eigenvectors ?? stats?.eigenvectors;
      if (!values || !vectors) throw new TypeError('lighting needs eigenvalues and eigenvectors (or statistics)');
      lighting = { eigenvalues: [...values], eigenvectors: vectors.map((v) => [...v]), std: l.std ?? 0.1, magnitude: l.magnitude ?? 'eigenvalue' };
    }
    if (lighting && !train) throw new TypeError(`PCA lighting is a training augmentation (§4.1) but mode is '${mode}'`);

    let mean: MeanSpec = { kind: 'none' };
    const m = opts.mean ?? (stats ? 'image' : 'none');
    const px = dataset.size * dataset.size * 3;
    if (m === 'image' || m === 'channel') {
      if (!stats) throw new TypeError(`mean: '${m}' needs statistics (prepare the training set, or pass statistics or the mean values)`);
      mean = m === 'image' ? { kind: 'image', image: stats.meanImage } : { kind: 'channel', values: [...stats.channelMean] };
    } else if (m instanceof Float32Array) {
      mean = { kind: 'image', image: m };
    } else if (Array.isArray(m)) {
      mean = { kind: 'channel', values: [m[0]!, m[1]!, m[2]!] };
    } else if (m !== 'none') {
      throw new TypeError(`Expected 'image', 'channel', 'none', a Float32Array or [r, g, b] for mean but received ${String(m)}`);
    }
    if (mean.kind === 'image' && mean.image.length !== px) {
      throw new TypeError(`Expected a mean image of ${dataset.size}x${dataset.size}x3 = ${px} values but received ${mean.image.length}`);
    }
    this.spec = { mode, size: dataset.size, crop, flip: train && (opts.flip ?? true), lighting, mean };
    this.shuffle = opts.shuffle ?? train;
    const part = opts.part ?? { rank: 0, size: 1 };
    const size = checkPositiveInteger(part.size, 'part.size'), rank = checkNonNegativeInteger(part.rank, 'part.rank');
    if (rank >= size) throw new TypeError(`Expected part.rank < part.size but received rank ${rank} of size ${size}`);
    this.part = { rank, size };
    const n = dataset.length;
    this.batchesPerEpoch = opts.dropLast ? Math.floor(n / this.batchSize) : Math.ceil(n / this.batchSize);
    const workers = opts.workers ?? defaultWorkers();
    this.pool = new WorkerPool(checkNonNegativeInteger(workers, 'workers'));
    // Default: two batches per worker, but no more than about 2 GiB of batches in flight (a ten-crop
    // batch of 128 is 770 MB), and at least two.
    const batchBytes = this.batchSize * cropsPerImage(this.spec) * 3 * crop * crop * 4;
    const byMemory = Math.floor(2 ** 31 / batchBytes);
    this.prefetch = checkPositiveInteger(opts.prefetch ?? Math.max(2, Math.min(2 * workers, byMemory)), 'prefetch');
    this.recycle = opts.recycle ?? true;
    const simd = opts.simd ?? true;
    const slotBytes = batchBytes;
    this.kernel = this.recycle && simd
      ? createKernelMemory({ size: dataset.size, meanImage: mean.kind === 'image' ? mean.image : null, slotBytes, slots: this.prefetch + 1 })
      : null;
    if (this.kernel) for (let i = this.kernel.slots - 1; i >= 0; i--) this.free.push(kernelSlot(this.kernel, i));
  }

  /** Batches requested from the workers but not yet handed to the consumer (at most `prefetch`). */
  get pendingBatches(): number {
    return this.requested - this.yielded;
  }

  /** The data-set positions in epoch `epoch`'s order. */
  order(epoch: number): Int32Array {
    checkNonNegativeInteger(epoch, 'epoch');
    const n = this.dataset.length;
    return this.shuffle ? permutation(n, Rng.forKey(this.seed, epoch, 2)) : Int32Array.from({ length: n }, (_, i) => i);
  }

  /**
   * The batches of one epoch, in order; at most `prefetch` are computed ahead of the consumer.
   * `from` starts at that batch (a resumed run), without computing the ones before it.
   */
  async *epoch(epoch: number, opts: { from?: number } = {}): AsyncGenerator<Batch> {
    const from = checkNonNegativeInteger(opts.from ?? 0, 'from');
    const order = this.order(epoch);
    this.ready ??= this.pool.broadcast({
      type: 'init', source: this.dataset.source, spec: this.spec, seed: this.seed, ...(this.kernel ? { kernel: this.kernel } : {}),
    });
    await this.ready;
    const nb = this.batchesPerEpoch;
    const inflight: Promise<BatchResult>[] = [];
    const whole = (b: number) => [b * this.batchSize, Math.min((b + 1) * this.batchSize, order.length)] as const;
    const range = (b: number) => {
      const [lo, hi] = whole(b), n = hi - lo, { rank, size } = this.part;
      return [lo + Math.floor((rank * n) / size), lo + Math.floor(((rank + 1) * n) / size)] as const;
    };
    const slice = (b: number) => order.slice(...range(b));
    const per = cropsPerImage(this.spec) * 3 * this.spec.crop * this.spec.crop * 4;
    const owned: (Slot | undefined)[] = [];
    const submit = (b: number) => {
      const samples = slice(b);
      let slot: Slot | undefined;
      if (this.recycle) {
        // At most prefetch batches in flight plus one held by the consumer: prefetch + 1 slots.
        slot = this.free.pop() ?? { buffer: new SharedArrayBuffer(this.batchSize * per), imagesOffset: 0, scratchOffset: -1, ownBuffer: true };
        owned[b] = slot;
      }
      const task = slot
        ? { type: 'batch' as const, epoch, samples, slot: { ...(slot.ownBuffer ? { buffer: slot.buffer } : {}), imagesOffset: slot.imagesOffset, scratchOffset: slot.scratchOffset } }
        : { type: 'batch' as const, epoch, samples };
      const p = this.pool.run<BatchResult>(task).then((r) =>
        slot ? { ...r, images: new Float32Array(slot.buffer, slot.imagesOffset, (samples.length * per) / 4) } : r,
      );
      p.catch(() => undefined);
      inflight[b] = p;
      this.requested++;
    };
    let next = from;
    let handed = from;
    try {
      for (let b = from; b < nb; b++) {
        while (next < nb && next < b + this.prefetch) submit(next++);
        const r = await inflight[b]!;
        delete inflight[b];
        // The consumer has asked for this batch: the one it held before may be reused.
        if (this.held) this.free.push(this.held);
        this.held = owned[b] ?? null;
        const samples = slice(b);
        const cpi = cropsPerImage(this.spec);
        this.yielded++;
        handed++;
        yield {
          index: b,
          images: r.images,
          shape: [samples.length * cpi, 3, this.spec.crop, this.spec.crop],
          labels: Int32Array.from(samples, (s) => this.dataset.labels[s]!),
          samples,
          cropsPerImage: cpi,
          failures: r.failures,
          offset: range(b)[0] - whole(b)[0],
          total: whole(b)[1] - whole(b)[0],
        };
      }
    } finally {
      // A consumer that stops early leaves requested batches behind: stop counting them, and take
      // their memory back once the workers are done with it.
      this.requested -= next - handed;
      for (let b = handed; b < next; b++) {
        const slot = owned[b];
        if (slot) void inflight[b]!.then(() => this.free.push(slot), () => this.free.push(slot));
      }
    }
  }

  async close(): Promise<void> {
    await this.pool.close();
  }
}

/** A recycled batch buffer: a SharedArrayBuffer of its own, or a region of the kernel's memory. */
interface Slot {
  buffer: SharedArrayBuffer;
  imagesOffset: number;
  scratchOffset: number;
  ownBuffer: boolean;
}

function kernelSlot(k: KernelMemory, i: number): Slot {
  const base = k.slotOffset + i * (k.scratchBytes + k.slotBytes);
  return { buffer: k.memory.buffer, scratchOffset: base, imagesOffset: base + k.scratchBytes, ownBuffer: false };
}

export function createLoader(dataset: Dataset, opts: LoaderOptions): Loader {
  return new Loader(dataset, opts);
}
