// The native Philox (native/common/philox.h) against the normative TypeScript mapping (src/philox.ts):
// uniform draws bit-exact, normal draws to float32 rounding (libm vs V8 transcendental functions may
// differ in the last double bit), dropout masks identical to uniformAt, for any thread count.
import { afterAll, describe, expect, it } from 'vitest';
import { fillNormal, fillUniform, uniformAt } from '../philox.js';
import { CpuEngine } from './index.js';

const engine = new CpuEngine(0);
afterAll(() => engine.destroy());

describe('philox on the cpu engine', () => {
  for (const threads of [1, 2]) {
    it(`uniform is bit-exact (offsets across blocks, seeds above 2^32, ${threads} thread(s))`, () => {
      engine.setThreads(threads);
      for (const [seed, offset, n, a, b] of [
        [0, 0, 1000, 0, 1], [42, 3, 4097, -1, 1], [2 ** 40 + 12345, 2 ** 33 + 1, 513, -0.01, 0.01],
        [2 ** 53 - 1, 7, 100, 5, 6], [1234, 1 << 20, 70000, -3, 7],
      ] as const) {
        const buf = engine.alloc('float32', n);
        engine.random(buf, 'uniform', seed, offset, a, b);
        const want = new Float32Array(n);
        fillUniform(want, seed, offset, a, b);
        expect(engine.readSync(buf), `seed ${seed} offset ${offset}`).toEqual(want);
        engine.free(buf);
      }
    });
  }

  it('normal matches to float32 rounding', () => {
    engine.setThreads(2);
    for (const [seed, offset, n, mean, std] of [[7, 0, 5000, 0, 1], [2 ** 35 + 3, 5, 1001, 0.5, 0.01]] as const) {
      const buf = engine.alloc('float32', n);
      engine.random(buf, 'normal', seed, offset, mean, std);
      const want = new Float32Array(n);
      fillNormal(want, seed, offset, mean, std);
      const got = engine.readSync(buf) as Float32Array;
      let exact = 0;
      for (let i = 0; i < n; i++) {
        if (got[i] === want[i]) exact++;
        else expect(Math.abs(got[i]! - want[i]!), `element ${i}`).toBeLessThanOrEqual(Math.abs(want[i]!) * 2 ** -23 + 1e-30);
      }
      expect(exact / n).toBeGreaterThan(0.999);
      engine.free(buf);
    }
  });

  it('dropout regenerates the mask from (seed, offset), forward and backward alike', () => {
    const n = 3001, p = 0.5, seed = 99, offset = 12345;
    const x = new Float32Array(n).map((_, i) => i + 1);
    const X = engine.alloc('float32', n), Y = engine.alloc('float32', n), DX = engine.alloc('float32', n);
    engine.write(X, x);
    engine.dropoutForward(X, Y, p, seed, offset);
    engine.dropoutBackward(X, DX, p, seed, offset);
    const y = engine.readSync(Y), dx = engine.readSync(DX);
    let kept = 0;
    for (let i = 0; i < n; i++) {
      const keep = uniformAt(seed, offset + i) >= p;
      expect(y[i]).toBe(keep ? Math.fround(x[i]! / (1 - p)) : 0);
      kept += keep ? 1 : 0;
    }
    expect(dx).toEqual(y);
    expect(kept / n).toBeGreaterThan(0.45);
    expect(kept / n).toBeLessThan(0.55);
    for (const b of [X, Y, DX]) engine.free(b);
  });
});
