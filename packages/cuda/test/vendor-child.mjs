// Run by src/vendor.test.ts in a child process (the libraries are looked for once per process, from
// its environment): the convolutions and GEMMs of a training step on cuda-emu, twice each, through
// whatever kernels the engine chose, against the float64 reference; prints one JSON line with the
// errors, libraries(), the kernel choices and counters, and the memory in use after each round.
//   node vendor-child.mjs [--devices 1|2]
import { convGeometry, device, referenceKernels as R } from '@alexnet/tensor';
import { cudaEmu, libraries } from '@alexnet/cuda';

const args = process.argv.slice(2);
const devices = Number(args[args.indexOf('--devices') + 1] || 1);

function rng(seed) {
  let s = seed >>> 0;
  return (n, scale = 1) => Float64Array.from({ length: n }, () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return Math.fround(((s / 2 ** 32) * 2 - 1) * scale);
  });
}
const rand = rng(7);

function relErr(got, want) {
  let d = 0, r = 0;
  for (let i = 0; i < want.length; i++) {
    if (!(Number.isFinite(got[i]))) return Infinity;
    d += (got[i] - want[i]) ** 2;
    r += want[i] ** 2;
  }
  return r > 0 ? Math.sqrt(d / r) : Math.sqrt(d);
}

const convs = [
  ['grouped 3x3', convGeometry([2, 8, 9, 9], [6, 4, 3, 3], { padding: 1, groups: 2 })],
  ['strided 5x5', convGeometry([3, 3, 11, 11], [4, 3, 5, 5], { stride: 2, padding: 1 })],
];
const gemms = [[false, false], [false, true], [true, false], [true, true]].map(([tA, tB]) => ({ tA, tB, m: 5, n: 7, k: 9 }));

function run(e) {
  const up = (a) => { const t = e.alloc('float32', a.length); e.write(t, Float32Array.from(a)); return t; };
  const errors = {};
  const bufs = [];
  const keep = (t) => { bufs.push(t); return t; };
  for (const [name, g] of convs) {
    const xs = g.n * g.c * g.h * g.w, ws = g.k * (g.c / g.groups) * g.r * g.s, ys = g.n * g.k * g.outH * g.outW;
    const x = rand(xs), w = rand(ws, 0.3), b = rand(g.k), dy = rand(ys), dw0 = rand(ws), db0 = rand(g.k);
    const X = keep(up(x)), W = keep(up(w)), B = keep(up(b)), DY = keep(up(dy));
    // forward, then ReLU in place (the network's order: folds into the convolution's epilogue)
    const Y = keep(e.alloc('float32', ys));
    e.conv2dForward(X, W, B, Y, g);
    e.reluForward(Y, Y);
    const y = new Float64Array(ys);
    R.conv2dForward(x, w, b, y, g);
    errors[`conv2dForward+relu ${name}`] = relErr(e.readSync(Y), y.map((v) => Math.max(0, v)));
    const DX = keep(e.alloc('float32', xs));
    e.conv2dBackwardData(DY, W, DX, g);
    const dx = new Float64Array(xs);
    R.conv2dBackwardData(dy, w, dx, g);
    errors[`conv2dBackwardData ${name}`] = relErr(e.readSync(DX), dx);
    for (const beta of [0, 1]) {
      const DW = keep(up(dw0)), DB = keep(up(db0));
      e.conv2dBackwardFilter(X, DY, DW, DB, g, beta);
      const dw = dw0.slice(), db = db0.slice();
      R.conv2dBackwardFilter(x, dy, dw, db, g, beta);
      errors[`conv2dBackwardFilter beta=${beta} ${name}`] = relErr(e.readSync(DW), dw);
      errors[`biasGrad beta=${beta} ${name}`] = relErr(e.readSync(DB), db);
    }
  }
  for (const { tA, tB, m, n, k } of gemms) {
    const a = rand(m * k), b = rand(k * n), c0 = rand(m * n);
    const A = keep(up(a)), Bm = keep(up(b)), C = keep(up(c0));
    e.gemm(tA, tB, m, n, k, 0.5, A, Bm, 0.25, C);
    const c = c0.slice();
    R.gemm(tA, tB, m, n, k, 0.5, a, b, 0.25, c);
    errors[`gemm ${tA ? 'T' : 'N'}${tB ? 'T' : 'N'}`] = relErr(e.readSync(C), c);
  }
  // the dense layer: y = x W^T, + bias, ReLU in place (bias and ReLU fold into the epilogue)
  {
    const m = 4, n = 6, k = 10;
    const x = rand(m * k), w = rand(n * k), bias = rand(n);
    const X = keep(up(x)), W = keep(up(w)), B = keep(up(bias)), Y = keep(e.alloc('float32', m * n));
    e.gemm(false, true, m, n, k, 1, X, W, 0, Y);
    e.biasAdd(Y, B, m, n, 1);
    e.reluForward(Y, Y);
    const y = new Float64Array(m * n);
    R.gemm(false, true, m, n, k, 1, x, w, 0, y);
    for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) y[i * n + j] = Math.max(0, y[i * n + j] + bias[j]);
    errors['dense layer gemm+bias+relu'] = relErr(e.readSync(Y), y);
  }
  for (const t of bufs) e.free(t);
  return errors;
}

const engines = Array.from({ length: devices }, (_, i) => device(`cuda-emu:${i}`).engine);
const rounds = [];
for (let r = 0; r < 2; r++) {
  const errors = {};
  for (const [i, e] of engines.entries()) for (const [k, v] of Object.entries(run(e))) errors[`${k}${devices > 1 ? ` on cuda-emu:${i}` : ''}`] = v;
  rounds.push({ errors, liveBytes: engines.map((e) => e.memoryStats().liveBytes), cachedBytes: engines.map((e) => e.memoryStats().cachedBytes) });
}
const k = cudaEmu.kernels();
console.log(JSON.stringify({ rounds, libraries: libraries('cuda-emu'), counters: k.counters, precision: k.precision }));
for (const e of engines) e.destroy();
