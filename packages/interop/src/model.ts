/**
 * The model a set of weights belongs to, described by the same configuration a checkpoint records
 * (name, classes, inputSize and the options @alexnet/layers' descriptions take), and the check that
 * the weights fit it: every parameter present with its shape, nothing else.
 */
import { describeModel, inferShapes, type ModelDescription, type ModelName, type ModelOptions } from '@alexnet/layers';
import type { HostTensor } from '@alexnet/tensor';
import type { ClassEntry } from './classes.js';
import { InteropError } from './errors.js';
import type { Preprocessing } from './preprocess.js';

/** A checkpoint's `model` record: the arguments of createModel(name, options). */
export interface ModelConfig extends ModelOptions {
  name: ModelName;
  classes: number;
  inputSize: number;
}

/**
 * Weights and what they are: a plain object, or what @alexnet/train's loadCheckpoint returns
 * ({ meta: { model, data }, model: Map }) passed as it is.
 */
export type ModelSource =
  | { model: ModelConfig; weights: Map<string, HostTensor> | Record<string, HostTensor>; classes?: readonly ClassEntry[]; preprocessing?: Preprocessing }
  | { meta: { model: Record<string, unknown>; data?: { classes?: readonly ClassEntry[]; preprocessing?: Preprocessing } }; model: Map<string, HostTensor> };

export interface ResolvedSource {
  config: ModelConfig;
  description: ModelDescription;
  weights: Map<string, HostTensor>;
  classes: readonly ClassEntry[] | undefined;
  preprocessing: Preprocessing | undefined;
}

const NAMES = new Set<string>(['paper', 'paper-half', 'torchvision']);

/** The description and weights of a ModelSource, checked (what = how errors name the source). */
export function resolveSource(source: ModelSource, what: string): ResolvedSource {
  let config: Record<string, unknown>, weights: Map<string, HostTensor>, classes, preprocessing;
  if ('meta' in source) {
    config = source.meta.model;
    weights = source.model;
    classes = source.meta.data?.classes;
    preprocessing = source.meta.data?.preprocessing;
  } else {
    config = source.model as unknown as Record<string, unknown>;
    weights = source.weights instanceof Map ? source.weights : new Map(Object.entries(source.weights));
    classes = source.classes;
    preprocessing = source.preprocessing;
  }
  if (typeof config !== 'object' || config === null) throw new InteropError(`${what} has no model description`);
  if (typeof config.name !== 'string' || !NAMES.has(config.name)) throw new InteropError(`${what} is for model ${JSON.stringify(config.name)}, not paper, paper-half or torchvision`);
  let description: ModelDescription;
  try {
    description = describeModel(config.name as ModelName, config as ModelOptions);
  } catch (e) {
    throw new InteropError(`${what} describes a model that cannot be built: ${(e as Error).message}`);
  }
  const problems = weightProblems(description, weights);
  if (problems) throw new InteropError(`${what} does not hold the weights of its ${description.name} model: ${problems}`);
  return { config: config as unknown as ModelConfig, description, weights, classes, preprocessing };
}

const shape = (s: readonly number[]) => `[${s.join(', ')}]`;

function list(items: string[], max = 8): string {
  return items.length > max ? `${items.slice(0, max).join(', ')} and ${items.length - max} more` : items.join(', ');
}

/**
 * Missing, unexpected and mis-shaped tensors of `weights` against the description's parameters, as
 * one phrase ("missing features.3.weight [192, 64, 5, 5]; unexpected fc.weight [1]; mis-shaped
 * features.0.weight: [4, 3, 3, 3] here, [64, 3, 11, 11] expected"), or null when they fit.
 */
export function weightProblems(description: ModelDescription, weights: Map<string, HostTensor>): string | null {
  const want = new Map(inferShapes(description).flatMap((r) => r.params.map((p) => [p.name, p.shape] as const)));
  const missing: string[] = [], extra: string[] = [], misShaped: string[] = [], notFloat: string[] = [];
  for (const [name, s] of want) {
    const t = weights.get(name);
    if (!t) missing.push(`${name} ${shape(s)}`);
    else if (t.shape.length !== s.length || t.shape.some((d, i) => d !== s[i])) misShaped.push(`${name}: ${shape(t.shape)} here, ${shape(s)} expected`);
    else if (t.dtype !== 'float32' && t.dtype !== 'float64') notFloat.push(`${name} (${t.dtype})`);
  }
  for (const [name, t] of weights) if (!want.has(name)) extra.push(`${name} ${shape(t.shape)}`);
  const parts = [
    missing.length ? `missing ${list(missing)}` : '',
    extra.length ? `unexpected ${list(extra)}` : '',
    misShaped.length ? `mis-shaped ${list(misShaped)}` : '',
    notFloat.length ? `not floating point: ${list(notFloat)}` : '',
  ].filter(Boolean);
  return parts.length ? parts.join('; ') : null;
}

/** The names of tensors holding NaN or infinite values. */
export function nonFinite(weights: Map<string, HostTensor>): string[] {
  const bad: string[] = [];
  for (const [name, t] of weights) {
    const d = t.data;
    for (let i = 0; i < d.length; i++) if (!Number.isFinite(d[i]!)) { bad.push(name); break; }
  }
  return bad;
}
