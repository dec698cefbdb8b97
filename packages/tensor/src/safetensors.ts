/**
 * safetensors (https://github.com/huggingface/safetensors), the format PyTorch users share weights
 * in: 8-byte little-endian header length, a JSON header { name: { dtype, shape, data_offsets } ,
 * "__metadata__": { string: string } }, then the raw little-endian data.
 * Read: F32, F64, I32, U8, plus F16 and BF16 (widened to float32) and I64 (narrowed to int32 when it fits).
 */
import { constants } from 'node:fs';
import { open, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { BYTES_PER_ELEMENT, type DType, type TypedArray } from './backend.js';
import { Tensor, tensor, type TensorOptions } from './tensor.js';

export interface HostTensor {
  dtype: DType;
  shape: number[];
  data: TypedArray;
}

const TO_ST: Record<DType, string> = { float32: 'F32', float64: 'F64', int32: 'I32', uint8: 'U8' };

export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
}

/**
 * The file layout for named tensors: the 8-byte length + JSON header, and the tensors in data order
 * (sorted by name). Device tensors are not read here: `bytesOf` reads one when its turn comes.
 */
function layout(tensors: Record<string, Tensor | HostTensor>, metadata: Record<string, string>, target: string): { head: Uint8Array; entries: [string, Tensor | HostTensor][]; dataBytes: number } {
  const entries = Object.entries(tensors).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new TypeError(`${target}: expected a string for metadata ${JSON.stringify(k)} but received ${typeof v}`);
    }
    header.__metadata__ = metadata;
  }
  let offset = 0;
  for (const [name, t] of entries) {
    if (name === '__metadata__') throw new TypeError(`${target}: "__metadata__" is reserved and cannot name a tensor`);
    const bytes = t instanceof Tensor ? t.size * BYTES_PER_ELEMENT[t.dtype] : t.data.byteLength;
    header[name] = { dtype: TO_ST[t.dtype], shape: [...t.shape], data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8); // align data to 8 bytes, as the reference writer does
  const headerBytes = new TextEncoder().encode(json);
  const head = new Uint8Array(8 + headerBytes.length);
  new DataView(head.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  head.set(headerBytes, 8);
  return { head, entries, dataBytes: offset };
}

function bytesOf(t: Tensor | HostTensor): Uint8Array {
  const data = t instanceof Tensor ? t.dataSync() : t.data;
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** Serialises named tensors (device tensors are read back) with optional string metadata. */
export function encodeSafetensors(tensors: Record<string, Tensor | HostTensor>, metadata: Record<string, string> = {}): Uint8Array {
  const { head, entries, dataBytes } = layout(tensors, metadata, 'safetensors data');
  const out = new Uint8Array(head.length + dataBytes);
  out.set(head, 0);
  let pos = head.length;
  for (const [, t] of entries) { const b = bytesOf(t); out.set(b, pos); pos += b.length; }
  return out;
}

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

/** Bytes per element of each dtype read (a Map: no name resolves through a prototype). */
const WIDTH = new Map<string, number>([['F32', 4], ['F64', 8], ['I32', 4], ['U8', 1], ['F16', 2], ['BF16', 2], ['I64', 8]]);
/** The reference implementation's bound on the header. */
const MAX_HEADER_BYTES = 100_000_000;

// ---- the header: strict JSON, objects as Maps, a name given twice is an error ----

type Json = null | boolean | number | string | Json[] | JsonObject;
type JsonObject = Map<string, Json>;

function kind(v: Json | undefined): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (v instanceof Map) return 'an object';
  return typeof v === 'string' ? `the string ${JSON.stringify(v)}` : `${typeof v} ${String(v)}`;
}

/**
 * RFC 8259 JSON, read by hand because JSON.parse keeps the last of two equal keys without a word:
 * a header naming a tensor twice (or a field of one) would load whichever came last.
 */
class HeaderReader {
  private i = 0;
  constructor(private readonly text: string, private readonly source: string) {}

  private fail(msg: string): never {
    throw new SafetensorsError(`${this.source} has a header that is not valid JSON: ${msg} (at character ${this.i})`);
  }

  private space(): void {
    while (this.i < this.text.length) {
      const c = this.text.charCodeAt(this.i);
      if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) break;
      this.i++;
    }
  }

  document(): Json {
    const v = this.value(0, 'the header');
    this.space();
    if (this.i !== this.text.length) this.fail('more follows the top-level value');
    return v;
  }

  private value(depth: number, where: string): Json {
    if (depth > 32) this.fail('values are nested more than 32 deep');
    this.space();
    const c = this.text[this.i];
    if (c === '{') return this.object(depth, where);
    if (c === '[') {
      this.i++;
      const out: Json[] = [];
      this.space();
      if (this.text[this.i] === ']') { this.i++; return out; }
      for (;;) {
        out.push(this.value(depth + 1, where));
        this.space();
        const d = this.text[this.i++];
        if (d === ']') return out;
        if (d !== ',') this.fail(`expected ',' or ']' in an array but found ${d === undefined ? 'the end' : JSON.stringify(d)}`);
      }
    }
    if (c === '"') return this.string();
    for (const [word, v] of [['true', true], ['false', false], ['null', null]] as const) {
      if (this.text.startsWith(word, this.i)) { this.i += word.length; return v; }
    }
    const m = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
    m.lastIndex = this.i;
    const num = m.exec(this.text);
    if (!num) this.fail(`unexpected ${c === undefined ? 'end' : JSON.stringify(c)}`);
    this.i += num[0].length;
    return Number(num[0]);
  }

  private object(depth: number, where: string): JsonObject {
    this.i++; // '{'
    const out: JsonObject = new Map();
    this.space();
    if (this.text[this.i] === '}') { this.i++; return out; }
    for (;;) {
      this.space();
      if (this.text[this.i] !== '"') this.fail('expected a string key');
      const key = this.string();
      if (out.has(key)) {
        throw new SafetensorsError(`${this.source} has a header that names ${JSON.stringify(key)} twice in ${where}` +
          ' (JSON parsers keep one or the other: the file is ambiguous)');
      }
      this.space();
      if (this.text[this.i++] !== ':') this.fail(`expected ':' after the key ${JSON.stringify(key)}`);
      out.set(key, this.value(depth + 1, depth === 0 ? `the entry ${JSON.stringify(key)}` : where));
      this.space();
      const d = this.text[this.i++];
      if (d === '}') return out;
      if (d !== ',') this.fail(`expected ',' or '}' in an object but found ${d === undefined ? 'the end' : JSON.stringify(d)}`);
    }
  }

  private string(): string {
    const start = this.i++;
    while (this.i < this.text.length && this.text[this.i] !== '"') this.i += this.text[this.i] === '\\' ? 2 : 1;
    if (this.i >= this.text.length) this.fail('a string is not terminated');
    this.i++;
    try {
      return JSON.parse(this.text.slice(start, this.i)) as string; // escapes, and control characters refused
    } catch (e) {
      this.i = start;
      return this.fail(`a bad string (${(e as Error).message})`);
    }
  }
}

interface Entry { name: string; dtype: string; width: number; shape: number[]; begin: number; end: number }

function entryOf(source: string, name: string, info: Json | undefined): Entry {
  const bad = (msg: string): never => { throw new SafetensorsError(`${source}: tensor ${JSON.stringify(name)} ${msg}`); };
  if (!(info instanceof Map)) return bad(`must be an object { dtype, shape, data_offsets } but is ${kind(info)}`);
  const dtype = info.get('dtype'), shape = info.get('shape'), off = info.get('data_offsets');
  if (typeof dtype !== 'string') return bad(`has dtype ${kind(dtype)}; expected a string such as "F32"`);
  const width = WIDTH.get(dtype);
  if (width === undefined) return bad(`has dtype ${JSON.stringify(dtype)}, which @alexnet does not read (it reads ${[...WIDTH.keys()].join(', ')})`);
  if (!Array.isArray(shape) || !shape.every((d) => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0)) {
    return bad(`has shape ${JSON.stringify(shape ?? null)}; expected an array of non-negative integers`);
  }
  if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0)) {
    return bad(`has data_offsets ${JSON.stringify(off ?? null)}; expected [begin, end], two non-negative integers`);
  }
  const [begin, end] = off as [number, number];
  if (begin > end) return bad(`has data_offsets [${begin}, ${end}], which end before they begin`);
  let count = 1;
  for (const d of shape as number[]) {
    count *= d;
    if (count > Number.MAX_SAFE_INTEGER) return bad(`has shape [${shape.join(', ')}], more elements than 2^53`);
  }
  if (end - begin !== count * width) {
    return bad(`has ${end - begin} bytes (data_offsets [${begin}, ${end}]) but shape [${shape.join(', ')}] of ${dtype} needs ${count * width}`);
  }
  return { name, dtype, width, shape: shape as number[], begin, end };
}

/**
 * The tensors must tile the data exactly, as the format requires (and the reference reader checks):
 * sorted by offset, each begins where the one before ends, the first at 0 and the last at the end of
 * the file. A gap, an overlap or bytes after the last tensor are errors, not ignored.
 */
function checkTiling(source: string, entries: Entry[], dataLen: number): void {
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0, prev: Entry | undefined;
  for (const e of sorted) {
    if (e.end > dataLen) {
      throw new SafetensorsError(`${source} is truncated: tensor ${JSON.stringify(e.name)} ends at byte ${e.end} of the data but only ${dataLen} bytes are present`);
    }
    if (e.begin < cursor) {
      throw new SafetensorsError(`${source}: tensor ${JSON.stringify(e.name)} (bytes ${e.begin} to ${e.end} of the data) overlaps tensor ${JSON.stringify(prev!.name)} (bytes ${prev!.begin} to ${prev!.end})`);
    }
    if (e.begin > cursor) {
      throw new SafetensorsError(`${source}: bytes ${cursor} to ${e.begin} of the data belong to no tensor (a hole before tensor ${JSON.stringify(e.name)})`);
    }
    cursor = e.end;
    prev = e;
  }
  if (cursor !== dataLen) {
    throw new SafetensorsError(`${source}: ${dataLen - cursor} bytes after the last tensor's data (bytes ${cursor} to ${dataLen}) belong to no tensor`);
  }
}

function metadataOf(source: string, v: Json | undefined): Record<string, string> {
  const metadata: Record<string, string> = Object.create(null);
  if (v === undefined) return metadata;
  if (!(v instanceof Map)) throw new SafetensorsError(`${source}: __metadata__ must be an object of strings but is ${kind(v)}`);
  for (const [k, s] of v) {
    if (typeof s !== 'string') throw new SafetensorsError(`${source}: __metadata__ must be an object of strings but ${JSON.stringify(k)} is ${kind(s)}`);
    metadata[k] = s;
  }
  return metadata;
}

/**
 * Parses a safetensors file's bytes; `source` (the path, for a file) begins every error message.
 * Refused, with a SafetensorsError that says why: a truncated file, a header that is not strict
 * JSON (a name given twice included), a __metadata__ that is not an object of strings, a dtype this
 * package does not read, a shape or data_offsets that is not made of non-negative integers, a byte
 * count that does not match the shape, and data that the tensors do not tile exactly (holes,
 * overlaps, trailing bytes). The metadata object has no prototype.
 */
export function decodeSafetensors(bytes: Uint8Array, source = 'safetensors data'): { tensors: Map<string, HostTensor>; metadata: Record<string, string> } {
  if (bytes.length < 8) throw new SafetensorsError(`${source} is truncated: ${bytes.length} bytes, fewer than the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const hlenBig = view.getBigUint64(0, true);
  if (hlenBig > BigInt(bytes.length - 8)) throw new SafetensorsError(`${source} is truncated: the header says ${hlenBig} bytes but only ${bytes.length - 8} follow`);
  const hlen = Number(hlenBig);
  if (hlen > MAX_HEADER_BYTES) throw new SafetensorsError(`${source} has a header of ${hlen} bytes; safetensors allows at most ${MAX_HEADER_BYTES}`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + hlen));
  } catch {
    throw new SafetensorsError(`${source} has a header that is not valid UTF-8`);
  }
  const header = new HeaderReader(text, source).document();
  if (!(header instanceof Map)) throw new SafetensorsError(`${source} has a header that is ${kind(header)}, not a JSON object`);
  const dataStart = 8 + hlen, dataLen = bytes.length - dataStart;
  const metadata = metadataOf(source, header.get('__metadata__'));
  const entries: Entry[] = [];
  for (const [name, info] of header) if (name !== '__metadata__') entries.push(entryOf(source, name, info));
  checkTiling(source, entries, dataLen);
  const tensors = new Map<string, HostTensor>();
  for (const { name, dtype, shape, begin, end, width } of entries) {
    const count = (end - begin) / width;
    const raw = new Uint8Array(bytes.subarray(dataStart + begin, dataStart + end)); // a copy, aligned (Buffer.slice would share)
    const dv = new DataView(raw.buffer);
    let data: TypedArray, dt: DType;
    switch (dtype) {
      case 'F32': data = new Float32Array(raw.buffer); dt = 'float32'; break;
      case 'F64': data = new Float64Array(raw.buffer); dt = 'float64'; break;
      case 'I32': data = new Int32Array(raw.buffer); dt = 'int32'; break;
      case 'U8': data = raw; dt = 'uint8'; break;
      case 'F16': data = Float32Array.from({ length: count }, (_, i) => halfToFloat(dv.getUint16(2 * i, true))); dt = 'float32'; break;
      case 'BF16': data = Float32Array.from({ length: count }, (_, i) => { const b = new DataView(new ArrayBuffer(4)); b.setUint32(0, dv.getUint16(2 * i, true) << 16, true); return b.getFloat32(0, true); }); dt = 'float32'; break;
      default: { // I64 (WIDTH lists no other)
        data = Int32Array.from({ length: count }, (_, i) => {
          const v = dv.getBigInt64(8 * i, true);
          if (v > 2147483647n || v < -2147483648n) throw new SafetensorsError(`${source}: tensor ${JSON.stringify(name)} holds an int64 value (${v}) that does not fit int32`);
          return Number(v);
        });
        dt = 'int32';
      }
    }
    tensors.set(name, { dtype: dt, shape, data });
  }
  return { tensors, metadata };
}

async function writeAll(fh: FileHandle, bytes: Uint8Array): Promise<void> {
  for (let off = 0; off < bytes.length;) off += (await fh.write(bytes, off, bytes.length - off)).bytesWritten;
}

let tmpCounter = 0;

/**
 * Writes `path` atomically: a temporary file in the same folder, fsync'd, then renamed over `path`.
 * On any failure (a full disk included) the temporary file is removed and the error, made by
 * `error(message, cause)`, names the file and says that what was at `path` before is unchanged.
 */
async function writeAtomic(path: string, write: (fh: FileHandle) => Promise<void>,
  error: (message: string, cause: unknown) => Error): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}-${tmpCounter++}`;
  let fh: FileHandle | undefined;
  try {
    fh = await open(tmp, 'wx');
    await write(fh);
    await fh.sync();
    const closing = fh;
    fh = undefined;
    await closing.close();
    await rename(tmp, path);
  } catch (e) {
    await fh?.close().catch(() => {});
    await rm(tmp, { force: true }).catch(() => {});
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOSPC' || code === 'EDQUOT' ? `the disk is full (${(e as Error).message})` : (e as Error).message;
    const err = error(`could not write ${path}: ${why}. The file that was at ${path} before, if any, is intact ` +
      '(the new one was being written to a temporary file, now removed, that replaces it only once complete)', e);
    if (code) (err as NodeJS.ErrnoException).code = code;
    throw err;
  }
}

/** Writes atomically: a temporary file in the same folder, fsync'd, then renamed over `path`. */
export async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  await writeAtomic(path, (fh) => writeAll(fh, bytes), (message, cause) => new Error(message, { cause }));
}

/**
 * Writes a safetensors file atomically (temporary file, fsync, rename), one tensor at a time, so a
 * checkpoint of hundreds of megabytes never needs a second copy of itself in memory. A failure (a full
 * disk, a disposed tensor) leaves the file that was at `path` as it was and says so.
 */
export async function saveSafetensors(path: string, tensors: Record<string, Tensor | HostTensor>, metadata: Record<string, string> = {}): Promise<void> {
  const { head, entries } = layout(tensors, metadata, path);
  await writeAtomic(path, async (fh) => {
    await writeAll(fh, head);
    for (const [, t] of entries) await writeAll(fh, bytesOf(t));
  }, (message, cause) => new SafetensorsError(message, { cause }));
}

/**
 * Reads and parses a safetensors file (see decodeSafetensors); every error names `path`. Only a
 * regular file is read: a directory, a FIFO (which would block the read for ever), a socket or a
 * device is refused before it is opened, and again after (the check and the open are not one step).
 */
export async function loadSafetensors(path: string): Promise<{ tensors: Map<string, HostTensor>; metadata: Record<string, string> }> {
  const refuse = (what: { isFile(): boolean; isDirectory(): boolean }): void => {
    if (what.isDirectory()) throw new SafetensorsError(`${path} is a directory, not a safetensors file`);
    if (!what.isFile()) throw new SafetensorsError(`${path} is not a regular file (a FIFO, socket or device?), so it is not read as safetensors`);
  };
  let bytes: Uint8Array;
  try {
    refuse(await stat(path));
    const fh = await open(path, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0)); // a FIFO swapped in opens without blocking
    try {
      refuse(await fh.stat());
      bytes = await fh.readFile();
    } finally {
      await fh.close();
    }
  } catch (e) {
    if (e instanceof SafetensorsError) throw e;
    throw new SafetensorsError(`could not read ${path}: ${(e as Error).message}`, { cause: e });
  }
  return decodeSafetensors(bytes, path);
}

/** A device tensor from a host tensor read from a file. */
export function fromHost(t: HostTensor, opts?: TensorOptions): Tensor {
  return tensor(t.data, t.shape, { dtype: t.dtype, ...opts });
}
