import { mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inflateSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { crc32, encodePng, kernelGrid, readConv1, startMonitor, type Monitor } from './index.js';

/** A PNG decoder for what encodePng writes (8-bit RGB, filter 0): checks the signature, every CRC and IHDR. */
function decodePng(png: Buffer): { width: number; height: number; rgb: Buffer } {
  expect([...png.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  let at = 8, width = 0, height = 0;
  const idat: Buffer[] = [], types: string[] = [];
  while (at < png.length) {
    const n = png.readUInt32BE(at), type = png.toString('ascii', at + 4, at + 8), data = png.subarray(at + 8, at + 8 + n);
    expect(png.readUInt32BE(at + 8 + n), `CRC of ${type}`).toBe(crc32(png.subarray(at + 4, at + 8 + n)));
    types.push(type);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0); height = data.readUInt32BE(4);
      expect([...data.subarray(8)]).toEqual([8, 2, 0, 0, 0]); // 8-bit, RGB, deflate, filter 0, no interlace
    }
    if (type === 'IDAT') idat.push(Buffer.from(data));
    at += 12 + n;
  }
  expect(types[0]).toBe('IHDR');
  expect(types.at(-1)).toBe('IEND');
  const raw = inflateSync(Buffer.concat(idat));
  expect(raw.length).toBe((width * 3 + 1) * height);
  const rgb = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    expect(raw[y * (width * 3 + 1)], `filter of row ${y}`).toBe(0);
    raw.copy(rgb, y * width * 3, y * (width * 3 + 1) + 1, (y + 1) * (width * 3 + 1));
  }
  return { width, height, rgb };
}

/** A safetensors file as the trainer writes one: tensors, and __metadata__.alexnet as a JSON string. */
function safetensors(tensors: Record<string, { shape: number[]; data: Float32Array }>, alexnet?: unknown): Buffer {
  const header: Record<string, unknown> = {};
  const parts: Buffer[] = [];
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const bytes = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + bytes.length] };
    parts.push(bytes);
    offset += bytes.length;
  }
  if (alexnet !== undefined) header.__metadata__ = { alexnet: JSON.stringify(alexnet) };
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, Buffer.from(json), ...parts]);
}

/** 4 kernels [4, 3, 2, 2]: kernel o holds o*100 + i for i = 0..11 (channel-major), kernel 3 scaled by -1. */
const K = 4, R = 2, S = 2;
const weights = new Float32Array(K * 3 * R * S).map((_, j) => { const o = Math.floor(j / 12), i = j % 12; return o === 3 ? -(o * 100 + i) : o * 100 + i; });

let dir: string;
const opened: Monitor[] = [];
beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'alexnet-monitor-kernels-')); });
afterEach(async () => {
  for (const m of opened.splice(0)) await m.close();
  await rm(dir, { recursive: true, force: true });
});

async function monitor(): Promise<Monitor> {
  const m = await startMonitor({ runDir: dir, port: 0, pollMs: 50 });
  opened.push(m);
  return m;
}

const pixel = (img: { width: number; rgb: Buffer }, x: number, y: number) => [...img.rgb.subarray((y * img.width + x) * 3, (y * img.width + x) * 3 + 3)];

describe('encodePng', () => {
  it('writes RGB rows that decode back to the same bytes', () => {
    const rgb = new Uint8Array(5 * 3 * 3).map((_, i) => (i * 37) % 256);
    const img = decodePng(encodePng(rgb, 5, 3));
    expect([img.width, img.height]).toEqual([5, 3]);
    expect([...img.rgb]).toEqual([...rgb]);
    expect(() => encodePng(rgb, 4, 3)).toThrow('encodePng: 4x3 RGB needs 36 bytes but received 45');
  });

  it('crc32 is the standard CRC-32', () => {
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
  });
});

describe('the kernels picture (Figure 3)', () => {
  it('the paper model\'s checkpoint: two towers, each kernel min-max scaled on its own', async () => {
    await writeFile(join(dir, 'checkpoint.safetensors'), safetensors(
      { 'model/bias': { shape: [2], data: new Float32Array([7, 8]) }, 'model/conv1.weight': { shape: [K, 3, R, S], data: weights } },
      { format: 'alexnet-checkpoint', model: { name: 'paper' }, trainer: { epoch: 2, batch: 0, step: 12 } },
    ));
    const m = await monitor();
    const info = (await (await fetch(`${m.url}kernels.json`)).json()) as { width: number; height: number };
    expect(info).toMatchObject({ available: true, source: 'checkpoint', model: 'paper', epoch: 2, step: 12, file: join(dir, 'checkpoint.safetensors') });
    const res = await fetch(`${m.url}kernels.png`);
    expect(res.headers.get('content-type')).toBe('image/png');
    const img = decodePng(Buffer.from(await res.arrayBuffer()));
    // Two towers of 2 kernels, 2 a row, tiles of 2x2 weights at 4 px each (8 px) with 2 px gaps, 8 px between towers:
    // width 2 * (8 + 2) + 2 = 22; height 2 * (1 * (8 + 2) + 2) + 8 = 32.
    expect([img.width, img.height, info.width, info.height]).toEqual([22, 32, 22, 32]);
    expect(pixel(img, 0, 0)).toEqual([255, 255, 255]); // the gaps are white
    expect(pixel(img, 5, 16)).toEqual([255, 255, 255]); // between the towers
    // Kernel o, weight (ky, kx) of channel ch is at x = x0 + 4 kx.., y = y0 + 4 ky..; min-max scaled: round(255 (v - lo) / (hi - lo)).
    const at = (x0: number, y0: number, ky: number, kx: number) => pixel(img, x0 + 4 * kx + 1, y0 + 4 * ky + 2);
    const expected = (o: number, ky: number, kx: number) => [0, 1, 2].map((ch) => {
      const i = ch * 4 + ky * 2 + kx; // the weight's index in its kernel, 0..11
      return Math.round((255 * (o === 3 ? 11 - i : i)) / 11); // kernel 3 is reversed: its minimum is i = 11
    });
    for (const [ky, kx] of [[0, 0], [0, 1], [1, 0], [1, 1]] as const) {
      expect(at(2, 2, ky, kx), `kernel 0 (${ky}, ${kx})`).toEqual(expected(0, ky, kx));
      expect(at(12, 2, ky, kx), `kernel 1`).toEqual(expected(1, ky, kx)); // the same after its own scaling
      expect(at(2, 22, ky, kx), `kernel 2: tower 2, y0 = 12 + 8 + 2`).toEqual(expected(2, ky, kx));
      expect(at(12, 22, ky, kx), `kernel 3`).toEqual(expected(3, ky, kx));
    }
    expect(at(2, 2, 0, 0)).toEqual([0, 93, 185]); // by hand: 255 * 0/11, 255 * 4/11, 255 * 8/11
    // The server answers a page that has the picture already with 304.
    const again = await fetch(`${m.url}kernels.png`, { headers: { 'If-None-Match': res.headers.get('etag')! } });
    expect(again.status).toBe(304);
  });

  it('torchvision\'s name for conv1 and one tower', async () => {
    await writeFile(join(dir, 'checkpoint.safetensors'), safetensors({ 'model/features.0.weight': { shape: [K, 3, R, S], data: weights } }, { model: { name: 'torchvision' }, trainer: { epoch: 1, batch: 0, step: 6 } }));
    const c = await readConv1(join(dir, 'checkpoint.safetensors'));
    expect(c).toMatchObject({ name: 'model/features.0.weight', shape: [4, 3, 2, 2], model: 'torchvision', epoch: 1, step: 6 });
    expect([...c.weights]).toEqual([...weights]);
    const m = await monitor();
    const img = decodePng(Buffer.from(await (await fetch(`${m.url}kernels.png`)).arrayBuffer()));
    expect([img.width, img.height]).toEqual([4 * 10 + 2, 12]); // one row of 4
    expect(pixel(img, 32 + 1, 2 + 2)).toEqual(expected3());
    function expected3() { return [0, 1, 2].map((ch) => Math.round((255 * (11 - ch * 4)) / 11)); }
  });

  it('the run\'s own conv1-kernels.png when it is newer than the checkpoint, the checkpoint when that is newer', async () => {
    const ckpt = join(dir, 'checkpoint.safetensors'), picture = join(dir, 'conv1-kernels.png');
    await writeFile(ckpt, safetensors({ 'model/conv1.weight': { shape: [K, 3, R, S], data: weights } }, { model: { name: 'paper' } }));
    const own = encodePng(new Uint8Array(3 * 2 * 3).fill(9), 3, 2);
    await writeFile(picture, own);
    const m = await monitor();
    await utimes(ckpt, new Date(1000e3), new Date(1000e3));
    await utimes(picture, new Date(2000e3), new Date(2000e3));
    expect(await (await fetch(`${m.url}kernels.json`)).json()).toMatchObject({ available: true, source: 'picture', file: picture });
    expect(Buffer.from(await (await fetch(`${m.url}kernels.png`)).arrayBuffer()).equals(own)).toBe(true);
    await utimes(ckpt, new Date(3000e3), new Date(3000e3));
    expect(await (await fetch(`${m.url}kernels.json`)).json()).toMatchObject({ source: 'checkpoint' });
    expect(decodePng(Buffer.from(await (await fetch(`${m.url}kernels.png`)).arrayBuffer())).width).toBe(22);
  });

  it('no kernels yet, or a checkpoint without conv1: a message naming the folder or the file', async () => {
    const m = await monitor();
    const none = await (await fetch(`${m.url}kernels.json`)).json();
    expect(none).toEqual({ available: false, message: `no kernels yet: ${dir} has no checkpoint.safetensors (written at the end of each epoch) and no conv1-kernels.png (written at the end of the run)` });
    const res = await fetch(`${m.url}kernels.png`);
    expect(res.status).toBe(404);
    expect(await res.text()).toMatch(/^no kernels yet: /);
    const ckpt = join(dir, 'checkpoint.safetensors');
    await writeFile(ckpt, safetensors({ 'model/fc8.weight': { shape: [2], data: new Float32Array(2) } }));
    expect(((await (await fetch(`${m.url}kernels.json`)).json()) as { message: string }).message).toBe(`${ckpt}: holds no conv1 weights (model/conv1.weight or model/features.0.weight); its tensors are model/fc8.weight`);
    await writeFile(ckpt, 'not a checkpoint');
    expect(((await (await fetch(`${m.url}kernels.json`)).json()) as { message: string }).message).toMatch(new RegExp(`^${ckpt}: says its safetensors header is \\d+ bytes, but the file is 16 bytes: not a safetensors file, or cut short$`));
  });

  it('kernelGrid checks the shape', () => {
    expect(() => kernelGrid(new Float32Array(8), [2, 1, 2, 2])).toThrow('kernelGrid: conv1 weights are [k, 3, r, s] but received shape [2, 1, 2, 2]');
    expect(() => kernelGrid(new Float32Array(8), [2, 3, 2, 2])).toThrow('needs 24 weights but received 8');
    // A kernel whose weights are all equal draws as black, not NaN.
    const flat = kernelGrid(new Float32Array(12).fill(0.5), [1, 3, 2, 2], { scale: 1 });
    expect([flat.width, flat.height]).toEqual([1 * (2 + 2) + 2, 6]);
    expect([...flat.rgb.subarray((2 * 6 + 2) * 3, (2 * 6 + 2) * 3 + 3)]).toEqual([0, 0, 0]);
  });
});
