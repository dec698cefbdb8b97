// Weights in and out through the CLI: `alexnet import` of torchvision's file (checked against
// PyTorch where /usr/bin/python3 has torch and torchvision), fine-tuning with --weights (a new last
// layer, the imported normalization kept), and `alexnet export` to ONNX (run by onnxruntime-node)
// and to safetensors by PyTorch names.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TORCHVISION_PREPROCESSING } from '@alexnet/interop';
import { createModel } from '@alexnet/layers';
import { loadSafetensors, tensor, tidy } from '@alexnet/tensor';
import { loadCheckpoint, saveCheckpoint } from './checkpoint.js';
import { loadTrained, preprocess } from './inference.js';
import { sampleFixture, type Fixture } from './fixture.test-util.js';

const cli = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 300_000 });
const py = spawnSync('/usr/bin/python3', ['-c', 'import torch, torchvision, PIL'], { encoding: 'utf8' });
const haveTorch = py.status === 0;
if (!haveTorch) console.warn('skipping the PyTorch side of the import test: install python3-torch python3-torchvision (apt-get install python3-torch python3-torchvision)');

let fx: Fixture;
beforeAll(async () => { fx = await sampleFixture(8, 2); }, 120_000);
afterAll(async () => { if (fx) await rm(fx.root, { recursive: true, force: true }); });

/** A checkpoint as `alexnet import` writes one, from our own torchvision net (no PyTorch needed). */
async function importedCheckpoint(path: string): Promise<void> {
  const net = createModel('torchvision', { classes: 1000, inputSize: 224, seed: 5 });
  const classes = Array.from({ length: 1000 }, (_, i) => ({ wnid: `n9${String(i).padStart(7, '0')}`, name: `class ${i}` }));
  await saveCheckpoint(path, {
    model: net.stateDict(), optimizer: {},
    meta: { model: { name: 'torchvision', classes: 1000, inputSize: 224 }, data: { classes, mean: 'none', crop: 224, size: 256, preprocessing: { ...TORCHVISION_PREPROCESSING } }, trainer: { importedFrom: { file: 'made.pth' } }, optimizer: {} },
  });
  net.dispose();
}

describe('weights in and out', () => {
  it.skipIf(!haveTorch)('alexnet import of a torch.save file gives PyTorch\'s own top-5 through alexnet predict', async () => {
    const dir = join(fx.root, 'torch');
    await mkdir(dir, { recursive: true });
    const image = join(fx.raw, 'val', 'ILSVRC2012_val_00000001.JPEG');
    const script = `
import json, sys, torch, torchvision
from PIL import Image
torch.manual_seed(0)
m = torchvision.models.alexnet().eval()
torch.save(m.state_dict(), sys.argv[1])
t = torchvision.transforms
x = t.Compose([t.Resize(256), t.CenterCrop(224), t.ToTensor(), t.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])(Image.open(sys.argv[2]).convert('RGB'))
with torch.no_grad(): p = torch.softmax(m(x[None]), 1)[0]
top = torch.topk(p, 5)
print(json.dumps({'index': top.indices.tolist(), 'p': top.values.tolist()}))`;
    const r = spawnSync('/usr/bin/python3', ['-c', script, join(dir, 'alexnet.pth'), image], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const want = JSON.parse(r.stdout.trim().split('\n').pop()!);
    const imp = run('import', '--torchvision', join(dir, 'alexnet.pth'), '--out', join(dir, 'ck.safetensors'));
    expect(imp.status, imp.stderr).toBe(0);
    const pr = run('predict', '--checkpoint', join(dir, 'ck.safetensors'), '--json', image);
    expect(pr.status, pr.stderr).toBe(0);
    const got = JSON.parse(pr.stdout)[0].top5 as { index: number; probability: number; wnid: string }[];
    expect(got.map((c) => c.index)).toEqual(want.index);
    got.forEach((c, i) => expect(Math.abs(c.probability - want.p[i]) / want.p[i]).toBeLessThan(1e-4));
    expect(got[0]!.wnid).toMatch(/^n\d{8}$/);
    expect(run('train', fx.prepared, '--resume', join(dir, 'ck.safetensors')).stderr).toMatch(/holds imported weights .* start from them with --weights/);
  }, 300_000);

  it('--weights starts from imported weights on another data set: a new last layer, the imported normalization, said at start', async () => {
    const ck = join(fx.root, 'imported.safetensors');
    await importedCheckpoint(ck);
    const out = join(fx.root, 'finetune');
    const r = run('train', fx.prepared, '--weights', ck, '--out', out, '--crop', '67', '-b', '16', '-j', '1', '--epochs', '1', '--lr', '1e-9');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/classifier\.6 is initialised afresh \(§5\), since the weights have 1000 classes and this data 10/);
    expect(r.stderr).toMatch(/^preprocessing: no mean subtracted: the torchvision normalization of --weights instead: \/255, minus \[0\.485, 0\.456, 0\.406\]/m);
    const start = await loadCheckpoint(ck), end = await loadCheckpoint(join(out, 'checkpoint.safetensors'));
    expect(end.meta.model).toMatchObject({ name: 'torchvision', classes: 10, inputSize: 67 });
    expect(end.meta.data.preprocessing).toMatchObject({ kind: 'torchvision', crop: 67, resize: 76, std: [0.229, 0.224, 0.225] });
    // lr 1e-9: the features moved by less than a millionth of their scale; the new classifier is [10, 4096].
    const a = start.model.get('features.0.weight')!.data, b = end.model.get('features.0.weight')!.data;
    let diff = 0, scale = 0;
    a.forEach((v, i) => { diff = Math.max(diff, Math.abs(v - b[i]!)); scale = Math.max(scale, Math.abs(v)); });
    expect(diff / scale).toBeLessThan(1e-6);
    expect(end.model.get('classifier.6.weight')!.shape).toEqual([10, 4096]);
    // predict and eval use the imported normalization (predict: torchvision's resize and crop at 76 / 67).
    const t = await loadTrained(join(out, 'checkpoint.safetensors'));
    const { input } = await preprocess(join(fx.raw, 'val', 'ILSVRC2012_val_00000001.JPEG'), t);
    expect(Math.min(...input)).toBeLessThan(-0.5); // normalized, not raw 0..255
    t.model.dispose();
    expect(run('eval', '--checkpoint', join(out, 'checkpoint.safetensors'), fx.prepared, '-j', '1').status).toBe(0);
    expect(run('train', fx.prepared, '--weights', ck, '--model', 'paper', '--out', join(fx.root, 'x')).stderr).toMatch(/holds a 'torchvision' model, but --model is 'paper'/);
  }, 300_000);

  it('alexnet export writes ONNX that onnxruntime runs to our logits, and safetensors by PyTorch names', async () => {
    const out = join(fx.root, 'to-export');
    expect(run('train', fx.prepared, '--out', out, '--crop', '67', '-b', '16', '-j', '1', '--epochs', '1', '--positive-bias', '0.1', '--max-steps', '2').status).toBe(0);
    const ck = join(out, 'checkpoint.safetensors');
    const e = run('export', '--checkpoint', ck, '--onnx', join(out, 'm.onnx'), '--form', 'towers', '--safetensors', join(out, 'm.safetensors'));
    expect(e.status, e.stderr).toBe(0);
    expect(e.stdout).toMatch(/m\.onnx: ONNX opset 13, paper model as two towers \(§3\.2\)/);
    // LRN (§3.3) as plain operators by default; --onnx-lrn node writes ONNX's LRN operator (op_type "LRN")
    const n = run('export', '--checkpoint', ck, '--onnx', join(out, 'node.onnx'), '--onnx-lrn', 'node');
    expect(n.status, n.stderr).toBe(0);
    const lrnOp = Buffer.from([0x22, 3, 0x4c, 0x52, 0x4e]);
    expect((await readFile(join(out, 'node.onnx'))).includes(lrnOp)).toBe(true);
    expect((await readFile(join(out, 'm.onnx'))).includes(lrnOp)).toBe(false);
    const bare = await loadSafetensors(join(out, 'm.safetensors'));
    expect(bare.tensors.get('conv1.weight')!.shape).toEqual([96, 3, 11, 11]);
    expect(run('export', '--checkpoint', ck).stderr).toMatch(/give --onnx FILE or --safetensors FILE/);
    const require = createRequire(import.meta.url);
    let ort: typeof import('onnxruntime-node') | null = null;
    try { ort = require('onnxruntime-node'); } catch { ort = null; }
    if (!ort) { console.warn('onnxruntime-node is not installed here (a devDependency of @alexnet/interop): the ONNX file was not run'); return; }
    const t = await loadTrained(ck);
    const x = Float32Array.from({ length: 2 * 3 * 67 * 67 }, (_, i) => Math.sin(i) * 50);
    const ours = tidy(() => t.model.forward(tensor(x, [2, 3, 67, 67])).dataSync());
    t.model.dispose();
    const session = await ort.InferenceSession.create(await readFile(join(out, 'm.onnx')));
    const res = await session.run({ [session.inputNames[0]!]: new ort.Tensor('float32', x, [2, 3, 67, 67]) });
    const theirs = res[session.outputNames[0]!]!.data as Float32Array;
    let maxDiff = 0, maxRef = 0;
    ours.forEach((v, i) => { maxDiff = Math.max(maxDiff, Math.abs(v - theirs[i]!)); maxRef = Math.max(maxRef, Math.abs(v)); });
    expect(maxDiff / maxRef).toBeLessThan(1e-4);
    expect(existsSync(join(out, 'm.onnx'))).toBe(true);
  }, 300_000);
});
