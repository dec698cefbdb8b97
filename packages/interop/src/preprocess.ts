/**
 * Input preprocessing recorded with imported weights. The paper's own (§2: shorter side 256, centre
 * crop, subtract the mean image) is what @alexnet/train records for the models it trains; weights
 * trained elsewhere expect their own, and torchvision's ImageNet models expect
 *
 *   Resize(256) (shorter side, PIL bilinear with antialiasing) -> CenterCrop(224) -> ToTensor() (RGB / 255)
 *   -> Normalize(mean = [0.485, 0.456, 0.406], std = [0.229, 0.224, 0.225]).
 *
 * preprocessImage does that in the same steps: sharp (libvips) decodes the image whole, then the
 * resize is PIL's own algorithm (antialiased bilinear in its 22-bit fixed point, horizontal pass then
 * vertical, computed only for the crop window), the long side int(256 * long / short), the crop
 * offsets by Python's round, and the normalisation in float32 as torch does it. On PNG and JPEG photos
 * the result equals torchvision's to the last bit (measured: README). EXIF orientation is not applied,
 * as PIL does not apply it.
 */
import { readFile } from 'node:fs/promises';
import sharp from 'sharp';
import { InteropError } from './errors.js';

export interface Preprocessing {
  /** Whose recipe: 'torchvision' (the ImageNet weights of torchvision.models). */
  kind: 'torchvision';
  /** Rescale so the shorter side has this many pixels (the longer: floor(resize * long / short)). */
  resize: number;
  /** Side of the centre crop: the model's input. */
  crop: number;
  /** Resampling: 'bilinear', antialiased when shrinking (PIL's). */
  interpolation: 'bilinear';
  /** Each 0..255 value is multiplied by this first (1/255). */
  scale: number;
  /** Then, per R, G, B channel: (value * scale - mean) / std. */
  mean: [number, number, number];
  std: [number, number, number];
}

/** torchvision's ImageNet evaluation transform (its models' documented preprocessing). */
export const TORCHVISION_PREPROCESSING: Readonly<Preprocessing> = Object.freeze<Preprocessing>({
  kind: 'torchvision',
  resize: 256,
  crop: 224,
  interpolation: 'bilinear',
  scale: 1 / 255,
  mean: [0.485, 0.456, 0.406],
  std: [0.229, 0.224, 0.225],
});

const isTriple = (v: unknown, ok: (x: number) => boolean): v is [number, number, number] =>
  Array.isArray(v) && v.length === 3 && v.every((x) => typeof x === 'number' && Number.isFinite(x) && ok(x));

/**
 * What is wrong with a preprocessing record read from a file, as a phrase, or null when it is sound
 * (for a checkpoint reader's validation, before any image is sized from it).
 */
export function checkPreprocessing(p: unknown): string | null {
  const show = (v: unknown) => JSON.stringify(v)?.slice(0, 60) ?? String(v);
  if (typeof p !== 'object' || p === null || Array.isArray(p)) return 'preprocessing is not an object';
  const r = p as Record<string, unknown>;
  if (r.kind !== 'torchvision') return `preprocessing.kind is ${show(r.kind)}, not "torchvision"`;
  if (typeof r.crop !== 'number' || !Number.isSafeInteger(r.crop) || r.crop < 1 || r.crop > 4096) return `preprocessing.crop is ${show(r.crop)}, not an integer from 1 to 4096`;
  if (typeof r.resize !== 'number' || !Number.isSafeInteger(r.resize) || r.resize < r.crop || r.resize > 4096) return `preprocessing.resize is ${show(r.resize)}, not an integer from the crop (${r.crop}) to 4096`;
  if (r.interpolation !== 'bilinear') return `preprocessing.interpolation is ${show(r.interpolation)}, not "bilinear"`;
  if (typeof r.scale !== 'number' || !(r.scale > 0) || !Number.isFinite(r.scale)) return `preprocessing.scale is ${show(r.scale)}, not a positive number`;
  if (!isTriple(r.mean, () => true)) return `preprocessing.mean is ${show(r.mean)}, not three numbers`;
  if (!isTriple(r.std, (x) => x > 0)) return `preprocessing.std is ${show(r.std)}, not three positive numbers`;
  return null;
}

/** Python's round(): halves go to the even neighbour (torchvision's CenterCrop offsets use it). */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x), d = x - f;
  return d > 0.5 || (d === 0.5 && f % 2 !== 0) ? f + 1 : f;
}

/** torchvision's Resize(size) output for a w x h image: the shorter side `size`, the longer int(size * long / short). */
export function resizedSize(width: number, height: number, size: number): { width: number; height: number } {
  if (width <= height) return { width: size, height: Math.floor((size * height) / width) };
  return { width: Math.floor((size * width) / height), height: size };
}

/** The crop's float32 CHW input from its HWC uint8 pixels: (v * scale - mean) / std per channel, in float32 as torch computes it. */
export function normalizePixels(pixels: Uint8Array, side: number, p: Preprocessing, out = new Float32Array(3 * side * side)): Float32Array {
  const f = Math.fround, plane = side * side;
  const scale = f(p.scale), mean = p.mean.map(f), std = p.std.map(f);
  const div255 = Math.abs(p.scale - 1 / 255) < 1e-15; // ToTensor divides by 255 rather than multiplying by 1/255
  for (let i = 0; i < plane; i++) {
    for (let c = 0; c < 3; c++) {
      const v = pixels[3 * i + c]!;
      const x = div255 ? f(v / 255) : f(v * scale);
      out[c * plane + i] = f(f(x - mean[c]!) / std[c]!);
    }
  }
  return out;
}

export interface PreprocessedImage {
  /** [3, crop, crop] float32, channels R, G, B: the model's input for this image. */
  input: Float32Array;
  /** The crop as crop x crop x 3 uint8 RGB (for showing what the model saw). */
  pixels: Uint8Array;
}

const PRECISION_BITS = 22; // fixed-point bits of PIL's 8-bit resampling (32 - 8 - 2)

/**
 * Coefficients of an antialiased bilinear (triangle) filter from `inSize` to `outSize` samples, as
 * PIL computes them: output sample x is centred at (x + 0.5) * scale, the filter is widened by the
 * scale when shrinking, each row of weights sums to one and is then rounded to 22-bit fixed point.
 */
function triangleCoefficients(inSize: number, outSize: number): { bounds: Int32Array; weights: Int32Array[] } {
  const scale = inSize / outSize, filterScale = Math.max(scale, 1), support = filterScale;
  const bounds = new Int32Array(2 * outSize), weights: Int32Array[] = [];
  for (let x = 0; x < outSize; x++) {
    const center = (x + 0.5) * scale;
    const lo = Math.max(Math.trunc(center - support + 0.5), 0), hi = Math.min(Math.trunc(center + support + 0.5), inSize);
    const w = new Float64Array(hi - lo);
    let sum = 0;
    for (let i = 0; i < w.length; i++) {
      const d = Math.abs((i + lo - center + 0.5) / filterScale);
      w[i] = d < 1 ? 1 - d : 0;
      sum += w[i]!;
    }
    const fixed = new Int32Array(w.length);
    for (let i = 0; i < w.length; i++) {
      const v = sum !== 0 ? w[i]! / sum : w[i]!;
      fixed[i] = Math.trunc(v < 0 ? -0.5 + v * (1 << PRECISION_BITS) : 0.5 + v * (1 << PRECISION_BITS));
    }
    bounds[2 * x] = lo;
    bounds[2 * x + 1] = hi - lo;
    weights.push(fixed);
  }
  return { bounds, weights };
}

const clip8 = (v: number) => { const x = v >> PRECISION_BITS; return x < 0 ? 0 : x > 255 ? 255 : x; };

/**
 * The window [left, left + cw) x [top, top + ch) of the image resized to outW x outH with PIL's
 * antialiased bilinear filter (Image.resize(..., BILINEAR), which torchvision's Resize calls): a
 * horizontal pass into 8-bit samples, then a vertical pass, in PIL's fixed-point arithmetic, so the
 * result is PIL's to the bit. Only the window's rows and columns are computed. src: h x w x 3 uint8.
 */
export function resizeBilinearWindow(src: Uint8Array, w: number, h: number, outW: number, outH: number,
  win: { left: number; top: number; width: number; height: number }): Uint8Array {
  const half = 1 << (PRECISION_BITS - 1);
  const { left, top, width: cw, height: ch } = win;
  // Horizontal pass (when the width changes) over the source rows the window's output rows read.
  let rows = src, rowW = w, rowOffset = 0, rowCount = h;
  const needH = outW !== w, needV = outH !== h;
  const vert = needV ? triangleCoefficients(h, outH) : null;
  const firstRow = vert ? vert.bounds[2 * top]! : top;
  const lastRow = vert ? vert.bounds[2 * (top + ch - 1)]! + vert.bounds[2 * (top + ch - 1) + 1]! : top + ch;
  if (needH) {
    const hor = triangleCoefficients(w, outW);
    rowCount = lastRow - firstRow;
    rows = new Uint8Array(rowCount * cw * 3);
    for (let y = 0; y < rowCount; y++) {
      const inRow = (firstRow + y) * w * 3, outRow = y * cw * 3;
      for (let x = 0; x < cw; x++) {
        const lo = hor.bounds[2 * (left + x)]!, n = hor.bounds[2 * (left + x) + 1]!, k = hor.weights[left + x]!;
        let r = half, g = half, b = half;
        for (let i = 0, p = inRow + 3 * lo; i < n; i++, p += 3) { const c = k[i]!; r += src[p]! * c; g += src[p + 1]! * c; b += src[p + 2]! * c; }
        rows[outRow + 3 * x] = clip8(r); rows[outRow + 3 * x + 1] = clip8(g); rows[outRow + 3 * x + 2] = clip8(b);
      }
    }
    rowW = cw;
    rowOffset = firstRow;
  } else {
    rowOffset = 0;
  }
  const colStart = needH ? 0 : left;
  const out = new Uint8Array(cw * ch * 3);
  for (let y = 0; y < ch; y++) {
    if (!vert) {
      const from = ((top + y - rowOffset) * rowW + colStart) * 3;
      out.set(rows.subarray(from, from + cw * 3), y * cw * 3);
      continue;
    }
    const lo = vert.bounds[2 * (top + y)]! - rowOffset, n = vert.bounds[2 * (top + y) + 1]!, k = vert.weights[top + y]!;
    for (let x = 0; x < cw; x++) {
      let r = half, g = half, b = half;
      for (let i = 0; i < n; i++) {
        const p = ((lo + i) * rowW + colStart + x) * 3, c = k[i]!;
        r += rows[p]! * c; g += rows[p + 1]! * c; b += rows[p + 2]! * c;
      }
      const o = (y * cw + x) * 3;
      out[o] = clip8(r); out[o + 1] = clip8(g); out[o + 2] = clip8(b);
    }
  }
  return out;
}

/** Applies a recorded preprocessing to one image file (or its bytes). Errors name the image. */
export async function preprocessImage(image: string | Uint8Array, p: Preprocessing, label?: string): Promise<PreprocessedImage> {
  const name = label ?? (typeof image === 'string' ? image : 'the image');
  const bad = checkPreprocessing(p);
  if (bad) throw new InteropError(`cannot preprocess ${name}: ${bad}`);
  let bytes: Uint8Array;
  try {
    bytes = typeof image === 'string' ? await readFile(image) : image;
  } catch (e) {
    throw new InteropError(`${name} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, name);
  }
  try {
    // Decoded whole first, so that the resampling sees every pixel as PIL's does (no JPEG shrink-on-load).
    const decoded = await sharp(bytes, { failOn: 'error', limitInputPixels: 0x3fff * 0x3fff })
      .removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
    const { width, height, channels } = decoded.info;
    if (channels !== 3) throw new Error(`decoded to ${channels} channels`);
    const size = resizedSize(width, height, p.resize);
    const left = roundHalfEven((size.width - p.crop) / 2), top = roundHalfEven((size.height - p.crop) / 2);
    const src = new Uint8Array(decoded.data.buffer, decoded.data.byteOffset, decoded.data.length);
    const pixels = resizeBilinearWindow(src, width, height, size.width, size.height, { left, top, width: p.crop, height: p.crop });
    return { input: normalizePixels(pixels, p.crop, p), pixels };
  } catch (e) {
    const first = (e as Error).message.split('\n')[0]!;
    throw new InteropError(`${name} cannot be decoded as an image (${/unsupported image format/.test(first) ? 'not a format sharp reads' : first})`, name);
  }
}

/** A function that preprocesses images as `p` says (for predict and eval over many files). */
export function preprocessFor(p: Preprocessing): (image: string | Uint8Array, label?: string) => Promise<PreprocessedImage> {
  const bad = checkPreprocessing(p);
  if (bad) throw new InteropError(`cannot preprocess images: ${bad}`);
  return (image, label) => preprocessImage(image, p, label);
}
