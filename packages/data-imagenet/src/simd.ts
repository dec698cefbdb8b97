/**
 * The training transform's inner loop (crop, reflect, subtract the mean, add the lighting shift,
 * HWC uint8 -> CHW float32) as a WebAssembly SIMD kernel, four pixels per step: one 16-byte load
 * of RGB bytes, a byte swizzle per channel that both de-interleaves and zero-extends to 32 bits
 * (reflection is the same swizzle with the lanes reversed), an int -> float conversion, the mean from
 * a planar copy of the mean image, and one 16-byte store per channel. About 2x the JavaScript loop.
 *
 * The module is assembled here (no toolchain); it works on a shared WebAssembly.Memory that holds
 * the batch buffers, so the workers write batches where the consumer reads them. Columns past the
 * last multiple of four (227 = 4 * 56 + 3) are done by `cropToCHW`'s arithmetic in JavaScript.
 */

// The runtime's WebAssembly, typed here: the project's lib settings (ES2023, @types/node 20) leave it out.
declare namespace WebAssembly {
  class Memory {
    constructor(descriptor: { initial: number; maximum?: number; shared?: boolean });
    readonly buffer: SharedArrayBuffer;
  }
  class Module {
    constructor(bytes: Uint8Array);
  }
  class Instance {
    constructor(module: Module, imports: object);
    readonly exports: Record<string, unknown>;
  }
  function validate(bytes: Uint8Array): boolean;
}

const SIMD = 0xfd;
const I32 = 0x7f, F32 = 0x7d, V128 = 0x7b;

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

const str = (s: string) => [...uleb(s.length), ...Buffer.from(s, 'utf8')];
const vec = (items: number[][]) => [...uleb(items.length), ...items.flat()];
const section = (id: number, body: number[]) => [id, ...uleb(body.length), ...body];

// Instructions.
const get = (i: number) => [0x20, ...uleb(i)];
const set = (i: number) => [0x21, ...uleb(i)];
const i32c = (v: number) => [0x41, ...sleb(v)];
const add = [0x6a], sub = [0x6b], mul = [0x6c], and = [0x71], ltU = [0x49];
const v128load = [SIMD, 0x00, 0x00, 0x00]; // align 1, offset 0
const v128store = [SIMD, 0x0b, 0x00, 0x00];
const v128const = (bytes: number[]) => [SIMD, 0x0c, ...bytes];
const shuffle = (lanes: number[]) => [SIMD, 0x0d, ...lanes];
const swizzle = [SIMD, 0x0e];
const f32x4splat = [SIMD, 0x13];
const f32x4add = [SIMD, ...uleb(0xe4)];
const f32x4sub = [SIMD, ...uleb(0xe5)];
const f32x4fromU32 = [SIMD, ...uleb(0xfb)];

// Parameters and locals of both functions.
const P = { src: 0, size: 1, y: 2, x: 3, crop: 4, flip: 5, mean: 6, out: 7, s0: 8, s1: 9, s2: 10 };
const L = { r: 11, k: 12, n4: 13, plane: 14, sp: 15, mp: 16, op: 17, mplane: 18, row: 19, sh0: 20, sh1: 21, sh2: 22, px: 23 };

/** Swizzle picking channel c of four RGB pixels into the low byte of four 32-bit lanes (reversed: last pixel first). */
function channelMask(c: number, reversed: boolean): number[] {
  const m: number[] = [];
  for (let lane = 0; lane < 4; lane++) {
    const p = reversed ? 3 - lane : lane;
    m.push(3 * p + c, 0x80, 0x80, 0x80);
  }
  return m;
}
const REVERSE_F32 = [12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3];

function body(withMean: boolean): number[] {
  const code: number[] = [];
  const emit = (...parts: number[][]) => parts.forEach((p) => code.push(...p));
  // n4 = crop & ~3; plane = crop * crop * 4; mplane = size * size * 4; shifts splatted.
  emit(get(P.crop), i32c(-4), and, set(L.n4));
  emit(get(P.crop), get(P.crop), mul, i32c(4), mul, set(L.plane));
  emit(get(P.size), get(P.size), mul, i32c(4), mul, set(L.mplane));
  emit(get(P.s0), f32x4splat, set(L.sh0), get(P.s1), f32x4splat, set(L.sh1), get(P.s2), f32x4splat, set(L.sh2));
  emit(i32c(0), set(L.r));
  const channel = (c: number, reversed: boolean) => {
    // out[op + c * plane] = float(swizzle(px)) - mean[mp + c * mplane] + shift[c]
    emit(get(L.op));
    if (c > 0) emit(get(L.plane), i32c(c), mul, add);
    emit(get(L.px), v128const(channelMask(c, reversed)), swizzle, f32x4fromU32);
    if (withMean) {
      emit(get(L.mp));
      if (c > 0) emit(get(L.mplane), i32c(c), mul, add);
      emit(v128load);
      if (reversed) emit([0x22, ...uleb(L.px + 1)], get(L.px + 1), shuffle(REVERSE_F32));
      emit(f32x4sub);
    }
    emit(get([L.sh0, L.sh1, L.sh2][c]!), f32x4add, v128store);
  };
  const columns = (reversed: boolean) => {
    // Pointers to the first group of four: forward from column x, reflected from column x + crop - 4.
    emit(get(L.row));
    if (reversed) emit(get(P.crop), add, i32c(4), sub);
    emit([0x22, ...uleb(L.sp)]); // tee sp (pixel index for now)
    emit(i32c(4), mul, get(P.mean), add, set(L.mp));
    emit(get(L.sp), i32c(3), mul, get(P.src), add, set(L.sp));
    emit(i32c(0), set(L.k));
    emit([0x02, 0x40], [0x03, 0x40]); // block { loop {
    emit(get(L.k), get(L.n4), ltU, [0x45], [0x0d, 0x01]); // if !(k < n4) break
    emit(get(L.sp), v128load, set(L.px));
    channel(0, reversed);
    channel(1, reversed);
    channel(2, reversed);
    const dir = reversed ? sub : add;
    emit(get(L.sp), i32c(12), dir, set(L.sp));
    emit(get(L.mp), i32c(16), dir, set(L.mp));
    emit(get(L.op), i32c(16), add, set(L.op));
    emit(get(L.k), i32c(4), add, set(L.k));
    emit([0x0c, 0x00], [0x0b], [0x0b]); // br loop } }
  };
  emit([0x02, 0x40], [0x03, 0x40]); // rows: block { loop {
  emit(get(L.r), get(P.crop), ltU, [0x45], [0x0d, 0x01]);
  emit(get(P.y), get(L.r), add, get(P.size), mul, get(P.x), add, set(L.row));
  emit(get(L.r), get(P.crop), mul, i32c(4), mul, get(P.out), add, set(L.op));
  emit(get(P.flip), [0x04, 0x40]); // if flip
  columns(true);
  emit([0x05]); // else
  columns(false);
  emit([0x0b]); // end if
  emit(get(L.r), i32c(1), add, set(L.r));
  emit([0x0c, 0x00], [0x0b], [0x0b]);
  code.push(0x0b); // end function
  // Locals: 9 i32 (r..row), then 5 v128 (sh0..sh2, px, and a spare for the reversed mean).
  const locals = vec([[...uleb(9), I32], [...uleb(5), V128]]);
  const fn = [...locals, ...code];
  return [...uleb(fn.length), ...fn];
}

/** The module: imports shared memory e.m (pages min..max), exports crop_mean and crop_plain. */
export function kernelModuleBytes(pages: number, maxPages: number): Uint8Array {
  const type = vec([[0x60, ...vec([I32, I32, I32, I32, I32, I32, I32, I32, F32, F32, F32].map((t) => [t])), 0x00]]);
  const imports = vec([[...str('e'), ...str('m'), 0x02, 0x03, ...uleb(pages), ...uleb(maxPages)]]);
  const funcs = vec([[0x00], [0x00]]);
  const exports = vec([[...str('crop_mean'), 0x00, 0x00], [...str('crop_plain'), 0x00, 0x01]]);
  const code = [...uleb(2), ...body(true), ...body(false)];
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, type), ...section(2, imports), ...section(3, funcs), ...section(7, exports), ...section(10, code),
  ]);
}

type KernelFn = (src: number, size: number, y: number, x: number, crop: number, flip: number, mean: number, out: number, s0: number, s1: number, s2: number) => void;

/** Whether this runtime has WebAssembly SIMD and shared memory. */
export function simdAvailable(): boolean {
  try {
    return typeof WebAssembly === 'object' && WebAssembly.validate(kernelModuleBytes(1, 1));
  } catch {
    return false;
  }
}

/**
 * Shared memory for the loader: the planar mean image (3 x size x size float32), then `slots`
 * times a scratch image (the record being transformed) followed by a batch. Offsets in bytes.
 */
export interface KernelMemory {
  memory: WebAssembly.Memory;
  /** -1 when there is no mean image. */
  meanOffset: number;
  scratchBytes: number;
  slotOffset: number;
  slotBytes: number;
  slots: number;
}

export function createKernelMemory(opts: { size: number; meanImage: Float32Array | null; slotBytes: number; slots: number }): KernelMemory | null {
  const align = (n: number) => Math.ceil(n / 64) * 64;
  const px = opts.size * opts.size;
  const meanBytes = opts.meanImage ? align(px * 3 * 4) : 0;
  const scratchBytes = align(px * 3 + 16); // + 16: the last 16-byte load reaches past the last pixel
  const slotBytes = align(opts.slotBytes);
  const total = meanBytes + (scratchBytes + slotBytes) * opts.slots;
  const pages = Math.ceil(total / 65536);
  if (pages > 65536 || !simdAvailable()) return null; // beyond 4 GiB: the JavaScript path
  let memory: WebAssembly.Memory;
  try {
    memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
  } catch {
    return null;
  }
  if (opts.meanImage) {
    // Planar copy of the HWC mean image: the kernel reads four pixels of one channel at a time.
    const planar = new Float32Array(memory.buffer, 0, px * 3);
    const m = opts.meanImage;
    for (let p = 0; p < px; p++) {
      planar[p] = m[3 * p]!;
      planar[px + p] = m[3 * p + 1]!;
      planar[2 * px + p] = m[3 * p + 2]!;
    }
  }
  return {
    memory, meanOffset: opts.meanImage ? 0 : -1, scratchBytes, slotOffset: meanBytes, slotBytes, slots: opts.slots,
  };
}

/** A crop function with cropToCHW's signature that runs the SIMD kernel on arrays inside `km.memory`. */
export function createSimdCrop(km: KernelMemory): (
  src: Uint8Array, size: number, y: number, x: number, crop: number, flip: boolean,
  meanImage: Float32Array | null, shift: readonly number[], out: Float32Array, outOffset: number,
) => void {
  const pages = km.memory.buffer.byteLength / 65536;
  const instance = new WebAssembly.Instance(new WebAssembly.Module(kernelModuleBytes(pages, pages)), { e: { m: km.memory } });
  const withMean = instance.exports.crop_mean as KernelFn;
  const plain = instance.exports.crop_plain as KernelFn;
  const buf = km.memory.buffer;
  return (src, size, y, x, crop, flip, meanImage, shift, out, outOffset) => {
    if (src.buffer !== buf || out.buffer !== buf) throw new Error('the SIMD crop works on arrays in its shared memory');
    const useMean = meanImage !== null && km.meanOffset >= 0;
    (useMean ? withMean : plain)(src.byteOffset, size, y, x, crop, flip ? 1 : 0, km.meanOffset, out.byteOffset + outOffset * 4, shift[0]!, shift[1]!, shift[2]!);
    const n4 = crop & ~3;
    if (n4 === crop) return;
    // The last crop % 4 columns.
    const plane = crop * crop;
    for (let r = 0; r < crop; r++) {
      for (let k = n4; k < crop; k++) {
        const sx = x + (flip ? crop - 1 - k : k);
        const j = ((y + r) * size + sx) * 3;
        const o = outOffset + r * crop + k;
        for (let c = 0; c < 3; c++) {
          out[o + c * plane] = (useMean ? Math.fround(src[j + c]! - meanImage![j + c]!) : src[j + c]!) + Math.fround(shift[c]!);
        }
      }
    }
  };
}
