// The Winograd convolutions (native/cpu/kernels/winograd.cpp) against the float64 reference, every
// variant forced on every ISA path, forward, data gradient and filter gradient, with each variant's own
// tolerance (norm-wise relative error; the conformance suite holds every algorithm to 1e-4):
//   direct (im2col + GEMM) 1e-5, F(2x2,3x3) 1e-5, F(4x4,3x3) 5e-5, F(2x2,5x5) 5e-5
// (measured on uniform inputs: about 3e-7, 3e-7 (filter gradient 4e-7), 4e-6 and 3e-6 (filter
// gradient up to 1e-5)).
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { checkCases, stride1ConvCases, stridedConvCases, TestRng } from '../conformance/index.js';
import { convGeometry } from '../geometry.js';
import { CpuEngine, cpuConvAlgorithm, cpuIsa, cpuIsaPaths, setCpuConvAlgorithm, setCpuIsa, type CpuConvAlgorithm } from './index.js';

const engine = new CpuEngine(0);
engine.setThreads(2);
const best = cpuIsa().detected;
afterEach(() => {
  setCpuIsa(best);
  setCpuConvAlgorithm('forward', 'auto');
  setCpuConvAlgorithm('backwardData', 'auto');
  setCpuConvAlgorithm('backwardFilter', 'auto');
});
afterAll(() => engine.destroy());

const variants: [CpuConvAlgorithm, number, number][] = [
  // algorithm, tolerance for 3x3 kernels, for 5x5 kernels
  ['direct', 1e-5, 1e-5],
  ['winograd2', 1e-5, 5e-5],
  ['winograd4', 5e-5, 5e-5],
];

describe.each(cpuIsaPaths())('stride-1 convolutions on %s', (isa) => {
  for (const [algo, tol3, tol5] of variants) {
    it(`${algo} matches the float64 reference (3x3 within ${tol3}, 5x5 within ${tol5})`, () => {
      setCpuIsa(isa);
      setCpuConvAlgorithm('forward', algo);
      setCpuConvAlgorithm('backwardData', algo);
      setCpuConvAlgorithm('backwardFilter', algo);
      const cases = stride1ConvCases(new TestRng(4242));
      const three = cases.filter((c) => / 3x3 /.test(c.name)), five = cases.filter((c) => / 5x5 /.test(c.name));
      expect(three.length).toBeGreaterThan(0);
      expect(five.length).toBeGreaterThan(0);
      const failures = [...checkCases(engine, three, tol3), ...checkCases(engine, five, tol5)];
      expect(failures, failures.join('\n')).toEqual([]);
    });
  }

  it('the automatic choice matches the float64 reference within 1e-4', () => {
    setCpuIsa(isa);
    const failures = checkCases(engine, stride1ConvCases(new TestRng(99)), 1e-4);
    expect(failures, failures.join('\n')).toEqual([]);
  });
});

describe.each(cpuIsaPaths())('strided convolutions as stride-1 Winograd of their phases (space to depth) on %s', (isa) => {
  for (const [algo, tol3] of variants) {
    it(`${algo} matches the float64 reference within ${tol3}`, () => {
      setCpuIsa(isa);
      setCpuConvAlgorithm('forward', algo);
      setCpuConvAlgorithm('backwardFilter', algo);
      const failures = checkCases(engine, stridedConvCases(new TestRng(77)), tol3);
      expect(failures, failures.join('\n')).toEqual([]);
    });
  }
});

it('cpuConvAlgorithm says what runs: conv1 (11x11 stride 4) by space to depth, conv3 by Winograd by its tiles over the batch, the rest direct', () => {
  const conv1 = convGeometry([8, 3, 227, 227], [96, 3, 11, 11], { stride: 4 });
  const conv3 = (n: number) => convGeometry([n, 256, 13, 13], [384, 256, 3, 3], { padding: 1 });
  expect(cpuConvAlgorithm('forward', conv1)).toBe('space-to-depth winograd4');
  expect(cpuConvAlgorithm('backwardFilter', conv1)).toBe('space-to-depth winograd4');
  expect(cpuConvAlgorithm('backwardData', conv1)).toBe('direct');
  // By the tiles over the batch: F(4x4) from 256 tiles of 4x4 (batch 16 on 13x13), F(2x2) from 128
  // tiles of 2x2 (batch 3), im2col + GEMM below (batch 1 and 2: inference one image at a time).
  for (const pass of ['forward', 'backwardData', 'backwardFilter'] as const) {
    expect(cpuConvAlgorithm(pass, conv3(128))).toBe('winograd4');
    expect(cpuConvAlgorithm(pass, conv3(16))).toBe('winograd4');
    expect(cpuConvAlgorithm(pass, conv3(15))).toBe('winograd2');
    expect(cpuConvAlgorithm(pass, conv3(3))).toBe('winograd2');
    expect(cpuConvAlgorithm(pass, conv3(2))).toBe('direct');
    expect(cpuConvAlgorithm(pass, conv3(1))).toBe('direct');
  }
  // conv1's phases at batch 1: 196 tiles of 4x4 (55 x 55), so F(2x2)
  expect(cpuConvAlgorithm('forward', convGeometry([1, 3, 227, 227], [96, 3, 11, 11], { stride: 4 }))).toBe('space-to-depth winograd2');
  // conv2 (5x5) by F(2x2, 5x5) at any batch
  expect(cpuConvAlgorithm('forward', convGeometry([1, 96, 27, 27], [256, 48, 5, 5], { padding: 2, groups: 2 }))).toBe('winograd2');
  // grouped, or too few channels in the phases (2 x 2 x 2 = 8 < 16): im2col + GEMM
  expect(cpuConvAlgorithm('forward', convGeometry([2, 8, 15, 15], [16, 4, 5, 5], { stride: 2, groups: 2 }))).toBe('direct');
  expect(cpuConvAlgorithm('forward', convGeometry([2, 2, 15, 15], [16, 2, 5, 5], { stride: 2 }))).toBe('direct');
  setCpuConvAlgorithm('forward', 'direct');
  expect(cpuConvAlgorithm('forward', conv1)).toBe('direct');
  setCpuConvAlgorithm('forward', 'winograd2');
  expect(cpuConvAlgorithm('forward', conv1)).toBe('space-to-depth winograd2');
  expect(() => cpuConvAlgorithm('sideways' as 'forward', conv1)).toThrow(/pass/);
});

it('setCpuConvAlgorithm returns the previous setting and rejects unknown names', () => {
  expect(setCpuConvAlgorithm('forward', 'winograd2')).toBe('auto');
  expect(setCpuConvAlgorithm('forward', 'auto')).toBe('winograd2');
  expect(() => setCpuConvAlgorithm('forward', 'fft' as CpuConvAlgorithm)).toThrow(/algorithm/);
});
