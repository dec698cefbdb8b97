// The switches behind the paper's claims (§3.1, §3.3, §3.4, §4.2) change the description and nothing else.
import { describe, expect, it } from 'vitest';
import { applyAblations, cifarDescription, describeModel, inferShapes, parameterCount, type ModelName } from './models.js';

describe('ablations', () => {
  const base = describeModel('paper', { classes: 1000 });
  const kinds = (d: typeof base) => d.layers.map((l) => `${l.kind}:${l.name}`);
  it('lrn false drops norm1 and norm2; dropout false drops drop6 and drop7; the weights stay the same', () => {
    const noLrn = describeModel('paper', { classes: 1000, lrn: false });
    expect(kinds(base).filter((k) => !kinds(noLrn).includes(k))).toEqual(['lrn:norm1', 'lrn:norm2']);
    const noDrop = describeModel('paper', { classes: 1000, dropout: false });
    expect(kinds(base).filter((k) => !kinds(noDrop).includes(k))).toEqual(['dropout:drop6', 'dropout:drop7']);
    for (const d of [noLrn, noDrop]) expect(parameterCount(d)).toBe(parameterCount(base)); // 60 965 224
  });
  it('pool 2/2 replaces the overlapping 3/2 pooling everywhere, with the same map sizes at 227', () => {
    const p = describeModel('paper', { classes: 1000, pool: { size: 2, stride: 2 } });
    expect(p.layers.filter((l) => l.kind === 'maxpool').map((l) => l.kind === 'maxpool' && [l.name, l.size, l.stride])).toEqual([['pool1', 2, 2], ['pool2', 2, 2], ['pool5', 2, 2]]);
    const sizes = (d: typeof base) => inferShapes(d).filter((r) => r.spec.kind === 'maxpool').map((r) => r.outShape);
    expect(sizes(p)).toEqual(sizes(base)); // 27, 13, 6: (55 - 2) / 2 + 1 = 27 as (55 - 3) / 2 + 1
    expect(sizes(base)).toEqual([[96, 27, 27], [256, 13, 13], [256, 6, 6]]);
    expect(() => describeModel('paper', { pool: { size: 0, stride: 2 } })).toThrow(/pool \{ size, stride \} of positive integers/);
  });
  it("activation 'tanh' (§3.1, Figure 1) swaps every ReLU for a tanh of the same name, in every model", () => {
    for (const name of ['paper', 'paper-half', 'torchvision'] as ModelName[]) {
      const relu = describeModel(name, { classes: 10 }), tanh = describeModel(name, { classes: 10, activation: 'tanh' });
      const swapped = relu.layers.map((l) => (l.kind === 'relu' ? { kind: 'tanh', name: l.name } : l));
      expect(relu.layers.filter((l) => l.kind === 'relu').length, name).toBeGreaterThanOrEqual(5);
      expect(tanh.layers, name).toEqual(swapped);
      expect(tanh.layers.some((l) => l.kind === 'relu'), name).toBe(false);
      expect(inferShapes(tanh).map((r) => r.outShape), name).toEqual(inferShapes(relu).map((r) => r.outShape));
      expect(parameterCount(tanh), name).toBe(parameterCount(relu));
      expect(describeModel(name, { classes: 10, activation: 'relu' }), name).toEqual(relu);
    }
    // With the other switches: no LRN and tanh.
    const both = describeModel('paper', { classes: 10, lrn: false, activation: 'tanh' });
    expect(both.layers.filter((l) => l.kind === 'tanh').map((l) => l.name)).toEqual(['relu1', 'relu2', 'relu3', 'relu4', 'relu5', 'relu6', 'relu7']);
    expect(both.layers.some((l) => l.kind === 'lrn')).toBe(false);
    expect(() => describeModel('paper', { activation: 'sigmoid' as never })).toThrow(/Expected activation 'relu' or 'tanh' but received 'sigmoid'/);
  });
});

describe('cifarDescription: the four-layer CIFAR-10 net of §3.1, Figure 1', () => {
  it('maps 3x32x32 through 32 -> 15 -> 15 -> 7 -> 7 -> 3 to 576 features and 10 classes', () => {
    const d = cifarDescription();
    expect(d.name).toBe('cifar-4layer');
    expect(d.towers).toBe(1);
    expect(d.input).toEqual({ channels: 3, size: 32 });
    expect(inferShapes(d).map((r) => [r.spec.name, r.outShape])).toEqual([
      ['conv1', [32, 32, 32]], ['relu1', [32, 32, 32]], ['pool1', [32, 15, 15]],
      ['conv2', [32, 15, 15]], ['relu2', [32, 15, 15]], ['pool2', [32, 7, 7]],
      ['conv3', [64, 7, 7]], ['relu3', [64, 7, 7]], ['pool3', [64, 3, 3]],
      ['flatten', [576]], ['fc4', [10]],
    ]);
    expect(inferShapes(d).flatMap((r) => r.params)).toEqual([
      { name: 'conv1.weight', shape: [32, 3, 5, 5] }, { name: 'conv1.bias', shape: [32] },
      { name: 'conv2.weight', shape: [32, 32, 5, 5] }, { name: 'conv2.bias', shape: [32] },
      { name: 'conv3.weight', shape: [64, 32, 5, 5] }, { name: 'conv3.bias', shape: [64] },
      { name: 'fc4.weight', shape: [10, 576] }, { name: 'fc4.bias', shape: [10] },
    ]);
    expect(parameterCount(d)).toBe(2432 + 25632 + 51264 + 5770); // 85 098
    for (const l of d.layers) if (l.kind === 'conv') expect([l.kernel, l.stride, l.padding, l.weightStd, l.bias]).toEqual([5, 1, 2, 0.01, 0]);
    for (const l of d.layers) if (l.kind === 'maxpool') expect([l.size, l.stride]).toEqual([3, 2]);
  });

  it('takes activation, classes and weightStd; tanh is the same net with tanh layers', () => {
    const t = cifarDescription({ activation: 'tanh', classes: 100, weightStd: 0.05 });
    expect(t.layers.map((l) => l.kind)).toEqual(['conv', 'tanh', 'maxpool', 'conv', 'tanh', 'maxpool', 'conv', 'tanh', 'maxpool', 'flatten', 'linear']);
    expect(inferShapes(t).at(-1)!.outShape).toEqual([100]);
    expect(t.layers.every((l) => !('weightStd' in l) || l.weightStd === 0.05)).toBe(true);
    expect(inferShapes(t).slice(0, -1).map((r) => r.outShape)).toEqual(inferShapes(cifarDescription()).slice(0, -1).map((r) => r.outShape));
    expect(applyAblations(cifarDescription(), { activation: 'tanh' }).layers.filter((l) => l.kind === 'tanh').map((l) => l.name)).toEqual(['relu1', 'relu2', 'relu3']);
    expect(() => cifarDescription({ classes: 0 })).toThrow(/positive integer for classes/);
    expect(() => cifarDescription({ activation: 'elu' as never })).toThrow(/Expected activation 'relu' or 'tanh'/);
    expect(() => cifarDescription({ weightStd: -1 })).toThrow(/weightStd to be a finite number >= 0/);
  });
});
