/**
 * The trainer (§5): epochs of batches from @alexnet/data-imagenet, forward, backward, the paper's SGD,
 * evaluation on the validation split after each epoch (top-1 / top-5 error, centre crop or 10-crop),
 * the paper's schedule (lr / 10 when validation error stops improving, three times), checkpoints
 * (atomic, every N steps and at each epoch end) that resume to the same loss sequence, Ctrl-C handling,
 * NaN detection and a collapse detector (PAPER.md §5 notes).
 *
 * Pipelining: the loader prepares the next batches on worker threads while the devices compute; the
 * loss of step s is read back only after step s + 1 has been enqueued, so JavaScript never makes the
 * devices wait.
 */
import { appendFile, mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createLoader, type Loader } from '@alexnet/data-imagenet';
import { createModel, reluZeroFractions, type ModelName, type Network } from '@alexnet/layers';
import { PlateauLR, SGD, loadVelocityStateDict, velocityStateDict, type SGDState, type ScheduleState } from '@alexnet/optim';
import {
  device as toDevice, dispose, memory, softmax, softmaxCrossEntropy, tensor, tidy, topkCorrect, type Device, type Tensor,
} from '@alexnet/tensor';
import { checkCompatible, loadCheckpoint, saveCheckpoint, CheckpointError } from './checkpoint.js';
import { batchToTensors, chooseMean, openData, type TrainingData } from './data.js';
import { ProgressBar } from './progress.js';
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
  /** Loader worker threads (default: the cores). */
  workers?: number;
  /** Live progress on stderr (default true). */
  progress?: boolean;
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

/** Evaluation on a data set: top-1 and top-5 error (centre crop, or the 10-crop average of softmax outputs). */
export async function evaluate(model: Network, loader: Loader): Promise<{ top1Error: number; top5Error: number; images: number }> {
  let c1 = 0, c5 = 0, n = 0;
  const dev = model.devices[0]!;
  for await (const batch of loader.epoch(0)) {
    const counts = tidy(() => {
      const { images, labels } = batchToTensors(batch, dev);
      const logits = model.forward(images, { training: false });
      if (batch.cropsPerImage === 1) return [topkCorrect(logits, labels, 1), topkCorrect(logits, labels, Math.min(5, logits.shape[1]!))];
      // §4.1: average the softmax of the ten patches of each image.
      const probs = softmax(logits).dataSync();
      const classes = logits.shape[1]!, k = batch.cropsPerImage, imgs = batch.labels.length;
      const avg = new Float32Array(imgs * classes);
      for (let i = 0; i < imgs; i++) for (let j = 0; j < k; j++) for (let c = 0; c < classes; c++) avg[i * classes + c]! += probs[(i * k + j) * classes + c]! / k;
      const t = tensor(avg, [imgs, classes], { device: dev });
      return [topkCorrect(t, labels, 1), topkCorrect(t, labels, Math.min(5, classes))];
    });
    c1 += (await counts[0]!.data())[0]!;
    c5 += (await counts[1]!.data())[0]!;
    n += batch.labels.length;
    dispose(counts);
  }
  return { top1Error: n ? 1 - c1 / n : NaN, top5Error: n ? 1 - c5 / n : NaN, images: n };
}

export async function train(opts: TrainOptions): Promise<TrainResult> {
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const out = resolve(opts.out);
  await mkdir(out, { recursive: true });
  const data = typeof opts.data === 'string' ? await openData(opts.data, { size: opts.imageSize }) : opts.data;
  const devices = resolveDevices(opts.devices);
  const modelName = opts.model ?? 'paper';
  if (devices.length === 2 && modelName !== 'paper') throw new TrainingError(`two devices need the two-tower 'paper' model, not '${modelName}'`);
  const classes = data.train.classes.length;
  const crop = opts.crop ?? 227;
  const seed = opts.seed ?? 0;
  const batchSize = opts.batchSize ?? 128;
  const epochs = opts.epochs ?? 90;
  const modelConfig = { name: modelName, classes, inputSize: crop, positiveBias: opts.positiveBias ?? 1, weightStd: opts.weightStd ?? 0.01 };
  const checkpointPath = join(out, CHECKPOINT_FILE);

  const model = createModel(modelName, { classes, inputSize: crop, positiveBias: modelConfig.positiveBias, weightStd: modelConfig.weightStd, devices, seed });
  const lr0 = opts.lr ?? 0.01;
  const optimizer = new SGD(model.parameters(), { lr: lr0, momentum: opts.momentum ?? 0.9, weightDecay: opts.weightDecay ?? 0.0005, form: 'paper' });
  const schedule = new PlateauLR({ lr: lr0, factor: 0.1, patience: opts.patience ?? 1, maxReductions: opts.maxLrReductions ?? 3, mode: 'min' });
  let state: TrainerState = { epoch: 0, batch: 0, step: 0, lr: opts.lr ?? 0.01, history: [], schedule: {}, epochLossSum: 0, epochCorrect: 0, epochImages: 0 };

  if (opts.resume) {
    const ck = await loadCheckpoint(opts.resume).catch((e) => { throw e instanceof CheckpointError ? new TrainingError(e.message) : e; });
    try {
      checkCompatible(opts.resume, ck.meta.model, modelConfig, ['name', 'classes', 'inputSize']);
      model.loadStateDict(ck.model);
      loadVelocityStateDict(optimizer, ck.optimizer);
      optimizer.loadState(ck.meta.optimizer as unknown as SGDState);
    } catch (e) {
      throw new TrainingError(`cannot resume from ${opts.resume}: ${(e as Error).message}`);
    }
    state = ck.meta.trainer as unknown as TrainerState;
    schedule.loadState(state.schedule as ScheduleState);
    log(`resumed from ${opts.resume}: epoch ${state.epoch + 1}, batch ${state.batch}, step ${state.step}, lr ${state.lr}`);
  }

  const mean = chooseMean(data.train);
  const dataMeta = { classes: data.train.classes, mean: mean.kind, crop, size: data.train.size };
  const trainLoader = createLoader(data.train, { batchSize, seed, mode: 'train', crop, workers: opts.workers, mean: mean.mean, dropLast: data.train.length >= batchSize });
  const valLoader = data.val ? createLoader(data.val, {
    batchSize, mode: opts.tenCrop ? 'tenCrop' : 'center', crop, workers: opts.workers, mean: mean.mean, statistics: data.train.statistics ?? undefined,
  }) : null;
  const metricsPath = join(out, 'metrics.jsonl');
  const bar = new ProgressBar(process.stderr, opts.progress ?? true);

  // Per-step lines are appended with each checkpoint and at epoch ends (type 'step'), epoch summaries
  // after each epoch (type 'epoch'): metrics.jsonl never holds steps a resumed run will repeat.
  let stepLines: string[] = [];
  const flushSteps = async () => {
    if (stepLines.length === 0) return;
    const lines = stepLines;
    stepLines = [];
    await appendFile(metricsPath, `${lines.join('\n')}\n`);
  };
  // A crash during a checkpoint write leaves a temporary file beside it, never a half checkpoint.
  for (const f of await readdir(out)) if (f.startsWith(`${CHECKPOINT_FILE}.tmp-`)) await rm(join(out, f), { force: true });

  const save = async () => {
    await flushSteps();
    state.schedule = schedule.state();
    state.lr = optimizer.lr;
    await saveCheckpoint(checkpointPath, {
      model: model.stateDict(),
      optimizer: velocityStateDict(optimizer),
      data: { mean: mean.host },
      meta: { model: modelConfig, data: dataMeta, trainer: state as unknown as Record<string, unknown>, optimizer: optimizer.state() as unknown as Record<string, unknown> },
    });
  };

  let stopped: TrainResult['stopped'] = 'done';
  /** A few training images (copied) for the dead-ReLU check. */
  let probe: { images: Float32Array; shape: [number, number, number, number] } | null = null;
  let warning: string | undefined;
  let imagesTimed = 0, secondsTimed = 0;
  const inputDevice = devices[0]!;
  try {
    while (state.epoch < epochs) {
      const epoch = state.epoch;
      bar.start();
      const t0 = performance.now();
      let pending: { loss: Tensor; correct: Tensor; n: number; step: number } | null = null;
      let lastLoss = NaN;
      const drain = async () => {
        if (!pending) return;
        const p = pending;
        pending = null;
        const [lossArr, corrArr] = await Promise.all([p.loss.data(), p.correct.data()]);
        p.loss.dispose(); p.correct.dispose();
        const loss = lossArr[0]!;
        if (!Number.isFinite(loss)) {
          throw new TrainingError(`the loss became ${loss} at step ${p.step} (epoch ${epoch + 1}); training stopped. ` +
            (existsSync(checkpointPath) ? `The last good checkpoint is ${checkpointPath}; resume from it with a lower learning rate (--lr).` : 'No checkpoint was written yet; try a lower learning rate (--lr).'));
        }
        lastLoss = loss;
        state.epochLossSum += loss * p.n;
        state.epochCorrect += corrArr[0]!;
        state.epochImages += p.n;
        stepLines.push(JSON.stringify({ type: 'step', epoch: epoch + 1, step: p.step, loss, top1: corrArr[0]! / p.n }));
        opts.onStep?.({ epoch: epoch + 1, step: p.step, loss, top1: corrArr[0]! / p.n });
      };
      let imagesThisRun = 0;
      for await (const batch of trainLoader.epoch(epoch, { from: state.batch })) {
        if (!probe) {
          const m = Math.min(8, batch.labels.length), per = batch.images.length / batch.shape[0];
          probe = { images: batch.images.slice(0, m * per), shape: [m, batch.shape[1], batch.shape[2], batch.shape[3]] };
        }
        const n = batch.labels.length;
        const step = state.step;
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
        await drain();
        pending = { ...result, n, step };
        state.step++;
        state.batch = batch.index + 1;
        imagesThisRun += n;
        const secs = (performance.now() - t0) / 1000;
        bar.update({ epoch: epoch + 1, step: batch.index + 1, steps: trainLoader.batchesPerEpoch, loss: lastLoss,
          top1: state.epochImages ? state.epochCorrect / state.epochImages : 0, imagesPerSecond: imagesThisRun / secs, lr: optimizer.lr });
        if (opts.checkpointEvery && state.step % opts.checkpointEvery === 0) { await drain(); await save(); }
        if (opts.signal?.aborted) { stopped = 'aborted'; break; }
        if (opts.maxSteps !== undefined && state.step >= opts.maxSteps) { stopped = 'max-steps'; break; }
      }
      await drain();
      bar.done();
      const seconds = (performance.now() - t0) / 1000;
      imagesTimed += imagesThisRun; secondsTimed += seconds;
      if (stopped === 'aborted') { await save(); log(`interrupted: checkpoint saved to ${checkpointPath}`); break; }
      if (stopped === 'max-steps' && state.batch < trainLoader.batchesPerEpoch) { await save(); break; }

      const trainLoss = state.epochLossSum / Math.max(1, state.epochImages);
      const record: EpochRecord = { epoch: epoch + 1, trainLoss, trainTop1Error: 1 - state.epochCorrect / Math.max(1, state.epochImages), lr: optimizer.lr };
      if (valLoader) {
        const ev = await evaluate(model, valLoader);
        record.valTop1Error = ev.top1Error;
        record.valTop5Error = ev.top5Error;
        const newLr = schedule.epochEnd(ev.top1Error);
        if (newLr !== optimizer.lr) { log(`validation error stopped improving: learning rate ${optimizer.lr} -> ${newLr} (§5)`); optimizer.lr = newLr; }
      } else {
        optimizer.lr = schedule.epochEnd();
      }
      state.history.push(record);
      state.epochLossSum = 0; state.epochCorrect = 0; state.epochImages = 0;
      const ips = imagesThisRun / seconds;
      log(`epoch ${record.epoch}/${epochs}: loss ${trainLoss.toFixed(4)}, train top-1 error ${(100 * record.trainTop1Error!).toFixed(1)}%` +
        (record.valTop1Error !== undefined ? `, val top-1 error ${(100 * record.valTop1Error).toFixed(1)}%, top-5 ${(100 * record.valTop5Error!).toFixed(1)}%` : '') +
        `, ${ips.toFixed(1)} img/s, lr ${record.lr}`);
      await flushSteps();
      await appendFile(metricsPath, `${JSON.stringify({ type: 'epoch', ...record, imagesPerSecond: ips, seconds, step: state.step, time: new Date().toISOString(), memory: memory().bytes, rss: process.memoryUsage().rss })}\n`);
      opts.onEpoch?.(record);
      // PAPER.md §5 notes: paper init on small data can collapse to a constant prediction (every fc7
      // ReLU dead, the loss pinned at ln(classes)). Once two epochs in a row sit there, look for dead
      // ReLU layers on a few training images; warn when one is dead, or after three such epochs.
      const chance = Math.log(classes);
      const pinned = (h: EpochRecord) => Math.abs(h.trainLoss - chance) < 0.01 * chance && h.trainTop1Error! > 1 - 1.5 / classes;
      const recent = state.history.slice(-3);
      if (!warning && probe && recent.length >= 2 && recent.slice(-2).every(pinned)) {
        const fractions = tidy(() => reluZeroFractions(model, tensor(probe!.images, probe!.shape, { device: inputDevice })));
        const dead = Object.entries(fractions).filter(([, f]) => f >= 0.999).map(([k]) => k);
        if (dead.length > 0 || (recent.length === 3 && recent.every(pinned))) {
          warning = `training looks collapsed: the loss sits at ln(${classes}) = ${chance.toFixed(3)} and accuracy at chance` +
            (dead.length > 0 ? `, and every unit of ${dead.join(', ')} is zero (dead ReLUs)` : '') +
            ', the sign of an early loss spike (PAPER.md §5). Try --positive-bias 0.1 (Caffe\'s choice) or a lower --lr.';
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
  }
  await writeFile(join(out, 'history.json'), JSON.stringify(state.history, null, 2));
  model.dispose();
  optimizer.dispose();
  return { history: state.history, checkpoint: checkpointPath, steps: state.step, imagesPerSecond: secondsTimed ? imagesTimed / secondsTimed : 0, stopped, warning };
}
