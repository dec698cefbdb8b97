/** Using a trained model: load it from a checkpoint, preprocess images as in training, predict (§6.1). */
import { cropToCHW, decodeResizeCrop } from '@alexnet/data-imagenet';
import { createModel, type ModelName, type Network } from '@alexnet/layers';
import { device as toDevice, softmax, tensor, tidy, type HostTensor } from '@alexnet/tensor';
import { preprocessImage, type Preprocessing } from '@alexnet/interop';
import { loadCheckpoint, type CheckpointMeta } from './checkpoint.js';

export interface TrainedModel {
  model: Network;
  meta: CheckpointMeta;
  classes: { wnid: string; name: string }[];
  /** Image side the data was prepared at (256) and the crop the model takes. */
  size: number;
  crop: number;
  mean: HostTensor | undefined;
  /** Another recipe's input normalization (imported weights), instead of the mean. */
  preprocessing: Preprocessing | undefined;
}

/** Rebuilds the model a checkpoint was trained with and loads its weights. */
export async function loadTrained(path: string, opts: { devices?: string[] } = {}): Promise<TrainedModel> {
  const ck = await loadCheckpoint(path);
  const m = ck.meta.model as { name: ModelName; classes: number; inputSize: number; positiveBias?: number; lrn?: boolean; pool?: { size: number; stride: number }; dropout?: boolean; activation?: 'relu' | 'tanh' };
  const devices = (opts.devices ?? ['cpu:0']).map((d) => toDevice(d));
  const model = createModel(m.name, { classes: m.classes, inputSize: m.inputSize, devices, lrn: m.lrn, pool: m.pool, dropout: m.dropout, activation: m.activation });
  model.loadStateDict(ck.model);
  const data = ck.meta.data;
  return { model, meta: ck.meta, classes: data.classes, size: data.size, crop: data.crop, mean: ck.data.get('mean'), preprocessing: data.preprocessing };
}

/**
 * An image file as the model's [3, crop, crop] input: centre-cropped and mean-subtracted (§2), or
 * through the imported weights' own preprocessing (torchvision's, reproduced to the bit).
 */
export async function preprocess(file: string | Uint8Array, t: Pick<TrainedModel, 'size' | 'crop' | 'mean' | 'preprocessing'>): Promise<{ input: Float32Array; pixels: Uint8Array }> {
  if (t.preprocessing) return preprocessImage(file, t.preprocessing);
  const pixels = await decodeResizeCrop(file, { size: t.size });
  const off = Math.floor((t.size - t.crop) / 2);
  const out = new Float32Array(3 * t.crop * t.crop);
  const meanImage = t.mean && t.mean.shape.length === 3 ? (t.mean.data as Float32Array) : null;
  const channel = t.mean && t.mean.shape.length === 1 ? Array.from(t.mean.data, (v) => -v) : [0, 0, 0];
  cropToCHW(pixels, t.size, off, off, t.crop, false, meanImage, channel, out, 0);
  return { input: out, pixels };
}

export interface Prediction {
  file: string;
  top5: { index: number; wnid: string; name: string; probability: number }[];
}

/** The five most probable classes of each image, with names (§6.1). */
export async function predict(t: TrainedModel, files: string[], k = 5): Promise<Prediction[]> {
  const results: Prediction[] = [];
  const dev = t.model.devices[0]!;
  for (const file of files) {
    const { input } = await preprocess(file, t);
    const probs = tidy(() => softmax(t.model.forward(tensor(input, [1, 3, t.crop, t.crop], { device: dev }), { training: false })).dataSync());
    if (!probs.every(Number.isFinite)) {
      throw new Error(`the model's outputs for ${typeof file === 'string' ? file : 'the image'} are NaN or infinite: its weights have diverged, so it has no prediction to give`);
    }
    const order = Array.from(probs.keys()).sort((a, b) => probs[b]! - probs[a]! || a - b).slice(0, Math.min(k, probs.length));
    results.push({ file, top5: order.map((i) => ({ index: i, wnid: t.classes[i]?.wnid ?? String(i), name: t.classes[i]?.name ?? String(i), probability: probs[i]! })) });
  }
  return results;
}
