// TODO(integration): move into @alexnet/optim's state.ts next to velocityStateDict.
import type { SGD } from '@alexnet/optim';
import { copyInto, tensor, type HostTensor, type TypedArray } from '@alexnet/tensor';

/** Loads whole velocity tensors by parameter name into an optimizer (each part takes its rows). */
export function loadVelocityStateDict(opt: SGD, tensors: Map<string, HostTensor>): void {
  opt.params.forEach((p) => {
    const h = tensors.get(p.name);
    const full = p.fullShape ?? p.value.shape;
    if (!h) throw new Error(`the optimizer state has no velocity for "${p.name}"`);
    if (h.shape.length !== full.length || h.shape.some((d, j) => d !== full[j])) {
      throw new Error(`the velocity of "${p.name}" has shape [${h.shape.join(', ')}] but the parameter is [${full.join(', ')}]`);
    }
  });
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
