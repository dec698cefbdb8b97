/**
 * The arithmetic precision of a run (`--precision fp32|bf16`): bf16 is the CPU engine's mode in which
 * the GEMMs of the dense layers and of the im2col convolutions take bfloat16 inputs (rounded to
 * nearest even) and sum in fp32; the weights the optimizer updates (the master weights), the
 * activations and every other op stay fp32 (docs/cpu-engine.md, bf16). Asked for on a device or a
 * CPU that cannot do it, it is refused at the start with the reason, never silently replaced.
 */
import { cpuBackend, cpuPrecision, setCpuPrecision } from '@alexnet/tensor';

export type Precision = 'fp32' | 'bf16';
export const PRECISIONS: readonly Precision[] = ['fp32', 'bf16'];

export class PrecisionError extends Error {
  override name = 'PrecisionError';
}

/**
 * Puts the CPU engine in `requested` (default: ALEXNET_CPU_PRECISION's value, else fp32) for the given devices, and returns the precision in effect. bf16 is refused, with the reason,
 * for a device that is not the CPU engine's, without the CPU engine, or on a CPU without AVX512_BF16.
 */
export function applyPrecision(requested: Precision | undefined, devices: readonly string[]): Precision {
  if (requested !== undefined && !PRECISIONS.includes(requested)) {
    throw new PrecisionError(`expected the precision fp32 or bf16 but received "${String(requested)}"`);
  }
  const cpuLoaded = cpuBackend.availability().available;
  if (cpuLoaded) cpuPrecision(); // throws when ALEXNET_CPU_PRECISION holds another value
  const want: Precision = requested ?? (process.env.ALEXNET_CPU_PRECISION === 'bf16' ? 'bf16' : 'fp32');
  if (want === 'fp32') {
    if (cpuLoaded) setCpuPrecision('fp32');
    return 'fp32';
  }
  const other = devices.find((d) => !/^cpu(:\d+)?$/.test(d));
  if (other) throw new PrecisionError(`--precision bf16 is a mode of the CPU engine, but ${other} is not a cpu device; use --precision fp32 there`);
  if (!cpuLoaded) throw new PrecisionError(`--precision bf16 needs the native CPU engine, which is not loaded: ${cpuBackend.availability().reason ?? ''}`.trim());
  if (setCpuPrecision('bf16') !== 'bf16') {
    const why = cpuPrecision().reason ?? 'the engine did not take it';
    setCpuPrecision('fp32');
    throw new PrecisionError(`--precision bf16 was asked for, but ${why}; run with --precision fp32`);
  }
  return 'bf16';
}
