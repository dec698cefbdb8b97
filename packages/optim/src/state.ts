/**
 * Optimizer and schedule state on disk, so that training resumes exactly: the velocities as
 * safetensors (whole tensors named like the parameters, assembled from the parts of a two-tower
 * model, so the file is the same for every placement) and a small JSON (optimizer hyperparameters,
 * step count, learning rate, schedule state, anything the trainer adds).
 */
import { readFile } from 'node:fs/promises';
import {
  copyInto, loadSafetensors, saveSafetensors, tensor, writeFileAtomic, type HostTensor, type TypedArray,
} from '@alexnet/tensor';
import type { LrSchedule, ScheduleState } from './schedule.js';
import type { SGD, SGDState } from './sgd.js';

export interface OptimizerStateFiles {
  safetensors: string;
  json: string;
}

export interface OptimizerStateJson {
  format: 'alexnet-optimizer-state';
  version: 1;
  optimizer: SGDState;
  schedule: ScheduleState | null;
  extra: Record<string, unknown>;
}

/** `base.safetensors` and `base.json` for a path given with or without either extension. */
export function optimizerStateFiles(path: string): OptimizerStateFiles {
  const base = path.replace(/\.(safetensors|json)$/, '');
  return { safetensors: `${base}.safetensors`, json: `${base}.json` };
}

function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** The velocities as whole host tensors, by parameter name. */
export function velocityStateDict(opt: SGD): Record<string, HostTensor> {
  const out: Record<string, HostTensor> = {};
  opt.params.forEach((p, i) => {
    const full = p.fullShape ?? p.value.shape;
    let h = out[p.name];
    if (!h) {
      const n = sizeOf(full);
      h = out[p.name] = { dtype: p.value.dtype, shape: [...full], data: p.value.dtype === 'float64' ? new Float64Array(n) : new Float32Array(n) };
    }
    (h.data as Float32Array).set(opt.velocityOf(i).dataSync() as Float32Array, p.offset ?? 0);
  });
  return out;
}

/** Writes the optimizer's velocities and JSON state (and the schedule's) next to each other. */
export async function saveOptimizerState(path: string, opt: SGD, schedule?: LrSchedule, extra: Record<string, unknown> = {}): Promise<OptimizerStateFiles> {
  const files = optimizerStateFiles(path);
  const json: OptimizerStateJson = { format: 'alexnet-optimizer-state', version: 1, optimizer: opt.state(), schedule: schedule?.state() ?? null, extra };
  await saveSafetensors(files.safetensors, velocityStateDict(opt), { format: 'alexnet-sgd-velocity', form: opt.form });
  await writeFileAtomic(files.json, new TextEncoder().encode(JSON.stringify(json, null, 2) + '\n'));
  return files;
}

/** Restores what saveOptimizerState wrote into an optimizer (and schedule) built for the same model. */
export async function loadOptimizerState(path: string, opt: SGD, schedule?: LrSchedule): Promise<OptimizerStateJson> {
  const files = optimizerStateFiles(path);
  const json = JSON.parse(await readFile(files.json, 'utf8')) as OptimizerStateJson;
  if (json?.format !== 'alexnet-optimizer-state') throw new Error(`${files.json} is not an @alexnet optimizer state file`);
  const { tensors } = await loadSafetensors(files.safetensors);
  checkVelocityStateDict(opt, tensors, files.safetensors); // everything checked before anything changes
  opt.loadState(json.optimizer);
  if (schedule) {
    if (!json.schedule) throw new Error(`${files.json} holds no schedule state`);
    schedule.loadState(json.schedule);
  }
  loadVelocityStateDict(opt, tensors, files.safetensors);
  return json;
}

/**
 * Loads whole velocity tensors by parameter name (as velocityStateDict writes them) into an optimizer
 * built for the same model, whatever its placement: each part takes its rows. Checks everything first.
 */
export function loadVelocityStateDict(opt: SGD, tensors: Map<string, HostTensor>, source = 'the optimizer state'): void {
  checkVelocityStateDict(opt, tensors, source);
  opt.params.forEach((p, i) => {
    const h = tensors.get(p.name)!;
    const off = p.offset ?? 0, n = p.value.size;
    const part = (h.data as TypedArray).subarray(off, off + n);
    const typed = p.value.dtype === 'float64' ? Float64Array.from(part) : Float32Array.from(part);
    const tmp = tensor(typed, p.value.shape, { device: p.value.device, dtype: p.value.dtype });
    copyInto(tmp, opt.velocityOf(i));
    tmp.dispose();
  });
}

function checkVelocityStateDict(opt: SGD, tensors: Map<string, HostTensor>, source: string): void {
  opt.params.forEach((p) => {
    const h = tensors.get(p.name);
    const full = p.fullShape ?? p.value.shape;
    if (!h) throw new Error(`${source} has no velocity for "${p.name}"`);
    if (h.shape.length !== full.length || h.shape.some((d, j) => d !== full[j])) {
      throw new Error(`${source}: the velocity of "${p.name}" has shape [${h.shape.join(', ')}] but the parameter is [${full.join(', ')}]`);
    }
  });
}
