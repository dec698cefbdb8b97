/**
 * Tensors: a shape, a dtype and a storage on one device, row-major (NCHW for images).
 * Memory is explicit: `dispose()` releases a tensor (safe while a queued op still uses it: the
 * engine frees the buffer after that op), and `tidy(fn)` disposes everything fn created except what it
 * returns. `memory()` (device.ts) counts what is live, so tests can assert nothing leaked.
 */
import { BYTES_PER_ELEMENT, type DType, type DataTypeMap, type DeviceBuffer, type TypedArray } from './backend.js';
import { defaultDevice, describe, device as toDevice, type Device } from './device.js';
import { checkSeed } from './philox.js';

/** A device buffer shared by a tensor and its reshaped views. */
class Storage {
  refs = 1;
  constructor(readonly device: Device, readonly buffer: DeviceBuffer, readonly bytes: number) {
    device.stats.bytes += bytes;
  }
  release(): void {
    if (--this.refs === 0) {
      this.device.stats.bytes -= this.bytes;
      this.device.engine.free(this.buffer);
    }
  }
}

export type Shape = readonly number[];

export interface TensorOptions {
  dtype?: DType;
  device?: string | Device;
}

export class Tensor<D extends DType = DType> {
  readonly shape: Shape;
  readonly dtype: D;
  readonly device: Device;
  private storageRef: Storage | undefined;
  private kept = false;

  /** @internal Use the creation functions (zeros, tensor, randn, ...). */
  constructor(storage: Storage, shape: Shape, dtype: D) {
    this.storageRef = storage;
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
    this.device = storage.device;
    storage.device.stats.tensors++;
    trackInScope(this);
  }

  get size(): number {
    return sizeOf(this.shape);
  }

  get rank(): number {
    return this.shape.length;
  }

  get isDisposed(): boolean {
    return this.storageRef === undefined;
  }

  /** @internal The engine buffer (throws if disposed). */
  get buffer(): DeviceBuffer {
    return this.storage.buffer;
  }

  /** @internal */
  get storage(): Storage {
    if (!this.storageRef) throw new Error(`This tensor (shape [${this.shape.join(', ')}], ${this.dtype}, ${this.device.name}) was disposed`);
    return this.storageRef;
  }

  /** Releases the tensor. Idempotent. */
  dispose(): void {
    if (!this.storageRef) return;
    this.device.stats.tensors--;
    this.storageRef.release();
    this.storageRef = undefined;
  }

  /** Reads the values back once every queued op that writes them has run. */
  async data(): Promise<DataTypeMap[D]> {
    const buf = this.buffer;
    return (await this.device.engine.read(buf, 0, this.size)) as DataTypeMap[D];
  }

  /** Like data(), blocking the JavaScript thread until the device's queue reaches this point. */
  dataSync(): DataTypeMap[D] {
    return this.device.engine.readSync(this.buffer, 0, this.size) as DataTypeMap[D];
  }

  /** A view with another shape of the same size, sharing the storage (dispose both). */
  reshape(shape: Shape): Tensor<D> {
    const s = checkShape(shape, 'shape');
    if (sizeOf(s) !== this.size) {
      throw new RangeError(`Cannot reshape [${this.shape.join(', ')}] (${this.size} elements) to [${s.join(', ')}] (${sizeOf(s)} elements)`);
    }
    const st = this.storage;
    st.refs++;
    return new Tensor(st, s, this.dtype);
  }

  /** A copy on `target` (ordered with events between two devices of one backend). */
  to(target: string | Device): Tensor<D> {
    const dst = toDevice(target);
    const out = empty(this.shape, { dtype: this.dtype, device: dst }) as Tensor<D>;
    copyInto(this, out);
    return out;
  }

  clone(): Tensor<D> {
    return this.to(this.device);
  }

  /** Exempts this tensor from disposal by the enclosing tidy(). */
  keep(): this {
    this.kept = true;
    return this;
  }

  /** @internal */
  get isKept(): boolean {
    return this.kept;
  }

  toString(): string {
    return `Tensor(${this.dtype}, [${this.shape.join(', ')}], ${this.device.name}${this.isDisposed ? ', disposed' : ''})`;
  }
}

/**
 * Copies src into dst (same size and dtype), across devices and backends if needed. The source
 * always waits for the destination's earlier work, even for a just-allocated dst: the interface lets
 * an engine queue work on new memory (an earlier CPU engine zero-filled it on its queue, and a copy
 * that skipped the wait raced that fill).
 */
export function copyInto(src: Tensor, dst: Tensor): void {
  if (src.size !== dst.size || src.dtype !== dst.dtype) {
    throw new RangeError(`copyInto: ${src.toString()} and ${dst.toString()} differ in size or dtype`);
  }
  const a = src.device, b = dst.device;
  if (a === b) {
    a.engine.copy(src.buffer, 0, dst.buffer, 0, src.size);
  } else if (a.backend === b.backend) {
    // §3.2 cross-GPU exchange: src waits until dst's earlier work is done, copies on its own queue,
    // and dst waits for the copy before its later work.
    a.engine.waitEvent(b.engine.recordEvent());
    a.engine.copyToPeer(src.buffer, b.engine, dst.buffer, src.size);
    b.engine.waitEvent(a.engine.recordEvent());
  } else {
    b.engine.write(dst.buffer, a.engine.readSync(src.buffer, 0, src.size));
  }
}

export function sizeOf(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function checkShape(shape: unknown, name: string): number[] {
  if (!Array.isArray(shape)) throw new TypeError(`Expected an array of dimensions for ${name} but received ${describe(shape)}`);
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || (d as number) < 0) {
      throw new TypeError(`Expected non-negative integer dimensions for ${name} but received [${shape.join(', ')}]`);
    }
  }
  return shape as number[];
}

const DTYPES: readonly DType[] = ['float32', 'float64', 'int32', 'uint8'];

function resolveOptions(opts: TensorOptions | undefined): { dtype: DType; device: Device } {
  const dtype = opts?.dtype ?? 'float32';
  if (!DTYPES.includes(dtype)) throw new TypeError(`Expected dtype to be one of ${DTYPES.join(', ')} but received ${String(dtype)}`);
  return { dtype, device: opts?.device !== undefined ? toDevice(opts.device) : defaultDevice() };
}

/** An uninitialised tensor (contents unspecified). */
export function empty(shape: Shape, opts?: TensorOptions): Tensor {
  const s = checkShape(shape, 'shape');
  const { dtype, device } = resolveOptions(opts);
  const size = sizeOf(s);
  const buffer = device.engine.alloc(dtype, size);
  return new Tensor(new Storage(device, buffer, size * BYTES_PER_ELEMENT[dtype]), s, dtype);
}

export function full(shape: Shape, value: number, opts?: TensorOptions): Tensor {
  if (typeof value !== 'number') throw new TypeError(`Expected a number for value but received ${describe(value)}`);
  const t = empty(shape, opts);
  t.device.engine.fill(t.buffer, value);
  return t;
}

export function zeros(shape: Shape, opts?: TensorOptions): Tensor {
  return full(shape, 0, opts);
}

export function ones(shape: Shape, opts?: TensorOptions): Tensor {
  return full(shape, 1, opts);
}

/** A tensor from host values (copied). The dtype follows the typed array unless given. */
export function tensor(values: TypedArray | readonly number[], shape?: Shape, opts?: TensorOptions): Tensor {
  const inferred: DType = values instanceof Float64Array ? 'float64' : values instanceof Int32Array ? 'int32'
    : values instanceof Uint8Array ? 'uint8' : 'float32';
  const dtype = opts?.dtype ?? inferred;
  const s = shape ? checkShape(shape, 'shape') : [values.length];
  if (sizeOf(s) !== values.length) {
    throw new RangeError(`Expected ${sizeOf(s)} values for shape [${s.join(', ')}] but received ${values.length}`);
  }
  const t = empty(s, { dtype, device: opts?.device });
  const host = toTyped(values, dtype);
  if (host.length > 0) t.device.engine.write(t.buffer, host);
  return t;
}

function toTyped(values: TypedArray | readonly number[], dtype: DType): TypedArray {
  switch (dtype) {
    case 'float32': return values instanceof Float32Array ? values : Float32Array.from(values as ArrayLike<number>);
    case 'float64': return values instanceof Float64Array ? values : Float64Array.from(values as ArrayLike<number>);
    case 'int32': return values instanceof Int32Array ? values : Int32Array.from(values as ArrayLike<number>);
    case 'uint8': return values instanceof Uint8Array ? values : Uint8Array.from(values as ArrayLike<number>);
  }
}

export interface RandomOptions extends TensorOptions {
  /** Generator stream (Philox key). */
  seed: number;
  /** Index of the first draw within the stream (default 0): disjoint ranges give independent draws. */
  offset?: number;
}

function randomTensor(shape: Shape, opts: RandomOptions, dist: 'normal' | 'uniform', a: number, b: number): Tensor {
  checkSeed(opts?.seed);
  const offset = opts.offset ?? 0;
  checkSeed(offset, 'offset');
  for (const [name, v] of [['a', a], ['b', b]] as const) {
    if (!Number.isFinite(v)) throw new RangeError(`Expected a finite number for ${dist === 'normal' ? (name === 'a' ? 'mean' : 'std') : (name === 'a' ? 'low' : 'high')} but received ${v}`);
  }
  const t = empty(shape, opts);
  if (t.dtype !== 'float32' && t.dtype !== 'float64') { t.dispose(); throw new TypeError(`Random tensors are float32 or float64, not ${t.dtype}`); }
  t.device.engine.random(t.buffer, dist, opts.seed, offset, a, b);
  return t;
}

/** Normal draws from the seeded counter-based generator: the same numbers on every backend. */
export function randn(shape: Shape, opts: RandomOptions & { mean?: number; std?: number }): Tensor {
  return randomTensor(shape, opts, 'normal', opts.mean ?? 0, opts.std ?? 1);
}

/** Uniform draws in [low, high). */
export function uniform(shape: Shape, opts: RandomOptions & { low?: number; high?: number }): Tensor {
  return randomTensor(shape, opts, 'uniform', opts.low ?? 0, opts.high ?? 1);
}

// ---- scopes ----

const scopes: Set<Tensor>[] = [];

function trackInScope(t: Tensor): void {
  scopes[scopes.length - 1]?.add(t);
}

function collect(value: unknown, out: Set<Tensor>, depth = 0): void {
  if (depth > 8 || value === null || typeof value !== 'object') return;
  if (value instanceof Tensor) { out.add(value); return; }
  if (Array.isArray(value)) { for (const v of value) collect(v, out, depth + 1); return; }
  if (value instanceof Map) { for (const v of value.values()) collect(v, out, depth + 1); return; }
  if (Object.getPrototypeOf(value) === Object.prototype) for (const v of Object.values(value)) collect(v, out, depth + 1);
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return (typeof v === 'object' || typeof v === 'function') && v !== null && typeof (v as { then?: unknown }).then === 'function';
}

/**
 * Runs fn and disposes every tensor created inside it, except those it returns (in an array, a plain
 * object or a Map) and those marked with keep(). fn must be synchronous: when it returns a Promise
 * (an async function), tidy disposes what fn created before its first await (keep() still keeps),
 * then throws a TypeError. The rest of fn runs on outside any scope; a rejection of its Promise is
 * not reported again (the TypeError already was).
 */
export function tidy<T>(fn: () => T): T {
  scopes.push(new Set());
  let result: T;
  try {
    result = fn();
  } catch (e) {
    for (const t of scopes.pop()!) if (!t.isKept) t.dispose();
    throw e;
  }
  const scope = scopes.pop()!;
  const returned = new Set<Tensor>();
  const async = isThenable(result);
  if (async) (result as PromiseLike<unknown>).then(undefined, () => {});
  else collect(result, returned);
  let disposed = 0;
  for (const t of scope) {
    if (returned.has(t) || t.isKept) scopes[scopes.length - 1]?.add(t);
    else if (!t.isDisposed) { t.dispose(); disposed++; }
  }
  if (async) {
    throw new TypeError('tidy: expected fn to be synchronous but it returned a Promise (an async function?); the ' +
      `${disposed} tensor(s) it created before its first await were disposed. Call tidy inside the async function, around its synchronous parts.`);
  }
  return result;
}

/** Disposes every tensor found in value (a tensor, array, plain object or Map of them). */
export function dispose(value: unknown): void {
  const found = new Set<Tensor>();
  collect(value, found);
  for (const t of found) t.dispose();
}
