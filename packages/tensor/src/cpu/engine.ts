/**
 * The native CPU engine behind the Engine interface (src/backend.ts). Each CpuEngine is one device
 * ("cpu:i") with its own in-order queue thread and worker pool in C++ (native/cpu/engine.cpp);
 * every op here only hands its arguments to the addon, which validates them and queues the work.
 */
import type {
  ConvGeometry, DeviceBuffer, DType, Engine, EngineEvent, LrnParams, PoolGeometry, SgdParams, TypedArray,
} from '../backend.js';
import { nativeAddon, type NativeBufferHandle, type NativeEngine } from './addon.js';

/** A buffer of a CpuEngine: 64-byte aligned host memory owned by the addon. */
export class CpuBuffer implements DeviceBuffer {
  constructor(
    readonly dtype: DType,
    readonly length: number,
    /** @internal */ readonly handle: NativeBufferHandle,
    readonly engine: CpuEngine,
  ) {}
}

/** CpuEngine.memoryStats(): bytes held by live buffers and by the allocation cache. */
export interface CpuMemoryStats {
  liveBytes: number;
  liveBuffers: number;
  /** The highest liveBytes so far (sets the default cache bound). */
  peakLiveBytes: number;
  cachedBytes: number;
  cachedBuffers: number;
  cacheLimit: number;
}

/** A point in a CpuEngine's queue: the number of ops queued when it was recorded. */
export class CpuEvent implements EngineEvent {
  constructor(readonly engine: CpuEngine, readonly sequence: number) {}
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'object') return (v as object).constructor?.name ?? 'an object';
  return `${typeof v} ${String(v)}`;
}

function handle(op: string, name: string, buf: DeviceBuffer): NativeBufferHandle {
  if (!(buf instanceof CpuBuffer)) {
    throw new TypeError(`${op}: expected a cpu device buffer for ${name} but received ${describe(buf)}`);
  }
  return buf.handle;
}

function optHandle(op: string, name: string, buf: DeviceBuffer | null): NativeBufferHandle | null {
  return buf === null || buf === undefined ? null : handle(op, name, buf);
}

function view(dtype: DType, ab: ArrayBuffer): TypedArray {
  switch (dtype) {
    case 'float32': return new Float32Array(ab);
    case 'int32': return new Int32Array(ab);
    case 'uint8': return new Uint8Array(ab);
    default: return new Float64Array(ab);
  }
}

export class CpuEngine implements Engine {
  readonly backend = 'cpu';
  /** @internal */ readonly native: NativeEngine;
  private threads = 1;

  constructor(readonly index: number) {
    const addon = nativeAddon();
    this.native = new addon.NativeEngine(index);
  }

  toString(): string { return `cpu:${this.index}`; }

  // ---- memory and queue ----

  alloc(dtype: DType, length: number): CpuBuffer {
    return new CpuBuffer(dtype, length, this.native.alloc(dtype, length), this);
  }

  free(buf: DeviceBuffer): void { this.native.free(handle('free', 'buf', buf)); }

  write(buf: DeviceBuffer, data: TypedArray, offset = 0): void {
    // N-API hands out the memory of ArrayBuffer-backed views only; a view of a SharedArrayBuffer
    // (worker-thread batches) is copied to a plain one first.
    const plain = data.buffer instanceof SharedArrayBuffer ? data.slice() : data;
    this.native.write(handle('write', 'buf', buf), plain, offset);
  }

  async read(buf: DeviceBuffer, offset?: number, length?: number): Promise<TypedArray> {
    const h = handle('read', 'buf', buf);
    return view(buf.dtype, await this.native.read(h, offset, length));
  }

  readSync(buf: DeviceBuffer, offset?: number, length?: number): TypedArray {
    return view(buf.dtype, this.native.readSync(handle('readSync', 'buf', buf), offset, length));
  }

  synchronize(): Promise<void> { return this.native.synchronize(); }
  synchronizeSync(): void { this.native.synchronizeSync(); }

  recordEvent(): CpuEvent { return new CpuEvent(this, this.native.recordEvent()); }

  waitEvent(event: EngineEvent): void {
    if (!(event instanceof CpuEvent)) {
      throw new TypeError(`waitEvent: expected an event of a cpu engine but received ${describe(event)}`);
    }
    this.native.waitEvent(event.engine.native, event.sequence);
  }

  setThreads(threads: number): void {
    this.native.setThreads(threads);
    this.threads = threads;
  }

  getThreads(): number { return this.threads; }

  /** Live native memory of this engine (bytes, buffers), released when queued ops are done with it. */
  memory(): { bytes: number; buffers: number } {
    const s = this.native.stats();
    return { bytes: s.bytes, buffers: s.buffers };
  }

  /**
   * Live and cached native memory. Freed buffers go, once no queued op on any engine uses them, to a
   * per-engine cache that alloc reuses by size class (no page faults or zero-fill per step). The
   * cache is bounded by cacheLimit: max(1 GiB, 2 x peakLiveBytes) unless set by setCacheLimit().
   */
  memoryStats(): CpuMemoryStats {
    const s = this.native.stats();
    return {
      liveBytes: s.bytes, liveBuffers: s.buffers, peakLiveBytes: s.peakBytes,
      cachedBytes: s.cachedBytes, cachedBuffers: s.cachedBuffers, cacheLimit: s.cacheLimit,
    };
  }

  /** Returns every cached block to the system; the bytes released. (destroy() does this too.) */
  trimCache(): number { return this.native.trimCache(); }

  /** Bounds the allocation cache at `bytes` (trimming to it); -1 restores the default bound. */
  setCacheLimit(bytes: number): void { this.native.setCacheLimit(bytes); }

  // ---- data movement ----

  fill(buf: DeviceBuffer, value: number): void { this.native.fill(handle('fill', 'buf', buf), value); }

  random(buf: DeviceBuffer, dist: 'uniform' | 'normal', seed: number, offset: number, a: number, b: number): void {
    this.native.random(handle('random', 'buf', buf), dist, seed, offset, a, b);
  }

  copy(src: DeviceBuffer, srcOffset: number, dst: DeviceBuffer, dstOffset: number, length: number): void {
    this.native.copy(handle('copy', 'src', src), srcOffset, handle('copy', 'dst', dst), dstOffset, length);
  }

  copyToPeer(src: DeviceBuffer, peer: Engine, dst: DeviceBuffer, length: number): void {
    if (!(peer instanceof CpuEngine)) {
      throw new TypeError(`copyToPeer: expected a cpu engine for peer but received ${describe(peer)}`);
    }
    this.native.copyToPeer(handle('copyToPeer', 'src', src), peer.native, handle('copyToPeer', 'dst', dst), length);
  }

  channelCopy(src: DeviceBuffer, dst: DeviceBuffer, n: number, hw: number, srcC: number, srcOffset: number,
    dstC: number, dstOffset: number, count: number): void {
    this.native.channelCopy(handle('channelCopy', 'src', src), handle('channelCopy', 'dst', dst), n, hw, srcC,
      srcOffset, dstC, dstOffset, count);
  }

  // ---- dense algebra ----

  gemm(transA: boolean, transB: boolean, m: number, n: number, k: number, alpha: number, a: DeviceBuffer,
    b: DeviceBuffer, beta: number, c: DeviceBuffer): void {
    this.native.gemm(transA, transB, m, n, k, alpha, handle('gemm', 'a', a), handle('gemm', 'b', b), beta,
      handle('gemm', 'c', c));
  }

  axpy(alpha: number, x: DeviceBuffer, y: DeviceBuffer): void {
    this.native.axpy(alpha, handle('axpy', 'x', x), handle('axpy', 'y', y));
  }

  scale(alpha: number, x: DeviceBuffer): void { this.native.scale(alpha, handle('scale', 'x', x)); }

  add(a: DeviceBuffer, b: DeviceBuffer, out: DeviceBuffer): void {
    this.native.add(handle('add', 'a', a), handle('add', 'b', b), handle('add', 'out', out));
  }

  biasAdd(y: DeviceBuffer, bias: DeviceBuffer, n: number, c: number, hw: number): void {
    this.native.biasAdd(handle('biasAdd', 'y', y), handle('biasAdd', 'bias', bias), n, c, hw);
  }

  biasGrad(dy: DeviceBuffer, db: DeviceBuffer, n: number, c: number, hw: number, beta: number): void {
    this.native.biasGrad(handle('biasGrad', 'dy', dy), handle('biasGrad', 'db', db), n, c, hw, beta);
  }

  // ---- convolution ----

  conv2dForward(x: DeviceBuffer, w: DeviceBuffer, bias: DeviceBuffer | null, y: DeviceBuffer, g: ConvGeometry): void {
    const op = 'conv2dForward';
    this.native.conv2dForward(handle(op, 'x', x), handle(op, 'w', w), optHandle(op, 'bias', bias), handle(op, 'y', y), g);
  }

  conv2dBackwardData(dy: DeviceBuffer, w: DeviceBuffer, dx: DeviceBuffer, g: ConvGeometry): void {
    const op = 'conv2dBackwardData';
    this.native.conv2dBackwardData(handle(op, 'dy', dy), handle(op, 'w', w), handle(op, 'dx', dx), g);
  }

  conv2dBackwardFilter(x: DeviceBuffer, dy: DeviceBuffer, dw: DeviceBuffer, db: DeviceBuffer | null,
    g: ConvGeometry, beta: number): void {
    const op = 'conv2dBackwardFilter';
    this.native.conv2dBackwardFilter(handle(op, 'x', x), handle(op, 'dy', dy), handle(op, 'dw', dw),
      optHandle(op, 'db', db), g, beta);
  }

  // ---- activations ----

  reluForward(x: DeviceBuffer, y: DeviceBuffer): void {
    this.native.reluForward(handle('reluForward', 'x', x), handle('reluForward', 'y', y));
  }

  reluBackward(y: DeviceBuffer, dy: DeviceBuffer, dx: DeviceBuffer): void {
    this.native.reluBackward(handle('reluBackward', 'y', y), handle('reluBackward', 'dy', dy),
      handle('reluBackward', 'dx', dx));
  }

  // ---- LRN ----

  lrnForward(x: DeviceBuffer, y: DeviceBuffer, p: LrnParams, n: number, c: number, hw: number): void {
    this.native.lrnForward(handle('lrnForward', 'x', x), handle('lrnForward', 'y', y), p, n, c, hw);
  }

  lrnBackward(x: DeviceBuffer, y: DeviceBuffer, dy: DeviceBuffer, dx: DeviceBuffer, p: LrnParams, n: number,
    c: number, hw: number): void {
    const op = 'lrnBackward';
    this.native.lrnBackward(handle(op, 'x', x), handle(op, 'y', y), handle(op, 'dy', dy), handle(op, 'dx', dx), p, n,
      c, hw);
  }

  // ---- pooling ----

  maxPoolForward(x: DeviceBuffer, y: DeviceBuffer, argmax: DeviceBuffer, g: PoolGeometry): void {
    const op = 'maxPoolForward';
    this.native.maxPoolForward(handle(op, 'x', x), handle(op, 'y', y), handle(op, 'argmax', argmax), g);
  }

  maxPoolBackward(dy: DeviceBuffer, argmax: DeviceBuffer, dx: DeviceBuffer, g: PoolGeometry): void {
    const op = 'maxPoolBackward';
    this.native.maxPoolBackward(handle(op, 'dy', dy), handle(op, 'argmax', argmax), handle(op, 'dx', dx), g);
  }

  // ---- dropout ----

  dropoutForward(x: DeviceBuffer, y: DeviceBuffer, p: number, seed: number, offset: number): void {
    this.native.dropoutForward(handle('dropoutForward', 'x', x), handle('dropoutForward', 'y', y), p, seed, offset);
  }

  dropoutBackward(dy: DeviceBuffer, dx: DeviceBuffer, p: number, seed: number, offset: number): void {
    this.native.dropoutBackward(handle('dropoutBackward', 'dy', dy), handle('dropoutBackward', 'dx', dx), p, seed,
      offset);
  }

  // ---- loss and metrics ----

  softmaxCrossEntropy(logits: DeviceBuffer, labels: DeviceBuffer, loss: DeviceBuffer, dlogits: DeviceBuffer | null,
    n: number, c: number): void {
    const op = 'softmaxCrossEntropy';
    this.native.softmaxCrossEntropy(handle(op, 'logits', logits), handle(op, 'labels', labels),
      handle(op, 'loss', loss), optHandle(op, 'dlogits', dlogits), n, c);
  }

  softmax(x: DeviceBuffer, y: DeviceBuffer, n: number, c: number): void {
    this.native.softmax(handle('softmax', 'x', x), handle('softmax', 'y', y), n, c);
  }

  topkCorrect(logits: DeviceBuffer, labels: DeviceBuffer, out: DeviceBuffer, n: number, c: number, k: number): void {
    const op = 'topkCorrect';
    this.native.topkCorrect(handle(op, 'logits', logits), handle(op, 'labels', labels), handle(op, 'out', out), n, c, k);
  }

  // ---- optimizer ----

  sgdUpdate(w: DeviceBuffer, g: DeviceBuffer, v: DeviceBuffer, p: SgdParams): void {
    this.native.sgdUpdate(handle('sgdUpdate', 'w', w), handle('sgdUpdate', 'g', g), handle('sgdUpdate', 'v', v), p);
  }

  /** Test hook: queues an op that takes `ms` milliseconds. */
  sleep(ms: number): void { this.native.sleep(ms); }

  /** Drains the queue, stops the threads and empties the allocation cache. */
  destroy(): void { this.native.destroy(); }
}
