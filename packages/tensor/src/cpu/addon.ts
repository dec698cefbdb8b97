/**
 * Loads the native CPU engine (build/Release/alexnet_cpu.node, built by scripts/build-native.mjs).
 * The path is relative to this module and the same from src/cpu and dist/cpu. A missing or broken
 * addon is not an error at import: `addonLoadError` says why, and the cpu backend reports it.
 */
import { createRequire } from 'node:module';

/** Opaque native buffer handle (a NativeBuffer). */
export interface NativeBufferHandle {
  readonly length: number;
  readonly dtype: string;
  readonly freed: boolean;
}

export interface NativeConvGeometry {
  n: number; c: number; h: number; w: number; k: number; r: number; s: number;
  strideH: number; strideW: number; padH: number; padW: number; groups: number; outH: number; outW: number;
}

export interface NativePoolGeometry {
  n: number; c: number; h: number; w: number; kh: number; kw: number;
  strideH: number; strideW: number; padH: number; padW: number; outH: number; outW: number;
}

export interface NativeLrnParams { size: number; alpha: number; beta: number; k: number }

type B = NativeBufferHandle;

/** The native engine class; argument order mirrors the Engine interface (src/backend.ts). */
export interface NativeEngine {
  alloc(dtype: string, length: number): B;
  free(buf: B): void;
  write(buf: B, data: ArrayBufferView, offset?: number): void;
  read(buf: B, offset?: number, length?: number): Promise<ArrayBuffer>;
  readSync(buf: B, offset?: number, length?: number): ArrayBuffer;
  synchronize(): Promise<void>;
  synchronizeSync(): void;
  recordEvent(): number;
  waitEvent(engine: NativeEngine, sequence: number): void;
  setThreads(n: number): void;
  getThreads(): number;
  stats(): {
    bytes: number; buffers: number; peakBytes: number; cachedBytes: number; cachedBuffers: number; cacheLimit: number;
  };
  trimCache(): number;
  setCacheLimit(bytes: number): void;
  fill(buf: B, value: number): void;
  random(buf: B, dist: string, seed: number, offset: number, a: number, b: number): void;
  copy(src: B, srcOffset: number, dst: B, dstOffset: number, length: number): void;
  copyToPeer(src: B, peer: NativeEngine, dst: B, length: number): void;
  channelCopy(src: B, dst: B, n: number, hw: number, srcC: number, srcOffset: number, dstC: number,
    dstOffset: number, count: number): void;
  gemm(transA: boolean, transB: boolean, m: number, n: number, k: number, alpha: number, a: B, b: B,
    beta: number, c: B): void;
  axpy(alpha: number, x: B, y: B): void;
  scale(alpha: number, x: B): void;
  add(a: B, b: B, out: B): void;
  biasAdd(y: B, bias: B, n: number, c: number, hw: number): void;
  biasGrad(dy: B, db: B, n: number, c: number, hw: number, beta: number): void;
  conv2dForward(x: B, w: B, bias: B | null, y: B, g: NativeConvGeometry): void;
  conv2dBackwardData(dy: B, w: B, dx: B, g: NativeConvGeometry): void;
  conv2dBackwardFilter(x: B, dy: B, dw: B, db: B | null, g: NativeConvGeometry, beta: number): void;
  reluForward(x: B, y: B): void;
  reluBackward(y: B, dy: B, dx: B): void;
  lrnForward(x: B, y: B, p: NativeLrnParams, n: number, c: number, hw: number): void;
  lrnBackward(x: B, y: B, dy: B, dx: B, p: NativeLrnParams, n: number, c: number, hw: number): void;
  maxPoolForward(x: B, y: B, argmax: B, g: NativePoolGeometry): void;
  maxPoolBackward(dy: B, argmax: B, dx: B, g: NativePoolGeometry): void;
  dropoutForward(x: B, y: B, p: number, seed: number, offset: number): void;
  dropoutBackward(dy: B, dx: B, p: number, seed: number, offset: number): void;
  softmaxCrossEntropy(logits: B, labels: B, loss: B, dlogits: B | null, n: number, c: number): void;
  softmax(x: B, y: B, n: number, c: number): void;
  topkCorrect(logits: B, labels: B, out: B, n: number, c: number, k: number): void;
  sgdUpdate(w: B, g: B, v: B, p: { lr: number; momentum: number; weightDecay: number; form: string }): void;
  /** Test hook: a queued op that sleeps `ms` milliseconds. */
  sleep(ms: number): void;
  destroy(): void;
}

export type CpuIsa = 'avx512' | 'avx2' | 'portable';

export interface NativeAddon {
  NativeEngine: new (index: number) => NativeEngine;
  isa(): {
    active: CpuIsa; detected: CpuIsa;
    gemm: { kernel: string; mr: number; nr: number; kc: number; mc: number; nc: number };
  };
  setIsa(isa: CpuIsa): void;
  peakGflops(threads: number, seconds: number): number;
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
