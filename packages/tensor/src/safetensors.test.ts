// safetensors files that must be refused, built byte by byte: every error is a SafetensorsError that
// names the file. And saving: a failed write (a full disk, injected) leaves the previous file intact,
// removes its temporary file and says both.
import { execFileSync } from 'node:child_process';
import { constants, openSync, closeSync } from 'node:fs';
import { mkdir, mkdtemp, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { decodeSafetensors, loadSafetensors, saveSafetensors, SafetensorsError, writeFileAtomic } from './index.js';

/** A safetensors file: the 8-byte little-endian header length, the header text as given, `data`. */
function file(header: string | object, data: number | Uint8Array = 0): Uint8Array {
  const h = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const d = typeof data === 'number' ? new Uint8Array(data) : data;
  const out = new Uint8Array(8 + h.length + d.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(d, 8 + h.length);
  return out;
}
const f32 = (begin: number, end: number, shape = [(end - begin) / 4]) => ({ dtype: 'F32', shape, data_offsets: [begin, end] });

let dir: string;
beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'alexnet-st-bad-')); });
afterAll(async () => { await rm(dir, { recursive: true, force: true }); });

/** Writes the bytes to a file and expects loadSafetensors to refuse them with a message naming it. */
async function refused(name: string, bytes: Uint8Array, why: RegExp): Promise<void> {
  const path = join(dir, `${name}.safetensors`);
  await writeFile(path, bytes);
  const err = await loadSafetensors(path).then(() => undefined, (e: unknown) => e);
  expect(err, `${name} was accepted`).toBeInstanceOf(SafetensorsError);
  expect((err as Error).message).toContain(path);
  expect((err as Error).message).toMatch(why);
}

describe('safetensors: malformed files are refused, naming the file', () => {
  it('a valid file still loads (tensors listed out of data order, a zero-size tensor, padding, metadata)', () => {
    const data = new Uint8Array(12);
    new DataView(data.buffer).setFloat32(0, 1.5, true);
    new DataView(data.buffer).setInt32(8, -7, true);
    const header = JSON.stringify({ b: { dtype: 'I32', shape: [1], data_offsets: [8, 12] }, a: f32(0, 8), z: { dtype: 'U8', shape: [0, 3], data_offsets: [12, 12] }, __metadata__: { k: 'v' } });
    const { tensors, metadata } = decodeSafetensors(file(header + '   ', data), 'ok.safetensors');
    expect([...tensors.keys()]).toEqual(['b', 'a', 'z']);
    expect(Array.from(tensors.get('a')!.data)).toEqual([1.5, 0]);
    expect(Array.from(tensors.get('b')!.data)).toEqual([-7]);
    expect(tensors.get('z')!.shape).toEqual([0, 3]);
    expect({ ...metadata }).toEqual({ k: 'v' });
  });

  it('negative, fractional, reversed and non-numeric data_offsets', async () => {
    await refused('negative', file({ a: { dtype: 'U8', shape: [4], data_offsets: [-4, 0] } }, 4), /tensor "a" has data_offsets \[-4,0\]; expected \[begin, end\], two non-negative integers/);
    await refused('fractional', file({ a: { dtype: 'U8', shape: [2], data_offsets: [0.5, 2.5] } }, 3), /tensor "a" has data_offsets \[0.5,2.5\]/);
    await refused('reversed', file({ a: { dtype: 'U8', shape: [0], data_offsets: [4, 0] } }, 4), /data_offsets \[4, 0\], which end before they begin/);
    await refused('string offsets', file({ a: { dtype: 'U8', shape: [4], data_offsets: ['0', '4'] } }, 4), /has data_offsets \["0","4"\]/);
    await refused('three offsets', file({ a: { dtype: 'U8', shape: [4], data_offsets: [0, 4, 8] } }, 4), /has data_offsets \[0,4,8\]/);
  });

  it('overlapping tensors, holes between them, and bytes after the last', async () => {
    await refused('overlap', file({ a: f32(0, 8), b: f32(4, 12) }, 12), /tensor "b" \(bytes 4 to 12 of the data\) overlaps tensor "a" \(bytes 0 to 8\)/);
    await refused('same bytes', file({ a: f32(0, 4), b: f32(0, 4) }, 4), /overlaps/);
    await refused('hole', file({ a: f32(0, 4), b: f32(8, 12) }, 12), /bytes 4 to 8 of the data belong to no tensor \(a hole before tensor "b"\)/);
    await refused('hole at start', file({ a: f32(4, 8) }, 8), /bytes 0 to 4 of the data belong to no tensor/);
    await refused('trailing', file({ a: f32(0, 4) }, 8), /4 bytes after the last tensor's data \(bytes 4 to 8\) belong to no tensor/);
    await refused('no tensors, trailing', file({}, 1), /1 bytes after the last tensor's data/);
    await refused('truncated', file({ a: f32(0, 8) }, 4), /is truncated: tensor "a" ends at byte 8 of the data but only 4 bytes are present/);
  });

  it('a name given twice (JSON.parse would keep the last silently), at any level', async () => {
    await refused('duplicate tensor', file(`{"a":${JSON.stringify(f32(0, 4))},"a":${JSON.stringify(f32(4, 8))}}`, 8), /names "a" twice in the header/);
    await refused('duplicate field', file('{"a":{"dtype":"F32","dtype":"I32","shape":[1],"data_offsets":[0,4]}}', 4), /names "dtype" twice in the entry "a"/);
    await refused('duplicate metadata', file(`{"__metadata__":{"k":"1"},"__metadata__":{"k":"2"},"a":${JSON.stringify(f32(0, 4))}}`, 4), /names "__metadata__" twice/);
    await refused('duplicate metadata key', file(`{"__metadata__":{"k":"1","k":"2"},"a":${JSON.stringify(f32(0, 4))}}`, 4), /names "k" twice in the entry "__metadata__"/);
    // The same name with an escape is the same name.
    await refused('escaped duplicate', file(`{"a":${JSON.stringify(f32(0, 4))},"\\u0061":${JSON.stringify(f32(4, 8))}}`, 8), /names "a" twice/);
  });

  it('a __metadata__ that is not an object of strings', async () => {
    const a = JSON.stringify(f32(0, 4));
    await refused('metadata number value', file(`{"__metadata__":{"epoch":3},"a":${a}}`, 4), /__metadata__ must be an object of strings but "epoch" is number 3/);
    await refused('metadata string', file(`{"__metadata__":"x","a":${a}}`, 4), /__metadata__ must be an object of strings but is the string "x"/);
    await refused('metadata array', file(`{"__metadata__":["x"],"a":${a}}`, 4), /__metadata__ must be an object of strings but is an array/);
    await refused('metadata null', file(`{"__metadata__":null,"a":${a}}`, 4), /__metadata__ must be an object of strings but is null/);
    await refused('metadata nested', file(`{"__metadata__":{"k":{"x":"y"}},"a":${a}}`, 4), /"k" is an object/);
  });

  it('dtype names that would resolve through a prototype, and other unknown dtypes', async () => {
    for (const dtype of ['__proto__', 'toString', 'constructor', 'hasOwnProperty', 'valueOf', 'f32', 'F8']) {
      await refused(`dtype ${dtype}`, file({ a: { dtype, shape: [1], data_offsets: [0, 4] } }, 4), new RegExp(`has dtype "${dtype}", which @alexnet does not read`));
    }
    await refused('dtype number', file({ a: { dtype: 4, shape: [1], data_offsets: [0, 4] } }, 4), /has dtype number 4; expected a string/);
    // A tensor may be called __proto__: it is a name like any other.
    const { tensors } = decodeSafetensors(file(`{"__proto__":${JSON.stringify(f32(0, 4))}}`, 4));
    expect([...tensors.keys()]).toEqual(['__proto__']);
  });

  it('shapes, sizes and headers that do not hold together', async () => {
    await refused('bytes vs shape', file({ a: f32(0, 8, [3]) }, 8), /has 8 bytes \(data_offsets \[0, 8\]\) but shape \[3\] of F32 needs 12/);
    await refused('negative dim', file({ a: f32(0, 4, [-1]) }, 4), /has shape \[-1\]; expected an array of non-negative integers/);
    await refused('huge shape', file({ a: { dtype: 'U8', shape: [2 ** 30, 2 ** 30], data_offsets: [0, 0] } }), /more elements than 2\^53/);
    await refused('not an object', file('[1, 2]'), /has a header that is an array, not a JSON object/);
    await refused('entry not an object', file({ a: 5 }), /tensor "a" must be an object \{ dtype, shape, data_offsets \} but is number 5/);
    await refused('garbage after JSON', file('{} x'), /not valid JSON: more follows the top-level value/);
    await refused('bad JSON', file('{"a":}'), /not valid JSON/);
    await refused('deep JSON', file('{"a":' + '['.repeat(100) + ']'.repeat(100) + '}'), /nested more than 32 deep/);
    const badUtf8 = file('{}');
    badUtf8[8] = 0xff;
    await refused('bad UTF-8', badUtf8, /not valid UTF-8/);
    const long = new Uint8Array(16);
    new DataView(long.buffer).setBigUint64(0, 2n ** 62n, true);
    await refused('huge header length', long, /truncated: the header says 4611686018427387904 bytes but only 8 follow/);
  });

  it('a directory or a FIFO is refused by name, before it is opened (a FIFO would block the read for ever)', async () => {
    const sub = join(dir, 'a-directory.safetensors');
    await mkdir(sub);
    await expect(loadSafetensors(sub)).rejects.toThrow(`${sub} is a directory, not a safetensors file`);
    await expect(loadSafetensors(join(dir, 'missing.safetensors'))).rejects.toThrow(new RegExp(`could not read ${join(dir, 'missing.safetensors')}: ENOENT`));
    if (process.platform === 'win32') return;
    const fifo = join(dir, 'a-fifo.safetensors');
    execFileSync('mkfifo', [fifo]);
    try {
      const hung = new Promise((_, reject) => setTimeout(() => reject(new Error('loadSafetensors blocked on the FIFO')), 2000));
      await expect(Promise.race([loadSafetensors(fifo), hung])).rejects.toThrow(`${fifo} is not a regular file`);
    } finally {
      try { closeSync(openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK)); } catch { /* no reader blocked: fine */ }
    }
  });
});

describe('safetensors: a failed save', () => {
  afterEach(() => { vi.restoreAllMocks(); });

  /** Makes the `failAt`-th FileHandle write (counting from 0) fail as a full disk does. */
  async function diskFullAt(failAt: number): Promise<void> {
    const probe = await open(join(dir, 'probe'), 'w');
    const proto = Object.getPrototypeOf(probe) as { write: (...a: unknown[]) => Promise<unknown> };
    await probe.close();
    const real = proto.write;
    let n = 0;
    vi.spyOn(proto, 'write').mockImplementation(function (this: unknown, ...args: unknown[]) {
      if (n++ < failAt) return real.apply(this, args);
      return Promise.reject(Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28, syscall: 'write' }));
    });
  }

  it('on a full disk names the file, says the previous one is intact, and removes the temporary file', async () => {
    const sub = await mkdtemp(join(dir, 'save-'));
    const path = join(sub, 'model.safetensors');
    const weights = { w: { dtype: 'float32' as const, shape: [1024], data: new Float32Array(1024).fill(2) } };
    await saveSafetensors(path, weights, { epoch: '1' });
    const before = await readFile(path);
    await diskFullAt(1); // the header is written, the first tensor is not
    const err = await saveSafetensors(path, { w: { ...weights.w, data: new Float32Array(1024).fill(3) } }, { epoch: '2' }).then(() => undefined, (e: unknown) => e);
    vi.restoreAllMocks();
    expect(err).toBeInstanceOf(SafetensorsError);
    const msg = (err as Error).message;
    expect(msg).toContain(`could not write ${path}: the disk is full (ENOSPC`);
    expect(msg).toContain(`The file that was at ${path} before, if any, is intact`);
    expect((err as NodeJS.ErrnoException).code).toBe('ENOSPC');
    expect(await readFile(path)).toEqual(before); // the previous checkpoint, byte for byte
    expect(await readdir(sub)).toEqual(['model.safetensors']); // no temporary file left behind
    const { metadata } = await loadSafetensors(path);
    expect(metadata.epoch).toBe('1');
  });

  it('writeFileAtomic fails the same way', async () => {
    const sub = await mkdtemp(join(dir, 'json-'));
    const path = join(sub, 'state.json');
    await writeFileAtomic(path, new TextEncoder().encode('{"a":1}'));
    await diskFullAt(0);
    await expect(writeFileAtomic(path, new TextEncoder().encode('{"a":2}'))).rejects.toThrow(/could not write .*state\.json: the disk is full .*is intact/);
    vi.restoreAllMocks();
    expect(await readFile(path, 'utf8')).toBe('{"a":1}');
    expect(await readdir(sub)).toEqual(['state.json']);
  });

  it('into a missing folder names the file', async () => {
    const path = join(dir, 'no-such-folder', 'm.safetensors');
    await expect(saveSafetensors(path, {})).rejects.toThrow(new RegExp(`could not write ${path}: ENOENT`));
  });
});
