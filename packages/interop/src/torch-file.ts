/**
 * The files torch.save writes, read without Python:
 *
 * - zip (the default since PyTorch 1.6): `<prefix>/data.pkl` is a pickle of the object, whose tensors
 *   refer by persistent id ('storage', torch.FloatStorage, key, location, numel) to the raw
 *   little-endian storage `<prefix>/data/<key>`; `<prefix>/version` and, in newer versions,
 *   `<prefix>/byteorder` sit beside them.
 * - legacy (`_use_new_zipfile_serialization=False`, and every file before 1.6): five pickles in a row
 *   (the magic number 0x1950a86a20f9469cfc6c, the protocol version 1001, a sys_info dict, the object
 *   with persistent ids ('storage', type, key, location, numel, view_metadata), the list of storage
 *   keys), then each storage as an int64 element count and its raw little-endian bytes.
 *
 * Tensors are rebuilt from (storage, offset, size, stride) as torch._utils._rebuild_tensor_v2 does,
 * copied to contiguous row-major order when strided, and widened to float32 (float16, bfloat16,
 * float64) or int32 (int64 that fits, int16, int8); uint8 and bool stay uint8.
 */
import { readFile } from 'node:fs/promises';
import type { HostTensor } from '@alexnet/tensor';
import { InteropError } from './errors.js';
import { PyDict, PyTuple, unpickle, type GlobalHandler } from './pickle.js';
import { looksLikeZip, ZipArchive } from './zip.js';

/** The element types of torch's storages. */
export type TorchDtype = 'float32' | 'float64' | 'float16' | 'bfloat16' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';

/** torch.<Name>Storage -> element type and width in bytes. */
export const STORAGE_TYPES: Readonly<Record<string, { dtype: TorchDtype; bytes: number }>> = {
  FloatStorage: { dtype: 'float32', bytes: 4 },
  DoubleStorage: { dtype: 'float64', bytes: 8 },
  HalfStorage: { dtype: 'float16', bytes: 2 },
  BFloat16Storage: { dtype: 'bfloat16', bytes: 2 },
  LongStorage: { dtype: 'int64', bytes: 8 },
  IntStorage: { dtype: 'int32', bytes: 4 },
  ShortStorage: { dtype: 'int16', bytes: 2 },
  CharStorage: { dtype: 'int8', bytes: 1 },
  ByteStorage: { dtype: 'uint8', bytes: 1 },
  BoolStorage: { dtype: 'bool', bytes: 1 },
};

class StorageType {
  constructor(readonly name: string, readonly dtype: TorchDtype, readonly bytes: number) {}
}

/** One storage: its element type and count; its bytes once read (zip: at once; legacy: after the pickle). */
class Storage {
  bytes: Uint8Array | null = null;
  decoded: Float32Array | Int32Array | Uint8Array | null = null;
  /** Set when a tensor has taken `decoded` as its own data (the next one copies). */
  claimed = false;
  constructor(readonly key: string, readonly type: StorageType, readonly numel: number, readonly root?: { storage: Storage; offset: number }) {}
}

/** A tensor as the pickle describes it (nothing read yet). */
export class TorchTensor {
  constructor(readonly storage: Storage, readonly offset: number, readonly shape: number[], readonly stride: number[]) {}
  get dtype(): TorchDtype { return this.storage.type.dtype; }
}

export interface TorchFile {
  format: 'zip' | 'legacy';
  /** The unpickled object: PyDict / PyTuple / arrays / TorchTensor ... */
  value: unknown;
}

/** What the torch.save of a state dict needs, and nothing else. */
export const TORCH_GLOBALS: readonly string[] = [
  'collections.OrderedDict', 'torch._utils._rebuild_tensor_v2', 'torch._utils._rebuild_tensor', 'torch._utils._rebuild_parameter',
  ...Object.keys(STORAGE_TYPES).map((s) => `torch.${s}`),
];

const MAGIC = 0x1950a86a20f9469cfc6cn;

function isInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v);
}

function intTuple(v: unknown): number[] | null {
  if (!(v instanceof PyTuple)) return null;
  return v.items.every((x) => isInt(x) && x >= 0) ? (v.items as number[]) : null;
}

function makeGlobals(source: string): Record<string, GlobalHandler> {
  const bad = (what: string, at: number): never => { throw new InteropError(`${source}: ${what} (pickle byte ${at})`, source); };
  const rebuild = (args: readonly unknown[], at: number, fn: string, count: number[]): TorchTensor => {
    if (!count.includes(args.length)) bad(`${fn} is called with ${args.length} arguments, not ${count.join(' or ')}`, at);
    const [storage, offset, size, stride] = args;
    if (!(storage instanceof Storage)) bad(`${fn} is called on something that is not a storage`, at);
    const shape = intTuple(size), strides = intTuple(stride);
    if (!isInt(offset) || offset < 0 || !shape || !strides || shape.length !== strides.length) bad(`${fn} has an invalid offset, size or stride`, at);
    return new TorchTensor(storage as Storage, offset as number, shape!, strides!);
  };
  const g: Record<string, GlobalHandler> = {
    'collections.OrderedDict': {
      call: (args, at) => {
        const d = new PyDict('OrderedDict');
        if (args.length === 1 && Array.isArray(args[0])) {
          for (const pair of args[0]) {
            if (!(pair instanceof PyTuple) || pair.items.length !== 2) bad('OrderedDict is built from something other than (key, value) pairs', at);
            d.map.set((pair as PyTuple).items[0], (pair as PyTuple).items[1]);
          }
        } else if (args.length !== 0) bad(`OrderedDict is called with ${args.length} arguments`, at);
        return d;
      },
    },
    'torch._utils._rebuild_tensor_v2': { call: (args, at) => rebuild(args, at, 'torch._utils._rebuild_tensor_v2', [6, 7]) },
    'torch._utils._rebuild_tensor': { call: (args, at) => rebuild(args, at, 'torch._utils._rebuild_tensor', [4]) },
    'torch._utils._rebuild_parameter': {
      call: (args, at) => {
        if (args.length !== 3 || !(args[0] instanceof TorchTensor)) bad('torch._utils._rebuild_parameter is not called on a tensor', at);
        return args[0];
      },
    },
  };
  for (const [name, t] of Object.entries(STORAGE_TYPES)) g[`torch.${name}`] = { value: new StorageType(name, t.dtype, t.bytes) };
  return g;
}

function hint(qualified: string): string {
  if (/^(torchvision\.models|torch\.nn)\./.test(qualified)) return 'the file holds a pickled model object, not a state dict: save it with torch.save(model.state_dict(), path)';
  if (qualified.startsWith('__torch__.')) return 'this is a TorchScript archive (torch.jit.save), which holds code: save a state dict with torch.save(model.state_dict(), path)';
  if (/^numpy\./.test(qualified)) return 'the file holds numpy arrays; a state dict of torch tensors is expected';
  return `a state dict needs only ${TORCH_GLOBALS.slice(0, 4).join(', ')} and the torch.*Storage types`;
}

function storageTypeOf(v: unknown): StorageType | null {
  if (v instanceof StorageType) return v;
  // STACK_GLOBAL/GLOBAL resolve to PyGlobal objects whose handler holds the StorageType.
  const h = (v as { handler?: { value?: unknown } } | null)?.handler;
  return h && h.value instanceof StorageType ? h.value : null;
}

function text(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (v instanceof Uint8Array) return new TextDecoder().decode(v);
  return null;
}

/**
 * A storage's persistent id: ('storage', torch.XStorage, key, location, numel) in the zip format, with
 * a sixth item, the view, in the legacy format. Anything else is refused with a sentence.
 */
function storageId(pid: unknown, length: 5 | 6, source: string, at: number): { type: StorageType; key: string; numel: number; items: readonly unknown[] } {
  const items = pid instanceof PyTuple ? pid.items : null;
  const type = items && storageTypeOf(items[1]);
  const key = items && text(items[2]);
  if (!items || items.length !== length || text(items[0]) !== 'storage' || !type || key === null || !isInt(items[4]) || items[4] < 0) {
    const what = items && text(items[0]) === 'module' ? 'a pickled module (its source code), not a state dict'
      : `a persistent id that is not ('storage', type, key, location, numel${length === 6 ? ', view' : ''})`;
    throw new InteropError(`${source}: the pickle holds ${what} (pickle byte ${at})`, source);
  }
  return { type, key, numel: items[4] as number, items };
}

/** Parses a torch.save file's bytes (zip or legacy). `source` names it in errors. */
export function parseTorchFile(bytes: Uint8Array, source: string): TorchFile {
  const fail = (what: string): never => { throw new InteropError(`${source} ${what}`, source); };
  if (bytes.length === 0) fail('is empty (0 bytes)');
  if (looksLikeZip(bytes)) return parseZip(bytes, source);
  if (bytes[0] === 0x80) return parseLegacy(bytes, source);
  if (bytes.length > 262 && new TextDecoder().decode(bytes.subarray(257, 262)) === 'ustar') {
    fail('is in the tar format of PyTorch before 0.1.10, which is not read; load and save it again with a newer PyTorch');
  }
  return fail('is not a file torch.save writes: it is neither a zip archive nor a pickle');
}

function parseZip(bytes: Uint8Array, source: string): TorchFile {
  const zip = new ZipArchive(bytes, source);
  const pkls = [...zip.entries.keys()].filter((k) => k === 'data.pkl' || k.endsWith('/data.pkl')).filter((k) => k.split('/').length <= 2);
  if (pkls.length !== 1) {
    throw new InteropError(`${source} is a zip archive but not one torch.save writes (${pkls.length === 0 ? 'no data.pkl' : 'several data.pkl'} in it)`, source);
  }
  const prefix = pkls[0]!.slice(0, -'data.pkl'.length);
  let little = true;
  if (zip.has(`${prefix}byteorder`)) {
    const order = new TextDecoder().decode(zip.read(`${prefix}byteorder`)).trim();
    if (order !== 'little' && order !== 'big') throw new InteropError(`${source} has byteorder "${order.slice(0, 20)}", not little or big`, source);
    little = order === 'little';
  }
  const isScript = [...zip.entries.keys()].some((k) => k.startsWith(`${prefix}code/`) || k === `${prefix}constants.pkl`);
  const storages = new Map<string, Storage>();
  const persistentLoad = (pid: unknown, at: number): unknown => {
    const { type, key, numel } = storageId(pid, 5, source, at);
    let s = storages.get(key);
    if (!s) {
      s = new Storage(key, type, numel);
      const name = `${prefix}data/${key}`;
      if (!zip.has(name)) throw new InteropError(`${source} is missing the storage ${name} that its data.pkl refers to`, source);
      const data = zip.read(name);
      if (data.length < s.numel * type.bytes) {
        throw new InteropError(`${source}: storage ${name} holds ${data.length} bytes but ${s.numel} ${type.dtype} values need ${s.numel * type.bytes}`, source);
      }
      s.bytes = little ? data : swapBytes(data, type.bytes);
      storages.set(key, s);
    } else if (s.type.dtype !== type.dtype) {
      throw new InteropError(`${source}: storage ${key} is read as both ${s.type.dtype} and ${type.dtype}`, source);
    }
    return s;
  };
  const { value } = unpickle(zip.read(pkls[0]!), {
    source: `${source} (${pkls[0]})`, globals: makeGlobals(source), persistentLoad,
    hint: (q) => (isScript ? hint('__torch__.') : hint(q)),
  });
  return { format: 'zip', value };
}

function swapBytes(data: Uint8Array, width: number): Uint8Array {
  if (width === 1) return data;
  const out = new Uint8Array(data.length);
  for (let i = 0; i + width <= data.length; i += width) for (let j = 0; j < width; j++) out[i + j] = data[i + width - 1 - j]!;
  return out;
}

function parseLegacy(bytes: Uint8Array, source: string): TorchFile {
  const fail = (what: string): never => { throw new InteropError(`${source} ${what}`, source); };
  const plain = { source, globals: {} };
  const magic = unpickle(bytes, plain);
  if (magic.value !== MAGIC) fail('is a pickle but not a file torch.save writes (no PyTorch magic number at its start)');
  const proto = unpickle(bytes, { ...plain, offset: magic.end });
  if (proto.value !== 1001) fail(`is in PyTorch's legacy format with protocol version ${String(proto.value)}, not 1001`);
  const sys = unpickle(bytes, { ...plain, offset: proto.end });
  // Legacy storages are written little-endian whatever the machine (sys_info's little_endian aside).
  const roots = new Map<string, Storage>();
  const views = new Map<string, Storage>();
  const persistentLoad = (pid: unknown, at: number): unknown => {
    const { type, key, numel, items } = storageId(pid, 6, source, at);
    let root = roots.get(key);
    if (!root) roots.set(key, (root = new Storage(key, type, numel)));
    const view = items[5];
    if (view === null) return root;
    const v = view instanceof PyTuple ? view.items : null;
    const vkey = v && text(v[0]);
    if (!v || v.length !== 3 || vkey === null || !isInt(v[1]) || !isInt(v[2]) || v[1] < 0 || v[2] < 0 || v[1] + v[2] > root.numel) {
      throw new InteropError(`${source}: storage ${key} has an invalid view (pickle byte ${at})`, source);
    }
    let s = views.get(vkey);
    if (!s) views.set(vkey, (s = new Storage(vkey, type, v[2] as number, { storage: root, offset: v[1] as number })));
    return s;
  };
  const obj = unpickle(bytes, { source, globals: makeGlobals(source), persistentLoad, offset: sys.end, hint });
  const keys = unpickle(bytes, { ...plain, offset: obj.end });
  if (!Array.isArray(keys.value) || !keys.value.every((k) => typeof k === 'string')) fail('has a damaged list of storage keys after its object');
  let pos = keys.end;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (const key of keys.value as string[]) {
    const s = roots.get(key);
    if (!s) fail(`lists storage ${key}, which its object never uses`);
    if (pos + 8 > bytes.length) fail(`is truncated: storage ${key} should start at byte ${pos} but the file has ${bytes.length}`);
    const count = view.getBigInt64(pos, true);
    if (count !== BigInt(s!.numel)) fail(`is damaged: storage ${key} holds ${count} values where the pickle says ${s!.numel}`);
    const len = s!.numel * s!.type.bytes;
    if (pos + 8 + len > bytes.length) fail(`is truncated: storage ${key} needs bytes ${pos + 8} to ${pos + 8 + len} but the file has ${bytes.length}`);
    s!.bytes = bytes.subarray(pos + 8, pos + 8 + len);
    pos += 8 + len;
  }
  for (const [key, s] of roots) if (!s.bytes) fail(`is missing the data of storage ${key}`);
  return { format: 'legacy', value: obj.value };
}

let HALF: Float32Array | null = null;
/** float16 -> float32 for all 65536 bit patterns. */
function halfTable(): Float32Array {
  if (HALF) return HALF;
  HALF = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, f = h & 0x3ff;
    HALF[h] = e === 0 ? s * f * 2 ** -24 : e === 31 ? (f ? NaN : s * Infinity) : s * (1 + f / 1024) * 2 ** (e - 15);
  }
  return HALF;
}

/** A whole storage decoded to float32 / int32 / uint8. */
function decode(s: Storage, what: string, source: string): Float32Array | Int32Array | Uint8Array {
  if (s.decoded) return s.decoded;
  if (s.root) {
    const r = decode(s.root.storage, what, source);
    s.decoded = r.subarray(s.root.offset, s.root.offset + s.numel);
    return s.decoded;
  }
  const b = s.bytes!, n = s.numel;
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let out: Float32Array | Int32Array | Uint8Array;
  switch (s.type.dtype) {
    case 'float32':
      out = (b.byteOffset % 4 === 0) ? new Float32Array(b.buffer, b.byteOffset, n) : new Float32Array(new Uint8Array(b.subarray(0, 4 * n)).buffer);
      break;
    case 'float64': { out = new Float32Array(n); for (let i = 0; i < n; i++) out[i] = dv.getFloat64(8 * i, true); break; }
    case 'float16': { const t = halfTable(); out = new Float32Array(n); for (let i = 0; i < n; i++) out[i] = t[dv.getUint16(2 * i, true)]!; break; }
    case 'bfloat16': {
      out = new Float32Array(n);
      const u = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) u[i] = dv.getUint16(2 * i, true) << 16;
      break;
    }
    case 'int64': {
      out = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const v = dv.getBigInt64(8 * i, true);
        if (v > 2147483647n || v < -2147483648n) throw new InteropError(`${source}: ${what} holds the int64 value ${v}, which does not fit int32`, source);
        out[i] = Number(v);
      }
      break;
    }
    case 'int32': out = new Int32Array(n); for (let i = 0; i < n; i++) out[i] = dv.getInt32(4 * i, true); break;
    case 'int16': out = new Int32Array(n); for (let i = 0; i < n; i++) out[i] = dv.getInt16(2 * i, true); break;
    case 'int8': out = new Int32Array(n); for (let i = 0; i < n; i++) out[i] = dv.getInt8(i); break;
    default: out = new Uint8Array(b.subarray(0, n)); // uint8, bool (a copy: Buffer.slice would share)
  }
  s.decoded = out;
  return out;
}

/**
 * A tensor of the file as a contiguous host tensor: (storage, offset, size, stride) read as PyTorch
 * does, every index checked against the storage first.
 */
export function toHostTensor(t: TorchTensor, what: string, source: string): HostTensor {
  const { shape, stride, offset, storage } = t;
  const numel = shape.reduce((a, b) => a * b, 1);
  if (numel > 0) {
    const last = offset + shape.reduce((s, d, i) => s + (d - 1) * stride[i]!, 0);
    if (last >= storage.numel) {
      throw new InteropError(`${source}: ${what} (shape [${shape.join(', ')}], stride [${stride.join(', ')}], offset ${offset}) reaches element ${last} of a storage of ${storage.numel}`, source);
    }
  }
  const src = decode(storage, what, source);
  const dtype = src instanceof Float32Array ? 'float32' : src instanceof Int32Array ? 'int32' : 'uint8';
  const make = (len: number) => (dtype === 'float32' ? new Float32Array(len) : dtype === 'int32' ? new Int32Array(len) : new Uint8Array(len));
  let contiguous = true;
  for (let i = shape.length - 1, expect = 1; i >= 0; i--) {
    if (shape[i]! !== 1 && stride[i]! !== expect) contiguous = false;
    expect *= shape[i]!;
  }
  let data: Float32Array | Int32Array | Uint8Array;
  if (numel === 0) data = make(0);
  else if (contiguous) {
    if (offset === 0 && numel === storage.numel && !storage.claimed && !storage.root) { data = src; storage.claimed = true; } else data = src.slice(offset, offset + numel);
  } else {
    data = make(numel);
    const rank = shape.length, idx = new Array<number>(rank).fill(0);
    const inner = shape[rank - 1]!, innerStride = stride[rank - 1]!;
    let base = offset;
    for (let o = 0; o < numel; o += inner) {
      for (let j = 0, p = base; j < inner; j++, p += innerStride) data[o + j] = src[p]!;
      for (let d = rank - 2; d >= 0; d--) { // odometer over the outer dimensions
        idx[d]!++;
        base += stride[d]!;
        if (idx[d]! < shape[d]!) break;
        base -= idx[d]! * stride[d]!;
        idx[d] = 0;
      }
    }
  }
  return { dtype, shape: [...shape], data };
}

export interface TorchStateDict {
  file: string;
  format: 'zip' | 'legacy';
  /** The tensors by name, contiguous; floats as float32. */
  tensors: Map<string, HostTensor>;
  /** The element type each tensor had in the file. */
  dtypes: Map<string, TorchDtype>;
  /** Where the state dict was found: '' (the file's object) or the key of a wrapping dict ('state_dict', 'model'). */
  path: string;
}

/**
 * The state dict in a torch.save file's object: a dict of name -> tensor (torch.save(model.state_dict())),
 * or such a dict under 'state_dict' or 'model' in a training checkpoint's dict.
 */
export function stateDictOf(file: TorchFile, source: string): TorchStateDict {
  const value = file.value;
  const fail = (what: string): never => { throw new InteropError(`${source} ${what}`, source); };
  if (!(value instanceof PyDict)) fail(`holds ${value instanceof TorchTensor ? 'a single tensor' : Array.isArray(value) || value instanceof PyTuple ? 'a list' : 'a value'}, not a state dict (a dict of name -> tensor)`);
  let dict = value as PyDict, path = '';
  const tensorsOnly = (d: PyDict) => [...d.map.values()].every((v) => v instanceof TorchTensor);
  if (!tensorsOnly(dict)) {
    for (const k of ['state_dict', 'model', 'model_state_dict']) {
      const inner = dict.map.get(k);
      if (inner instanceof PyDict && inner.map.size > 0 && tensorsOnly(inner)) { dict = inner; path = k; break; }
    }
  }
  const tensors = new Map<string, HostTensor>(), dtypes = new Map<string, TorchDtype>();
  const others: string[] = [];
  for (const [k, v] of dict.map) {
    if (typeof k !== 'string') fail(`has a state dict key that is not a string (${typeof k})`);
    if (!(v instanceof TorchTensor)) { others.push(k as string); continue; }
    tensors.set(k as string, toHostTensor(v, `tensor ${k}`, source));
    dtypes.set(k as string, v.dtype);
  }
  if (others.length) fail(`is not a state dict: ${others.slice(0, 5).join(', ')}${others.length > 5 ? ` and ${others.length - 5} more` : ''} ${others.length === 1 ? 'is not a tensor' : 'are not tensors'}`);
  return { file: source, format: file.format, tensors, dtypes, path };
}

/** Reads the state dict of a torch.save file (zip or legacy format). Errors are sentences naming the file. */
export async function readTorchStateDict(file: string): Promise<TorchStateDict> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new InteropError(code === 'ENOENT' ? `${file} does not exist` : code === 'EISDIR' ? `${file} is a folder, not a file` : `${file} cannot be read (${(e as Error).message})`, file);
  }
  return stateDictOf(parseTorchFile(bytes, file), file);
}
