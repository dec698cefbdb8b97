// End-to-end tests of the trainer on a generated sample ImageNet (small sizes, CPU devices).
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { memory } from '@alexnet/tensor';
import { checkCompatible, loadCheckpoint } from './checkpoint.js';
import { predict, loadTrained } from './inference.js';
import { evaluateCheckpoint, visualizeCheckpoint } from './commands.js';
import { train, TrainingError } from './trainer.js';
import { sampleFixture, SMALL, type Fixture } from './fixture.test-util.js';
import sharp from 'sharp';

let fx: Fixture;
beforeAll(async () => { fx = await sampleFixture(); }, 120_000);
afterAll(async () => { if (fx) await rm(fx.root, { recursive: true, force: true }); });

describe('training on the sample ImageNet', () => {
  it('learns: validation accuracy ends clearly above chance, with a checkpoint, metrics and pictures', async () => {
    const out = join(fx.root, 'learn');
    const r = await train({ ...SMALL, data: fx.prepared, out, epochs: 8, patience: 5, seed: 0 });
    const last = r.history.at(-1)!;
    // Chance is 90 % top-1 error on 10 classes; with 80 validation images its standard deviation is
    // 3.4 %, so 75 % is more than 4 standard deviations better than chance.
    expect(last.valTop1Error!).toBeLessThan(0.75);
    expect(r.history[0]!.trainLoss).toBeGreaterThan(last.trainLoss);
    const ck = await loadCheckpoint(r.checkpoint);
    expect(ck.meta.model).toMatchObject({ name: 'paper', classes: 10, inputSize: 67 });
    expect(ck.model.get('conv1.weight')!.shape).toEqual([96, 3, 11, 11]);
    expect(ck.model.get('fc8.weight')!.shape).toEqual([10, 4096]);
    const lines = (await readFile(join(out, 'metrics.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.filter((l) => l.type === 'epoch')).toHaveLength(8);
    expect(lines.filter((l) => l.type === 'step')).toHaveLength(r.steps);

    // predict: five classes with names, probabilities in decreasing order summing to <= 1.
    const t = await loadTrained(r.checkpoint);
    const [p] = await predict(t, [join(fx.raw, 'val', 'ILSVRC2012_val_00000001.JPEG')]);
    expect(p!.top5).toHaveLength(5);
    expect(new Set(p!.top5.map((c) => c.name)).size).toBe(5);
    for (let i = 1; i < 5; i++) expect(p!.top5[i]!.probability).toBeLessThanOrEqual(p!.top5[i - 1]!.probability);
    expect(p!.top5.reduce((s, c) => s + c.probability, 0)).toBeLessThanOrEqual(1 + 1e-6);
    expect(t.classes.map((c) => c.name)).toContain(p!.top5[0]!.name);
    t.model.dispose();

    // eval gives the trainer's own last validation error (same centre crops, same mean).
    const ev = await evaluateCheckpoint(r.checkpoint, fx.prepared, { batchSize: 16 });
    expect(ev.top1Error).toBeCloseTo(last.valTop1Error!, 6);

    // visualize: PNGs of the right size.
    const files = await visualizeCheckpoint(r.checkpoint, { data: fx.prepared, out: join(out, 'pictures'), queries: 3, bank: 60 });
    expect(files.map((f) => f.split('/').pop())).toEqual(['conv1-kernels.png', 'curves.png', 'neighbours.png']);
    const k = await sharp(files[0]!).metadata();
    // 96 kernels in two towers of 3 rows of 16, 44 px tiles with 2 px gaps, 8 px between towers.
    expect([k.width, k.height]).toEqual([16 * 46 + 2, 2 * (3 * 46 + 2) + 8]);
    const n = await sharp(files[2]!).metadata();
    expect(n.height).toBe(6 + 3 * (96 + 6));
    expect(n.width).toBe(6 + 96 + 6 + 220 + 6 * (96 + 6));
  }, 600_000);

  it('detects the collapse that positive biases of 1 (§5) can cause on small data (lr 0.01), and says what to change', async () => {
    const r = await train({ ...SMALL, positiveBias: 1, data: fx.prepared, out: join(fx.root, 'collapse'), epochs: 4, patience: 5, seed: 0 });
    expect(r.history.at(-1)!.trainLoss).toBeCloseTo(Math.log(10), 1);
    expect(r.warning).toMatch(/loss sits at ln\(10\) = 2\.303.*every unit of relu7 is zero \(dead ReLUs\).*--positive-bias 0\.1/);
  }, 300_000);

  it('two devices (the §3.2 towers on cpu:0 and cpu:1) equal one device after the same steps', async () => {
    const one = await train({ ...SMALL, data: fx.prepared, out: join(fx.root, 'one'), devices: ['cpu:0'], epochs: 1, maxSteps: 4, seed: 3 });
    const said: string[] = [];
    const two = await train({ ...SMALL, data: fx.prepared, out: join(fx.root, 'two'), devices: ['cpu:0', 'cpu:1'], epochs: 1, maxSteps: 4, seed: 3, log: (l) => said.push(l) });
    expect(said).toContain('  conv3    cpu:0 [0, 192) | cpu:1 [192, 384)   <- gathers both towers (§3.2)');
    const a = await loadCheckpoint(one.checkpoint), b = await loadCheckpoint(two.checkpoint);
    expect([...b.model.keys()].sort()).toEqual([...a.model.keys()].sort());
    for (const [name, t] of a.model) {
      const u = b.model.get(name)!.data;
      let maxDiff = 0, maxRef = 0;
      t.data.forEach((v, i) => { maxDiff = Math.max(maxDiff, Math.abs(v - u[i]!)); maxRef = Math.max(maxRef, Math.abs(v)); });
      // float32 sums in another order (grouped vs split GEMMs): relative 1e-4 of the tensor's scale.
      expect(maxDiff / maxRef, name).toBeLessThan(1e-4);
    }
  }, 300_000);

  it('keeps memory flat from step to step (live tensors, bytes, process RSS)', async () => {
    const seen: { epoch: number; tensors: number; bytes: number; rss: number }[] = [];
    await train({ ...SMALL, data: fx.prepared, out: join(fx.root, 'mem'), epochs: 4, seed: 1,
      onStep: (s) => { const m = memory(); seen.push({ epoch: s.epoch, tensors: m.tensors, bytes: m.bytes, rss: process.memoryUsage().rss }); } });
    const steady = seen.slice(3);
    expect(steady.length).toBeGreaterThan(40);
    // Within an epoch every step sees the same live tensors (the last step of an epoch has no next
    // step in flight), and the epochs do not differ: nothing accumulates.
    for (const key of ['tensors', 'bytes'] as const) {
      const perEpoch = [1, 2, 3, 4].map((e) => Math.max(...steady.filter((s) => s.epoch === e).map((s) => s[key])));
      expect(new Set(perEpoch).size, key).toBe(1);
      expect(new Set(steady.map((s) => s[key])).size, key).toBeLessThanOrEqual(2);
    }
    // RSS wanders with the garbage collector (checkpoints, evaluation) but must not climb with steps:
    // the median RSS of epoch 4 within 48 MiB of epoch 3's (the first epochs warm the allocators up;
    // measured medians 447, 678, 466-484, 466-469 MiB for epochs 1-4).
    const median = (e: number) => { const r = steady.filter((s) => s.epoch === e).map((s) => s.rss).sort((a, b) => a - b); return r[r.length >> 1]!; };
    expect(median(4) - median(3)).toBeLessThan(48 * 2 ** 20);
    expect(memory().tensors).toBe(0);
  }, 300_000);
});

describe('bad input gets a sentence', () => {
  it('missing, empty and mislabelled data folders', async () => {
    await expect(train({ ...SMALL, data: join(fx.root, 'nope'), out: join(fx.root, 'x') })).rejects.toThrow(/data folder .*nope does not exist/);
    const empty = join(fx.root, 'empty');
    await (await import('node:fs/promises')).mkdir(empty, { recursive: true });
    await expect(train({ ...SMALL, data: empty, out: join(fx.root, 'x') })).rejects.toThrow(/is empty: expected train\//);
  });

  it('unknown devices and more devices than the model takes', async () => {
    await expect(train({ ...SMALL, data: fx.prepared, out: join(fx.root, 'x'), devices: ['tpu:0'] })).rejects.toThrow(/no backend named "tpu"/);
    await expect(train({ ...SMALL, data: fx.prepared, out: join(fx.root, 'x'), devices: ['cpu:0', 'cpu:1', 'cpu:2'] })).rejects.toThrow(/one or two devices/);
    await expect(train({ ...SMALL, data: fx.prepared, out: join(fx.root, 'x'), devices: ['cpu:0', 'cpu:1'], model: 'torchvision' })).rejects.toThrow(TrainingError);
  });

  it('a checkpoint for another class count', () => {
    expect(() => checkCompatible('a.safetensors', { name: 'paper', classes: 1000 }, { name: 'paper', classes: 10 }, ['name', 'classes']))
      .toThrow(/checkpoint a\.safetensors is for classes 1000, but this run uses classes 10/);
  });

  it('a truncated checkpoint, and one from another model or class count', async () => {
    const src = join(fx.root, 'ck');
    const r = await train({ ...SMALL, data: fx.prepared, out: src, epochs: 1, maxSteps: 1 });
    const bytes = await readFile(r.checkpoint);
    const cut = join(fx.root, 'cut.safetensors');
    await writeFile(cut, bytes.subarray(0, Math.floor(bytes.length / 2)));
    await expect(train({ ...SMALL, data: fx.prepared, out: join(fx.root, 'x'), resume: cut })).rejects.toThrow(/cut\.safetensors.*truncated/);
    await expect(train({ ...SMALL, data: fx.prepared, out: join(fx.root, 'x'), resume: r.checkpoint, model: 'paper-half' }))
      .rejects.toThrow(/is for name "paper", but this run uses name "paper-half"/);
    await expect(train({ ...SMALL, data: fx.prepared, out: join(fx.root, 'x'), resume: r.checkpoint, crop: 71 }))
      .rejects.toThrow(/is for inputSize 67, but this run uses inputSize 71/);
    await expect(train({ ...SMALL, data: fx.prepared, out: join(fx.root, 'x'), resume: join(fx.root, 'missing.safetensors') }))
      .rejects.toThrow(/missing\.safetensors does not exist/);
  }, 120_000);
});
