/**
 * Each kernel of the paper net's training step (§3, §5) alone on a CUDA device, at the paper's layer
 * shapes (@alexnet/tensor's alexnetShapes) and batch 128 by default, as llm.c's benchmark_kernel
 * does: the five convolutions forward and backward, the fc6-fc8 GEMMs, LRN and pooling both ways,
 * and the SGD update of all 61M parameters. Median ms over --reps, synchronised per call, and
 * GFLOP/s where there are FLOPs to count.
 *
 * The whole training step (the model, forward, loss, backward, SGD, on one device and on two) is
 * @alexnet/train's benchmark, which times its trainStep on any backend:
 *
 *   node --import @alexnet/cuda packages/train/dist/bench/index.js --backend cuda
 *
 *   node dist/bench/index.js                                    cuda, batch 128
 *   node dist/bench/index.js --backend cuda-emu --batch 2 --size 67 --reps 1   a smoke test without a GPU
 *   node dist/bench/index.js --tf32                             also with TF32 tensor cores (cuda.setTf32)
 *   node dist/bench/index.js --json kernels.json                also write the rows
 *
 * Prints a table and one `KERNEL {json}` line per row (for scripts that collect the figures; the GPU check times the whole step instead, scripts/gpu/time_step.mjs).
 */
import { writeFileSync } from 'node:fs';
import { alexnetShapes, device, listDevices, type DeviceBuffer, type Engine } from '@alexnet/tensor';
import { cuda, cudaEmu } from '../index.js';

const args = process.argv.slice(2);
const option = (name: string): string | undefined => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined; };
const backend = option('--backend') ?? 'cuda';
const batch = Number(option('--batch') ?? 128);
const size = Number(option('--size') ?? 227);
const reps = Math.max(3, Number(option('--reps') ?? 5));
const jsonPath = option('--json');

interface Row { name: string; tf32: boolean; batch: number; ms: number; gflops?: number }

function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function kernelTable(e: Engine, tf32: boolean, rows: Row[]): Promise<void> {
  const bufs: DeviceBuffer[] = [];
  const buf = (n: number, dtype: 'float32' | 'int32' = 'float32') => { const b = e.alloc(dtype, n); e.fill(b, dtype === 'int32' ? 0 : 0.01); bufs.push(b); return b; };
  const add = async (name: string, flop: number | undefined, fn: () => void) => {
    fn(); // warm-up: the caching allocator fills, the first launch loads the kernel
    await e.synchronize();
    const ts: number[] = [];
    for (let r = 0; r < reps; r++) {
      const t0 = performance.now();
      fn();
      await e.synchronize();
      ts.push(performance.now() - t0);
    }
    const ms = median(ts), row: Row = { name, tf32, batch, ms, gflops: flop ? flop / ms / 1e6 : undefined };
    rows.push(row);
    console.log(`  ${name.padEnd(34)} ${ms.toFixed(3).padStart(9)} ms` + (row.gflops ? `  ${row.gflops.toFixed(1).padStart(8)} GFLOP/s` : ''));
    console.log(`KERNEL ${JSON.stringify(row)}`);
  };
  const { conv, lrn, pool, fc } = alexnetShapes(batch, size);
  for (const { name, geometry: g } of conv) {
    const xs = g.n * g.c * g.h * g.w, ws = g.k * (g.c / g.groups) * g.r * g.s, ys = g.n * g.k * g.outH * g.outW;
    const x = buf(xs), w = buf(ws), b = buf(g.k), y = buf(ys), dx = buf(xs), dw = buf(ws), db = buf(g.k);
    const flop = 2 * g.n * g.k * g.outH * g.outW * (g.c / g.groups) * g.r * g.s;
    await add(`${name} forward`, flop, () => e.conv2dForward(x, w, b, y, g));
    if (name !== 'conv1') await add(`${name} backward data`, flop, () => e.conv2dBackwardData(y, w, dx, g));
    await add(`${name} backward filter (+bias)`, flop, () => e.conv2dBackwardFilter(x, y, dw, db, g, 0));
  }
  for (const { name, in: i, out: o } of fc) {
    const x = buf(batch * i), w = buf(o * i), y = buf(batch * o), dx = buf(batch * i), dw = buf(o * i);
    const flop = 2 * batch * i * o;
    await add(`${name} forward`, flop, () => e.gemm(false, true, batch, o, i, 1, x, w, 0, y));
    await add(`${name} backward data`, flop, () => e.gemm(false, false, batch, i, o, 1, y, w, 0, dx));
    await add(`${name} backward weights`, flop, () => e.gemm(true, false, o, i, batch, 1, y, x, 0, dw));
  }
  for (const { name, n, c, hw, params } of lrn) {
    const x = buf(n * c * hw), y = buf(n * c * hw), dx = buf(n * c * hw);
    await add(`${name} forward`, undefined, () => e.lrnForward(x, y, params, n, c, hw));
    await add(`${name} backward`, undefined, () => e.lrnBackward(x, y, y, dx, params, n, c, hw));
  }
  for (const { name, geometry: g } of pool) {
    const xs = g.n * g.c * g.h * g.w, ys = g.n * g.c * g.outH * g.outW;
    const x = buf(xs), y = buf(ys), am = buf(ys, 'int32'), dx = buf(xs);
    await add(`${name} forward`, undefined, () => e.maxPoolForward(x, y, am, g));
    await add(`${name} backward`, undefined, () => e.maxPoolBackward(y, am, dx, g));
  }
  const np = 60_965_224, w = buf(np), g = buf(np), v = buf(np);
  await add('sgd update, all 61M parameters', undefined, () => e.sgdUpdate(w, g, v, { lr: 1e-6, momentum: 0.9, weightDecay: 5e-4, form: 'paper' }));
  const total = rows.filter((r) => r.tf32 === tf32).reduce((t, r) => t + r.ms, 0);
  console.log(`  ${'sum of the kernels above'.padEnd(34)} ${total.toFixed(3).padStart(9)} ms`);
  for (const b of bufs) e.free(b);
}

async function main(): Promise<void> {
  if (backend === 'cuda' && !cuda.available()) {
    console.log(`cuda is not available here: ${cuda.reason()}`);
    process.exitCode = 2;
    return;
  }
  const gpus = cuda.gpus();
  console.log(`@alexnet/cuda bench: each kernel of the paper net's training step alone, backend '${backend}'` +
    `${gpus.name ? ` (${gpus.count} x ${gpus.name})` : ''}, batch ${batch}, ${size}x${size}, median of ${reps} after a warm-up, synchronised per call`);
  console.log('  (the whole step: node --import @alexnet/cuda packages/train/dist/bench/index.js --backend cuda)');
  const setTf32 = (on: boolean) => (backend === 'cuda-emu' ? cudaEmu.setTf32(on) : cuda.setTf32(on));
  const rows: Row[] = [];
  for (const tf32 of args.includes('--tf32') ? [false, true] : [false]) {
    setTf32(tf32);
    if (tf32) console.log('  with TF32 tensor cores:');
    await kernelTable(device(`${backend}:0`).engine, tf32, rows);
  }
  setTf32(false);
  if (jsonPath) writeFileSync(jsonPath, JSON.stringify({ backend, batch, size, reps, rows }, null, 2) + '\n');
}

main().then(() => {
  for (const d of listDevices()) if (d.started) d.engine.destroy();
}, (e) => {
  console.error(e);
  process.exitCode = 1;
});
