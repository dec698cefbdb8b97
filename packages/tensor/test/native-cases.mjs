// Hostile calls into a raw native addon, shared by the CPU addon's child (fuzz-child.mjs --native)
// and the cuda-emu addon's (packages/cuda/test/hostile-child.mjs): both addons take the same
// arguments in the same order, read and checked by native/common/ops.h, with the same buffer objects
// (NativeBuffer), the same messages and reads that return an ArrayBuffer.

/** Counts calls and collects failures; each case names itself on stderr first (a crash says where). */
export class Cases {
  calls = 0;
  failures = [];

  /** fn must throw an Error (matching `pattern` when given), within 5 s. */
  throws(name, fn, pattern) {
    this.calls++;
    console.error(`case: ${name}`);
    const t0 = Date.now();
    try {
      fn();
      this.failures.push(`${name}: did not throw`);
    } catch (e) {
      if (!(e instanceof Error) || !e.message) this.failures.push(`${name}: threw a non-Error (${String(e)})`);
      else if (pattern && !pattern.test(e.message)) this.failures.push(`${name}: threw "${e.message}", expected ${pattern}`);
    }
    if (Date.now() - t0 > 5000) this.failures.push(`${name}: took ${Date.now() - t0} ms to throw`);
  }

  /** fn must not throw, and must take at most `ms` (it describes zero elements). */
  quick(name, fn, ms = 3000) {
    this.calls++;
    console.error(`case: ${name}`);
    const t0 = Date.now();
    try { fn(); } catch (e) { this.failures.push(`${name}: threw ${e.message}`); return; }
    if (Date.now() - t0 > ms) this.failures.push(`${name}: took ${Date.now() - t0} ms (the work is zero elements)`);
  }

  summary() { return JSON.stringify({ calls: this.calls, failures: this.failures }); }
}

/** A copy of `fields` whose property reads run `act` once, at the `at`-th read (getters or a Proxy). */
export function hostile(fields, act, at, proxy) {
  let reads = 0;
  const hit = () => { if (++reads === at) act(); };
  if (proxy) return new Proxy({ ...fields }, { get(t, k) { hit(); return t[k]; } });
  const o = {};
  for (const [k, v] of Object.entries(fields)) Object.defineProperty(o, k, { enumerable: true, get() { hit(); return v; } });
  return o;
}

export const CONV = { n: 1, c: 1, h: 4, w: 4, k: 1, r: 3, s: 3, strideH: 1, strideW: 1, padH: 0, padW: 0, groups: 1, outH: 2, outW: 2 };
export const POOL = { n: 1, c: 1, h: 4, w: 4, kh: 2, kw: 2, strideH: 2, strideW: 2, padH: 0, padW: 0, outH: 2, outW: 2 };
export const LRN = { size: 5, alpha: 1e-4, beta: 0.75, k: 2 };
export const SGD = { lr: 0.1, momentum: 0.9, weightDecay: 0, form: 'paper' };

/**
 * Every op that reads an options object, with an options object whose first or last read destroys
 * the engine, or frees argument 0 or 1 and allocates 8 buffers (so freed memory would be reused):
 * each call must throw (`destroyed` / `freed` patterns), never crash or use freed memory.
 */
export function hostileOptions(cases, newEngine, destroyed, freed) {
  const f32 = (e, n) => e.alloc('float32', n);
  const ops = {
    conv2dForward: [CONV, (e) => [f32(e, 16), f32(e, 9), f32(e, 1), f32(e, 4)], (e, b, o) => e.conv2dForward(b[0], b[1], b[2], b[3], o)],
    conv2dBackwardData: [CONV, (e) => [f32(e, 4), f32(e, 9), f32(e, 16)], (e, b, o) => e.conv2dBackwardData(b[0], b[1], b[2], o)],
    conv2dBackwardFilter: [CONV, (e) => [f32(e, 16), f32(e, 4), f32(e, 9), f32(e, 1)], (e, b, o) => e.conv2dBackwardFilter(b[0], b[1], b[2], b[3], o, 0)],
    maxPoolForward: [POOL, (e) => [f32(e, 16), f32(e, 4), e.alloc('int32', 4)], (e, b, o) => e.maxPoolForward(b[0], b[1], b[2], o)],
    maxPoolBackward: [POOL, (e) => [f32(e, 4), e.alloc('int32', 4), f32(e, 16)], (e, b, o) => e.maxPoolBackward(b[0], b[1], b[2], o)],
    lrnForward: [LRN, (e) => [f32(e, 16), f32(e, 16)], (e, b, o) => e.lrnForward(b[0], b[1], o, 1, 4, 4)],
    lrnBackward: [LRN, (e) => [f32(e, 16), f32(e, 16), f32(e, 16), f32(e, 16)], (e, b, o) => e.lrnBackward(b[0], b[1], b[2], b[3], o, 1, 4, 4)],
    sgdUpdate: [SGD, (e) => [f32(e, 8), f32(e, 8), f32(e, 8)], (e, b, o) => e.sgdUpdate(b[0], b[1], b[2], o)],
  };
  for (const [op, [fields, bufs, call]] of Object.entries(ops)) {
    const keys = Object.keys(fields).length;
    for (const proxy of [false, true]) for (const at of [1, keys]) {
      const how = `${proxy ? 'a proxy' : 'a getter'} at read ${at} of ${keys}`;
      {
        const e = newEngine(), b = bufs(e);
        cases.throws(`${op}: ${how} destroys the engine`, () => call(e, b, hostile(fields, () => e.destroy(), at, proxy)), destroyed);
      }
      for (const idx of [0, 1]) {
        const e = newEngine(), b = bufs(e);
        const act = () => { e.free(b[idx]); for (let i = 0; i < 8; i++) e.alloc('float32', 16); };
        cases.throws(`${op}: ${how} frees argument ${idx} (and allocates again)`, () => call(e, b, hostile(fields, act, at, proxy)), freed);
        e.synchronizeSync();
        e.destroy();
      }
    }
  }
}

/**
 * LRN (§3.3) forward and backward of a 1 MiB input of 262144 channels at one position: the peak RSS
 * may grow by at most 32 MiB (the CPU engine's scratch was 194 MiB per thread: channels x 64 x 3
 * floats). Run it first in a fresh process, while the peak is still node's own. Checks y[0] by hand.
 */
export function lrnMemoryBound(cases, newEngine, readFirst = (e, b) => readFloats(e, b, 0, 1)[0]) {
  const e = newEngine();
  const c = 262144, x = e.alloc('float32', c), y = e.alloc('float32', c), dy = e.alloc('float32', c), dx = e.alloc('float32', c);
  e.fill(x, 0.5); e.fill(dy, 1);
  e.synchronizeSync();
  const before = process.resourceUsage().maxRSS * 1024;
  cases.calls += 2;
  console.error('case: LRN of a 1 MiB input of 262144 channels');
  e.lrnForward(x, y, LRN, 1, c, 1);
  e.lrnBackward(x, y, dy, dx, LRN, 1, c, 1);
  e.synchronizeSync();
  const grown = process.resourceUsage().maxRSS * 1024 - before;
  if (grown > 32 * 2 ** 20) cases.failures.push(`LRN of a 1 MiB input raised the peak RSS by ${(grown / 2 ** 20).toFixed(0)} MiB (bound: 32 MiB)`);
  const yv = readFirst(e, y), want = 0.5 * (2 + 1e-4 * 3 * 0.25) ** -0.75; // channel 0: itself and two neighbours
  if (Math.abs(yv - want) > 1e-6 * want) cases.failures.push(`LRN of 262144 channels gave y[0] = ${yv}, expected ${want}`);
  e.destroy();
}

/** A buffer's values (reads of a raw addon return an ArrayBuffer). */
export const readFloats = (e, b, offset, length) => Array.from(new Float32Array(e.readSync(b, offset, length)));

/**
 * biasGrad over 2^31 - 1 samples of zero positions, with beta 1 then 0: at once, and db kept, then
 * zeroed (an empty sum).
 */
export function emptyBiasGrad(cases, e, read = readFloats) {
  const one = e.alloc('float32', 1), db = e.alloc('float32', 4), lim = 2 ** 31 - 1;
  e.fill(db, 3);
  cases.quick('biasGrad n = 2^31 - 1, hw = 0, beta 1 keeps db', () => { e.biasGrad(one, db, lim, 4, 0, 1); e.synchronizeSync(); });
  const kept = read(e, db);
  if (kept.some((v) => v !== 3)) cases.failures.push(`biasGrad over no elements with beta = 1 changed db to [${kept}] (expected [3, 3, 3, 3])`);
  cases.quick('biasGrad n = 2^31 - 1, hw = 0, beta 0 zeroes db', () => { e.biasGrad(one, db, lim, 4, 0, 0); e.synchronizeSync(); });
  const zeroed = read(e, db);
  if (zeroed.some((v) => v !== 0)) cases.failures.push(`biasGrad over no elements with beta = 0 gave db = [${zeroed}] (expected zeros)`);
}

/**
 * `this` must be what the method or accessor belongs to: NativeBuffer's accessors on engines, plain
 * objects, forged buffers, primitives; engine methods on buffers and others. `what` names the
 * buffer kind in the error ("cpu", "cuda").
 */
export function wrongThis(cases, A, newEngine, what) {
  const e = newEngine(), b = e.alloc('float32', 4), forged = Object.create(A.NativeBuffer.prototype);
  const pattern = new RegExp(`Expected a ${what} device buffer as this|Illegal`);
  for (const key of ['length', 'dtype', 'freed']) {
    const get = Object.getOwnPropertyDescriptor(A.NativeBuffer.prototype, key).get;
    for (const [name, self] of [['an engine', e], ['a plain object', {}], ['a forged buffer', forged], ['a number', 5], ['null', null], ['an engine prototype', A.NativeEngine.prototype]]) {
      cases.throws(`NativeBuffer.${key} read on ${name}`, () => get.call(self), pattern);
    }
    if (get.call(b) !== { length: 4, dtype: 'float32', freed: false }[key]) cases.failures.push(`NativeBuffer.${key} of a real buffer is ${get.call(b)}`);
  }
  for (const m of ['alloc', 'scale', 'readSync', 'destroy', 'conv2dForward', 'memoryStats']) {
    for (const [name, self] of [['a buffer', b], ['a plain object', {}], ['a forged buffer', forged], ['an engine prototype', A.NativeEngine.prototype]]) {
      cases.throws(`NativeEngine.${m} called on ${name}`, () => A.NativeEngine.prototype[m].call(self, 'float32', 4), new RegExp(`Expected a ${what} engine as this|Illegal invocation`));
    }
  }
  cases.throws('copyToPeer to a plain object', () => e.copyToPeer(b, {}, b, 4), new RegExp(`Expected a ${what} engine for peer`));
  cases.throws('a buffer of a new NativeBuffer() (never attached)', () => e.scale(1, new A.NativeBuffer()), /x was freed/);
  e.destroy();
}

/**
 * Counts of 2^31 and more, and size products that overflow 64 bits, are refused; a call that
 * describes no elements returns at once (its work is the elements, not the counts). `windowsMayExceedInput`:
 * the engine takes pooling and convolution windows larger than the (empty) padded input (the CPU's does;
 * CUDA's refuses them, so those cases are the CPU child's).
 */
export function countCases(cases, e, windowsMayExceedInput) {
  const f32 = (n) => e.alloc('float32', n);
  const one = f32(1), lbl = e.alloc('int32', 1), am = e.alloc('int32', 1), db = f32(4);
  const big = 2 ** 40, lim = 2 ** 31 - 1;
  const empty = { h: 0, w: 0, outH: 0, outW: 0 };
  const refused = {
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
    'maxPoolForward n = 2^40': () => e.maxPoolForward(one, one, am, { ...POOL, n: big }),
    'conv2dBackwardFilter n = 2^40, h = 0': () => e.conv2dBackwardFilter(one, one, db, db, { ...CONV, ...empty, n: big, r: 1, s: 1, k: 4 }, 0),
    'conv2dBackwardFilter n = 2^40': () => e.conv2dBackwardFilter(one, one, db, db, { ...CONV, n: big }, 0),
    'gemm m = 2^40': () => e.gemm(false, false, big, 1, 1, 1, one, one, 0, one),
  };
  for (const [name, fn] of Object.entries(refused)) cases.throws(name, fn, /below 2\^31/);
  const overflow = {
    'biasAdd n c hw = 2^22 2^21 2^21 (2^64 wraps to 0)': () => e.biasAdd(one, db, 2 ** 22, 2 ** 21, 2 ** 21),
    'lrnForward n c hw = 2^22 2^21 2^21 (2^64 wraps to 0)': () => e.lrnForward(one, one, LRN, 2 ** 22, 2 ** 21, 2 ** 21),
    'channelCopy n srcC hw = 2^22 2^21 2^21 (2^64 wraps to 0)': () => e.channelCopy(one, one, 2 ** 22, 2 ** 21, 2 ** 21, 0, 2 ** 21, 0, 1),
  };
  for (const [name, fn] of Object.entries(overflow)) cases.throws(name, fn, /overflow 64-bit integers/);
  const quick = {
    'softmax n = 2^31 - 1, c = 0': () => e.softmax(one, one, lim, 0),
    'biasAdd n = 2^31 - 1, hw = 0': () => e.biasAdd(one, db, lim, 4, 0),
    'channelCopy n = 2^31 - 1, hw = 0': () => e.channelCopy(one, one, lim, 0, 1, 0, 1, 0, 1),
    'lrnForward n = 2^31 - 1, c = 0, hw = 2^31 - 1': () => e.lrnForward(one, one, LRN, lim, 0, lim),
    ...(windowsMayExceedInput ? {
      'maxPoolForward n = c = 2^31 - 1, h = 0': () => e.maxPoolForward(one, one, am, { ...POOL, ...empty, n: lim, c: lim, kh: 1, kw: 1 }),
      'maxPoolBackward n = c = 2^31 - 1, h = 0': () => e.maxPoolBackward(one, am, one, { ...POOL, ...empty, n: lim, c: lim, kh: 1, kw: 1 }),
      'conv2dBackwardFilter n = 2^31 - 1, h = 0, with db': () => e.conv2dBackwardFilter(one, one, db, db, { ...CONV, ...empty, n: lim, r: 1, s: 1, k: 4 }, 1),
    } : {}),
  };
  for (const [name, fn] of Object.entries(quick)) cases.quick(name, () => { fn(); e.synchronizeSync(); });
  emptyBiasGrad(cases, e);
}

/**
 * The elementwise ops of ops.h's Elementwise table (add, reluForward, reluBackward, tanhForward,
 * tanhBackward): buffers of unequal length, of int32, freed, of another engine, or missing are
 * refused with the argument's name; zero-length buffers are a no-op; and the kernels compute
 * (tanh(±Infinity) = ±1 and tanh(NaN) = NaN exactly; tanhBackward = dy (1 - y²)), in place too.
 */
export function elementwiseCases(cases, e, read = readFloats) {
  const f = (n) => e.alloc('float32', n);
  const ops = { add: ['a', 'b', 'out'], reluForward: ['x', 'y'], reluBackward: ['y', 'dy', 'dx'], tanhForward: ['x', 'y'], tanhBackward: ['y', 'dy', 'dx'] };
  const other = new e.constructor(0);
  for (const [op, names] of Object.entries(ops)) {
    for (let k = 0; k < names.length; k++) {
      const args = () => names.map(() => f(4));
      const [len, against] = k === 0 ? [5, names[1]] : [3, names[k]]; // the first is checked against the second
      cases.throws(`${op}: ${names[k]} of another length`, () => { const a = args(); a[k] = f(len); e[op](...a); },
        new RegExp(`${names[0]} holds ${k === 0 ? 5 : 4} elements but ${against} holds ${k === 0 ? 4 : 3} \\(they must have the same length\\)`));
      cases.throws(`${op}: ${names[k]} int32`, () => { const a = args(); a[k] = e.alloc('int32', 4); e[op](...a); }, new RegExp(`${names[k]} is int32 but must be float32`));
      cases.throws(`${op}: ${names[k]} freed`, () => { const a = args(); e.free(a[k]); e[op](...a); }, new RegExp(`${names[k]} was freed`));
      cases.throws(`${op}: ${names[k]} of another engine`, () => { const a = args(); a[k] = other.alloc('float32', 4); e[op](...a); }, new RegExp(`${names[k]} belongs to another engine`));
      cases.throws(`${op}: ${names[k]} missing`, () => e[op](...args().slice(0, k)), new RegExp(`for ${names[k]} but received`));
    }
    cases.quick(`${op} of zero-length buffers`, () => { e[op](...names.map(() => f(0))); e.synchronizeSync(); });
  }
  other.destroy();
  const x = f(6), y = f(6), dy = f(6), dx = f(6);
  e.write(x, Float32Array.of(Infinity, -Infinity, NaN, 0, 20, -0.5));
  e.tanhForward(x, y);
  const t = read(e, y);
  const want = [1, -1, NaN, 0, 1, Math.tanh(-0.5)];
  if (!t.every((v, i) => Object.is(v, want[i]) || Math.abs(v - want[i]) <= 1e-6 * Math.abs(want[i]))) cases.failures.push(`tanhForward gave [${t}], expected [${want}]`);
  e.write(y, Float32Array.of(0.5, -0.5, 1, 0, NaN, 0.25));
  e.write(dy, Float32Array.of(4, -4, 3, 2, 1, 16));
  e.tanhBackward(y, dy, dx);
  e.tanhBackward(y, dy, dy); // in place on dy
  for (const [what, b] of [['dx', dx], ['dy (in place)', dy]]) {
    const g = read(e, b), wantG = [3, -3, 0, 2, NaN, 15];
    if (!g.every((v, i) => Object.is(v, wantG[i]))) cases.failures.push(`tanhBackward into ${what} gave [${g}], expected [${wantG}]`);
  }
  e.tanhForward(x, x); // in place on x
  const ti = read(e, x);
  if (!ti.every((v, i) => Object.is(v, t[i]))) cases.failures.push(`tanhForward in place gave [${ti}], expected [${t}]`);
}
