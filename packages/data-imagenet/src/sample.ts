/**
 * A sample ImageNet for tests, examples and the demo, drawn procedurally (nothing is downloaded):
 * each class is a shape with a texture and a preferred hue; each image places one object at a
 * random position, scale and rotation on a random background with distractor blobs and noise. Hues
 * of neighbouring classes overlap and every shape comes in several textures, so neither colour nor
 * outline alone gives the class: a small convnet can learn it, but not trivially.
 *
 * Written in the ILSVRC-2012 layout: train/<wnid>/<wnid>_<n>.JPEG, val/ILSVRC2012_val_<8 digits>.JPEG
 * (flat, shuffled) with ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt (1-based
 * class numbers in devkit order) and its meta.mat, and LOC_synset_mapping.txt. Deterministic for a seed.
 */
import sharp from 'sharp';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { checkNonNegativeInteger, checkPositiveInteger } from './errors.js';
import { devkitMetaMat } from './matfile.js';
import { permutation, Rng } from './rng.js';

export interface SampleImageNetOptions {
  dir: string;
  /** Number of classes (default 10). */
  classes?: number;
  /** Training images per class (default 20). */
  perClass?: number;
  /** Validation images per class (default max(1, perClass / 5)). */
  valPerClass?: number;
  seed?: number;
  /** 'flat' (default: devkit ground truth) or 'folders' (val/<wnid>/). */
  valLayout?: 'flat' | 'folders';
  /** Longer side of the images, before a +-20 % jitter (default 160; ImageNet's typical is 500). */
  longSide?: number;
  /** JPEG quality (default 90). */
  quality?: number;
}

export interface SampleImageNet {
  dir: string;
  classes: { wnid: string; name: string }[];
  train: number;
  val: number;
}

const SHAPES = ['circle', 'square', 'triangle', 'ring', 'cross', 'diamond', 'star', 'hexagon', 'bar', 'crescent'] as const;
const TEXTURES = ['plain', 'striped', 'pinstriped', 'checked', 'dotted', 'ringed', 'shaded'] as const;

export function sampleWnid(c: number): string {
  return 'n0' + String(1000000 + ((c * 7919) % 8999999)).padStart(7, '0');
}

function inside(shape: number, u: number, v: number): boolean {
  const r2 = u * u + v * v;
  switch (SHAPES[shape]) {
    case 'circle': return r2 <= 1;
    case 'square': return Math.max(Math.abs(u), Math.abs(v)) <= 0.8;
    case 'triangle': return v <= 0.55 && 1.732 * u - v <= 1 && -1.732 * u - v <= 1;
    case 'ring': return r2 <= 1 && r2 >= 0.36;
    case 'cross': return (Math.abs(u) <= 0.3 && Math.abs(v) <= 1) || (Math.abs(v) <= 0.3 && Math.abs(u) <= 1);
    case 'diamond': return Math.abs(u) + Math.abs(v) <= 1;
    case 'star': return Math.sqrt(r2) <= 0.45 + 0.55 * (0.5 + 0.5 * Math.cos(5 * Math.atan2(v, u)));
    case 'hexagon': return Math.max(Math.abs(u) * 0.866 + Math.abs(v) * 0.5, Math.abs(v)) <= 0.9;
    case 'bar': return u * u + (v / 0.4) ** 2 <= 1;
    default: return r2 <= 1 && (u - 0.45) ** 2 + v * v > 0.49;
  }
}

function texture(t: number, u: number, v: number, phase: number): number {
  switch (TEXTURES[t]) {
    case 'plain': return 0;
    case 'striped': return Math.floor((v + 2) * 2.5 + phase) % 2;
    case 'pinstriped': return Math.floor((v + 2) * 7 + phase) % 2;
    case 'checked': return (Math.floor((u + 2) * 3 + phase) + Math.floor((v + 2) * 3)) % 2;
    case 'dotted': {
      const fu = ((u + 2) * 4 + phase) % 1 - 0.5, fv = ((v + 2) * 4) % 1 - 0.5;
      return fu * fu + fv * fv < 0.09 ? 1 : 0;
    }
    case 'ringed': return Math.floor(Math.sqrt(u * u + v * v) * 6 + phase) % 2;
    default: return Math.min(1, Math.max(0, (u + 1) / 2));
  }
}

function hsv(h: number, s: number, v: number): [number, number, number] {
  h = ((h % 360) + 360) % 360;
  const c = v * s, x = c * (1 - Math.abs(((h / 60) % 2) - 1)), m = v - c;
  const [r, g, b] = h < 60 ? [c, x, 0] : h < 120 ? [x, c, 0] : h < 180 ? [0, c, x] : h < 240 ? [0, x, c] : h < 300 ? [x, 0, c] : [c, 0, x];
  return [(r + m) * 255, (g + m) * 255, (b + m) * 255];
}

/** Draws image `i` of class `c` as RGB uint8 (width x height x 3). */
export function drawSampleImage(seed: number, c: number, i: number, longSide: number): { data: Uint8Array; width: number; height: number } {
  const rng = Rng.forKey(seed, c, i, 7);
  const long = Math.round(longSide * (0.8 + 0.4 * rng.uniform()));
  const short = Math.round(long * 0.75);
  const portrait = rng.uniform() < 0.2;
  const width = portrait ? short : long, height = portrait ? long : short;
  const shape = c % SHAPES.length;
  const tex = Math.floor(c / SHAPES.length) % TEXTURES.length;
  const classHue = (c * 137.508) % 360;
  const fg = hsv(classHue + (rng.uniform() - 0.5) * 90, 0.55 + 0.45 * rng.uniform(), 0.55 + 0.45 * rng.uniform());
  const fg2 = hsv(classHue + 180 + (rng.uniform() - 0.5) * 120, 0.3 + 0.7 * rng.uniform(), 0.2 + 0.6 * rng.uniform());
  const bgA = hsv(rng.uniform() * 360, rng.uniform() * 0.6, 0.2 + 0.8 * rng.uniform());
  const bgB = hsv(rng.uniform() * 360, rng.uniform() * 0.6, 0.2 + 0.8 * rng.uniform());
  const gAngle = rng.uniform() * 2 * Math.PI, gx = Math.cos(gAngle), gy = Math.sin(gAngle);
  const m = Math.min(width, height);
  const scale = m * (0.2 + 0.2 * rng.uniform());
  const cx = scale + rng.uniform() * (width - 2 * scale), cy = scale + rng.uniform() * (height - 2 * scale);
  const rot = rng.uniform() * 2 * Math.PI, cr = Math.cos(rot), sr = Math.sin(rot);
  const phase = rng.uniform();
  const blobs = Array.from({ length: 2 + rng.int(4) }, () => ({
    x: rng.uniform() * width, y: rng.uniform() * height, r: m * (0.04 + 0.1 * rng.uniform()),
    col: hsv(rng.uniform() * 360, rng.uniform(), rng.uniform()),
  }));
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const g = Math.min(1, Math.max(0, 0.5 + ((x / width - 0.5) * gx + (y / height - 0.5) * gy)));
      let col: [number, number, number] = [bgA[0] + (bgB[0] - bgA[0]) * g, bgA[1] + (bgB[1] - bgA[1]) * g, bgA[2] + (bgB[2] - bgA[2]) * g];
      for (const b of blobs) if ((x - b.x) ** 2 + (y - b.y) ** 2 <= b.r * b.r) col = b.col;
      const dx = (x - cx) / scale, dy = (y - cy) / scale;
      const u = dx * cr + dy * sr, v = -dx * sr + dy * cr;
      if (inside(shape, u, v)) {
        const t = texture(tex, u, v, phase);
        col = [fg[0] + (fg2[0] - fg[0]) * t, fg[1] + (fg2[1] - fg[1]) * t, fg[2] + (fg2[2] - fg[2]) * t];
      }
      const o = (y * width + x) * 3;
      for (let k = 0; k < 3; k++) data[o + k] = Math.max(0, Math.min(255, Math.round(col[k]! + (rng.uniform() - 0.5) * 24)));
    }
  }
  return { data, width, height };
}

export function sampleClassName(c: number): string {
  const tex = TEXTURES[Math.floor(c / SHAPES.length) % TEXTURES.length]!;
  const shape = SHAPES[c % SHAPES.length]!;
  const round = Math.floor(c / (SHAPES.length * TEXTURES.length));
  return `${tex} ${shape}${round > 0 ? ` ${round + 1}` : ''}`;
}

/** Writes the sample data set; see the module comment for the layout. */
export async function createSampleImageNet(opts: SampleImageNetOptions): Promise<SampleImageNet> {
  const dir = resolve(opts.dir);
  const nc = checkPositiveInteger(opts.classes ?? 10, 'classes');
  const per = checkPositiveInteger(opts.perClass ?? 20, 'perClass');
  const valPer = checkNonNegativeInteger(opts.valPerClass ?? Math.max(1, Math.round(per / 5)), 'valPerClass');
  const seed = checkNonNegativeInteger(opts.seed ?? 0, 'seed');
  const longSide = checkPositiveInteger(opts.longSide ?? 160, 'longSide');
  const quality = opts.quality ?? 90;
  const valLayout = opts.valLayout ?? 'flat';
  const classes = Array.from({ length: nc }, (_, c) => ({ wnid: sampleWnid(c), name: sampleClassName(c) }));

  const jobs: { path: string; c: number; i: number }[] = [];
  for (let c = 0; c < nc; c++) {
    for (let i = 0; i < per; i++) jobs.push({ path: join(dir, 'train', classes[c]!.wnid, `${classes[c]!.wnid}_${i + 1}.JPEG`), c, i });
  }
  // Validation images: drawn after the training ones, interleaved in a seeded order.
  const valList: { c: number; i: number }[] = [];
  for (let c = 0; c < nc; c++) for (let i = 0; i < valPer; i++) valList.push({ c, i: per + i });
  const vperm = permutation(valList.length, Rng.forKey(seed, 3));
  const valLabels: number[] = [];
  vperm.forEach((p, k) => {
    const { c, i } = valList[p]!;
    const name = `ILSVRC2012_val_${String(k + 1).padStart(8, '0')}.JPEG`;
    jobs.push({ path: valLayout === 'flat' ? join(dir, 'val', name) : join(dir, 'val', classes[c]!.wnid, name), c, i });
    valLabels.push(c);
  });

  for (const d of new Set(jobs.map((j) => resolve(j.path, '..')))) await mkdir(d, { recursive: true });
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const j = jobs[next++]!;
      const img = drawSampleImage(seed, j.c, j.i, longSide);
      const jpg = await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } }).jpeg({ quality }).toBuffer();
      await writeFile(j.path, jpg);
    }
  };
  await Promise.all(Array.from({ length: 4 }, worker));

  await writeFile(join(dir, 'LOC_synset_mapping.txt'), classes.map((c) => `${c.wnid} ${c.name}`).join('\n') + '\n');
  if (valLayout === 'flat' && valLabels.length > 0) {
    // The devkit numbers classes in its own order (not sorted by wnid): a seeded permutation here.
    const devkit = permutation(nc, Rng.forKey(seed, 4));
    const idOf = new Int32Array(nc);
    devkit.forEach((c, k) => (idOf[c] = k + 1));
    const data = join(dir, 'ILSVRC2012_devkit_t12', 'data');
    await mkdir(data, { recursive: true });
    await writeFile(join(data, 'ILSVRC2012_validation_ground_truth.txt'), valLabels.map((c) => String(idOf[c])).join('\n') + '\n');
    await writeFile(join(data, 'meta.mat'), devkitMetaMat(Array.from(devkit, (c, k) => ({ id: k + 1, wnid: classes[c]!.wnid, words: classes[c]!.name }))));
  }
  return { dir, classes, train: nc * per, val: valLabels.length };
}
