// exportSafetensors: the bare weights by PyTorch names. With PyTorch, each file loads with
// load_state_dict(strict=True) into the matching module of scripts/torch_side.py (the paper net as a
// Sequential with Conv2d(groups=2) and LRN within each tower) and gives our logits within 1e-4.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createModel } from '@alexnet/layers';
import { listBackends, loadSafetensors, randn, saveSafetensors } from '@alexnet/tensor';
import { relativeError } from '@alexnet/tensor/conformance';
import { exportSafetensors, type ModelConfig } from './index.js';
import { NEEDS_TORCH, python, torchAvailable } from './helpers.test-util.js';

const DEV = listBackends().find((b) => b.name === 'cpu')?.available ? 'cpu:0' : 'reference:0';
const dir = mkdtempSync(join(tmpdir(), 'alexnet-interop-st-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const SIZE = 67, CLASSES = 10;

async function exported(config: ModelConfig, tag: string) {
  const net = createModel(config.name, { ...config, weightStd: 0.05, positiveBias: 0.1, seed: 5, devices: [DEV] });
  const file = join(dir, `${tag}.safetensors`);
  const r = await exportSafetensors({ model: config, weights: net.stateDict() }, file);
  return { net, file, r };
}

describe('exportSafetensors', () => {
  it('writes every parameter by its PyTorch name and layout (paper: conv2 [256, 48, 5, 5], the groups=2 layout)', async () => {
    const { net, file, r } = await exported({ name: 'paper', classes: CLASSES, inputSize: SIZE }, 'names');
    const { tensors, metadata } = await loadSafetensors(file);
    expect(metadata.format).toBe('pt');
    expect(JSON.parse(metadata['alexnet.model']!)).toEqual({ name: 'paper', classes: CLASSES, inputSize: SIZE });
    expect([...tensors.keys()].sort()).toEqual(Object.keys(net.stateDict()).sort());
    expect(tensors.get('conv2.weight')!.shape).toEqual([256, 48, 5, 5]);
    expect(tensors.get('fc8.weight')!.shape).toEqual([CLASSES, 4096]);
    expect(r.parameters).toBe(net.parameterCount());
    expect(r.summary).toMatch(/16 tensors .* of the paper model by their PyTorch names, float32/);
    net.dispose();
  });
});

describe.skipIf(!torchAvailable)(`exportSafetensors into PyTorch (${NEEDS_TORCH})`, () => {
  const cases: [string, ModelConfig][] = [
    ['paper (Conv2d groups=2, LRN within each tower)', { name: 'paper', classes: CLASSES, inputSize: SIZE }],
    ['paper with LRN across both towers', { name: 'paper', classes: CLASSES, inputSize: SIZE, lrnAcrossTowers: true }],
    ['paper-half', { name: 'paper-half', classes: CLASSES, inputSize: SIZE }],
    ['torchvision (torchvision.models.alexnet(num_classes=10))', { name: 'torchvision', classes: CLASSES, inputSize: SIZE }],
  ];
  for (const [label, config] of cases) {
    it(`${label}: load_state_dict(strict=True) accepts the file and PyTorch computes our logits within 1e-4`, async () => {
      const tag = `${config.name}${config.lrnAcrossTowers ? '-across' : ''}`;
      const { net, file } = await exported(config, tag);
      const x = randn([2, 3, SIZE, SIZE], { device: DEV, seed: 21 });
      const xFile = join(dir, `${tag}-x.safetensors`), out = join(dir, `${tag}-logits.safetensors`);
      await saveSafetensors(xFile, { x });
      python(['logits', JSON.stringify(config), file, xFile, out]);
      const theirs = (await loadSafetensors(out)).tensors.get('logits')!;
      const ours = net.forward(x);
      expect(theirs.shape).toEqual([2, CLASSES]);
      expect(relativeError(ours.dataSync(), theirs.data).error).toBeLessThan(1e-4);
      for (const t of [x, ours]) t.dispose();
      net.dispose();
    }, 120_000);
  }
});
