/** What the CLI commands do, as functions (the CLI only parses arguments and prints). */
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { createLoader, samplePositions, subsetDataset, type Batch, type Dataset } from '@alexnet/data-imagenet';
import type { Network } from '@alexnet/layers';
import { softmax, tensor, tidy, type Tensor } from '@alexnet/tensor';
import { DataError, matchClasses, normalizeBatch, openData, openValidation } from './data.js';
import { loadTrained, type TrainedModel } from './inference.js';
import { evaluateWithProgress, NonFiniteOutputError, type Evaluation } from './evaluate.js';
import { train, type TrainOptions, type TrainResult } from './trainer.js';
import { drawCurves, drawKernels, drawNeighbours, nearest, type EpochRecord, type NeighbourRow } from './visualize.js';

/** Trains, then draws the pictures of the result beside the checkpoint. */
export async function runTrain(opts: TrainOptions): Promise<TrainResult & { pictures: string[] }> {
  const r = await train(opts);
  let pictures: string[] = [];
  if (r.stopped !== 'aborted' && existsSync(r.checkpoint)) {
    pictures = await visualizeCheckpoint(r.checkpoint, { data: typeof opts.data === 'string' ? opts.data : undefined, device: opts.devices?.[0] });
  }
  return { ...r, pictures };
}

/**
 * Top-1 / top-5 error of a checkpoint on DIR's validation split (no training set needed). Classes
 * are matched by wnid, so a subset of ImageNet's classes evaluates a 1000-class model.
 */
export async function evaluateCheckpoint(checkpoint: string, data: string, opts: {
  tenCrop?: boolean; device?: string; batchSize?: number; workers?: number; maxBadImages?: number; progress?: boolean; log?: (line: string) => void;
} = {}): Promise<Evaluation> {
  const t = await loadTrained(checkpoint, { devices: [opts.device ?? 'cpu:0'] });
  try {
    const { val, root } = await openValidation(data, { size: t.size });
    if (val.size !== t.size) throw new DataError(`${root} holds ${val.size}x${val.size} images but checkpoint ${checkpoint} was trained on ${t.size}x${t.size} ones (§2)`);
    const { dataset, note } = matchClasses(val, t.classes, `the validation split of ${root}`);
    if (note) opts.log?.(note);
    const loader = createLoader(dataset, {
      batchSize: opts.batchSize ?? 64, mode: opts.tenCrop ? 'tenCrop' : 'center', crop: t.crop, ...meanOption(t), ...(opts.workers !== undefined ? { workers: opts.workers } : {}),
    });
    try {
      return await evaluateWithProgress(t.model, loader, 'eval', { maxBadImages: opts.maxBadImages, progress: opts.progress ?? false, transform: inputTransform(t) });
    } catch (e) {
      if (e instanceof NonFiniteOutputError) throw new NonFiniteOutputError(`checkpoint ${checkpoint}: ${e.message}`);
      throw e;
    } finally {
      await loader.close();
    }
  } finally {
    t.model.dispose();
  }
}

/** The loader's mean for a trained model: its own (§2), or none when its imported preprocessing normalizes instead. */
function meanOption(t: TrainedModel): { mean: Float32Array | [number, number, number] | 'none' } | Record<string, never> {
  if (t.preprocessing) return { mean: 'none' };
  if (!t.mean) return {};
  return t.mean.shape.length === 1 ? { mean: Array.from(t.mean.data) as [number, number, number] } : { mean: t.mean.data as Float32Array };
}

/** The batch transform of a model with imported preprocessing (torchvision's normalization), else none. */
function inputTransform(t: TrainedModel): ((b: Batch) => void) | undefined {
  const p = t.preprocessing;
  return p ? (b) => normalizeBatch(b.images, b.shape, p) : undefined;
}

/** Runs a one-device model's stages on x; `visit` sees each stage's output and may stop the pass. */
function runStages(model: Network, x: Tensor, visit: (name: string, t: Tensor) => boolean): Tensor {
  if (model.devices.length !== 1) throw new Error('forwardUntil needs a model on one device');
  let t = x;
  for (const { spec, layers } of model.layers()) {
    const y = layers[0]!.forward(t, { training: false });
    if (t !== x) t.dispose();
    t = y;
    if (visit(spec.name, t)) break;
  }
  return t;
}

/** The activations of layer `name` (e.g. relu7, the last 4096-d hidden layer) for x, on a one-device model. */
export function forwardUntil(model: Network, x: Tensor, name: string): Tensor {
  let found = false;
  const t = runStages(model, x, (n) => (found = n === name));
  if (!found) { if (t !== x) t.dispose(); throw new Error(`the model has no layer named ${name}`); }
  return t;
}

/** One evaluation pass giving both the activations of layer `name` (read back) and the logits. */
function forwardWithHidden(model: Network, x: Tensor, name: string): { hidden: Float32Array; logits: Tensor } {
  let hidden: Float32Array | null = null;
  const logits = runStages(model, x, (n, t) => { if (n === name) hidden = t.dataSync() as Float32Array; return false; });
  if (!hidden) throw new Error(`the model has no layer named ${name}`);
  return { hidden, logits };
}

/**
 * The last hidden layer of a model (the output of the last nonlinearity before the final linear
 * layer: relu7 in the paper's net, 4096-d), taken from its description, whose activations Figure 4
 * compares (§6.1).
 */
export function featureLayer(model: Network): string {
  const layers = model.description.layers;
  let last = -1;
  for (let i = 0; i < layers.length; i++) if (layers[i]!.kind === 'linear') last = i;
  for (let i = last - 1; i >= 0; i--) if (layers[i]!.kind === 'relu' || layers[i]!.kind === 'tanh') return layers[i]!.name;
  throw new Error(`model ${model.description.name} has no hidden layer before its last linear layer`);
}

/** The layer-`layer` activations and softmax outputs of every image of `ds` (centre crops, in order). */
async function features(t: TrainedModel, ds: Dataset, layer: string): Promise<{ feats: Float32Array; dim: number; probs: Float32Array; labels: number[] }> {
  const loader = createLoader(ds, { batchSize: 32, mode: 'center', crop: t.crop, shuffle: false, ...meanOption(t) });
  const parts: Float32Array[] = [], probParts: Float32Array[] = [], labels: number[] = [];
  let dim = 0;
  const dev = t.model.devices[0]!;
  try {
    const transform = inputTransform(t);
    for await (const b of loader.epoch(0)) {
      transform?.(b);
      const [f, p] = tidy(() => {
        const x = tensor(b.images, b.shape, { device: dev });
        const { hidden, logits } = forwardWithHidden(t.model, x, layer);
        return [hidden, softmax(logits).dataSync() as Float32Array];
      });
      dim = f.length / b.labels.length;
      parts.push(f); probParts.push(p); labels.push(...b.labels);
    }
  } finally {
    await loader.close();
  }
  const cat = (xs: Float32Array[]) => { const o = new Float32Array(xs.reduce((a, x) => a + x.length, 0)); let k = 0; for (const x of xs) { o.set(x, k); k += x.length; } return o; };
  return { feats: cat(parts), dim, probs: cat(probParts), labels };
}

/** Images `positions` of a data set as size x size HWC uint8 (for pictures), decoding only those. */
async function imagesOf(ds: Dataset, positions: ArrayLike<number>): Promise<Uint8Array[]> {
  const loader = createLoader(subsetDataset(ds, positions), { batchSize: 64, mode: 'center', crop: ds.size, shuffle: false, mean: 'none' });
  const out: Uint8Array[] = [];
  const s = ds.size, plane = s * s;
  try {
    for await (const b of loader.epoch(0)) {
      for (let i = 0; i < b.labels.length; i++) {
        const img = new Uint8Array(plane * 3);
        for (let p = 0; p < plane; p++) for (let c = 0; c < 3; c++) img[p * 3 + c] = Math.max(0, Math.min(255, Math.round(b.images[i * 3 * plane + c * plane + p]!)));
        out.push(img);
      }
    }
  } finally {
    await loader.close();
  }
  return out;
}

export interface NeighbourChoice {
  /** The feature layer compared (the last hidden layer). */
  layer: string;
  /** Training-set positions of the bank, drawn uniformly with the seed. */
  bank: Int32Array;
  /** Per query: its validation-set position, top-5 classes with probabilities, and its nearest bank images (training-set positions, nearest first). */
  queries: { sample: number; label: number; top5: { index: number; p: number }[]; neighbours: number[] }[];
}

/**
 * Figure 4 (§6.1) as data: `queries` validation images and, for each, the `k` training images of a
 * bank of `bank` whose last-hidden-layer vectors are nearest in Euclidean distance. Bank and queries
 * are seeded uniform draws over the whole split (the splits are sorted by class, so the first images
 * would all be of one class).
 */
export async function chooseNeighbours(t: TrainedModel, train: Dataset, val: Dataset, opts: { queries?: number; bank?: number; k?: number; seed?: number } = {}): Promise<NeighbourChoice> {
  const seed = opts.seed ?? 0, k = opts.k ?? 6;
  const layer = featureLayer(t.model);
  const qPos = samplePositions(val.length, opts.queries ?? 4, seed);
  const bPos = samplePositions(train.length, opts.bank ?? 1000, seed + 1);
  const q = await features(t, subsetDataset(val, qPos), layer);
  const b = await features(t, subsetDataset(train, bPos), layer);
  const c = t.classes.length;
  return {
    layer,
    bank: bPos,
    queries: Array.from(qPos, (sample, i) => {
      const p = q.probs.subarray(i * c, (i + 1) * c);
      const top = Array.from(p.keys()).sort((x, y) => p[y]! - p[x]! || x - y).slice(0, 5);
      const nb = nearest(q.feats.subarray(i * q.dim, (i + 1) * q.dim), b.feats, b.dim, Math.min(k, bPos.length));
      return { sample, label: q.labels[i]!, top5: top.map((index) => ({ index, p: p[index]! })), neighbours: nb.map((j) => bPos[j]!) };
    }),
  };
}

/** Writes conv1-kernels.png (Figure 3), curves.png, and with data neighbours.png (Figure 4). Returns the paths. */
export async function visualizeCheckpoint(checkpoint: string, opts: { data?: string; out?: string; device?: string; queries?: number; bank?: number; seed?: number } = {}): Promise<string[]> {
  const t = await loadTrained(checkpoint, { devices: [opts.device ?? 'cpu:0'] });
  const out = resolve(opts.out ?? dirname(checkpoint));
  await mkdir(out, { recursive: true });
  const written: string[] = [];
  try {
    const conv1 = t.model.description.layers.find((l) => l.kind === 'conv')!;
    const w = t.model.stateDict()[`${conv1.name}.weight`]!;
    const kernels = join(out, 'conv1-kernels.png');
    await writeFile(kernels, await drawKernels(w.data as Float32Array, w.shape, { towers: t.model.description.towers }));
    written.push(kernels);
    const history = ((t.meta.trainer as { history?: EpochRecord[] }).history ?? []);
    if (history.length > 0) {
      const curves = join(out, 'curves.png');
      await writeFile(curves, await drawCurves(history));
      written.push(curves);
    }
    if (opts.data) {
      const d = await openData(opts.data, { size: t.size });
      if (d.val && d.val.length > 0) {
        const train = matchClasses(d.train, t.classes, `the training split of ${d.root}`).dataset, val = matchClasses(d.val, t.classes, `the validation split of ${d.root}`).dataset;
        const choice = await chooseNeighbours(t, train, val, { queries: opts.queries, bank: opts.bank, seed: opts.seed });
        const qImgs = await imagesOf(val, choice.queries.map((q) => q.sample));
        const shown = [...new Set(choice.queries.flatMap((q) => q.neighbours))];
        const shownImgs = await imagesOf(train, shown);
        const img = new Map(shown.map((p, i) => [p, shownImgs[i]!]));
        const rows: NeighbourRow[] = choice.queries.map((q, i) => ({
          image: qImgs[i]!, truth: t.classes[q.label]!.name, top5: q.top5.map((c) => ({ name: t.classes[c.index]!.name, p: c.p })),
          neighbours: q.neighbours.map((p) => img.get(p)!),
        }));
        const fig4 = join(out, 'neighbours.png');
        await writeFile(fig4, await drawNeighbours(rows, d.val.size));
        written.push(fig4);
      }
    }
  } finally {
    t.model.dispose();
  }
  return written;
}
