/**
 * Per-use transforms of a prepared size x size x 3 uint8 image (§4.1): random crop and horizontal
 * reflection, PCA lighting, mean subtraction, the centre crop and the ten-crop set. Output is
 * float32 CHW on the 0..255 scale minus the mean ("raw RGB values, centred", §2).
 */
import { Rng } from './rng.js';

export type MeanSpec =
  | { kind: 'none' }
  | { kind: 'channel'; values: [number, number, number] }
  | { kind: 'image'; image: Float32Array };

export interface LightingSpec {
  /** l1..l3 on the 0..255 scale. */
  eigenvalues: readonly number[];
  /** p1..p3 (eigenvectors[i] is p_{i+1}). */
  eigenvectors: readonly (readonly number[])[];
  /** Standard deviation of a1..a3; the paper's 0.1. */
  std: number;
  /**
   * What multiplies a_i: 'eigenvalue' (default) is the paper's formula a_i * l_i with pixels and
   * eigenvalues on the 0..1 scale (as cuda-convnet and fb.resnet.torch apply it: l = 0.2175, 0.0188,
   * 0.0045 for ImageNet), expressed in 0..255 units: a_i * (l_i / 255^2) * 255 = a_i * l_i / 255 for
   * l_i on the 0..255 scale. Read literally on the 0..255 scale the shift would be 255 times larger
   * (hundreds of grey levels). 'stddev' uses sqrt(l_i), the standard deviation along p_i.
   */
  magnitude?: 'eigenvalue' | 'stddev';
}

export interface TransformSpec {
  /** 'train': random crop + flip (+ lighting); 'center': the centre crop; 'tenCrop': 4 corners + centre and their flips. */
  mode: 'train' | 'center' | 'tenCrop';
  /** Side of the input images (256). */
  size: number;
  /** Side of the crops: 224 (paper) or 227 (Caffe). */
  crop: number;
  /** Horizontal reflection with p = 0.5 in 'train' mode. */
  flip: boolean;
  lighting: LightingSpec | null;
  mean: MeanSpec;
}

/** The random choices for one image on one use. */
export interface Augmentation {
  y: number;
  x: number;
  flip: boolean;
  /** a1..a3 ~ N(0, std^2); zeros without lighting. */
  alpha: [number, number, number];
}

/**
 * The draws for sample `sample` in epoch `epoch`: a pure function of (seed, epoch, sample), so the
 * same whatever worker computes it. Stream order: y, x, flip, a1, a2, a3.
 */
export function drawAugmentation(seed: number, epoch: number, sample: number, spec: TransformSpec): Augmentation {
  const rng = Rng.forKey(seed, epoch, sample, 1);
  const span = spec.size - spec.crop + 1;
  const y = rng.int(span);
  const x = rng.int(span);
  const flip = rng.uniform() < 0.5;
  const a1 = rng.normal(), a2 = rng.normal(), a3 = rng.normal();
  const std = spec.lighting?.std ?? 0;
  return { y, x, flip: spec.flip && flip, alpha: [a1 * std, a2 * std, a3 * std] };
}

/**
 * PCA lighting (§4.1): the RGB offset [p1 p2 p3][a1 l1, a2 l2, a3 l3]^T added to every pixel.
 */
export function pcaLighting(alpha: readonly number[], eigenvalues: readonly number[], eigenvectors: readonly (readonly number[])[]): [number, number, number] {
  const out: [number, number, number] = [0, 0, 0];
  for (let i = 0; i < 3; i++) {
    const w = alpha[i]! * eigenvalues[i]!;
    for (let c = 0; c < 3; c++) out[c] += eigenvectors[i]![c]! * w;
  }
  return out;
}

/**
 * The five crop positions of the ten-crop set in torchvision's TenCrop order: top-left, top-right,
 * bottom-left, bottom-right, centre; the ten crops are these five, then the same five reflected.
 * The centre offset is floor((size - crop) / 2).
 */
export function tenCropOffsets(size: number, crop: number): { y: number; x: number; flip: boolean }[] {
  const e = size - crop, c = Math.floor(e / 2);
  const five = [
    { y: 0, x: 0 },
    { y: 0, x: e },
    { y: e, x: 0 },
    { y: e, x: e },
    { y: c, x: c },
  ];
  return [...five.map((p) => ({ ...p, flip: false })), ...five.map((p) => ({ ...p, flip: true }))];
}

/**
 * Writes the crop (y, x, crop x crop), optionally reflected, of a size x size x 3 HWC uint8 image as
 * 3 x crop x crop float32 at out[outOffset..]: value = pixel - mean + shift[c]. `meanImage` is the
 * size x size x 3 mean image, read at the same position as the pixel (null: none), `shift` the
 * per-channel constant (lighting minus the channel mean).
 */
export function cropToCHW(
  src: Uint8Array,
  size: number,
  y: number,
  x: number,
  crop: number,
  flip: boolean,
  meanImage: Float32Array | null,
  shift: readonly number[],
  out: Float32Array,
  outOffset: number,
): void {
  // Unrolled by four pixels, each channel's four stores together: about 1.4x the plain loop in V8,
  // which is what brings this to the numpy reference's per-core rate (docs/data.md, Benchmark).
  const plane = crop * crop, p2 = 2 * plane;
  // Float32 arithmetic, f32(f32(pixel - mean) + f32(shift)), exactly what the SIMD kernel computes,
  // so both paths give the same bits.
  const s0 = Math.fround(shift[0]!), s1 = Math.fround(shift[1]!), s2 = Math.fround(shift[2]!);
  const step = flip ? -3 : 3;
  const m = meanImage;
  for (let r = 0; r < crop; r++) {
    let j = ((y + r) * size + x + (flip ? crop - 1 : 0)) * 3;
    let o = outOffset + r * crop;
    const end = o + crop, end4 = o + (crop & ~3);
    if (m === null) {
      for (; o < end4; o += 4) {
        const ja = j + step, jb = ja + step, jc = jb + step;
        out[o] = src[j]! + s0;
        out[o + 1] = src[ja]! + s0;
        out[o + 2] = src[jb]! + s0;
        out[o + 3] = src[jc]! + s0;
        out[o + plane] = src[j + 1]! + s1;
        out[o + 1 + plane] = src[ja + 1]! + s1;
        out[o + 2 + plane] = src[jb + 1]! + s1;
        out[o + 3 + plane] = src[jc + 1]! + s1;
        out[o + p2] = src[j + 2]! + s2;
        out[o + 1 + p2] = src[ja + 2]! + s2;
        out[o + 2 + p2] = src[jb + 2]! + s2;
        out[o + 3 + p2] = src[jc + 2]! + s2;
        j = jc + step;
      }
      for (; o < end; o++, j += step) {
        out[o] = src[j]! + s0;
        out[o + plane] = src[j + 1]! + s1;
        out[o + p2] = src[j + 2]! + s2;
      }
    } else {
      for (; o < end4; o += 4) {
        const ja = j + step, jb = ja + step, jc = jb + step;
        out[o] = Math.fround(src[j]! - m[j]!) + s0;
        out[o + 1] = Math.fround(src[ja]! - m[ja]!) + s0;
        out[o + 2] = Math.fround(src[jb]! - m[jb]!) + s0;
        out[o + 3] = Math.fround(src[jc]! - m[jc]!) + s0;
        out[o + plane] = Math.fround(src[j + 1]! - m[j + 1]!) + s1;
        out[o + 1 + plane] = Math.fround(src[ja + 1]! - m[ja + 1]!) + s1;
        out[o + 2 + plane] = Math.fround(src[jb + 1]! - m[jb + 1]!) + s1;
        out[o + 3 + plane] = Math.fround(src[jc + 1]! - m[jc + 1]!) + s1;
        out[o + p2] = Math.fround(src[j + 2]! - m[j + 2]!) + s2;
        out[o + 1 + p2] = Math.fround(src[ja + 2]! - m[ja + 2]!) + s2;
        out[o + 2 + p2] = Math.fround(src[jb + 2]! - m[jb + 2]!) + s2;
        out[o + 3 + p2] = Math.fround(src[jc + 2]! - m[jc + 2]!) + s2;
        j = jc + step;
      }
      for (; o < end; o++, j += step) {
        out[o] = Math.fround(src[j]! - m[j]!) + s0;
        out[o + plane] = Math.fround(src[j + 1]! - m[j + 1]!) + s1;
        out[o + p2] = Math.fround(src[j + 2]! - m[j + 2]!) + s2;
      }
    }
  }
}

/** cropToCHW's signature: the JavaScript loop, or the SIMD kernel of simd.ts (the same bits). */
export type CropFunction = typeof cropToCHW;

/** Crops one image produces: 10 for 'tenCrop', else 1. */
export function cropsPerImage(spec: TransformSpec): number {
  return spec.mode === 'tenCrop' ? 10 : 1;
}

/**
 * Applies `spec` to one image (sample `sample` of the data set, used in `epoch`), writing
 * cropsPerImage(spec) consecutive 3 x crop x crop tensors at out[outOffset..].
 */
export function transformImage(
  src: Uint8Array,
  spec: TransformSpec,
  seed: number,
  epoch: number,
  sample: number,
  out: Float32Array,
  outOffset: number,
  crop: CropFunction = cropToCHW,
): void {
  const meanImage = spec.mean.kind === 'image' ? spec.mean.image : null;
  const base: [number, number, number] = spec.mean.kind === 'channel' ? [-spec.mean.values[0], -spec.mean.values[1], -spec.mean.values[2]] : [0, 0, 0];
  const n = 3 * spec.crop * spec.crop;
  if (spec.mode === 'train') {
    const a = drawAugmentation(seed, epoch, sample, spec);
    const shift = base.slice();
    if (spec.lighting) {
      const lw = spec.lighting.magnitude === 'stddev' ? spec.lighting.eigenvalues.map((v) => Math.sqrt(Math.max(0, v))) : spec.lighting.eigenvalues.map((v) => v / 255);
      const l = pcaLighting(a.alpha, lw, spec.lighting.eigenvectors);
      for (let c = 0; c < 3; c++) shift[c]! += l[c]!;
    }
    crop(src, spec.size, a.y, a.x, spec.crop, a.flip, meanImage, shift, out, outOffset);
  } else if (spec.mode === 'center') {
    const c = Math.floor((spec.size - spec.crop) / 2);
    crop(src, spec.size, c, c, spec.crop, false, meanImage, base, out, outOffset);
  } else {
    tenCropOffsets(spec.size, spec.crop).forEach((p, k) => {
      crop(src, spec.size, p.y, p.x, spec.crop, p.flip, meanImage, base, out, outOffset + k * n);
    });
  }
}
