import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  concatChannels, conv2d, decodeSafetensors, device, encodeSafetensors, fillNormal, loadSafetensors, localResponseNorm,
  matmul, maxPool2d, memory, randn, relu, saveSafetensors, SafetensorsError, softmaxCrossEntropy, splitChannels, tanh,
  tanhBackward, tensor, tidy, topkCorrect, zeros, sgdUpdate, full,
} from './index.js';

const dev = 'reference:0';

describe('tensors', () => {
  it('creation, reading back and reshaping', async () => {
    const t = tensor([1, 2, 3, 4, 5, 6], [2, 3], { device: dev });
    expect(t.shape).toEqual([2, 3]);
    expect(t.dtype).toBe('float32');
    expect(Array.from(await t.data())).toEqual([1, 2, 3, 4, 5, 6]);
    const r = t.reshape([3, 2]);
    expect(Array.from(r.dataSync())).toEqual([1, 2, 3, 4, 5, 6]);
    expect(() => t.reshape([4, 2])).toThrow(/Cannot reshape \[2, 3\] \(6 elements\) to \[4, 2\]/);
    t.dispose(); r.dispose();
    expect(() => t.dataSync()).toThrow(/disposed/);
  });

  it('randn draws the Philox numbers for its seed and offset', () => {
    const t = randn([3, 5], { seed: 17, offset: 4, std: 0.01, device: dev });
    const want = new Float32Array(15);
    fillNormal(want, 17, 4, 0, 0.01);
    expect(t.dataSync()).toEqual(want);
    t.dispose();
  });

  it('copies between devices of one backend and across backends', () => {
    const a = tensor([1, 2, 3], [3], { device: 'reference:0' });
    const b = a.to('reference:1');
    expect(b.device.name).toBe('reference:1');
    expect(Array.from(b.dataSync())).toEqual([1, 2, 3]);
    a.dispose(); b.dispose();
  });

  it('tidy disposes what it does not return, and memory() sees it', () => {
    const before = memory().devices[dev] ?? { tensors: 0, bytes: 0 };
    const kept = tidy(() => {
      const x = randn([4, 4], { seed: 1, device: dev });
      const y = relu(x);
      const z = matmul(y, x);
      return { z };
    });
    const after = memory().devices[dev]!;
    expect(after.tensors).toBe(before.tensors + 1);
    expect(after.bytes).toBe(before.bytes + 64);
    kept.z.dispose();
    expect(memory().devices[dev]).toEqual(before);
  });

  it('tidy(async fn) throws, after disposing what fn created before its first await', async () => {
    const before = memory();
    let late: Error | undefined;
    let kept: ReturnType<typeof randn> | undefined;
    expect(() => tidy((async () => {
      randn([8, 8], { seed: 1, device: dev });
      relu(randn([2, 3], { seed: 2, device: dev }));
      kept = zeros([5], { device: dev }).keep();
      await Promise.resolve();
      try { randn([1], { seed: 3, device: dev }).dispose(); } catch (e) { late = e as Error; }
    }) as unknown as () => void)).toThrow(/tidy: expected fn to be synchronous but it returned a Promise .*the 3 tensor\(s\) it created before its first await were disposed/);
    // The three tensors made before the await are gone; the kept one survives the scope.
    expect(memory().tensors).toBe(before.tensors + 1);
    expect(memory().bytes).toBe(before.bytes + 5 * 4);
    kept!.dispose();
    expect(memory()).toEqual(before);
    await new Promise((r) => setTimeout(r, 10)); // the rest of fn ran outside any scope
    expect(late).toBeUndefined();
    expect(memory()).toEqual(before);
  });

  it('unknown and unavailable devices are clear errors', () => {
    expect(() => device('tpu:0')).toThrow(/no backend named "tpu"/);
    expect(() => device('cpu:x')).toThrow(/device name like "cpu:0"/);
    expect(() => device('reference:999')).toThrow(/does not exist/);
  });
});

describe('ops validate their arguments with sentences', () => {
  it('names the op and the argument', () => {
    const x = zeros([1, 3, 8, 8], { device: dev });
    const w = zeros([4, 2, 3, 3], { device: dev });
    expect(() => conv2d(x, w, null)).toThrow(/conv2d: w has 2 input channels per kernel but x has 3 channels in 1 group\(s\) \(expected 3\)/);
    expect(() => conv2d(x, zeros([4, 3, 3, 3], { device: dev }), null, { stride: 0 })).toThrow(/conv2d: expected stride to be an integer >= 1/);
    expect(() => conv2d(x.reshape([3, 8, 8]), w, null)).toThrow(/conv2d: expected x of rank 4/);
    expect(() => maxPool2d(x, { size: 9 })).toThrow(/window 9x9 is larger than the padded input 8x8/);
    expect(() => localResponseNorm(x, { size: 0 })).toThrow(/localResponseNorm: expected size to be an integer >= 1/);
    expect(() => matmul(zeros([2, 3], { device: dev }), zeros([4, 2], { device: dev }))).toThrow(/gemm: inner dimensions differ/);
    expect(() => relu([1, 2] as never)).toThrow(/relu: expected x to be a Tensor but received an array of length 2/);
    const labels = tensor(Int32Array.of(0, 1), [2], { device: dev });
    expect(() => softmaxCrossEntropy(zeros([3, 4], { device: dev }), labels)).toThrow(/labels has 2 entries but logits has 3 rows/);
    expect(() => topkCorrect(zeros([2, 4], { device: dev }), tensor([0, 1], [2], { device: dev }), 1)).toThrow(/expected labels to be int32 but received float32/);
    const other = zeros([1, 3, 8, 8], { device: 'reference:1' });
    expect(() => concatChannels([x, other])).toThrow(/tensors\[1\] is on reference:1 but tensors\[0\] is on reference:0/);
    const w0 = zeros([2], { device: dev });
    expect(() => sgdUpdate(w0, w0, w0, { lr: NaN })).toThrow(/sgdUpdate: expected lr to be a finite number/);
    expect(() => relu(zeros([0, 3], { device: dev }))).toThrow(/zero-size dimension/);
  });
});

describe('tanh and tanhBackward (§3.1, Figure 1)', () => {
  const xs = [0, 0.5, -2, 1e-9, 30, NaN, Infinity, -Infinity];
  it('validate like relu and reluBackward: errors name the op and the argument', () => {
    const x = zeros([2, 3], { device: dev });
    expect(() => tanh([1, 2] as never)).toThrow(/tanh: expected x to be a Tensor but received an array of length 2/);
    expect(() => tanh(tensor(Int32Array.of(1), [1], { dtype: 'int32', device: dev }))).toThrow(/tanh: expected x to be float32 or float64 but received int32/);
    expect(() => tanh(zeros([0, 3], { device: dev }))).toThrow(/tanh: x has a zero-size dimension/);
    const gone = zeros([2], { device: dev });
    gone.dispose();
    expect(() => tanh(gone)).toThrow(/tanh: x was disposed/);
    expect(() => tanhBackward(x, zeros([3, 2], { device: dev }))).toThrow(/tanhBackward: dy has shape \[3, 2\] but y has shape \[2, 3\]/);
    expect(() => tanhBackward(x, zeros([2, 3], { device: dev, dtype: 'float64' }))).toThrow(/tanhBackward: dy is float64 but y is float32/);
    expect(() => tanhBackward(x, zeros([2, 3], { device: 'reference:1' }))).toThrow(/tanhBackward: dy is on reference:1 but y is on reference:0/);
    expect(() => tanhBackward(null as never, x)).toThrow(/tanhBackward: expected y to be a Tensor but received null/);
    expect(() => tanhBackward(x, 3 as never)).toThrow(/tanhBackward: expected dy to be a Tensor but received 3 of type number/);
  });

  it('computes Math.tanh in float64 (NaN stays NaN, ±Infinity gives ±1), in float32 to rounding, and in place', () => {
    const x64 = tensor(Float64Array.from(xs), [2, 4], { dtype: 'float64', device: dev });
    const y64 = tanh(x64);
    expect(y64.shape).toEqual([2, 4]);
    expect(y64.dtype).toBe('float64');
    expect(Array.from(y64.dataSync())).toEqual(xs.map(Math.tanh));
    expect(Array.from(y64.dataSync()).slice(5)).toEqual([NaN, 1, -1]);
    const x32 = tensor(xs, [8], { device: dev });
    expect(Array.from(tanh(x32).dataSync())).toEqual(Array.from(Float32Array.from(xs, (v) => Math.tanh(Math.fround(v)))));
    expect(tanh(x32, { inPlace: true })).toBe(x32);
    expect(Array.from(x32.dataSync())).toEqual(Array.from(Float32Array.from(xs, (v) => Math.tanh(Math.fround(v)))));
    for (const t of [x64, y64, x32]) t.dispose();
  });

  it('tanhBackward is dy (1 - y²) from the output y, and NaN passes', () => {
    const y = tensor(Float64Array.of(0, 0.5, -0.5, 1, NaN, 0.25), [6], { dtype: 'float64', device: dev });
    const dy = tensor(Float64Array.of(2, 4, -4, 7, 1, NaN), [6], { dtype: 'float64', device: dev });
    expect(Array.from(tanhBackward(y, dy).dataSync())).toEqual([2, 3, -3, 0, NaN, NaN]);
    const dx = tanhBackward(y, dy, { inPlace: true });
    expect(dx).toBe(dy);
    expect(Array.from(dy.dataSync())).toEqual([2, 3, -3, 0, NaN, NaN]);
    y.dispose(); dy.dispose();
  });
});

describe('ops compute (reference backend, hand-worked)', () => {
  it('concat and split along channels are inverse (the §3.2 exchange)', () => {
    const a = tensor(Float32Array.from({ length: 2 * 2 * 3 }, (_, i) => i), [2, 2, 3], { device: dev });
    const b = tensor(Float32Array.from({ length: 2 * 1 * 3 }, (_, i) => 100 + i), [2, 1, 3], { device: dev });
    const c = concatChannels([a, b]);
    expect(c.shape).toEqual([2, 3, 3]);
    expect(Array.from(c.dataSync())).toEqual([0, 1, 2, 3, 4, 5, 100, 101, 102, 6, 7, 8, 9, 10, 11, 103, 104, 105]);
    const [a2, b2] = splitChannels(c, [2, 1]);
    expect(a2!.dataSync()).toEqual(a.dataSync());
    expect(b2!.dataSync()).toEqual(b.dataSync());
  });

  it('softmax cross-entropy of uniform logits is ln(classes)', () => {
    const { loss, dlogits } = softmaxCrossEntropy(full([4, 10], 3, { device: dev }), tensor(Int32Array.of(0, 3, 9, 2), [4], { device: dev }));
    expect(loss.dataSync()[0]).toBeCloseTo(Math.log(10), 6);
    expect(dlogits!.dataSync()[0]).toBeCloseTo((0.1 - 1) / 4, 7);
  });
});

describe('safetensors', () => {
  let dir: string;
  afterAll(async () => { if (dir) await rm(dir, { recursive: true, force: true }); });

  it('round-trips names, shapes, dtypes and metadata, atomically written', async () => {
    dir = await mkdtemp(join(tmpdir(), 'alexnet-st-'));
    const w = tensor(Float32Array.of(1.5, -2, 3.25, 4), [2, 2], { device: dev });
    const path = join(dir, 'w.safetensors');
    await saveSafetensors(path, { 'conv1.weight': w, labels: { dtype: 'int32', shape: [3], data: Int32Array.of(7, 8, 9) } }, { model: 'paper' });
    const { tensors, metadata } = await loadSafetensors(path);
    expect(metadata).toEqual({ model: 'paper' });
    expect(tensors.get('conv1.weight')).toEqual({ dtype: 'float32', shape: [2, 2], data: Float32Array.of(1.5, -2, 3.25, 4) });
    expect(tensors.get('labels')!.data).toEqual(Int32Array.of(7, 8, 9));
    // Layout check against the format: 8-byte length, JSON header, data at the stated offsets.
    const bytes = await readFile(path);
    const hlen = Number(bytes.readBigUInt64LE(0));
    const header = JSON.parse(bytes.subarray(8, 8 + hlen).toString());
    expect(header['conv1.weight']).toEqual({ dtype: 'F32', shape: [2, 2], data_offsets: [0, 16] });
    expect(bytes.readFloatLE(8 + hlen + 4)).toBe(-2);
  });

  it('reads F16 and BF16 as float32', () => {
    const header = JSON.stringify({ h: { dtype: 'F16', shape: [2], data_offsets: [0, 4] }, b: { dtype: 'BF16', shape: [1], data_offsets: [4, 6] } });
    const hb = Buffer.from(header);
    const buf = Buffer.alloc(8 + hb.length + 6);
    buf.writeBigUInt64LE(BigInt(hb.length), 0);
    hb.copy(buf, 8);
    buf.writeUInt16LE(0x3c00, 8 + hb.length);     // 1.0
    buf.writeUInt16LE(0xc100, 8 + hb.length + 2); // -2.5
    buf.writeUInt16LE(0x4049, 8 + hb.length + 4); // bf16 3.140625
    const { tensors } = decodeSafetensors(buf);
    expect(Array.from(tensors.get('h')!.data)).toEqual([1, -2.5]);
    expect(tensors.get('b')!.data[0]).toBe(3.140625);
  });

  it('a truncated file is an error that says so', async () => {
    const bytes = encodeSafetensors({ x: { dtype: 'float32', shape: [100], data: new Float32Array(100) } });
    const path = join(dir, 'cut.safetensors');
    await writeFile(path, bytes.subarray(0, bytes.length - 10));
    await expect(loadSafetensors(path)).rejects.toThrow(/truncated: tensor "x" ends at byte 400/);
    expect(() => decodeSafetensors(bytes.subarray(0, 5))).toThrow(SafetensorsError);
    expect(() => decodeSafetensors(bytes.subarray(0, 20))).toThrow(/truncated: the header says/);
  });
});
