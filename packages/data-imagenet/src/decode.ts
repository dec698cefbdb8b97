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
}

export { UndecodableImageError };

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
  try {
    const { data, info } = await sharp(bytes, {
      failOn: 'error',
      limitInputPixels: opts.limitInputPixels ?? 0x3fff * 0x3fff,
    })
      .rotate()
      .resize(size, size, { fit: 'cover', position: 'centre', kernel: opts.kernel ?? 'linear' })
      .removeAlpha()
      .toColourspace('srgb')
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.width !== size || info.height !== size || info.channels !== 3 || data.length !== size * size * 3) {
      throw new Error(`sharp returned ${info.width}x${info.height}x${info.channels}`);
    }
    return new Uint8Array(data.buffer, data.byteOffset, data.length);
  } catch (e) {
    const first = (e as Error).message.split('\n')[0]!;
    const msg = /unsupported image format/.test(first)
      ? 'not an image format sharp reads (JPEG, PNG, WebP, GIF, TIFF, ...)'
      : first.replace(/^Input (buffer|file) has corrupt header:\s*/, '');
    throw new UndecodableImageError(name, msg || 'unsupported or corrupt image');
  }
}
