// The raw cuda-emu addon (native/cuda/addon.cpp, what src/index.ts wraps) under hostile calls, in a
// child process (see src/hostile.test.ts) so that a crash or a hang fails the test instead of the
// runner: options objects whose getters destroy the engine or free a buffer mid-call, methods and the
// CPU addon's accessors called on the wrong `this`, zero-size geometries with counts of 2^31 and
// more, size products that overflow 64 bits, and LRN memory. The cases shared with the CPU addon are
// in @alexnet/tensor's test/native-cases.mjs. Prints a JSON summary { calls, failures }.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const require = createRequire(import.meta.url);
const here = dirname(fileURLToPath(import.meta.url));
const tensorRoot = dirname(require.resolve('@alexnet/tensor/package.json'));
const { Cases, CONV, POOL, LRN, hostileOptions, lrnMemoryBound, emptyBiasGrad } =
  await import(pathToFileURL(join(tensorRoot, 'test', 'native-cases.mjs')).href);
const A = require(join(here, '..', 'build', 'Release', 'alexnet_cuda_emu.node'));
let cpu;
try {
  cpu = require(join(tensorRoot, 'build', 'Release', 'alexnet_cpu.node'));
} catch { cpu = undefined; } // the CPU addon is optional here: its cross-addon cases are skipped

const cases = new Cases();
const newEngine = () => new A.NativeEngine(0);
const f32 = (e, n) => e.alloc('float32', n);

// No per-thread scratch here (LRN slides its window sums; backward's t is one [n, c, hw] workspace).
lrnMemoryBound(cases, newEngine, (e, y) => e.readSync(y, 0, 1)[0]);
// Options objects are read before buffer ids are resolved: a freed buffer or a destroyed engine is
// then an unknown id.
hostileOptions(cases, newEngine, /destroyed|freed/, /freed/);

// `this`: engine methods on other objects (the CPU addon's wrapped objects included), and the CPU
// addon's NativeBuffer accessors on a CUDA engine.
{
  const e = newEngine();
  const others = [['a plain object', {}], ['an engine prototype', A.NativeEngine.prototype]];
  if (cpu) {
    const ce = new cpu.NativeEngine(0);
    others.push(['a cpu engine', ce], ['a cpu buffer', ce.alloc('float32', 4)]);
    for (const key of ['length', 'dtype', 'freed']) {
      const get = Object.getOwnPropertyDescriptor(cpu.NativeBuffer.prototype, key).get;
      cases.throws(`cpu NativeBuffer.${key} read on a cuda-emu engine`, () => get.call(e), /expected a cpu device buffer as this/);
    }
  }
  for (const m of ['alloc', 'scale', 'readSync', 'memoryInfo', 'destroy']) {
    for (const [what, self] of others) cases.throws(`NativeEngine.${m} called on ${what}`, () => A.NativeEngine.prototype[m].call(self, 'float32', 4));
  }
  cases.throws('copyToPeer to a plain object', () => e.copyToPeer(f32(e, 4), {}, 1, 4), /peer/);
  e.destroy();
}

// Counts: 2^31 and more are refused (as on the CPU engine), products that overflow 64 bits are
// refused, and a call that describes no elements returns at once.
{
  const e = newEngine();
  const one = f32(e, 1), lbl = e.alloc('int32', 1), db = f32(e, 4);
  const big = 2 ** 40, lim = 2 ** 31 - 1;
  const refused = {
    'softmax n = 2^40, c = 0': () => e.softmax(one, one, big, 0),
    'softmaxCrossEntropy n = 2^40, c = 0': () => e.softmaxCrossEntropy(one, lbl, one, null, big, 0),
    'topkCorrect n = 2^40, c = 0': () => e.topkCorrect(one, lbl, lbl, big, 0, 1),
    'biasGrad n = 2^40, hw = 0': () => e.biasGrad(one, db, big, 4, 0, 0),
    'channelCopy n = 2^40, hw = 0': () => e.channelCopy(one, one, big, 0, 1, 0, 1, 0, 1),
    'channelCopy count = 2^40, hw = 0': () => e.channelCopy(one, one, 1, 0, big, 0, big, 0, big),
    'lrnForward n = 2^40, c = 0': () => e.lrnForward(one, one, LRN, big, 0, 1),
    'maxPoolForward n = 2^40': () => e.maxPoolForward(one, one, lbl, { ...POOL, n: big }),
    'conv2dBackwardFilter n = 2^40': () => e.conv2dBackwardFilter(one, one, db, db, { ...CONV, n: big }, 0),
    'biasAdd n c hw = 2^22 2^21 2^21 (2^64 wraps to 0)': () => e.biasAdd(one, db, 2 ** 22, 2 ** 21, 2 ** 21),
    'lrnForward n c hw = 2^22 2^21 2^21 (2^64 wraps to 0)': () => e.lrnForward(one, one, LRN, 2 ** 22, 2 ** 21, 2 ** 21),
    'channelCopy n srcC hw = 2^22 2^21 2^21 (2^64 wraps to 0)': () => e.channelCopy(one, one, 2 ** 22, 2 ** 21, 2 ** 21, 0, 2 ** 21, 0, 1),
  };
  for (const [name, fn] of Object.entries(refused)) cases.throws(name, fn);
  const quick = {
    'softmax n = 2^31 - 1, c = 0': () => e.softmax(one, one, lim, 0),
    'lrnForward n = 2^31 - 1, c = 0, hw = 2^31 - 1': () => e.lrnForward(one, one, LRN, lim, 0, lim),
    'channelCopy n = 2^31 - 1, hw = 0': () => e.channelCopy(one, one, lim, 0, 1, 0, 1, 0, 1),
  };
  for (const [name, fn] of Object.entries(quick)) cases.quick(name, () => { fn(); e.synchronizeSync(); });
  emptyBiasGrad(cases, e, (eng, b) => Array.from(eng.readSync(b)));
  e.destroy();
}

// The addon still computes after all that.
{
  const e = newEngine(), x = f32(e, 2);
  e.write(x, Float32Array.of(1, -2), 0);
  e.reluForward(x, x);
  const r = e.readSync(x);
  if (r[0] !== 1 || r[1] !== 0) cases.failures.push('the addon computes wrongly after the hostile cases');
  e.destroy();
}
console.log(cases.summary());
