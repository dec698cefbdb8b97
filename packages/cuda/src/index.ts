/**
 * @alexnet/cuda: the CUDA backend of @alexnet/tensor. Importing the package registers two backends:
 *
 * - 'cuda'     the kernels of native/cuda on NVIDIA GPUs (devices "cuda:0", "cuda:1", ...). With fewer
 *              GPUs than two, two logical devices share one GPU, each with its own stream and memory,
 *              so the paper's two-tower placement (§3.2) runs on any machine with a GPU.
 * - 'cuda-emu' the same kernel sources compiled for the host through a small emulation of CUDA
 *              (threads of a block as fibers, real barriers): what CI verifies without a GPU.
 *
 * Without a GPU, a driver or nvcc at install, the package still loads: `cuda.available()` is false
 * and `cuda.reason()` says why; `device('cuda:0')` then throws with that reason.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  registerBackend,
  type Backend, type ConvGeometry, type DType, type DeviceBuffer, type Engine, type EngineEvent, type LrnParams,
  type PoolGeometry, type SgdParams, type TypedArray,
} from '@alexnet/tensor';

// ---- the native addons ----

/** The N-API surface of native/cuda/addon.cpp (buffers are numeric ids owned by their engine). */
interface NativeEngine {
  alloc(dtype: DType, length: number): number;
  free(id: number): void;
  write(id: number, data: TypedArray, offset: number): void;
  readSync(id: number, offset?: number, length?: number): TypedArray;
  read(id: number, offset?: number, length?: number): Promise<TypedArray>;
  synchronize(): Promise<void>;
  synchronizeSync(): void;
  recordEvent(): unknown;
  waitEvent(handle: unknown): void;
  setThreads(n: number): void;
  getThreads(): number;
  memoryInfo(): { inUse: number; cached: number; buffers: number };
  emptyCache(): void;
  fill(id: number, value: number): void;
  random(id: number, dist: string, seed: number, offset: number, a: number, b: number): void;
  copy(src: number, srcOffset: number, dst: number, dstOffset: number, length: number): void;
  copyToPeer(src: number, peer: NativeEngine, dst: number, length: number): void;
  channelCopy(src: number, dst: number, n: number, hw: number, srcC: number, srcOffset: number, dstC: number, dstOffset: number, count: number): void;
  gemm(tA: boolean, tB: boolean, m: number, n: number, k: number, alpha: number, a: number, b: number, beta: number, c: number): void;
  axpy(alpha: number, x: number, y: number): void;
  scale(alpha: number, x: number): void;
  add(a: number, b: number, out: number): void;
  biasAdd(y: number, bias: number, n: number, c: number, hw: number): void;
  biasGrad(dy: number, db: number, n: number, c: number, hw: number, beta: number): void;
  conv2dForward(x: number, w: number, bias: number | null, y: number, g: ConvGeometry): void;
  conv2dBackwardData(dy: number, w: number, dx: number, g: ConvGeometry): void;
  conv2dBackwardFilter(x: number, dy: number, dw: number, db: number | null, g: ConvGeometry, beta: number): void;
  reluForward(x: number, y: number): void;
  reluBackward(y: number, dy: number, dx: number): void;
  lrnForward(x: number, y: number, p: LrnParams, n: number, c: number, hw: number): void;
  lrnBackward(x: number, y: number, dy: number, dx: number, p: LrnParams, n: number, c: number, hw: number): void;
  maxPoolForward(x: number, y: number, argmax: number, g: PoolGeometry): void;
  maxPoolBackward(dy: number, argmax: number, dx: number, g: PoolGeometry): void;
  dropout(x: number, y: number, p: number, seed: number, offset: number): void;
  softmaxCrossEntropy(logits: number, labels: number, loss: number, dlogits: number | null, n: number, c: number): void;
  softmax(x: number, y: number, n: number, c: number): void;
  topkCorrect(logits: number, labels: number, out: number, n: number, c: number, k: number): void;
  sgdUpdate(w: number, g: number, v: number, p: SgdParams): void;
  destroy(): void;
}

interface NativeProbe { available: boolean; reason?: string; gpus: number; name: string; logicalDevices: number; emulated: boolean }
interface NativeAddon {
  NativeEngine: new (index: number) => NativeEngine;
  probe(): NativeProbe;
  setTf32(on: boolean): boolean;
  emuSelfTest?(threads: number): EmulationSelfTest;
  emuBarrierDivergences?(): number;
}

/** Result of the emulation layer's own check (see native/cuda/emu/selftest.cpp). */
export interface EmulationSelfTest {
  expected: number[];
  withBarrier: number[];
  withoutBarrier: number[];
  atomicCount: number;
  atomicExpected: number;
  threads: number;
  /** Blocks of a deliberately wrong kernel (a barrier only half the block reaches) that were flagged. */
  divergencesDetected: number;
  /** Mismatches of the kernels' fast division (multiply-high and shift) against `/` and `%`. */
  fastDivErrors: number;
}

/** How the package was built (build/Release/build-info.json, written by scripts/build.mjs). */
export interface BuildInfo {
  emu?: { built: boolean; reason?: string; seconds?: number };
  cuda?: { built: boolean; reason?: string; seconds?: number; archs?: string[]; nvcc?: string };
  node?: string;
}

const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..'); // src/ and dist/ sit one level down
const releaseDir = join(packageRoot, 'build', 'Release');
const requireNative = createRequire(import.meta.url);

function readBuildInfo(): BuildInfo {
  try { return JSON.parse(readFileSync(join(releaseDir, 'build-info.json'), 'utf8')) as BuildInfo; } catch { return {}; }
}

interface Loaded { addon?: NativeAddon; probe?: NativeProbe; reason?: string }

function load(file: string, notBuilt: () => string): Loaded {
  const path = join(releaseDir, file);
  if (!existsSync(path)) return { reason: notBuilt() };
  let addon: NativeAddon;
  try {
    addon = requireNative(path) as NativeAddon;
  } catch (e) {
    return { reason: `the addon ${file} failed to load: ${(e as Error).message}` };
  }
  try {
    const probe = addon.probe();
    return { addon, probe, reason: probe.available ? undefined : probe.reason };
  } catch (e) {
    return { addon, reason: `probing CUDA failed: ${(e as Error).message}` };
  }
}

let gpu: Loaded | undefined;
let emu: Loaded | undefined;

function gpuAddon(): Loaded {
  gpu ??= load('alexnet_cuda.node', () => {
    const info = readBuildInfo();
    return info.cuda?.reason ?? 'built without CUDA: alexnet_cuda.node was not built (run `npm run build` in @alexnet/cuda with nvcc on PATH)';
  });
  return gpu;
}

function emuAddon(): Loaded {
  emu ??= load('alexnet_cuda_emu.node', () => readBuildInfo().emu?.reason ??
    'alexnet_cuda_emu.node was not built (a C++17 compiler is needed; run `npm run build` in @alexnet/cuda)');
  return emu;
}

// ---- the engine: validation and ids in TypeScript, the work in native code ----

class CudaBuffer implements DeviceBuffer {
  constructor(readonly engine: CudaEngine, readonly id: number, readonly dtype: DType, readonly length: number) {}
}

class CudaEvent implements EngineEvent {
  constructor(readonly engine: CudaEngine, readonly handle: unknown) {}
}

const ARRAY_OF: Record<DType, { from(d: ArrayLike<number>): TypedArray }> = {
  float32: Float32Array, float64: Float64Array, int32: Int32Array, uint8: Uint8Array,
};

export class CudaEngine implements Engine {
  constructor(readonly backend: string, readonly index: number, private readonly native: NativeEngine) {}

  private id(b: DeviceBuffer | null, name: string, op: string): number {
    if (!(b instanceof CudaBuffer) || b.engine !== this) {
      throw new TypeError(`${op}: ${name} is not a buffer of ${this.backend}:${this.index}`);
    }
    return b.id;
  }
  private optId(b: DeviceBuffer | null, name: string, op: string): number | null {
    return b === null || b === undefined ? null : this.id(b, name, op);
  }

  alloc(dtype: DType, length: number): DeviceBuffer {
    if (dtype === 'float64') throw new TypeError(`alloc: float64 tensors are only supported by the reference backend, not ${this.backend}`);
    if (!Number.isSafeInteger(length) || length < 0) throw new RangeError(`alloc: Expected a non-negative integer for length but received ${String(length)}`);
    return new CudaBuffer(this, this.native.alloc(dtype, length), dtype, length);
  }
  free(buf: DeviceBuffer): void {
    if (buf instanceof CudaBuffer && buf.engine === this) this.native.free(buf.id);
  }
  write(buf: DeviceBuffer, data: TypedArray, offset = 0): void {
    const id = this.id(buf, 'buf', 'write');
    const want = ARRAY_OF[buf.dtype];
    const host = (data.constructor as unknown) === want ? data : want.from(data);
    this.native.write(id, host, offset);
  }
  read(buf: DeviceBuffer, offset?: number, length?: number): Promise<TypedArray> {
    try {
      return this.native.read(this.id(buf, 'buf', 'read'), offset, length);
    } catch (e) {
      return Promise.reject(e);
    }
  }
  readSync(buf: DeviceBuffer, offset?: number, length?: number): TypedArray {
    return this.native.readSync(this.id(buf, 'buf', 'read'), offset, length);
  }
  synchronize(): Promise<void> { return this.native.synchronize(); }
  synchronizeSync(): void { this.native.synchronizeSync(); }
  recordEvent(): EngineEvent { return new CudaEvent(this, this.native.recordEvent()); }
  waitEvent(event: EngineEvent): void {
    if (!(event instanceof CudaEvent) || event.engine.backend !== this.backend) {
      throw new TypeError(`waitEvent: the event is not from a ${this.backend} device`);
    }
    this.native.waitEvent(event.handle);
  }
  setThreads(threads: number): void { this.native.setThreads(threads); }
  getThreads(): number { return this.native.getThreads(); }
  /** Device bytes held by live buffers and by the caching allocator's free list, and live buffers. */
  memoryInfo(): { inUse: number; cached: number; buffers: number } { return this.native.memoryInfo(); }
  /** Returns the cached free blocks to the driver. */
  emptyCache(): void { this.native.emptyCache(); }

  fill(buf: DeviceBuffer, value: number): void { this.native.fill(this.id(buf, 'buf', 'fill'), value); }
  random(buf: DeviceBuffer, dist: 'uniform' | 'normal', seed: number, offset: number, a: number, b: number): void {
    this.native.random(this.id(buf, 'buf', 'random'), dist, seed, offset, a, b);
  }
  copy(src: DeviceBuffer, srcOffset: number, dst: DeviceBuffer, dstOffset: number, length: number): void {
    this.native.copy(this.id(src, 'src', 'copy'), srcOffset, this.id(dst, 'dst', 'copy'), dstOffset, length);
  }
  copyToPeer(src: DeviceBuffer, peer: Engine, dst: DeviceBuffer, length: number): void {
    if (!(peer instanceof CudaEngine) || peer.backend !== this.backend) {
      throw new TypeError(`copyToPeer: peer is not a ${this.backend} device`);
    }
    this.native.copyToPeer(this.id(src, 'src', 'copyToPeer'), peer.native, peer.id(dst, 'dst', 'copyToPeer'), length);
  }
  channelCopy(src: DeviceBuffer, dst: DeviceBuffer, n: number, hw: number, srcC: number, srcOffset: number,
    dstC: number, dstOffset: number, count: number): void {
    this.native.channelCopy(this.id(src, 'src', 'channelCopy'), this.id(dst, 'dst', 'channelCopy'), n, hw, srcC, srcOffset, dstC, dstOffset, count);
  }

  gemm(transA: boolean, transB: boolean, m: number, n: number, k: number, alpha: number,
    a: DeviceBuffer, b: DeviceBuffer, beta: number, c: DeviceBuffer): void {
    this.native.gemm(transA, transB, m, n, k, alpha, this.id(a, 'a', 'gemm'), this.id(b, 'b', 'gemm'), beta, this.id(c, 'c', 'gemm'));
  }
  axpy(alpha: number, x: DeviceBuffer, y: DeviceBuffer): void { this.native.axpy(alpha, this.id(x, 'x', 'axpy'), this.id(y, 'y', 'axpy')); }
  scale(alpha: number, x: DeviceBuffer): void { this.native.scale(alpha, this.id(x, 'x', 'scale')); }
  add(a: DeviceBuffer, b: DeviceBuffer, out: DeviceBuffer): void {
    this.native.add(this.id(a, 'a', 'add'), this.id(b, 'b', 'add'), this.id(out, 'out', 'add'));
  }
  biasAdd(y: DeviceBuffer, bias: DeviceBuffer, n: number, c: number, hw: number): void {
    this.native.biasAdd(this.id(y, 'y', 'biasAdd'), this.id(bias, 'bias', 'biasAdd'), n, c, hw);
  }
  biasGrad(dy: DeviceBuffer, db: DeviceBuffer, n: number, c: number, hw: number, beta: number): void {
    this.native.biasGrad(this.id(dy, 'dy', 'biasGrad'), this.id(db, 'db', 'biasGrad'), n, c, hw, beta);
  }

  conv2dForward(x: DeviceBuffer, w: DeviceBuffer, bias: DeviceBuffer | null, y: DeviceBuffer, g: ConvGeometry): void {
    const op = 'conv2dForward';
    this.native.conv2dForward(this.id(x, 'x', op), this.id(w, 'w', op), this.optId(bias, 'bias', op), this.id(y, 'y', op), g);
  }
  conv2dBackwardData(dy: DeviceBuffer, w: DeviceBuffer, dx: DeviceBuffer, g: ConvGeometry): void {
    const op = 'conv2dBackwardData';
    this.native.conv2dBackwardData(this.id(dy, 'dy', op), this.id(w, 'w', op), this.id(dx, 'dx', op), g);
  }
  conv2dBackwardFilter(x: DeviceBuffer, dy: DeviceBuffer, dw: DeviceBuffer, db: DeviceBuffer | null, g: ConvGeometry, beta: number): void {
    const op = 'conv2dBackwardFilter';
    this.native.conv2dBackwardFilter(this.id(x, 'x', op), this.id(dy, 'dy', op), this.id(dw, 'dw', op), this.optId(db, 'db', op), g, beta);
  }

  reluForward(x: DeviceBuffer, y: DeviceBuffer): void { this.native.reluForward(this.id(x, 'x', 'reluForward'), this.id(y, 'y', 'reluForward')); }
  reluBackward(y: DeviceBuffer, dy: DeviceBuffer, dx: DeviceBuffer): void {
    this.native.reluBackward(this.id(y, 'y', 'reluBackward'), this.id(dy, 'dy', 'reluBackward'), this.id(dx, 'dx', 'reluBackward'));
  }
  lrnForward(x: DeviceBuffer, y: DeviceBuffer, p: LrnParams, n: number, c: number, hw: number): void {
    this.native.lrnForward(this.id(x, 'x', 'lrnForward'), this.id(y, 'y', 'lrnForward'), p, n, c, hw);
  }
  lrnBackward(x: DeviceBuffer, y: DeviceBuffer, dy: DeviceBuffer, dx: DeviceBuffer, p: LrnParams, n: number, c: number, hw: number): void {
    const op = 'lrnBackward';
    this.native.lrnBackward(this.id(x, 'x', op), this.id(y, 'y', op), this.id(dy, 'dy', op), this.id(dx, 'dx', op), p, n, c, hw);
  }
  maxPoolForward(x: DeviceBuffer, y: DeviceBuffer, argmax: DeviceBuffer, g: PoolGeometry): void {
    const op = 'maxPoolForward';
    this.native.maxPoolForward(this.id(x, 'x', op), this.id(y, 'y', op), this.id(argmax, 'argmax', op), g);
  }
  maxPoolBackward(dy: DeviceBuffer, argmax: DeviceBuffer, dx: DeviceBuffer, g: PoolGeometry): void {
    const op = 'maxPoolBackward';
    this.native.maxPoolBackward(this.id(dy, 'dy', op), this.id(argmax, 'argmax', op), this.id(dx, 'dx', op), g);
  }
  dropoutForward(x: DeviceBuffer, y: DeviceBuffer, p: number, seed: number, offset: number): void {
    this.native.dropout(this.id(x, 'x', 'dropoutForward'), this.id(y, 'y', 'dropoutForward'), p, seed, offset);
  }
  dropoutBackward(dy: DeviceBuffer, dx: DeviceBuffer, p: number, seed: number, offset: number): void {
    this.native.dropout(this.id(dy, 'dy', 'dropoutBackward'), this.id(dx, 'dx', 'dropoutBackward'), p, seed, offset);
  }
  softmaxCrossEntropy(logits: DeviceBuffer, labels: DeviceBuffer, loss: DeviceBuffer, dlogits: DeviceBuffer | null, n: number, c: number): void {
    const op = 'softmaxCrossEntropy';
    this.native.softmaxCrossEntropy(this.id(logits, 'logits', op), this.id(labels, 'labels', op), this.id(loss, 'loss', op),
      this.optId(dlogits, 'dlogits', op), n, c);
  }
  softmax(x: DeviceBuffer, y: DeviceBuffer, n: number, c: number): void {
    this.native.softmax(this.id(x, 'x', 'softmax'), this.id(y, 'y', 'softmax'), n, c);
  }
  topkCorrect(logits: DeviceBuffer, labels: DeviceBuffer, out: DeviceBuffer, n: number, c: number, k: number): void {
    const op = 'topkCorrect';
    this.native.topkCorrect(this.id(logits, 'logits', op), this.id(labels, 'labels', op), this.id(out, 'out', op), n, c, k);
  }
  sgdUpdate(w: DeviceBuffer, g: DeviceBuffer, v: DeviceBuffer, p: SgdParams): void {
    this.native.sgdUpdate(this.id(w, 'w', 'sgdUpdate'), this.id(g, 'g', 'sgdUpdate'), this.id(v, 'v', 'sgdUpdate'), p);
  }
  destroy(): void { this.native.destroy(); }
}

// ---- the backends ----

function makeBackend(name: 'cuda' | 'cuda-emu', loaded: () => Loaded): Backend {
  return {
    name,
    availability() {
      const l = loaded();
      return l.probe?.available ? { available: true } : { available: false, reason: l.reason ?? 'unknown reason' };
    },
    deviceCount() {
      return loaded().probe?.logicalDevices ?? 0;
    },
    createEngine(index: number): Engine {
      const l = loaded();
      if (!l.addon || !l.probe?.available) throw new Error(`${name} is not available: ${l.reason ?? 'unknown reason'}`);
      return new CudaEngine(name, index, new l.addon.NativeEngine(index));
    },
  };
}

/** Real GPUs: devices "cuda:N" (N < max(2, GPUs): logical devices beyond the GPU count share one). */
export const cudaBackend: Backend = makeBackend('cuda', gpuAddon);
/** The same kernels on the host emulation of CUDA: devices "cuda-emu:0" and "cuda-emu:1". */
export const cudaEmuBackend: Backend = makeBackend('cuda-emu', emuAddon);

/** Registers 'cuda' and 'cuda-emu' with @alexnet/tensor (done once on import; idempotent). */
export function registerCudaBackends(): void {
  registerBackend(cudaBackend);
  registerBackend(cudaEmuBackend);
}

/** What this machine and this build can do with CUDA. */
export const cuda = {
  /** True when the package was built with nvcc, the driver answers and a GPU exists. */
  available(): boolean { return gpuAddon().probe?.available ?? false; },
  /** Why `available()` is false: built without CUDA, no driver, no device... (undefined when available). */
  reason(): string | undefined { return gpuAddon().probe?.available ? undefined : gpuAddon().reason; },
  /** Logical CUDA devices (0 when unavailable). */
  deviceCount(): number { return cudaBackend.deviceCount(); },
  /** Physical GPUs and the name of the first. */
  gpus(): { count: number; name?: string } {
    const p = gpuAddon().probe;
    return p?.available ? { count: p.gpus, name: p.name } : { count: 0 };
  },
  /** How the addons were built (nvcc version, archs, compile seconds, or why not). */
  buildInfo(): BuildInfo { return readBuildInfo(); },
  /**
   * TF32 tensor cores (sm_80+) for the GEMMs and the implicit-GEMM convolutions with M, N >= 64, for
   * every 'cuda' device of this process. Off by default so that results match float32 (TF32 keeps 10
   * mantissa bits of each input: about 1e-3 relative error). Returns the setting now in force.
   */
  setTf32(on: boolean): boolean { return gpuAddon().addon?.setTf32(on) ?? false; },
};

/** The emulated backend ('cuda-emu'): the kernels of native/cuda on host threads. */
export const cudaEmu = {
  available(): boolean { return emuAddon().probe?.available ?? false; },
  reason(): string | undefined { return emuAddon().probe?.available ? undefined : emuAddon().reason; },
  /** The TF32 path of the emulated backend (the wmma calls emulated, inputs rounded to TF32). */
  setTf32(on: boolean): boolean { return emuAddon().addon?.setTf32(on) ?? false; },
  /**
   * Runs the emulation layer's self-check: a block-wide reduction with and without __syncthreads
   * (wrong without a working barrier) and atomics from a grid spread over `threads` workers.
   */
  selfTest(threads = 2): EmulationSelfTest {
    const l = emuAddon();
    if (!l.addon?.emuSelfTest) throw new Error(`cuda-emu is not available: ${l.reason ?? 'unknown reason'}`);
    return l.addon.emuSelfTest(threads);
  },
  /**
   * Blocks so far, in this process, in which some threads returned while others waited at
   * __syncthreads (a barrier in divergent code: undefined behaviour on a GPU). Kernels must keep it 0.
   */
  barrierDivergences(): number { return emuAddon().addon?.emuBarrierDivergences?.() ?? 0; },
};

registerCudaBackends();
