/**
 * Checkpoints: one safetensors file holding the model's weights ("model/<name>", PyTorch layouts),
 * the optimizer's state ("optim/<name>") and, in its metadata, the model configuration, the schedule,
 * the random generator positions and the place in the epoch. Written atomically (a temporary file,
 * fsync, rename), so a crash or SIGKILL mid-write leaves the previous checkpoint intact.
 */
import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { decodeSafetensors, saveSafetensors, type HostTensor, type Tensor } from '@alexnet/tensor';
import { checkPreprocessing, type Preprocessing } from '@alexnet/interop';
import type { EpochRecord } from './visualize.js';

export const CHECKPOINT_FORMAT = 'alexnet-checkpoint';
export const CHECKPOINT_VERSION = 1;

export interface CheckpointMeta {
  format: typeof CHECKPOINT_FORMAT;
  version: number;
  /** The model description options: name, classes, input size, ... */
  model: Record<string, unknown>;
  /** Everything else the trainer needs to resume (JSON). */
  trainer: Record<string, unknown>;
  /** The optimizer's JSON state. */
  optimizer: Record<string, unknown>;
  /** The data the model was trained on: class names and the mean subtraction (see data.ts). */
  data: {
    classes: { wnid: string; name: string }[]; mean: 'image' | 'channel' | 'none'; crop: number; size: number;
    /**
     * Another recipe's input normalization, for weights imported from elsewhere (torchvision's: /255,
     * minus mean, divided by std). Absent for the paper's own recipe (raw values minus the mean, §2).
     */
    preprocessing?: Preprocessing;
  };
  /** The run's recipe (recipe.ts), when written by a trainer that records it. */
  recipe?: Record<string, unknown>;
  createdAt: string;
}

/**
 * The trainer's position and history in a checkpoint's metadata (`trainer`), enough to resume to the
 * same loss sequence: which epoch and batch come next, the step count (dropout masks are keyed by
 * it), the schedule's state, the running sums of the current epoch, and the history of finished
 * epochs. Version 1; a field added later gets a default when an older checkpoint is read.
 */
export interface TrainerState {
  /** Epochs finished (the next epoch's index). */
  epoch: number;
  /** Next batch to run within `epoch`. */
  batch: number;
  /** Steps taken. */
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

export const TRAINER_STATE_VERSION = 1;

/** The state of a run that has not started. */
export function newTrainerState(lr: number): TrainerState {
  return { epoch: 0, batch: 0, step: 0, lr, history: [], schedule: {}, epochLossSum: 0, epochCorrect: 0, epochImages: 0, badImages: [] };
}

export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

export interface CheckpointContents {
  meta: CheckpointMeta;
  model: Map<string, HostTensor>;
  optimizer: Map<string, HostTensor>;
  data: Map<string, HostTensor>;
}

export async function saveCheckpoint(path: string, parts: {
  model: Record<string, Tensor | HostTensor>;
  optimizer: Record<string, Tensor | HostTensor>;
  /** Data tensors kept with the model (the mean image or channel means). */
  data?: Record<string, HostTensor>;
  meta: Omit<CheckpointMeta, 'format' | 'version' | 'createdAt'>;
}): Promise<void> {
  const tensors: Record<string, Tensor | HostTensor> = {};
  for (const [k, v] of Object.entries(parts.data ?? {})) tensors[`data/${k}`] = v;
  for (const [k, v] of Object.entries(parts.model)) tensors[`model/${k}`] = v;
  for (const [k, v] of Object.entries(parts.optimizer)) tensors[`optim/${k}`] = v;
  const meta: CheckpointMeta = { format: CHECKPOINT_FORMAT, version: CHECKPOINT_VERSION, createdAt: new Date().toISOString(), ...parts.meta };
  await saveSafetensors(path, tensors, { alexnet: JSON.stringify(meta) }); // atomic, streamed tensor by tensor
}

/** The models a checkpoint may name, and the bounds its numbers must keep (checked before anything is allocated). */
const MODELS = new Set(['paper', 'paper-half', 'torchvision']);
const MAX_CLASSES = 100_000;
const MAX_SIDE = 4096;

function isInt(v: unknown, lo: number, hi: number): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= lo && v <= hi;
}

/**
 * Checks what predict, eval and --resume read from a checkpoint's metadata (model name, class
 * count and list, image and crop sides, the mean's kind and shape; with `resume`, the trainer's
 * position), so a corrupt file is refused with a sentence before any memory is sized from it.
 */
export function validateCheckpointMeta(path: string, meta: unknown, data: Map<string, HostTensor>, opts: { resume?: boolean } = {}): asserts meta is CheckpointMeta {
  const bad = (what: string) => new CheckpointError(`checkpoint ${path} is corrupt: ${what}`);
  const show = (v: unknown) => JSON.stringify(v)?.slice(0, 60) ?? String(v);
  if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) throw bad('its metadata is not an object');
  const m = meta as Record<string, unknown>;
  const model = m.model as Record<string, unknown> | undefined, d = m.data as Record<string, unknown> | undefined;
  if (typeof model !== 'object' || model === null) throw bad('it has no model description');
  if (typeof model.name !== 'string' || !MODELS.has(model.name)) throw bad(`model.name is ${show(model.name)}, not one of ${[...MODELS].join(', ')}`);
  if (!isInt(model.classes, 1, MAX_CLASSES)) throw bad(`model.classes is ${show(model.classes)}, not an integer from 1 to ${MAX_CLASSES}`);
  if (!isInt(model.inputSize, 67, MAX_SIDE)) throw bad(`model.inputSize is ${show(model.inputSize)}, not an integer from 67 to ${MAX_SIDE}`);
  if (typeof d !== 'object' || d === null) throw bad('it has no data description');
  if (!isInt(d.crop, 67, MAX_SIDE) || d.crop !== model.inputSize) throw bad(`data.crop is ${show(d.crop)}, but the model takes ${model.inputSize}x${model.inputSize} inputs`);
  if (!isInt(d.size, d.crop, MAX_SIDE)) throw bad(`data.size is ${show(d.size)}, not an integer from the crop (${d.crop}) to ${MAX_SIDE}`);
  const classes = d.classes;
  if (!Array.isArray(classes) || classes.length !== model.classes) throw bad(`data.classes lists ${Array.isArray(classes) ? classes.length : 'no'} classes, but the model has ${model.classes}`);
  const badClass = classes.findIndex((c) => typeof c !== 'object' || c === null || typeof c.wnid !== 'string' || typeof c.name !== 'string');
  if (badClass >= 0) throw bad(`data.classes[${badClass}] is ${show(classes[badClass])}, not { wnid, name }`);
  if (d.mean !== 'image' && d.mean !== 'channel' && d.mean !== 'none') throw bad(`data.mean is ${show(d.mean)}, not image, channel or none`);
  const mean = data.get('mean');
  const want = d.mean === 'image' ? [d.size, d.size, 3] : d.mean === 'channel' ? [3] : null;
  if (want && (!mean || mean.shape.length !== want.length || mean.shape.some((v, i) => v !== want[i]) || mean.data.length !== want.reduce((a, b) => a * b, 1))) {
    throw bad(`its ${d.mean} mean should be a tensor of shape [${want.join(', ')}] but ${mean ? `has shape [${mean.shape.join(', ')}]` : 'is missing'}`);
  }
  if (d.preprocessing !== undefined) {
    const why = checkPreprocessing(d.preprocessing);
    if (why) throw bad(`data.preprocessing: ${why}`);
    const p = d.preprocessing as Preprocessing;
    if (p.crop !== d.crop || p.resize !== d.size) throw bad(`data.preprocessing crops ${p.crop} of ${p.resize}, but data says ${d.crop} of ${d.size}`);
  }
  if (opts.resume) {
    const t = m.trainer as Record<string, unknown> | undefined;
    if (t && typeof t === 'object' && 'importedFrom' in t) {
      throw new CheckpointError(`checkpoint ${path} holds imported weights (from ${JSON.stringify((t.importedFrom as { file?: string }).file ?? 'elsewhere')}), not a run to resume: start from them with --weights ${path}`);
    }
    if (typeof t !== 'object' || t === null) throw bad('it has no trainer state to resume from');
    for (const k of ['epoch', 'batch', 'step'] as const) if (!isInt(t[k], 0, Number.MAX_SAFE_INTEGER)) throw bad(`trainer.${k} is ${show(t[k])}, not a non-negative integer`);
    if (!Array.isArray(t.history)) throw bad('trainer.history is not a list');
    if (typeof m.optimizer !== 'object' || m.optimizer === null) throw bad('it has no optimizer state');
  }
}

export async function loadCheckpoint(path: string, opts: { resume?: boolean } = {}): Promise<CheckpointContents> {
  if (!existsSync(path)) throw new CheckpointError(`checkpoint ${path} does not exist`);
  const st = await stat(path);
  if (!st.isFile()) throw new CheckpointError(`checkpoint ${path} is not a file`);
  let decoded;
  try {
    decoded = decodeSafetensors(await readFile(path), path);
  } catch (e) {
    throw new CheckpointError(`checkpoint ${path} cannot be read: ${(e as Error).message}`);
  }
  const raw = decoded.metadata.alexnet;
  if (!raw) throw new CheckpointError(`${path} is a safetensors file but not an @alexnet checkpoint (no "alexnet" metadata); to load bare weights use the model's loadSafetensors`);
  let meta: CheckpointMeta;
  try { meta = JSON.parse(raw); } catch { throw new CheckpointError(`checkpoint ${path} has corrupt metadata`); }
  if (meta?.format !== CHECKPOINT_FORMAT) throw new CheckpointError(`${path} is not an @alexnet checkpoint (format ${String(meta?.format)})`);
  if (!(meta.version <= CHECKPOINT_VERSION)) throw new CheckpointError(`checkpoint ${path} has version ${String(meta.version)}, which this @alexnet/train does not read (it reads ${CHECKPOINT_VERSION})`);
  const model = new Map<string, HostTensor>(), optimizer = new Map<string, HostTensor>(), data = new Map<string, HostTensor>();
  for (const [k, v] of decoded.tensors) {
    if (k.startsWith('model/')) model.set(k.slice(6), v);
    else if (k.startsWith('optim/')) optimizer.set(k.slice(6), v);
    else if (k.startsWith('data/')) data.set(k.slice(5), v);
  }
  validateCheckpointMeta(path, meta, data, opts);
  return { meta, model, optimizer, data };
}

/** Throws a sentence when a checkpoint's model does not match the one asked for. */
export function checkCompatible(path: string, saved: Record<string, unknown>, wanted: Record<string, unknown>, keys: string[]): void {
  for (const k of keys) {
    if (JSON.stringify(saved[k]) !== JSON.stringify(wanted[k]) && (wanted[k] !== undefined && saved[k] !== undefined || ['lrn', 'pool', 'dropout', 'activation'].includes(k))) {
      throw new CheckpointError(`checkpoint ${path} is for ${k} ${JSON.stringify(saved[k])}, but this run uses ${k} ${JSON.stringify(wanted[k])}`);
    }
  }
}
