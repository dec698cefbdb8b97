// Native code never trusts its caller: bad arguments are JavaScript errors naming the argument,
// never crashes; errors inside queued ops surface at the next read or synchronize.
import { afterAll, describe, expect, it } from 'vitest';
import type { DeviceBuffer } from '../backend.js';
import { CpuEngine } from './index.js';
import { nativeAddon } from './addon.js';
import { convGeometry, poolGeometry } from '../geometry.js';

const e = new CpuEngine(0);
const other = new CpuEngine(1);
afterAll(() => { e.destroy(); other.destroy(); });

describe('argument validation', () => {
  it('buffers too small for the sizes given name the argument and the sizes', () => {
    const g = convGeometry([1, 3, 227, 227], [96, 3, 11, 11], { stride: 4 });
    const x = e.alloc('float32', 3 * 227 * 227), w = e.alloc('float32', 100), y = e.alloc('float32', 96 * 55 * 55);
    expect(() => e.conv2dForward(x, w, null, y, g)).toThrow(
      'conv2dForward: w holds 100 elements but the geometry needs 34848');
    const small = e.alloc('float32', 4), big = e.alloc('float32', 64);
    expect(() => e.gemm(false, false, 4, 4, 4, 1, small, big, 0, big)).toThrow(/gemm: a holds 4 elements but m \* k is 16/);
    expect(() => e.gemm(true, true, 4, 4, 4, 1, big, small, 0, big)).toThrow(/gemm: b holds 4/);
    expect(() => e.gemm(false, false, 4, 4, 4, 1, big, big, 0, small)).toThrow(/gemm: c holds 4/);
    expect(() => e.lrnForward(big, small, { size: 5, alpha: 1, beta: 0.75, k: 2 }, 1, 4, 16)).toThrow(/lrnForward: y holds 4/);
    expect(() => e.axpy(1, small, big)).toThrow(/axpy: x holds 4 elements but y holds 64/);
    expect(() => e.channelCopy(big, small, 1, 4, 4, 0, 4, 1, 4)).toThrow(/dstOffset \+ count/);
    expect(() => e.copy(small, 2, big, 0, 3)).toThrow(/copy: src holds 4/);
    expect(() => e.write(small, new Float32Array(3), 2)).toThrow(/write: offset 2 \+ data.length 3 exceeds/);
    expect(() => e.readSync(small, 3, 2)).toThrow(/readSync/);
    expect(() => e.write(small, new Int32Array(2))).toThrow(/float32/);
    for (const b of [x, w, y, small, big]) e.free(b);
  });

  it('wrong types, inconsistent geometry, foreign and freed buffers are errors', () => {
    const a = e.alloc('float32', 16), lbl = e.alloc('int32', 4), foreign = other.alloc('float32', 16);
    const bad = [
      () => e.gemm(false, false, 4, 4, 4, 1, {} as DeviceBuffer, a, 0, a),
      () => e.gemm('no' as unknown as boolean, false, 4, 4, 4, 1, a, a, 0, a),
      () => e.gemm(false, false, -1, 4, 4, 1, a, a, 0, a),
      () => e.gemm(false, false, 1.5, 4, 4, 1, a, a, 0, a),
      () => e.gemm(false, false, 2 ** 40, 2 ** 40, 4, 1, a, a, 0, a),
      () => e.gemm(false, false, 4, 4, 4, 1, lbl, a, 0, a),
      () => e.scale(2, foreign),
      () => e.conv2dForward(a, a, null, a, { ...convGeometry([1, 1, 4, 4], [1, 1, 3, 3]), outH: 3 }),
      () => e.conv2dForward(a, a, null, a, { ...convGeometry([1, 3, 4, 4], [2, 3, 1, 1]), groups: 2 }),
      () => e.conv2dForward(a, a, null, a, { ...convGeometry([1, 1, 4, 4], [1, 1, 3, 3]), strideH: 0 }),
      () => e.conv2dForward(a, a, null, a, null as never),
      () => e.conv2dForward(a, a, null, a, convGeometry([1, 4, 40000, 40000], [1, 4, 1, 1])),
      () => e.maxPoolForward(a, a, a, poolGeometry([1, 1, 4, 4], { size: 2 })),
      () => e.random(a, 'cauchy' as 'normal', 1, 0, 0, 1),
      () => e.random(a, 'uniform', -1, 0, 0, 1),
      () => e.random(lbl, 'uniform', 1, 0, 0, 1),
      () => e.dropoutForward(a, a, 1.5, 1, 0),
      () => e.sgdUpdate(a, a, a, { lr: 1, momentum: 0, weightDecay: 0, form: 'adam' as 'paper' }),
      () => e.setThreads(0),
      () => e.alloc('float64', 4),
      () => e.alloc('complex' as 'float32', 4),
      () => e.alloc('float32', -1),
      () => e.waitEvent({ engine: e } as never),
      () => e.copyToPeer(a, other, a, 16),
      () => e.softmaxCrossEntropy(a, lbl, a, null, 8, 2),
      () => e.topkCorrect(a, lbl, a, 4, 4, 1),
    ];
    bad.forEach((f, i) => expect(f, `case ${i}`).toThrow());
    const freed = e.alloc('float32', 16);
    e.free(freed);
    expect(() => e.scale(2, freed)).toThrow(/x was freed/);
    e.free(freed); // idempotent
    for (const b of [a, lbl]) e.free(b);
    other.free(foreign);
  });

  it('the raw addon rejects forged handles and missing arguments', () => {
    const addon = nativeAddon();
    const raw = new addon.NativeEngine(0);
    const b = raw.alloc('float32', 8);
    const forged = Object.create(Object.getPrototypeOf(b));
    expect(() => raw.scale(1, forged)).toThrow();
    expect(() => raw.scale(1, raw as never)).toThrow(/device buffer/);
    expect(() => (raw.gemm as (...a: unknown[]) => void)()).toThrow();
    expect(() => raw.waitEvent(b as never, 0)).toThrow(/cpu engine/);
    const raw2 = new addon.NativeEngine(1);
    expect(() => raw.waitEvent(raw2, 1e9)).toThrow(/beyond/);
    raw2.destroy();
    raw.waitEvent(raw2, 1); // a destroyed engine has nothing left to wait for
    raw.destroy();
    expect(() => raw.alloc('float32', 1)).toThrow(/destroyed/);
    raw.free(b); // after destroy: still fine
  });

  it('an error inside a queued op surfaces at the next read, and the engine keeps working', async () => {
    const g = poolGeometry([1, 1, 4, 4], { size: 2 });
    const dy = e.alloc('float32', 4), am = e.alloc('int32', 4), dx = e.alloc('float32', 16);
    e.fill(dy, 1);
    e.write(am, Int32Array.of(0, 99999, -5, 3)); // argmax is device data: never trusted
    e.maxPoolBackward(dy, am, dx, g);
    expect(() => e.readSync(dx)).toThrow(/2 argmax entries were out of range/);
    expect(Array.from(e.readSync(dx)).slice(0, 4)).toEqual([1, 0, 0, 1]); // the error was reported once
    e.maxPoolBackward(dy, am, dx, g);
    await expect(e.synchronize()).rejects.toThrow(/out of range/);
    await e.synchronize();
    for (const b of [dy, am, dx]) e.free(b);
  });
});
