// No silent wrong answers: a diverged model gets no error rate, raw folders get their statistics,
// a run without validation says so, failed images are named and bounded, Figure 4's bank spans the
// training set, and corrupt checkpoint metadata is refused before anything is sized from it.
import { existsSync } from 'node:fs';
import { cp, mkdir, readFile, rm, symlink, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLoader, loadStatistics, openShards, subsetDataset } from '@alexnet/data-imagenet';
import { tensor, tidy } from '@alexnet/tensor';
import { loadCheckpoint, saveCheckpoint, type CheckpointContents } from './checkpoint.js';
import { chooseNeighbours, evaluateCheckpoint, forwardUntil } from './commands.js';
import { openData } from './data.js';
import { loadTrained, predict } from './inference.js';
import { MetricsLog } from './metrics.js';
import { train } from './trainer.js';
import { sampleFixture, SMALL, type Fixture } from './fixture.test-util.js';

let fx: Fixture;
let trained: string;
beforeAll(async () => {
  fx = await sampleFixture(24, 4);
  trained = (await train({ ...SMALL, data: fx.prepared, out: join(fx.root, 'base'), epochs: 1, maxSteps: 3 })).checkpoint;
}, 180_000);
afterAll(async () => { if (fx) await rm(fx.root, { recursive: true, force: true }); });

/** Rewrites a checkpoint with `edit` applied to its contents. */
async function rewrite(src: string, dst: string, edit: (c: CheckpointContents) => void): Promise<string> {
  const c = await loadCheckpoint(src);
  edit(c);
  const { format: _f, version: _v, createdAt: _c, ...meta } = c.meta;
  await saveCheckpoint(dst, { model: Object.fromEntries(c.model), optimizer: Object.fromEntries(c.optimizer), data: Object.fromEntries(c.data), meta });
  return dst;
}

/** A data folder with only the training images of the sample (no val/). */
async function trainOnly(name: string): Promise<string> {
  const dir = join(fx.root, name);
  await mkdir(dir, { recursive: true });
  if (!existsSync(join(dir, 'train'))) await symlink(join(fx.raw, 'train'), join(dir, 'train'));
  return dir;
}

describe('a diverged model has no error rate', () => {
  it('eval and predict stop with an error naming NaN outputs (was: 0.00 % top-1 error)', async () => {
    const nan = await rewrite(trained, join(fx.root, 'nan.safetensors'), (c) => { c.model.get('fc8.weight')!.data.fill(NaN); });
    await expect(evaluateCheckpoint(nan, fx.prepared, { batchSize: 16 })).rejects.toThrow(/nan\.safetensors: the model's outputs are NaN or infinite for 16 of the 16 images of evaluation batch 1/);
    const t = await loadTrained(nan);
    await expect(predict(t, [join(fx.raw, 'val', 'ILSVRC2012_val_00000001.JPEG')])).rejects.toThrow(/outputs for .*val_00000001\.JPEG are NaN or infinite/);
    t.model.dispose();
    // The same model with finite weights evaluates (the check is on the outputs, not a flag).
    const ok = await evaluateCheckpoint(trained, fx.prepared, { batchSize: 16 });
    expect(ok.top1Error).toBeGreaterThan(0);
  }, 120_000);
});

describe('the recipe is said, and never changed silently', () => {
  it('a raw folder gets the mean image and PCA lighting from sampled statistics, cached in the run folder, equal to prepare\'s over all images', async () => {
    const out = join(fx.root, 'raw-run');
    const lines: string[] = [];
    const r = await train({ ...SMALL, data: fx.raw, imageSize: 76, out, epochs: 1, maxSteps: 1, statsSamples: 100_000, log: (l) => lines.push(l) });
    expect(r.recipe.mean.kind).toBe('image');
    expect(r.recipe.lighting.on).toBe(true);
    expect(lines.join('\n')).toMatch(/has no statistics .*computing the mean image \(§2\) .* from 240 of its 240 training images/);
    expect(lines.join('\n')).toMatch(/^preprocessing: mean image subtracted \(statistics of 240 sampled training images, cached in .*statistics\); PCA lighting on/m);
    const cached = await loadStatistics(join(out, 'statistics'));
    const prepared = (await openShards(fx.prepared)).statistics!;
    // The same images decoded the same way and accumulated in integers: equal to float32 rounding.
    let maxDiff = 0;
    cached.meanImage.forEach((v, i) => { maxDiff = Math.max(maxDiff, Math.abs(v - prepared.meanImage[i]!)); });
    expect(maxDiff).toBeLessThan(1e-3);
    for (let i = 0; i < 3; i++) expect(cached.eigenvalues[i]!).toBeCloseTo(prepared.eigenvalues[i]!, 3);
    // The checkpoint keeps the mean image (76x76x3) and the recipe; metrics.jsonl opens with the recipe.
    const ck = await loadCheckpoint(r.checkpoint);
    expect(ck.data.get('mean')!.shape).toEqual([76, 76, 3]);
    expect(ck.meta.data.mean).toBe('image');
    expect((ck.meta.recipe as { model: { lrn: unknown } }).model.lrn).toEqual({ convention: 'paper', acrossTowers: false });
    const first = JSON.parse((await readFile(join(out, 'metrics.jsonl'), 'utf8')).split('\n')[0]!);
    expect(first).toMatchObject({ type: 'recipe', mean: { kind: 'image' }, lighting: { on: true, std: 0.1 }, crop: 67, batch: 16, devices: ['cpu:0'], placement: 'one device' });
    // A second run reads the cache instead of decoding again.
    const again: string[] = [];
    await train({ ...SMALL, data: fx.raw, imageSize: 76, out, epochs: 1, maxSteps: 1, statsSamples: 100_000, log: (l) => again.push(l) });
    expect(again.join('\n')).toMatch(/statistics \(§2 mean image, §4\.1 PCA lighting\): read from/);
  }, 180_000);

  it('no validation split: a warning at start and the schedule on the training loss; --val-fraction holds back a slice', async () => {
    const data = await trainOnly('train-only');
    const lines: string[] = [];
    const r = await train({ ...SMALL, data, imageSize: 76, out: join(fx.root, 'noval'), epochs: 2, log: (l) => lines.push(l) });
    expect(lines.join('\n')).toMatch(/WARNING: .*has no validation split, so the §5 schedule .* watches the training loss instead.*--val-fraction/);
    expect(r.recipe.schedule.watch).toBe('training loss');
    const ck = await loadCheckpoint(r.checkpoint);
    // The plateau schedule saw the training losses (it saw nothing before): its best is the lower one.
    const best = (ck.meta.trainer as { schedule: { best: number } }).schedule.best;
    expect(best).toBeCloseTo(Math.min(...r.history.map((h) => h.trainLoss)), 6);

    const held = await train({ ...SMALL, data, imageSize: 76, out: join(fx.root, 'held'), epochs: 1, valFraction: 0.25, log: () => undefined });
    expect(held.recipe.data.validation).toEqual({ kind: 'held-back', images: 60, fraction: 0.25 });
    expect(held.recipe.data.trainImages).toBe(180);
    expect(held.recipe.schedule.watch).toBe('validation top-1 error');
    expect(held.history[0]!.valTop1Error).toBeGreaterThanOrEqual(0);
    await expect(train({ ...SMALL, data: fx.prepared, out: join(fx.root, 'x'), valFraction: 0.1 })).rejects.toThrow(/has a validation split of its own/);
  }, 240_000);

  it('images that fail to load are named, counted in metrics.jsonl, and stop the run past --max-bad-images', async () => {
    const dir = join(fx.root, 'bad');
    await cp(join(fx.raw, 'train'), join(dir, 'train'), { recursive: true });
    const opened = await openData(dir, { size: 76 });
    // Three training images disappear after indexing (deleted, or a disk gone, while the run starts).
    const paths = opened.train.source.kind === 'folder' ? opened.train.source.paths : [];
    for (const i of [0, 80, 160]) await unlink(paths[i]!);
    const opts = { ...SMALL, data: opened, epochs: 1, statsSamples: 20 };
    await expect(train({ ...opts, out: join(fx.root, 'bad-strict'), maxBadImages: 2 }))
      .rejects.toThrow(/images failed to load during training, more than --max-bad-images 2 allows; the first: .*\.JPEG/);
    const lines: string[] = [];
    const ok = await train({ ...opts, out: join(fx.root, 'bad-counted'), maxBadImages: 3, log: (l) => lines.push(l) });
    expect(ok.badImages).toBe(3);
    expect(lines.join('\n')).toMatch(/failed to load and are trained as zeros \(\d of --max-bad-images 3 so far\): .*\.JPEG/);
    const logged = (await readFile(join(fx.root, 'bad-counted', 'metrics.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l)).filter((l) => l.type === 'bad-images');
    expect(logged.reduce((a, l) => a + l.images.length, 0)).toBe(3);
  }, 240_000);

  it('weight decay on biases is the paper\'s default; --no-bias-decay exempts them (and nothing else changes)', async () => {
    const run = async (biasDecay: boolean) => loadCheckpoint((await train({ ...SMALL, data: fx.prepared, out: join(fx.root, `decay-${biasDecay}`), epochs: 1, maxSteps: 1, biasDecay })).checkpoint);
    const on = await run(true), off = await run(false);
    expect((off.meta.recipe as { optimizer: { biasDecay: boolean } }).optimizer.biasDecay).toBe(false);
    // One step from the same weights and gradients: v = -wd lr b - lr g, so the biases differ by wd lr b0
    // (0.0005 * 0.01 * 0.1 = 5e-7 for conv2's positive bias of 0.1), the weights not at all.
    const b1 = on.model.get('conv2.bias')!.data, b0 = off.model.get('conv2.bias')!.data;
    // float32 near 0.1 is spaced 7.5e-9 apart: within two of those.
    for (let i = 0; i < b1.length; i++) expect(Math.abs(b0[i]! - b1[i]! - 5e-7)).toBeLessThan(1.5e-8);
    expect(on.model.get('conv2.weight')!.data).toEqual(off.model.get('conv2.weight')!.data);
    await expect(train({ ...SMALL, data: fx.prepared, out: join(fx.root, 'x'), resume: join(fx.root, 'decay-true', 'checkpoint.safetensors'), biasDecay: false }))
      .rejects.toThrow(/weight decay on for the biases, and this run has it off/);
  }, 120_000);
});

describe('Figure 4 (§6.1)', () => {
  it('draws the neighbour bank uniformly across the training set, and shows each query\'s truly nearest bank images', async () => {
    const t = await loadTrained(trained);
    const d = await openData(fx.prepared);
    const choice = await chooseNeighbours(t, d.train, d.val!, { queries: 3, bank: 40, k: 4, seed: 2 });
    expect(choice.layer).toBe('relu7');
    // The training split is sorted by class (24 per class): a uniform bank of 40 spans the classes.
    expect(new Set(Array.from(choice.bank, (p) => d.train.labels[p])).size).toBeGreaterThanOrEqual(8);
    // Brute force: each image's relu7 vector computed on its own (batches of one), float64 distances.
    const feats = async (ds: typeof d.train, positions: number[]) => {
      const loader = createLoader(subsetDataset(ds, positions), { batchSize: 1, mode: 'center', crop: t.crop, shuffle: false, mean: t.mean!.data as Float32Array, workers: 0 });
      const outv: Float64Array[] = [];
      for await (const b of loader.epoch(0)) outv.push(Float64Array.from(tidy(() => forwardUntil(t.model, tensor(b.images, b.shape), 'relu7').dataSync())));
      await loader.close();
      return outv;
    };
    const bank = await feats(d.train, [...choice.bank]);
    const queries = await feats(d.val!, choice.queries.map((q) => q.sample));
    choice.queries.forEach((q, i) => {
      const dist = bank.map((b, j) => ({ j, s: b.reduce((a, v, k) => a + (v - queries[i]![k]!) ** 2, 0) })).sort((a, b) => a.s - b.s);
      const want = dist.slice(0, 4);
      // Shown neighbours are the nearest four (ties in float32 aside: compare distances, not positions).
      q.neighbours.forEach((p, k) => {
        const s = dist.find((x) => choice.bank[x.j] === p)!.s;
        expect(Math.abs(s - want[k]!.s)).toBeLessThanOrEqual(1e-4 * Math.max(1, want[k]!.s));
      });
    });
    t.model.dispose();
  }, 120_000);
});

describe('checkpoint metadata is checked before use', () => {
  it('a corrupt image size, class list, mean or model name gets a sentence, not a 28 GB allocation', async () => {
    const cases: [string, (c: CheckpointContents) => void, RegExp][] = [
      ['size', (c) => { c.meta.data.size = 1_000_000_000; }, /data\.size is 1000000000, not an integer from the crop \(67\) to 4096/],
      ['classes', (c) => { c.meta.data.classes = c.meta.data.classes.slice(1); }, /data\.classes lists 9 classes, but the model has 10/],
      ['mean', (c) => { c.data.set('mean', { dtype: 'float32', shape: [3], data: new Float32Array(3) }); }, /image mean should be a tensor of shape \[76, 76, 3\] but has shape \[3\]/],
      ['model', (c) => { (c.meta.model as { name: string }).name = 'resnet'; }, /model\.name is "resnet", not one of paper, paper-half, torchvision/],
      ['crop', (c) => { c.meta.data.crop = 300; }, /data\.crop is 300, but the model takes 67x67 inputs/],
    ];
    for (const [name, edit, msg] of cases) {
      const f = await rewrite(trained, join(fx.root, `corrupt-${name}.safetensors`), edit);
      await expect(loadTrained(f), name).rejects.toThrow(msg);
      await expect(loadTrained(f), name).rejects.toThrow(/checkpoint .*corrupt-.*is corrupt/);
    }
    const step = await rewrite(trained, join(fx.root, 'corrupt-step.safetensors'), (c) => { (c.meta.trainer as { step: number }).step = -4; });
    await expect(train({ ...SMALL, data: fx.prepared, out: join(fx.root, 'x'), resume: step })).rejects.toThrow(/trainer\.step is -4, not a non-negative integer/);
  }, 120_000);

  it('MetricsLog on resume keeps exactly the lines before the checkpoint', async () => {
    const path = join(fx.root, 'm.jsonl');
    const { log } = await MetricsLog.open(path);
    log.write({ type: 'recipe' });
    for (let s = 0; s < 6; s++) log.write({ type: 'step', step: s, epoch: 1 + Math.floor(s / 3) });
    log.write({ type: 'epoch', epoch: 1, step: 3 });
    log.write({ type: 'bad-images', step: 4, images: [] });
    await log.close();
    const { log: again, hasRecipe } = await MetricsLog.open(path, { resumeAt: { step: 4, epoch: 1 } });
    expect(hasRecipe).toBe(true);
    await again.close();
    const kept = (await readFile(path, 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    expect(kept.map((l) => `${l.type}${l.step ?? ''}`)).toEqual(['recipe', 'step0', 'step1', 'step2', 'step3', 'epoch3']);
  });

  it('MetricsLog reaches the file within its flush interval, without a checkpoint (tail -f follows the run)', async () => {
    const path = join(fx.root, 'live.jsonl');
    const { log } = await MetricsLog.open(path, { flushMs: 200 });
    log.write({ type: 'step', step: 0 });
    expect(await readFile(path, 'utf8')).toBe('');
    await new Promise((r) => setTimeout(r, 600));
    expect(JSON.parse(await readFile(path, 'utf8'))).toEqual({ type: 'step', step: 0 });
    await log.close();
  });
});
