/**
 * A learned tensor with its gradient. A parameter may be one part of a larger tensor split across
 * devices (the paper's two towers, §3.2): `fullShape` is the whole tensor's shape and `offset` the
 * element offset of this part in it (parts are always whole rows of dimension 0: output kernels or
 * output neurons, so a part is a contiguous slice of the row-major whole).
 */
import { fill, zeros, type Shape, type Tensor } from '@alexnet/tensor';

export interface ParameterPart {
  /** Shape of the whole tensor this part belongs to. */
  fullShape: Shape;
  /** Element offset of this part within the whole (row-major). */
  offset: number;
}

export class Parameter {
  /** The whole tensor's name: "conv2.weight", "features.0.bias", ... */
  readonly name: string;
  readonly value: Tensor;
  readonly fullShape: Shape;
  readonly offset: number;
  /** Learning-rate and weight-decay multipliers an optimizer may apply (Caffe's lr_mult / decay_mult). */
  lrMult = 1;
  decayMult = 1;
  private gradTensor: Tensor;
  /** zeroGrad() only marks the gradient; the next backward overwrites instead of adding (saves a pass). */
  private gradIsZero = true;

  constructor(name: string, value: Tensor, part?: ParameterPart) {
    this.name = name;
    this.value = value.keep();
    this.fullShape = Object.freeze([...(part?.fullShape ?? value.shape)]);
    this.offset = part?.offset ?? 0;
    this.gradTensor = zeros(value.shape, { dtype: value.dtype, device: value.device }).keep();
  }

  /** This part's placement within the whole tensor, for optimizers that save state placement-free. */
  get part(): ParameterPart {
    return { fullShape: this.fullShape, offset: this.offset };
  }

  /** The accumulated gradient (zeros after zeroGrad()). */
  get grad(): Tensor {
    if (this.gradIsZero) {
      fill(this.gradTensor, 0);
      this.gradIsZero = false;
    }
    return this.gradTensor;
  }

  /**
   * For backward passes: the gradient tensor and whether to add to it (false right after zeroGrad(),
   * when writing is enough).
   */
  gradForWrite(): { grad: Tensor; accumulate: boolean } {
    const accumulate = !this.gradIsZero;
    this.gradIsZero = false;
    return { grad: this.gradTensor, accumulate };
  }

  zeroGrad(): void {
    this.gradIsZero = true;
  }

  dispose(): void {
    this.value.dispose();
    this.gradTensor.dispose();
  }
}

/**
 * Gradient targets of a weight and an optional bias that one backend call writes together
 * (conv2dBackwardFilter, or a GEMM plus biasGrad): both must agree on accumulate.
 */
export function gradPair(weight: Parameter, bias: Parameter | null): { dw: Tensor; db: Tensor | null; accumulate: boolean } {
  const w = weight.gradForWrite();
  if (!bias) return { dw: w.grad, db: null, accumulate: w.accumulate };
  const b = bias.gradForWrite();
  if (w.accumulate === b.accumulate) return { dw: w.grad, db: b.grad, accumulate: w.accumulate };
  // One was zeroed on its own: materialise the zero and add to both.
  if (!w.accumulate) fill(w.grad, 0);
  if (!b.accumulate) fill(b.grad, 0);
  return { dw: w.grad, db: b.grad, accumulate: true };
}
