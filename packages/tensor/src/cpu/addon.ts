/**
 * Loads the native CPU engine (build/Release/alexnet_cpu.node, built by scripts/build-native.mjs).
 * The path is relative to this module and the same from src/cpu and dist/cpu. A missing or broken
 * addon is not an error at import: `addonLoadError` says why, and the cpu backend reports it.
 */
import { createRequire } from 'node:module';
import type { ConvGeometry } from '../backend.js';
import type { AddonEngine } from '../native-engine.js';

export type CpuIsa = 'avx512' | 'avx2' | 'portable';
/** How the engine computes stride-1 3x3 and 5x5 convolutions (docs/cpu-engine.md, Winograd). */
export type CpuConvAlgorithm = 'auto' | 'direct' | 'winograd2' | 'winograd4';
export type CpuConvPass = 'forward' | 'backwardData' | 'backwardFilter';
/** The GEMMs' input precision (docs/cpu-engine.md, bf16): fp32, or bf16 inputs with fp32 accumulation. */
export type CpuPrecision = 'fp32' | 'bf16';
/** The bf16 GEMM's micro-kernel: AMX-BF16 tiles or AVX512_BF16's vdpbf16ps. */
export type CpuBf16Kernel = 'amx' | 'avx512bf16';

/** The CPU addon's engine: the shared surface (native-engine.ts) plus its own two methods. */
export interface CpuAddonEngine extends AddonEngine {
  /** Bounds the allocation cache at `bytes` (-1: the default bound). */
  setCacheLimit(bytes: number): void;
  /** Test hook: a queued op that sleeps `ms` milliseconds. */
  sleep(ms: number): void;
}

export interface NativeAddon {
  NativeEngine: new (index: number) => CpuAddonEngine;
  NativeBuffer: { prototype: object };
  isa(): {
    active: CpuIsa; detected: CpuIsa;
    gemm: { kernel: string; mr: number; nr: number; kc: number; mc: number; nc: number };
  };
  setIsa(isa: CpuIsa): void;
  peakGflops(threads: number, seconds: number): number;
  setConvAlgorithm(pass: CpuConvPass, algorithm?: CpuConvAlgorithm): CpuConvAlgorithm;
  convAlgorithm(pass: CpuConvPass, geometry: ConvGeometry): string;
  precision(): {
    requested: CpuPrecision; active: CpuPrecision; bf16Supported: boolean;
    bf16Kernel: CpuBf16Kernel | 'none'; bf16KernelDetected: CpuBf16Kernel | 'none';
    reason: string | null; envInvalid: string | null;
  };
  setPrecision(precision: CpuPrecision): CpuPrecision;
  setBf16Kernel(kernel: CpuBf16Kernel): void;
}

export const ADDON_PATH = '../../build/Release/alexnet_cpu.node';

let loaded: NativeAddon | undefined;
let reason: string | undefined;
try {
  const require = createRequire(import.meta.url);
  loaded = require(ADDON_PATH) as NativeAddon;
} catch (err) {
  const msg = err instanceof Error ? err.message.split('\n')[0] : String(err);
  reason = `the native CPU engine (build/Release/alexnet_cpu.node) could not be loaded: ${msg}. ` +
    'Build it with `npm run build -w @alexnet/tensor` (needs a C++17 compiler, make and python3).';
}

/** Why the addon is unavailable, or undefined when it loaded. */
export const addonLoadError: string | undefined = reason;

/** The addon; throws the load error when it is missing. */
export function nativeAddon(): NativeAddon {
  if (!loaded) throw new Error(reason ?? 'the native CPU engine is not loaded');
  return loaded;
}
