/**
 * The paper's once-per-image preprocessing (§2): decode, rescale so the SHORTER side is `size`
 * (256), crop the central size x size, as uint8 RGB in HWC order.
 *
 * sharp (libvips) does the work off the JavaScript thread. What real ImageNet holds is handled by
 * libvips itself: CMYK JPEGs are converted to sRGB, greyscale is expanded to three channels, a PNG
 * saved as .JPEG is recognised by its content, EXIF orientation is applied, and very large JPEGs are
 * decoded at 1/2, 1/4 or 1/8 scale straight from the DCT coefficients (libjpeg shrink-on-load) when
 * the target is that much smaller. A file that cannot be decoded, or is truncated, is an error that
 * `prepare` records and skips.
 *
 * The fast path (colour: 'fast', the default) reads the JPEG's header here first (markers up to the
 * first scan: the ICC profile and the EXIF orientation) and then does less in libvips:
 * - an embedded ICC profile that is sRGB-like (its description says sRGB, or its primaries are
 *   sRGB's) is not applied: the pixels are taken as sRGB, as they are when there is no profile (a
 *   colour transform through lcms doubled the decode time, and a quarter or more of ImageNet's
 *   photos carry a profile, most of them sRGB). Other matrix/TRC profiles (Display P3, Adobe RGB,
 *   ProPhoto) are applied here to the 256 x 256 result (linearise, 3x3 matrix, sRGB encoding: a
 *   third of the pixels of a 500x375 photo; on average within 1 level of lcms on the full image);
 *   lookup-table, grey and CMYK profiles are left to libvips, exactly as before;
 * - the EXIF orientation is applied to the resized image while cropping it (orientCrop), instead of
 *   to the full decoded image (resizing commutes with the eight orientations, and the crop is taken
 *   in the displayed frame as libvips takes it: the same pixels);
 * - a greyscale JPEG is resized as one channel and expanded to three at the end.
 * colour: 'exact' keeps libvips' full handling: every embedded profile applied, orientation first.
 */
import sharp from 'sharp';
import { readFile } from 'node:fs/promises';
import { UndecodableImageError, fsReason } from './errors.js';

export interface DecodeOptions {
  /** Output side; the paper's 256. */
  size?: number;
  /**
   * Resampling kernel; 'linear' (antialiased bilinear) matches torchvision's Resize on PIL images,
   * the reference pipeline. 'lanczos3' is sharp's default, a little sharper and slower.
   */
  kernel?: 'nearest' | 'linear' | 'cubic' | 'mitchell' | 'lanczos2' | 'lanczos3';
  /** Refuse images with more pixels than this (sharp's guard against decompression bombs). */
  limitInputPixels?: number;
  /**
   * 'fast' (default): a JPEG's sRGB-like ICC profile is not applied, and its EXIF orientation is
   * applied after the resize and crop. 'exact': every embedded profile is applied, orientation first.
   */
  colour?: 'fast' | 'exact';
}

export { UndecodableImageError };

/** What decodeResizeCrop reads from a JPEG's header (markers before the first scan). */
export interface JpegHeader {
  /** The embedded ICC profile (APP2 ICC_PROFILE chunks in order), if any. */
  icc?: Uint8Array;
  /** EXIF orientation 1-8 (1 when absent). */
  orientation: number;
  /** Colour components of the frame (1 grey, 3 YCbCr/RGB, 4 CMYK/YCCK), 0 if no frame header was read. */
  components: number;
}

/** The header of a JPEG file, or null when `b` is not a JPEG (PNG, WebP, ...: those take the exact path). */
export function readJpegHeader(b: Uint8Array): JpegHeader | null {
  if (b.length < 4 || b[0] !== 0xff || b[1] !== 0xd8) return null;
  const chunks: { seq: number; data: Uint8Array }[] = [];
  let orientation = 1, components = 0;
  let p = 2;
  while (p + 4 <= b.length) {
    if (b[p] !== 0xff) return { orientation, components, icc: joinIcc(chunks) }; // not a marker: stop here
    let m = b[p + 1]!;
    while (m === 0xff && p + 2 < b.length) m = b[++p + 1]!; // fill bytes
    p += 2;
    if (m === 0xd8 || m === 0x01 || (m >= 0xd0 && m <= 0xd7)) continue; // no length
    if (m === 0xda || m === 0xd9 || p + 2 > b.length) break; // start of scan, end of image
    const len = (b[p]! << 8) | b[p + 1]!;
    const s = p + 2, e = Math.min(b.length, p + len);
    if (m === 0xe1 && e - s > 14 && ascii(b, s, 6) === 'Exif\0\0') orientation = exifOrientation(b, s + 6, e) ?? orientation;
    if (m === 0xe2 && e - s > 14 && ascii(b, s, 12) === 'ICC_PROFILE\0') chunks.push({ seq: b[s + 12]!, data: b.subarray(s + 14, e) });
    if (m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc && e - s >= 6) components = b[s + 5]!; // SOFn
    p += len;
  }
  return { orientation, components, icc: joinIcc(chunks) };
}

function ascii(b: Uint8Array, at: number, n: number): string {
  let s = '';
  for (let i = 0; i < n && at + i < b.length; i++) s += String.fromCharCode(b[at + i]!);
  return s;
}

function joinIcc(chunks: { seq: number; data: Uint8Array }[]): Uint8Array | undefined {
  if (chunks.length === 0) return undefined;
  chunks.sort((a, b) => a.seq - b.seq);
  const out = new Uint8Array(chunks.reduce((a, c) => a + c.data.length, 0));
  let o = 0;
  for (const c of chunks) { out.set(c.data, o); o += c.data.length; }
  return out;
}

/** Tag 0x0112 of IFD0 of the TIFF structure at [t, end), or undefined. */
function exifOrientation(b: Uint8Array, t: number, end: number): number | undefined {
  if (t + 8 > end) return undefined;
  const le = b[t] === 0x49 && b[t + 1] === 0x49;
  if (!le && !(b[t] === 0x4d && b[t + 1] === 0x4d)) return undefined;
  const u16 = (o: number) => (le ? b[o]! | (b[o + 1]! << 8) : (b[o]! << 8) | b[o + 1]!);
  const u32 = (o: number) => (le ? (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16)) + b[o + 3]! * 2 ** 24 : b[o]! * 2 ** 24 + ((b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!));
  const ifd = t + u32(t + 4);
  if (ifd + 2 > end) return undefined;
  const n = u16(ifd);
  for (let i = 0; i < n; i++) {
    const e = ifd + 2 + 12 * i;
    if (e + 12 > end) return undefined;
    if (u16(e) === 0x0112) {
      const v = u16(e + 8);
      return v >= 1 && v <= 8 ? v : undefined;
    }
  }
  return undefined;
}

/** sRGB's colorants adapted to D50, as ICC profiles store them (rXYZ, gXYZ, bXYZ). */
const SRGB_XYZ: Record<string, [number, number, number]> = {
  rXYZ: [0.4361, 0.2225, 0.0139],
  gXYZ: [0.3851, 0.7169, 0.0971],
  bXYZ: [0.1431, 0.0606, 0.7141],
};

/**
 * Whether an ICC profile describes sRGB closely enough that applying it changes nothing that
 * matters: an RGB profile whose description names sRGB, or whose three colorants are within 0.005
 * of sRGB's (IEC 61966-2.1 and its many copies, whatever their names). Display P3, Adobe RGB (1998),
 * ProPhoto, grey and CMYK profiles are not.
 */
export function isSrgbLike(icc: Uint8Array): boolean {
  if (icc.length < 132 || ascii(icc, 16, 4) !== 'RGB ') return false;
  const dv = new DataView(icc.buffer, icc.byteOffset, icc.byteLength);
  const count = dv.getUint32(128);
  const tags = new Map<string, [number, number]>();
  for (let i = 0; i < count && 132 + 12 * i + 12 <= icc.length; i++) {
    const e = 132 + 12 * i;
    tags.set(ascii(icc, e, 4), [dv.getUint32(e + 4), dv.getUint32(e + 8)]);
  }
  const desc = tags.get('desc');
  if (desc && /sRGB/i.test(descriptionText(icc, dv, desc[0], desc[1]))) return true;
  for (const [sig, ref] of Object.entries(SRGB_XYZ)) {
    const t = tags.get(sig);
    if (!t || t[1] < 20 || t[0] + 20 > icc.length || ascii(icc, t[0], 4) !== 'XYZ ') return false;
    for (let k = 0; k < 3; k++) if (Math.abs(dv.getInt32(t[0] + 8 + 4 * k) / 65536 - ref[k]!) > 0.005) return false;
  }
  return true;
}

/** The text of a 'desc' (ICC v2: ASCII) or 'mluc' (v4: UTF-16BE, the first record) tag. */
function descriptionText(icc: Uint8Array, dv: DataView, at: number, size: number): string {
  if (at + 12 > icc.length || size < 12) return '';
  const type = ascii(icc, at, 4);
  if (type === 'desc') return ascii(icc, at + 12, Math.min(dv.getUint32(at + 8), icc.length - at - 12));
  if (type === 'mluc' && at + 28 <= icc.length) {
    const len = dv.getUint32(at + 20), off = dv.getUint32(at + 24);
    let s = '';
    for (let i = 0; i + 1 < len && at + off + i + 1 < icc.length; i += 2) s += String.fromCharCode(dv.getUint16(at + off + i));
    return s;
  }
  return '';
}

/** A matrix/TRC RGB profile as a transform to sRGB: per-channel linearisation, then one 3x3 matrix. */
export interface MatrixProfile {
  /** Linear value of each 8-bit code, per channel. */
  linear: [Float32Array, Float32Array, Float32Array];
  /** Linear sRGB = m x linear profile RGB (row-major), through the profile's D50 connection space. */
  m: Float64Array;
}

/** Linear sRGB from D50 XYZ (Bradford-adapted, as ICC connection spaces are D50). */
const SRGB_FROM_XYZ_D50 = [3.1338561, -1.6168667, -0.4906146, -0.9787684, 1.9161415, 0.033454, 0.0719453, -0.2289914, 1.4052427];

/**
 * The profile as a matrix/TRC transform (the form of Display P3, Adobe RGB (1998), ProPhoto and most
 * camera profiles: rXYZ/gXYZ/bXYZ colorants and rTRC/gTRC/bTRC curves), or null for any other form
 * (lookup-table profiles, grey, CMYK), which libvips then applies exactly.
 */
export function matrixProfile(icc: Uint8Array): MatrixProfile | null {
  if (icc.length < 132 || ascii(icc, 16, 4) !== 'RGB ') return null;
  const dv = new DataView(icc.buffer, icc.byteOffset, icc.byteLength);
  const tags = new Map<string, [number, number]>();
  const count = dv.getUint32(128);
  for (let i = 0; i < count && 132 + 12 * i + 12 <= icc.length; i++) {
    const e = 132 + 12 * i;
    tags.set(ascii(icc, e, 4), [dv.getUint32(e + 4), dv.getUint32(e + 8)]);
  }
  if (tags.has('A2B0')) return null; // a lookup table takes precedence over the matrix in ICC
  const xyz: number[] = [];
  for (const sig of ['rXYZ', 'gXYZ', 'bXYZ']) {
    const t = tags.get(sig);
    if (!t || t[0] + 20 > icc.length || ascii(icc, t[0], 4) !== 'XYZ ') return null;
    for (let k = 0; k < 3; k++) xyz.push(dv.getInt32(t[0] + 8 + 4 * k) / 65536);
  }
  const linear: Float32Array[] = [];
  for (const sig of ['rTRC', 'gTRC', 'bTRC']) {
    const t = tags.get(sig);
    const lut = t ? curve(icc, dv, t[0]) : null;
    if (!lut) return null;
    linear.push(lut);
  }
  // XYZ = P rgb with the colorants as P's columns; linear sRGB = S P rgb.
  const m = new Float64Array(9);
  for (let i = 0; i < 3; i++)
    for (let j = 0; j < 3; j++) {
      let a = 0;
      for (let k = 0; k < 3; k++) a += SRGB_FROM_XYZ_D50[i * 3 + k]! * xyz[j * 3 + k]!;
      m[i * 3 + j] = a;
    }
  return { linear: linear as MatrixProfile['linear'], m };
}

/** A 'curv' or 'para' tag as the linear value of each 8-bit code, or null. */
function curve(icc: Uint8Array, dv: DataView, at: number): Float32Array | null {
  if (at + 12 > icc.length) return null;
  const type = ascii(icc, at, 4), out = new Float32Array(256);
  if (type === 'curv') {
    const n = dv.getUint32(at + 8);
    if (at + 12 + 2 * n > icc.length) return null;
    if (n <= 1) {
      const g = n === 0 ? 1 : dv.getUint16(at + 12) / 256;
      for (let i = 0; i < 256; i++) out[i] = (i / 255) ** g;
    } else {
      for (let i = 0; i < 256; i++) {
        const x = (i / 255) * (n - 1), lo = Math.floor(x), hi = Math.min(n - 1, lo + 1), f = x - lo;
        out[i] = ((1 - f) * dv.getUint16(at + 12 + 2 * lo) + f * dv.getUint16(at + 12 + 2 * hi)) / 65535;
      }
    }
    return out;
  }
  if (type === 'para') {
    const fn = dv.getUint16(at + 8), np = [1, 3, 4, 5, 7][fn];
    if (np === undefined || at + 12 + 4 * np > icc.length) return null;
    const [g, a = 1, b = 0, c = 0, d = 0, e = 0, f = 0] = Array.from({ length: np }, (_, k) => dv.getInt32(at + 12 + 4 * k) / 65536);
    for (let i = 0; i < 256; i++) {
      const x = i / 255;
      let y: number;
      if (fn === 0) y = x ** g!;
      else if (fn === 1) y = x >= -b / a ? (a * x + b) ** g! : 0;
      else if (fn === 2) y = x >= -b / a ? (a * x + b) ** g! + c : c;
      else if (fn === 3) y = x >= d ? (a * x + b) ** g! : c * x;
      else y = x >= d ? (a * x + b) ** g! + e : c * x + f;
      out[i] = Math.min(1, Math.max(0, y));
    }
    return out;
  }
  return null;
}

/** sRGB's encoding of a linear value in [0, 1], sampled at 4096 points. */
const SRGB_ENCODE = Uint8Array.from({ length: 4096 }, (_, i) => {
  const v = i / 4095;
  return Math.round(255 * (v <= 0.0031308 ? 12.92 * v : 1.055 * v ** (1 / 2.4) - 0.055));
});

/** px (HWC, 3 channels) from the profile's colours to sRGB, in place (out-of-gamut values clipped). */
export function applyMatrixProfile(px: Uint8Array, p: MatrixProfile): void {
  const [lr, lg, lb] = p.linear, m = p.m;
  const m0 = m[0]!, m1 = m[1]!, m2 = m[2]!, m3 = m[3]!, m4 = m[4]!, m5 = m[5]!, m6 = m[6]!, m7 = m[7]!, m8 = m[8]!;
  const q = (v: number) => SRGB_ENCODE[v <= 0 ? 0 : v >= 1 ? 4095 : (v * 4095 + 0.5) | 0]!;
  for (let i = 0; i < px.length; i += 3) {
    const r = lr[px[i]!]!, g = lg[px[i + 1]!]!, b = lb[px[i + 2]!]!;
    px[i] = q(m0 * r + m1 * g + m2 * b);
    px[i + 1] = q(m3 * r + m4 * g + m5 * b);
    px[i + 2] = q(m6 * r + m7 * g + m8 * b);
  }
}

/**
 * The central size x size of a w x h image (HWC, `channels` of 1 or 3; 1 is expanded to 3) as
 * displayed under EXIF orientation o (1 none, 2 mirror, 3 rotate 180, 4 flip, 5 transpose, 6 rotate 90
 * clockwise, 7 transverse, 8 rotate 270): the same pixels as sharp's rotate() then its centre crop,
 * which is taken in the displayed frame with the odd margin's extra pixel on the left / top.
 */
export function orientCrop(px: Uint8Array, w: number, h: number, channels: number, o: number, size: number): Uint8Array {
  const swap = o >= 5 && o <= 8;
  const dw = swap ? h : w, dh = swap ? w : h;
  const left = Math.ceil((dw - size) / 2), top = Math.ceil((dh - size) / 2);
  const out = new Uint8Array(size * size * 3);
  for (let y = 0; y < size; y++) {
    const Y = top + y;
    for (let x = 0; x < size; x++) {
      const X = left + x;
      let c: number, r: number;
      switch (o) {
        case 2: c = w - 1 - X; r = Y; break;
        case 3: c = w - 1 - X; r = h - 1 - Y; break;
        case 4: c = X; r = h - 1 - Y; break;
        case 5: c = Y; r = X; break;
        case 6: c = Y; r = h - 1 - X; break;
        case 7: c = w - 1 - Y; r = h - 1 - X; break;
        case 8: c = w - 1 - Y; r = X; break;
        default: c = X; r = Y; break;
      }
      const d = (y * size + x) * 3, s = (r * w + c) * channels;
      if (channels === 1) {
        out[d] = out[d + 1] = out[d + 2] = px[s]!;
      } else {
        out[d] = px[s]!;
        out[d + 1] = px[s + 1]!;
        out[d + 2] = px[s + 2]!;
      }
    }
  }
  return out;
}

/** What the fast path does with each profile met (a dataset holds a few distinct ones), by content. */
const profiles = new Map<string, MatrixProfile | 'srgb' | 'exact'>();

function profileFor(icc: Uint8Array): MatrixProfile | 'srgb' | 'exact' {
  const key = Buffer.from(icc.buffer, icc.byteOffset, icc.byteLength).toString('latin1');
  let p = profiles.get(key);
  if (p === undefined) {
    p = isSrgbLike(icc) ? 'srgb' : matrixProfile(icc) ?? 'exact';
    if (profiles.size >= 64) profiles.clear();
    profiles.set(key, p);
  }
  return p;
}

/** Decodes one image (a path or its bytes) to size x size x 3 uint8, HWC. */
export async function decodeResizeCrop(input: string | Uint8Array, opts: DecodeOptions = {}, label?: string): Promise<Uint8Array> {
  const size = opts.size ?? 256;
  const name = label ?? (typeof input === 'string' ? input : 'image');
  let bytes: Uint8Array;
  try {
    bytes = typeof input === 'string' ? await readFile(input) : input;
  } catch (e) {
    throw new UndecodableImageError(name, `it could not be read (${fsReason(e)})`);
  }
  if (bytes.length === 0) throw new UndecodableImageError(name, 'the file is empty (0 bytes)');
  // The fast path for JPEGs (see the top of this file); anything else takes libvips' full handling.
  let header = (opts.colour ?? 'fast') === 'fast' ? readJpegHeader(bytes) : null;
  let profile: MatrixProfile | null = null;
  if (header?.icc) {
    const p = profileFor(header.icc);
    if (p === 'exact') header = null; // a profile only libvips applies: the exact path
    else if (p !== 'srgb') profile = p;
  }
  const ignoreIcc = header !== null;
  try {
    let img = sharp(bytes, {
      failOn: 'error',
      limitInputPixels: opts.limitInputPixels ?? 0x3fff * 0x3fff,
      ignoreIcc,
    });
    if (!header) img = img.rotate();
    // Fast path: a greyscale JPEG (no profile to apply) is resized as one channel and expanded in
    // JavaScript; an oriented one is resized only (shorter side = size) and oriented and cropped here.
    const grey = header !== null && header.components === 1 && !profile;
    const orient = header !== null && header.orientation !== 1;
    img = img.resize(size, size, { fit: orient ? 'outside' : 'cover', position: 'centre', kernel: opts.kernel ?? 'linear' });
    img = grey ? img.toColourspace('b-w') : img.removeAlpha().toColourspace('srgb');
    const { data, info } = await img.raw().toBuffer({ resolveWithObject: true });
    const channels = grey ? 1 : 3;
    const square = info.width === size && info.height === size;
    if (info.channels !== channels || (!orient && !square) || Math.min(info.width, info.height) !== size ||
        data.length !== info.width * info.height * channels) {
      throw new Error(`sharp returned ${info.width}x${info.height}x${info.channels}`);
    }
    let px: Uint8Array = new Uint8Array(data.buffer, data.byteOffset, data.length);
    if (grey || orient) px = orientCrop(px, info.width, info.height, channels, header!.orientation, size);
    if (profile) applyMatrixProfile(px, profile);
    return px;
  } catch (e) {
    const first = (e as Error).message.split('\n')[0]!;
    const msg = /unsupported image format/.test(first)
      ? 'not an image format sharp reads (JPEG, PNG, WebP, GIF, TIFF, ...)'
      : first.replace(/^Input (buffer|file) has corrupt header:\s*/, '');
    throw new UndecodableImageError(name, msg || 'unsupported or corrupt image');
  }
}
