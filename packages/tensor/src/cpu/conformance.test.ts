// The shared conformance suite (src/conformance) on the native CPU backend, and its random shapes
// and NaN/tie cases again on every ISA path this machine has (the suite runs on the best one), and the
// stride-1 3x3 and 5x5 convolutions (which the engine computes by Winograd) on every path too.
import { afterAll, describe, expect, it } from 'vitest';
import { checkCases, nanAndTieCases, randomCases, runConformanceSuite, stride1ConvCases, TestRng } from '../conformance/index.js';
import { registerBackend } from '../device.js';
import { CpuEngine, cpuBackend, cpuIsa, cpuIsaPaths, setCpuIsa } from './index.js';

registerBackend(cpuBackend);
runConformanceSuite('cpu');

describe.each(cpuIsaPaths())('conformance cases on the %s path', (isa) => {
  const best = cpuIsa().detected;
  const e = new CpuEngine(0);
  afterAll(() => { setCpuIsa(best); e.destroy(); });
  for (const [title, make] of [['random shapes', (r: TestRng) => randomCases(r, 2)], ['NaN and ties', nanAndTieCases], ['stride-1 convolutions (Winograd)', stride1ConvCases]] as const) {
    it(`${title} match the float64 reference`, () => {
      setCpuIsa(isa);
      try {
        const failures = checkCases(e, make(new TestRng(title.length * 104729)));
        expect(failures, failures.join('\n')).toEqual([]);
      } finally {
        setCpuIsa(best);
      }
    });
  }
});
