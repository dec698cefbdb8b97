/**
 * Benchmark of the whole model: inference (forward) and a full training step (`trainStep`: forward,
 * loss, backward, the SGD update of every parameter, exactly what the trainer repeats) of the paper's net, at batch 32 and 128, on one device
 * with 2 threads and on two devices (the two towers, §3.2) with 1 thread each, side by side with the
 * peers found on the machine, in the same rounds (peers.ts): PyTorch 1.13 + OpenBLAS (training and
 * inference) and onnxruntime-node (inference), 2 threads each; and the levers: the same one-device
 * runs with every convolution im2col + GEMM (before Winograd), so the ratio comes from one run.
 *
 *   npm run bench -w @alexnet/train                    both placements, batch 32 and 128 (and inference at batch 1)
 *   node dist/bench/index.js --batches 32 --reps 2     fewer
 *   node dist/bench/index.js --modes two               only the two-tower placement
 *   node dist/bench/index.js --json figures.json       also write the figures
 *   node dist/bench/index.js --backend reference --batches 1 --reps 1   the TypeScript oracle (slow)
 *   node dist/bench/index.js --sections profile --batches 32   per-layer times of a training step
 *   node dist/bench/index.js --no-peers --no-levers     ours only
 *
 * GFLOP/s counts the conv and linear layers only (flopsPerImage: 1.449 GFLOP forward, 4.136 training
 * per image), as PyTorch's figures do. Every configuration runs once per round (after a warm-up
 * round), interleaved, so that all see the same conditions on a shared machine, each after a 30 ms
 * pause (so no peer's spinning thread pool is still on the cores); times are medians
 * over --reps rounds, and the best run is shown too (the least disturbed).
 */
import { writeFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { createModel, flopsPerImage, inferShapes, paperDescription, type Network } from '@alexnet/layers';
import { SGD } from '@alexnet/optim';
import { device, dispose, listBackends, listDevices, memory, randn, registerBackend, tensor, type Backend, type Device } from '@alexnet/tensor';
import { trainStep } from '../step.js';
import { startOrtPeer, startTorchPeer, type Peer } from './peers.js';
import { benchTrainer } from './trainer-run.js';

const args = process.argv.slice(2);
const option = (name: string): string | undefined => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined; };
const jsonPath = option('--json');
const reps = Number(option('--reps') ?? 3);
const modes = (option('--modes') ?? 'one,two').split(',') as ('one' | 'two')[];
const sections = (option('--sections') ?? 'infer,train,trainer').split(',');
const timed = sections.filter((s) => s === 'infer' || s === 'train') as ('infer' | 'train')[];

/** PyTorch on this 2-core machine, 2 threads (img/s). */
const PYTORCH: Record<string, number> = { 'infer/32': 94.8, 'infer/128': 79.9, 'train/32': 25.9, 'train/128': 24.1 };

interface CpuModule { cpuBackend?: Backend; setCpuConvAlgorithm?: (pass: 'forward' | 'backwardData' | 'backwardFilter', algorithm: 'auto' | 'direct') => string }

/** The native engine's module of @alexnet/tensor (dist/cpu), its backend registered; undefined without it. */
async function ensureCpuBackend(): Promise<CpuModule | undefined> {
  try {
    const url = new URL('./cpu/index.js', import.meta.resolve('@alexnet/tensor'));
    const mod = (await import(url.href)) as CpuModule;
    if (mod.cpuBackend && !listBackends().some((b) => b.name === 'cpu')) registerBackend(mod.cpuBackend);
    return mod;
  } catch {
    return undefined; // No native engine: reported below.
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

interface Config {
  /** ours: the engine as it is; direct: ours with every convolution im2col + GEMM (before Winograd); a peer. */
  who: 'ours' | 'direct' | 'torch' | 'ort';
  mode: 'one' | 'two';
  section: 'infer' | 'train';
  batch: number;
  run: () => Promise<number>;
}

const CONV_PASSES = ['forward', 'backwardData', 'backwardFilter'] as const;

async function main(): Promise<void> {
  const cpuModule = await ensureCpuBackend();
  let backend = option('--backend') ?? 'cpu';
  const cpu = listBackends().find((b) => b.name === 'cpu');
  if (backend === 'cpu' && !cpu?.available) {
    console.log(`The native 'cpu' backend is not available (${cpu?.reason ?? 'not registered'}); measuring the reference backend at batch 1.`);
    backend = 'reference';
  }
  const batches = (option('--batches') ?? (backend === 'reference' ? '1' : '1,32,128')).split(',').map(Number);
  const usePeers = backend === 'cpu' && !args.includes('--no-peers');
  const levers = backend === 'cpu' && !args.includes('--no-levers') && !!cpuModule?.setCpuConvAlgorithm;
  const desc = paperDescription();
  const flops = flopsPerImage(desc);
  console.log(`@alexnet/train bench: the paper net (${desc.input.size}x${desc.input.size}, ${(flops.forward / 1e9).toFixed(3)} GFLOP forward, ` +
    `${(flops.training / 1e9).toFixed(3)} GFLOP training per image), backend '${backend}', median of ${reps} rounds after a warm-up round; configurations interleaved within each round`);
  console.log(`load average ${loadavg().map((l) => l.toFixed(2)).join(' ')} on ${availableParallelism()} cores (other jobs share the machine: compare ratios within this run)`);
  const rows: Row[] = [];

  // Peers in child processes, warm, one run per request, interleaved with ours.
  const peers: { torch?: Peer; ort?: Peer } = {};
  if (usePeers) {
    // The same net on both: the paper's (its LRN within or across towers as ours), weights of seed 1.
    const peerNet = { name: 'paper', classes: 1000, inputSize: desc.input.size, lrnAcrossTowers: desc.layers.some((l) => l.kind === 'lrn' && l.inputs === 'all') } as const;
    const t = await startTorchPeer(2, peerNet);
    if (typeof t === 'string') console.log(t); else peers.torch = t;
    const weightsNet = createModel(desc, { devices: ['cpu:0'], seed: 1 });
    const o = await startOrtPeer(2, peerNet, weightsNet.stateDict());
    weightsNet.dispose();
    if (typeof o === 'string') console.log(o); else peers.ort = o;
    for (const p of [peers.torch, peers.ort]) if (p) console.log(`peer: ${p.label}`);
  }

  // Both placements are built up front and their runs interleaved, round by round, so that both
  // see the same conditions on a shared machine.
  const placements = modes.map((mode) => {
    const devs = mode === 'one' ? [device(`${backend}:0`)] : [device(`${backend}:0`), device(`${backend}:1`)];
    const apply = (algorithm: 'auto' | 'direct' = 'auto') => {
      if (mode === 'one') devs[0]!.setThreads(2);
      else for (const d of devs) d.setThreads(1);
      if (levers) for (const pass of CONV_PASSES) cpuModule!.setCpuConvAlgorithm!(pass, algorithm);
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
  const configs: Config[] = [];
  const profiles: { pl: (typeof placements)[number]; batch: number; run: () => Promise<void> }[] = [];
  for (const pl of placements) {
    for (const { batch, x, labels } of inputs) {
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
      if (sections.includes('profile')) profiles.push({ pl, batch, run: runs.train });
      const timedRun = (section: 'infer' | 'train', algorithm: 'auto' | 'direct') => async () => {
        pl.apply(algorithm);
        const t0 = performance.now();
        await runs[section]();
        return performance.now() - t0;
      };
      for (const section of timed) {
        if (section === 'train' && batch < 8 && backend !== 'reference') continue; // inference only: an application's one image at a time
        configs.push({ who: 'ours', mode: pl.mode, section, batch, run: timedRun(section, 'auto') });
        if (levers && pl.mode === 'one') configs.push({ who: 'direct', mode: pl.mode, section, batch, run: timedRun(section, 'direct') });
      }
    }
  }
  if (modes.includes('one')) {
    for (const { batch } of inputs) {
      for (const section of timed) {
        if (section === 'train' && batch < 8 && backend !== 'reference') continue;
        if (peers.torch) configs.push({ who: 'torch', mode: 'one', section, batch, run: () => peers.torch!.run(section, batch) });
        if (peers.ort && section === 'infer') configs.push({ who: 'ort', mode: 'one', section, batch, run: () => peers.ort!.run(section, batch) });
      }
    }
  }

  for (const p of profiles) {
    p.pl.apply();
    await profileStep(p.pl.net, p.run, p.batch, p.pl.mode);
  }
  const times = configs.map(() => [] as number[]);
  for (let r = -1; r < reps; r++) { // round -1 warms every configuration up
    for (const [i, c] of configs.entries()) {
      // Each configuration starts on a settled machine: the peers' thread pools (onnxruntime's, and
      // OpenMP's under PyTorch) spin for a while after a run, which would take cores from the next one.
      await new Promise((done) => setTimeout(done, 30));
      const ms = await c.run();
      if (r >= 0) times[i]!.push(ms);
    }
  }
  for (const pl of placements) pl.apply();
  const result = (who: Config['who'], mode: string, section: string, batch: number) => {
    const i = configs.findIndex((c) => c.who === who && c.mode === mode && c.section === section && c.batch === batch);
    if (i < 0) return undefined;
    const ms = median(times[i]!), bestMs = Math.min(...times[i]!);
    return { ms, bestMs, ips: (batch * 1000) / ms, bestIps: (batch * 1000) / bestMs };
  };
  for (const [i, c] of configs.entries()) {
    if (c.who !== 'ours') continue;
    const section = c.section, batch = c.batch;
    const r = result('ours', c.mode, section, batch)!;
    const gflops = (r.ips * (section === 'infer' ? flops.forward : flops.training)) / 1e9;
    const pl = placements.find((p) => p.mode === c.mode)!;
    const torch = result('torch', 'one', section, batch);
    const row: Row = {
      mode: c.mode === 'one' ? 'one device' : 'two towers', devices: pl.devs.map((d) => d.name).join('+'), threads: pl.threads, section, batch,
      ms: r.ms, bestMs: r.bestMs, imgPerSec: r.ips, bestImgPerSec: r.bestIps, gflops, pytorch: torch?.ips ?? PYTORCH[`${section}/${batch}`],
    };
    void i;
    rows.push(row);
  }
  for (const { x, labels } of inputs) { x.dispose(); labels.dispose(); }
  for (const pl of placements) {
    pl.sgd.dispose();
    pl.net.dispose();
    for (const d of pl.devs) d.setThreads(undefined);
  }
  for (const p of [peers.torch, peers.ort]) p?.close();

  const f1 = (v: number | undefined) => (v === undefined ? '-' : v.toFixed(1));
  const ratio = (a: number | undefined, b: number | undefined) => (a !== undefined && b !== undefined ? `${(a / b).toFixed(2)}x` : '-');
  console.log(`\nSide by side, one run (${reps} rounds, medians; best of the rounds in brackets), img/s:`);
  console.log(`| placement | pass | batch | @alexnet (median) | @alexnet (best) | GFLOP/s | ${peers.torch?.label ?? 'PyTorch (README figure, not measured here)'} | ours / PyTorch | ${peers.ort?.label ?? 'onnxruntime-node (not measured)'} | ours / onnxruntime | goal |`);
  console.log('|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    const torch = result('torch', 'one', r.section, r.batch); // PyTorch on one device, 2 threads, for both placements
    const ort = r.mode === 'one device' && r.section === 'infer' ? result('ort', 'one', 'infer', r.batch) : undefined;
    const goal = r.mode !== 'one device' ? '' : r.section === 'train' ? (r.batch === 128 ? '>= 2.5x PyTorch' : '') : r.batch >= 32 ? '>= 1.2x onnxruntime' : '';
    console.log(`| ${r.mode} (${r.threads} threads) | ${r.section === 'infer' ? 'inference' : 'training step'} | ${r.batch} | ${f1(r.imgPerSec)} | ${f1(r.bestImgPerSec)} | ${r.gflops.toFixed(1)} | ` +
      `${torch ? f1(torch.ips) : r.pytorch ? `(${f1(r.pytorch)}, README)` : '-'} | ${torch ? ratio(r.imgPerSec, torch.ips) : '-'} | ${f1(ort?.ips)} | ${ratio(r.imgPerSec, ort?.ips)} | ${goal} |`);
  }
  if (levers) {
    console.log('\nLevers, one device, 2 threads, same run: every convolution im2col + GEMM (before) against Winograd for the stride-1 3x3 and 5x5 layers (after), img/s:');
    console.log('| pass | batch | direct convolutions | Winograd (as shipped) | after / before |');
    console.log('|---|---|---|---|---|');
    for (const { batch } of inputs) {
      for (const section of timed) {
        const a = result('direct', 'one', section, batch), b = result('ours', 'one', section, batch);
        if (a && b) console.log(`| ${section === 'infer' ? 'inference' : 'training step'} | ${batch} | ${f1(a.ips)} | ${f1(b.ips)} | ${ratio(b.ips, a.ips)} |`);
      }
    }
  }
  let trainerFig: Awaited<ReturnType<typeof benchTrainer>> | undefined;
  if (backend === 'cpu' && sections.includes('trainer') && modes.includes('one')) {
    trainerFig = await benchTrainer({ steps: Number(option('--trainer-steps') ?? 20), workers: [2, 1], log: (l) => console.log(l) });
    const own = result('ours', 'one', 'train', 128);
    console.log(`\nThe trainer on real data (train(): sample ImageNet shards, loader workers, transform, upload, read-back, metrics), batch 128, ${trainerFig.classes} classes, one device, 2 threads, ` +
      `median step of ${trainerFig.timedSteps} in steady state (of ${trainerFig.steps}), against trainStep alone on the same net (median step, measured before, between and after):`);
    console.log('| what | img/s | / trainStep alone | / the step benchmark above (1000 classes) | goal |');
    console.log('|---|---|---|---|---|');
    for (const [w, ips] of Object.entries(trainerFig.trainer)) {
      console.log(`| train(), ${w} loader worker${w === '1' ? '' : 's'} | ${f1(ips)} | ${ratio(ips, trainerFig.step)} | ${ratio(ips, own?.ips)} | >= 0.97 |`);
    }
    console.log(`| trainStep alone, data on the device | ${f1(trainerFig.step)} | 1.00x | ${ratio(trainerFig.step, own?.ips)} | |`);
  }
  console.log(`\nGoals: training step >= 2.5x PyTorch + OpenBLAS at batch 128 (moonshot 3x), inference >= 1.2x onnxruntime-node at batch 32 and 128, on this machine, in this run.`);
  console.log(`load average at the end ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  console.log(`Live tensors at the end: ${memory().tensors}`);
  if (jsonPath) {
    const peerRows = configs.filter((c) => c.who !== 'ours').map((c) => ({ who: c.who, mode: c.mode, section: c.section, batch: c.batch, ...result(c.who, c.mode, c.section, c.batch) }));
    writeFileSync(jsonPath, JSON.stringify({ backend, reps, flopsPerImage: flops, loadavg: loadavg(), peers: { torch: peers.torch?.label, ort: peers.ort?.label }, rows, others: peerRows, trainer: trainerFig }, null, 2) + '\n');
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
