/**
 * §5 initialisation: weights ~ N(0, 0.01^2), biases constant (1 in conv2, conv4, conv5, fc6, fc7 in
 * the paper's net, 0 elsewhere). Each whole parameter is one Philox stream keyed by
 * (seed, parameter name); a part of it (one tower's half) is the same stream from the part's offset,
 * so both placements and every backend hold identical weights.
 */
import { full, randn, type DType, type Device, type Shape } from '@alexnet/tensor';
import { Parameter } from './parameter.js';
import { seedFor } from './seed.js';

export type ParameterInit = { kind: 'normal'; std: number; mean?: number } | { kind: 'constant'; value: number };

export interface ParameterPlacement {
  device?: string | Device;
  dtype?: DType;
  /** Shape and element offset of the whole tensor when this is one part of it. */
  fullShape?: Shape;
  offset?: number;
}

/** Creates a parameter named `name` (part of it when fullShape/offset are given) from (seed, name). */
export function initParameter(name: string, shape: Shape, init: ParameterInit, seed: number, place: ParameterPlacement = {}): Parameter {
  const opts = { device: place.device, dtype: place.dtype ?? 'float32' };
  const value = init.kind === 'normal'
    ? randn(shape, { ...opts, seed: seedFor(seed, name), offset: place.offset ?? 0, mean: init.mean ?? 0, std: init.std })
    : full(shape, init.value, opts);
  return new Parameter(name, value, { fullShape: place.fullShape ?? shape, offset: place.offset ?? 0 });
}
