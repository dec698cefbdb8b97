/**
 * From a data folder to device tensors: prepared shards when the folder has a manifest (the fast
 * path), else a raw ImageNet/ImageFolder tree decoded on the fly. Batches come from the
 * @alexnet/data-imagenet loader as plain typed arrays and are written to the model's input device(s).
 */
import { existsSync } from 'node:fs';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import {
  computeStatistics, DEFAULT_STATISTICS_SAMPLES, indexImageNet, loadStatistics, MANIFEST, openImageFolder, openShards, saveStatistics, splitDataset,
  type Batch, type Dataset, type Statistics,
} from '@alexnet/data-imagenet';
import type { Preprocessing } from '@alexnet/interop';
import type { Recipe } from './recipe.js';
import { tensor, type Device, type HostTensor, type Tensor } from '@alexnet/tensor';

export class DataError extends Error {
  override name = 'DataError';
}

export interface TrainingData {
  train: Dataset;
  val: Dataset | null;
  kind: 'shards' | 'folder';
  root: string;
}

/** Opens DIR: prepared shards (manifest.json) or a raw ImageNet layout (train/, val/). */
export async function openData(dir: string, opts: { size?: number } = {}): Promise<TrainingData> {
  const root = resolve(dir);
  if (!existsSync(root)) throw new DataError(`data folder ${root} does not exist`);
  if (!(await stat(root)).isDirectory()) throw new DataError(`${root} is not a folder`);
  if (existsSync(join(root, MANIFEST))) {
    const train = await openShards(root, 'train');
    let val: Dataset | null = null;
    try { val = await openShards(root, 'val'); } catch { val = null; }
    return { train, val, kind: 'shards', root };
  }
  const entries = await readdir(root);
  if (entries.length === 0) throw new DataError(`data folder ${root} is empty: expected train/ (and val/) in the ImageNet layout, or shards written by \`alexnet prepare\``);
  const index = await indexImageNet(root);
  const size = opts.size ?? 256;
  const classes = index.classes.map((c) => ({ wnid: c.wnid, name: c.name }));
  const trainSamples = index.splits.train ?? [];
  if (trainSamples.length === 0) throw new DataError(`data folder ${root} has no training images`);
  const train = await openImageFolder({ samples: trainSamples, classes }, { size });
  const val = index.splits.val ? await openImageFolder({ samples: index.splits.val, classes }, { size }) : null;
  return { train, val, kind: 'folder', root };
}

/**
 * The validation split of DIR, for evaluation: prepared shards with val shards, or an ImageNet
 * folder with val/ (flat with ground truth, or val/<wnid>/); a training set is not needed.
 */
export async function openValidation(dir: string, opts: { size?: number } = {}): Promise<{ val: Dataset; root: string }> {
  const root = resolve(dir);
  if (!existsSync(root)) throw new DataError(`data folder ${root} does not exist`);
  if (!(await stat(root)).isDirectory()) throw new DataError(`${root} is not a folder`);
  if (existsSync(join(root, MANIFEST))) return { val: await openShards(root, 'val'), root };
  const index = await indexImageNet(root);
  const samples = index.splits.val;
  if (!samples || samples.length === 0) throw new DataError(`data folder ${root} has no validation images: expected val/ in the ImageNet layout, or shards written by \`alexnet prepare\``);
  return { val: await openImageFolder({ samples, classes: index.classes.map((c) => ({ wnid: c.wnid, name: c.name })) }, { size: opts.size ?? 256 }), root };
}

/**
 * `ds` with its labels renumbered to a model's classes, matched by wnid: the same classes in the
 * same order pass unchanged; a subset (e.g. 10 of ImageNet's classes) is mapped onto the model's
 * indices. A class the model does not know is an error naming it.
 */
export function matchClasses(ds: Dataset, classes: readonly { wnid: string; name: string }[], what: string): { dataset: Dataset; note?: string } {
  const same = ds.classes.length === classes.length && ds.classes.every((c, i) => c.wnid === classes[i]!.wnid);
  if (same) return { dataset: ds };
  const index = new Map(classes.map((c, i) => [c.wnid, i]));
  const unknown = ds.classes.filter((c) => !index.has(c.wnid));
  if (unknown.length > 0) {
    throw new DataError(`${what} has ${unknown.length} class(es) the model was not trained on: ${unknown.slice(0, 5).map((c) => c.wnid).join(', ')}` +
      `${unknown.length > 5 ? ', ...' : ''} (the model knows ${classes.length} classes, e.g. ${classes.slice(0, 3).map((c) => c.wnid).join(', ')})`);
  }
  const map = ds.classes.map((c) => index.get(c.wnid)!);
  return {
    dataset: { ...ds, classes: [...classes], labels: Int32Array.from(ds.labels, (l) => map[l]!) },
    note: `${what} has ${ds.classes.length} of the model's ${classes.length} classes (matched by wnid)`,
  };
}

/** A loader batch as tensors on `device`: images [n, 3, crop, crop] float32 and labels [n] int32. */
export function batchToTensors(batch: Batch, device: Device): { images: Tensor; labels: Tensor } {
  return {
    images: tensor(batch.images, batch.shape, { device }),
    labels: tensor(batch.labels, [batch.labels.length], { device, dtype: 'int32' }),
  };
}

export type { Batch, Dataset, Statistics };

/**
 * Mean RGB of ImageNet's training images on the 0..255 scale (the values Caffe and VGG publish):
 * the mean of last resort, for a data set whose statistics cannot be had.
 */
export const IMAGENET_CHANNEL_MEAN: readonly [number, number, number] = [123.68, 116.78, 103.94];

export interface MeanChoice {
  /** What the loader subtracts. */
  mean: 'image' | Float32Array | readonly [number, number, number];
  kind: 'image' | 'channel';
  /** The values, to keep with the model: [size, size, 3] HWC or [3]. */
  host: HostTensor;
}

/** §2: the mean image of the training set when its statistics are known, else the ImageNet channel means. */
export function chooseMean(train: Dataset): MeanChoice {
  const st = train.statistics;
  if (st) return { mean: 'image', kind: 'image', host: { dtype: 'float32', shape: [train.size, train.size, 3], data: st.meanImage } };
  return { mean: IMAGENET_CHANNEL_MEAN, kind: 'channel', host: { dtype: 'float32', shape: [3], data: Float32Array.from(IMAGENET_CHANNEL_MEAN) } };
}

/** The data of a training run: the splits it uses, and where validation and statistics come from. */
export interface RunData {
  train: Dataset;
  val: Dataset | null;
  validation: Recipe['data']['validation'];
  /** Where the §2 / §4.1 statistics came from, in words. */
  statisticsFrom: string;
}

/** Folder (inside the run folder) where statistics computed for a raw data set are cached. */
export const STATISTICS_CACHE = 'statistics';

/**
 * Readies opened data for training. No validation split: with `valFraction`, a seeded slice of the
 * training set is held back. No statistics (a raw folder, never prepared): they are computed from a
 * seeded sample of `statsSamples` training images and cached in `<out>/statistics`, so the mean
 * image (§2) and PCA lighting (§4.1) apply as they would after `alexnet prepare`.
 */
export async function readyData(data: TrainingData, opts: {
  out: string; seed: number; valFraction?: number; statsSamples?: number; workers?: number; log: (line: string) => void; progress?: boolean;
}): Promise<RunData> {
  let train = data.train, val = data.val;
  let validation: RunData['validation'] = val ? { kind: 'split', images: val.length } : { kind: 'none', images: 0 };
  if (opts.valFraction !== undefined) {
    if (val) throw new DataError(`${data.root} has a validation split of its own (${val.length} images); --val-fraction holds back training images only for data without one`);
    [train, val] = splitDataset(train, opts.valFraction, opts.seed);
    validation = { kind: 'held-back', images: val.length, fraction: opts.valFraction };
  }
  let statisticsFrom = train.length === data.train.length ? 'statistics of the whole training set, from alexnet prepare' : 'statistics of the whole training set (before holding back), from alexnet prepare';
  if (!train.statistics) {
    const samples = opts.statsSamples ?? DEFAULT_STATISTICS_SAMPLES;
    const dir = join(opts.out, STATISTICS_CACHE);
    const key = { root: data.root, size: train.size, images: train.length, samples, seed: opts.seed, valFraction: opts.valFraction ?? null };
    const keyFile = join(dir, 'source.json');
    let stats: Statistics | null = null;
    if (existsSync(keyFile)) {
      try {
        if ((await readFile(keyFile, 'utf8')) === JSON.stringify(key)) stats = await loadStatistics(dir);
      } catch { stats = null; } // a damaged cache is computed again
    }
    const drawn = Math.min(samples, train.length);
    if (stats) {
      opts.log(`statistics (§2 mean image, §4.1 PCA lighting): read from ${dir}, computed earlier from ${drawn} sampled training images`);
    } else {
      opts.log(`${data.root} has no statistics (it was not prepared with alexnet prepare): computing the mean image (§2) and the RGB eigen-decomposition for PCA lighting (§4.1) from ${drawn} of its ${train.length} training images, drawn with seed ${opts.seed}`);
      const computed = await computeStatistics(train, { samples, seed: opts.seed, ...(opts.workers !== undefined ? { workers: opts.workers } : {}), progress: opts.progress ?? false });
      if (computed.failures.length > 0) opts.log(`statistics: ${computed.failures.length} sampled image(s) could not be decoded and were left out, e.g. ${computed.failures[0]!.reason}`);
      stats = computed;
      await saveStatistics(dir, stats);
      await writeFile(keyFile, JSON.stringify(key));
      opts.log(`statistics cached in ${dir}`);
    }
    statisticsFrom = `statistics of ${drawn} sampled training images, cached in ${dir}`;
    train = { ...train, statistics: stats };
  }
  return { train, val, validation, statisticsFrom };
}

/**
 * Another recipe's normalization on a loader batch of raw 0..255 values, NCHW, in place:
 * (x * scale - mean[c]) / std[c], in float32 as torchvision computes it. For weights imported from
 * elsewhere; the paper's recipe subtracts the mean in the loader instead (§2).
 */
export function normalizeBatch(images: Float32Array, shape: readonly [number, number, number, number], p: Pick<Preprocessing, 'scale' | 'mean' | 'std'>): void {
  const f = Math.fround;
  const [n, c, h, w] = shape, plane = h * w;
  const div255 = Math.abs(p.scale - 1 / 255) < 1e-15; // ToTensor divides by 255 rather than multiplying by 1/255
  const scale = f(p.scale);
  for (let i = 0; i < n; i++) {
    for (let ch = 0; ch < c; ch++) {
      const m = f(p.mean[ch]!), s = f(p.std[ch]!), base = (i * c + ch) * plane;
      for (let k = base; k < base + plane; k++) {
        const v = images[k]!;
        images[k] = f(f((div255 ? f(v / 255) : f(v * scale)) - m) / s);
      }
    }
  }
}
