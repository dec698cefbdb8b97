// ONNX export, run by onnxruntime-node (a devDependency): each model and form gives our forward pass's
// logits within 1e-4, for any batch size, at the input size recorded in the graph. Small nets (67x67
// inputs, 10 classes) keep it quick.
import { createRequire } from 'node:module';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createModel, paperDescription, type ModelName } from '@alexnet/layers';
import { listBackends, randn, tensor, type HostTensor } from '@alexnet/tensor';
import { relativeError } from '@alexnet/tensor/conformance';
import { encodeOnnx, exportOnnx, type ModelConfig } from './index.js';

type Ort = typeof import('onnxruntime-node');
let ort: Ort | null = null;
try {
  ort = createRequire(import.meta.url)('onnxruntime-node') as Ort;
} catch {
  ort = null;
}

const DEV = listBackends().find((b) => b.name === 'cpu')?.available ? 'cpu:0' : 'reference:0';
const dir = mkdtempSync(join(tmpdir(), 'alexnet-interop-onnx-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const SIZE = 67, CLASSES = 10;

/** A small net of `name` with weights large enough that the logits are far from zero, its state dict and logits for x. */
function ourNet(config: ModelConfig, x: Float32Array, n: number) {
  const net = createModel(config.name, { ...config, weightStd: 0.05, positiveBias: 0.1, seed: 3, devices: [DEV] });
  const weights = new Map(Object.entries(net.stateDict()));
  const logits = (batch: Float32Array, b: number) => {
    const xt = fromArray(batch, [b, 3, SIZE, SIZE]);
    const y = net.forward(xt);
    const out = Float32Array.from(y.dataSync() as Float32Array);
    xt.dispose(); y.dispose();
    return out;
  };
  const ours = logits(x, n);
  return { net, weights, ours, logits };
}

const fromArray = (data: Float32Array, shape: number[]) => tensor(data, shape, { device: DEV });

function input(n: number, seed: number): Float32Array {
  const t = randn([n, 3, SIZE, SIZE], { device: DEV, seed });
  const a = Float32Array.from(t.dataSync() as Float32Array);
  t.dispose();
  return a;
}

async function run(file: string, x: Float32Array, n: number): Promise<Float32Array> {
  const session = await ort!.InferenceSession.create(file, { intraOpNumThreads: 2, graphOptimizationLevel: 'all' });
  const out = await session.run({ input: new ort!.Tensor('float32', x, [n, 3, SIZE, SIZE]) });
  const logits = out.logits!;
  expect(logits.dims).toEqual([n, CLASSES]);
  await session.release();
  return logits.data as Float32Array;
}

const CASES: { label: string; config: ModelConfig; form?: 'grouped' | 'towers'; lrn?: 'conv' | 'node' }[] = [
  { label: 'paper, one-device form (grouped conv2/4/5, LRN within each tower as a block-diagonal banded 1x1 convolution)', config: { name: 'paper', classes: CLASSES, inputSize: SIZE } },
  { label: 'paper, one-device form, lrn: \'node\' (LRN within each tower as Split/LRN/Concat)', config: { name: 'paper', classes: CLASSES, inputSize: SIZE }, lrn: 'node' },
  { label: 'paper, two-tower form (§3.2: two branches joined where the GPUs exchange)', config: { name: 'paper', classes: CLASSES, inputSize: SIZE }, form: 'towers' },
  { label: 'paper with the PyTorch LRN convention and LRN across both towers', config: { name: 'paper', classes: CLASSES, inputSize: SIZE, lrnConvention: 'pytorch', lrnAcrossTowers: true } },
  { label: 'paper-half (one tower, §3.2\'s comparison net)', config: { name: 'paper-half', classes: CLASSES, inputSize: SIZE } },
  { label: 'torchvision (adaptive 6x6 average pool from pool5\'s 1x1)', config: { name: 'torchvision', classes: CLASSES, inputSize: SIZE } },
  { label: 'paper with tanh in place of ReLU (§3.1, Figure 1), two-tower form', config: { name: 'paper', classes: CLASSES, inputSize: SIZE, activation: 'tanh' }, form: 'towers' },
];

describe.skipIf(!ort)('ONNX export run by onnxruntime-node (needs the onnxruntime-node devDependency)', () => {
  for (const c of CASES) {
    it(`${c.label}: ort's logits equal our forward pass within 1e-4, batch 2 and batch 1`, async () => {
      const x = input(2, 11);
      const { net, weights, ours, logits } = ourNet(c.config, x, 2);
      const file = join(dir, `${c.config.name}-${c.form ?? 'grouped'}-${c.lrn ?? 'conv'}-${CASES.indexOf(c)}.onnx`);
      const r = await exportOnnx({ model: c.config, weights }, file, { form: c.form, lrn: c.lrn });
      expect(r.input).toEqual({ name: 'input', shape: ['batch', 3, SIZE, SIZE] });
      expect(r.output).toEqual({ name: 'logits', shape: ['batch', CLASSES] });
      expect(r.parameters).toBe(net.parameterCount());
      // the LRN operator (op_type "LRN": protobuf field 4, length 3) only where lrn: 'node' asks for it
      const lrnNodes = readFileSync(file).includes(Buffer.from([0x22, 3, 0x4c, 0x52, 0x4e]));
      expect(lrnNodes).toBe(c.lrn === 'node' && c.config.name !== 'torchvision');
      const theirs = await run(file, x, 2);
      expect(relativeError(theirs, ours).error).toBeLessThan(1e-4);
      expect(Math.max(...Array.from(ours, Math.abs))).toBeGreaterThan(0.1); // logits far from zero: the comparison means something
      const x1 = input(1, 12);
      expect(relativeError(await run(file, x1, 1), logits(x1, 1)).error).toBeLessThan(1e-4);
      net.dispose();
    }, 60_000);
  }

  it('the check sees an LRN alpha off by the factor 5 of the two conventions (§3.3), and the graph refuses other input sizes', async () => {
    const config: ModelConfig = { name: 'paper', classes: CLASSES, inputSize: SIZE };
    const x = input(2, 13).map((v) => 20 * v); // brighter images: larger maps, where the normalisation matters more
    const { net, weights, ours } = ourNet(config, x, 2);
    const file = join(dir, 'paper-check.onnx');
    await exportOnnx({ model: config, weights }, file);
    const theirs = await run(file, x, 2);
    expect(relativeError(theirs, ours).error).toBeLessThan(1e-4);
    // The same weights in a net whose LRN forgets to convert alpha: the difference is far above 1e-4.
    const wrong = paperDescription({ classes: CLASSES, inputSize: SIZE });
    wrong.layers = wrong.layers.map((l) => (l.kind === 'lrn' ? { ...l, alpha: l.alpha / l.size } : l));
    const other = createModel(wrong, { devices: [DEV] });
    other.loadStateDict(weights);
    const xt = fromArray(x, [2, 3, SIZE, SIZE]);
    const y = other.forward(xt);
    expect(relativeError(theirs, y.dataSync() as Float32Array).error).toBeGreaterThan(1e-3);
    for (const t of [xt, y]) t.dispose();
    other.dispose();
    net.dispose();
    const s = await ort!.InferenceSession.create(file);
    await expect(s.run({ input: new ort!.Tensor('float32', new Float32Array(3 * 68 * 68), [1, 3, 68, 68]) })).rejects.toThrow(/dimensions|Expected: 67/i);
    await s.release();
  }, 60_000);
});

describe('ONNX export without onnxruntime', () => {
  const made = new Map<ModelName, Map<string, HostTensor>>();
  const weightsOf = (name: ModelName) => {
    if (!made.has(name)) {
      const net = createModel(name, { classes: CLASSES, inputSize: SIZE, devices: [DEV] });
      made.set(name, new Map(Object.entries(net.stateDict())));
      net.dispose();
    }
    return new Map(made.get(name)!);
  };

  it('refuses weights that do not fit the model, naming what is wrong', () => {
    const w: Map<string, HostTensor> = weightsOf('paper-half');
    expect(() => encodeOnnx({ model: { name: 'paper', classes: CLASSES, inputSize: SIZE }, weights: w })).toThrow(/does not hold the weights of its paper model: .*mis-shaped conv1\.weight: \[48, 3, 11, 11\] here, \[96, 3, 11, 11\] expected/);
    w.delete('fc8.bias');
    expect(() => encodeOnnx({ model: { name: 'paper-half', classes: CLASSES, inputSize: SIZE }, weights: w })).toThrow(/missing fc8\.bias \[10\]/);
    expect(() => encodeOnnx({ model: { name: 'torchvision', classes: CLASSES, inputSize: SIZE }, weights: weightsOf('torchvision') }, { form: 'towers' })).toThrow(/'towers' form is for the two-tower paper net \(§3\.2\)/);
  });

  it('takes what loadCheckpoint returns as it is ({ meta: { model, data }, model })', () => {
    const model = weightsOf('paper-half');
    const e = encodeOnnx({ meta: { model: { name: 'paper-half', classes: CLASSES, inputSize: SIZE }, data: { classes: Array.from({ length: CLASSES }, (_, i) => ({ wnid: `n${i}`, name: `c${i}` })) } }, model });
    const bytes = e.model.toBytes();
    expect(e.nodes).toBeGreaterThan(10);
    expect(new TextDecoder().decode(bytes)).toContain('alexnet.classes');
  });
});
