/**
 * Benchmark of the optimizer step over the paper net's 60 965 224 parameters (the 16 tensors of
 * conv1 ... fc8), in the paper's and PyTorch's forms, on one device with 2 threads and split over two
 * devices (the two towers, §3.2) with one thread each. The update is memory-bound: it reads w, g, v
 * and writes w, v, 20 bytes per parameter, so GB/s is the figure to compare with the machine's copy
 * bandwidth. (PyTorch's SGD step is 9.5 % of its batch-32 training step on this machine.)
 *
 *   npm run bench -w @alexnet/optim        node dist/bench/index.js --reps 5 --json figures.json
 */
import { writeFileSync } from 'node:fs';
import { device, listBackends, listDevices, randn, type Device, type SgdForm, type Tensor } from '@alexnet/tensor';
import { SGD, type OptimParameter } from '../index.js';

const args = process.argv.slice(2);
const option = (name: string): string | undefined => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined; };
const reps = Number(option('--reps') ?? 5);
const jsonPath = option('--json');

/** The paper net's parameter shapes (1000 classes): weights [out, ...] and biases [out]. */
const SHAPES: [string, number[]][] = [
  ['conv1', [96, 3, 11, 11]], ['conv2', [256, 48, 5, 5]], ['conv3', [384, 256, 3, 3]], ['conv4', [384, 192, 3, 3]],
  ['conv5', [256, 192, 3, 3]], ['fc6', [4096, 9216]], ['fc7', [4096, 4096]], ['fc8', [1000, 4096]],
];

function makeParams(devs: Device[]): OptimParameter[] {
  const out: OptimParameter[] = [];
  for (const [name, shape] of SHAPES) {
    for (const [suffix, full] of [['weight', shape], ['bias', [shape[0]!]]] as const) {
      devs.forEach((d, t) => {
        const rows = full[0]! / devs.length;
        const part = [rows, ...full.slice(1)];
        const rowSize = part.slice(1).reduce((a, b) => a * b, 1);
        const value: Tensor = randn(part, { seed: 1, device: d, std: 0.01 });
        const grad: Tensor = randn(part, { seed: 2, device: d, std: 0.01 });
        out.push({ name: `${name}.${suffix}`, value, grad, fullShape: full, offset: t * rows * rowSize });
      });
    }
  }
  return out;
}

async function main(): Promise<void> {
  const backend = listBackends().find((b) => b.name === 'cpu')?.available ? 'cpu' : 'reference';
  if (backend !== 'cpu') console.log("The native 'cpu' backend is not available; measuring the reference backend.");
  const rows: { placement: string; form: SgdForm; ms: number; gbPerSec: number }[] = [];
  for (const mode of ['one', 'two'] as const) {
    const devs = mode === 'one' ? [device(`${backend}:0`)] : [device(`${backend}:0`), device(`${backend}:1`)];
    if (mode === 'one') devs[0]!.setThreads(2);
    else for (const d of devs) d.setThreads(1);
    const params = makeParams(devs);
    const count = params.reduce((s, p) => s + p.value.size, 0);
    for (const form of ['paper', 'pytorch'] as const) {
      const sgd = new SGD(params, { lr: 1e-6, form });
      const times: number[] = [];
      for (let r = 0; r <= reps; r++) {
        const t0 = performance.now();
        sgd.step();
        await Promise.all(devs.map((d) => d.synchronize()));
        if (r > 0) times.push(performance.now() - t0); // the first run is a warm-up
      }
      const ms = Math.min(...times);
      const row = { placement: mode === 'one' ? `one device, 2 threads` : `two towers, 1 thread each`, form, ms, gbPerSec: (count * 20) / ms / 1e6 };
      rows.push(row);
      console.log(`  SGD step (${form}), ${count.toLocaleString('en')} parameters, ${row.placement}: ${ms.toFixed(1)} ms, ${row.gbPerSec.toFixed(1)} GB/s (best of ${reps})`);
      sgd.dispose();
    }
    for (const p of params) { p.value.dispose(); p.grad.dispose(); }
    for (const d of devs) d.setThreads(undefined);
  }
  if (jsonPath) writeFileSync(jsonPath, JSON.stringify({ backend, reps, rows }, null, 2) + '\n');
}

main().then(() => {
  for (const d of listDevices()) if (d.started) d.engine.destroy(); // stop the native threads before exit
}, (e) => {
  console.error(e);
  process.exitCode = 1;
});
