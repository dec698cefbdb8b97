/**
 * Learning-rate schedules, driven by the trainer once per epoch (with the validation metric when it
 * measured one). Each returns the learning rate for the next epoch, which the trainer gives to the
 * optimizer (`sgd.lr = schedule.epochEnd(valError)`). State is plain JSON, so a run resumes exactly.
 */

export interface LrSchedule {
  readonly kind: string;
  /** The learning rate in effect now. */
  readonly lr: number;
  /** Epochs ended so far. */
  readonly epoch: number;
  /** Ends an epoch (metric: the validation metric, if measured) and returns the next epoch's lr. */
  epochEnd(metric?: number): number;
  state(): ScheduleState;
  loadState(s: ScheduleState): void;
}

export type ScheduleState = { kind: string; lr: number; epoch: number } & Record<string, unknown>;

function num(name: string, v: unknown, min: number, max = Infinity): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) {
    throw new RangeError(`Expected a number in [${min}, ${max}] for ${name} but received ${String(v)} of type ${typeof v}`);
  }
  return v;
}

function checkKind(s: ScheduleState, kind: string): void {
  if (s?.kind !== kind) throw new TypeError(`Expected a '${kind}' schedule state but received ${JSON.stringify(s)?.slice(0, 80)}`);
}

/** A schedule that ignores the metric: its lr is a function of the epochs ended. */
abstract class EpochSchedule implements LrSchedule {
  abstract readonly kind: string;
  abstract readonly lr: number;
  epoch = 0;
  /** The metric is ignored. */
  epochEnd(_metric?: number): number {
    this.epoch++;
    return this.lr;
  }
  state(): ScheduleState {
    return { kind: this.kind, lr: this.lr, epoch: this.epoch };
  }
  loadState(s: ScheduleState): void {
    checkKind(s, this.kind);
    this.epoch = s.epoch;
    this.restore(s);
  }
  protected restore(_s: ScheduleState): void {}
}

/** The same learning rate throughout. */
export class ConstantLR extends EpochSchedule {
  readonly kind = 'constant';
  lr: number;
  constructor(o: { lr?: number } = {}) {
    super();
    this.lr = num('lr', o.lr ?? 0.01, 0);
  }
  protected override restore(s: ScheduleState): void {
    this.lr = s.lr;
  }
}

/** lr = base * gamma^floor(epoch / stepSize): a fixed reduction every stepSize epochs. */
export class StepLR extends EpochSchedule {
  readonly kind = 'step';
  readonly base: number;
  readonly stepSize: number;
  readonly gamma: number;
  constructor(o: { lr?: number; stepSize: number; gamma?: number }) {
    super();
    this.base = num('lr', o.lr ?? 0.01, 0);
    this.stepSize = num('stepSize', o?.stepSize, 1);
    if (!Number.isInteger(this.stepSize)) throw new RangeError(`Expected an integer for stepSize but received ${this.stepSize}`);
    this.gamma = num('gamma', o.gamma ?? 0.1, 0);
  }
  get lr(): number {
    return this.base * this.gamma ** Math.floor(this.epoch / this.stepSize);
  }
}

export interface PlateauOptions {
  /** Starting learning rate (§5: 0.01). */
  lr?: number;
  /** Multiplier at each reduction (§5: divide by 10). */
  factor?: number;
  /**
   * Evaluations without improvement tolerated before reducing: the lr drops at the
   * (patience + 1)-th consecutive one. The paper gives no number; default 1.
   */
  patience?: number;
  /** How much better counts as an improvement (default 1e-4). */
  threshold?: number;
  /** 'rel': better than best * (1 -/+ threshold); 'abs': better than best -/+ threshold. */
  thresholdMode?: 'rel' | 'abs';
  /** 'min' for an error (the paper's), 'max' for an accuracy. */
  mode?: 'min' | 'max';
  /** Most reductions (§5: "reduced three times"). */
  maxReductions?: number;
  /** Evaluations to wait after a reduction before counting again (default 0). */
  cooldown?: number;
}

/**
 * The paper's schedule (§5): "divide the learning rate by 10 when the validation error rate stopped
 * improving with the current learning rate", at most maxReductions times.
 */
export class PlateauLR implements LrSchedule {
  readonly kind = 'plateau';
  lr: number;
  epoch = 0;
  readonly factor: number;
  readonly patience: number;
  readonly threshold: number;
  readonly thresholdMode: 'rel' | 'abs';
  readonly mode: 'min' | 'max';
  readonly maxReductions: number;
  readonly cooldown: number;
  best: number | null = null;
  badEvaluations = 0;
  reductions = 0;
  private cooldownLeft = 0;
  /** Epochs (1-based, counted at epochEnd) at which the lr was reduced, and the new lr. */
  readonly history: { epoch: number; lr: number }[] = [];

  constructor(o: PlateauOptions = {}) {
    this.lr = num('lr', o.lr ?? 0.01, 0);
    this.factor = num('factor', o.factor ?? 0.1, 0, 1);
    this.patience = num('patience', o.patience ?? 1, 0);
    this.threshold = num('threshold', o.threshold ?? 1e-4, 0);
    this.thresholdMode = o.thresholdMode ?? 'rel';
    if (this.thresholdMode !== 'rel' && this.thresholdMode !== 'abs') throw new TypeError(`Expected thresholdMode 'rel' or 'abs' but received ${String(this.thresholdMode)}`);
    this.mode = o.mode ?? 'min';
    if (this.mode !== 'min' && this.mode !== 'max') throw new TypeError(`Expected mode 'min' or 'max' but received ${String(this.mode)}`);
    this.maxReductions = num('maxReductions', o.maxReductions ?? 3, 0);
    this.cooldown = num('cooldown', o.cooldown ?? 0, 0);
  }

  private improves(metric: number, best: number): boolean {
    const t = this.threshold;
    if (this.mode === 'min') return this.thresholdMode === 'rel' ? metric < best * (1 - t) : metric < best - t;
    return this.thresholdMode === 'rel' ? metric > best * (1 + t) : metric > best + t;
  }

  epochEnd(metric?: number): number {
    this.epoch++;
    if (metric === undefined) return this.lr; // no validation this epoch
    num('metric', metric, -Infinity);
    if (this.best === null || this.improves(metric, this.best)) {
      this.best = metric;
      this.badEvaluations = 0;
    } else if (this.cooldownLeft > 0) {
      this.cooldownLeft--;
    } else {
      this.badEvaluations++;
    }
    if (this.badEvaluations > this.patience && this.reductions < this.maxReductions) {
      this.lr *= this.factor;
      this.reductions++;
      this.badEvaluations = 0;
      this.cooldownLeft = this.cooldown;
      this.history.push({ epoch: this.epoch, lr: this.lr });
    }
    return this.lr;
  }

  state(): ScheduleState {
    return {
      kind: this.kind, lr: this.lr, epoch: this.epoch, best: this.best, badEvaluations: this.badEvaluations,
      reductions: this.reductions, cooldownLeft: this.cooldownLeft, history: this.history,
    };
  }

  loadState(s: ScheduleState): void {
    checkKind(s, this.kind);
    this.lr = s.lr;
    this.epoch = s.epoch;
    this.best = s.best as number | null;
    this.badEvaluations = s.badEvaluations as number;
    this.reductions = s.reductions as number;
    this.cooldownLeft = (s.cooldownLeft as number) ?? 0;
    this.history.splice(0, this.history.length, ...((s.history as { epoch: number; lr: number }[]) ?? []));
  }
}
