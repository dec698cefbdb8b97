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
import { NativeEngine, registerBackend, type AddonEngine, type Backend, type Engine } from '@alexnet/tensor';
import { describeLibrary, libraryCandidates, preloadCandidates, type LibraryInfo, type LibraryName, type NativeLibReport } from './libraries.js';

export { libraryCandidates, preloadCandidates, LIBRARY_NAMES, type LibraryInfo, type LibraryName } from './libraries.js';

// ---- the native addons ----

interface NativeProbe { available: boolean; reason?: string; gpus: number; name: string; logicalDevices: number; emulated: boolean }
type Fp32Precision = 'tf32' | 'ieee';
/** The float32 math of the vendor libraries (conv: cuDNN, matmul: cuBLASLt) and of our own kernels. */
export interface Precision {
  conv: Fp32Precision;
  matmul: Fp32Precision;
  ownKernels: { conv: Fp32Precision; matmul: Fp32Precision };
}
/** The op families that may run on a vendor library. */
export type KernelFamily = 'conv2dForward' | 'conv2dBackwardData' | 'conv2dBackwardFilter' | 'gemm';
export interface KernelChoice {
  /** 'cudnn' or 'cublasLt' when the vendor library runs the family, 'own' for our kernels. */
  library: 'cudnn' | 'cublasLt' | 'own';
  /** Why our kernels (ALEXNET_CUDA_KERNELS=own, the library not found, a failed check...). */
  reason?: string;
}
interface NativeKernels {
  families: Record<KernelFamily, KernelChoice>;
  own: boolean;
  precision: Precision;
  counters: Record<string, number>;
}
interface NativeLibraries { cudnn: NativeLibReport; cublasLt: NativeLibReport; nccl: NativeLibReport; standins: boolean }
interface NativeAddon {
  /** The engine of native/cuda/addon.cpp: the shared surface of every native engine (native-engine.ts). */
  NativeEngine: new (index: number) => AddonEngine;
  probe(): NativeProbe;
  setTf32(on: boolean): boolean;
  setPrecision(conv?: Fp32Precision, matmul?: Fp32Precision): Precision;
  loadLibraries(candidates: { cudnn: string[]; cublasLt: string[]; nccl: string[]; preload: string[] }): NativeLibraries;
  kernels(): NativeKernels;
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
  cuda?: {
    built: boolean; reason?: string; seconds?: number; archs?: string[]; nvcc?: string;
    /** vendor/api.h checked against NVIDIA's headers where they were found at build time. */
    vendorHeaders?: { checked: boolean; ok?: boolean; reason?: string; cudnn?: string; cublasLt?: string; error?: string };
  };
  node?: string;
}

const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..'); // src/ and dist/ sit one level down
const releaseDir = join(packageRoot, 'build', 'Release');
const requireNative = createRequire(import.meta.url);

function readBuildInfo(): BuildInfo {
  try { return JSON.parse(readFileSync(join(releaseDir, 'build-info.json'), 'utf8')) as BuildInfo; } catch { return {}; }
}

interface Loaded { addon?: NativeAddon; probe?: NativeProbe; reason?: string; libraries?: NativeLibraries }

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

/**
 * Looks for cuDNN, cuBLASLt and NCCL (once per addon and process: a library once loaded stays), before
 * the first engine of the backend starts. A GPU build whose vendor/api.h did not match the headers
 * found at build time loads none of them.
 */
function loadVendor(l: Loaded): NativeLibraries | undefined {
  if (!l.addon) return undefined;
  if (l.libraries) return l.libraries;
  const headers = l.probe?.emulated ? undefined : readBuildInfo().cuda?.vendorHeaders;
  const refuse = headers?.checked && headers.ok === false;
  const list = (lib: LibraryName) => (refuse ? [] : libraryCandidates(lib));
  l.libraries = l.addon.loadLibraries({ cudnn: list('cudnn'), cublasLt: list('cublasLt'), nccl: libraryCandidates('nccl'), preload: refuse ? [] : preloadCandidates() });
  if (refuse) {
    for (const k of ['cudnn', 'cublasLt'] as const) l.libraries[k].note = 'not loaded: vendor/api.h did not match the headers found when this package was built (build-info.json)';
  }
  if (process.env.ALEXNET_CUDA_DEBUG && process.env.ALEXNET_CUDA_DEBUG !== '0') {
    const k = l.addon.kernels();
    const line = Object.entries(k.families).map(([f, c]) => `${f}: ${c.library}${c.reason ? ` (${c.reason})` : ''}`).join('; ');
    console.error(`[@alexnet/cuda] ${l.probe?.emulated ? 'cuda-emu' : 'cuda'} kernels: ${line}; precision conv ${k.precision.conv}, matmul ${k.precision.matmul}`);
  }
  return l.libraries;
}

/** A 'cuda' or 'cuda-emu' device's engine: the one adapter of native engines (@alexnet/tensor's NativeEngine). */
export { NativeEngine as CudaEngine } from '@alexnet/tensor';

// ---- the backends ----

function makeBackend(name: 'cuda' | 'cuda-emu', loaded: () => Loaded): Backend {
  return {
    name,
    hostThreaded: name === 'cuda-emu', // the emulated GPU's blocks run on host threads
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
      loadVendor(l);
      return new NativeEngine(name, index, new l.addon.NativeEngine(index));
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

/** What libraries() says: each library found (path, version) or not (why, every place tried), and the kernels in use. */
export interface Libraries {
  /** The addon the report is about: 'cuda' (the GPU build) or 'cuda-emu' (the emulated one, which takes only the tests' stand-ins). */
  backend: 'cuda' | 'cuda-emu';
  cudnn: LibraryInfo;
  cublasLt: LibraryInfo;
  nccl: LibraryInfo;
  /** Per op family: a vendor library's kernels or ours, and why ours. */
  kernels: Record<KernelFamily, KernelChoice>;
  precision: Precision;
}

function librariesOf(name: 'cuda' | 'cuda-emu', l: Loaded): Libraries {
  const a = l.addon;
  if (!a) {
    const why = `the ${name === 'cuda' ? 'GPU' : 'emulated'} addon did not load: ${l.reason ?? 'unknown reason'}`;
    const none: LibraryInfo = { found: false, reason: why, searched: [] };
    const own: KernelChoice = { library: 'own', reason: why };
    const ieee = 'ieee' as const;
    return { backend: name, cudnn: none, cublasLt: none, nccl: none,
      kernels: { conv2dForward: own, conv2dBackwardData: own, conv2dBackwardFilter: own, gemm: own },
      precision: { conv: 'tf32', matmul: ieee, ownKernels: { conv: ieee, matmul: ieee } } };
  }
  const r = loadVendor(l)!;
  const k = a.kernels();
  return {
    backend: name,
    cudnn: describeLibrary('cudnn', r.cudnn), cublasLt: describeLibrary('cublasLt', r.cublasLt), nccl: describeLibrary('nccl', r.nccl),
    kernels: k.families, precision: k.precision,
  };
}

/**
 * Which of cuDNN, cuBLASLt and NCCL this process found (path and version) or not (why, and every
 * place tried: see libraryCandidates()), and which kernels each op family runs on. `backend`
 * defaults to 'cuda' where the GPU addon was built, else 'cuda-emu'. Looks the libraries up on the
 * first call (as starting an engine does).
 */
export function libraries(backend?: 'cuda' | 'cuda-emu'): Libraries {
  const which = backend ?? (gpuAddon().addon ? 'cuda' : 'cuda-emu');
  return librariesOf(which, which === 'cuda' ? gpuAddon() : emuAddon());
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
  /**
   * The float32 math by op family, for the vendor libraries and our kernels alike: 'tf32' lets
   * convolutions (cuDNN's, and ours: the wmma kernel) or matmuls (cuBLASLt's, ours) use TF32 tensor
   * cores, 'ieee' keeps them strict FP32. Defaults are PyTorch's for the vendor libraries (conv
   * 'tf32', matmul 'ieee') and strict for our kernels until set. ALEXNET_CUDA_PRECISION=strict|tf32
   * sets both at start. Returns the settings now in force.
   */
  setPrecision(p: { conv?: Fp32Precision; matmul?: Fp32Precision }): Precision | undefined { return gpuAddon().addon?.setPrecision(p.conv, p.matmul); },
  /** The kernels each op family uses, the precision, and the counters of what ran (GEMM tiles, fusions, vendor calls, checks). */
  kernels(): NativeKernels | undefined { return gpuAddon().addon?.kernels(); },
};

/** The emulated backend ('cuda-emu'): the kernels of native/cuda on host threads. */
export const cudaEmu = {
  available(): boolean { return emuAddon().probe?.available ?? false; },
  reason(): string | undefined { return emuAddon().probe?.available ? undefined : emuAddon().reason; },
  /** The TF32 path of the emulated backend (the wmma calls emulated, inputs rounded to TF32). */
  setTf32(on: boolean): boolean { return emuAddon().addon?.setTf32(on) ?? false; },
  /** As cuda.setPrecision, for the emulated backend. */
  setPrecision(p: { conv?: Fp32Precision; matmul?: Fp32Precision }): Precision | undefined { return emuAddon().addon?.setPrecision(p.conv, p.matmul); },
  /** As cuda.kernels(), for the emulated backend (its counters show which GEMM tiles and paths the tests ran). */
  kernels(): NativeKernels | undefined { return emuAddon().addon?.kernels(); },
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
