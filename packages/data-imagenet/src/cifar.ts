/**
 * CIFAR-10 in its binary version, as distributed (cifar-10-binary.tar.gz, unpacked): data_batch_1.bin
 * ... data_batch_5.bin and test_batch.bin, each a run of 3073-byte records: the label (0..9), then
 * the 32x32 image as 1024 red, 1024 green and 1024 blue bytes, rows top to bottom. The paper's
 * Figure 1 (§3.1, ReLU against tanh) is a CIFAR-10 experiment. Images are held decoded in shared
 * memory, which the loader's workers read without copying (50 000 images are 150 MB).
 *
 * createSampleCifar10 writes a small set in the same format from the sample generator's drawings,
 * for tests and demos; nothing is downloaded.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import sharp from 'sharp';
import { checkNonNegativeInteger, checkPositiveInteger, ImageNetDataError } from './errors.js';
import type { Dataset } from './loader.js';
import { drawSampleImage } from './sample.js';

export const CIFAR10_CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'] as const;
const SIDE = 32, PLANE = SIDE * SIDE, RECORD = 1 + 3 * PLANE;

/** The files of a split. */
export function cifar10Files(split: 'train' | 'test'): string[] {
  return split === 'train' ? [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`) : ['test_batch.bin'];
}

/**
 * Opens a split of CIFAR-10's binary version in `dir` as a data set of 32x32 images (classes named
 * as CIFAR-10's batches.meta.txt names them). A missing file, a file that is not whole records, or a
 * label outside 0..9 is an ImageNetDataError naming the file.
 */
export async function openCifar10(dir: string, split: 'train' | 'test' = 'train'): Promise<Dataset> {
  const root = resolve(dir);
  const files = cifar10Files(split).map((f) => join(root, f));
  const missing = files.filter((f) => !existsSync(f));
  if (missing.length > 0) {
    throw new ImageNetDataError(`${root} is not CIFAR-10's binary version: ${missing.map((f) => f.slice(root.length + 1)).join(', ')} missing ` +
      '(expected data_batch_1.bin ... data_batch_5.bin and test_batch.bin, as cifar-10-binary.tar.gz unpacks)', missing[0]);
  }
  const sizes = await Promise.all(files.map(async (f) => (await stat(f)).size));
  for (const [i, f] of files.entries()) {
    if (sizes[i]! % RECORD !== 0 || sizes[i] === 0) throw new ImageNetDataError(`${f} holds ${sizes[i]} bytes, not a whole number of ${RECORD}-byte CIFAR-10 records`, f);
  }
  const n = sizes.reduce((a, b) => a + b, 0) / RECORD;
  const pixels = new SharedArrayBuffer(n * PLANE * 3);
  const out = new Uint8Array(pixels);
  const labels = new Int32Array(n);
  let k = 0;
  for (const f of files) {
    const bytes = await readFile(f);
    for (let r = 0; r < bytes.length; r += RECORD, k++) {
      const label = bytes[r]!;
      if (label > 9) throw new ImageNetDataError(`${f} record ${r / RECORD} has label ${label}, outside CIFAR-10's 0..9`, f);
      labels[k] = label;
      // Planar RGB -> HWC, as every other source gives its images.
      const o = k * PLANE * 3;
      for (let p = 0; p < PLANE; p++) {
        out[o + 3 * p] = bytes[r + 1 + p]!;
        out[o + 3 * p + 1] = bytes[r + 1 + PLANE + p]!;
        out[o + 3 * p + 2] = bytes[r + 1 + 2 * PLANE + p]!;
      }
    }
  }
  return {
    length: n, labels, classes: CIFAR10_CLASSES.map((name) => ({ wnid: name, name })), size: SIDE,
    source: { kind: 'pixels', pixels, index: Int32Array.from({ length: n }, (_, i) => i), size: SIDE }, statistics: null,
  };
}

export interface SampleCifar10Options {
  dir: string;
  /** Training images per class (default 100), spread over the five batch files. */
  perClass?: number;
  /** Test images per class (default 20). */
  testPerClass?: number;
  seed?: number;
}

/** Writes a CIFAR-10-format set drawn by the sample generator (ten shape-and-texture classes at 32x32). */
export async function createSampleCifar10(opts: SampleCifar10Options): Promise<{ dir: string; train: number; test: number }> {
  const dir = resolve(opts.dir);
  const per = checkPositiveInteger(opts.perClass ?? 100, 'perClass'), testPer = checkPositiveInteger(opts.testPerClass ?? 20, 'testPerClass');
  const seed = checkNonNegativeInteger(opts.seed ?? 0, 'seed');
  await mkdir(dir, { recursive: true });
  const record = async (c: number, i: number): Promise<Uint8Array> => {
    const img = drawSampleImage(seed, c, i, 48);
    const px = await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } }).resize(SIDE, SIDE, { fit: 'cover' }).raw().toBuffer();
    const r = new Uint8Array(RECORD);
    r[0] = c;
    for (let p = 0; p < PLANE; p++) for (let ch = 0; ch < 3; ch++) r[1 + ch * PLANE + p] = px[3 * p + ch]!;
    return r;
  };
  // Interleaved classes (as CIFAR-10's batches are), the training images cut into five files.
  const train = Array.from({ length: per * 10 }, (_, j) => [j % 10, Math.floor(j / 10)] as const);
  const test = Array.from({ length: testPer * 10 }, (_, j) => [j % 10, per + Math.floor(j / 10)] as const);
  const write = async (file: string, items: readonly (readonly [number, number])[]) =>
    writeFile(join(dir, file), Buffer.concat(await Promise.all(items.map(([c, i]) => record(c, i)))));
  for (let b = 0; b < 5; b++) await write(`data_batch_${b + 1}.bin`, train.slice(Math.floor((b * train.length) / 5), Math.floor(((b + 1) * train.length) / 5)));
  await write('test_batch.bin', test);
  await writeFile(join(dir, 'batches.meta.txt'), `${CIFAR10_CLASSES.join('\n')}\n`);
  return { dir, train: train.length, test: test.length };
}
