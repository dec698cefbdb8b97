/**
 * Training-set statistics (§2, §4.1): the mean image (size x size x 3, the "mean activity over the
 * training set" that cuda-convnet and Caffe subtract per pixel), the per-channel mean, and the 3x3
 * covariance of RGB values over all training pixels with its eigenvalues and eigenvectors for PCA
 * lighting. Everything is on the 0..255 scale of the uint8 pixels.
 *
 * Accumulation is exact: each image adds integer sums (pixel values, their squares and cross
 * products), so partial statistics from different workers and shards add up to the same result in
 * any order.
 */
import { mkdir, readFile, writeFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { ImageNetDataError } from './errors.js';

export interface Statistics {
  /** Images the statistics were computed over. */
  images: number;
  size: number;
  /** size*size*3 float32, HWC, 0..255 scale. */
  meanImage: Float32Array;
  /** Per-channel mean, RGB, 0..255 scale. */
  channelMean: [number, number, number];
  /** 3x3 RGB covariance (population), row-major, 0..255 scale. */
  covariance: number[][];
  /** Descending eigenvalues l1 >= l2 >= l3 of the covariance. */
  eigenvalues: [number, number, number];
  /** eigenvectors[i] is p_{i+1}, unit length, its largest component positive. */
  eigenvectors: [number[], number[], number[]];
  /**
   * When the statistics are of a sample (computeStatistics): its seed, the images drawn (some may
   * have failed to decode) and the size of the data set. Absent for prepare's, which are of the
   * whole training set.
   */
  sample?: { seed: number; drawn: number; of: number };
}

/** Sums that statistics are made of; add partials with `merge`. */
export class StatisticsAccumulator {
  images = 0;
  readonly sumImage: Float64Array;
  /** Sum of R, G, B and of RR, RG, RB, GG, GB, BB over all pixels. */
  readonly moments = new Float64Array(9);

  constructor(readonly size: number) {
    this.sumImage = new Float64Array(size * size * 3);
  }

  /** Adds one size x size x 3 uint8 HWC image. */
  add(img: Uint8Array): void {
    const s = this.sumImage;
    let r = 0, g = 0, b = 0, rr = 0, rg = 0, rb = 0, gg = 0, gb = 0, bb = 0;
    for (let i = 0; i < img.length; i += 3) {
      const R = img[i]!, G = img[i + 1]!, B = img[i + 2]!;
      s[i]! += R;
      s[i + 1]! += G;
      s[i + 2]! += B;
      r += R; g += G; b += B;
      rr += R * R; rg += R * G; rb += R * B; gg += G * G; gb += G * B; bb += B * B;
    }
    const m = this.moments;
    m[0]! += r; m[1]! += g; m[2]! += b; m[3]! += rr; m[4]! += rg; m[5]! += rb; m[6]! += gg; m[7]! += gb; m[8]! += bb;
    this.images++;
  }

  /** Back to no images. */
  reset(): void {
    this.images = 0;
    this.sumImage.fill(0);
    this.moments.fill(0);
  }

  merge(o: { images: number; sumImage: Float64Array; moments: Float64Array }): void {
    this.images += o.images;
    for (let i = 0; i < this.sumImage.length; i++) this.sumImage[i]! += o.sumImage[i]!;
    for (let i = 0; i < 9; i++) this.moments[i]! += o.moments[i]!;
  }

  finish(): Statistics {
    if (this.images === 0) throw new Error('no training images to compute statistics over');
    const n = this.images;
    const meanImage = new Float32Array(this.sumImage.length);
    for (let i = 0; i < meanImage.length; i++) meanImage[i] = this.sumImage[i]! / n;
    const px = n * this.size * this.size;
    const m = this.moments;
    const mu: [number, number, number] = [m[0]! / px, m[1]! / px, m[2]! / px];
    const e = (k: number) => m[k]! / px;
    const cov = [
      [e(3) - mu[0] * mu[0], e(4) - mu[0] * mu[1], e(5) - mu[0] * mu[2]],
      [e(4) - mu[0] * mu[1], e(6) - mu[1] * mu[1], e(7) - mu[1] * mu[2]],
      [e(5) - mu[0] * mu[2], e(7) - mu[1] * mu[2], e(8) - mu[2] * mu[2]],
    ];
    const { values, vectors } = symmetricEigen3(cov);
    return { images: n, size: this.size, meanImage, channelMean: mu, covariance: cov, eigenvalues: values, eigenvectors: vectors };
  }
}

/**
 * Eigen-decomposition of a symmetric 3x3 matrix by cyclic Jacobi rotations (converges to machine
 * precision in a handful of sweeps). Eigenvalues descending; each eigenvector unit length with its
 * largest-magnitude component positive, so the result is unique for distinct eigenvalues.
 */
export function symmetricEigen3(m: number[][]): { values: [number, number, number]; vectors: [number[], number[], number[]] } {
  const a = m.map((r) => r.slice());
  const v = [[1, 0, 0], [0, 1, 0], [0, 0, 1]];
  for (let sweep = 0; sweep < 50; sweep++) {
    const off = a[0]![1]! ** 2 + a[0]![2]! ** 2 + a[1]![2]! ** 2;
    if (off < 1e-30 * (a[0]![0]! ** 2 + a[1]![1]! ** 2 + a[2]![2]! ** 2) || off === 0) break;
    for (const [p, q] of [[0, 1], [0, 2], [1, 2]] as const) {
      const apq = a[p]![q]!;
      if (apq === 0) continue;
      const theta = (a[q]![q]! - a[p]![p]!) / (2 * apq);
      const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
      const c = 1 / Math.sqrt(t * t + 1), s = t * c;
      for (let k = 0; k < 3; k++) {
        const akp = a[k]![p]!, akq = a[k]![q]!;
        a[k]![p] = c * akp - s * akq;
        a[k]![q] = s * akp + c * akq;
      }
      for (let k = 0; k < 3; k++) {
        const apk = a[p]![k]!, aqk = a[q]![k]!;
        a[p]![k] = c * apk - s * aqk;
        a[q]![k] = s * apk + c * aqk;
      }
      for (let k = 0; k < 3; k++) {
        const vkp = v[k]![p]!, vkq = v[k]![q]!;
        v[k]![p] = c * vkp - s * vkq;
        v[k]![q] = s * vkp + c * vkq;
      }
    }
  }
  const order = [0, 1, 2].sort((i, j) => a[j]![j]! - a[i]![i]!);
  const vectors = order.map((j) => {
    const col = [v[0]![j]!, v[1]![j]!, v[2]![j]!];
    let big = 0;
    for (let k = 1; k < 3; k++) if (Math.abs(col[k]!) > Math.abs(col[big]!)) big = k;
    return col[big]! < 0 ? col.map((x) => -x) : col;
  }) as [number[], number[], number[]];
  const values = order.map((j) => a[j]![j]!) as [number, number, number];
  return { values, vectors };
}

export const STATS_JSON = 'stats.json';
export const MEAN_IMAGE_FILE = 'mean-image.f32';

/** Writes stats.json and mean-image.f32 (raw little-endian float32, HWC) into `dir`, creating it. */
export async function saveStatistics(dir: string, s: Statistics): Promise<void> {
  await mkdir(dir, { recursive: true });
  const json = {
    images: s.images,
    ...(s.sample ? { sample: s.sample } : {}),
    scale: 'uint8 pixel values, 0..255',
    meanImage: { file: MEAN_IMAGE_FILE, dtype: 'float32', layout: 'HWC', shape: [s.size, s.size, 3] },
    channelMean: s.channelMean,
    covariance: s.covariance,
    eigenvalues: s.eigenvalues,
    eigenvectors: s.eigenvectors,
  };
  const bytes = new Uint8Array(s.meanImage.buffer, s.meanImage.byteOffset, s.meanImage.byteLength);
  await writeFile(join(dir, MEAN_IMAGE_FILE + '.tmp'), bytes);
  await rename(join(dir, MEAN_IMAGE_FILE + '.tmp'), join(dir, MEAN_IMAGE_FILE));
  await writeFile(join(dir, STATS_JSON + '.tmp'), JSON.stringify(json, null, 2) + '\n');
  await rename(join(dir, STATS_JSON + '.tmp'), join(dir, STATS_JSON));
}

/** Reads what saveStatistics wrote; a missing or damaged file is an ImageNetDataError naming it. */
export async function loadStatistics(dir: string): Promise<Statistics> {
  const file = join(dir, STATS_JSON);
  let j;
  try {
    j = JSON.parse(await readFile(file, 'utf8'));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ImageNetDataError(
      code === 'ENOENT' ? `${dir} has no ${STATS_JSON}: compute the statistics (prepareImageNet or computeStatistics) and save them there`
      : `${file} cannot be read as statistics: ${(e as Error).message}`,
      file,
    );
  }
  const size = j?.meanImage?.shape?.[0];
  if (!Number.isInteger(size) || typeof j.meanImage.file !== 'string' || !Array.isArray(j.eigenvalues) || !Array.isArray(j.eigenvectors)) {
    throw new ImageNetDataError(`${file} is not a statistics file (no meanImage shape, eigenvalues or eigenvectors)`, file);
  }
  const imageFile = join(dir, j.meanImage.file);
  let raw: Buffer;
  try {
    raw = await readFile(imageFile);
  } catch (e) {
    throw new ImageNetDataError(`${imageFile}, the mean image named by ${STATS_JSON}, cannot be read: ${(e as Error).message}`, imageFile);
  }
  if (raw.byteLength !== size * size * 3 * 4) {
    throw new ImageNetDataError(`${imageFile} holds ${raw.byteLength} bytes, but a ${size}x${size}x3 float32 mean image is ${size * size * 12}`, imageFile);
  }
  const meanImage = new Float32Array(raw.byteLength / 4);
  new Uint8Array(meanImage.buffer).set(raw);
  return {
    images: j.images,
    size,
    meanImage,
    channelMean: j.channelMean,
    covariance: j.covariance,
    eigenvalues: j.eigenvalues,
    eigenvectors: j.eigenvectors,
    ...(j.sample ? { sample: j.sample } : {}),
  };
}
