/**
 * From a data folder to device tensors: prepared shards when the folder has a manifest (the fast
 * path), else a raw ImageNet/ImageFolder tree decoded on the fly. Batches come from the
 * @alexnet/data-imagenet loader as plain typed arrays and are written to the model's input device(s).
 */
import { existsSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import {
  indexImageNet, MANIFEST, openImageFolder, openShards, type Batch, type Dataset, type Statistics,
} from '@alexnet/data-imagenet';
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

/** A loader batch as tensors on `device`: images [n, 3, crop, crop] float32 and labels [n] int32. */
export function batchToTensors(batch: Batch, device: Device): { images: Tensor; labels: Tensor } {
  return {
    images: tensor(batch.images, batch.shape, { device }),
    labels: tensor(batch.labels, [batch.labels.length], { device, dtype: 'int32' }),
  };
}

export type { Batch, Dataset, Statistics };

/**
 * Mean RGB of ImageNet's training images on the 0..255 scale (the values Caffe and VGG publish),
 * used for raw folders, which have no statistics until `alexnet prepare` computes them (§2).
 */
export const IMAGENET_CHANNEL_MEAN: readonly [number, number, number] = [123.68, 116.78, 103.94];

export interface MeanChoice {
  /** What the loader subtracts. */
  mean: 'image' | Float32Array | readonly [number, number, number];
  kind: 'image' | 'channel';
  /** The values, to keep with the model: [size, size, 3] HWC or [3]. */
  host: HostTensor;
}

/** §2: the mean image of the training set when it was prepared, else the ImageNet channel means. */
export function chooseMean(train: Dataset): MeanChoice {
  const st = train.statistics;
  if (st) return { mean: 'image', kind: 'image', host: { dtype: 'float32', shape: [train.size, train.size, 3], data: st.meanImage } };
  return { mean: IMAGENET_CHANNEL_MEAN, kind: 'channel', host: { dtype: 'float32', shape: [3], data: Float32Array.from(IMAGENET_CHANNEL_MEAN) } };
}
