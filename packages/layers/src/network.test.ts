// The models: parameter count from the description alone, the two-tower placement against the
// one-device grouped placement (same weights -> same logits and gradients, 1e-5 relative), weights
// in and out (safetensors, PyTorch names and layouts), and memory returning to where it started.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadSafetensors, memory, randn, Tensor, tensor } from '@alexnet/tensor';
import {
  createModel, flopsPerImage, inferShapes, paperDescription, paperHalfDescription, parameterCount, reluZeroFractions, SoftmaxCrossEntropy,
  torchvisionDescription, type Network,
} from './index.js';
import { relativeError } from '@alexnet/tensor/conformance';

/** Relative error: max |a - b| / max |b| (the conformance suite's measure). */
const relErr = (a: ArrayLike<number>, b: ArrayLike<number>): number => relativeError(a, b).error;

const tmp = mkdtempSync(join(tmpdir(), 'alexnet-layers-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Live tensors and bytes are back where they were. */
function expectMemoryAt(before: { tensors: number; bytes: number }): void {
  const now = memory();
  expect([now.tensors, now.bytes]).toEqual([before.tensors, before.bytes]);
}

describe('descriptions', () => {
  it('the paper net has 60 965 224 parameters with 1000 classes (computed, nothing runs)', () => {
    expect(parameterCount(paperDescription())).toBe(60_965_224);
    expect(parameterCount(paperDescription({ inputSize: 224 }))).toBe(60_965_224);
  });

  it('the paper net has the shapes of Figure 2 and 1.449 / 4.136 GFLOP per image', () => {
    const rows = inferShapes(paperDescription());
    const out = Object.fromEntries(rows.map((r) => [r.spec.name, r.outShape]));
    expect(out.conv1).toEqual([96, 55, 55]);
    expect(out.pool1).toEqual([96, 27, 27]);
    expect(out.conv2).toEqual([256, 27, 27]);
    expect(out.pool2).toEqual([256, 13, 13]);
    expect(out.conv5).toEqual([256, 13, 13]);
    expect(out.flatten).toEqual([9216]);
    expect(out.fc8).toEqual([1000]);
    const params = Object.fromEntries(rows.flatMap((r) => r.params.map((p) => [p.name, p.shape])));
    expect(params['conv2.weight']).toEqual([256, 48, 5, 5]); // groups = 2: 48 input maps per kernel
    expect(params['conv3.weight']).toEqual([384, 256, 3, 3]); // cross-GPU layer
    expect(params['conv4.weight']).toEqual([384, 192, 3, 3]);
    expect(params['fc6.weight']).toEqual([4096, 9216]);
    const f = flopsPerImage(paperDescription());
    expect(f.forward / 1e9).toBeCloseTo(1.449, 3);
    expect(f.training / 1e9).toBeCloseTo(4.136, 3);
  });

  it('paper-half halves conv1-conv4 (the paper keeps conv5 and the fc layers, footnote of §3.2); torchvision has its names and sizes', () => {
    const half = Object.fromEntries(inferShapes(paperHalfDescription()).map((r) => [r.spec.name, r.outShape[0]]));
    expect([half.conv1, half.conv2, half.conv3, half.conv4, half.conv5, half.fc6]).toEqual([48, 128, 192, 192, 256, 4096]);
    const tv = inferShapes(torchvisionDescription());
    expect(tv.flatMap((r) => r.params.map((p) => p.name))).toEqual([
      'features.0.weight', 'features.0.bias', 'features.3.weight', 'features.3.bias', 'features.6.weight', 'features.6.bias',
      'features.8.weight', 'features.8.bias', 'features.10.weight', 'features.10.bias', 'classifier.1.weight', 'classifier.1.bias',
      'classifier.4.weight', 'classifier.4.bias', 'classifier.6.weight', 'classifier.6.bias']);
    expect(parameterCount(torchvisionDescription())).toBe(61_100_840); // torchvision.models.alexnet()
  });

  it('rejects a two-device placement of a one-tower net and bad options, with sentences', () => {
    expect(() => createModel('torchvision', { devices: ['reference:0', 'reference:1'], inputSize: 67 })).toThrow(/one tower/);
    expect(() => paperDescription({ inputSize: 66 })).toThrow(/inputSize 224 or 227 \(or another integer >= 67\)/);
    expect(() => paperDescription({ classes: 0 })).toThrow(/classes/);
  });
});

/** A paper net on a 67x67 input (conv1 -> 15x15, pool5 -> 1x1) with 10 classes: small enough for the reference backend. */
function smallPaper(devices: string[], seed = 7): Network {
  const desc = paperDescription({ classes: 10 });
  desc.input.size = 67;
  return createModel(desc, { devices, seed });
}

describe('two towers on two devices = one device with groups', () => {
  it('gives the same logits, loss and gradients (1e-5 relative) for the same seed, in training with dropout', () => {
    const one = smallPaper(['reference:0']);
    const two = smallPaper(['reference:1', 'reference:2']);
    // Identical weights whatever the placement.
    const s1 = one.stateDict(), s2 = two.stateDict();
    expect(Object.keys(s2)).toEqual(Object.keys(s1));
    for (const k of Object.keys(s1)) expect(relErr(s2[k]!.data, s1[k]!.data), k).toBe(0);

    const x = randn([2, 3, 67, 67], { seed: 1, device: 'reference:0' });
    const labels = [3, 8];
    const results = [one, two].map((net) => {
      const loss = new SoftmaxCrossEntropy();
      const logits = net.forward(x, { training: true, step: 5 });
      const l = loss.forward(logits, labels, { training: true });
      const d = loss.backward();
      net.backward(d);
      const out = { logits: logits.dataSync(), loss: l.dataSync()[0]!, grads: new Map<string, Float32Array>() };
      // Whole gradients, gathered like the state dict.
      for (const p of net.parameters()) {
        const size = p.fullShape.reduce((a, b) => a * b, 1);
        const g = out.grads.get(p.name) ?? new Float32Array(size);
        g.set(p.grad.dataSync() as Float32Array, p.offset);
        out.grads.set(p.name, g);
      }
      for (const t of [logits, l, d]) t.dispose();
      return out;
    });
    expect(relErr(results[1]!.logits, results[0]!.logits)).toBeLessThan(1e-5);
    expect(Math.abs(results[1]!.loss - results[0]!.loss) / Math.abs(results[0]!.loss)).toBeLessThan(1e-5);
    for (const [name, g] of results[0]!.grads) {
      expect(relErr(results[1]!.grads.get(name)!, g), name).toBeLessThan(1e-5);
    }
    // Dropout really dropped something, and the gradients are not trivially zero.
    expect(results[0]!.grads.get('fc7.weight')!.some((v) => v !== 0)).toBe(true);
    expect(results[0]!.grads.get('conv1.weight')!.some((v) => v !== 0)).toBe(true);
    x.dispose();
    one.dispose();
    two.dispose();
  });

  it('exchanges activations and gradients across devices exactly at conv3, fc6, fc7, fc8 (§3.2)', () => {
    const net = smallPaper(['reference:1', 'reference:2']);
    const x = randn([2, 3, 67, 67], { seed: 1, device: 'reference:1' });
    const copies: string[] = [];
    const original = Tensor.prototype.to;
    Tensor.prototype.to = function (this: Tensor, target) {
      const out = original.call(this, target);
      if (out.device !== this.device) copies.push(`${this.device.name}->${out.device.name} [${this.shape.join(',')}]`);
      return out;
    } as typeof original;
    try {
      const y = net.forward(x, { training: true, step: 0 });
      const forward = copies.splice(0);
      net.backward(y);
      y.dispose();
      const A = 'reference:1', B = 'reference:2';
      expect(forward).toEqual([
        `${A}->${B} [2,3,67,67]`, // the image, whole, to the second tower
        `${B}->${A} [2,128,3,3]`, `${A}->${B} [2,128,3,3]`, // conv3 reads both towers' pool2 maps
        `${B}->${A} [2,128]`, `${A}->${B} [2,128]`, // fc6 (pool5 is 1x1 at this input size)
        `${B}->${A} [2,2048]`, `${A}->${B} [2,2048]`, // fc7
        `${B}->${A} [2,2048]`, `${A}->${B} [2,2048]`, // fc8
        `${B}->${A} [2,5]`, // the second tower's half of the logits, gathered for the loss
      ]);
      expect(copies).toEqual([
        `${A}->${B} [2,5]`, // its half of dlogits back to the second tower
        `${B}->${A} [2,2048]`, `${A}->${B} [2,2048]`, // fc8's input gradients, each half home
        `${B}->${A} [2,2048]`, `${A}->${B} [2,2048]`, // fc7
        `${B}->${A} [2,128]`, `${A}->${B} [2,128]`, // fc6
        `${B}->${A} [2,128,3,3]`, `${A}->${B} [2,128,3,3]`, // conv3
      ]);
    } finally {
      Tensor.prototype.to = original;
    }
    x.dispose();
    net.dispose();
  });

  it('an odd number of classes splits fc8 unevenly (3 + 4) and still matches', () => {
    const desc = paperDescription({ classes: 7 });
    desc.input.size = 67;
    const one = createModel(desc, { devices: ['reference:0'], seed: 2 });
    const two = createModel(desc, { devices: ['reference:1', 'reference:2'], seed: 2 });
    expect(two.parameters().filter((p) => p.name === 'fc8.bias').map((p) => p.value.shape[0])).toEqual([3, 4]);
    const x = randn([2, 3, 67, 67], { seed: 1, device: 'reference:0' });
    const a = one.forward(x), b = two.forward(x);
    expect(b.shape).toEqual([2, 7]);
    expect(relErr(b.dataSync(), a.dataSync())).toBeLessThan(1e-5);
    for (const t of [x, a, b]) t.dispose();
    one.dispose();
    two.dispose();
  });

  it('saves the same safetensors file from both placements, loadable into either, with PyTorch names and layouts', async () => {
    const one = smallPaper(['reference:0'], 3);
    const two = smallPaper(['reference:1', 'reference:2'], 3);
    await one.saveSafetensors(join(tmp, 'one.safetensors'));
    await two.saveSafetensors(join(tmp, 'two.safetensors'));
    const a = await loadSafetensors(join(tmp, 'one.safetensors'));
    const b = await loadSafetensors(join(tmp, 'two.safetensors'));
    expect([...a.tensors.keys()].sort()).toEqual(['conv1.bias', 'conv1.weight', 'conv2.bias', 'conv2.weight', 'conv3.bias', 'conv3.weight',
      'conv4.bias', 'conv4.weight', 'conv5.bias', 'conv5.weight', 'fc6.bias', 'fc6.weight', 'fc7.bias', 'fc7.weight', 'fc8.bias', 'fc8.weight']);
    expect(a.tensors.get('conv2.weight')!.shape).toEqual([256, 48, 5, 5]);
    expect(a.tensors.get('fc6.weight')!.shape).toEqual([4096, 256]);
    expect(a.metadata.model).toBe('paper');
    for (const [k, t] of a.tensors) expect(relErr(b.tensors.get(k)!.data, t.data), k).toBe(0);
    // §5 initialisation: biases 1 in conv2, conv4, conv5, fc6, fc7, else 0; weights with std 0.01.
    for (const [k, t] of a.tensors) {
      if (k.endsWith('.bias')) expect(t.data.every((v) => v === (/conv[245]|fc[67]/.test(k) ? 1 : 0)), k).toBe(true);
    }
    const w = a.tensors.get('fc6.weight')!.data;
    const std = Math.sqrt(Array.from(w).reduce((s, v) => s + v * v, 0) / w.length);
    expect(std).toBeGreaterThan(0.0098);
    expect(std).toBeLessThan(0.0102);
    // Load the one-device file (other seed) into the two-tower model and compare the forward passes.
    const other = smallPaper(['reference:1', 'reference:2'], 99);
    await other.loadSafetensors(join(tmp, 'one.safetensors'));
    const x = randn([1, 3, 67, 67], { seed: 2, device: 'reference:0' });
    const y1 = one.forward(x), y2 = other.forward(x);
    expect(relErr(y2.dataSync(), y1.dataSync())).toBeLessThan(1e-5);
    // A file that does not fit is refused with the names.
    const tv = createModel(torchvisionDescription({ classes: 10, inputSize: 67 }), { devices: ['reference:0'] });
    await expect(tv.loadSafetensors(join(tmp, 'one.safetensors'))).rejects.toThrow(/missing: features\.0\.weight/);
    for (const t of [x, y1, y2]) t.dispose();
    for (const m of [one, two, other, tv]) m.dispose();
  });
});

describe('memory', () => {
  for (const [label, make] of [
    ['paper, two towers', () => smallPaper(['reference:1', 'reference:2'])],
    ['paper, one device', () => smallPaper(['reference:0'])],
    ['torchvision (adaptive pool 1x1 -> 6x6)', () => createModel(torchvisionDescription({ classes: 10, inputSize: 67 }), { devices: ['reference:0'] })],
  ] as const) {
    it(`${label}: forward + backward + zeroGrad loops leave memory() where it started`, () => {
      const net = (make as () => Network)();
      const x = randn([2, 3, 67, 67], { seed: 1, device: 'reference:0' });
      const labels = tensor(new Int32Array([1, 2]), [2], { device: 'reference:0' });
      const loss = new SoftmaxCrossEntropy();
      const step = (i: number) => {
        net.zeroGrad();
        const logits = net.forward(x, { training: true, step: i });
        const l = loss.forward(logits, labels, { training: true });
        const d = loss.backward();
        net.backward(d);
        for (const t of [logits, l, d]) t.dispose();
        const y = net.forward(x); // evaluation keeps nothing
        y.dispose();
      };
      step(0); // builds the lazily made pooling matrix
      const before = memory();
      for (let i = 1; i <= 2; i++) step(i);
      expectMemoryAt(before);
      net.dispose();
      x.dispose();
      labels.dispose();
    });
  }

  it('dlogits on another device than the logits: copied, used and freed', () => {
    const net = smallPaper(['reference:1', 'reference:2']);
    const x = randn([1, 3, 67, 67], { seed: 1, device: 'reference:0' });
    const before = memory();
    const y = net.forward(x, { training: true, step: 0 });
    const d = y.to('reference:3');
    net.backward(d);
    for (const t of [y, d]) t.dispose();
    expectMemoryAt(before);
    expect(net.parameters().every((p) => p.grad.dataSync().some((v) => v !== 0) || p.name.endsWith('bias'))).toBe(true);
    net.dispose();
    x.dispose();
  });

  it('a training forward without backward is released by releaseCache()', () => {
    const net = smallPaper(['reference:1', 'reference:2']);
    const x = randn([1, 3, 67, 67], { seed: 1, device: 'reference:0' });
    const before = memory();
    const y = net.forward(x, { training: true });
    y.dispose();
    expect(memory().tensors).toBeGreaterThan(before.tensors);
    net.releaseCache();
    expectMemoryAt(before);
    net.dispose();
    x.dispose();
  });
});

describe('diagnostics', () => {
  it('reluZeroFractions finds a dead layer (the §5 collapse) on both placements', () => {
    for (const devices of [['reference:0'], ['reference:1', 'reference:2']]) {
      const desc = paperDescription({ classes: 10 });
      desc.input.size = 67;
      desc.layers = desc.layers.map((l) => (l.kind === 'linear' && l.name === 'fc7' ? { ...l, bias: -100 } : l));
      const net = createModel(desc, { devices });
      const x = randn([2, 3, 67, 67], { seed: 1, device: 'reference:0' });
      const before = memory().tensors;
      const f = reluZeroFractions(net, x);
      expect(memory().tensors).toBe(before);
      expect(Object.keys(f)).toEqual(['relu1', 'relu2', 'relu3', 'relu4', 'relu5', 'relu6', 'relu7']);
      expect(f.relu7).toBe(1); // fc7's biases of -100: every unit off
      expect(f.relu6).toBeLessThan(0.1); // biases of 1: nearly all on
      expect(f.relu1).toBeGreaterThan(0.2);
      expect(f.relu1).toBeLessThan(0.8);
      x.dispose();
      net.dispose();
    }
  });
});

describe('model options', () => {
  it('per-layer learning-rate and decay multipliers from the description reach the parameters', () => {
    const desc = paperDescription({ classes: 10 });
    desc.input.size = 67;
    desc.layers = desc.layers.map((l) => (l.kind === 'linear' ? { ...l, lrMult: [1, 2], decayMult: [1, 0] } : l));
    const net = createModel(desc, { devices: ['reference:1', 'reference:2'] });
    const fc8b = net.parameters().filter((p) => p.name === 'fc8.bias');
    expect(fc8b.length).toBe(2); // one half per tower
    expect(fc8b.every((p) => p.lrMult === 2 && p.decayMult === 0)).toBe(true);
    expect(net.parameters().find((p) => p.name === 'conv1.weight')!.lrMult).toBe(1);
    net.dispose();
  });

  it('224 input uses conv1 padding 2 and gives the same 55x55 maps; evaluation is deterministic (dropout off)', () => {
    expect(inferShapes(paperDescription({ inputSize: 224 }))[0]!.outShape).toEqual([96, 55, 55]);
    const net = smallPaper(['reference:0']);
    const x = randn([1, 3, 67, 67], { seed: 4, device: 'reference:0' });
    const a = net.forward(x), b = net.forward(x);
    expect(relErr(a.dataSync(), b.dataSync())).toBe(0);
    const c = net.forward(x, { training: true, step: 0 });
    net.releaseCache();
    expect(relErr(c.dataSync(), a.dataSync())).toBeGreaterThan(0); // dropout active at training
    for (const t of [a, b, c, x] as Tensor[]) t.dispose();
    net.dispose();
  });
});
