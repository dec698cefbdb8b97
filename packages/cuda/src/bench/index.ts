/**
 * The training step of the paper's net (§3, §5: forward, softmax cross-entropy, backward, SGD update
 * of every parameter) on CUDA devices, at batch 128 by default, on one device and on two (the two
 * towers of §3.2; on a one-GPU machine these are two logical devices sharing the GPU). The model comes
 * from @alexnet/layers when it is installed; without it, the step's kernels (the five convolutions
 * forward and backward, fc6-fc8 GEMMs, ReLU, LRN, pooling, loss, SGD) are timed straight through the
 * engine on one device.
 *
 *   node dist/bench/index.js                                  cuda, batch 128, one and two devices
 *   node dist/bench/index.js --backend cuda-emu --batch 2 --size 67 --reps 1   a smoke test without a GPU
 *   node dist/bench/index.js --modes one --reps 10 --json out.json
 *   node dist/bench/index.js --tf32                          also with TF32 tensor cores (cuda.setTf32)
 *   node dist/bench/index.js --kernels                       also each kernel of the step alone (llm.c's
 *                                                             benchmark_kernel): ms and GFLOP/s per layer
 *
 * Prints a table and one `BENCH {json}` line per row (scripts/gpu-check.sh collects them).
 */
import { writeFileSync } from 'node:fs';
import {
  device, listDevices, randn, sgdUpdate, tensor, zeros, type ConvGeometry, type Device, type Engine, type Tensor,
} from '@alexnet/tensor';
import { cuda, cudaEmu } from '../index.js';

const args = process.argv.slice(2);
const option = (name: string): string | undefined => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined; };
const backend = option('--backend') ?? 'cuda';
const batch = Number(option('--batch') ?? 128);
const size = Number(option('--size') ?? 227);
const reps = Number(option('--reps') ?? 5);
const modes = (option('--modes') ?? 'one,two').split(',');
const jsonPath = option('--json');

interface Row { what: string; devices: string; batch: number; ms: number; imgPerSec: number }

function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function time(run: () => Promise<void>): Promise<number> {
  await run(); // warm-up: the caching allocator fills, first launches load the kernels
  const ts: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    await run();
    ts.push(performance.now() - t0);
  }
  return median(ts);
}

// Loaded at run time by name: @alexnet/layers is not a dependency of this package.
interface LayersModule {
  createModel(model: string, opts: Record<string, unknown>): {
    parameters(): { value: Tensor; grad: Tensor }[];
    zeroGrad(): void;
    forward(x: Tensor, ctx?: { training?: boolean }): Tensor;
    backward(d: Tensor): void;
    dispose(): void;
  };
  SoftmaxCrossEntropy: new () => {
    forward(logits: Tensor, labels: Tensor, ctx?: { training?: boolean }): Tensor;
    backward(): Tensor;
  };
}

async function loadLayers(): Promise<LayersModule | undefined> {
  const name = '@alexnet/layers';
  try { return (await import(name)) as LayersModule; } catch { return undefined; }
}

async function modelStep(L: LayersModule, devs: Device[]): Promise<number> {
  const net = L.createModel('paper', { devices: devs, seed: 1, inputSize: size });
  const params = net.parameters();
  const velocity = params.map((p) => zeros(p.value.shape, { device: p.value.device }).keep());
  const loss = new L.SoftmaxCrossEntropy();
  const x = randn([batch, 3, size, size], { seed: 3, device: devs[0]! });
  const labels = tensor(Int32Array.from({ length: batch }, (_, i) => (i * 37) % 1000), [batch], { device: devs[0]!, dtype: 'int32' });
  const ms = await time(async () => {
    net.zeroGrad();
    const logits = net.forward(x, { training: true });
    const l = loss.forward(logits, labels, { training: true });
    const d = loss.backward();
    net.backward(d);
    params.forEach((p, i) => sgdUpdate(p.value, p.grad, velocity[i]!, { lr: 1e-6, momentum: 0.9, weightDecay: 0.0005 }));
    for (const t of [logits, l, d]) t.dispose();
    await Promise.all(devs.map((d) => d.synchronize()));
  });
  for (const t of [x, labels, ...velocity]) t.dispose();
  net.dispose();
  return ms;
}

function conv(n: number, c: number, h: number, k: number, r: number, stride: number, pad: number, groups: number): ConvGeometry {
  const out = Math.floor((h + 2 * pad - r) / stride) + 1;
  return { n, c, h, w: h, k, r, s: r, strideH: stride, strideW: stride, padH: pad, padW: pad, groups, outH: out, outW: out };
}

/** The step's kernels straight through one engine (no @alexnet/layers): what the model would launch. */
async function kernelStep(e: Engine): Promise<number> {
  const s1 = Math.floor((size - 11) / 4) + 1, p1 = Math.floor((s1 - 3) / 2) + 1, p2 = Math.floor((p1 - 3) / 2) + 1, p5 = Math.floor((p2 - 3) / 2) + 1;
  const convs = [conv(batch, 3, size, 96, 11, 4, 0, 1), conv(batch, 96, p1, 256, 5, 1, 2, 2), conv(batch, 256, p2, 384, 3, 1, 1, 1),
    conv(batch, 384, p2, 384, 3, 1, 1, 2), conv(batch, 384, p2, 256, 3, 1, 1, 2)];
  const fcs: [number, number][] = [[256 * p5 * p5, 4096], [4096, 4096], [4096, 1000]];
  const bufs: ReturnType<Engine['alloc']>[] = [];
  const buf = (n: number, dtype: 'float32' | 'int32' = 'float32') => { const b = e.alloc(dtype, n); e.fill(b, dtype === 'int32' ? 1 : 0.01); bufs.push(b); return b; };
  const L = convs.map((g) => ({ g, x: buf(g.n * g.c * g.h * g.w), w: buf(g.k * (g.c / g.groups) * g.r * g.s), b: buf(g.k), y: buf(g.n * g.k * g.outH * g.outW),
    dx: buf(g.n * g.c * g.h * g.w), dw: buf(g.k * (g.c / g.groups) * g.r * g.s), db: buf(g.k), v: buf(g.k * (g.c / g.groups) * g.r * g.s) }));
  const F = fcs.map(([i, o]) => ({ i, o, x: buf(batch * i), w: buf(o * i), y: buf(batch * o), dx: buf(batch * i), dw: buf(o * i), v: buf(o * i) }));
  const am = buf(batch * 96 * s1 * s1, 'int32'), labels = buf(batch, 'int32'), lossB = buf(1);
  const lrn = { size: 5, alpha: 1e-4, beta: 0.75, k: 2 };
  const ms = await time(async () => {
    for (const l of L) { e.conv2dForward(l.x, l.w, l.b, l.y, l.g); e.reluForward(l.y, l.y); }
    for (const l of L.slice(0, 2)) {
      const hw = l.g.outH * l.g.outW;
      e.lrnForward(l.y, l.dx, lrn, batch, l.g.k, hw);
      e.lrnBackward(l.y, l.dx, l.y, l.x, lrn, batch, l.g.k, hw);
      const ph = Math.floor((l.g.outH - 3) / 2) + 1;
      const pg = { n: batch, c: l.g.k, h: l.g.outH, w: l.g.outW, kh: 3, kw: 3, strideH: 2, strideW: 2, padH: 0, padW: 0, outH: ph, outW: ph };
      e.maxPoolForward(l.y, l.dx, am, pg);
      e.maxPoolBackward(l.dx, am, l.y, pg);
    }
    for (const f of F) { e.gemm(false, true, batch, f.o, f.i, 1, f.x, f.w, 0, f.y); e.dropoutForward(f.y, f.y, 0.5, 1, 0); }
    e.softmaxCrossEntropy(F[2]!.y, labels, lossB, F[2]!.y, batch, 1000);
    for (const f of F) { e.gemm(false, false, batch, f.i, f.o, 1, f.y, f.w, 0, f.dx); e.gemm(true, false, f.o, f.i, batch, 1, f.y, f.x, 0, f.dw); e.sgdUpdate(f.w, f.dw, f.v, { lr: 1e-6, momentum: 0.9, weightDecay: 5e-4, form: 'paper' }); }
    for (const [i, l] of L.entries()) {
      e.reluBackward(l.y, l.y, l.y);
      if (i > 0) e.conv2dBackwardData(l.y, l.w, l.dx, l.g);
      e.conv2dBackwardFilter(l.x, l.y, l.dw, l.db, l.g, 0);
      e.sgdUpdate(l.w, l.dw, l.v, { lr: 1e-6, momentum: 0.9, weightDecay: 5e-4, form: 'paper' });
    }
    await e.synchronize();
  });
  for (const b of bufs) e.free(b);
  return ms;
}

/** Each kernel of the step alone at the paper's shapes: median ms over --reps, synchronised per call. */
async function kernelTable(e: Engine): Promise<void> {
  const bufs: ReturnType<Engine['alloc']>[] = [];
  const buf = (n: number, dtype: 'float32' | 'int32' = 'float32') => { const b = e.alloc(dtype, n); e.fill(b, dtype === 'int32' ? 0 : 0.01); bufs.push(b); return b; };
  const timeOp = async (fn: () => void): Promise<number> => {
    fn();
    await e.synchronize();
    const ts: number[] = [];
    for (let r = 0; r < Math.max(3, reps); r++) {
      const t0 = performance.now();
      fn();
      await e.synchronize();
      ts.push(performance.now() - t0);
    }
    return median(ts);
  };
  const rows: { name: string; ms: number; gflops?: number }[] = [];
  const add = async (name: string, flop: number | undefined, fn: () => void) => {
    const ms = await timeOp(fn);
    const row = { name, ms, gflops: flop ? flop / ms / 1e6 : undefined };
    rows.push(row);
    console.log(`  ${name.padEnd(34)} ${ms.toFixed(3).padStart(9)} ms` + (row.gflops ? `  ${row.gflops.toFixed(1).padStart(8)} GFLOP/s` : ''));
    console.log(`KERNEL ${JSON.stringify(row)}`);
  };
  const s1 = Math.floor((size - 11) / 4) + 1, p1 = Math.floor((s1 - 3) / 2) + 1, p2 = Math.floor((p1 - 3) / 2) + 1, p5 = Math.floor((p2 - 3) / 2) + 1;
  const convs: [string, ConvGeometry][] = [['conv1', conv(batch, 3, size, 96, 11, 4, 0, 1)], ['conv2', conv(batch, 96, p1, 256, 5, 1, 2, 2)],
    ['conv3', conv(batch, 256, p2, 384, 3, 1, 1, 1)], ['conv4', conv(batch, 384, p2, 384, 3, 1, 1, 2)], ['conv5', conv(batch, 384, p2, 256, 3, 1, 1, 2)]];
  console.log(`  each kernel alone, batch ${batch} (median of ${Math.max(3, reps)}, synchronised per call):`);
  for (const [name, g] of convs) {
    const xs = g.n * g.c * g.h * g.w, ws = g.k * (g.c / g.groups) * g.r * g.s, ys = g.n * g.k * g.outH * g.outW;
    const x = buf(xs), w = buf(ws), b = buf(g.k), y = buf(ys), dx = buf(xs), dw = buf(ws), db = buf(g.k);
    const flop = 2 * g.n * g.k * g.outH * g.outW * (g.c / g.groups) * g.r * g.s;
    await add(`${name} forward`, flop, () => e.conv2dForward(x, w, b, y, g));
    if (name !== 'conv1') await add(`${name} backward data`, flop, () => e.conv2dBackwardData(y, w, dx, g));
    await add(`${name} backward filter (+bias)`, flop, () => e.conv2dBackwardFilter(x, y, dw, db, g, 0));
  }
  for (const [name, i, o] of [['fc6', 256 * p5 * p5, 4096], ['fc7', 4096, 4096], ['fc8', 4096, 1000]] as const) {
    const x = buf(batch * i), w = buf(o * i), y = buf(batch * o), dx = buf(batch * i), dw = buf(o * i);
    const flop = 2 * batch * i * o;
    await add(`${name} forward`, flop, () => e.gemm(false, true, batch, o, i, 1, x, w, 0, y));
    await add(`${name} backward data`, flop, () => e.gemm(false, false, batch, i, o, 1, y, w, 0, dx));
    await add(`${name} backward weights`, flop, () => e.gemm(true, false, o, i, batch, 1, y, x, 0, dw));
  }
  const lrn = { size: 5, alpha: 1e-4, beta: 0.75, k: 2 };
  for (const [name, c, hw] of [['lrn1', 96, s1 * s1], ['lrn2', 256, p1 * p1]] as const) {
    const x = buf(batch * c * hw), y = buf(batch * c * hw), dx = buf(batch * c * hw);
    await add(`${name} forward`, undefined, () => e.lrnForward(x, y, lrn, batch, c, hw));
    await add(`${name} backward`, undefined, () => e.lrnBackward(x, y, y, dx, lrn, batch, c, hw));
    const ph = Math.floor((Math.sqrt(hw) - 3) / 2) + 1, side = Math.sqrt(hw);
    const pg = { n: batch, c, h: side, w: side, kh: 3, kw: 3, strideH: 2, strideW: 2, padH: 0, padW: 0, outH: ph, outW: ph };
    const am = buf(batch * c * ph * ph, 'int32'), py = buf(batch * c * ph * ph);
    await add(`pool after ${name} forward`, undefined, () => e.maxPoolForward(y, py, am, pg));
    await add(`pool after ${name} backward`, undefined, () => e.maxPoolBackward(py, am, dx, pg));
  }
  const np = 60_965_224, w = buf(np), g = buf(np), v = buf(np);
  await add('sgd update, all 61M parameters', undefined, () => e.sgdUpdate(w, g, v, { lr: 1e-6, momentum: 0.9, weightDecay: 5e-4, form: 'paper' }));
  const total = rows.reduce((t, r) => t + r.ms, 0);
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
  console.log(`@alexnet/cuda bench: the paper net's training step, backend '${backend}'${gpus.name ? ` (${gpus.count} x ${gpus.name})` : ''}, ` +
    `batch ${batch}, ${size}x${size}, median of ${reps} after 1 warm-up`);
  const layers = await loadLayers();
  const rows: Row[] = [];
  const add = (what: string, devs: string, ms: number) => {
    const row = { what, devices: devs, batch, ms, imgPerSec: (batch * 1000) / ms };
    rows.push(row);
    console.log(`  ${what.padEnd(26)} ${devs.padEnd(16)} batch ${batch}: ${ms.toFixed(1).padStart(8)} ms  ${row.imgPerSec.toFixed(0).padStart(7)} img/s`);
    console.log(`BENCH ${JSON.stringify(row)}`);
  };
  const setTf32 = (on: boolean) => (backend === 'cuda-emu' ? cudaEmu.setTf32(on) : cuda.setTf32(on));
  for (const tf32 of args.includes('--tf32') ? [false, true] : [false]) {
    setTf32(tf32);
    const tag = tf32 ? ' (TF32)' : '';
    if (layers) {
      for (const mode of modes) {
        const devs = mode === 'one' ? [device(`${backend}:0`)] : [device(`${backend}:0`), device(`${backend}:1`)];
        add((mode === 'one' ? 'model, one device' : 'model, two towers (§3.2)') + tag, devs.map((d) => d.name).join('+'), await modelStep(layers, devs));
      }
    } else {
      if (!tf32) console.log('  (@alexnet/layers is not installed: timing the step\'s kernels through the engine instead)');
      add('kernels of a step' + tag, `${backend}:0`, await kernelStep(device(`${backend}:0`).engine));
    }
  }
  setTf32(false);
  if (args.includes('--kernels')) await kernelTable(device(`${backend}:0`).engine);
  if (jsonPath) writeFileSync(jsonPath, JSON.stringify({ backend, batch, size, reps, rows }, null, 2) + '\n');
}

main().then(() => {
  for (const d of listDevices()) if (d.started) d.engine.destroy();
}, (e) => {
  console.error(e);
  process.exitCode = 1;
});
