// A small prepared sample ImageNet for the trainer's tests (generated, nothing downloaded).
import { existsSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSampleImageNet, prepareImageNet } from '@alexnet/data-imagenet';

export interface Fixture { root: string; raw: string; prepared: string }

/** 10 classes, `perClass` training images each, prepared at 76x76 (the demo's 67x67 crops). */
export async function sampleFixture(perClass = 40, valPerClass = 8): Promise<Fixture> {
  const root = await mkdtemp(join(tmpdir(), 'alexnet-train-'));
  const raw = join(root, 'raw'), prepared = join(root, 'prepared');
  await createSampleImageNet({ dir: raw, classes: 10, perClass, valPerClass, seed: 1, longSide: 96 });
  if (!existsSync(join(prepared, 'manifest.json'))) await prepareImageNet({ source: raw, out: prepared, size: 76, workers: 2 });
  return { root, raw, prepared };
}

/** The options every small test run shares (the demo's settings). */
export const SMALL = { crop: 67, batchSize: 16, lr: 0.01, positiveBias: 0.1, progress: false, workers: 1, log: () => undefined } as const;
