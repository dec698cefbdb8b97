/**
 * The Engine interface (backend.ts) over a native addon: one adapter for every engine written in
 * native code (the CPU engine here, the CUDA engine and its emulation in @alexnet/cuda). Each addon's
 * NativeEngine class has the Engine's methods with the Engine's arguments, in the same order, and
 * checks them itself (native/common/ops.h); the adapter only swaps DeviceBuffers and Engines for the
 * addon's handles and wraps what comes back. A new native backend is
 *
 *   new NativeEngine('my-backend', index, new addon.NativeEngine(index))
 *
 * and whatever methods of its own it has (CpuEngine adds setCacheLimit and a test hook).
 */
import type { DType, DeviceBuffer, Engine, EngineEvent, TypedArray } from './backend.js';

/** An addon's buffer object (native/common/napi_args.h's NativeBuffer). */
export interface AddonBuffer {
  readonly length: number;
  readonly dtype: string;
  readonly freed: boolean;
}

/** Live and cached native memory of one engine (memoryStats()). */
export interface NativeMemoryStats {
  /** Bytes and buffers held by live buffers (freed ones still used by queued work included). */
  liveBytes: number;
  liveBuffers: number;
  /** The highest liveBytes so far. */
  peakLiveBytes: number;
  /** Freed blocks kept for reuse by alloc. */
  cachedBytes: number;
  cachedBuffers: number;
  /** The cache's bound (Infinity: none). */
  cacheLimit: number;
}

/** The ops the adapter forwards as they are, with buffers and engines swapped for handles. */
export const FORWARDED_OPS = [
  'fill', 'random', 'copy', 'copyToPeer', 'channelCopy', 'gemm', 'axpy', 'scale', 'add', 'biasAdd', 'biasGrad',
  'conv2dForward', 'conv2dBackwardData', 'conv2dBackwardFilter', 'reluForward', 'reluBackward', 'tanhForward',
  'tanhBackward', 'lrnForward', 'lrnBackward', 'maxPoolForward', 'maxPoolBackward', 'dropoutForward', 'dropoutBackward',
  'softmaxCrossEntropy', 'softmax', 'topkCorrect', 'sgdUpdate',
] as const;
type ForwardedOp = (typeof FORWARDED_OPS)[number];

/**
 * What an addon's NativeEngine class offers (native/cpu/addon.cpp, native/cuda/addon.cpp; the names
 * come from native/common/ops.h's engineMethods): the Engine's methods with the addon's handles for
 * buffers and engines, reads as ArrayBuffers, and an opaque token for an event (`recordEvent()` on one
 * engine, `waitEvent(thatEngine, token)` on another).
 */
export type AddonEngine =
  & Record<ForwardedOp | 'write' | 'free' | 'synchronizeSync' | 'waitEvent' | 'setThreads' | 'destroy', (...args: unknown[]) => void>
  & {
    alloc(dtype: DType, length: number): AddonBuffer;
    read(buf: AddonBuffer, offset?: number, length?: number): Promise<ArrayBuffer>;
    readSync(buf: AddonBuffer, offset?: number, length?: number): ArrayBuffer;
    synchronize(): Promise<void>;
    recordEvent(): unknown;
    memoryStats(): NativeMemoryStats;
    trimCache(): number;
  };

/** A buffer of a NativeEngine. */
export class NativeBuffer implements DeviceBuffer {
  constructor(
    readonly engine: NativeEngine,
    /** @internal */ readonly handle: AddonBuffer,
    readonly dtype: DType,
    readonly length: number,
  ) {}
}

/** A point in a NativeEngine's queue (the addon's token). */
export class NativeEvent implements EngineEvent {
  constructor(readonly engine: NativeEngine, /** @internal */ readonly token: unknown) {}
}

const VIEW: Record<DType, new (b: ArrayBuffer) => TypedArray> = {
  float32: Float32Array, float64: Float64Array, int32: Int32Array, uint8: Uint8Array,
};

/** Our buffers and engines as the addon's handles; everything else as it is (the addon checks it all). */
function handle(v: unknown): unknown {
  if (v instanceof NativeBuffer) return v.handle;
  if (v instanceof NativeEngine) return v.native;
  return v;
}

export interface NativeEngine extends Pick<Engine, ForwardedOp> {}

export class NativeEngine implements Engine {
  private threads = 1;

  constructor(readonly backend: string, readonly index: number, /** @internal */ readonly native: AddonEngine) {}

  toString(): string { return `${this.backend}:${this.index}`; }

  alloc(dtype: DType, length: number): NativeBuffer {
    return new NativeBuffer(this, this.native.alloc(dtype, length), dtype, length);
  }
  free(buf: DeviceBuffer): void { this.call('free', buf); }
  write(buf: DeviceBuffer, data: TypedArray, offset = 0): void { this.call('write', buf, data, offset); }
  async read(buf: DeviceBuffer, offset?: number, length?: number): Promise<TypedArray> {
    return new VIEW[buf.dtype](await this.native.read(handle(buf) as AddonBuffer, offset, length));
  }
  readSync(buf: DeviceBuffer, offset?: number, length?: number): TypedArray {
    return new VIEW[buf.dtype](this.native.readSync(handle(buf) as AddonBuffer, offset, length));
  }
  synchronize(): Promise<void> { return this.native.synchronize(); }
  synchronizeSync(): void { this.native.synchronizeSync(); }
  recordEvent(): NativeEvent { return new NativeEvent(this, this.native.recordEvent()); }
  waitEvent(event: EngineEvent): void {
    const e = event as Partial<NativeEvent>;
    this.call('waitEvent', e?.engine, e?.token);
  }
  setThreads(threads: number): void {
    this.call('setThreads', threads);
    this.threads = threads;
  }
  getThreads(): number { return this.threads; }

  /**
   * Live and cached native memory. Freed buffers go, once no queued op on any engine uses them, to a
   * per-engine cache that alloc reuses (no fresh allocation per step once warm); trimCache() empties it.
   */
  memoryStats(): NativeMemoryStats { return this.native.memoryStats(); }
  /** Returns every cached block to the system (or the driver); the bytes released. destroy() does it too. */
  trimCache(): number { return this.native.trimCache(); }
  /** Drains the queue, stops the engine's threads and releases its memory. */
  destroy(): void { this.call('destroy'); }

  /** @internal native.method(...args), our buffers and engines as the addon's handles. */
  call(method: keyof AddonEngine, ...args: unknown[]): void {
    (this.native as unknown as Record<string, (...a: unknown[]) => void>)[method]!(...args.map(handle));
  }
}

for (const op of FORWARDED_OPS) {
  Object.defineProperty(NativeEngine.prototype, op, {
    value: function (this: NativeEngine, ...args: unknown[]): void { this.call(op, ...args); },
    writable: true,
    configurable: true,
  });
}
