#!/usr/bin/env node
// examples/train-imagenet: the paper's training, end to end.
//
//   node train.mjs --data /data/imagenet [--devices cuda:0,cuda:1] [any `alexnet train` option]
//   node train.mjs                        the demo: a generated sample ImageNet, under 5 minutes on 2 cores
//
// With --data the arguments go to `alexnet train` unchanged. Without it, the sample ImageNet of
// @alexnet/data-imagenet is created once (cached in .sample/), prepared to shards, and the paper's
// network (the same layers, on 67x67 crops of 76x76 images instead of 227 of 256, 10 classes) is
// trained on it; then the pictures of §6.1 are drawn.
import { existsSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createSampleImageNet, prepareImageNet } from '@alexnet/data-imagenet';
import { runTrain } from '@alexnet/train';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);

// A data folder (`--data DIR`, or DIR as the first argument, as `alexnet train` takes it): the real thing.
const demoOnly = (a, i) => a === '--devices' || args[i - 1] === '--devices';
if (args.includes('--data') || args.includes('--help') || args.includes('-h') || args.some((a, i) => !a.startsWith('-') && !demoOnly(a, i))) {
  // The `alexnet` command itself (what `npx alexnet` runs): the bin of @alexnet/train.
  const trainPkgJson = createRequire(import.meta.url).resolve('@alexnet/train/package.json');
  const cli = join(dirname(trainPkgJson), JSON.parse(readFileSync(trainPkgJson, 'utf8')).bin.alexnet);
  const r = spawnSync(process.execPath, [cli, 'train', ...args], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}

// The demo preset: settings chosen by measurement (README): the paper's SGD, lr 0.01, weights
// N(0, 0.01^2) (the paper's §5), and Caffe's 0.1 for the "positive" biases, since the paper's 1
// can collapse on small data (bvlc_alexnet: "initialization to 1 gave flat loss").
const PRESET = { classes: 10, perClass: 120, valPerClass: 20, size: 76, crop: 67, epochs: 12, batchSize: 32, lr: 0.01, positiveBias: 0.1, patience: 3 };
const devices = args.includes('--devices') ? args[args.indexOf('--devices') + 1].split(',') : ['cpu:0'];
const t0 = performance.now();
const sample = join(here, '.sample');
const raw = join(sample, 'raw'), prepared = join(sample, `prepared-${PRESET.size}`);
if (!existsSync(join(raw, 'LOC_synset_mapping.txt'))) {
  console.log(`creating the sample ImageNet in ${raw} ...`);
  await createSampleImageNet({ dir: raw, classes: PRESET.classes, perClass: PRESET.perClass, valPerClass: PRESET.valPerClass, seed: 0 });
}
if (!existsSync(join(prepared, 'manifest.json'))) {
  console.log(`preparing shards (${PRESET.size}x${PRESET.size}) and statistics in ${prepared} ...`);
  await prepareImageNet({ source: raw, out: prepared, size: PRESET.size, progress: true });
}
const out = join(here, 'out');
await rm(out, { recursive: true, force: true });
console.log(`training the paper's network on ${devices.join(' and ')} (${PRESET.epochs} epochs, batch ${PRESET.batchSize}) ...`);
const r = await runTrain({ data: prepared, out, model: 'paper', devices, crop: PRESET.crop, epochs: PRESET.epochs, batchSize: PRESET.batchSize,
  lr: PRESET.lr, positiveBias: PRESET.positiveBias, patience: PRESET.patience, seed: 0 });
const last = r.history.at(-1);
const chance = 1 - 1 / PRESET.classes;
console.log(`\nvalidation top-1 error ${(100 * last.valTop1Error).toFixed(1)}% (chance: ${(100 * chance).toFixed(0)}%), top-5 error ${(100 * last.valTop5Error).toFixed(1)}%`);
console.log(`checkpoint: ${r.checkpoint}`);
for (const p of r.pictures) console.log(`picture:    ${p}`);
console.log(`done in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
if (!(last.valTop1Error < chance - 0.15)) {
  console.error('the demo did not learn: validation error is near chance');
  process.exit(1);
}
