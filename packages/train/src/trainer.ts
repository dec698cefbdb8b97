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
import { availableParallelism } from 'node:os';
import { createLoader, Progress, type Batch, type Loader } from '@alexnet/data-imagenet';
import { createModel, formatPlacement, PAPER_LEARNING, type ModelName, type Network } from '@alexnet/layers';
import { PlateauLR, SGD, loadVelocityStateDict, velocityStateDict, type SGDState, type ScheduleState } from '@alexnet/optim';
import { device as toDevice, dispose, memory, tidy, type Device, type HostTensor, type Tensor } from '@alexnet/tensor';
import { checkCompatible, loadCheckpoint, saveCheckpoint, CheckpointError, newTrainerState, type CheckpointContents, type CheckpointMeta, type TrainerState } from './checkpoint.js';
import { collapseWarning, type Probe } from './collapse.js';
import { batchToTensors, chooseMean, normalizeBatch, openData, readyData, type TrainingData } from './data.js';
import { BadImagesError, evaluateWithProgress, NonFiniteOutputError, type Evaluation } from './evaluate.js';
import { MetricsLog } from './metrics.js';
import { applyPrecision, type Precision } from './precision.js';
import { formatRecipe, type Recipe } from './recipe.js';
import { checkSameSettings, joinLaunchedGroup, parallelStep, runSettings, type Collective } from './parallel.js';
import { trainStep, type StepOutput } from './step.js';
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
   * Start from these weights (a checkpoint: ours, or one `alexnet import` wrote) on this data set:
   * the model, its input size and its preprocessing come from it unless given; when the classes
   * differ, the last layer is initialised afresh (§5), and the run says so. Optimizer and schedule start anew.
   */
  weights?: string;
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
  /** The ablations of the paper's claims: no LRN (§3.3), another pooling (§3.4: 2/2 against 3/2), no dropout (§4.2), no PCA lighting (§4.1). */
  lrn?: boolean;
  pool?: { size: number; stride: number };
  dropout?: boolean;
  lighting?: boolean;
  /** §3.1: the neurons' nonlinearity (ReLU, the paper's; tanh, what it compares against). */
  activation?: 'relu' | 'tanh';
  /**
   * The GEMMs' arithmetic on the CPU engine (precision.ts): 'fp32' (default, or ALEXNET_CPU_PRECISION),
   * or 'bf16' inputs with fp32 accumulation and fp32 master weights; refused at the start, with the
   * reason, on a CPU without AVX512_BF16 or a non-CPU device.
   */
  precision?: Precision;
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
  /**
   * Data-parallel training: the process group (default: the one mpirun started this process in, if
   * any; null: this process alone). Rank 0 alone logs, writes and checkpoints.
   */
  group?: Collective | null;
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
  /** This process's rank (0 when alone); only rank 0 wrote. */
  rank: number;
}

export class TrainingError extends Error {
  override name = 'TrainingError';
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


/** Everything a run is made of once its options are settled. */
interface Run {
  opts: TrainOptions;
  out: string;
  model: Network;
  optimizer: SGD;
  schedule: PlateauLR;
  trainLoader: Loader;
  valLoader: Loader | null;
  metrics: MetricsLog;
  recipe: Recipe;
  state: TrainerState;
  classes: number;
  inputDevice: Device;
  checkpointPath: string;
  maxBadImages: number;
  /** Distinct training-set positions that failed to load, with why (the reason is known for this session's). */
  badSeen: Map<number, string>;
  /** The model's data settings and mean, written with every checkpoint. */
  dataMeta: CheckpointMeta['data'];
  meanHost: HostTensor;
  /** Another recipe's normalization applied to each batch (weights imported with their preprocessing). */
  transform: ((b: Batch) => void) | undefined;
  /** The data-parallel group (null: this process alone), and whether this process writes (rank 0). */
  group: Collective | null;
  writes: boolean;
  modelConfig: Record<string, unknown>;
  log: (line: string) => void;
  probe: Probe | null;
}

/**
 * With several processes on a machine, each takes its own GPUs: local rank k of a run asking for
 * cuda:0 (or cuda:0,cuda:1) gets cuda:k (or cuda:2k,cuda:2k+1). CPU devices stay as they are.
 */
function placeDevices(specs: string[] | undefined, group: Collective | null): string[] | undefined {
  if (!group || group.localSize <= 1 || !specs) return specs;
  return specs.map((s) => {
    const m = /^cuda:(\d+)$/.exec(s.trim());
    return m ? `cuda:${group.localRank * specs.length + Number(m[1])}` : s;
  });
}

/** Processes sharing a machine share its cores: each CPU device gets its share. */
function shareCores(devices: Device[], group: Collective): void {
  const per = Math.max(1, Math.floor(availableParallelism() / group.localSize / devices.length));
  for (const d of devices) if (d.backend.name === 'cpu') d.setThreads(per);
}

function checkOption(name: string, v: number | undefined, ok: (n: number) => boolean, what: string): void {
  if (v !== undefined && (typeof v !== 'number' || !ok(v))) throw new TrainingError(`Expected ${what} for ${name} but received ${String(v)}`);
}

const lastGood = (r: Run) => (existsSync(r.checkpointPath)
  ? `The last good checkpoint is ${r.checkpointPath}; resume from it with a lower learning rate (--lr).`
  : 'No checkpoint was written yet; try a lower learning rate (--lr).');

/** Writes the checkpoint (atomically), after everything it has seen is in metrics.jsonl. */
async function save(r: Run): Promise<void> {
  if (!r.writes) return; // rank 0 writes for the group: every rank holds the same weights
  await r.metrics.flush();
  r.state.schedule = r.schedule.state();
  r.state.lr = r.optimizer.lr;
  await saveCheckpoint(r.checkpointPath, {
    model: r.model.stateDict(),
    optimizer: velocityStateDict(r.optimizer),
    data: { mean: r.meanHost },
    meta: {
      model: r.modelConfig, data: r.dataMeta, recipe: r.recipe as unknown as Record<string, unknown>,
      trainer: r.state as unknown as Record<string, unknown>, optimizer: r.optimizer.state() as unknown as Record<string, unknown>,
    },
  });
}

/**
 * One epoch's steps from `state.batch` on: returns how the loop ended and the images/s. The loss of
 * step s is read back as soon as step s is enqueued (the read sits between steps s and s + 1 in the
 * device's queue) and awaited after step s + 1 is enqueued, so while a step runs, JavaScript already
 * has the next one queued behind it: the devices never wait for JavaScript (the loader's next batch,
 * its upload, the metrics line).
 */
async function runEpoch(r: Run): Promise<{ stopped: TrainResult['stopped']; images: number; seconds: number }> {
  const { opts, state, optimizer, trainLoader, metrics } = r;
  const epoch = state.epoch;
  const bar = new Progress({ label: `epoch ${epoch + 1}`, total: trainLoader.batchesPerEpoch, unit: 'img', unitsPerStep: trainLoader.batchSize, initial: state.batch, enabled: r.writes && (opts.progress ?? true) });
  const say = (line: string) => { bar.clear(); r.log(line); };
  const t0 = performance.now();
  let pending: (StepOutput & { n: number; step: number; imagesPerSecond: number; reads: Promise<[Float32Array, Int32Array]> }) | null = null;
  let lastLoss = NaN, images = 0;
  let stopped: TrainResult['stopped'] = 'done', stopAgreed = false;
  const drain = async () => {
    if (!pending) return;
    const p = pending;
    pending = null;
    const [lossArr, corrArr] = await p.reads;
    p.loss.dispose(); p.correct.dispose();
    const loss = lossArr[0]!;
    if (!Number.isFinite(loss)) throw new TrainingError(`the loss became ${loss} at step ${p.step} (epoch ${epoch + 1}); training stopped. ${lastGood(r)}`);
    lastLoss = loss;
    state.epochLossSum += loss * p.n;
    state.epochCorrect += corrArr[0]!;
    state.epochImages += p.n;
    const top1 = corrArr[0]! / p.n;
    metrics.write({ type: 'step', epoch: epoch + 1, step: p.step, loss, top1, lr: optimizer.lr, imagesPerSecond: p.imagesPerSecond, time: new Date().toISOString() });
    opts.onStep?.({ epoch: epoch + 1, step: p.step, loss, top1 });
  };
  try {
    for await (const batch of trainLoader.epoch(epoch, { from: state.batch })) {
      if (!r.probe) {
        const m = Math.min(8, batch.labels.length), per = batch.images.length / batch.shape[0];
        r.probe = { images: batch.images.slice(0, m * per), shape: [m, batch.shape[1], batch.shape[2], batch.shape[3]] };
      }
      const step = state.step;
      let n = batch.labels.length;
      if (batch.failures.length > 0) noteBadImages(r, batch, say);
      r.transform?.(batch);
      let out: StepOutput;
      if (r.group) {
        // Data-parallel: this rank's part of the global batch; the result is the global batch's.
        const { images: x, labels } = batchToTensors(batch, r.inputDevice);
        try {
          const p = await parallelStep(r.group, r.model, optimizer, x, labels, step, { offset: batch.offset, total: batch.total }, !!opts.signal?.aborted);
          out = p; n = p.n; stopAgreed = p.stop;
        } finally {
          x.dispose(); labels.dispose();
        }
      } else {
        out = tidy(() => {
          const { images: x, labels } = batchToTensors(batch, r.inputDevice);
          return trainStep(r.model, optimizer, x, labels, step);
        });
      }
      images += n;
      const secs = (performance.now() - t0) / 1000;
      await drain();
      // The reads are queued now, right behind this step (awaited once the next step is queued).
      const reads = Promise.all([out.loss.data(), out.correct.data()]) as Promise<[Float32Array, Int32Array]>;
      reads.catch(() => undefined); // awaited by drain; a run that ends early does not leave it unhandled
      pending = { ...out, n, step, imagesPerSecond: images / secs, reads };
      state.step++;
      state.batch = batch.index + 1;
      const top1 = state.epochImages ? state.epochCorrect / state.epochImages : 0;
      bar.update(batch.index + 1, { loss: lastLoss, 'top-1': `${(100 * top1).toFixed(1)}%`, lr: optimizer.lr });
      if (opts.printFreq && state.step % opts.printFreq === 0) {
        say(`epoch ${epoch + 1} step ${batch.index + 1}/${trainLoader.batchesPerEpoch}: loss ${Number.isFinite(lastLoss) ? lastLoss.toFixed(4) : '-'}, ` +
          `top-1 ${(100 * top1).toFixed(1)}%, lr ${optimizer.lr}, ${(images / secs).toFixed(1)} img/s`);
      }
      if (opts.checkpointEvery && state.step % opts.checkpointEvery === 0) { await drain(); await save(r); }
      if (r.group ? stopAgreed : opts.signal?.aborted) { stopped = 'aborted'; break; }
      if (opts.maxSteps !== undefined && state.step >= opts.maxSteps) { stopped = 'max-steps'; break; }
    }
    await drain();
  } finally {
    if (pending) dispose([(pending as StepOutput).loss, (pending as StepOutput).correct]);
    bar.finish();
  }
  return { stopped, images, seconds: (performance.now() - t0) / 1000 };
}

/** Names the images of a batch that failed to load; stops the run past --max-bad-images. */
function noteBadImages(r: Run, batch: Batch, say: (line: string) => void): void {
  for (const f of batch.failures) r.badSeen.set(f.sample, f.reason);
  r.state.badImages = [...r.badSeen.keys()];
  r.metrics.write({ type: 'bad-images', epoch: r.state.epoch + 1, step: r.state.step, images: batch.failures, total: r.badSeen.size });
  say(`${batch.failures.length} image(s) of batch ${batch.index + 1} failed to load and are trained as zeros (${r.badSeen.size} of --max-bad-images ${r.maxBadImages} so far): ` +
    batch.failures.slice(0, 3).map((f) => f.reason).join('; '));
  if (r.badSeen.size > r.maxBadImages) {
    throw new TrainingError(new BadImagesError([...r.badSeen].map(([sample, reason]) => ({ sample, reason })), r.maxBadImages, 'training').message);
  }
}

/**
 * Each rank evaluated its part of the validation set: the counts summed over the group, and the
 * same decision everywhere when some rank saw NaN outputs or too many failed images.
 */
async function sumEvaluation(group: Collective, ev: Evaluation): Promise<Evaluation> {
  const s = await group.allReduce(Float64Array.of(ev.top1Correct, ev.top5Correct, ev.images, ev.nonFinite, ev.badImages.length), 'sum');
  const [c1, c5, n, nonFinite] = [s[0]!, s[1]!, s[2]!, s[3]!];
  if (nonFinite > 0) throw new NonFiniteOutputError(`the model's outputs are NaN or infinite for ${nonFinite} of the ${n} validation images: its weights have diverged, so it has no error rate to report`);
  return { ...ev, top1Correct: c1, top5Correct: c5, images: n, top1Error: n ? 1 - c1 / n : NaN, top5Error: n ? 1 - c5 / n : NaN };
}

/** The end of an epoch: evaluation, the §5 schedule, the epoch's record, the collapse check. */
async function endEpoch(r: Run, images: number, seconds: number): Promise<EpochRecord> {
  const { state, optimizer, schedule } = r;
  const epoch = state.epoch;
  const trainLoss = state.epochLossSum / Math.max(1, state.epochImages);
  const record: EpochRecord = { epoch: epoch + 1, trainLoss, trainTop1Error: 1 - state.epochCorrect / Math.max(1, state.epochImages), lr: optimizer.lr };
  if (r.valLoader) {
    let ev: Evaluation;
    try {
      ev = await evaluateWithProgress(r.model, r.valLoader, `validation ${epoch + 1}`, {
        maxBadImages: r.maxBadImages, progress: r.writes && (r.opts.progress ?? true), transform: r.transform, ...(r.group ? { countNonFinite: true } : {}),
      });
      if (r.group) ev = await sumEvaluation(r.group, ev);
    } catch (e) {
      if (e instanceof NonFiniteOutputError) throw new TrainingError(`validation after epoch ${epoch + 1}: ${e.message}; training stopped. ${lastGood(r)}`);
      if (e instanceof BadImagesError) throw new TrainingError(e.message);
      throw e;
    }
    if (ev.badImages.length > 0) r.log(`validation: ${ev.badImages.length} image(s) failed to load and were scored as zeros: ${ev.badImages.slice(0, 3).map((f) => f.reason).join('; ')}`);
    record.valTop1Error = ev.top1Error;
    record.valTop5Error = ev.top5Error;
  }
  // §5: lr / 10 when the validation error stops improving (the training loss when there is no validation).
  const newLr = schedule.epochEnd(record.valTop1Error ?? trainLoss);
  if (newLr !== optimizer.lr) { r.log(`${r.recipe.schedule.watch} stopped improving: learning rate ${optimizer.lr} -> ${newLr} (§5)`); optimizer.lr = newLr; }
  state.history.push(record);
  state.epochLossSum = 0; state.epochCorrect = 0; state.epochImages = 0;
  const ips = images / seconds;
  r.log(`epoch ${record.epoch}/${r.recipe.epochs}: loss ${trainLoss.toFixed(4)}, train top-1 error ${(100 * record.trainTop1Error!).toFixed(1)}%` +
    (record.valTop1Error !== undefined ? `, val top-1 error ${(100 * record.valTop1Error).toFixed(1)}%, top-5 ${(100 * record.valTop5Error!).toFixed(1)}%` : '') +
    `, ${ips.toFixed(1)} img/s, lr ${record.lr}`);
  r.metrics.write({ type: 'epoch', ...record, imagesPerSecond: ips, seconds, step: state.step, time: new Date().toISOString(), memory: memory().bytes, rss: process.memoryUsage().rss });
  return record;
}

/**
 * Loads a checkpoint's weights into a new run's model. The last layer's weights are kept only when
 * the classes are the same (by wnid, in order); otherwise it keeps its fresh §5 initialisation.
 */
function startFrom(model: Network, ck: CheckpointContents, path: string, classes: readonly { wnid: string; name: string }[], log: (line: string) => void): void {
  const last = [...model.description.layers].reverse().find((l) => l.kind === 'linear')!.name;
  const saved = ck.meta.data.classes;
  const same = saved.length === classes.length && saved.every((c, i) => c.wnid === classes[i]!.wnid);
  const weights = new Map([...ck.model].filter(([k]) => same || !k.startsWith(`${last}.`)));
  try {
    model.loadStateDict(weights, { strict: same });
  } catch (e) {
    throw new TrainingError(`cannot start from --weights ${path}: ${(e as Error).message}`);
  }
  const missing = model.parameters().map((p) => p.name).filter((n) => !weights.has(n) && !n.startsWith(`${last}.`));
  if (missing.length > 0) throw new TrainingError(`cannot start from --weights ${path}: it has no ${missing.join(', ')}`);
  log(same ? `starting from the weights of ${path}`
    : `starting from the weights of ${path}; ${last} is initialised afresh (§5), since the weights have ${saved.length} classes and this data ${classes.length}` +
      (saved.length === classes.length ? ' (the same count, other classes)' : ''));
}

/** Builds the run: data ready, model and optimizer made (or resumed), loaders, the recipe said and logged. */
async function setUp(opts: TrainOptions): Promise<Run> {
  const group = opts.group !== undefined ? opts.group : await joinLaunchedGroup();
  const writes = !group || group.rank === 0;
  const log = !writes ? () => undefined : opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  checkOption('valFraction', opts.valFraction, (n) => n > 0 && n < 1, 'a fraction between 0 and 1');
  checkOption('maxBadImages', opts.maxBadImages, (n) => Number.isSafeInteger(n) && n >= 0, 'a non-negative integer');
  checkOption('statsSamples', opts.statsSamples, (n) => Number.isSafeInteger(n) && n >= 1, 'a positive integer');
  checkOption('printFreq', opts.printFreq, (n) => Number.isSafeInteger(n) && n >= 1, 'a positive integer');
  // Everything that can be checked without reading the data is checked first.
  const devices = resolveDevices(placeDevices(opts.devices, group));
  if (group) shareCores(devices, group);
  let precision: Precision;
  try { precision = applyPrecision(opts.precision, devices.map((d) => d.name)); } catch (e) { throw new TrainingError((e as Error).message); }
  if (opts.weights && opts.resume) throw new TrainingError('give --resume (continue a run) or --weights (start a new one from its weights), not both');
  const start = opts.weights ? await loadCheckpoint(opts.weights).catch((e) => { throw e instanceof CheckpointError ? new TrainingError(e.message) : e; }) : null;
  const from = start?.meta.model as { name?: ModelName; inputSize?: number; lrn?: boolean; pool?: { size: number; stride: number }; dropout?: boolean; activation?: 'relu' | 'tanh' } | undefined;
  if (from && opts.model && opts.model !== from.name) throw new TrainingError(`--weights ${opts.weights} holds a '${from.name}' model, but --model is '${opts.model}'`);
  const modelName = opts.model ?? from?.name ?? 'paper';
  if (devices.length === 2 && modelName !== 'paper') throw new TrainingError(`two devices need the two-tower 'paper' model, not '${modelName}'`);
  const P = PAPER_LEARNING;
  const out = resolve(opts.out);
  await mkdir(out, { recursive: true });
  const opened = typeof opts.data === 'string' ? await openData(opts.data, { size: opts.imageSize }) : opts.data;
  const seed = opts.seed ?? 0;
  // Statistics a raw folder needs are computed (and cached) once, by rank 0; the others then read them.
  if (group && !writes) await group.barrier();
  const data = await readyData(opened, { out, seed, valFraction: opts.valFraction, statsSamples: opts.statsSamples, workers: opts.workers, log, progress: writes && (opts.progress ?? true) });
  if (group && writes) await group.barrier();
  const classes = data.train.classes.length;
  const crop = opts.crop ?? from?.inputSize ?? P.crop;
  const batchSize = opts.batchSize ?? P.batchSize;
  const biasDecay = opts.biasDecay ?? true;
  const lrnOff = opts.lrn === false || (opts.lrn === undefined && from?.lrn === false), dropOff = opts.dropout === false || (opts.dropout === undefined && from?.dropout === false);
  const pool = opts.pool ?? from?.pool;
  const activation = opts.activation ?? from?.activation;
  const ablations = { ...(lrnOff ? { lrn: false } : {}), ...(pool ? { pool } : {}), ...(dropOff ? { dropout: false } : {}), ...(activation === 'tanh' ? { activation } : {}) };
  const modelConfig = { name: modelName, classes, inputSize: crop, positiveBias: opts.positiveBias ?? P.positiveBias, weightStd: opts.weightStd ?? P.weightStd, ...ablations };

  const model = createModel(modelName, { ...modelConfig, devices, seed });
  const lr0 = opts.lr ?? P.lr;
  const optimizer = new SGD(model.parameters(), {
    lr: lr0, momentum: opts.momentum ?? P.momentum, weightDecay: opts.weightDecay ?? P.weightDecay, form: 'paper',
    groups: biasDecay ? [] : [{ match: /\.bias$/, decayMult: 0 }],
  });
  const schedule = new PlateauLR({ lr: lr0, factor: P.schedule.factor, patience: opts.patience ?? P.schedule.patience, maxReductions: opts.maxLrReductions ?? P.schedule.maxReductions, mode: 'min' });
  let state = newTrainerState(lr0);
  let resumedPreprocessing: CheckpointMeta['data']['preprocessing'];
  if (opts.resume) {
    const ck = await loadCheckpoint(opts.resume, { resume: true }).catch((e) => { throw e instanceof CheckpointError ? new TrainingError(e.message) : e; });
    try {
      checkCompatible(opts.resume, ck.meta.model, modelConfig, ['name', 'classes', 'inputSize', 'lrn', 'pool', 'dropout', 'activation']);
      const savedDecay = (ck.meta.recipe as Recipe | undefined)?.optimizer.biasDecay;
      if (savedDecay !== undefined && savedDecay !== biasDecay) {
        throw new CheckpointError(`it was trained with weight decay ${savedDecay ? 'on' : 'off'} for the biases, and this run has it ${biasDecay ? 'on' : 'off'} (--no-bias-decay)`);
      }
      model.loadStateDict(ck.model);
      loadVelocityStateDict(optimizer, ck.optimizer);
      optimizer.loadState(ck.meta.optimizer as unknown as SGDState);
    } catch (e) {
      model.dispose(); optimizer.dispose();
      throw new TrainingError(`cannot resume from ${opts.resume}: ${(e as Error).message}`);
    }
    state = { ...state, ...(ck.meta.trainer as unknown as TrainerState) };
    resumedPreprocessing = ck.meta.data.preprocessing;
    schedule.loadState(state.schedule as ScheduleState);
    log(`resumed from ${opts.resume}: epoch ${state.epoch + 1}, batch ${state.batch}, step ${state.step}, lr ${state.lr}`);
  }

  if (start) startFrom(model, start, opts.weights!, data.train.classes, log);
  const preprocessing = start?.meta.data.preprocessing ?? resumedPreprocessing;

  const mean = chooseMean(data.train);
  const lrn = model.description.layers.find((l) => l.kind === 'lrn');
  const recipe: Recipe = {
    data: { kind: opened.kind, root: opened.root, classes, trainImages: data.train.length, validation: data.validation },
    mean: preprocessing ? { kind: 'none', from: `the ${preprocessing.kind} normalization of --weights instead: /255, minus [${preprocessing.mean.join(', ')}], divided by [${preprocessing.std.join(', ')}]` }
      : { kind: mean.kind, from: mean.kind === 'image' ? data.statisticsFrom : 'ImageNet channel means' },
    lighting: opts.lighting === false ? { on: false, why: 'turned off (--no-lighting)' }
      : data.train.statistics ? { on: true, std: 0.1, scale: 'shifts Σ αᵢλᵢpᵢ with λ on the 0..1 scale' } : { on: false, why: 'no statistics' },
    crop, flip: true,
    model: {
      name: modelName, weightStd: modelConfig.weightStd, positiveBias: modelConfig.positiveBias,
      pool: (() => { const p = model.description.layers.find((l) => l.kind === 'maxpool'); return p && p.kind === 'maxpool' ? { size: p.size, stride: p.stride } : null; })(),
      dropout: model.description.layers.some((l) => l.kind === 'dropout'),
      activation: model.description.layers.some((l) => l.kind === 'tanh') ? 'tanh' : 'relu',
      lrn: lrn && lrn.kind === 'lrn' ? { convention: lrn.convention, acrossTowers: lrn.inputs === 'all' } : null,
    },
    optimizer: { form: optimizer.form, lr: lr0, momentum: optimizer.momentum, weightDecay: optimizer.weightDecay, biasDecay },
    schedule: { kind: 'plateau', watch: data.val ? 'validation top-1 error' : 'training loss', factor: schedule.factor, patience: schedule.patience, maxReductions: schedule.maxReductions },
    batch: batchSize, epochs: opts.epochs ?? P.epochs, devices: devices.map((d) => d.name), placement: devices.length === 2 ? 'two towers' : 'one device', seed,
    precision,
  };
  for (const line of formatRecipe(recipe)) log(line);
  if (devices.length === 2) for (const line of formatPlacement(model.placement, recipe.devices)) log(`  ${line}`);
  if (!data.val) {
    log(`WARNING: ${opened.root} has no validation split, so the §5 schedule (lr / 10 when the validation error stops improving) watches the training loss instead; ` +
      'hold back part of the training set with --val-fraction 0.02 to schedule on validation error.');
  }
  // Every rank must have been given the same data, model and recipe: checked before the first step.
  if (group) await checkSameSettings(group, await runSettings(recipe, model, { classList: data.train.classes, start: { epoch: state.epoch, batch: state.batch, step: state.step }, maxSteps: opts.maxSteps, tenCrop: opts.tenCrop, maxBadImages: opts.maxBadImages }));
  const part = group ? { part: { rank: group.rank, size: group.size } } : {};
  if (group && (opts.batchSize ?? P.batchSize) < group.size) throw new TrainingError(`the global batch (${opts.batchSize ?? P.batchSize}) must have at least one image for each of the ${group.size} processes`);
  if (group) log(`data parallel: ${group.size} processes, each with its part of every batch of ${batchSize} (rank 0 writes)`);
  const trainLoader = createLoader(data.train, { ...part,
    batchSize, seed, mode: 'train', crop, workers: opts.workers, mean: preprocessing ? 'none' : mean.mean, dropLast: data.train.length >= batchSize, ...(opts.lighting === false ? { lighting: false } : {}),
  });
  const valLoader = data.val ? createLoader(data.val, { ...part,
    batchSize, mode: opts.tenCrop ? 'tenCrop' : 'center', crop, workers: opts.workers, mean: preprocessing ? 'none' : mean.mean, statistics: data.train.statistics ?? undefined,
  }) : null;
  // A resumed run cuts metrics.jsonl back to its checkpoint: the log then reads as an uninterrupted run's.
  const { log: metrics, hasRecipe } = writes
    ? await MetricsLog.open(join(out, 'metrics.jsonl'), opts.resume ? { resumeAt: { step: state.step, epoch: state.epoch } } : {})
    : { log: MetricsLog.discard(), hasRecipe: true };
  if (!hasRecipe) metrics.write({ type: 'recipe', ...recipe, time: new Date().toISOString() });
  // A crash during a checkpoint write leaves a temporary file beside it, never a half checkpoint.
  if (writes) for (const f of await readdir(out)) if (f.startsWith(`${CHECKPOINT_FILE}.tmp-`)) await rm(join(out, f), { force: true });
  return {
    opts, out, model, optimizer, schedule, trainLoader, valLoader, metrics, recipe, state, classes, inputDevice: devices[0]!,
    checkpointPath: join(out, CHECKPOINT_FILE), maxBadImages: opts.maxBadImages ?? 10, badSeen: new Map((state.badImages ?? []).map((s) => [s, `training image ${s} (failed before the run was resumed)`])),
    // The imported normalization, at this run's image and crop sides.
    dataMeta: { classes: data.train.classes, mean: preprocessing ? 'none' : mean.kind, crop, size: data.train.size, ...(preprocessing ? { preprocessing: { ...preprocessing, crop, resize: data.train.size } } : {}) },
    meanHost: mean.host, modelConfig, log, probe: null, group, writes, transform: preprocessing ? (b) => normalizeBatch(b.images, b.shape, preprocessing) : undefined,
  };
}

export async function train(opts: TrainOptions): Promise<TrainResult> {
  const r = await setUp(opts);
  const { state } = r;
  let stopped: TrainResult['stopped'] = 'done';
  let warning: string | undefined;
  let imagesTimed = 0, secondsTimed = 0;
  try {
    while (state.epoch < r.recipe.epochs) {
      const e = await runEpoch(r);
      stopped = e.stopped;
      imagesTimed += e.images; secondsTimed += e.seconds;
      if (stopped === 'aborted') { await save(r); r.log(`interrupted: checkpoint saved to ${r.checkpointPath}`); break; }
      if (stopped === 'max-steps' && state.batch < r.trainLoader.batchesPerEpoch) { await save(r); break; }
      const record = await endEpoch(r, e.images, e.seconds);
      opts.onEpoch?.(record);
      if (!warning) {
        warning = collapseWarning(state.history, r.classes, r.model, r.probe, r.inputDevice);
        if (warning) r.log(`WARNING: ${warning}`);
      }
      state.epoch++;
      state.batch = 0;
      await save(r);
      if (stopped === 'max-steps') break;
    }
  } finally {
    await r.trainLoader.close();
    await r.valLoader?.close();
    await r.metrics.close().catch(() => undefined);
  }
  if (r.writes) await writeFile(join(r.out, 'history.json'), JSON.stringify(state.history, null, 2));
  r.model.dispose();
  r.optimizer.dispose();
  return {
    history: state.history, checkpoint: r.checkpointPath, steps: state.step, imagesPerSecond: secondsTimed ? imagesTimed / secondsTimed : 0, stopped, warning,
    recipe: r.recipe, badImages: r.badSeen.size, rank: r.group?.rank ?? 0,
  };
}
