/**
 * Evaluation (§4.1, §6): top-1 and top-5 error of a model on a data set, centre crop or the 10-crop
 * average of softmax outputs. A diverged model (NaN or infinite outputs) gets no error rate.
 */
import { Progress, type Batch, type Loader } from '@alexnet/data-imagenet';
import type { Network } from '@alexnet/layers';
import { dispose, softmax, tensor, tidy, topkCorrect } from '@alexnet/tensor';
import { batchToTensors } from './data.js';

/** Images failed to load, more than the run allows (`--max-bad-images`). */
export class BadImagesError extends Error {
  override name = 'BadImagesError';
  constructor(readonly failures: readonly { sample: number; reason: string }[], readonly max: number, what: string) {
    super(`${failures.length} images failed to load during ${what}, more than --max-bad-images ${max} allows; the first: ` +
      `${failures.slice(0, 3).map((f) => f.reason).join('; ')}. Restore or remove them (and index again), or raise --max-bad-images.`);
  }
}

/** The model's outputs hold NaN or ±Infinity: its weights have diverged. */
export class NonFiniteOutputError extends Error {
  override name = 'NonFiniteOutputError';
}

/** Rows of a [rows, classes] block with any NaN or ±Infinity. */
export function nonFiniteRows(z: ArrayLike<number>, rows: number, classes: number): number {
  let bad = 0;
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < classes; j++) if (!Number.isFinite(z[i * classes + j]!)) { bad++; break; }
  }
  return bad;
}

export interface EvaluateOptions {
  /** Called after each batch with the images done and the total. */
  onProgress?: (done: number, total: number) => void;
  /** Images that may fail to load before evaluation stops (default: no limit, all are counted and named). */
  maxBadImages?: number;
  /** Applied to each batch's images before the forward pass (another recipe's normalization). */
  transform?: (batch: Batch) => void;
  /** Count images with NaN or infinite outputs (as wrong) instead of stopping: a data-parallel caller decides with the other ranks. */
  countNonFinite?: boolean;
}

export interface Evaluation {
  top1Error: number;
  top5Error: number;
  images: number;
  /** The counts behind the errors (for summing across processes). */
  top1Correct: number;
  top5Correct: number;
  /** Images whose outputs held NaN or infinity (counted only with countNonFinite). */
  nonFinite: number;
  /** Images that could not be read (scored as the zeros they became). */
  badImages: Batch['failures'];
}

/**
 * Evaluation on a data set: top-1 and top-5 error (centre crop, or the 10-crop average of softmax
 * outputs, §4.1). A model whose outputs are NaN scores nothing: evaluation stops with a
 * NonFiniteOutputError instead of reporting an error rate.
 */
export async function evaluate(model: Network, loader: Loader, opts: EvaluateOptions = {}): Promise<Evaluation> {
  let c1 = 0, c5 = 0, n = 0, nonFinite = 0;
  const dev = model.devices[0]!;
  const total = loader.dataset.length;
  const badImages: Batch['failures'] = [];
  for await (const batch of loader.epoch(0)) {
    badImages.push(...batch.failures);
    if (opts.maxBadImages !== undefined && badImages.length > opts.maxBadImages) throw new BadImagesError(badImages, opts.maxBadImages, 'evaluation');
    const imgs = batch.labels.length;
    if (imgs === 0) continue; // a data-parallel rank's empty part of a last, small batch
    opts.transform?.(batch);
    const [scores, top1, top5] = tidy(() => {
      const { images, labels } = batchToTensors(batch, dev);
      const logits = model.forward(images, { training: false });
      const classes = logits.shape[1]!, k5 = Math.min(5, classes);
      if (batch.cropsPerImage === 1) return [logits, topkCorrect(logits, labels, 1), topkCorrect(logits, labels, k5)];
      // §4.1: average the softmax of the ten patches of each image.
      const probs = softmax(logits).dataSync();
      const k = batch.cropsPerImage;
      const avg = new Float32Array(imgs * classes);
      for (let i = 0; i < imgs; i++) for (let j = 0; j < k; j++) for (let c = 0; c < classes; c++) avg[i * classes + c]! += probs[(i * k + j) * classes + c]! / k;
      const t = tensor(avg, [imgs, classes], { device: dev });
      return [t, topkCorrect(t, labels, 1), topkCorrect(t, labels, k5)];
    });
    try {
      const z = await scores!.data();
      const bad = nonFiniteRows(z, imgs, scores!.shape[1]!);
      nonFinite += bad;
      if (bad > 0 && !opts.countNonFinite) {
        throw new NonFiniteOutputError(`the model's outputs are NaN or infinite for ${bad} of the ${imgs} images of evaluation batch ${batch.index + 1}: ` +
          'its weights have diverged, so it has no error rate to report');
      }
      c1 += (await top1!.data())[0]!;
      c5 += (await top5!.data())[0]!;
    } finally {
      dispose([scores!, top1!, top5!]);
    }
    n += imgs;
    opts.onProgress?.(n, total);
  }
  return { top1Error: n ? 1 - c1 / n : NaN, top5Error: n ? 1 - c5 / n : NaN, images: n, top1Correct: c1, top5Correct: c5, nonFinite, badImages };
}

/** Evaluation with a progress line (`label`: what is evaluated), the error rates, and the failed images. */
export async function evaluateWithProgress(model: Network, loader: Loader, label: string, opts: EvaluateOptions & { progress?: boolean } = {}): Promise<Evaluation> {
  const bar = new Progress({ label, total: loader.dataset.length, unit: 'img', enabled: opts.progress ?? true });
  try {
    return await evaluate(model, loader, { ...opts, onProgress: (done, total) => { bar.update(done); opts.onProgress?.(done, total); } });
  } finally {
    bar.finish();
  }
}
