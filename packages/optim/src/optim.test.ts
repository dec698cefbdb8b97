// SGD against hand-computed steps (paper form and PyTorch form, with a learning-rate change mid-run
// where they differ), per-group multipliers, the schedules on scripted metric sequences, and the
// checkpoint state resuming bit for bit. float64 on the reference backend; tolerance 1e-12 absolute.
import { describe, expect, it } from 'vitest';
import { copyInto, memory, tensor, zeros, type Tensor } from '@alexnet/tensor';
import {
  CAFFE_BIAS_RULE, ConstantLR, loadVelocityStateDict, PlateauLR, SGD, StepLR, velocityStateDict, type OptimParameter,
} from './index.js';

const DEV = 'reference:0';

/** A parameter as @alexnet/layers makes them (structurally). */
function param(name: string, values: number[], device = DEV, part?: { fullShape: number[]; offset: number }): OptimParameter & { setGrad(g: number[]): void } {
  const value = tensor(new Float64Array(values), [values.length], { device, dtype: 'float64' });
  const grad = zeros([values.length], { device, dtype: 'float64' });
  return {
    name, value, grad, fullShape: part?.fullShape, offset: part?.offset,
    setGrad(g: number[]) {
      const t = tensor(new Float64Array(g), [g.length], { device, dtype: 'float64' });
      copyInto(t, grad);
      t.dispose();
    },
  };
}

function read(t: Tensor): number[] {
  return [...t.dataSync()];
}

describe('SGD (§5)', () => {
  it('paper form: hand-computed steps, including a learning-rate change mid-run', () => {
    // m = 0.9, wd = 0.1 (large, so its term shows), w0 = 1.
    // step 1, lr 0.1,  g 1:   v = -0.1*0.1*1 - 0.1*1                       = -0.11;       w = 0.89
    // step 2, lr 0.1,  g 0.5: v = 0.9(-0.11) - 0.1*0.1*0.89 - 0.1*0.5      = -0.1579;     w = 0.7321
    // step 3, lr 0.01, g 0.5: v = 0.9(-0.1579) - 0.1*0.01*0.7321 - 0.01*0.5 = -0.1478421; w = 0.5842579
    const p = param('w', [1]);
    const sgd = new SGD([p], { lr: 0.1, momentum: 0.9, weightDecay: 0.1 });
    const ws: number[] = [], vs: number[] = [];
    for (const [lr, g] of [[0.1, 1], [0.1, 0.5], [0.01, 0.5]] as const) {
      sgd.lr = lr;
      p.setGrad([g]);
      sgd.step();
      ws.push(read(p.value)[0]!);
      vs.push(read(sgd.velocityOf(0))[0]!);
    }
    [0.89, 0.7321, 0.5842579].forEach((w, i) => expect(ws[i]).toBeCloseTo(w, 12));
    [-0.11, -0.1579, -0.1478421].forEach((v, i) => expect(vs[i]).toBeCloseTo(v, 12));
    expect(sgd.steps).toBe(3);
  });

  it('PyTorch form: the same first two steps (constant lr), a different third after the lr change', () => {
    // step 1, lr 0.1:  v = 1 + 0.1*1                = 1.1;     w = 1 - 0.1*1.1         = 0.89
    // step 2, lr 0.1:  v = 0.9*1.1 + 0.5 + 0.1*0.89 = 1.579;   w = 0.89 - 0.1*1.579    = 0.7321
    // step 3, lr 0.01: v = 0.9*1.579 + 0.5 + 0.1*0.7321 = 1.99431; w = 0.7321 - 0.01*1.99431 = 0.7121569
    const p = param('w', [1]);
    const sgd = new SGD([p], { lr: 0.1, momentum: 0.9, weightDecay: 0.1, form: 'pytorch' });
    const ws: number[] = [];
    for (const [lr, g] of [[0.1, 1], [0.1, 0.5], [0.01, 0.5]] as const) {
      sgd.lr = lr;
      p.setGrad([g]);
      sgd.step();
      ws.push(read(p.value)[0]!);
    }
    [0.89, 0.7321, 0.7121569].forEach((w, i) => expect(ws[i]).toBeCloseTo(w, 12));
    expect(ws[2]).not.toBeCloseTo(0.5842579, 3); // the paper's rule differs once lr changes
  });

  it("per-group multipliers: Caffe's bias lr_mult 2 / decay_mult 0", () => {
    const w = param('fc6.weight', [1, -2]), b = param('fc6.bias', [1]);
    const sgd = new SGD([w, b], { lr: 0.1, momentum: 0.9, weightDecay: 0.5, groups: [CAFFE_BIAS_RULE] });
    expect(sgd.multipliers()).toEqual([{ name: 'fc6.weight', lrMult: 1, decayMult: 1 }, { name: 'fc6.bias', lrMult: 2, decayMult: 0 }]);
    w.setGrad([1, 1]);
    b.setGrad([1]);
    sgd.step();
    // weight: v = -0.5*0.1*w - 0.1*1 -> [-0.15, 0]; w -> [0.85, -2]
    expect(read(w.value)[0]).toBeCloseTo(0.85, 12);
    expect(read(w.value)[1]).toBeCloseTo(-2, 12);
    // bias: lr 0.2, no decay: v = -0.2; b -> 0.8
    expect(read(b.value)[0]).toBeCloseTo(0.8, 12);
  });

  it('updates parameters on their own devices (the two towers each keep their optimizer state)', () => {
    const a = param('fc8.weight', [1, 1], 'reference:1', { fullShape: [4], offset: 0 });
    const c = param('fc8.weight', [1, 1], 'reference:2', { fullShape: [4], offset: 2 });
    const sgd = new SGD([a, c], { lr: 0.1, weightDecay: 0 });
    a.setGrad([1, 2]);
    c.setGrad([3, 4]);
    sgd.step();
    expect(sgd.velocityOf(1).device.name).toBe('reference:2');
    expect(read(a.value).map((v) => +v.toFixed(12))).toEqual([0.9, 0.8]);
    expect(read(c.value).map((v) => +v.toFixed(12))).toEqual([0.7, 0.6]);
  });

  it('validates its options with sentences', () => {
    const p = param('w', [1]);
    expect(() => new SGD([p], { lr: -1 })).toThrow(/lr/);
    expect(() => new SGD([], {})).toThrow(/at least one parameter/);
    expect(() => new SGD([p], { form: 'adam' as 'paper' })).toThrow(/form 'paper' or 'pytorch'/);
  });
});

describe('schedules', () => {
  it("the paper's plateau schedule on a scripted validation-error sequence", () => {
    // patience 1: the lr drops at the second consecutive evaluation without improvement; at most 3 times.
    const s = new PlateauLR({ lr: 0.01, patience: 1, threshold: 0.01, maxReductions: 3 });
    const errors = [0.9, 0.8, 0.7, 0.699, 0.698, 0.6, 0.61, 0.62, 0.5, 0.5, 0.5, 0.45, 0.46, 0.47, 0.48, 0.49];
    const lrs = errors.map((e) => s.epochEnd(e));
    // 0.699 and 0.698 are within 1 % of 0.7: not improvements -> reduce at epoch 5.
    // 0.61, 0.62 after 0.6 -> reduce at epoch 8. 0.5, 0.5 after 0.5 -> reduce at epoch 11.
    // 0.46 ... 0.49 after 0.45: no more, three reductions already.
    expect(lrs.map((v) => +v.toPrecision(6))).toEqual([
      0.01, 0.01, 0.01, 0.01, 0.001, 0.001, 0.001, 0.0001, 0.0001, 0.0001, 0.00001, 0.00001, 0.00001, 0.00001, 0.00001, 0.00001]);
    expect(s.history.map((h) => h.epoch)).toEqual([5, 8, 11]);
    expect(s.reductions).toBe(3);
  });

  it('plateau: patience 0, absolute threshold, accuracy mode, epochs without a metric', () => {
    const s = new PlateauLR({ lr: 1, patience: 0, threshold: 0.05, thresholdMode: 'abs', mode: 'max', maxReductions: 5 });
    expect([0.5, 0.6, 0.62, undefined, 0.7, 0.7].map((a) => s.epochEnd(a))).toEqual([1, 1, 0.1, 0.1, 0.1, 0.010000000000000002]);
  });

  it('step and constant schedules', () => {
    const st = new StepLR({ lr: 0.01, stepSize: 2, gamma: 0.1 });
    expect([1, 2, 3, 4, 5].map(() => +st.epochEnd().toPrecision(6))).toEqual([0.01, 0.001, 0.001, 0.0001, 0.0001]);
    const c = new ConstantLR({ lr: 0.5 });
    expect([c.epochEnd(), c.epochEnd(0.1)]).toEqual([0.5, 0.5]);
  });
});

describe('state for checkpoints', () => {
  it('velocities, optimizer and schedule state restore so that training resumes exactly', () => {
    const grads = [[1, -1, 0.5], [0.2, 0.3, -0.4], [0.7, 0.1, 0.1], [-0.3, 0.9, 0.2]];
    const run = (p: ReturnType<typeof param>, sgd: SGD, sched: PlateauLR, from: number, to: number) => {
      for (let i = from; i < to; i++) {
        p.setGrad(grads[i]!);
        sgd.step();
        sgd.lr = sched.epochEnd([0.5, 0.5, 0.5, 0.4][i]);
      }
    };
    const p1 = param('w', [1, 2, 3]);
    const sgd1 = new SGD([p1], { lr: 0.1, weightDecay: 0.01 });
    const s1 = new PlateauLR({ lr: 0.1, patience: 0 });
    run(p1, sgd1, s1, 0, 2);
    // What a checkpoint keeps: the velocities as tensors, the two states as JSON.
    const velocities = new Map(Object.entries(velocityStateDict(sgd1)));
    const saved = JSON.parse(JSON.stringify({ optimizer: sgd1.state(), schedule: s1.state() }));
    const savedW = read(p1.value);
    run(p1, sgd1, s1, 2, 4);

    const p2 = param('w', savedW);
    const sgd2 = new SGD([p2], { lr: 123, weightDecay: 0.01 });
    const s2 = new PlateauLR({ lr: 123, patience: 0 });
    loadVelocityStateDict(sgd2, velocities);
    sgd2.loadState(saved.optimizer);
    s2.loadState(saved.schedule);
    expect(sgd2.lr).toBeCloseTo(0.01, 15); // reduced once by epoch 2 (0.5 did not improve on 0.5)
    expect(sgd2.steps).toBe(2);
    run(p2, sgd2, s2, 2, 4);
    expect(read(p2.value)).toEqual(read(p1.value)); // bit for bit
    expect(read(sgd2.velocityOf(0))).toEqual(read(sgd1.velocityOf(0)));
    expect(s2.state()).toEqual(s1.state());
    expect(saved.optimizer.form).toBe('paper');

    // A two-part parameter (two towers) saves one whole velocity, loadable into a one-part one.
    const a = param('fc.weight', [1, 1], 'reference:1', { fullShape: [4], offset: 0 });
    const b = param('fc.weight', [1, 1], 'reference:2', { fullShape: [4], offset: 2 });
    const two = new SGD([a, b], { lr: 0.1 });
    a.setGrad([1, 2]); b.setGrad([3, 4]);
    two.step();
    const twoVel = new Map(Object.entries(velocityStateDict(two)));
    expect(twoVel.get('fc.weight')!.shape).toEqual([4]);
    const whole = param('fc.weight', [1, 1, 1, 1]);
    const one = new SGD([whole], { lr: 0.1 });
    loadVelocityStateDict(one, twoVel);
    one.loadState(two.state());
    expect(read(one.velocityOf(0))).toEqual([...read(two.velocityOf(0)), ...read(two.velocityOf(1))]);
    // Mismatched forms, missing and mis-shaped velocities are refused.
    const other = new SGD([param('fc.weight', [1, 1, 1, 1])], { lr: 0.1, form: 'pytorch' });
    expect(() => other.loadState(two.state())).toThrow(/form 'paper'/);
    expect(() => loadVelocityStateDict(other, new Map(), 'ck.safetensors')).toThrow(/ck\.safetensors has no velocity for "fc\.weight"/);
    expect(() => loadVelocityStateDict(other, new Map([['fc.weight', { dtype: 'float32', shape: [3], data: new Float32Array(3) }]]), 'ck'))
      .toThrow(/the velocity of "fc\.weight" has shape \[3\] but the parameter is \[4\]/);
    for (const o of [sgd1, sgd2, two, one, other]) o.dispose();
  });

  it('dispose frees the velocities', () => {
    const p = param('w', [1, 2]);
    const before = memory().tensors;
    const sgd = new SGD([p]);
    expect(memory().tensors).toBe(before + 1);
    sgd.dispose();
    expect(memory().tensors).toBe(before);
  });
});
