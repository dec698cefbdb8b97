/**
 * Figure 1 of the paper (§3.1): a four-layer convolutional network reaches 25 % training error on
 * CIFAR-10 six times faster with ReLUs (solid) than with tanh neurons (dashed). The paper does not
 * give the net; this uses cuda-convnet's CIFAR-10 example, the usual stand-in (cifarDescription of
 * @alexnet/layers: conv 32 5x5 - pool 3/2 - conv 32 5x5 - pool 3/2 - conv 64 5x5 - pool 3/2 - fc 10).
 * As in the paper, no regularization of any kind (no weight decay, no dropout, no augmentation: the
 * whole 32x32 image, the mean image subtracted), and each activation's learning rate chosen on its
 * own (--lr-relu, --lr-tanh). The training error is each epoch's running error over its batches.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { computeStatistics, createLoader, openCifar10, Progress, withStatistics } from '@alexnet/data-imagenet';
import { cifarDescription, createModel } from '@alexnet/layers';
import { SGD } from '@alexnet/optim';
import { tidy, type Device } from '@alexnet/tensor';
import { chartSvg, chartsPng } from './charts.js';
import { batchToTensors } from './data.js';
import { trainStep } from './step.js';

export interface Figure1Options {
  /** CIFAR-10's binary version (data_batch_1..5.bin, test_batch.bin). */
  data: string;
  out: string;
  /** Epochs per net (default 30). */
  epochs?: number;
  batchSize?: number;
  /** Learning rates, each chosen for its net (defaults 0.01 and 0.01). */
  lrRelu?: number;
  lrTanh?: number;
  momentum?: number;
  seed?: number;
  workers?: number;
  device?: Device | string;
  progress?: boolean;
  log?: (line: string) => void;
}

export interface Figure1Result {
  /** Training error per epoch, for each activation. */
  curves: { relu: number[]; tanh: number[] };
  /** The epoch (fractional: linear between epoch ends) at which each first reached 25 %, or null. */
  reach: { relu: number | null; tanh: number | null };
  /** tanh's epochs to 25 % over ReLU's (the paper: about six), or null when either did not reach it. */
  ratio: number | null;
  png: string;
  json: string;
  /** One sentence for the user. */
  summary: string;
}

export const FIGURE1_TARGET = 0.25;

/**
 * The first (fractional) epoch at which a curve of per-epoch errors reaches `target`: epoch e ends at
 * x = e, the start (x = 0) is chance; between epoch ends the curve is a straight line, as drawn.
 */
export function epochsToReach(errors: readonly number[], target = FIGURE1_TARGET, start = 0.9): number | null {
  let prevX = 0, prevY = start;
  for (const [i, y] of errors.entries()) {
    const x = i + 1;
    if (y <= target) return prevY <= target ? prevX : prevX + ((prevY - target) / (prevY - y)) * (x - prevX);
    prevX = x; prevY = y;
  }
  return null;
}

export async function figure1(opts: Figure1Options): Promise<Figure1Result> {
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const out = resolve(opts.out);
  await mkdir(out, { recursive: true });
  const epochs = opts.epochs ?? 30, batchSize = opts.batchSize ?? 128, seed = opts.seed ?? 0;
  const raw = await openCifar10(opts.data, 'train');
  // The mean image (§2's preprocessing) of the whole training set: CIFAR-10 is small.
  const stats = await computeStatistics(raw, { samples: raw.length, seed, ...(opts.workers !== undefined ? { workers: opts.workers } : {}) });
  const train = withStatistics(raw, stats);
  const curves = { relu: [] as number[], tanh: [] as number[] };
  log(`Figure 1 (§3.1): cuda-convnet's four-layer CIFAR-10 net, ${raw.length} training images, ${epochs} epochs of batch ${batchSize}, no regularization`);
  for (const activation of ['relu', 'tanh'] as const) {
    const lr = (activation === 'relu' ? opts.lrRelu : opts.lrTanh) ?? 0.01;
    const model = createModel(cifarDescription({ activation }), { devices: [opts.device ?? 'cpu:0'], seed });
    const sgd = new SGD(model.parameters(), { lr, momentum: opts.momentum ?? 0.9, weightDecay: 0, form: 'paper' });
    const loader = createLoader(train, { batchSize, seed, mode: 'train', crop: 32, flip: false, lighting: false, mean: 'image', dropLast: train.length >= batchSize, ...(opts.workers !== undefined ? { workers: opts.workers } : {}) });
    const dev = model.devices[0]!;
    try {
      for (let e = 0; e < epochs; e++) {
        const bar = new Progress({ label: `${activation} epoch ${e + 1}`, total: loader.batchesPerEpoch, unit: 'img', unitsPerStep: batchSize, enabled: opts.progress ?? true });
        let wrong = 0, seen = 0, step = e * loader.batchesPerEpoch;
        for await (const batch of loader.epoch(e)) {
          const { loss, correct } = tidy(() => {
            const { images, labels } = batchToTensors(batch, dev);
            return trainStep(model, sgd, images, labels, step++);
          });
          const [l, c] = await Promise.all([loss.data(), correct.data()]);
          loss.dispose(); correct.dispose();
          if (!Number.isFinite(l[0]!)) throw new Error(`the ${activation} net's loss became ${l[0]} in epoch ${e + 1}: lower its learning rate (--lr-${activation}, now ${lr})`);
          wrong += batch.labels.length - c[0]!;
          seen += batch.labels.length;
          bar.update(batch.index + 1, { 'train error': `${((100 * wrong) / seen).toFixed(1)}%` });
        }
        bar.finish();
        curves[activation].push(wrong / seen);
      }
    } finally {
      await loader.close();
      sgd.dispose();
      model.dispose();
    }
    log(`${activation}: training error ${curves[activation].map((v) => `${(100 * v).toFixed(1)}%`).join(' ')}`);
  }
  const reach = { relu: epochsToReach(curves.relu), tanh: epochsToReach(curves.tanh) };
  const ratio = reach.relu !== null && reach.tanh !== null && reach.relu > 0 ? reach.tanh / reach.relu : null;
  const fmt = (r: number | null) => (r === null ? `did not reach 25 % in ${epochs} epochs` : `reached 25 % at epoch ${r.toFixed(2)}`);
  const summary = `ReLU ${fmt(reach.relu)}, tanh ${fmt(reach.tanh)}` +
    (ratio !== null ? `: tanh needed ${ratio.toFixed(2)}x the epochs of ReLU (the paper: about 6x)` : reach.relu !== null ? `: tanh needed more than ${(epochs / reach.relu).toFixed(2)}x the epochs of ReLU` : '');
  const svg = chartSvg([
    { label: 'ReLU', color: '#1f77b4', points: curves.relu.map((v, i) => [i + 1, v] as const) },
    { label: 'tanh', color: '#d62728', dash: '6 4', points: curves.tanh.map((v, i) => [i + 1, v] as const) },
  ], { title: 'Figure 1 (§3.1): training error on CIFAR-10, ReLU (solid) and tanh (dashed)', xLabel: 'epochs', yLabel: 'training error rate', yMax: 0.9,
    yFormat: (v) => `${Math.round(v * 100)} %`, marks: [{ y: FIGURE1_TARGET, label: '25 %' }], width: 760, height: 460 });
  const png = join(out, 'figure1.png'), json = join(out, 'figure1.json');
  await writeFile(png, await chartsPng([svg], 760, 460));
  await writeFile(json, `${JSON.stringify({ net: 'cifar-4layer (cuda-convnet)', epochs, batchSize, lr: { relu: opts.lrRelu ?? 0.01, tanh: opts.lrTanh ?? 0.01 }, seed, curves, reach, ratio, summary }, null, 2)}\n`);
  return { curves, reach, ratio, png, json, summary };
}
