/**
 * Benchmark of the whole model: inference (forward) and a full training step (`trainStep`: forward,
 * loss, backward, the SGD update of every parameter, exactly what the trainer repeats) of the paper's net, at batch 32 and 128, on one device
 * with 2 threads and on two devices (the two towers, §3.2) with 1 thread each. Prints a table with
 * PyTorch's figures on this kind of machine beside ours (the paper's net written in PyTorch 1.13,
 * OpenBLAS + oneDNN, 2 threads, measured on the same kind of machine).
 *
 *   npm run bench -w @alexnet/train                    both placements, batch 32 and 128
 *   node dist/bench/index.js --batches 32 --reps 2     fewer
 *   node dist/bench/index.js --modes two               only the two-tower placement
 *   node dist/bench/index.js --json figures.json       also write the figures
 *   node dist/bench/index.js --backend reference --batches 1 --reps 1   the TypeScript oracle (slow)
 *   node dist/bench/index.js --sections profile --batches 32   per-layer times of a training step
 *
 * GFLOP/s counts the conv and linear layers only (flopsPerImage: 1.449 GFLOP forward, 4.136 training
 * per image), as PyTorch's figures do. Every configuration runs once per round (after a warm-up
 * round), interleaved, so that all see the same conditions on a shared machine; times are medians
 * over --reps rounds, and the best run is shown too (the least disturbed).
 */
import { writeFileSync } from 'node:fs';
import { createModel, flopsPerImage, inferShapes, paperDescription, type Network } from '@alexnet/layers';
import { SGD } from '@alexnet/optim';
import { device, dispose, listBackends, listDevices, memory, randn, registerBackend, tensor, type Backend, type Device } from '@alexnet/tensor';
import { trainStep } from '../step.js';

const args = process.argv.slice(2);
const option = (name: string): string | undefined => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined; };
const jsonPath = option('--json');
const reps = Number(option('--reps') ?? 3);
const modes = (option('--modes') ?? 'one,two').split(',') as ('one' | 'two')[];
const sections = (option('--sections') ?? 'infer,train').split(',');
const timed = sections.filter((s) => s === 'infer' || s === 'train') as ('infer' | 'train')[];

/** PyTorch on this 2-core machine, 2 threads (img/s). */
const PYTORCH: Record<string, number> = { 'infer/32': 94.8, 'infer/128': 79.9, 'train/32': 25.9, 'train/128': 24.1 };

async function ensureCpuBackend(): Promise<void> {
  if (listBackends().some((b) => b.name === 'cpu')) return;
  // The native engine ships in @alexnet/tensor's dist/cpu; register it if this build of the package
  // does not do so on import yet.
  try {
    const url = new URL('./cpu/index.js', import.meta.resolve('@alexnet/tensor'));
    const mod = (await import(url.href)) as { cpuBackend?: Backend };
    if (mod.cpuBackend) registerBackend(mod.cpuBackend);
  } catch {
    // No native engine: reported below.
  }
}

interface Row {
  mode: string;
  devices: string;
  threads: string;
  section: 'infer' | 'train';
  batch: number;
  /** Median and best (least disturbed: the machine is shared) of the timed runs. */
  ms: number;
  bestMs: number;
  imgPerSec: number;
  bestImgPerSec: number;
  gflops: number;
  pytorch: number | undefined;
}

function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function syncAll(devs: Device[]): Promise<void> {
  await Promise.all(devs.map((d) => d.synchronize()));
}

/**
 * Per-layer wall times of one training step (after a warm-up step): the network waits for every
 * device after each stage, so the towers' overlap within a stage is kept but not across stages.
 */
async function profileStep(net: Network, step: () => Promise<void>, batch: number, mode: string): Promise<void> {
  await step();
  const times = new Map<string, { forward: number; backward: number }>();
  net.profiler = (stage, pass, ms) => {
    const t = times.get(stage) ?? { forward: 0, backward: 0 };
    t[pass] += ms;
    times.set(stage, t);
  };
  const t0 = performance.now();
  await step();
  const total = performance.now() - t0;
  net.profiler = undefined;
  const macs = new Map(inferShapes(net.description).map((r) => [r.spec.name, r.macs]));
  console.log(`\n  per-layer profile, ${mode === 'one' ? 'one device' : 'two towers'}, batch ${batch}: step ${total.toFixed(0)} ms (ms; GFLOP/s of conv/linear layers; backward = 2x forward FLOPs, conv1 1x)`);
  console.log(`  ${'layer'.padEnd(8)} ${'fwd ms'.padStart(8)} ${'bwd ms'.padStart(8)} ${'%'.padStart(6)} ${'fwd GF/s'.padStart(9)} ${'bwd GF/s'.padStart(9)}`);
  let sum = 0;
  for (const [name, t] of times) {
    const m = macs.get(name) ?? 0;
    sum += t.forward + t.backward;
    const f = m ? ((2 * m * batch) / t.forward / 1e6).toFixed(1) : '';
    const b = m ? (((name === 'conv1' ? 2 : 4) * m * batch) / t.backward / 1e6).toFixed(1) : '';
    console.log(`  ${name.padEnd(8)} ${t.forward.toFixed(1).padStart(8)} ${t.backward.toFixed(1).padStart(8)} ${((100 * (t.forward + t.backward)) / total).toFixed(1).padStart(6)} ${f.padStart(9)} ${b.padStart(9)}`);
  }
  console.log(`  ${'rest'.padEnd(8)} ${(total - sum).toFixed(1).padStart(17)} ${((100 * (total - sum)) / total).toFixed(1).padStart(6)}   (loss, SGD update of all parameters)`);
}

async function main(): Promise<void> {
  await ensureCpuBackend();
  let backend = option('--backend') ?? 'cpu';
  const cpu = listBackends().find((b) => b.name === 'cpu');
  if (backend === 'cpu' && !cpu?.available) {
    console.log(`The native 'cpu' backend is not available (${cpu?.reason ?? 'not registered'}); measuring the reference backend at batch 1.`);
    backend = 'reference';
  }
  const batches = (option('--batches') ?? (backend === 'reference' ? '1' : '32,128')).split(',').map(Number);
  const desc = paperDescription();
  const flops = flopsPerImage(desc);
  console.log(`@alexnet/train bench: the paper net (${desc.input.size}x${desc.input.size}, ${(flops.forward / 1e9).toFixed(3)} GFLOP forward, ` +
    `${(flops.training / 1e9).toFixed(3)} GFLOP training per image), backend '${backend}', median of ${reps} rounds after a warm-up round; configurations interleaved within each round`);
  const rows: Row[] = [];

  // Both placements are built up front and their runs interleaved, round by round, so that both
  // see the same conditions on a shared machine.
  const placements = modes.map((mode) => {
    const devs = mode === 'one' ? [device(`${backend}:0`)] : [device(`${backend}:0`), device(`${backend}:1`)];
    const apply = () => {
      if (mode === 'one') devs[0]!.setThreads(2);
      else for (const d of devs) d.setThreads(1);
    };
    apply();
    const net: Network = createModel(desc, { devices: devs, seed: 1 });
    // A tiny lr keeps the weights where they are over the repetitions; the work is the same.
    const sgd = new SGD(net.parameters(), { lr: 1e-6, form: 'paper' });
    return { mode, devs, apply, net, sgd, threads: mode === 'one' ? '2' : '1+1' };
  });
  const inputs = batches.map((batch) => ({
    batch,
    x: randn([batch, 3, desc.input.size, desc.input.size], { seed: 3, device: `${backend}:0` }),
    labels: tensor(Int32Array.from({ length: batch }, (_, i) => (i * 37) % 1000), [batch], { device: `${backend}:0`, dtype: 'int32' }),
  }));
  let step = 0;
  const configs = placements.flatMap((pl) => inputs.flatMap(({ batch, x, labels }) => {
    const { net, sgd, devs } = pl;
    const runs: Record<'infer' | 'train', () => Promise<void>> = {
      infer: async () => {
        const y = net.forward(x);
        await y.data(); // waits for both towers (the logits gather depends on them)
        y.dispose();
      },
      train: async () => {
        const { loss, correct } = trainStep(net, sgd, x, labels, step++);
        await syncAll(devs);
        dispose([loss, correct]);
      },
    };
    return [
      ...(sections.includes('profile') ? [{ pl, batch, section: 'profile' as const, run: runs.train }] : []),
      ...timed.map((section) => ({ pl, batch, section, run: runs[section] })),
    ];
  }));

  for (const c of configs.filter((c) => c.section === 'profile')) {
    c.pl.apply();
    await profileStep(c.pl.net, c.run, c.batch, c.pl.mode);
  }
  const timedConfigs = configs.filter((c) => c.section !== 'profile');
  const times = timedConfigs.map(() => [] as number[]);
  for (let r = -1; r < reps; r++) { // round -1 warms every configuration up
    for (const [i, c] of timedConfigs.entries()) {
      c.pl.apply();
      const t0 = performance.now();
      await c.run();
      if (r >= 0) times[i]!.push(performance.now() - t0);
    }
  }
  for (const [i, c] of timedConfigs.entries()) {
    const section = c.section as 'infer' | 'train', batch = c.batch;
    const ms = median(times[i]!), bestMs = Math.min(...times[i]!);
    const ips = (batch * 1000) / ms, bestIps = (batch * 1000) / bestMs;
    const gflops = (ips * (section === 'infer' ? flops.forward : flops.training)) / 1e9;
    const row: Row = {
      mode: c.pl.mode === 'one' ? 'one device' : 'two towers', devices: c.pl.devs.map((d) => d.name).join('+'), threads: c.pl.threads, section, batch,
      ms, bestMs, imgPerSec: ips, bestImgPerSec: bestIps, gflops, pytorch: PYTORCH[`${section}/${batch}`],
    };
    rows.push(row);
    console.log(`  ${row.mode.padEnd(11)} ${row.devices.padEnd(11)} threads ${row.threads.padEnd(4)} ${section.padEnd(6)} batch ${String(batch).padStart(4)}: ` +
      `${ms.toFixed(0).padStart(7)} ms  ${ips.toFixed(1).padStart(7)} img/s (best ${bestIps.toFixed(1)})  ${gflops.toFixed(1).padStart(6)} GFLOP/s` +
      (row.pytorch ? `   (PyTorch 2 threads: ${row.pytorch} img/s, ours ${(ips / row.pytorch).toFixed(2)}x)` : ''));
  }
  for (const { x, labels } of inputs) { x.dispose(); labels.dispose(); }
  for (const pl of placements) {
    pl.sgd.dispose();
    pl.net.dispose();
    for (const d of pl.devs) d.setThreads(undefined);
  }

  console.log('\n| placement | devices | threads | pass | batch | ms (median) | img/s (median) | img/s (best) | GFLOP/s (median) | PyTorch img/s (2 threads) | ratio (median) |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    console.log(`| ${r.mode} | ${r.devices} | ${r.threads} | ${r.section === 'infer' ? 'inference' : 'training step'} | ${r.batch} | ${r.ms.toFixed(0)} | ` +
      `${r.imgPerSec.toFixed(1)} | ${r.bestImgPerSec.toFixed(1)} | ${r.gflops.toFixed(1)} | ${r.pytorch ?? '-'} | ${r.pytorch ? (r.imgPerSec / r.pytorch).toFixed(2) + 'x' : '-'} |`);
  }
  console.log(`\nGoals at batch 128: training >= 60 img/s, inference >= 160 img/s; the machine's limit for training is about 91 img/s.`);
  console.log(`Live tensors at the end: ${memory().tensors}`);
  if (jsonPath) {
    writeFileSync(jsonPath, JSON.stringify({ backend, reps, flopsPerImage: flops, rows }, null, 2) + '\n');
    console.log(`Figures written to ${jsonPath}`);
  }
}

main().then(() => {
  // Stop the engines' threads before exit: the native cpu engine (as of this writing) aborts at
  // process exit after a cross-device copy unless its engines are destroyed first.
  for (const d of listDevices()) if (d.started) d.engine.destroy();
}, (e) => {
  console.error(e);
  process.exitCode = 1;
});
