/**
 * Stochastic gradient descent with momentum and weight decay (§5).
 *
 * form 'paper' (default), the paper's exact rule:
 *   v <- m v - wd lr w - lr g;   w <- w + v
 * form 'pytorch' (torch.optim.SGD; Caffe's rule is the same up to where lr is applied):
 *   v <- m v + g + wd w;         w <- w - lr v
 * With a constant lr the two give the same weights; when lr changes they do not: the paper's v
 * carries the old lr's steps, PyTorch's v is rescaled by the new lr at once.
 *
 * Each parameter is updated on its own device by the fused backend op (one pass over w, g, v); the
 * velocity lives next to the parameter, so each tower of a two-tower model keeps its own optimizer
 * state (§3.2). Nothing is read back to the host.
 */
import { sgdUpdate, zeros, type SgdForm, type Shape, type Tensor } from '@alexnet/tensor';

/**
 * What the optimizer needs of a parameter (the Parameter of @alexnet/layers has all of it).
 * A parameter may be one part of a whole tensor split across devices (fullShape, offset): the
 * optimizer's saved state is then assembled into whole tensors, the same for every placement.
 */
export interface OptimParameter {
  readonly name: string;
  readonly value: Tensor;
  readonly grad: Tensor;
  readonly fullShape?: Shape;
  readonly offset?: number;
  /** Multipliers carried by the parameter itself (used when no group rule matches). */
  readonly lrMult?: number;
  readonly decayMult?: number;
}

/** Per-parameter-group multipliers of the learning rate and the weight decay (Caffe's lr_mult / decay_mult). */
export interface ParamGroupRule {
  /** The parameters it applies to: a RegExp tested on the name, or a predicate. First match wins. */
  match: RegExp | ((p: OptimParameter) => boolean);
  lrMult?: number;
  decayMult?: number;
}

/** Caffe's common recipe: biases learn twice as fast and are not decayed. */
export const CAFFE_BIAS_RULE: ParamGroupRule = { match: /\.bias$/, lrMult: 2, decayMult: 0 };

export interface SGDOptions {
  /** Learning rate (§5: 0.01 at the start). */
  lr?: number;
  /** §5: 0.9. */
  momentum?: number;
  /** §5: 0.0005. */
  weightDecay?: number;
  form?: SgdForm;
  groups?: ParamGroupRule[];
}

function checkNumber(name: string, v: unknown, min = -Infinity): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min) {
    throw new RangeError(`Expected a finite number${min > -Infinity ? ` >= ${min}` : ''} for ${name} but received ${String(v)} of type ${typeof v}`);
  }
  return v;
}

/** The JSON part of the optimizer's state. */
export interface SGDState {
  kind: 'sgd';
  form: SgdForm;
  lr: number;
  momentum: number;
  weightDecay: number;
  steps: number;
}

export class SGD {
  /** The base learning rate; a schedule sets it between steps. */
  lr: number;
  readonly momentum: number;
  readonly weightDecay: number;
  readonly form: SgdForm;
  readonly params: readonly OptimParameter[];
  /** Updates taken so far. */
  steps = 0;
  private readonly velocity: Tensor[];
  private readonly mults: { lr: number; decay: number }[];

  constructor(params: Iterable<OptimParameter>, opts: SGDOptions = {}) {
    this.params = [...params];
    if (this.params.length === 0) throw new RangeError('SGD: expected at least one parameter');
    this.lr = checkNumber('lr', opts.lr ?? 0.01, 0);
    this.momentum = checkNumber('momentum', opts.momentum ?? 0.9, 0);
    this.weightDecay = checkNumber('weightDecay', opts.weightDecay ?? 0.0005, 0);
    this.form = opts.form ?? 'paper';
    if (this.form !== 'paper' && this.form !== 'pytorch') throw new TypeError(`Expected form 'paper' or 'pytorch' but received ${String(this.form)}`);
    const rules = opts.groups ?? [];
    this.mults = this.params.map((p) => {
      const rule = rules.find((r) => (r.match instanceof RegExp ? r.match.test(p.name) : r.match(p)));
      return {
        lr: checkNumber(`the lrMult of ${p.name}`, rule?.lrMult ?? p.lrMult ?? 1, 0),
        decay: checkNumber(`the decayMult of ${p.name}`, rule?.decayMult ?? p.decayMult ?? 1, 0),
      };
    });
    this.velocity = this.params.map((p) => zeros(p.value.shape, { dtype: p.value.dtype, device: p.value.device }).keep());
  }

  /** The multipliers in effect for each parameter, by index. */
  multipliers(): readonly { name: string; lrMult: number; decayMult: number }[] {
    return this.params.map((p, i) => ({ name: p.name, lrMult: this.mults[i]!.lr, decayMult: this.mults[i]!.decay }));
  }

  /** One update of every parameter from its accumulated gradient, each on its own device. */
  step(): void {
    checkNumber('lr', this.lr, 0);
    for (let i = 0; i < this.params.length; i++) {
      const p = this.params[i]!, m = this.mults[i]!;
      sgdUpdate(p.value, p.grad, this.velocity[i]!, {
        lr: this.lr * m.lr, momentum: this.momentum, weightDecay: this.weightDecay * m.decay, form: this.form,
      });
    }
    this.steps++;
  }

  /** The velocity of parameter i (on its device). */
  velocityOf(i: number): Tensor {
    return this.velocity[i]!;
  }

  state(): SGDState {
    return { kind: 'sgd', form: this.form, lr: this.lr, momentum: this.momentum, weightDecay: this.weightDecay, steps: this.steps };
  }

  /** Restores the JSON state (lr, step count); momentum, decay and form must match the saved run. */
  loadState(s: SGDState): void {
    if (s?.kind !== 'sgd') throw new TypeError(`Expected an SGD state but received ${JSON.stringify(s)?.slice(0, 80)}`);
    if (s.form !== this.form) throw new Error(`The saved optimizer used form '${s.form}' but this one uses '${this.form}'; their velocities differ in meaning`);
    if (s.momentum !== this.momentum || s.weightDecay !== this.weightDecay) {
      throw new Error(`The saved optimizer had momentum ${s.momentum}, weight decay ${s.weightDecay}; this one has ${this.momentum}, ${this.weightDecay}`);
    }
    this.lr = checkNumber('lr', s.lr, 0);
    this.steps = s.steps;
  }

  dispose(): void {
    for (const v of this.velocity) v.dispose();
  }
}
