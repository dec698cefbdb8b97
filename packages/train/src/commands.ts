/** What the CLI commands do, as functions (the CLI only parses arguments and prints). */
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { createLoader, type Dataset } from '@alexnet/data-imagenet';
import type { Network } from '@alexnet/layers';
import { softmax, tensor, tidy, type Tensor } from '@alexnet/tensor';
import { openData } from './data.js';
import { loadTrained, type TrainedModel } from './inference.js';
import { evaluate, train, type TrainOptions, type TrainResult } from './trainer.js';
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

export async function evaluateCheckpoint(checkpoint: string, data: string, opts: { tenCrop?: boolean; device?: string; batchSize?: number } = {}) {
  const t = await loadTrained(checkpoint, { devices: [opts.device ?? 'cpu:0'] });
  const d = await openData(data);
  if (!d.val) throw new Error(`${d.root} has no validation split to evaluate on`);
  if (d.val.classes.length !== t.classes.length) {
    throw new Error(`checkpoint ${checkpoint} has ${t.classes.length} classes but ${d.root} has ${d.val.classes.length}`);
  }
  const loader = createLoader(d.val, { batchSize: opts.batchSize ?? 64, mode: opts.tenCrop ? 'tenCrop' : 'center', crop: t.crop, ...meanOption(t) });
  try {
    return await evaluate(t.model, loader);
  } finally {
    await loader.close();
    t.model.dispose();
  }
}

function meanOption(t: TrainedModel): { mean: Float32Array | [number, number, number] } | Record<string, never> {
  if (!t.mean) return {};
  return t.mean.shape.length === 1 ? { mean: Array.from(t.mean.data) as [number, number, number] } : { mean: t.mean.data as Float32Array };
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

async function features(t: TrainedModel, ds: Dataset, count: number): Promise<{ feats: Float32Array; dim: number; probs: Float32Array; labels: number[] }> {
  const loader = createLoader(ds, { batchSize: 32, mode: 'center', crop: t.crop, shuffle: false, ...meanOption(t) });
  const parts: Float32Array[] = [], probParts: Float32Array[] = [], labels: number[] = [];
  let dim = 0, n = 0;
  const dev = t.model.devices[0]!;
  try {
    for await (const b of loader.epoch(0)) {
      const [f, p] = tidy(() => {
        const x = tensor(b.images, b.shape, { device: dev });
        const { hidden, logits } = forwardWithHidden(t.model, x, 'relu7');
        return [hidden, softmax(logits).dataSync() as Float32Array];
      });
      dim = f.length / b.labels.length;
      parts.push(f); probParts.push(p); labels.push(...b.labels);
      n += b.labels.length;
      if (n >= count) break;
    }
  } finally {
    await loader.close();
  }
  const take = Math.min(n, count);
  const cat = (xs: Float32Array[], w: number) => { const o = new Float32Array(take * w); let k = 0; for (const x of xs) { const m = Math.min(x.length, o.length - k); o.set(x.subarray(0, m), k); k += m; } return o; };
  return { feats: cat(parts, dim), dim, probs: cat(probParts, t.classes.length), labels: labels.slice(0, take) };
}

/** Reads one image of a data set back as 256x256 HWC uint8 (for pictures), through a 'center' crop of full size. */
async function imagesOf(ds: Dataset, indices: number[]): Promise<Uint8Array[]> {
  const loader = createLoader(ds, { batchSize: 64, mode: 'center', crop: ds.size, shuffle: false, mean: 'none' });
  const out = new Map<number, Uint8Array>();
  const want = new Set(indices);
  const s = ds.size, plane = s * s;
  try {
    for await (const b of loader.epoch(0)) {
      b.samples.forEach((sample, i) => {
        if (!want.has(sample)) return;
        const img = new Uint8Array(plane * 3);
        for (let p = 0; p < plane; p++) for (let c = 0; c < 3; c++) img[p * 3 + c] = Math.max(0, Math.min(255, Math.round(b.images[i * 3 * plane + c * plane + p]!)));
        out.set(sample, img);
      });
      if (out.size === want.size) break;
    }
  } finally {
    await loader.close();
  }
  return indices.map((i) => out.get(i)!);
}

/** Writes conv1-kernels.png (Figure 3), curves.png, and with data neighbours.png (Figure 4). Returns the paths. */
export async function visualizeCheckpoint(checkpoint: string, opts: { data?: string; out?: string; device?: string; queries?: number; bank?: number } = {}): Promise<string[]> {
  const t = await loadTrained(checkpoint, { devices: [opts.device ?? 'cpu:0'] });
  const out = resolve(opts.out ?? dirname(checkpoint));
  await mkdir(out, { recursive: true });
  const written: string[] = [];
  try {
    const w = t.model.stateDict()[t.meta.model.name === 'torchvision' ? 'features.0.weight' : 'conv1.weight']!;
    const kernels = join(out, 'conv1-kernels.png');
    await writeFile(kernels, await drawKernels(w.data as Float32Array, w.shape, { towers: t.meta.model.name === 'paper' ? 2 : 1 }));
    written.push(kernels);
    const history = ((t.meta.trainer as { history?: EpochRecord[] }).history ?? []);
    if (history.length > 0) {
      const curves = join(out, 'curves.png');
      await writeFile(curves, await drawCurves(history));
      written.push(curves);
    }
    if (opts.data) {
      const d = await openData(opts.data);
      if (d.val && d.val.length > 0) {
        const q = await features(t, d.val, opts.queries ?? 4);
        const bank = await features(t, d.train, opts.bank ?? 400);
        const rows: NeighbourRow[] = [];
        const qImgs = await imagesOf(d.val, Array.from({ length: q.labels.length }, (_, i) => i));
        const nbIdx = q.labels.map((_, i) => nearest(q.feats.subarray(i * q.dim, (i + 1) * q.dim), bank.feats, bank.dim, 6));
        const bankImgs = await imagesOf(d.train, [...new Set(nbIdx.flat())]);
        const bankMap = new Map([...new Set(nbIdx.flat())].map((k, i) => [k, bankImgs[i]!]));
        q.labels.forEach((label, i) => {
          const p = q.probs.subarray(i * t.classes.length, (i + 1) * t.classes.length);
          const top = Array.from(p.keys()).sort((a, b) => p[b]! - p[a]!).slice(0, 5);
          rows.push({ image: qImgs[i]!, truth: t.classes[label]!.name, top5: top.map((c) => ({ name: t.classes[c]!.name, p: p[c]! })), neighbours: nbIdx[i]!.map((k) => bankMap.get(k)!) });
        });
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
