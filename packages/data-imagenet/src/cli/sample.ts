#!/usr/bin/env node
/** alexnet-sample-imagenet: writes the procedurally drawn sample ImageNet (see sample.ts). */
import { parseArgs } from 'node:util';
import { createSampleImageNet } from '../sample.js';

const usage = `Usage: alexnet-sample-imagenet --dir DIR [--classes 10] [--per-class 20] [--val-per-class N]
                               [--seed 0] [--val-layout flat|folders] [--long-side 160] [--quality 90]
Writes train/<wnid>/*.JPEG, a flat val/ with the devkit ground truth (or val/<wnid>/), and
LOC_synset_mapping.txt. Nothing is downloaded; the same seed gives the same files.`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      dir: { type: 'string' },
      classes: { type: 'string', default: '10' },
      'per-class': { type: 'string', default: '20' },
      'val-per-class': { type: 'string' },
      seed: { type: 'string', default: '0' },
      'val-layout': { type: 'string', default: 'flat' },
      'long-side': { type: 'string', default: '160' },
      quality: { type: 'string', default: '90' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help || !values.dir) {
    console.log(usage);
    process.exit(values.help ? 0 : 2);
  }
  const layout = values['val-layout'];
  if (layout !== 'flat' && layout !== 'folders') throw new Error(`--val-layout must be flat or folders, not ${layout}`);
  const t0 = performance.now();
  const r = await createSampleImageNet({
    dir: values.dir,
    classes: Number(values.classes),
    perClass: Number(values['per-class']),
    ...(values['val-per-class'] !== undefined ? { valPerClass: Number(values['val-per-class']) } : {}),
    seed: Number(values.seed),
    valLayout: layout,
    longSide: Number(values['long-side']),
    quality: Number(values.quality),
  });
  console.log(`wrote ${r.train} training and ${r.val} validation images of ${r.classes.length} classes to ${r.dir} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

main().catch((e: unknown) => {
  console.error((e as Error).message);
  process.exit(1);
});
