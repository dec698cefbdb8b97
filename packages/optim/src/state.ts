/**
 * The optimizer's state for a checkpoint: the velocities as whole tensors named like the parameters
 * (assembled from the parts of a two-tower model, so a checkpoint is the same for every placement),
 * to be saved beside the weights; the JSON part is `SGD.state()`. @alexnet/train's checkpoints hold both.
 */
import { copyInto, tensor, type HostTensor, type TypedArray } from '@alexnet/tensor';
import type { SGD } from './sgd.js';

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
