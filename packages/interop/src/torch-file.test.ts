// The torch.save reader on small files made once by scripts/make-fixtures.py with PyTorch 1.13 (zip and
// legacy formats), values stated by hand; and files that must be refused: hostile pickles (nothing in
// them may run), truncated and corrupt archives.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseTorchFile, readTorchStateDict, stateDictOf, unpickle, ZipArchive, TORCH_GLOBALS, OPCODES } from './index.js';
import { FIXTURES, makeZip, P, pickle } from './helpers.test-util.js';

const EXPECTED: Record<string, { dtype: string; from: string; shape: number[]; data: number[] }> = {
  'conv.weight': { dtype: 'float32', from: 'float32', shape: [2, 1, 2, 2], data: [-1, -0.5, 0, 0.5, 1, 1.5, 2, 2.5] },
  'conv.bias': { dtype: 'float32', from: 'float16', shape: [2], data: [0.0999755859375, -65504] },
  'fc.weight': { dtype: 'float32', from: 'bfloat16', shape: [2, 2], data: [3.140625, -2.5, 1, 0.0078125] },
  'fc.bias': { dtype: 'float32', from: 'float64', shape: [2], data: [Math.fround(1 / 3), Math.fround(-1e-3)] },
  transposed: { dtype: 'float32', from: 'float32', shape: [3, 2], data: [0, 3, 1, 4, 2, 5] }, // arange(6).reshape(2, 3).t()
  sliced: { dtype: 'float32', from: 'float32', shape: [4], data: [3, 4, 5, 6] }, // arange(10)[3:7]: offset 3
  strided: { dtype: 'float32', from: 'float32', shape: [4], data: [0, 3, 6, 9] }, // arange(10)[::3]: stride 3, same storage
  count: { dtype: 'int32', from: 'int64', shape: [], data: [7] },
  mask: { dtype: 'uint8', from: 'bool', shape: [3], data: [1, 0, 1] },
  param: { dtype: 'float32', from: 'float32', shape: [2], data: [1.5, -2] }, // an nn.Parameter: _rebuild_parameter
};

describe('reading torch.save files (fixtures from PyTorch 1.13)', () => {
  for (const [file, format] of [['small.pt', 'zip'], ['small-legacy.pt', 'legacy']] as const) {
    it(`${file}: the ${format} format, every element type widened, strided and offset views made contiguous`, async () => {
      const sd = await readTorchStateDict(join(FIXTURES, file));
      expect(sd.format).toBe(format);
      expect([...sd.tensors.keys()]).toEqual(Object.keys(EXPECTED)); // the OrderedDict's order
      for (const [name, want] of Object.entries(EXPECTED)) {
        const t = sd.tensors.get(name)!;
        expect({ name, dtype: t.dtype, from: sd.dtypes.get(name), shape: t.shape }).toEqual({ name, dtype: want.dtype, from: want.from, shape: want.shape });
        expect(Array.from(t.data), name).toEqual(want.data);
      }
    });
  }

  it('the fixtures stay small (< 50 KB together)', () => {
    const total = ['small.pt', 'small-legacy.pt', 'not-alexnet.pt'].reduce((s, f) => s + readFileSync(join(FIXTURES, f)).length, 0);
    expect(total).toBeLessThan(50_000);
  });

  it('lists the globals and opcodes it allows', () => {
    expect(TORCH_GLOBALS).toContain('torch._utils._rebuild_tensor_v2');
    expect(TORCH_GLOBALS).toContain('torch.HalfStorage');
    expect(TORCH_GLOBALS).not.toContain('builtins.eval');
    expect(OPCODES).toContain('BINPERSID');
    expect(OPCODES).not.toContain('INST');
  });
});

describe('hostile pickles are refused and nothing in them runs', () => {
  const marker = join(FIXTURES, '..', `pwned-${process.pid}`);
  const osSystem = pickle(P.proto(2), P.global('os', 'system'), P.str(`touch ${marker}`), P.tuple1, P.reduce, P.stop);

  it('GLOBAL os system + REDUCE, as data.pkl of a torch.save zip: "unsupported pickle global os.system", no command run', () => {
    const zip = makeZip({ 'archive/data.pkl': osSystem, 'archive/version': new TextEncoder().encode('3\n') });
    expect(() => parseTorchFile(zip, 'evil.pt')).toThrow(/^evil\.pt \(archive\/data\.pkl\): unsupported pickle global os\.system; .*Nothing in the file was run/);
    expect(existsSync(marker)).toBe(false);
  });

  it('the same pickle as a legacy-format file', () => {
    expect(() => parseTorchFile(osSystem, 'evil.pt')).toThrow(/unsupported pickle global os\.system/);
    expect(existsSync(marker)).toBe(false);
  });

  it('STACK_GLOBAL builtins eval, INST, and a REDUCE on a storage type', () => {
    const zipOf = (p: Uint8Array) => makeZip({ 'a/data.pkl': p });
    const stack = pickle(P.proto(4), P.str('builtins'), P.str('eval'), P.stackGlobal, P.str('1+1'), P.tuple1, P.reduce, P.stop);
    expect(() => parseTorchFile(zipOf(stack), 'f.pt')).toThrow(/unsupported pickle global builtins\.eval/);
    const inst = pickle(P.proto(2), P.mark, P.str('ls'), P.inst('os', 'system'), P.stop);
    expect(() => parseTorchFile(zipOf(inst), 'f.pt')).toThrow(/unsupported pickle opcode INST \(0x69\)/);
    const storageCall = pickle(P.proto(2), P.global('torch', 'FloatStorage'), P.emptyTuple, P.reduce, P.stop);
    expect(() => parseTorchFile(zipOf(storageCall), 'f.pt')).toThrow(/calls torch\.FloatStorage, which is not a function a state dict uses/);
  });

  it('a pickled module and a TorchScript archive are told apart from a state dict', () => {
    const module = pickle(P.proto(2), P.global('torchvision.models.alexnet', 'AlexNet'), P.emptyTuple, P.reduce, P.stop);
    expect(() => parseTorchFile(makeZip({ 'm/data.pkl': module }), 'm.pt')).toThrow(/pickled model object, not a state dict: save it with torch\.save\(model\.state_dict\(\), path\)/);
    const script = pickle(P.proto(2), P.global('__torch__.torchvision.models.alexnet', 'AlexNet'), P.emptyTuple, P.reduce, P.stop);
    expect(() => parseTorchFile(makeZip({ 'm/data.pkl': script, 'm/code/__torch__.py': new Uint8Array(1) }), 'm.pt')).toThrow(/TorchScript archive/);
  });

  it('lengths that run past the end, unknown memo entries and stray stops are errors, not allocations', () => {
    const opts = { source: 'x', globals: {} };
    expect(() => unpickle(pickle(P.proto(2), [0x58, 0xff, 0xff, 0xff, 0x7f], P.stop), opts)).toThrow(/truncated/);
    expect(() => unpickle(pickle(P.proto(2), P.binget(5), P.stop), opts)).toThrow(/memo entry 5, which was never stored/);
    expect(() => unpickle(pickle(P.proto(2), P.none, P.none, P.stop), opts)).toThrow(/stops with 2 values/);
    expect(() => unpickle(pickle(P.proto(2), P.none), opts)).toThrow(/truncated: it ends at byte 3 before its STOP/);
  });

  it('a tensor whose size and stride reach past its storage', () => {
    const p = pickle(P.proto(2), P.global('torch._utils', '_rebuild_tensor_v2'),
      P.mark, P.mark, P.str('storage'), P.global('torch', 'FloatStorage'), P.str('0'), P.str('cpu'), P.int(2), P.tuple, P.binpersid,
      P.int(0), P.mark, P.int(3), P.tuple, P.mark, P.int(1), P.tuple, P.newfalse, P.none, P.tuple, P.reduce, P.stop);
    const wrap = pickle(P.proto(2), P.emptyDict, P.str('w'), Array.from(p.subarray(2, p.length - 1)), P.setitem, P.stop);
    const zip = makeZip({ 'a/data.pkl': wrap, 'a/data/0': new Uint8Array(8) });
    expect(() => stateDictOf(parseTorchFile(zip, 'oob.pt'), 'oob.pt')).toThrow(/oob\.pt: tensor w \(shape \[3\], stride \[1\], offset 0\) reaches element 2 of a storage of 2/);
  });
});

describe('damaged archives', () => {
  const good = readFileSync(join(FIXTURES, 'small.pt'));

  it('a truncated file (half of it) says so and names the file', () => {
    expect(() => parseTorchFile(good.subarray(0, good.length >> 1), 'half.pt')).toThrow(/^half\.pt is not a complete zip archive: it has no end-of-central-directory record/);
  });

  it('a flipped byte in a storage fails its CRC-32', () => {
    const zip = new ZipArchive(good, 'small.pt');
    const e = zip.entries.get('small/data/0')!;
    const bad = Uint8Array.from(good);
    bad[e.localHeaderOffset + 30 + 'small/data/0'.length + new DataView(good.buffer, good.byteOffset).getUint16(e.localHeaderOffset + 28, true)]! ^= 1;
    expect(() => parseTorchFile(bad, 'flip.pt')).toThrow(/flip\.pt is corrupt: entry small\/data\/0 fails its CRC-32 check/);
  });

  it('the same archive with deflated entries (a zip tool re-packed it) reads the same values', () => {
    const zip = new ZipArchive(good, 'small.pt');
    const entries = Object.fromEntries([...zip.entries.keys()].map((k) => [k, zip.read(k)]));
    const sd = stateDictOf(parseTorchFile(makeZip(entries, { deflate: true }), 'deflated.pt'), 'deflated.pt');
    for (const [name, want] of Object.entries(EXPECTED)) expect(Array.from(sd.tensors.get(name)!.data), name).toEqual(want.data);
  });

  it('a truncated legacy file names the storage it lacks', () => {
    const legacy = readFileSync(join(FIXTURES, 'small-legacy.pt'));
    expect(() => parseTorchFile(legacy.subarray(0, legacy.length - 10), 'cut.pt')).toThrow(/^cut\.pt is truncated: storage \d+ /);
  });

  it('files that are neither zip nor pickle, or missing', async () => {
    expect(() => parseTorchFile(new TextEncoder().encode('hello, world, this is not a model'), 'x.txt')).toThrow(/x\.txt is not a file torch\.save writes/);
    await expect(readTorchStateDict(join(FIXTURES, 'nope.pt'))).rejects.toThrow(/nope\.pt does not exist/);
  });
});
