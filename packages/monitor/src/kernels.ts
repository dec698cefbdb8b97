/**
 * Figure 3 (§6.1) from a checkpoint: the conv1 kernels read out of RUN_DIR/checkpoint.safetensors
 * (only that one tensor, by its byte range: the file holds the whole model and its velocities) and
 * drawn as a PNG grid, each kernel min-max scaled on its own, the two towers of the paper's model
 * (§3.5: kernels 0..47 on one GPU, 48..95 on the other) as two blocks, top and bottom.
 */
import { open } from 'node:fs/promises';
import { encodePng } from './png.js';

/** Where the trainer keeps conv1: its own model's name, then torchvision's. */
export const CONV1_NAMES = ['model/conv1.weight', 'model/features.0.weight'] as const;

export interface Conv1 {
  /** float32, [k, 3, r, s] (OIHW). */
  weights: Float32Array;
  shape: [number, number, number, number];
  /** The tensor's name in the file. */
  name: string;
  /** From the checkpoint's `alexnet` metadata, when it has them. */
  model?: string;
  /** Epochs finished, the next batch in the epoch, and steps taken when the checkpoint was written. */
  epoch?: number;
  batch?: number;
  step?: number;
}

function fail(file: string, what: string): never {
  throw new Error(`${file}: ${what}`);
}

/** Reads the conv1 weights and the model's name and position out of a checkpoint. */
export async function readConv1(file: string): Promise<Conv1> {
  const fh = await open(file, 'r').catch((e: NodeJS.ErrnoException) => {
    throw new Error(e.code === 'ENOENT' ? `${file} does not exist` : `cannot open ${file}: ${e.message}`);
  });
  try {
    const { size } = await fh.stat();
    if (size < 8) fail(file, `is ${size} bytes, too short for a safetensors file (8-byte header length, JSON header, data)`);
    const head = Buffer.alloc(8);
    await fh.read(head, 0, 8, 0);
    const n = Number(head.readBigUInt64LE(0));
    if (n < 2 || 8 + n > size || n > 100 * 2 ** 20) fail(file, `says its safetensors header is ${n} bytes, but the file is ${size} bytes: not a safetensors file, or cut short`);
    const json = Buffer.alloc(n);
    await fh.read(json, 0, n, 8);
    let header: Record<string, unknown>;
    try { header = JSON.parse(json.toString('utf8')) as Record<string, unknown>; } catch (e) {
      fail(file, `has a safetensors header that is not JSON (${(e as Error).message})`);
    }
    const name = CONV1_NAMES.find((k) => Object.hasOwn(header, k));
    if (!name) {
      const names = Object.keys(header).filter((k) => k !== '__metadata__');
      fail(file, `holds no conv1 weights (${CONV1_NAMES.join(' or ')}); its tensors are ${names.slice(0, 8).join(', ') || 'none'}${names.length > 8 ? ', ...' : ''}`);
    }
    const entry = header[name] as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const shape = entry.shape;
    if (entry.dtype !== 'F32') fail(file, `tensor "${name}" has dtype ${JSON.stringify(entry.dtype)}; the monitor reads F32 conv1 weights`);
    if (!Array.isArray(shape) || shape.length !== 4 || !shape.every((d) => Number.isInteger(d) && d > 0) || shape[1] !== 3) {
      fail(file, `tensor "${name}" has shape ${JSON.stringify(shape)}; conv1 weights are [k, 3, r, s]`);
    }
    const offsets = entry.data_offsets;
    const count = (shape as number[]).reduce((a, b) => a * b, 1);
    if (!Array.isArray(offsets) || offsets.length !== 2 || offsets[1] - offsets[0] !== count * 4 || offsets[0] < 0 || 8 + n + offsets[1] > size) {
      fail(file, `tensor "${name}" has data_offsets ${JSON.stringify(offsets)}, which do not hold ${count} float32 values inside the file`);
    }
    const bytes = Buffer.alloc(count * 4);
    await fh.read(bytes, 0, bytes.length, 8 + n + (offsets[0] as number));
    const weights = new Float32Array(count);
    for (let i = 0; i < count; i++) weights[i] = bytes.readFloatLE(i * 4);
    const out: Conv1 = { weights, shape: shape as Conv1['shape'], name };
    const meta = header.__metadata__ as Record<string, unknown> | undefined;
    if (meta && typeof meta.alexnet === 'string') {
      try {
        const a = JSON.parse(meta.alexnet) as { model?: { name?: unknown }; trainer?: { epoch?: unknown; batch?: unknown; step?: unknown } };
        if (typeof a.model?.name === 'string') out.model = a.model.name;
        if (typeof a.trainer?.epoch === 'number') out.epoch = a.trainer.epoch;
        if (typeof a.trainer?.batch === 'number') out.batch = a.trainer.batch;
        if (typeof a.trainer?.step === 'number') out.step = a.trainer.step;
      } catch { /* metadata of another tool: the kernels are still drawn */ }
    }
    return out;
  } finally {
    await fh.close();
  }
}

/** The paper's model runs on two towers (§3.2); the others are one. */
export function towersOf(model: string | undefined): 1 | 2 {
  return model === 'paper' ? 2 : 1;
}

export interface KernelGrid {
  rgb: Uint8Array;
  width: number;
  height: number;
}

/**
 * conv1 weights [k, 3, r, s] -> RGB pixels: each kernel min-max scaled to 0..255 on its own, `scale`
 * pixels per weight, up to 16 kernels a row, the towers (first half of the kernels, second half) one
 * block each, top to bottom. The layout of `alexnet visualize`'s conv1-kernels.png.
 */
export function kernelGrid(weights: Float32Array, shape: readonly number[], opts: { towers?: 1 | 2; scale?: number; columns?: number } = {}): KernelGrid {
  const [k, c, r, s] = shape as [number, number, number, number];
  if (shape.length !== 4 || c !== 3) throw new RangeError(`kernelGrid: conv1 weights are [k, 3, r, s] but received shape [${shape.join(', ')}]`);
  if (weights.length !== k * c * r * s) throw new RangeError(`kernelGrid: shape [${shape.join(', ')}] needs ${k * c * r * s} weights but received ${weights.length}`);
  const scale = opts.scale ?? 4, towers = opts.towers ?? 1;
  const perTower = Math.ceil(k / towers);
  const cols = opts.columns ?? Math.min(16, perTower);
  const rowsPerTower = Math.ceil(perTower / cols);
  const gap = 2, towerGap = 8, tileW = s * scale, tileH = r * scale;
  const width = cols * (tileW + gap) + gap;
  const height = towers * (rowsPerTower * (tileH + gap) + gap) + (towers - 1) * towerGap;
  const rgb = new Uint8Array(width * height * 3).fill(255);
  const per = 3 * r * s;
  for (let o = 0; o < k; o++) {
    const tower = Math.floor(o / perTower), j = o % perTower;
    const x0 = gap + (j % cols) * (tileW + gap);
    const y0 = tower * (rowsPerTower * (tileH + gap) + gap + towerGap) + gap + Math.floor(j / cols) * (tileH + gap);
    let lo = Infinity, hi = -Infinity;
    for (let i = o * per; i < (o + 1) * per; i++) { const v = weights[i]!; if (v < lo) lo = v; if (v > hi) hi = v; }
    const span = hi - lo || 1;
    for (let y = 0; y < tileH; y++) for (let x = 0; x < tileW; x++) {
      const ky = Math.floor(y / scale), kx = Math.floor(x / scale);
      for (let ch = 0; ch < 3; ch++) {
        rgb[((y0 + y) * width + x0 + x) * 3 + ch] = Math.round((255 * (weights[o * per + (ch * r + ky) * s + kx]! - lo)) / span);
      }
    }
  }
  return { rgb, width, height };
}

/** The kernels of a checkpoint as a PNG file (Figure 3). */
export async function kernelsPng(checkpoint: string, opts: { scale?: number } = {}): Promise<{ png: Buffer; conv1: Conv1; width: number; height: number }> {
  const conv1 = await readConv1(checkpoint);
  const g = kernelGrid(conv1.weights, conv1.shape, { towers: towersOf(conv1.model), scale: opts.scale });
  return { png: encodePng(g.rgb, g.width, g.height), conv1, width: g.width, height: g.height };
}
