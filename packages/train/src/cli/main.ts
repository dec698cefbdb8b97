#!/usr/bin/env node
/**
 * `alexnet`: prepare, train, eval, predict, visualize, sample. Bad input gets a sentence, not a stack
 * trace (set ALEXNET_DEBUG=1 for the trace).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { createSampleImageNet, prepareImageNet } from '@alexnet/data-imagenet';
import { exportOnnx, exportSafetensors, importTorchvision } from '@alexnet/interop';
import { startMonitor, type Monitor } from '@alexnet/monitor';
import { loadCheckpoint, saveCheckpoint } from '../checkpoint.js';
import { compareRuns } from '../compare.js';
import { figure1 } from '../figure1.js';
import '@alexnet/tensor';
import { evaluateCheckpoint, runTrain, visualizeCheckpoint } from '../commands.js';
import { loadTrained, predict } from '../inference.js';
import { PAPER_LEARNING as P, type ModelName } from '@alexnet/layers';
import { applyPrecision, type Precision } from '../precision.js';
import { helpText, parseCommand, UsageError, type CommandSpec, type OptionSpec } from './args.js';

const WORKERS: OptionSpec = { name: 'workers', short: 'j', kind: 'int', min: 0, help: 'loader threads (default: all cores; 0: on the main thread)' };
const DEVICE: OptionSpec = { name: 'device', kind: 'string', meta: 'NAME', default: 'cpu:0', help: 'device: cpu:0, cuda:0, ...' };
const CHECKPOINT: OptionSpec = { name: 'checkpoint', kind: 'string', meta: 'FILE', required: true, help: 'a checkpoint written by alexnet train' };
const PRECISION: OptionSpec = {
  name: 'precision', kind: 'choice', choices: ['fp32', 'bf16'],
  help: 'the CPU engine\'s GEMM inputs: fp32, or bf16 with fp32 accumulation and master weights (needs AVX512_BF16; refused otherwise) (default fp32, or ALEXNET_CPU_PRECISION)',
};
const MAX_BAD: OptionSpec = {
  name: 'max-bad-images', kind: 'int', min: 0, default: 10,
  help: 'images that may fail to load (deleted or damaged after indexing) before the run stops; each is named',
};

const COMMANDS: Record<string, CommandSpec> = {
  prepare: {
    name: 'prepare', summary: 'index an ImageNet folder, write 256x256 shards and the training-set statistics (§2, §4.1)',
    positional: { meta: 'DIR', option: 'data', help: 'the ImageNet folder (the same as --data)' },
    options: [
      { name: 'data', kind: 'string', meta: 'DIR', required: true, help: 'ImageNet folder: train/<wnid>/*.JPEG, val/ (flat + ground truth, or val/<wnid>/)' },
      { name: 'out', kind: 'string', meta: 'DIR', required: true, help: 'where shards, manifest.json and statistics go' },
      { name: 'size', kind: 'int', min: 8, max: 4096, default: P.imageSize, help: 'side of the stored images (§2: 256; smaller for demos)' },
      { ...WORKERS, help: 'decoding threads (default: all cores)' },
      { name: 'encoding', kind: 'choice', choices: ['raw', 'jpeg'], default: 'raw', help: 'raw pixels (ILSVRC-2012: about 250 GB) or JPEG records (about a tenth of that)' },
      { name: 'quality', kind: 'int', min: 1, max: 100, default: 90, help: 'JPEG quality for --encoding jpeg' },
      { name: 'shard-size', kind: 'int', min: 1, default: 1024, help: 'images per shard' },
    ],
  },
  train: {
    name: 'train', summary: 'train AlexNet with the paper\'s SGD and schedule (§5), evaluating after every epoch',
    positional: { meta: 'DIR', option: 'data', help: 'prepared shards (alexnet prepare) or a raw ImageNet folder (the same as --data)' },
    options: [
      { name: 'data', kind: 'string', meta: 'DIR', required: true, help: 'prepared shards or a raw ImageNet folder' },
      { name: 'model', short: 'a', aliases: ['arch'], kind: 'choice', choices: ['paper', 'paper-half', 'torchvision'], default: 'paper', help: 'the two-tower net of §3.5, its one-tower half, or torchvision\'s' },
      { name: 'devices', kind: 'list', meta: 'LIST', default: ['cpu:0'], help: 'one device, or two for the two-tower placement (§3.2): cpu:0,cpu:1 or cuda:0,cuda:1' },
      { name: 'epochs', kind: 'int', min: 1, default: P.epochs, help: 'epochs (§5: roughly 90 passes over ImageNet)' },
      { name: 'batch-size', short: 'b', aliases: ['batch'], kind: 'int', min: 1, default: P.batchSize, help: 'images per step (§5)' },
      { name: 'lr', aliases: ['learning-rate'], kind: 'number', min: 0, exclusiveMin: true, default: P.lr, help: 'initial learning rate (§5)' },
      { name: 'momentum', kind: 'number', min: 0, max: 1, default: P.momentum, help: 'momentum (§5)' },
      { name: 'weight-decay', aliases: ['wd'], kind: 'number', min: 0, default: P.weightDecay, help: 'weight decay (§5)' },
      { name: 'no-bias-decay', kind: 'boolean', help: 'exempt the biases from weight decay (cuda-convnet and Caffe do; the paper\'s rule decays every weight)' },
      { name: 'resume', kind: 'string', meta: 'FILE', help: 'continue from a checkpoint' },
      { name: 'weights', kind: 'string', meta: 'FILE', help: 'start from a checkpoint\'s weights (ours, or alexnet import\'s) on this data; a new last layer when the classes differ' },
      { name: 'out', kind: 'string', meta: 'DIR', default: 'alexnet-run', help: 'checkpoints, metrics.jsonl and pictures' },
      { name: 'crop', kind: 'int', min: 67, max: 4096, default: P.crop, meta: '227|224|N', help: 'input crop: 227 (conv1 unpadded), 224 (conv1 padded by 2), or a side >= 67 for small images' },
      { name: 'seed', kind: 'int', min: 0, default: 0, help: 'seed of everything random' },
      { name: 'print-freq', short: 'p', kind: 'int', min: 1, help: 'also print a log line every N steps (default: only the live progress line)' },
      { name: 'checkpoint-every', kind: 'int', min: 0, default: 0, help: 'also save every N steps (0: epoch ends only)' },
      { name: 'positive-bias', kind: 'number', min: 0, default: P.positiveBias, help: 'bias of conv2/4/5, fc6/7 (§5: 1; 0.1 avoids collapse on small data)' },
      { name: 'weight-std', kind: 'number', min: 0, exclusiveMin: true, default: P.weightStd, help: 'standard deviation of the initial weights (§5)' },
      { name: 'patience', kind: 'int', min: 0, default: P.schedule.patience, help: 'epochs without improvement before lr / 10 (§5)' },
      { name: 'val-fraction', kind: 'number', min: 0, max: 1, exclusiveMin: true, help: 'with no validation split: hold back this fraction of the training images to evaluate on' },
      { name: 'stats-samples', kind: 'int', min: 1, default: 5000, help: 'images sampled for the mean image and PCA (§2, §4.1) when the data has no statistics' },
      { name: 'ten-crop', kind: 'boolean', help: 'evaluate with the 10-crop average (§4.1)' },
      { name: 'no-lrn', kind: 'boolean', help: 'ablation: no local response normalization (§3.3)' },
      { name: 'pool', kind: 'choice', choices: ['3/2', '2/2'], default: '3/2', help: 'ablation: max-pool size/stride (§3.4: 3/2 overlapping, 2/2 not)' },
      { name: 'no-dropout', kind: 'boolean', help: 'ablation: no dropout (§4.2)' },
      { name: 'no-lighting', kind: 'boolean', help: 'ablation: no PCA lighting (§4.1)' },
      { name: 'activation', kind: 'choice', choices: ['relu', 'tanh'], default: 'relu', help: 'the neurons (§3.1: ReLU, the paper\'s; tanh, Figure 1\'s comparison)' },
      PRECISION,
      WORKERS,
      MAX_BAD,
      { name: 'monitor', kind: 'int', min: 0, max: 65535, meta: 'PORT', bareValue: '6006', help: 'serve the live page of the run (alexnet monitor) on 127.0.0.1:PORT (6006; 0: any free port) while it trains' },
      { name: 'max-steps', kind: 'int', min: 1, help: 'stop after N steps' },
    ],
  },
  eval: {
    name: 'eval', summary: 'top-1 and top-5 error of a checkpoint on a data set\'s validation split',
    positional: { meta: 'DIR', option: 'data', help: 'prepared shards or an ImageNet folder with val/ (the same as --data)' },
    options: [
      CHECKPOINT,
      { name: 'data', kind: 'string', meta: 'DIR', required: true, help: 'prepared shards or an ImageNet folder (only val/ is needed)' },
      { name: 'ten-crop', kind: 'boolean', help: 'average the 10 patches (§4.1)' },
      DEVICE,
      PRECISION,
      { name: 'batch-size', short: 'b', aliases: ['batch'], kind: 'int', min: 1, default: 64, help: 'images per batch' },
      WORKERS,
      MAX_BAD,
    ],
  },
  predict: {
    name: 'predict', summary: 'the five most probable classes of each image, with names (§6.1)',
    positional: { meta: 'IMAGE...', many: true, help: 'image files (JPEG, PNG, WebP, ...)' },
    options: [CHECKPOINT, DEVICE, PRECISION, { name: 'json', kind: 'boolean', help: 'print JSON' }],
  },
  visualize: {
    name: 'visualize', summary: 'PNGs: conv1 kernels (Figure 3), training curves, nearest neighbours in the last hidden layer (Figure 4)',
    options: [
      CHECKPOINT,
      { name: 'data', kind: 'string', meta: 'DIR', help: 'data for Figure 4 (validation queries, training neighbours)' },
      { name: 'out', kind: 'string', meta: 'DIR', help: 'where the PNGs go (default: beside the checkpoint)' },
      DEVICE,
      { name: 'queries', kind: 'int', min: 1, default: 4, help: 'validation images shown in Figure 4' },
      { name: 'bank', kind: 'int', min: 1, default: 1000, help: 'training images, drawn uniformly, among which neighbours are searched' },
      { name: 'seed', kind: 'int', min: 0, default: 0, help: 'seed of the draw of queries and bank' },
    ],
  },
  import: {
    name: 'import', summary: 'a checkpoint from the file torch.save writes of torchvision\'s AlexNet (its 1000 classes and preprocessing)',
    options: [
      { name: 'torchvision', kind: 'string', meta: 'FILE.pth', required: true, help: 'torch.save(torchvision.models.alexnet(...).state_dict(), FILE): zip or legacy format; nothing in it is run' },
      { name: 'out', kind: 'string', meta: 'FILE', required: true, help: 'the checkpoint to write (predict, eval and train --weights take it)' },
    ],
  },
  export: {
    name: 'export', summary: 'a checkpoint as ONNX (for onnxruntime) or as safetensors by PyTorch names',
    options: [
      CHECKPOINT,
      { name: 'onnx', kind: 'string', meta: 'FILE', help: 'write ONNX (opset 13, any batch size)' },
      { name: 'form', kind: 'choice', choices: ['grouped', 'towers'], default: 'grouped', help: 'the paper net as on one device (grouped convolutions) or as two towers (§3.2)' },
      { name: 'onnx-lrn', kind: 'choice', choices: ['conv', 'node'], default: 'conv', help: 'LRN (§3.3) in the ONNX graph: plain operators (a banded 1x1 convolution; faster in onnxruntime) or the LRN operator' },
      { name: 'safetensors', kind: 'string', meta: 'FILE', help: 'write the bare weights by PyTorch names (load_state_dict(strict=True) takes them)' },
    ],
  },
  figure1: {
    name: 'figure1', summary: 'the paper\'s Figure 1 (§3.1): a four-layer CIFAR-10 net with ReLU and with tanh, training error against epochs',
    positional: { meta: 'CIFAR_DIR', option: 'data', help: 'CIFAR-10\'s binary version (data_batch_1..5.bin, test_batch.bin); the same as --data' },
    options: [
      { name: 'data', kind: 'string', meta: 'DIR', required: true, help: 'CIFAR-10\'s binary version, as cifar-10-binary.tar.gz unpacks' },
      { name: 'out', kind: 'string', meta: 'DIR', default: 'figure1', help: 'where figure1.png and figure1.json go' },
      { name: 'epochs', kind: 'int', min: 1, default: 30, help: 'epochs for each net' },
      { name: 'batch-size', short: 'b', aliases: ['batch'], kind: 'int', min: 1, default: 128, help: 'images per step' },
      { name: 'lr-relu', kind: 'number', min: 0, exclusiveMin: true, default: 0.01, help: 'the ReLU net\'s learning rate (the paper chose each net\'s on its own)' },
      { name: 'lr-tanh', kind: 'number', min: 0, exclusiveMin: true, default: 0.01, help: 'the tanh net\'s learning rate' },
      { name: 'seed', kind: 'int', min: 0, default: 0, help: 'seed of initialisation and shuffling' },
      DEVICE, WORKERS,
    ],
  },
  compare: {
    name: 'compare', summary: 'the curves of several runs in one picture and a table of their final errors (the claims of §3.1-§4.2)',
    positional: { meta: 'RUN_DIR...', many: true, help: 'folders alexnet train --out wrote' },
    options: [{ name: 'out', kind: 'string', meta: 'FILE.png', default: 'compare.png', help: 'where the picture goes' }],
  },
  monitor: {
    name: 'monitor', summary: 'a live page of a run: loss, validation errors, learning rate, images/s, progress, the recipe and the conv1 kernels',
    positional: { meta: 'RUN_DIR', option: 'run', help: 'the folder alexnet train --out writes (the same as --run)' },
    options: [
      { name: 'run', kind: 'string', meta: 'DIR', required: true, help: 'the run folder (metrics.jsonl, checkpoint.safetensors)' },
      { name: 'port', kind: 'int', min: 0, max: 65535, default: 6006, help: 'port (0: any free port)' },
      { name: 'host', kind: 'string', meta: 'ADDRESS', default: '127.0.0.1', help: 'address to listen on (0.0.0.0 for every interface)' },
    ],
  },
  sample: {
    name: 'sample', summary: 'write the procedurally drawn sample ImageNet (for demos and tests; nothing is downloaded)',
    positional: { meta: 'DIR', option: 'dir', help: 'the same as --dir' },
    options: [
      { name: 'dir', kind: 'string', meta: 'DIR', required: true, help: 'where to write train/, val/ and LOC_synset_mapping.txt' },
      { name: 'classes', kind: 'int', min: 1, default: 10, help: 'classes' },
      { name: 'per-class', kind: 'int', min: 1, default: 20, help: 'training images per class' },
      { name: 'val-per-class', kind: 'int', min: 0, meta: 'N', help: 'validation images per class (default: a fifth of --per-class, at least 1)' },
      { name: 'val-layout', kind: 'choice', choices: ['flat', 'folders'], default: 'flat', help: 'val/ flat with the devkit ground truth (as ILSVRC-2012 ships), or val/<wnid>/' },
      { name: 'long-side', kind: 'int', min: 16, max: 4096, default: 160, help: 'longer side of the drawn images' },
      { name: 'quality', kind: 'int', min: 1, max: 100, default: 90, help: 'JPEG quality' },
      { name: 'seed', kind: 'int', min: 0, default: 0, help: 'seed (the same seed writes the same files)' },
    ],
  },
};

function usage(): string {
  const w = Math.max(...Object.keys(COMMANDS).map((k) => k.length));
  return ['alexnet: AlexNet (Krizhevsky, Sutskever, Hinton 2012) in TypeScript', '', 'usage: alexnet <command> [options]   (alexnet <command> --help)', '', 'commands:',
    ...Object.values(COMMANDS).map((c) => `  ${c.name.padEnd(w)}  ${c.summary}`)].join('\n');
}

/** @alexnet/cuda is an optional dependency: when it is installed, importing it registers 'cuda' devices. */
async function loadOptionalBackends(): Promise<void> {
  try {
    await import('@alexnet/cuda');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ERR_MODULE_NOT_FOUND') throw e;
  }
}

/** bf16 inference is said on stderr (fp32, the default, is not). */
function sayPrecision(p: Precision): void {
  if (p === 'bf16') console.error('precision: bf16 GEMM inputs, fp32 accumulation (the CPU engine\'s bf16 mode)');
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') { console.log(usage()); return cmd ? 0 : 2; }
  const spec = COMMANDS[cmd];
  if (!spec) throw new UsageError(`unknown command "${cmd}"\n\n${usage()}`);
  const { values: v, positionals, help, given } = parseCommand(spec, rest);
  if (help) { console.log(helpText(spec)); return 0; }
  await loadOptionalBackends();
  const str = (k: string) => v[k] as string | undefined, int = (k: string) => v[k] as number | undefined;
  const workers = int('workers') !== undefined ? { workers: int('workers')! } : {};
  switch (cmd) {
    case 'prepare': {
      const r = await prepareImageNet({ source: str('data')!, out: str('out')!, encoding: str('encoding') as 'raw' | 'jpeg', size: int('size')!,
        quality: int('quality')!, shardSize: int('shard-size')!, ...workers, progress: true, log: (m) => console.error(m) });
      console.log(`prepared ${Object.entries(r.splits).map(([k, s]) => `${k}: ${s!.images} images in ${s!.shards} shards`).join(', ')}; ` +
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
      let monitor: Monitor | null = null;
      if (int('monitor') !== undefined) {
        await mkdir(str('out')!, { recursive: true });
        monitor = await startMonitor({ runDir: str('out')!, port: int('monitor')! });
        console.error(`monitor: ${monitor.url} (alexnet monitor ${str('out')} serves it after the run)`);
      }
      const r = await runTrain({
        data: str('data')!, out: str('out')!, devices: v.devices as string[],
        // With --weights, the model and its input size come from the weights unless given.
        ...(given.has('model') || !str('weights') ? { model: str('model') as ModelName } : {}),
        ...(given.has('crop') || !str('weights') ? { crop: int('crop')! } : {}),
        epochs: int('epochs')!, batchSize: int('batch-size')!, lr: v.lr as number, momentum: v.momentum as number, weightDecay: v['weight-decay'] as number,
        biasDecay: !v['no-bias-decay'], seed: int('seed')!, checkpointEvery: int('checkpoint-every')!,
        positiveBias: v['positive-bias'] as number, weightStd: v['weight-std'] as number, patience: int('patience')!, tenCrop: !!v['ten-crop'],
        resume: str('resume'), ...(str('weights') ? { weights: str('weights')! } : {}), statsSamples: int('stats-samples')!, maxBadImages: int('max-bad-images')!, ...workers,
        ...(v['no-lrn'] ? { lrn: false } : {}), ...(v['no-dropout'] ? { dropout: false } : {}), ...(v['no-lighting'] ? { lighting: false } : {}),
        ...(str('pool') === '2/2' ? { pool: { size: 2, stride: 2 } } : {}), ...(given.has('activation') ? { activation: str('activation') as 'relu' | 'tanh' } : {}),
        ...(v['val-fraction'] !== undefined ? { valFraction: v['val-fraction'] as number } : {}),
        ...(int('print-freq') !== undefined ? { printFreq: int('print-freq')! } : {}),
        ...(int('max-steps') !== undefined ? { maxSteps: int('max-steps')! } : {}),
        ...(str('precision') ? { precision: str('precision') as Precision } : {}),
        signal: ac.signal,
      }).finally(() => monitor?.close());
      console.log(`${r.stopped === 'aborted' ? 'interrupted' : 'finished'} after ${r.steps} steps; checkpoint ${r.checkpoint}; ${r.imagesPerSecond.toFixed(1)} img/s`);
      return r.stopped === 'aborted' ? 130 : 0;
    }
    case 'eval': {
      sayPrecision(applyPrecision(str('precision') as Precision | undefined, [str('device')!]));
      const r = await evaluateCheckpoint(str('checkpoint')!, str('data')!,
        { tenCrop: !!v['ten-crop'], device: str('device')!, batchSize: int('batch-size')!, maxBadImages: int('max-bad-images')!, ...workers, progress: true, log: (m) => console.error(m) });
      console.log(`top-1 error ${(100 * r.top1Error).toFixed(2)}%, top-5 error ${(100 * r.top5Error).toFixed(2)}% on ${r.images} images (${v['ten-crop'] ? '10-crop' : 'centre crop'})` +
        (r.badImages.length ? `; ${r.badImages.length} image(s) could not be read and were scored as zeros` : ''));
      return 0;
    }
    case 'predict': {
      if (positionals.length === 0) throw new UsageError(`give at least one image\n\n${helpText(spec)}`);
      sayPrecision(applyPrecision(str('precision') as Precision | undefined, [str('device')!]));
      const t = await loadTrained(str('checkpoint')!, { devices: [str('device')!] });
      try {
        const preds = await predict(t, positionals.map((p) => resolve(p)));
        if (v.json) console.log(JSON.stringify(preds, null, 2));
        else for (const p of preds) console.log(`${p.file}\n${p.top5.map((c, i) => `  ${i + 1}. ${c.name} (${c.wnid}) ${(100 * c.probability).toFixed(1)}%`).join('\n')}`);
      } finally {
        t.model.dispose();
      }
      return 0;
    }
    case 'visualize': {
      const files = await visualizeCheckpoint(str('checkpoint')!, { data: str('data'), out: str('out'), device: str('device')!, queries: int('queries')!, bank: int('bank')!, seed: int('seed')! });
      console.log(`wrote ${files.join(', ')}`);
      return 0;
    }
    case 'import': {
      const imp = await importTorchvision(str('torchvision')!);
      await saveCheckpoint(str('out')!, {
        model: Object.fromEntries(imp.weights), optimizer: {},
        meta: { model: imp.model, data: imp.data, trainer: { importedFrom: imp.source }, optimizer: {} },
      });
      console.log(`${imp.summary}\nwrote ${resolve(str('out')!)}`);
      return 0;
    }
    case 'export': {
      if (!str('onnx') && !str('safetensors')) throw new UsageError(`give --onnx FILE or --safetensors FILE (or both)\n\n${helpText(spec)}`);
      const ck = await loadCheckpoint(str('checkpoint')!);
      const from = `checkpoint ${str('checkpoint')}`;
      if (str('onnx')) console.log((await exportOnnx(ck, str('onnx')!, { form: str('form') as 'grouped' | 'towers', lrn: str('onnx-lrn') as 'conv' | 'node', from })).summary);
      if (str('safetensors')) console.log((await exportSafetensors(ck, str('safetensors')!, { from })).summary);
      return 0;
    }
    case 'figure1': {
      const r = await figure1({ data: str('data')!, out: str('out')!, epochs: int('epochs')!, batchSize: int('batch-size')!, lrRelu: v['lr-relu'] as number,
        lrTanh: v['lr-tanh'] as number, seed: int('seed')!, device: str('device')!, ...workers, progress: true });
      console.log(`${r.summary}\nwrote ${r.png} and ${r.json}`);
      return 0;
    }
    case 'compare': {
      if (positionals.length === 0) throw new UsageError(`give at least one run folder\n\n${helpText(spec)}`);
      const c = await compareRuns(positionals);
      await writeFile(str('out')!, c.png);
      console.log(`${c.table}\n\nwrote ${resolve(str('out')!)}`);
      return 0;
    }
    case 'monitor': {
      const m = await startMonitor({ runDir: str('run')!, port: int('port')!, host: str('host')! });
      console.log(`serving ${m.runDir} at ${m.url} (Ctrl-C to stop)`);
      await new Promise<void>((done) => {
        const stop = () => { void m.close().then(done); };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
      return 0;
    }
    case 'sample': {
      const dir = str('dir')!;
      await mkdir(dir, { recursive: true });
      const r = await createSampleImageNet({
        dir, classes: int('classes')!, perClass: int('per-class')!, seed: int('seed')!, valLayout: str('val-layout') as 'flat' | 'folders',
        longSide: int('long-side')!, quality: int('quality')!, ...(int('val-per-class') !== undefined ? { valPerClass: int('val-per-class')! } : {}),
      });
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
