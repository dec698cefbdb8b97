/**
 * The trainer on real data against the step benchmark, in one run: `train()` (loader worker threads
 * reading prepared shards, the training transform, normalisation, upload, trainStep, the one-step-late
 * loss read-back, progress and metrics.jsonl) at batch 128 on one device with 2 threads, timed from
 * the third step to the last by its onStep callback (steady state: the first steps allocate and fill
 * the loader's queue), against trainStep alone on the same model shape with the data already on the
 * device, measured right after. The data: a sample ImageNet (createSampleImageNet: 10 classes, 100
 * JPEGs each, prepared once into raw 256x256 shards in the temp folder).
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSampleImageNet, prepareImageNet } from '@alexnet/data-imagenet';
import { createModel, paperDescription } from '@alexnet/layers';
import { SGD } from '@alexnet/optim';
import { device, dispose, randn, tensor } from '@alexnet/tensor';
import { trainStep } from '../step.js';
import { train } from '../trainer.js';

export interface TrainerFigures {
  /** img/s of train() in steady state, per loader worker count. */
  trainer: Record<number, number>;
  /** img/s of trainStep alone, measured after the trainer runs. */
  step: number;
  steps: number;
}

async function sampleShards(log: (s: string) => void): Promise<string> {
  const root = join(tmpdir(), 'alexnet-bench-trainer-data');
  const shards = join(root, 'shards');
  if (existsSync(join(shards, 'manifest.json'))) return shards;
  log(`preparing the trainer's data once (sample ImageNet: 10 classes x 100 JPEGs -> raw shards in ${shards})...`);
  await rm(root, { recursive: true, force: true });
  await createSampleImageNet({ dir: join(root, 'raw'), classes: 10, perClass: 100, valPerClass: 0, longSide: 400, seed: 5 });
  await prepareImageNet({ source: join(root, 'raw'), out: shards, progress: false });
  return shards;
}

export async function benchTrainer(opts: { steps: number; workers: number[]; log: (s: string) => void }): Promise<TrainerFigures> {
  const data = await sampleShards(opts.log);
  const batch = 128;
  const trainer: Record<number, number> = {};
  for (const workers of opts.workers) {
    const out = await mkdtemp(join(tmpdir(), 'alexnet-bench-trainer-'));
    const stamps: number[] = [];
    try {
      device('cpu:0').setThreads(2);
      await train({
        data, out, devices: ['cpu:0'], batchSize: batch, epochs: 1, maxSteps: opts.steps, workers, progress: false,
        checkpointEvery: 0, seed: 1, log: () => undefined, onStep: () => { stamps.push(performance.now()); },
      });
    } finally {
      device('cpu:0').setThreads(undefined);
      await rm(out, { recursive: true, force: true });
    }
    // Step s's loss is read after step s + 1 is queued, and the read waits behind it: onStep s fires
    // when step s + 1 has finished, so intervals between stamps are whole steps, except the last,
    // which the final read (nothing queued behind it) ends at once; and the first two fill the
    // loader's queue. Steady state: stamps [2, length - 2].
    const from = 2, last = stamps.length - 2;
    trainer[workers] = last > from ? (batch * (last - from) * 1000) / (stamps[last]! - stamps[from]!) : NaN;
  }
  // trainStep alone, same net and batch, data on the device.
  const desc = paperDescription();
  const dev = device('cpu:0');
  dev.setThreads(2);
  const net = createModel(desc, { devices: [dev], seed: 1 });
  const sgd = new SGD(net.parameters(), { lr: 1e-6, form: 'paper' });
  const x = randn([batch, 3, desc.input.size, desc.input.size], { seed: 3, device: 'cpu:0' });
  const labels = tensor(Int32Array.from({ length: batch }, (_, i) => (i * 37) % 1000), [batch], { device: 'cpu:0', dtype: 'int32' });
  const times: number[] = [];
  for (let s = 0; s < opts.steps; s++) {
    const t0 = performance.now();
    const { loss, correct } = trainStep(net, sgd, x, labels, s);
    await dev.synchronize();
    dispose([loss, correct]);
    if (s >= 1) times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const step = (batch * 1000) / times[Math.floor(times.length / 2)]!;
  dispose([x, labels]);
  sgd.dispose();
  net.dispose();
  dev.setThreads(undefined);
  return { trainer, step, steps: opts.steps };
}
