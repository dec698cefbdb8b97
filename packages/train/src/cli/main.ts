#!/usr/bin/env node
/**
 * `alexnet`: prepare, train, eval, predict, visualize, sample. Bad input gets a sentence, not a stack
 * trace (set ALEXNET_DEBUG=1 for the trace).
 */
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { createSampleImageNet, prepareImageNet } from '@alexnet/data-imagenet';
import '@alexnet/tensor';
import { evaluateCheckpoint, runTrain, visualizeCheckpoint } from '../commands.js';
import { loadTrained, predict } from '../inference.js';
import { helpText, intOption, numberOption, parseCommand, UsageError, type CommandSpec } from './args.js';

const COMMANDS: Record<string, CommandSpec> = {
  prepare: {
    name: 'prepare', summary: 'index an ImageNet folder, write 256x256 shards and the training-set statistics (§2, §4.1)',
    usage: 'alexnet prepare --data DIR --out DIR [--size 256] [--workers N] [--encoding raw|jpeg] [--quality 90] [--shard-size 1024]',
    options: { data: { type: 'string' }, out: { type: 'string' }, size: { type: 'string' }, workers: { type: 'string' }, encoding: { type: 'string' }, quality: { type: 'string' }, 'shard-size': { type: 'string' } },
    help: [['--data DIR', 'ImageNet folder: train/<wnid>/*.JPEG, val/ (flat + ground truth, or val/<wnid>/)'], ['--out DIR', 'where shards, manifest.json and statistics go'], ['--size N', 'side of the stored images (§2: 256; smaller for demos)'],
      ['--workers N', 'decoding threads (default: all cores)'], ['--encoding raw|jpeg', 'raw pixels (default) or JPEG records to save disk'], ['--quality Q', 'JPEG quality for --encoding jpeg (default 90)'],
      ['--shard-size N', 'images per shard (default 1024)']],
  },
  train: {
    name: 'train', summary: 'train AlexNet with the paper\'s SGD and schedule (§5), evaluating after every epoch',
    usage: 'alexnet train --data DIR [--model paper|paper-half|torchvision] [--devices cpu:0,cpu:1] [--epochs N] [--batch 128] [--lr 0.01] [--resume FILE] [--out DIR]',
    options: {
      data: { type: 'string' }, model: { type: 'string' }, devices: { type: 'string' }, epochs: { type: 'string' }, batch: { type: 'string' }, lr: { type: 'string' },
      resume: { type: 'string' }, out: { type: 'string' }, crop: { type: 'string' }, seed: { type: 'string' }, 'checkpoint-every': { type: 'string' },
      'positive-bias': { type: 'string' }, 'weight-std': { type: 'string' }, patience: { type: 'string' }, 'ten-crop': { type: 'boolean' }, workers: { type: 'string' }, 'max-steps': { type: 'string' },
    },
    help: [['--data DIR', 'prepared shards (alexnet prepare) or a raw ImageNet folder'], ['--model NAME', 'paper (default), paper-half or torchvision'],
      ['--devices LIST', 'one device, or two for the two-tower placement (§3.2): cpu:0,cpu:1 or cuda:0,cuda:1'], ['--epochs N', 'epochs (default 90)'],
      ['--batch N', 'batch size (default 128)'], ['--lr X', 'initial learning rate (default 0.01)'], ['--resume FILE', 'continue from a checkpoint'],
      ['--out DIR', 'checkpoints, metrics.jsonl and pictures (default ./alexnet-run)'], ['--crop 227|224', 'input crop (default 227)'], ['--seed N', 'seed of everything random (default 0)'],
      ['--checkpoint-every N', 'also save every N steps (default: epoch ends)'], ['--positive-bias X', 'bias of conv2/4/5, fc6/7 (§5: 1; 0.1 avoids collapse on small data)'],
      ['--weight-std X', 'standard deviation of the initial weights (§5: 0.01)'], ['--patience N', 'epochs without improvement before lr / 10 (default 1)'],
      ['--ten-crop', 'evaluate with the 10-crop average (§4.1)'], ['--workers N', 'loader threads (default: all cores)'], ['--max-steps N', 'stop after N steps']],
  },
  eval: {
    name: 'eval', summary: 'top-1 and top-5 error of a checkpoint on a data set\'s validation split',
    usage: 'alexnet eval --checkpoint FILE --data DIR [--ten-crop] [--device cpu:0]',
    options: { checkpoint: { type: 'string' }, data: { type: 'string' }, 'ten-crop': { type: 'boolean' }, device: { type: 'string' }, batch: { type: 'string' } },
    help: [['--checkpoint FILE', 'a checkpoint written by alexnet train'], ['--data DIR', 'prepared shards or a raw ImageNet folder'], ['--ten-crop', 'average the 10 patches (§4.1)'],
      ['--device NAME', 'device (default cpu:0)'], ['--batch N', 'batch size (default 64)']],
  },
  predict: {
    name: 'predict', summary: 'the five most probable classes of each image, with names (§6.1)',
    usage: 'alexnet predict --checkpoint FILE [--device cpu:0] IMAGE...', positionals: true,
    options: { checkpoint: { type: 'string' }, device: { type: 'string' }, json: { type: 'boolean' } },
    help: [['--checkpoint FILE', 'a checkpoint written by alexnet train'], ['--device NAME', 'device (default cpu:0)'], ['--json', 'print JSON']],
  },
  visualize: {
    name: 'visualize', summary: 'PNGs: conv1 kernels (Figure 3), training curves, nearest neighbours in fc7 (Figure 4)',
    usage: 'alexnet visualize --checkpoint FILE [--data DIR] [--out DIR]',
    options: { checkpoint: { type: 'string' }, data: { type: 'string' }, out: { type: 'string' }, device: { type: 'string' } },
    help: [['--checkpoint FILE', 'a checkpoint written by alexnet train'], ['--data DIR', 'data for Figure 4 (validation queries, training neighbours)'],
      ['--out DIR', 'where the PNGs go (default: beside the checkpoint)'], ['--device NAME', 'device (default cpu:0)']],
  },
  sample: {
    name: 'sample', summary: 'write the procedurally drawn sample ImageNet (for demos and tests; nothing is downloaded)',
    usage: 'alexnet sample --dir DIR [--classes 10] [--per-class 20] [--seed 0]',
    options: { dir: { type: 'string' }, classes: { type: 'string' }, 'per-class': { type: 'string' }, seed: { type: 'string' } },
    help: [['--dir DIR', 'where to write train/, val/ and LOC_synset_mapping.txt'], ['--classes N', 'classes (default 10)'], ['--per-class N', 'training images per class (default 20)'], ['--seed N', 'seed (default 0)']],
  },
};

function usage(): string {
  const w = Math.max(...Object.keys(COMMANDS).map((k) => k.length));
  return ['alexnet: AlexNet (Krizhevsky, Sutskever, Hinton 2012) in TypeScript', '', 'usage: alexnet <command> [options]   (alexnet <command> --help)', '', 'commands:',
    ...Object.values(COMMANDS).map((c) => `  ${c.name.padEnd(w)}  ${c.summary}`)].join('\n');
}

function need(values: Record<string, unknown>, name: string, spec: CommandSpec): string {
  const v = values[name];
  if (typeof v !== 'string' || v === '') throw new UsageError(`--${name} is required\n\n${helpText(spec)}`);
  return v;
}

/** @alexnet/cuda is an optional dependency: when it is installed, importing it registers 'cuda' devices. */
async function loadOptionalBackends(): Promise<void> {
  try {
    await import('@alexnet/cuda');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ERR_MODULE_NOT_FOUND') throw e;
  }
}

export async function main(argv: string[]): Promise<number> {
  await loadOptionalBackends();
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') { console.log(usage()); return cmd ? 0 : 2; }
  const spec = COMMANDS[cmd];
  if (!spec) throw new UsageError(`unknown command "${cmd}"\n\n${usage()}`);
  const { values, positionals } = parseCommand(spec, rest);
  if (values.help) { console.log(helpText(spec)); return 0; }
  switch (cmd) {
    case 'prepare': {
      const enc = (values.encoding as string | undefined) ?? 'raw';
      if (enc !== 'raw' && enc !== 'jpeg') throw new UsageError(`--encoding must be raw or jpeg, not "${enc}"`);
      const r = await prepareImageNet({ source: need(values, 'data', spec), out: need(values, 'out', spec), encoding: enc, size: intOption(values, 'size', 256),
        quality: intOption(values, 'quality', 90), shardSize: intOption(values, 'shard-size', 1024),
        ...(values.workers !== undefined ? { workers: intOption(values, 'workers', 1, 0) } : {}), progress: true });
      console.log(`prepared ${Object.entries(r.splits).map(([k, v]) => `${k}: ${v!.images} images in ${v!.shards} shards`).join(', ')}; ` +
        `${r.failures.length} unreadable file(s) skipped (listed in ${join(r.out, 'prepare-report.json')}); ${r.imagesPerSecond.toFixed(0)} img/s`);
      return 0;
    }
    case 'train': {
      const ac = new AbortController();
      let interrupts = 0;
      const onSig = () => {
        interrupts++;
        if (interrupts === 1) { process.stderr.write('\nstopping after this step and saving a checkpoint (Ctrl-C again to quit at once)\n'); ac.abort(); }
        else process.exit(130); // checkpoints are written atomically, so nothing is corrupted
      };
      process.on('SIGINT', onSig);
      process.on('SIGTERM', onSig);
      const r = await runTrain({
        data: need(values, 'data', spec), out: (values.out as string) ?? 'alexnet-run', model: (values.model as 'paper') ?? 'paper',
        devices: values.devices ? String(values.devices).split(',').map((s) => s.trim()) : undefined,
        epochs: intOption(values, 'epochs', 90), batchSize: intOption(values, 'batch', 128), lr: numberOption(values, 'lr', 0.01),
        crop: intOption(values, 'crop', 227, 67), seed: intOption(values, 'seed', 0, 0), checkpointEvery: intOption(values, 'checkpoint-every', 0, 0),
        positiveBias: numberOption(values, 'positive-bias', 1, (n) => n >= 0), weightStd: numberOption(values, 'weight-std', 0.01),
        patience: intOption(values, 'patience', 1, 0), tenCrop: !!values['ten-crop'], resume: values.resume as string | undefined,
        ...(values.workers !== undefined ? { workers: intOption(values, 'workers', 1, 0) } : {}),
        ...(values['max-steps'] !== undefined ? { maxSteps: intOption(values, 'max-steps', 1) } : {}),
        signal: ac.signal,
      });
      console.log(`${r.stopped === 'aborted' ? 'interrupted' : 'finished'} after ${r.steps} steps; checkpoint ${r.checkpoint}; ${r.imagesPerSecond.toFixed(1)} img/s`);
      return r.stopped === 'aborted' ? 130 : 0;
    }
    case 'eval': {
      const r = await evaluateCheckpoint(need(values, 'checkpoint', spec), need(values, 'data', spec),
        { tenCrop: !!values['ten-crop'], device: (values.device as string) ?? 'cpu:0', batchSize: intOption(values, 'batch', 64) });
      console.log(`top-1 error ${(100 * r.top1Error).toFixed(2)}%, top-5 error ${(100 * r.top5Error).toFixed(2)}% on ${r.images} images (${values['ten-crop'] ? '10-crop' : 'centre crop'})`);
      return 0;
    }
    case 'predict': {
      if (positionals.length === 0) throw new UsageError(`give at least one image\n\n${helpText(spec)}`);
      const t = await loadTrained(need(values, 'checkpoint', spec), { devices: [(values.device as string) ?? 'cpu:0'] });
      const preds = await predict(t, positionals.map((p) => resolve(p)));
      if (values.json) console.log(JSON.stringify(preds, null, 2));
      else for (const p of preds) console.log(`${p.file}\n${p.top5.map((c, i) => `  ${i + 1}. ${c.name} (${c.wnid}) ${(100 * c.probability).toFixed(1)}%`).join('\n')}`);
      t.model.dispose();
      return 0;
    }
    case 'visualize': {
      const files = await visualizeCheckpoint(need(values, 'checkpoint', spec), { data: values.data as string | undefined, out: values.out as string | undefined, device: (values.device as string) ?? 'cpu:0' });
      console.log(`wrote ${files.join(', ')}`);
      return 0;
    }
    case 'sample': {
      const dir = need(values, 'dir', spec);
      await mkdir(dir, { recursive: true });
      const r = await createSampleImageNet({ dir, classes: intOption(values, 'classes', 10), perClass: intOption(values, 'per-class', 20), seed: intOption(values, 'seed', 0, 0) });
      console.log(`wrote ${r.train} training and ${r.val} validation images of ${r.classes.length} classes to ${r.dir}`);
      return 0;
    }
  }
  return 2;
}

main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (e: Error) => {
  if (process.env.ALEXNET_DEBUG) console.error(e);
  else console.error(`alexnet: ${e.message}`);
  process.exitCode = e instanceof UsageError ? 2 : 1;
});
