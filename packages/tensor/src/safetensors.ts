/**
 * safetensors (https://github.com/huggingface/safetensors), the format PyTorch users share weights
 * in: 8-byte little-endian header length, a JSON header { name: { dtype, shape, data_offsets } ,
 * "__metadata__": { string: string } }, then the raw little-endian data.
 * Read: F32, F64, I32, U8, plus F16 and BF16 (widened to float32) and I64 (narrowed to int32 when it fits).
 */
import { open, readFile, rename, rm, type FileHandle } from 'node:fs/promises';
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
function layout(tensors: Record<string, Tensor | HostTensor>, metadata: Record<string, string>): { head: Uint8Array; entries: [string, Tensor | HostTensor][]; dataBytes: number } {
  const entries = Object.entries(tensors).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata)) if (typeof v !== 'string') throw new TypeError(`safetensors metadata "${k}" must be a string`);
    header.__metadata__ = metadata;
  }
  let offset = 0;
  for (const [name, t] of entries) {
    if (name === '__metadata__') throw new TypeError('"__metadata__" is reserved and cannot name a tensor');
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
  const { head, entries, dataBytes } = layout(tensors, metadata);
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

/** Parses a safetensors file's bytes. Errors name what is wrong (truncated, bad header, bad offsets). */
export function decodeSafetensors(bytes: Uint8Array, source = 'safetensors data'): { tensors: Map<string, HostTensor>; metadata: Record<string, string> } {
  if (bytes.length < 8) throw new SafetensorsError(`${source} is truncated: ${bytes.length} bytes, fewer than the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const hlen = Number(view.getBigUint64(0, true));
  if (hlen > bytes.length - 8) throw new SafetensorsError(`${source} is truncated: the header says ${hlen} bytes but only ${bytes.length - 8} follow`);
  let header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + hlen)));
  } catch (e) {
    throw new SafetensorsError(`${source} has a header that is not valid JSON (${(e as Error).message})`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) throw new SafetensorsError(`${source} has a header that is not a JSON object`);
  const dataStart = 8 + hlen, dataLen = bytes.length - dataStart;
  const metadata = (header.__metadata__ ?? {}) as unknown as Record<string, string>;
  const tensors = new Map<string, HostTensor>();
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const { dtype, shape, data_offsets: off } = info ?? ({} as never);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new SafetensorsError(`${source}: tensor "${name}" has an invalid shape`);
    if (!Array.isArray(off) || off.length !== 2 || !(off[0] <= off[1])) throw new SafetensorsError(`${source}: tensor "${name}" has invalid data_offsets`);
    if (off[1] > dataLen) throw new SafetensorsError(`${source} is truncated: tensor "${name}" ends at byte ${off[1]} of the data but only ${dataLen} bytes are present`);
    const count = shape.reduce((a: number, b: number) => a * b, 1);
    const raw = new Uint8Array(bytes.subarray(dataStart + off[0], dataStart + off[1])); // a copy, aligned (Buffer.slice would share)
    const width: Record<string, number> = { F32: 4, F64: 8, I32: 4, U8: 1, F16: 2, BF16: 2, I64: 8 };
    const w = width[dtype];
    if (w === undefined) throw new SafetensorsError(`${source}: tensor "${name}" has dtype ${dtype}, which @alexnet does not read`);
    if (raw.length !== count * w) throw new SafetensorsError(`${source}: tensor "${name}" has ${raw.length} bytes but shape [${shape.join(', ')}] of ${dtype} needs ${count * w}`);
    const dv = new DataView(raw.buffer);
    let data: TypedArray, dt: DType;
    switch (dtype) {
      case 'F32': data = new Float32Array(raw.buffer); dt = 'float32'; break;
      case 'F64': data = new Float64Array(raw.buffer); dt = 'float64'; break;
      case 'I32': data = new Int32Array(raw.buffer); dt = 'int32'; break;
      case 'U8': data = raw; dt = 'uint8'; break;
      case 'F16': data = Float32Array.from({ length: count }, (_, i) => halfToFloat(dv.getUint16(2 * i, true))); dt = 'float32'; break;
      case 'BF16': data = Float32Array.from({ length: count }, (_, i) => { const b = new DataView(new ArrayBuffer(4)); b.setUint32(0, dv.getUint16(2 * i, true) << 16, true); return b.getFloat32(0, true); }); dt = 'float32'; break;
      default: {
        data = Int32Array.from({ length: count }, (_, i) => {
          const v = dv.getBigInt64(8 * i, true);
          if (v > 2147483647n || v < -2147483648n) throw new SafetensorsError(`${source}: tensor "${name}" holds an int64 value that does not fit int32`);
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

async function writeAtomic(path: string, write: (fh: FileHandle) => Promise<void>): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  const fh = await open(tmp, 'w');
  try {
    await write(fh);
    await fh.sync();
  } catch (e) {
    await fh.close();
    await rm(tmp, { force: true });
    throw e;
  }
  await fh.close();
  await rename(tmp, path);
}

/** Writes atomically: a temporary file in the same folder, fsync'd, then renamed over `path`. */
export async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  await writeAtomic(path, (fh) => fh.writeFile(bytes));
}

/**
 * Writes a safetensors file atomically (temporary file, fsync, rename), one tensor at a time, so a
 * checkpoint of hundreds of megabytes never needs a second copy of itself in memory.
 */
export async function saveSafetensors(path: string, tensors: Record<string, Tensor | HostTensor>, metadata: Record<string, string> = {}): Promise<void> {
  const { head, entries } = layout(tensors, metadata);
  await writeAtomic(path, async (fh) => {
    await writeAll(fh, head);
    for (const [, t] of entries) await writeAll(fh, bytesOf(t));
  });
}

export async function loadSafetensors(path: string): Promise<{ tensors: Map<string, HostTensor>; metadata: Record<string, string> }> {
  return decodeSafetensors(await readFile(path), path);
}

/** A device tensor from a host tensor read from a file. */
export function fromHost(t: HostTensor, opts?: TensorOptions): Tensor {
  return tensor(t.data, t.shape, { dtype: t.dtype, ...opts });
}
