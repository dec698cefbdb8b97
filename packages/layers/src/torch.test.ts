// Against PyTorch (runs where /usr/bin/python3 has torch and torchvision, e.g. Debian's
// python3-torch 1.13 and python3-torchvision 0.14; skipped elsewhere). scripts/torch_crosscheck.py
// builds torchvision's AlexNet and the paper's net (as a PyTorch AlexNet of the paper's net is written),
// 10 classes, 67x67 input:
// - their weights load here unchanged (safetensors, PyTorch names and layouts) and give PyTorch's
//   logits, loss and parameter gradients (dropout off), within 1e-4 relative (float32 both sides);
// - our weights load into PyTorch with load_state_dict(strict=True) and give our logits (1e-4).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { fromHost, loadSafetensors, saveSafetensors, type Tensor } from '@alexnet/tensor';
import { createModel, paperDescription, SoftmaxCrossEntropy, torchvisionDescription, type ModelDescription } from './index.js';
import { relativeError } from '@alexnet/tensor/conformance';

const PY = '/usr/bin/python3';
const SCRIPT = fileURLToPath(new URL('../scripts/torch_crosscheck.py', import.meta.url));
const torchAvailable = spawnSync(PY, ['-c', 'import torch, torchvision'], { timeout: 120_000 }).status === 0;
const DEV = 'reference:0';

const dir = mkdtempSync(join(tmpdir(), 'alexnet-torch-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Relative error: max |a - b| / max |b| (the conformance suite's measure). */
const relErr = (a: ArrayLike<number>, b: ArrayLike<number>): number => relativeError(a, b).error;

/** The nets of the script, without dropout (PyTorch's side runs in eval mode). */
function describeNet(model: 'torchvision' | 'paper', init: { weightStd?: number; positiveBias?: number } = {}): ModelDescription {
  const desc = model === 'torchvision'
    ? torchvisionDescription({ classes: 10, inputSize: 67, ...init })
    : paperDescription({ classes: 10, lrnAcrossTowers: true, ...init }); // torch's LRN runs over all 96 / 256 maps
  desc.input.size = 67;
  desc.layers = desc.layers.map((l) => (l.kind === 'dropout' ? { ...l, p: 0 } : l));
  return desc;
}

function python(args: string[]): void {
  const r = spawnSync(PY, [SCRIPT, ...args], { encoding: 'utf8', timeout: 300_000 });
  if (r.status !== 0) throw new Error(`torch_crosscheck.py ${args[0]} failed: ${r.stderr || r.error}`);
}

describe.skipIf(!torchAvailable)('against PyTorch', () => {
  it("PyTorch's weights load unchanged and give its logits, loss and gradients (torchvision and paper nets)", async () => {
    python(['export', dir]);
    for (const model of ['torchvision', 'paper'] as const) {
      const net = createModel(describeNet(model), { devices: [DEV] });
      await net.loadSafetensors(join(dir, `${model}.safetensors`));
      const io = (await loadSafetensors(join(dir, `${model}_io.safetensors`))).tensors;
      const x = fromHost(io.get('x')!, { device: DEV });
      const loss = new SoftmaxCrossEntropy();
      net.zeroGrad();
      const logits = net.forward(x, { training: true, step: 0 });
      const l = loss.forward(logits, io.get('labels')!.data as Int32Array, { training: true });
      const d = loss.backward();
      net.backward(d);
      expect(relErr(logits.dataSync(), io.get('logits')!.data), `${model} logits`).toBeLessThan(1e-4);
      expect(relErr(l.dataSync(), io.get('loss')!.data), `${model} loss`).toBeLessThan(1e-4);
      for (const p of net.parameters()) {
        expect(relErr(p.grad.dataSync(), io.get(`grad.${p.name}`)!.data), `${model} grad ${p.name}`).toBeLessThan(1e-4);
      }
      for (const t of [x, logits, l, d] as Tensor[]) t.dispose();
      net.dispose();
    }
  });

  it('PyTorch loads our weights with strict load_state_dict and computes our logits', async () => {
    for (const model of ['torchvision', 'paper'] as const) {
      const net = createModel(describeNet(model, { weightStd: 0.05, positiveBias: 0.5 }), { devices: [DEV], seed: 11 });
      const io = (await loadSafetensors(join(dir, `${model}_io.safetensors`))).tensors;
      const x = fromHost(io.get('x')!, { device: DEV });
      await net.saveSafetensors(join(dir, `ours-${model}.safetensors`));
      await saveSafetensors(join(dir, `x-${model}.safetensors`), { x });
      python(['logits', model, join(dir, `ours-${model}.safetensors`), join(dir, `x-${model}.safetensors`), join(dir, `torch-${model}.safetensors`)]);
      const theirs = (await loadSafetensors(join(dir, `torch-${model}.safetensors`))).tensors.get('logits')!;
      const ours = net.forward(x);
      expect(theirs.shape).toEqual([2, 10]);
      expect(relErr(ours.dataSync(), theirs.data), `${model} logits`).toBeLessThan(1e-4);
      for (const t of [x, ours]) t.dispose();
      net.dispose();
    }
  });
});
