// The raw cuda-emu addon (native/cuda/addon.cpp, what @alexnet/tensor's NativeEngine wraps) under
// hostile calls, in a child process (see src/hostile.test.ts) so that a crash or a hang fails the test
// instead of the runner: options objects whose getters destroy the engine or free a buffer mid-call,
// methods and accessors called on the wrong `this` (the CPU addon's objects included), zero-size
// geometries with counts of 2^31 and more, size products that overflow 64 bits, and LRN memory. The
// cases shared with the CPU addon are in @alexnet/tensor's test/native-cases.mjs (both addons read
// their arguments through native/common/ops.h). Prints a JSON summary { calls, failures }.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const require = createRequire(import.meta.url);
const here = dirname(fileURLToPath(import.meta.url));
const tensorRoot = dirname(require.resolve('@alexnet/tensor/package.json'));
const { Cases, hostileOptions, lrnMemoryBound, wrongThis, countCases, elementwiseCases, readFloats } =
  await import(pathToFileURL(join(tensorRoot, 'test', 'native-cases.mjs')).href);
const A = require(join(here, '..', 'build', 'Release', 'alexnet_cuda_emu.node'));
let cpu;
try {
  cpu = require(join(tensorRoot, 'build', 'Release', 'alexnet_cpu.node'));
} catch { cpu = undefined; } // the CPU addon is optional here: its cross-addon cases are skipped

const cases = new Cases();
const newEngine = () => new A.NativeEngine(0);

// No per-thread scratch here (LRN slides its window sums; backward's t is one [n, c, hw] workspace).
lrnMemoryBound(cases, newEngine);
hostileOptions(cases, newEngine, /destroyed while the arguments were read/, /was freed while the arguments were read/);
wrongThis(cases, A, newEngine, 'cuda');

// The other addon's objects: a CPU engine or buffer is never a CUDA one (and the CPU addon's
// accessors refuse a CUDA engine as `this`).
if (cpu) {
  const e = newEngine(), x = e.alloc('float32', 4), ce = new cpu.NativeEngine(0), cb = ce.alloc('float32', 4);
  for (const key of ['length', 'dtype', 'freed']) {
    const get = Object.getOwnPropertyDescriptor(cpu.NativeBuffer.prototype, key).get;
    cases.throws(`cpu NativeBuffer.${key} read on a cuda-emu engine`, () => get.call(e), /Expected a cpu device buffer as this/);
  }
  for (const m of ['alloc', 'scale', 'readSync', 'memoryStats', 'destroy']) {
    for (const [what, self] of [['a cpu engine', ce], ['a cpu buffer', cb]]) {
      cases.throws(`NativeEngine.${m} called on ${what}`, () => A.NativeEngine.prototype[m].call(self, 'float32', 4), /Expected a cuda engine as this|Illegal invocation/);
    }
  }
  cases.throws('a cpu buffer as an argument', () => e.scale(2, cb), /Expected a cuda device buffer for x but received another object/);
  cases.throws('a cpu engine as the peer', () => e.copyToPeer(x, ce, x, 4), /Expected a cuda engine for peer/);
  cases.throws('a cpu event', () => e.waitEvent(ce, ce.recordEvent()), /Expected a cuda engine for engine/);
  cases.throws('a number as the event', () => e.waitEvent(e, 0), /Expected an event of a cuda engine for event/);
  ce.destroy();
  e.destroy();
}

// Counts: 2^31 and more are refused (as on the CPU engine), products that overflow 64 bits are
// refused, and a call that describes no elements returns at once. Windows larger than the padded
// input are refused here (countCases leaves those out).
{
  const e = newEngine();
  countCases(cases, e, false);
  elementwiseCases(cases, e);
  const one = e.alloc('float32', 1), am = e.alloc('int32', 1);
  cases.throws('maxPoolForward 1x1 window on a 0x0 input', () => e.maxPoolForward(one, one, am, { n: 1, c: 1, h: 0, w: 0, kh: 1, kw: 1, strideH: 1, strideW: 1, padH: 0, padW: 0, outH: 0, outW: 0 }),
    /window is larger than the padded input/);
  e.destroy();
}

// The addon still computes after all that.
{
  const e = newEngine(), x = e.alloc('float32', 2);
  e.write(x, Float32Array.of(1, -2), 0);
  e.reluForward(x, x);
  const r = readFloats(e, x);
  if (r[0] !== 1 || r[1] !== 0) cases.failures.push('the addon computes wrongly after the hostile cases');
  e.destroy();
}
console.log(cases.summary());
