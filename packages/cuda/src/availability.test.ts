// Loading on a machine without a GPU (or driver, or nvcc at install): the package loads, says why
// CUDA is unavailable, and asking for a CUDA device is an error that carries that reason.
import { describe, expect, it } from 'vitest';
import { device, listBackends } from '@alexnet/tensor';
import { cuda, cudaBackend, cudaEmuBackend } from './index.js';

describe('cuda availability', () => {
  it('registers both backends on import', () => {
    const names = listBackends().map((b) => b.name);
    expect(names).toContain('cuda');
    expect(names).toContain('cuda-emu');
    expect(cudaBackend.name).toBe('cuda');
    expect(cudaEmuBackend.availability().available).toBe(true);
  });

  it.skipIf(cuda.available())('without a usable GPU: available() is false with the reason, and cuda:0 throws it', () => {
    expect(cuda.available()).toBe(false);
    const reason = cuda.reason();
    expect(typeof reason).toBe('string');
    expect(reason!.length).toBeGreaterThan(10);
    if (cuda.buildInfo().cuda?.built) {
      // Built with nvcc, so the runtime loaded: the reason is the driver's (or no device).
      expect(reason).toMatch(/driver|no CUDA device|cudaGetDeviceCount/i);
    } else {
      expect(reason).toMatch(/built without CUDA/);
    }
    expect(cuda.deviceCount()).toBe(0);
    expect(cudaBackend.availability()).toEqual({ available: false, reason });
    expect(() => device('cuda:0')).toThrow(reason);
    expect(() => device('cuda:0')).toThrow(/Device "cuda:0" is not available/);
  });

  it.runIf(cuda.available())('with a GPU: at least two logical devices', () => {
    expect(cuda.deviceCount()).toBeGreaterThanOrEqual(2);
    expect(device('cuda:1').engine.backend).toBe('cuda');
  });
});
