/**
 * The native CPU backend: AVX-512 / AVX2 / portable kernels chosen at run time, one queue thread
 * and a worker pool per engine. Any number of logical devices ("cpu:0", "cpu:1", ...): the paper's
 * two-GPU split (§3.2) runs as two CPU engines, one thread each, side by side.
 */
import type { Backend, ConvGeometry } from '../backend.js';
import {
  addonLoadError, nativeAddon, type CpuConvAlgorithm, type CpuConvPass, type CpuIsa, type CpuPrecision,
  type CpuBf16Kernel,
} from './addon.js';
import { CpuEngine } from './engine.js';

export { CpuEngine } from './engine.js';
export type { CpuBf16Kernel, CpuConvAlgorithm, CpuConvPass, CpuIsa, CpuPrecision } from './addon.js';

/** Logical CPU devices offered (they share the machine's cores; setThreads divides them). */
export const CPU_DEVICE_COUNT = 64;

export const cpuBackend: Backend = {
  name: 'cpu',
  hostThreaded: true,
  availability() {
    return addonLoadError === undefined ? { available: true } : { available: false, reason: addonLoadError };
  },
  deviceCount() {
    return addonLoadError === undefined ? CPU_DEVICE_COUNT : 0;
  },
  createEngine(index: number) {
    if (!Number.isInteger(index) || index < 0 || index >= CPU_DEVICE_COUNT) {
      throw new RangeError(`Expected a cpu device index in [0, ${CPU_DEVICE_COUNT}) but received ${String(index)}`);
    }
    return new CpuEngine(index);
  },
};

/** The instruction set the kernels use now, the best one this CPU has, and the GEMM blocking. */
export function cpuIsa(): ReturnType<ReturnType<typeof nativeAddon>['isa']> {
  return nativeAddon().isa();
}

/** The ISA paths this machine can run: the detected one and every lower one (tests run each). */
export function cpuIsaPaths(): CpuIsa[] {
  const order: CpuIsa[] = ['portable', 'avx2', 'avx512'];
  return order.slice(0, order.indexOf(cpuIsa().detected) + 1);
}

/**
 * Caps the kernels' instruction set for this process (tests cover every path on one machine; the
 * environment variable ALEXNET_CPU_ISA=avx512|avx2|portable does the same at load).
 */
export function setCpuIsa(isa: CpuIsa): void {
  nativeAddon().setIsa(isa);
}

/** GFLOP/s of an FMA loop with no memory traffic on `threads` threads: the machine's peak. */
export function cpuPeakGflops(threads: number, seconds = 0.5): number {
  return nativeAddon().peakGflops(threads, seconds);
}

/**
 * The algorithm of the stride-1 3x3 and 5x5 convolutions for one pass ('forward', 'backwardData',
 * 'backwardFilter'), process-wide (benchmarks and
 * tests compare them in one run): 'auto' (the measured choice, for kernels with at least 16 channels
 * per group in and out: F(2x2,5x5) for 5x5; for 3x3 by the tiles over the batch, Winograd F(4x4,3x3)
 * from 256 tiles of 4x4, F(2x2,3x3) from 128 tiles of 2x2, im2col + GEMM below), 'direct' (im2col + GEMM),
 * 'winograd2' (F(2x2,3x3); F(2x2,5x5) for 5x5) or 'winograd4' (F(4x4,3x3); F(2x2,5x5) for 5x5).
 * ALEXNET_CONV_WINOGRAD=0|2|4 sets the default. Returns the previous setting.
 */
export function setCpuConvAlgorithm(pass: CpuConvPass, algorithm: CpuConvAlgorithm): CpuConvAlgorithm {
  return nativeAddon().setConvAlgorithm(pass, algorithm);
}

/**
 * What the engine runs for a convolution (convGeometry of its shapes) and pass, under the current
 * setting: 'direct' (im2col + GEMM), 'winograd2' or 'winograd4' (stride 1), or 'space-to-depth
 * winograd2' / 'space-to-depth winograd4': a strided convolution whose kernel spans 3 strides (conv1:
 * 11x11, stride 4) as the stride-1 3x3 convolution of the input's stride x stride phases (forward and
 * filter gradient; its data gradient stays direct). The setting of setCpuConvAlgorithm applies to it.
 */
export function cpuConvAlgorithm(pass: CpuConvPass, geometry: ConvGeometry): string {
  return nativeAddon().convAlgorithm(pass, geometry);
}

/** What cpuPrecision() reports. */
export interface CpuPrecisionState {
  /** What was asked for (setCpuPrecision, or ALEXNET_CPU_PRECISION at load). */
  requested: CpuPrecision;
  /** What the GEMMs use now. */
  active: CpuPrecision;
  /** Whether this CPU has AVX512_BF16 (vdpbf16ps). */
  bf16Supported: boolean;
  /** The bf16 GEMM's micro-kernel now, and the best this CPU has ('none' without AVX512_BF16). */
  bf16Kernel: CpuBf16Kernel | 'none';
  bf16KernelDetected: CpuBf16Kernel | 'none';
  /** Why bf16 is not in effect although it was requested, else undefined. */
  reason?: string;
}

/**
 * The GEMMs' input precision now. Throws when ALEXNET_CPU_PRECISION holds something other than
 * fp32 or bf16 (the engine then ignored it and uses fp32).
 */
export function cpuPrecision(): CpuPrecisionState {
  const p = nativeAddon().precision();
  if (p.envInvalid !== null) {
    throw new RangeError(`ALEXNET_CPU_PRECISION must be 'fp32' or 'bf16' but is '${p.envInvalid}'`);
  }
  return {
    requested: p.requested, active: p.active, bf16Supported: p.bf16Supported,
    bf16Kernel: p.bf16Kernel, bf16KernelDetected: p.bf16KernelDetected,
    ...(p.reason === null ? {} : { reason: p.reason }),
  };
}

/**
 * The precision of the GEMMs' inputs for the dense layers and the im2col convolutions (all three
 * passes), process-wide, read when each op runs (set it before queuing work): 'fp32' (the default,
 * bit-identical to an engine without this switch) or 'bf16' (operands rounded to bfloat16, nearest
 * even, products summed in fp32 by AVX512_BF16's vdpbf16ps; outputs, weights and every other op
 * stay fp32: docs/cpu-engine.md states the error). ALEXNET_CPU_PRECISION=fp32|bf16 sets it at load.
 * Returns the precision in effect: 'fp32' after asking for 'bf16' on a CPU without AVX512_BF16 or
 * with the kernels capped below AVX-512 (cpuPrecision().reason says which). Unknown values throw.
 */
export function setCpuPrecision(precision: CpuPrecision): CpuPrecision {
  if (precision !== 'fp32' && precision !== 'bf16') {
    throw new RangeError(`Expected the CPU precision 'fp32' or 'bf16' but received ${JSON.stringify(precision)}`);
  }
  return nativeAddon().setPrecision(precision);
}

/**
 * The bf16 GEMM's micro-kernel, process-wide: 'amx' (AMX-BF16 tiles, the default where the CPU has
 * them and Linux grants the tile state) or 'avx512bf16' (vdpbf16ps in zmm registers); the same
 * numbers up to the order of fp32 additions. ALEXNET_BF16_KERNEL=avx512bf16 sets it at load. For
 * tests and benchmarks; throws when the CPU lacks the kernel.
 */
export function setCpuBf16Kernel(kernel: CpuBf16Kernel): void {
  nativeAddon().setBf16Kernel(kernel);
}
