/**
 * The trainer on real data against the step benchmark, in one run: `train()` (loader worker threads
 * reading prepared shards, the training transform, normalisation, upload, trainStep, the one-step-late
 * loss read-back, progress and metrics.jsonl) at batch 128 on one device with 2 threads, against
 * trainStep alone on the same model (the data's class count) with the data already on the device.
 * Both are per-step medians, so a step disturbed by the shared machine does not move them; the
 * trainer's steps start at the third (the first ones allocate and fill the loader's queue), and
 * trainStep alone is measured before, between and after the trainer runs, its median over all of
 * them. The data: a sample ImageNet (createSampleImageNet: 10 classes, 300 JPEGs each, 23 steps of
 * 128 per epoch, prepared once into raw 256x256 shards in the temp folder).
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
  /** img/s of train() in steady state (its median step), per loader worker count. */
  trainer: Record<number, number>;
  /** img/s of trainStep alone (its median step, over the runs before, between and after the trainer's). */
  step: number;
  /** Steps of each trainer run, and how many of them its median is over. */
  steps: number;
  timedSteps: number;
  classes: number;
}

const CLASSES = 10, PER_CLASS = 300;

const median = (v: number[]): number => { const s = [...v].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]!; };

async function sampleShards(log: (s: string) => void): Promise<string> {
  const root = join(tmpdir(), `alexnet-bench-trainer-data-${CLASSES}x${PER_CLASS}`);
  const shards = join(root, 'shards');
  if (existsSync(join(shards, 'manifest.json'))) return shards;
  log(`preparing the trainer's data once (sample ImageNet: ${CLASSES} classes x ${PER_CLASS} JPEGs -> raw shards in ${shards})...`);
  await rm(root, { recursive: true, force: true });
  await createSampleImageNet({ dir: join(root, 'raw'), classes: CLASSES, perClass: PER_CLASS, valPerClass: 0, longSide: 400, seed: 5 });
  await prepareImageNet({ source: join(root, 'raw'), out: shards, progress: false });
  return shards;
}

export async function benchTrainer(opts: { steps: number; workers: number[]; log: (s: string) => void }): Promise<TrainerFigures> {
  const data = await sampleShards(opts.log);
  const batch = 128, from = 2;
  // trainStep alone, the same net as train() builds for this data (its class count), data on the device.
  const desc = paperDescription({ classes: CLASSES });
  const dev = device('cpu:0');
  dev.setThreads(2);
  const net = createModel(desc, { devices: [dev], seed: 1 });
  const sgd = new SGD(net.parameters(), { lr: 1e-6, form: 'paper' });
  const x = randn([batch, 3, desc.input.size, desc.input.size], { seed: 3, device: 'cpu:0' });
  const labels = tensor(Int32Array.from({ length: batch }, (_, i) => (i * 7) % CLASSES), [batch], { device: 'cpu:0', dtype: 'int32' });
  const stepTimes: number[] = [];
  let s = 0;
  const stepsAlone = async (n: number) => {
    dev.setThreads(2);
    for (let i = 0; i < n; i++, s++) {
      const t0 = performance.now();
      const { loss, correct } = trainStep(net, sgd, x, labels, s);
      await dev.synchronize();
      dispose([loss, correct]);
      if (s >= 1) stepTimes.push(performance.now() - t0); // the first allocates
    }
  };
  const aloneSteps = Math.max(3, Math.ceil(opts.steps / 3));
  const trainer: Record<number, number> = {};
  let timedSteps = 0;
  try {
    await stepsAlone(aloneSteps + 1);
    for (const workers of opts.workers) {
      const out = await mkdtemp(join(tmpdir(), 'alexnet-bench-trainer-'));
      const stamps: number[] = [];
      try {
        dev.setThreads(2);
        await train({
          data, out, devices: ['cpu:0'], batchSize: batch, epochs: 1, maxSteps: opts.steps, workers, progress: false,
          checkpointEvery: 0, seed: 1, log: () => undefined, onStep: () => { stamps.push(performance.now()); },
        });
      } finally {
        await rm(out, { recursive: true, force: true });
      }
      // Step s's loss is read right behind it in the device's queue, and awaited once step s + 1 is
      // queued: onStep s fires when step s has finished, so intervals between stamps are whole steps;
      // the first two fill the loader's queue, and the last is left out (the run ends after it).
      // Steady state: the intervals between stamps [from, length - 2].
      const intervals = stamps.slice(from + 1, stamps.length - 1).map((t, i) => t - stamps[from + i]!);
      timedSteps = intervals.length;
      trainer[workers] = intervals.length ? (batch * 1000) / median(intervals) : NaN;
      await stepsAlone(aloneSteps);
    }
  } finally {
    dispose([x, labels]);
    sgd.dispose();
    net.dispose();
    dev.setThreads(undefined);
  }
  return { trainer, step: (batch * 1000) / median(stepTimes), steps: opts.steps, timedSteps, classes: CLASSES };
}
