// Hostile input at every op of every backend named on the command line. Runs in a child process
// (see fuzz.test.ts) so that a crash of native code fails the test instead of killing the runner.
// For each op: a valid call must succeed, and every mutation of one argument (not a tensor, a
// disposed tensor, a wrong dtype, a wrong shape, another device, a zero-size dimension, NaN or
// Infinity or a negative or fractional number for a scalar) must throw. Prints a JSON summary.
//
// With --native it calls the raw CPU addon instead (what src/cpu/engine.ts wraps): options objects
// whose getters destroy the engine or free a buffer mid-call, NativeBuffer accessors and engine
// methods called on the wrong `this`, zero-size geometries with counts of 2^31 and more, and the LRN
// scratch bound. Each case names itself on stderr first, so a crash or a hang says where it was.
const T = await import(new URL('../dist/index.js', import.meta.url).href);
const native = process.argv[2] === '--native';
const backends = native ? [] : process.argv.slice(2);
const failures = [];
let calls = 0;

function cases(dev, other) {
  const f = (shape) => T.randn(shape, { seed: 3, device: dev });
  const i = (values) => T.tensor(Int32Array.from(values), [values.length], { device: dev });
  const x4 = () => f([2, 4, 9, 9]);
  const w = () => f([6, 2, 3, 3]);
  return {
    matmul: { args: () => [f([3, 4]), f([4, 5]), {}] },
    gemm: { args: () => [f([3, 4]), f([4, 5]), f([3, 5]), { alpha: 1, beta: 0.5 }] },
    axpy: { args: () => [0.5, f([7]), f([7])] },
    scale: { args: () => [f([7]), 2] },
    add: { args: () => [f([7]), f([7])] },
    fill: { args: () => [f([7]), 1] },
    biasAdd: { args: () => [x4(), f([4])] },
    biasGrad: { args: () => [x4()] },
    conv2d: { args: () => [x4(), w(), f([6]), { stride: 2, padding: 1, groups: 2 }] },
    conv2dBackwardData: { args: () => [f([2, 6, 5, 5]), w(), [2, 4, 9, 9], { stride: 2, padding: 1, groups: 2 }] },
    conv2dBackwardFilter: { args: () => [x4(), f([2, 6, 5, 5]), [6, 2, 3, 3], { stride: 2, padding: 1, groups: 2 }] },
    relu: { args: () => [x4()] },
    reluBackward: { args: () => [x4(), x4()] },
    localResponseNorm: { args: () => [x4(), { size: 5 }] },
    localResponseNormBackward: { args: () => [x4(), x4(), x4(), { size: 5 }] },
    maxPool2d: { args: () => [x4(), { size: 3, stride: 2 }] },
    maxPool2dBackward: { args: () => { const { y, argmax } = T.maxPool2d(x4(), { size: 3, stride: 2 }); return [y, argmax, [2, 4, 9, 9], { size: 3, stride: 2 }]; } },
    dropout: { args: () => [x4(), { p: 0.5, seed: 1 }] },
    dropoutBackward: { args: () => [x4(), { p: 0.5, seed: 1 }] },
    softmaxCrossEntropy: { args: () => [f([3, 5]), i([0, 4, 2])] },
    softmax: { args: () => [f([3, 5])] },
    topkCorrect: { args: () => [f([3, 5]), i([0, 4, 2]), 2] },
    concatChannels: { args: () => [[x4(), x4()]] },
    splitChannels: { args: () => [x4(), [1, 3]] },
    channelCopy: { args: () => [x4(), 1, x4(), 0, 2] },
    sgdUpdate: { args: () => [f([7]), f([7]), f([7]), { lr: 0.01 }] },
  };
}

// Ops whose single tensor may have any shape, and ops that copy any dtype.
const ANY_SHAPE = new Set(['fill', 'scale', 'relu', 'dropout', 'dropoutBackward']);
const ANY_DTYPE = new Set(['splitChannels', 'fill']);

function mutations(op, arg, dev, other, tensorCount) {
  const out = [];
  if (arg instanceof T.Tensor) {
    out.push(['a number', 3], ['null', null], ['a plain object', {}], ['an array', [1, 2]]);
    const disposed = arg.clone(); disposed.dispose();
    out.push(['a disposed tensor', disposed]);
    if (tensorCount > 1) out.push(['another device', arg.to(other)]);
    if (!ANY_DTYPE.has(op)) out.push(['a wrong dtype', T.zeros(arg.shape, { dtype: arg.dtype === 'int32' ? 'float32' : 'uint8', device: dev })]);
    if (!ANY_SHAPE.has(op)) out.push(['a wrong shape', T.zeros([arg.size + 1], { dtype: arg.dtype, device: dev })]);
    out.push(['a zero-size dimension', T.zeros([0, ...arg.shape.slice(1)], { dtype: arg.dtype, device: dev })]);
  } else if (typeof arg === 'number') {
    out.push(['NaN', NaN], ['Infinity', Infinity], ['a string', '2'], ['undefined', undefined]);
  } else if (Array.isArray(arg) && arg.every((v) => typeof v === 'number')) {
    out.push(['a shape with NaN', arg.map((v, j) => (j === 0 ? NaN : v))], ['a shape with a negative', arg.map((v, j) => (j === 0 ? -1 : v))],
      ['a shape with another batch', arg.map((v, j) => (j === 0 ? v + 1 : v))], ['not an array', 5]);
  } else if (arg && typeof arg === 'object' && !Array.isArray(arg)) {
    for (const [k, v] of Object.entries(arg)) {
      if (typeof v === 'number') out.push([`option ${k} NaN`, { ...arg, [k]: NaN }], [`option ${k} = -1.5`, { ...arg, [k]: -1.5 }], [`option ${k} = Infinity`, { ...arg, [k]: Infinity }]);
    }
    out.push(['options null', null]);
  }
  return out;
}

// Options whose mutation is legitimately accepted (alpha/beta/k/value may be any finite number, and so on).
const ACCEPTS = new Set(['conv2d:null', 'gemm:option alpha = -1.5', 'gemm:option beta = -1.5', 'axpy:-1.5', 'scale:-1.5', 'fill:-1.5',
  'gemm:options null', 'matmul:options null', 'localResponseNorm:options null', 'localResponseNormBackward:options null',
  'conv2d:options null', 'conv2dBackwardData:options null', 'conv2dBackwardFilter:options null', 'biasGrad:options null']);

if (native) await nativeCases();

for (const name of backends) {
  const dev = `${name}:0`, other = `${name}:1`;
  for (const [op, spec] of Object.entries(cases(dev, other))) {
    const fn = T[op];
    try { calls++; fn(...spec.args()); } catch (e) { failures.push(`${name} ${op}: the valid call threw: ${e.message}`); continue; }
    const base = spec.args();
    const tensorCount = base.flat().filter((a) => a instanceof T.Tensor).length;
    base.forEach((arg, pos) => {
      for (const [what, value] of mutations(op, arg, dev, other, tensorCount)) {
        if (ACCEPTS.has(`${op}:${what}`)) continue;
        const args = spec.args();
        args[pos] = value;
        calls++;
        try {
          fn(...args);
          failures.push(`${name} ${op}: argument ${pos} as ${what} did not throw`);
        } catch (e) {
          if (!(e instanceof Error) || !e.message) failures.push(`${name} ${op}: argument ${pos} as ${what} threw a non-Error`);
        }
      }
    });
    // The queue must still work after all that.
    T.device(dev).synchronizeSync();
  }
  const probe = T.tensor([1, -2], [2], { device: dev });
  const r = T.relu(probe).dataSync();
  if (r[0] !== 1 || r[1] !== 0) failures.push(`${name}: the device computes wrongly after the fuzzing`);
}
console.log(JSON.stringify({ calls, failures }));

// ---- the raw addon ----

async function nativeCases() {
  const { nativeAddon } = await import(new URL('../dist/cpu/addon.js', import.meta.url).href);
  const { Cases, CONV, POOL, LRN, hostileOptions, lrnMemoryBound, emptyBiasGrad } = await import(new URL('./native-cases.mjs', import.meta.url).href);
  const A = nativeAddon();
  const cases = new Cases();
  const newEngine = () => new A.NativeEngine(0);
  const f32 = (e, n) => e.alloc('float32', n);

  lrnMemoryBound(cases, newEngine, (e, y) => new Float32Array(e.readSync(y, 0, 1))[0]);
  hostileOptions(cases, newEngine, /destroyed while the arguments were read/, /was freed while the arguments were read/);

  // `this` must be what the method or accessor belongs to.
  {
    const e = newEngine(), b = f32(e, 4), forged = Object.create(A.NativeBuffer.prototype);
    for (const key of ['length', 'dtype', 'freed']) {
      const get = Object.getOwnPropertyDescriptor(A.NativeBuffer.prototype, key).get;
      for (const [what, self] of [['an engine', e], ['a plain object', {}], ['a forged buffer', forged], ['a number', 5], ['null', null], ['an engine prototype', A.NativeEngine.prototype]]) {
        cases.throws(`NativeBuffer.${key} read on ${what}`, () => get.call(self), /expected a cpu device buffer as this|Illegal/);
      }
      if (get.call(b) !== { length: 4, dtype: 'float32', freed: false }[key]) cases.failures.push(`NativeBuffer.${key} of a real buffer is ${get.call(b)}`);
    }
    for (const m of ['alloc', 'scale', 'readSync', 'destroy', 'conv2dForward', 'stats']) {
      for (const [what, self] of [['a buffer', b], ['a plain object', {}], ['a forged buffer', forged]]) {
        cases.throws(`NativeEngine.${m} called on ${what}`, () => A.NativeEngine.prototype[m].call(self, 'float32', 4));
      }
    }
    e.destroy();
  }

  // Zero-size geometries with huge counts: counts of 2^31 and more are refused; below that, a call
  // that describes no elements returns at once (its work is the elements, not the counts).
  {
    const e = newEngine();
    const one = f32(e, 1), lbl = e.alloc('int32', 1), am = e.alloc('int32', 1), db = f32(e, 4);
    const big = 2 ** 40, lim = 2 ** 31 - 1;
    const empty = { h: 0, w: 0, outH: 0, outW: 0 };
    const huge = {
      'softmax n = 2^40, c = 0': () => e.softmax(one, one, big, 0),
      'softmax c = 2^40, n = 0': () => e.softmax(one, one, 0, big),
      'softmaxCrossEntropy n = 2^40, c = 0': () => e.softmaxCrossEntropy(one, lbl, one, null, big, 0),
      'topkCorrect n = 2^40, c = 0': () => e.topkCorrect(one, lbl, lbl, big, 0, 1),
      'biasAdd n = 2^40, hw = 0': () => e.biasAdd(one, db, big, 4, 0),
      'biasGrad n = 2^40, hw = 0': () => e.biasGrad(one, db, big, 4, 0, 0),
      'biasGrad hw = 2^40, n = 0': () => e.biasGrad(one, db, 0, 4, big, 0),
      'channelCopy n = 2^40, hw = 0': () => e.channelCopy(one, one, big, 0, 1, 0, 1, 0, 1),
      'channelCopy count = 2^40, hw = 0': () => e.channelCopy(one, one, 1, 0, big, 0, big, 0, big),
      'lrnForward n = 2^40, c = 0': () => e.lrnForward(one, one, LRN, big, 0, 1),
      'lrnBackward hw = 2^40, c = 0': () => e.lrnBackward(one, one, one, one, LRN, 1, 0, big),
      'maxPoolForward n = 2^40, h = 0': () => e.maxPoolForward(one, one, am, { ...POOL, ...empty, n: big, kh: 1, kw: 1 }),
      'maxPoolBackward c = 2^40, h = 0': () => e.maxPoolBackward(one, am, one, { ...POOL, ...empty, c: big, kh: 1, kw: 1 }),
      'conv2dBackwardFilter n = 2^40, h = 0': () => e.conv2dBackwardFilter(one, one, db, db, { ...CONV, ...empty, n: big, r: 1, s: 1, k: 4 }, 0),
    };
    for (const [name, fn] of Object.entries(huge)) cases.throws(name, fn, /below 2\^31/);
    const quick = {
      'softmax n = 2^31 - 1, c = 0': () => e.softmax(one, one, lim, 0),
      'biasAdd n = 2^31 - 1, hw = 0': () => e.biasAdd(one, db, lim, 4, 0),
      'channelCopy n = 2^31 - 1, hw = 0': () => e.channelCopy(one, one, lim, 0, 1, 0, 1, 0, 1),
      'lrnForward n = 2^31 - 1, c = 0, hw = 2^31 - 1': () => e.lrnForward(one, one, LRN, lim, 0, lim),
      'maxPoolForward n = c = 2^31 - 1, h = 0': () => e.maxPoolForward(one, one, am, { ...POOL, ...empty, n: lim, c: lim, kh: 1, kw: 1 }),
      'maxPoolBackward n = c = 2^31 - 1, h = 0': () => e.maxPoolBackward(one, am, one, { ...POOL, ...empty, n: lim, c: lim, kh: 1, kw: 1 }),
      'conv2dBackwardFilter n = 2^31 - 1, h = 0, with db': () => e.conv2dBackwardFilter(one, one, db, db, { ...CONV, ...empty, n: lim, r: 1, s: 1, k: 4 }, 1),
    };
    for (const [name, fn] of Object.entries(quick)) cases.quick(name, () => { fn(); e.synchronizeSync(); });
    emptyBiasGrad(cases, e, (eng, b) => Array.from(new Float32Array(eng.readSync(b))));
    e.destroy();
  }

  // The addon still computes after all that.
  const e = newEngine(), x = f32(e, 2);
  e.write(x, Float32Array.of(1, -2));
  e.reluForward(x, x);
  const r = new Float32Array(e.readSync(x));
  if (r[0] !== 1 || r[1] !== 0) cases.failures.push('the addon computes wrongly after the native cases');
  e.destroy();
  calls += cases.calls;
  failures.push(...cases.failures);
}
