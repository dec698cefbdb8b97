/**
 * Checkpoints: one safetensors file holding the model's weights ("model/<name>", PyTorch layouts),
 * the optimizer's state ("optim/<name>") and, in its metadata, the model configuration, the schedule,
 * the random generator positions and the place in the epoch. Written atomically (a temporary file,
 * fsync, rename), so a crash or SIGKILL mid-write leaves the previous checkpoint intact.
 */
import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { decodeSafetensors, saveSafetensors, type HostTensor, type Tensor } from '@alexnet/tensor';

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
  data: { classes: { wnid: string; name: string }[]; mean: 'image' | 'channel' | 'none'; crop: number; size: number };
  createdAt: string;
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

export async function loadCheckpoint(path: string): Promise<CheckpointContents> {
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
  if (meta.format !== CHECKPOINT_FORMAT) throw new CheckpointError(`${path} is not an @alexnet checkpoint (format ${String(meta.format)})`);
  if (meta.version > CHECKPOINT_VERSION) throw new CheckpointError(`checkpoint ${path} has version ${meta.version}, newer than this @alexnet/train reads (${CHECKPOINT_VERSION})`);
  const model = new Map<string, HostTensor>(), optimizer = new Map<string, HostTensor>(), data = new Map<string, HostTensor>();
  for (const [k, v] of decoded.tensors) {
    if (k.startsWith('model/')) model.set(k.slice(6), v);
    else if (k.startsWith('optim/')) optimizer.set(k.slice(6), v);
    else if (k.startsWith('data/')) data.set(k.slice(5), v);
  }
  return { meta, model, optimizer, data };
}

/** Throws a sentence when a checkpoint's model does not match the one asked for. */
export function checkCompatible(path: string, saved: Record<string, unknown>, wanted: Record<string, unknown>, keys: string[]): void {
  for (const k of keys) {
    if (wanted[k] !== undefined && saved[k] !== undefined && saved[k] !== wanted[k]) {
      throw new CheckpointError(`checkpoint ${path} is for ${k} ${JSON.stringify(saved[k])}, but this run uses ${k} ${JSON.stringify(wanted[k])}`);
    }
  }
}
