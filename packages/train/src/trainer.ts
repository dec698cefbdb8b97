/**
 * The trainer (§5): epochs of batches from @alexnet/data-imagenet, forward, backward, the paper's SGD,
 * evaluation on the validation split after each epoch (top-1 / top-5 error, centre crop or 10-crop),
 * the paper's schedule (lr / 10 when validation error stops improving, three times), checkpoints
 * (atomic, every N steps and at each epoch end) that resume to the same loss sequence, Ctrl-C handling,
 * NaN detection and a collapse detector (the loss pinned at ln(classes) after an early spike, §5).
 * It never changes the recipe silently: the recipe is printed at the start and kept in metrics.jsonl
 * and the checkpoint; a data set without statistics gets them computed, one without a validation
 * split gets a warning and a schedule on the training loss, and images that fail to load are named.
 *
 * Pipelining: the loader prepares the next batches on worker threads while the devices compute; the
 * loss of step s is read back only after step s + 1 has been enqueued, so JavaScript never makes the
 * devices wait.
 */
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createLoader, Progress, type Batch, type Loader } from '@alexnet/data-imagenet';
import { createModel, reluZeroFractions, type ModelName, type Network } from '@alexnet/layers';
import { PlateauLR, SGD, loadVelocityStateDict, velocityStateDict, type SGDState, type ScheduleState } from '@alexnet/optim';
import {
  device as toDevice, dispose, memory, softmax, softmaxCrossEntropy, tensor, tidy, topkCorrect, type Device, type Tensor,
} from '@alexnet/tensor';
import { checkCompatible, loadCheckpoint, saveCheckpoint, CheckpointError } from './checkpoint.js';
import { batchToTensors, chooseMean, openData, readyData, type TrainingData } from './data.js';
import { MetricsLog } from './metrics.js';
import { formatRecipe, type Recipe } from './recipe.js';
import type { EpochRecord } from './visualize.js';

export interface TrainOptions {
  /** A prepared shard folder or a raw ImageNet folder, or data already opened. */
  data: string | TrainingData;
  /** Output folder: checkpoints, metrics.jsonl, pictures. */
  out: string;
  model?: ModelName;
  /** One device, or two for the two-tower placement of 'paper' (§3.2). Default: ['cpu:0']. */
  devices?: string[];
  epochs?: number;
  batchSize?: number;
  /** Initial learning rate (§5: 0.01). */
  lr?: number;
  momentum?: number;
  weightDecay?: number;
  /** Input crop: 227 (default, Caffe's convention, conv1 unpadded), 224 (conv1 padded by 2), or a smaller side >= 67 for demos. */
  crop?: number;
  /** Side raw folders are rescaled and centre-cropped to (§2: 256); prepared shards keep theirs. */
  imageSize?: number;
  /** Bias of conv2, conv4, conv5, fc6, fc7 (§5: 1; Caffe used 0.1 to avoid collapse on small data). */
  positiveBias?: number;
  /** Standard deviation of the initial weights (§5: 0.01). */
  weightStd?: number;
  /** Seed of initialisation, dropout, shuffling and augmentation. */
  seed?: number;
  /** Save a checkpoint every N steps (and always at each epoch end). 0: epoch ends only. */
  checkpointEvery?: number;
  /** Evaluate with the 10-crop average (§4.1) instead of the centre crop. */
  tenCrop?: boolean;
  /** Reductions of the plateau schedule (§5: three). */
  maxLrReductions?: number;
  /** Epochs without improvement before a reduction. */
  patience?: number;
  /** Resume from this checkpoint. */
  resume?: string;
  /**
   * Weight decay on the biases too (default true: the paper's update rule of §5 decays every
   * weight). false exempts them, as cuda-convnet's and Caffe's AlexNet recipes do.
   */
  biasDecay?: boolean;
  /**
   * With no validation split: hold back this fraction of the training set (seeded) and evaluate on
   * it. Without it such a run schedules on the training loss, and says so.
   */
  valFraction?: number;
  /** Training images sampled for the statistics of a data set that has none (default 5000). */
  statsSamples?: number;
  /**
   * Images that may fail to load (deleted, unreadable or truncated after indexing) before training
   * stops (default 10). Each such image is trained as zeros, named in the log and metrics.jsonl.
   */
  maxBadImages?: number;
  /** Loader worker threads (default: the cores). */
  workers?: number;
  /** Live progress on stderr (default true): redrawn in place on a terminal, a line every few seconds elsewhere. */
  progress?: boolean;
  /** Also log a line every N steps (PyTorch's --print-freq). */
  printFreq?: number;
  /** Stop after this many steps in total (tests). */
  maxSteps?: number;
  /** Aborting saves a checkpoint and returns (the CLI wires Ctrl-C to it). */
  signal?: AbortSignal;
  /** Called after every step with its loss (read back one step late). */
  onStep?: (s: { epoch: number; step: number; loss: number; top1: number }) => void;
  /** Called after every epoch. */
  onEpoch?: (r: EpochRecord) => void;
  log?: (line: string) => void;
}

export interface TrainResult {
  history: EpochRecord[];
  checkpoint: string;
  steps: number;
  imagesPerSecond: number;
  stopped: 'done' | 'aborted' | 'max-steps';
  /** Set when the run looks collapsed (loss pinned at ln(classes)). */
  warning?: string;
  recipe: Recipe;
  /** Images that failed to load (distinct data-set positions of the training set). */
  badImages: number;
}

export class TrainingError extends Error {
  override name = 'TrainingError';
}

interface TrainerState {
  epoch: number;
  /** Next batch to run within `epoch`. */
  batch: number;
  step: number;
  lr: number;
  history: EpochRecord[];
  schedule: Record<string, unknown>;
  epochLossSum: number;
  epochCorrect: number;
  epochImages: number;
  /** Training images that failed to load so far (data-set positions). */
  badImages?: number[];
}

export const CHECKPOINT_FILE = 'checkpoint.safetensors';

function resolveDevices(specs: string[] | undefined): Device[] {
  const list = specs ?? ['cpu:0'];
  if (list.length < 1 || list.length > 2) throw new TrainingError(`expected one or two devices but received ${list.length} (${list.join(', ')})`);
  const devs = list.map((s) => {
    try { return toDevice(s); } catch (e) { throw new TrainingError((e as Error).message); }
  });
  if (devs.length === 2 && devs[0] === devs[1]) throw new TrainingError(`the two devices must differ, but both are ${devs[0]!.name}`);
  return devs;
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
}

export interface Evaluation {
  top1Error: number;
  top5Error: number;
  images: number;
  /** Images that could not be read (scored as the zeros they became). */
  badImages: Batch['failures'];
}

/**
 * Evaluation on a data set: top-1 and top-5 error (centre crop, or the 10-crop average of softmax
 * outputs, §4.1). A model whose outputs are NaN scores nothing: evaluation stops with a
 * NonFiniteOutputError instead of reporting an error rate.
 */
export async function evaluate(model: Network, loader: Loader, opts: EvaluateOptions = {}): Promise<Evaluation> {
  let c1 = 0, c5 = 0, n = 0;
  const dev = model.devices[0]!;
  const total = loader.dataset.length;
  const badImages: Batch['failures'] = [];
  for await (const batch of loader.epoch(0)) {
    badImages.push(...batch.failures);
    if (opts.maxBadImages !== undefined && badImages.length > opts.maxBadImages) throw tooManyBad(badImages, opts.maxBadImages, 'evaluation');
    const imgs = batch.labels.length;
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
      if (bad > 0) {
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
  return { top1Error: n ? 1 - c1 / n : NaN, top5Error: n ? 1 - c5 / n : NaN, images: n, badImages };
}

function tooManyBad(failures: readonly { sample: number; reason: string }[], max: number, what: string): TrainingError {
  return new TrainingError(`${failures.length} images failed to load during ${what}, more than --max-bad-images ${max} allows; the first: ` +
    `${failures.slice(0, 3).map((f) => f.reason).join('; ')}. Restore or remove them (and index again), or raise --max-bad-images.`);
}

function checkOption(name: string, v: number | undefined, ok: (n: number) => boolean, what: string): void {
  if (v !== undefined && (typeof v !== 'number' || !ok(v))) throw new TrainingError(`Expected ${what} for ${name} but received ${String(v)}`);
}

export async function train(opts: TrainOptions): Promise<TrainResult> {
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  checkOption('valFraction', opts.valFraction, (n) => n > 0 && n < 1, 'a fraction between 0 and 1');
  checkOption('maxBadImages', opts.maxBadImages, (n) => Number.isSafeInteger(n) && n >= 0, 'a non-negative integer');
  checkOption('statsSamples', opts.statsSamples, (n) => Number.isSafeInteger(n) && n >= 1, 'a positive integer');
  checkOption('printFreq', opts.printFreq, (n) => Number.isSafeInteger(n) && n >= 1, 'a positive integer');
  // Everything that can be checked without reading the data is checked first.
  const devices = resolveDevices(opts.devices);
  const modelName = opts.model ?? 'paper';
  if (devices.length === 2 && modelName !== 'paper') throw new TrainingError(`two devices need the two-tower 'paper' model, not '${modelName}'`);
  const out = resolve(opts.out);
  await mkdir(out, { recursive: true });
  const opened = typeof opts.data === 'string' ? await openData(opts.data, { size: opts.imageSize }) : opts.data;
  const seed = opts.seed ?? 0;
  const data = await readyData(opened, { out, seed, valFraction: opts.valFraction, statsSamples: opts.statsSamples, workers: opts.workers, log, progress: opts.progress ?? true });
  const classes = data.train.classes.length;
  const crop = opts.crop ?? 227;
  const batchSize = opts.batchSize ?? 128;
  const epochs = opts.epochs ?? 90;
  const maxBadImages = opts.maxBadImages ?? 10;
  const biasDecay = opts.biasDecay ?? true;
  const modelConfig = { name: modelName, classes, inputSize: crop, positiveBias: opts.positiveBias ?? 1, weightStd: opts.weightStd ?? 0.01 };
  const checkpointPath = join(out, CHECKPOINT_FILE);

  const model = createModel(modelName, { classes, inputSize: crop, positiveBias: modelConfig.positiveBias, weightStd: modelConfig.weightStd, devices, seed });
  const lr0 = opts.lr ?? 0.01;
  const optimizer = new SGD(model.parameters(), {
    lr: lr0, momentum: opts.momentum ?? 0.9, weightDecay: opts.weightDecay ?? 0.0005, form: 'paper',
    groups: biasDecay ? [] : [{ match: /\.bias$/, decayMult: 0 }],
  });
  const schedule = new PlateauLR({ lr: lr0, factor: 0.1, patience: opts.patience ?? 1, maxReductions: opts.maxLrReductions ?? 3, mode: 'min' });
  let state: TrainerState = { epoch: 0, batch: 0, step: 0, lr: lr0, history: [], schedule: {}, epochLossSum: 0, epochCorrect: 0, epochImages: 0, badImages: [] };

  if (opts.resume) {
    const ck = await loadCheckpoint(opts.resume, { resume: true }).catch((e) => { throw e instanceof CheckpointError ? new TrainingError(e.message) : e; });
    try {
      checkCompatible(opts.resume, ck.meta.model, modelConfig, ['name', 'classes', 'inputSize']);
      const savedDecay = (ck.meta.recipe as Recipe | undefined)?.optimizer.biasDecay;
      if (savedDecay !== undefined && savedDecay !== biasDecay) {
        throw new CheckpointError(`it was trained with weight decay ${savedDecay ? 'on' : 'off'} for the biases, and this run has it ${biasDecay ? 'on' : 'off'} (--no-bias-decay)`);
      }
      model.loadStateDict(ck.model);
      loadVelocityStateDict(optimizer, ck.optimizer);
      optimizer.loadState(ck.meta.optimizer as unknown as SGDState);
    } catch (e) {
      throw new TrainingError(`cannot resume from ${opts.resume}: ${(e as Error).message}`);
    }
    state = { badImages: [], ...(ck.meta.trainer as unknown as TrainerState) };
    schedule.loadState(state.schedule as ScheduleState);
    log(`resumed from ${opts.resume}: epoch ${state.epoch + 1}, batch ${state.batch}, step ${state.step}, lr ${state.lr}`);
  }

  const mean = chooseMean(data.train);
  const lrnSpec = model.description.layers.find((l) => l.kind === 'lrn');
  const watch = data.val ? 'validation top-1 error' : 'training loss';
  const recipe: Recipe = {
    data: { kind: opened.kind, root: opened.root, classes, trainImages: data.train.length, validation: data.validation },
    mean: { kind: mean.kind, from: mean.kind === 'image' ? data.statisticsFrom : 'ImageNet channel means' },
    lighting: data.train.statistics ? { on: true, std: 0.1, scale: 'shifts Σ αᵢλᵢpᵢ with λ on the 0..1 scale' } : { on: false, why: 'no statistics' },
    crop, flip: true,
    model: {
      name: modelName, weightStd: modelConfig.weightStd, positiveBias: modelConfig.positiveBias,
      lrn: lrnSpec && lrnSpec.kind === 'lrn' ? { convention: lrnSpec.convention, acrossTowers: lrnSpec.inputs === 'all' } : null,
    },
    optimizer: { form: optimizer.form, lr: lr0, momentum: optimizer.momentum, weightDecay: optimizer.weightDecay, biasDecay },
    schedule: { kind: 'plateau', watch, factor: schedule.factor, patience: schedule.patience, maxReductions: schedule.maxReductions },
    batch: batchSize, epochs, devices: devices.map((d) => d.name), placement: devices.length === 2 ? 'two towers' : 'one device', seed,
  };
  for (const line of formatRecipe(recipe)) log(line);
  if (!data.val) {
    log(`WARNING: ${opened.root} has no validation split, so the §5 schedule (lr / 10 when the validation error stops improving) watches the training loss instead; ` +
      'hold back part of the training set with --val-fraction 0.02 to schedule on validation error.');
  }

  const dataMeta = { classes: data.train.classes, mean: mean.kind, crop, size: data.train.size };
  const trainLoader = createLoader(data.train, { batchSize, seed, mode: 'train', crop, workers: opts.workers, mean: mean.mean, dropLast: data.train.length >= batchSize });
  const valLoader = data.val ? createLoader(data.val, {
    batchSize, mode: opts.tenCrop ? 'tenCrop' : 'center', crop, workers: opts.workers, mean: mean.mean, statistics: data.train.statistics ?? undefined,
  }) : null;
  // A resumed run cuts metrics.jsonl back to its checkpoint: the log then reads as an uninterrupted run's.
  const { log: metrics, hasRecipe } = await MetricsLog.open(join(out, 'metrics.jsonl'), opts.resume ? { resumeAt: { step: state.step, epoch: state.epoch } } : {});
  if (!hasRecipe) metrics.write({ type: 'recipe', ...recipe, time: new Date().toISOString() });
  const showProgress = opts.progress ?? true;
  let bar: Progress | null = null;
  /** Log lines go between progress redraws. */
  const say = (line: string) => { bar?.clear(); log(line); };

  // A crash during a checkpoint write leaves a temporary file beside it, never a half checkpoint.
  for (const f of await readdir(out)) if (f.startsWith(`${CHECKPOINT_FILE}.tmp-`)) await rm(join(out, f), { force: true });

  const save = async () => {
    await metrics.flush(); // everything the checkpoint has seen is in the log before it commits
    state.schedule = schedule.state();
    state.lr = optimizer.lr;
    await saveCheckpoint(checkpointPath, {
      model: model.stateDict(),
      optimizer: velocityStateDict(optimizer),
      data: { mean: mean.host },
      meta: {
        model: modelConfig, data: dataMeta, recipe: recipe as unknown as Record<string, unknown>,
        trainer: state as unknown as Record<string, unknown>, optimizer: optimizer.state() as unknown as Record<string, unknown>,
      },
    });
  };
  const lastGood = () => (existsSync(checkpointPath) ? `The last good checkpoint is ${checkpointPath}; resume from it with a lower learning rate (--lr).` : 'No checkpoint was written yet; try a lower learning rate (--lr).');
  const badSeen = new Set(state.badImages ?? []);

  let stopped: TrainResult['stopped'] = 'done';
  /** A few training images (copied) for the dead-ReLU check. */
  let probe: { images: Float32Array; shape: [number, number, number, number] } | null = null;
  let warning: string | undefined;
  let imagesTimed = 0, secondsTimed = 0;
  const inputDevice = devices[0]!;
  try {
    while (state.epoch < epochs) {
      const epoch = state.epoch;
      bar = new Progress({ label: `epoch ${epoch + 1}`, total: trainLoader.batchesPerEpoch, unit: 'img', unitsPerStep: batchSize, initial: state.batch, enabled: showProgress });
      const t0 = performance.now();
      let pending: { loss: Tensor; correct: Tensor; n: number; step: number; imagesPerSecond: number } | null = null;
      let lastLoss = NaN;
      const drain = async () => {
        if (!pending) return;
        const p = pending;
        pending = null;
        const [lossArr, corrArr] = await Promise.all([p.loss.data(), p.correct.data()]);
        p.loss.dispose(); p.correct.dispose();
        const loss = lossArr[0]!;
        if (!Number.isFinite(loss)) throw new TrainingError(`the loss became ${loss} at step ${p.step} (epoch ${epoch + 1}); training stopped. ${lastGood()}`);
        lastLoss = loss;
        state.epochLossSum += loss * p.n;
        state.epochCorrect += corrArr[0]!;
        state.epochImages += p.n;
        const top1 = corrArr[0]! / p.n;
        metrics.write({ type: 'step', epoch: epoch + 1, step: p.step, loss, top1, lr: optimizer.lr, imagesPerSecond: p.imagesPerSecond, time: new Date().toISOString() });
        opts.onStep?.({ epoch: epoch + 1, step: p.step, loss, top1 });
      };
      let imagesThisRun = 0;
      for await (const batch of trainLoader.epoch(epoch, { from: state.batch })) {
        if (!probe) {
          const m = Math.min(8, batch.labels.length), per = batch.images.length / batch.shape[0];
          probe = { images: batch.images.slice(0, m * per), shape: [m, batch.shape[1], batch.shape[2], batch.shape[3]] };
        }
        const n = batch.labels.length;
        const step = state.step;
        if (batch.failures.length > 0) {
          const fresh = batch.failures.filter((f) => !badSeen.has(f.sample));
          for (const f of fresh) badSeen.add(f.sample);
          state.badImages = [...badSeen];
          metrics.write({ type: 'bad-images', epoch: epoch + 1, step, images: batch.failures, total: badSeen.size });
          say(`${batch.failures.length} image(s) of batch ${batch.index + 1} failed to load and are trained as zeros (${badSeen.size} of --max-bad-images ${maxBadImages} so far): ` +
            batch.failures.slice(0, 3).map((f) => f.reason).join('; '));
          if (badSeen.size > maxBadImages) throw tooManyBad(batch.failures, maxBadImages, 'training');
        }
        const result = tidy(() => {
          const { images, labels } = batchToTensors(batch, inputDevice);
          const logits = model.forward(images, { training: true, step });
          const { loss, dlogits } = softmaxCrossEntropy(logits, labels);
          const correct = topkCorrect(logits, labels, 1);
          model.backward(dlogits!);
          return { loss, correct };
        });
        optimizer.step();
        model.zeroGrad();
        imagesThisRun += n;
        const secs = (performance.now() - t0) / 1000;
        await drain();
        pending = { ...result, n, step, imagesPerSecond: imagesThisRun / secs };
        state.step++;
        state.batch = batch.index + 1;
        const top1 = state.epochImages ? state.epochCorrect / state.epochImages : 0;
        bar.update(batch.index + 1, { loss: lastLoss, 'top-1': `${(100 * top1).toFixed(1)}%`, lr: optimizer.lr });
        if (opts.printFreq && state.step % opts.printFreq === 0) {
          say(`epoch ${epoch + 1} step ${batch.index + 1}/${trainLoader.batchesPerEpoch}: loss ${Number.isFinite(lastLoss) ? lastLoss.toFixed(4) : '-'}, ` +
            `top-1 ${(100 * top1).toFixed(1)}%, lr ${optimizer.lr}, ${(imagesThisRun / secs).toFixed(1)} img/s`);
        }
        if (opts.checkpointEvery && state.step % opts.checkpointEvery === 0) { await drain(); await save(); }
        if (opts.signal?.aborted) { stopped = 'aborted'; break; }
        if (opts.maxSteps !== undefined && state.step >= opts.maxSteps) { stopped = 'max-steps'; break; }
      }
      await drain();
      bar.finish();
      const seconds = (performance.now() - t0) / 1000;
      imagesTimed += imagesThisRun; secondsTimed += seconds;
      if (stopped === 'aborted') { await save(); log(`interrupted: checkpoint saved to ${checkpointPath}`); break; }
      if (stopped === 'max-steps' && state.batch < trainLoader.batchesPerEpoch) { await save(); break; }

      const trainLoss = state.epochLossSum / Math.max(1, state.epochImages);
      const record: EpochRecord = { epoch: epoch + 1, trainLoss, trainTop1Error: 1 - state.epochCorrect / Math.max(1, state.epochImages), lr: optimizer.lr };
      if (valLoader) {
        let ev: Evaluation;
        try {
          const evBar = new Progress({ label: `validation ${epoch + 1}`, total: valLoader.dataset.length, unit: 'img', enabled: showProgress });
          ev = await evaluate(model, valLoader, { maxBadImages, onProgress: (done) => evBar.update(done) }).finally(() => evBar.finish());
        } catch (e) {
          if (e instanceof NonFiniteOutputError) throw new TrainingError(`validation after epoch ${epoch + 1}: ${e.message}; training stopped. ${lastGood()}`);
          throw e;
        }
        if (ev.badImages.length > 0) log(`validation: ${ev.badImages.length} image(s) failed to load and were scored as zeros: ${ev.badImages.slice(0, 3).map((f) => f.reason).join('; ')}`);
        record.valTop1Error = ev.top1Error;
        record.valTop5Error = ev.top5Error;
      }
      // §5: divide the lr by 10 when the validation error stops improving (the training loss when there is no validation).
      const newLr = schedule.epochEnd(record.valTop1Error ?? trainLoss);
      if (newLr !== optimizer.lr) { log(`${watch} stopped improving: learning rate ${optimizer.lr} -> ${newLr} (§5)`); optimizer.lr = newLr; }
      state.history.push(record);
      state.epochLossSum = 0; state.epochCorrect = 0; state.epochImages = 0;
      const ips = imagesThisRun / seconds;
      log(`epoch ${record.epoch}/${epochs}: loss ${trainLoss.toFixed(4)}, train top-1 error ${(100 * record.trainTop1Error!).toFixed(1)}%` +
        (record.valTop1Error !== undefined ? `, val top-1 error ${(100 * record.valTop1Error).toFixed(1)}%, top-5 ${(100 * record.valTop5Error!).toFixed(1)}%` : '') +
        `, ${ips.toFixed(1)} img/s, lr ${record.lr}`);
      metrics.write({ type: 'epoch', ...record, imagesPerSecond: ips, seconds, step: state.step, time: new Date().toISOString(), memory: memory().bytes, rss: process.memoryUsage().rss });
      opts.onEpoch?.(record);
      // §5 on small data: the paper's positive biases can collapse the net to a constant prediction
      // (every fc7 ReLU dead, the loss pinned at ln(classes)). Once two epochs in a row sit there, look
      // for dead ReLU layers on a few training images; warn when one is dead, or after three such epochs.
      const chance = Math.log(classes);
      const pinned = (h: EpochRecord) => Math.abs(h.trainLoss - chance) < 0.01 * chance && h.trainTop1Error! > 1 - 1.5 / classes;
      const recent = state.history.slice(-3);
      if (!warning && probe && recent.length >= 2 && recent.slice(-2).every(pinned)) {
        const fractions = tidy(() => reluZeroFractions(model, tensor(probe!.images, probe!.shape, { device: inputDevice })));
        const dead = Object.entries(fractions).filter(([, f]) => f >= 0.999).map(([k]) => k);
        if (dead.length > 0 || (recent.length === 3 && recent.every(pinned))) {
          warning = `training looks collapsed: the loss sits at ln(${classes}) = ${chance.toFixed(3)} and accuracy at chance` +
            (dead.length > 0 ? `, and every unit of ${dead.join(', ')} is zero (dead ReLUs)` : '') +
            ', the sign of an early loss spike (§5\'s positive biases on small data). Try --positive-bias 0.1 (Caffe\'s choice) or a lower --lr.';
          log(`WARNING: ${warning}`);
        }
      }
      state.epoch++;
      state.batch = 0;
      await save();
      if (stopped === 'max-steps') break;
    }
  } finally {
    await trainLoader.close();
    await valLoader?.close();
    await metrics.close().catch(() => undefined);
  }
  await writeFile(join(out, 'history.json'), JSON.stringify(state.history, null, 2));
  model.dispose();
  optimizer.dispose();
  return {
    history: state.history, checkpoint: checkpointPath, steps: state.step, imagesPerSecond: secondsTimed ? imagesTimed / secondsTimed : 0, stopped, warning,
    recipe, badImages: badSeen.size,
  };
}
