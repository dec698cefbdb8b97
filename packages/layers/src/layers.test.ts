// Finite-difference gradient checks of every layer, in float64 on the reference backend: for
// y = layer(x) and L = sum(r * y) with a random r, backward(r) must give dL/dx and dL/dparams.
// Central differences with h = 1e-6; tolerance: norm-wise relative error (max |diff| / max |ref|)
// below 1e-6 over the checked entries. Plus hand-worked forward values for LRN and pooling.
import { describe, expect, it } from 'vitest';
import { copyInto, memory, tensor, type Tensor } from '@alexnet/tensor';
import {
  AdaptiveAvgPool2d, cifarDescription, Conv2d, createModel, Dropout, Flatten, Layer, Linear, LocalResponseNorm, MaxPool2d, ReLU,
  Sequential, SoftmaxCrossEntropy, Tanh, type ForwardContext, type ModelDescription, type Network, type Parameter,
} from './index.js';
import { relativeError } from '@alexnet/tensor/conformance';

const DEV = 'reference:0';
const H = 1e-6;
const TOL = 1e-6;

class Rng {
  private s: number;
  constructor(seed: number) { this.s = seed >>> 0 || 1; }
  next(): number {
    let x = this.s;
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    this.s = x;
    return x / 4294967296;
  }
  floats(n: number, scale = 1): Float64Array {
    return Float64Array.from({ length: n }, () => (this.next() * 2 - 1) * scale);
  }
}

/** Relative error: max |a - b| / max |b| (the conformance suite's measure). */
const relErr = (a: ArrayLike<number>, b: ArrayLike<number>): number => relativeError(a, b).error;

function f64(data: Float64Array, shape: number[]): Tensor {
  return tensor(data, shape, { device: DEV, dtype: 'float64' });
}

function setHost(t: Tensor, data: Float64Array): void {
  const tmp = f64(data, [...t.shape]);
  copyInto(tmp, t);
  tmp.dispose();
}

function sampleIdx(n: number, samples = 40): number[] {
  return n <= samples ? [...Array(n).keys()] : Array.from({ length: samples }, (_, i) => Math.floor(((i + 0.5) * n) / samples));
}

/** Checks dx and every parameter gradient of `layer` at input x by central differences. */
/** The scalar loss sum(forward(x) * r) of a layer or net, releasing what forward kept. */
function projected(m: { forward(x: Tensor, ctx?: ForwardContext): Tensor; releaseCache(): void }, x: Tensor, ctx: ForwardContext, r: ArrayLike<number>): number {
  const y = m.forward(x, ctx);
  const v = y.dataSync();
  y.dispose();
  m.releaseCache();
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i]! * r[i]!;
  return s;
}

function gradcheck(layer: Layer, xShape: number[], opts: { scale?: number; seed?: number; inputGrad?: boolean; step?: number } = {}): void {
  const rng = new Rng(opts.seed ?? 11);
  const xh = rng.floats(xShape.reduce((a, b) => a * b, 1), opts.scale ?? 1);
  const ctx = { training: true, step: opts.step ?? 3 };
  const x = f64(xh, xShape);
  const y0 = layer.forward(x, ctx);
  const r = rng.floats(y0.size);
  const rT = f64(r, [...y0.shape]);
  y0.dispose();
  layer.zeroGrad();
  const dx = layer.backward(rT);
  const loss = (xt: Tensor): number => projected(layer, xt, ctx, r);
  if (opts.inputGrad !== false) {
    expect(dx, 'dx').not.toBeNull();
    const ana = dx!.dataSync();
    const num: number[] = [], an: number[] = [];
    for (const i of sampleIdx(xh.length)) {
      const v = xh[i]!;
      xh[i] = v + H; setHost(x, xh); const lp = loss(x);
      xh[i] = v - H; setHost(x, xh); const lm = loss(x);
      xh[i] = v; setHost(x, xh);
      num.push((lp - lm) / (2 * H));
      an.push(ana[i]!);
    }
    expect(relErr(an, num), `${layer.constructor.name} dx`).toBeLessThan(TOL);
  }
  dx?.dispose();
  for (const p of layer.parameters()) {
    const wh = Float64Array.from(p.value.dataSync());
    const ana = p.grad.dataSync();
    const num: number[] = [], an: number[] = [];
    for (const i of sampleIdx(wh.length)) {
      const v = wh[i]!;
      wh[i] = v + H; setHost(p.value, wh); const lp = loss(x);
      wh[i] = v - H; setHost(p.value, wh); const lm = loss(x);
      wh[i] = v; setHost(p.value, wh);
      num.push((lp - lm) / (2 * H));
      an.push(ana[i]!);
    }
    expect(relErr(an, num), `${layer.constructor.name} d${p.name}`).toBeLessThan(TOL);
  }
  x.dispose();
}

const p64 = { device: DEV, dtype: 'float64' as const, weightStd: 0.3 };

/**
 * Central differences of the loss at `per` sampled entries of every parameter against the gradient
 * backward left in p.grad (call after net.backward), each parameter within TOL.
 */
function checkParameterGradients(net: Network, lossOf: () => number, per: number, label: (p: Parameter) => string): void {
  for (const p of net.parameters()) {
    const wh = Float64Array.from(p.value.dataSync());
    const ana = p.grad.dataSync();
    const num: number[] = [], an: number[] = [];
    for (const i of sampleIdx(wh.length, per)) {
      const v = wh[i]!;
      wh[i] = v + H; setHost(p.value, wh); const lp = lossOf();
      wh[i] = v - H; setHost(p.value, wh); const lm = lossOf();
      wh[i] = v; setHost(p.value, wh);
      num.push((lp - lm) / (2 * H));
      an.push(ana[i]!);
    }
    expect(relErr(an, num), label(p)).toBeLessThan(TOL);
  }
}

describe('finite-difference gradient checks (float64, reference backend)', () => {
  it('Conv2d: groups 2, stride 2, padding 1, bias', () => {
    gradcheck(new Conv2d({ ...p64, name: 'c', inChannels: 4, outChannels: 6, kernel: 3, stride: 2, padding: 1, groups: 2, biasInit: 0.1 }), [2, 4, 7, 6]);
  });
  it('Conv2d: 5x5 kernel, padding 2, no groups (conv2-like); without bias', () => {
    gradcheck(new Conv2d({ ...p64, name: 'c', inChannels: 3, outChannels: 2, kernel: 5, padding: 2 }), [1, 3, 6, 6]);
    gradcheck(new Conv2d({ ...p64, name: 'c', inChannels: 2, outChannels: 3, kernel: [3, 2], stride: [2, 1], bias: false }), [2, 2, 7, 5]);
  });
  it('Conv2d with inputGrad false computes only parameter gradients', () => {
    gradcheck(new Conv2d({ ...p64, name: 'c', inChannels: 3, outChannels: 4, kernel: 11, stride: 4, inputGrad: false }), [1, 3, 19, 19], { inputGrad: false });
  });
  it('Linear', () => {
    gradcheck(new Linear({ ...p64, name: 'fc', inFeatures: 7, outFeatures: 5, biasInit: 1 }), [3, 7]);
  });
  it('ReLU (in place and not)', () => {
    gradcheck(new ReLU(), [2, 3, 4, 4]);
    gradcheck(new ReLU({ inPlace: true }), [2, 3, 4, 4]);
  });
  it('Tanh (§3.1, Figure 1; in place and not, near 0 and saturating)', () => {
    gradcheck(new Tanh(), [2, 3, 4, 4]);
    gradcheck(new Tanh({ inPlace: true }), [2, 3, 4, 4]);
    gradcheck(new Tanh({ name: 't' }), [3, 7], { scale: 4, seed: 5 });
    const t = new Tanh({ name: 'tanh1', inPlace: true });
    const x = f64(Float64Array.of(-1, 0, 2), [3]);
    const y = t.forward(x);
    expect(y).not.toBe(x); // in place, but the caller gets its own handle
    expect(Array.from(y.dataSync())).toEqual([Math.tanh(-1), 0, Math.tanh(2)]);
    expect(() => t.backward(f64(Float64Array.of(1, 1, 1), [3]))).toThrow(/Tanh tanh1: backward called without a training forward/);
    x.dispose(); y.dispose();
  });
  it('Sequential of conv, tanh in place (safe: conv keeps its input), pool, flatten, linear', () => {
    const seq = new Sequential([
      new Conv2d({ ...p64, name: 'c1', inChannels: 2, outChannels: 3, kernel: 3, stride: 1, padding: 1, biasInit: 0.1 }),
      new Tanh({ inPlace: true }),
      new MaxPool2d({ size: 3, stride: 2 }),
      new Flatten(),
      new Linear({ ...p64, name: 'fc', inFeatures: 3 * 2 * 2, outFeatures: 3 }),
      new Tanh(),
    ]);
    gradcheck(seq, [2, 2, 5, 5], { scale: 2 });
  });
  it('LocalResponseNorm: paper convention, PyTorch convention, per-tower groups', () => {
    gradcheck(new LocalResponseNorm({ size: 5, alpha: 1e-2, beta: 0.75, k: 2 }), [2, 7, 3, 3], { scale: 5 });
    gradcheck(new LocalResponseNorm({ size: 3, alpha: 0.2, beta: 0.6, k: 1, convention: 'pytorch' }), [2, 6, 2, 3], { scale: 3 });
    gradcheck(new LocalResponseNorm({ size: 5, alpha: 0.05, beta: 0.75, k: 2, groups: 2 }), [1, 8, 3, 3], { scale: 3 });
  });
  it('MaxPool2d: overlapping 3/2, 2/2, and padded', () => {
    gradcheck(new MaxPool2d({ size: 3, stride: 2 }), [2, 3, 7, 7]);
    gradcheck(new MaxPool2d({ size: 2 }), [1, 2, 6, 4]);
    gradcheck(new MaxPool2d({ size: 3, stride: 2, padding: 1 }), [1, 2, 5, 5]);
  });
  it('Dropout (training mode, mask regenerated in backward; groups 2)', () => {
    gradcheck(new Dropout({ p: 0.5, seed: 9, name: 'd' }), [4, 10]);
    gradcheck(new Dropout({ p: 0.3, seed: 9, name: 'd', groups: 2 }), [3, 8]);
  });
  it('Flatten', () => {
    gradcheck(new Flatten(), [2, 3, 2, 2]);
  });
  it('AdaptiveAvgPool2d: 5x5 -> 3x3 (overlapping windows), 2x2 -> 3x3, and the identity', () => {
    gradcheck(new AdaptiveAvgPool2d({ outputSize: 3 }), [2, 2, 5, 5]);
    gradcheck(new AdaptiveAvgPool2d({ outputSize: 3 }), [1, 2, 2, 2]);
    gradcheck(new AdaptiveAvgPool2d({ outputSize: [2, 3] }), [1, 2, 2, 3]);
  });
  it('Sequential of conv, relu, LRN, pool, flatten, linear', () => {
    const seq = new Sequential([
      new Conv2d({ ...p64, name: 'c1', inChannels: 3, outChannels: 4, kernel: 3, stride: 1, padding: 1, biasInit: 0.1 }),
      new ReLU({ inPlace: true }),
      new LocalResponseNorm({ size: 3, alpha: 0.1 }),
      new MaxPool2d({ size: 3, stride: 2 }),
      new Flatten(),
      new Linear({ ...p64, name: 'fc', inFeatures: 4 * 2 * 2, outFeatures: 3 }),
    ]);
    gradcheck(seq, [2, 3, 5, 5]);
    expect(seq.parameters().map((p) => p.name)).toEqual(['c1.weight', 'c1.bias', 'fc.weight', 'fc.bias']);
  });
  it('SoftmaxCrossEntropy: the gradient of the mean loss', () => {
    const rng = new Rng(5);
    const zh = rng.floats(12, 3), labels = [2, 0, 3];
    const loss = new SoftmaxCrossEntropy();
    const value = (): number => {
      const z = f64(zh, [3, 4]);
      const l = loss.forward(z, labels);
      const v = l.dataSync()[0]!;
      z.dispose(); l.dispose();
      return v;
    };
    const z = f64(zh, [3, 4]);
    const l = loss.forward(z, labels, { training: true });
    const d = loss.backward();
    const ana = d.dataSync();
    const num = [...zh.keys()].map((i) => {
      const v = zh[i]!;
      zh[i] = v + H; const lp = value();
      zh[i] = v - H; const lm = value();
      zh[i] = v;
      return (lp - lm) / (2 * H);
    });
    expect(relErr(ana, num)).toBeLessThan(TOL);
    for (const t of [z, l, d]) t.dispose();
    expect(() => loss.forward(f64(zh, [3, 4]), [0, 4, 1])).toThrow(/labels to be integers in \[0, 4\)/);
  });

  it('a whole two-tower net on two devices (gathers at conv3, fc6, fc8; dropout), checked entry by entry', () => {
    const desc: ModelDescription = {
      name: 'tiny-two-tower', towers: 2, input: { channels: 3, size: 15 },
      layers: [
        { kind: 'conv', name: 'conv1', out: 4, kernel: 3, stride: 2, padding: 0, inputs: 'all', weightStd: 0.3, bias: 0 },
        { kind: 'relu', name: 'relu1' },
        { kind: 'lrn', name: 'norm1', size: 5, alpha: 0.05, beta: 0.75, k: 2, convention: 'paper' },
        { kind: 'maxpool', name: 'pool1', size: 3, stride: 2 },
        { kind: 'conv', name: 'conv2', out: 4, kernel: 3, stride: 1, padding: 1, inputs: 'own', weightStd: 0.3, bias: 0.1 },
        { kind: 'relu', name: 'relu2' },
        { kind: 'conv', name: 'conv3', out: 6, kernel: 3, stride: 1, padding: 1, inputs: 'all', weightStd: 0.3, bias: 0 },
        { kind: 'relu', name: 'relu3' },
        { kind: 'flatten', name: 'flatten' },
        { kind: 'linear', name: 'fc6', out: 8, inputs: 'all', weightStd: 0.3, bias: 0.1 },
        { kind: 'relu', name: 'relu6' },
        { kind: 'dropout', name: 'drop6', p: 0.5 },
        { kind: 'linear', name: 'fc8', out: 4, inputs: 'all', weightStd: 0.3, bias: 0 },
      ],
    };
    for (const devices of [['reference:1', 'reference:2'], ['reference:0']]) {
      const net = createModel(desc, { devices, dtype: 'float64', seed: 4 });
      const rng = new Rng(8);
      const x = f64(rng.floats(2 * 3 * 15 * 15, 2), [2, 3, 15, 15]);
      const r = rng.floats(2 * 4);
      const lossOf = (): number => projected(net, x, { training: true, step: 1 }, r);
      const y = net.forward(x, { training: true, step: 1 });
      y.dispose();
      net.zeroGrad();
      const rT = f64(r, [2, 4]);
      net.backward(rT);
      rT.dispose();
      checkParameterGradients(net, lossOf, 6, (p) => `${devices.length} device(s): d${p.name}@${p.value.device.name}`);
      x.dispose();
      net.dispose();
    }
  });
});

describe('the cifar-4layer net with tanh (§3.1, Figure 1), built from its description', () => {
  it('has tanh layers in place after each conv, and its gradients are checked entry by entry', () => {
    const net = createModel(cifarDescription({ activation: 'tanh', classes: 3, weightStd: 0.2 }), { devices: ['reference:0'], dtype: 'float64', seed: 2 });
    const layers = net.layers().flatMap((s) => s.layers);
    const tanhs = layers.filter((l) => l instanceof Tanh) as Tanh[];
    expect(tanhs.map((l) => [l.name, l.inPlace])).toEqual([['tanh1', true], ['tanh2', true], ['tanh3', true]]);
    expect(layers.some((l) => l instanceof ReLU)).toBe(false);
    const rng = new Rng(3);
    const x = f64(rng.floats(1 * 3 * 32 * 32, 2), [1, 3, 32, 32]);
    const r = rng.floats(3);
    const lossOf = (): number => projected(net, x, { training: true }, r);
    const y = net.forward(x, { training: true });
    expect(y.shape).toEqual([1, 3]);
    y.dispose();
    net.zeroGrad();
    const rT = f64(r, [1, 3]);
    net.backward(rT);
    rT.dispose();
    checkParameterGradients(net, lossOf, 4, (p) => `d${p.name}`);
    x.dispose();
    net.dispose();
  }, 120_000);
});

describe('hand-worked forward values', () => {
  it('LRN over channels of [1, 2, 3, 4] with n = 3, k = 2, alpha = 0.1, beta = 0.75, both conventions', () => {
    // paper:   b0 = 1 / (2 + 0.1 (1 + 4))^0.75      = 1 / 2.5^0.75 = 0.502973372
    //          b1 = 2 / (2 + 0.1 (1 + 4 + 9))^0.75  = 2 / 3.4^0.75 = 0.798768276
    //          b2 = 3 / (2 + 0.1 (4 + 9 + 16))^0.75 = 3 / 4.9^0.75 = 0.910907326
    //          b3 = 4 / (2 + 0.1 (9 + 16))^0.75     = 4 / 4.5^0.75 = 1.294644725
    // pytorch: alpha / n = 0.1 / 3 in place of 0.1.
    const x = tensor(new Float32Array([1, 2, 3, 4]), [1, 4, 1, 1], { device: DEV });
    const opts = { size: 3, k: 2, alpha: 0.1, beta: 0.75 };
    const paper = new LocalResponseNorm(opts).forward(x);
    const torch = new LocalResponseNorm({ ...opts, convention: 'pytorch' }).forward(x);
    [0.502973372, 0.798768276, 0.910907326, 1.294644725].forEach((v, i) => expect(paper.dataSync()[i]).toBeCloseTo(v, 6));
    [0.559958606, 1.016125024, 1.32714902, 1.83162574].forEach((v, i) => expect(torch.dataSync()[i]).toBeCloseTo(v, 6));
    // Per-tower groups: channels {0, 1} and {2, 3} are normalised separately.
    const grouped = new LocalResponseNorm({ ...opts, groups: 2 }).forward(x);
    // b1 = 2 / (2 + 0.1 (1 + 4))^0.75, b2 = 3 / (2 + 0.1 (9 + 16))^0.75
    expect(grouped.dataSync()[1]).toBeCloseTo(2 / 2.5 ** 0.75, 6);
    expect(grouped.dataSync()[2]).toBeCloseTo(3 / 4.5 ** 0.75, 6);
    for (const t of [x, paper, torch, grouped]) t.dispose();
  });

  it('overlapping max-pool 3/2 on a 5x5 ramp, and its backward adds where windows overlap', () => {
    const ramp = Float32Array.from({ length: 25 }, (_, i) => i);
    const x = tensor(ramp, [1, 1, 5, 5], { device: DEV });
    const pool = new MaxPool2d({ size: 3, stride: 2 });
    const y = pool.forward(x, { training: true });
    expect([...y.dataSync()]).toEqual([12, 14, 22, 24]); // window maxima at (2,2), (2,4), (4,2), (4,4)
    const dx = pool.backward(tensor(new Float32Array([1, 2, 3, 4]), [1, 1, 2, 2], { device: DEV }));
    const expected = new Array(25).fill(0);
    expected[12] = 1; expected[14] = 2; expected[22] = 3; expected[24] = 4;
    expect([...dx.dataSync()]).toEqual(expected);
    // A peak at the centre (2,2) wins all four overlapping windows: its gradient is 4.
    const peak = new Float32Array(25); peak[12] = 100;
    const xp = tensor(peak, [1, 1, 5, 5], { device: DEV });
    const yp = pool.forward(xp, { training: true });
    expect([...yp.dataSync()]).toEqual([100, 100, 100, 100]);
    const dxp = pool.backward(tensor(new Float32Array([1, 1, 1, 1]), [1, 1, 2, 2], { device: DEV }));
    expect(dxp.dataSync()[12]).toBe(4);
    for (const t of [x, y, dx, xp, yp, dxp]) t.dispose();
  });

  it('LRN then pooling, the paper order (§3.3, §3.4), on a tiny case', () => {
    // x: 2 channels of 3x3; channel 0 all 1 except a 2 at the centre, channel 1 all 0.
    // LRN n = 2 (window i-1..i+1 clipped), k = 1, alpha = 1, beta = 1: b = a / (1 + a0^2 + a1^2).
    // Channel 0: 1 / (1 + 1) = 0.5 off-centre, 2 / (1 + 4) = 0.4 at the centre; pool 3/2 -> 0.5.
    const xh = new Float32Array(18).fill(0);
    for (let i = 0; i < 9; i++) xh[i] = i === 4 ? 2 : 1;
    const x = tensor(xh, [1, 2, 3, 3], { device: DEV });
    const net = new Sequential([new LocalResponseNorm({ size: 2, k: 1, alpha: 1, beta: 1 }), new MaxPool2d({ size: 3, stride: 2 })]);
    const before = memory().tensors;
    const y = net.forward(x);
    expect([...y.dataSync()]).toEqual([0.5, 0]);
    y.dispose();
    expect(memory().tensors).toBe(before);
    x.dispose();
  });

  it('Dropout is the identity at evaluation and scales kept units by 1/(1-p) at training', () => {
    const x = tensor(new Float32Array(1000).fill(1), [10, 100], { device: DEV });
    const d = new Dropout({ p: 0.5, seed: 1, name: 'drop' });
    const e = d.forward(x);
    expect(e.dataSync().every((v) => v === 1)).toBe(true);
    const t = d.forward(x, { training: true, step: 0 });
    const v = t.dataSync();
    expect(v.every((u) => u === 0 || u === 2)).toBe(true);
    const kept = v.filter((u) => u === 2).length;
    expect(kept).toBeGreaterThan(400);
    expect(kept).toBeLessThan(600);
    d.releaseCache();
    const t2 = d.forward(x, { training: true, step: 1 });
    expect(relErr(t2.dataSync(), v)).toBeGreaterThan(0); // a new mask each step
    d.releaseCache();
    for (const u of [x, e, t, t2]) u.dispose();
  });
});

describe('dropout masks by place in the global batch (data-parallel slices)', () => {
  it('two slices of a batch get the masks of the whole batch, on one device (groups 2) and per tower', () => {
    for (const [groups, part] of [[1, 0], [2, 0], [1, 1]] as const) {
      const d = new Dropout({ name: 'drop6', p: 0.5, seed: 7, groups, part: { index: part } });
      const values = Float32Array.from({ length: 6 * 16 }, (_, i) => 1 + (i % 13));
      const x = tensor(values, [6, 4, 2, 2], { device: 'reference:0' });
      const whole = d.forward(x, { training: true, step: 3 }).dataSync();
      const lo = tensor(values.slice(0, 4 * 16), [4, 4, 2, 2], { device: 'reference:0' });
      const hi = tensor(values.slice(4 * 16), [2, 4, 2, 2], { device: 'reference:0' });
      const y0 = d.forward(lo, { training: true, step: 3, samples: { offset: 0, total: 6 } }).dataSync();
      const y1 = d.forward(hi, { training: true, step: 3, samples: { offset: 4, total: 6 } }).dataSync();
      expect(Float32Array.from([...y0, ...y1]), `groups ${groups} part ${part}`).toEqual(whole);
      // The same slice placed elsewhere in the batch gets other masks.
      expect(d.forward(hi, { training: true, step: 3, samples: { offset: 0, total: 6 } }).dataSync()).not.toEqual(y1);
      expect(() => d.forward(hi, { training: true, step: 3, samples: { offset: 5, total: 6 } })).toThrow(/samples \[offset, offset \+ 2\) within a batch of total/);
    }
  });
});
