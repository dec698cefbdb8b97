// Hostile input at every op of every backend named on the command line. Runs in a child process
// (see fuzz.test.ts) so that a crash of native code fails the test instead of killing the runner.
// For each op: a valid call must succeed, and every mutation of one argument (not a tensor, a
// disposed tensor, a wrong dtype, a wrong shape, another device, a zero-size dimension, NaN or
// Infinity or a negative or fractional number for a scalar) must throw. Prints a JSON summary.
//
// With --native it calls the raw CPU addon instead (what src/native-engine.ts adapts): options objects
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
    tanh: { args: () => [x4()] },
    tanhBackward: { args: () => [x4(), x4()] },
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
const ANY_SHAPE = new Set(['fill', 'scale', 'relu', 'tanh', 'dropout', 'dropoutBackward']);
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
  const t = T.tanh(probe).dataSync();
  if (Math.abs(t[0] - Math.tanh(1)) > 1e-6 || Math.abs(t[1] - Math.tanh(-2)) > 1e-6) failures.push(`${name}: tanh computes wrongly after the fuzzing: [${t}]`);
}
console.log(JSON.stringify({ calls, failures }));

// ---- the raw addon ----

async function nativeCases() {
  const { nativeAddon } = await import(new URL('../dist/cpu/addon.js', import.meta.url).href);
  const { Cases, hostileOptions, lrnMemoryBound, wrongThis, countCases, elementwiseCases, readFloats } = await import(new URL('./native-cases.mjs', import.meta.url).href);
  const A = nativeAddon();
  const cases = new Cases();
  const newEngine = () => new A.NativeEngine(0);

  lrnMemoryBound(cases, newEngine);
  hostileOptions(cases, newEngine, /destroyed while the arguments were read/, /was freed while the arguments were read/);
  wrongThis(cases, A, newEngine, 'cpu');
  {
    const e = newEngine();
    countCases(cases, e, true);
    elementwiseCases(cases, e);
    e.destroy();
  }

  // The addon still computes after all that.
  const e = newEngine(), x = e.alloc('float32', 2);
  e.write(x, Float32Array.of(1, -2));
  e.reluForward(x, x);
  const r = readFloats(e, x);
  if (r[0] !== 1 || r[1] !== 0) cases.failures.push('the addon computes wrongly after the native cases');
  e.destroy();
  calls += cases.calls;
  failures.push(...cases.failures);
}
