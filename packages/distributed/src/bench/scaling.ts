/**
 * One process of the scaling benchmark (run by bench/index.ts): the paper net (§3.5, both towers on
 * one device) trained at each global batch, as @alexnet/train trains it.
 * - alone (no mpirun): `trainStep` on the whole global batch, one device with BENCH_THREADS threads;
 * - under mpirun: `parallelStep` on this rank's slice (global batch / ranks), the gradients summed
 *   in 25 MiB buckets started from backward, every rank applying the same SGD step; and, for the
 *   overhead, `trainStep` on the same slice without any exchange (what each rank computes).
 * Rank 0 prints one JSON line per batch and form: the best and the median step time over BENCH_STEPS
 * steps after a warm-up step (the slowest rank deciding each step), the forms interleaved step by step.
 *
 * @alexnet/train depends on this package, so it is imported at run time (not declared: npm workspaces
 * resolve it), and needs to be built: `npx turbo run build --filter=@alexnet/train...`.
 */
import { initProcessGroup } from '../index.js';

interface Tensor { dispose(): void; data(): Promise<ArrayLike<number>> }
interface Network { parameters(): unknown[]; dispose(): void }
interface TrainModule {
  trainStep(model: Network, optimizer: unknown, images: Tensor, labels: Tensor, step: number): { loss: Tensor; correct: Tensor };
  parallelStep(group: unknown, model: Network, optimizer: unknown, images: Tensor, labels: Tensor, step: number,
    samples: { offset: number; total: number }, stop: boolean): Promise<{ loss: Tensor; correct: Tensor; n: number }>;
}
interface LayersModule {
  paperDescription(o?: { inputSize?: number }): { input: { size: number } };
  createModel(desc: unknown, opts: { devices: string[]; seed: number }): Network;
}
interface TensorModule {
  device(name: string): { setThreads(n: number | undefined): void; name: string };
  randn(shape: number[], opts: { seed: number; device: string }): Tensor;
  tensor(data: Int32Array, shape: number[], opts: { device: string; dtype: 'int32' }): Tensor;
  listBackends(): { name: string; available: boolean; reason?: string }[];
  registerBackend(b: unknown): void;
}

const load = <T>(name: string): Promise<T> => import(name) as Promise<T>;
const [train, layers, tensorMod, optim] = await Promise.all([
  load<TrainModule>('@alexnet/train'), load<LayersModule>('@alexnet/layers'), load<TensorModule>('@alexnet/tensor'),
  load<{ SGD: new (params: unknown[], opts: { lr: number; form: 'paper' }) => unknown }>('@alexnet/optim'),
]);
// The native CPU engine, registered as @alexnet/train's bench does where importing tensor did not.
if (!tensorMod.listBackends().some((b) => b.name === 'cpu' && b.available)) {
  try {
    const mod = (await import(new URL('./cpu/index.js', import.meta.resolve('@alexnet/tensor')).href)) as { cpuBackend?: unknown };
    if (mod.cpuBackend) tensorMod.registerBackend(mod.cpuBackend);
  } catch { /* reported below */ }
}
const cpu = tensorMod.listBackends().find((b) => b.name === 'cpu');
if (!cpu?.available) throw new Error(`the native 'cpu' backend of @alexnet/tensor is not available (${cpu?.reason ?? 'not registered'}): the scaling benchmark needs it`);

const group = await initProcessGroup();
const batches = (process.env.BENCH_BATCHES ?? '64,128').split(',').map(Number);
const steps = Number(process.env.BENCH_STEPS ?? 4);
const threads = Number(process.env.BENCH_THREADS ?? (group.size > 1 ? 1 : 2));
const size = Number(process.env.BENCH_INPUT ?? 0);
const dev = tensorMod.device('cpu:0');
dev.setThreads(threads);
const desc = layers.paperDescription(size ? { inputSize: size } : {});
const side = desc.input.size;
const model = layers.createModel(desc, { devices: ['cpu:0'], seed: 1 });
// A tiny lr keeps the weights where they are over the repetitions; the work is the same.
const sgd = new optim.SGD(model.parameters(), { lr: 1e-6, form: 'paper' });
let step = 0;

const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]!; };

for (const global of batches) {
  if (global % group.size !== 0) throw new Error(`the global batch ${global} does not split evenly over ${group.size} ranks`);
  const n = global / group.size, offset = group.rank * n;
  const x = tensorMod.randn([n, 3, side, side], { seed: 3 + group.rank, device: 'cpu:0' });
  const labels = tensorMod.tensor(Int32Array.from({ length: n }, (_, i) => ((offset + i) * 37) % 1000), [n], { device: 'cpu:0', dtype: 'int32' });
  const forms: { form: string; run: () => Promise<void> }[] = [{
    form: group.size > 1 ? 'parallelStep' : 'trainStep',
    run: async () => {
      const out = group.size > 1
        ? await train.parallelStep(group, model, sgd, x, labels, step++, { offset, total: global }, false)
        : train.trainStep(model, sgd, x, labels, step++);
      await out.loss.data();
      out.loss.dispose(); out.correct.dispose();
    },
  }];
  if (group.size > 1) {
    forms.push({
      form: 'trainStep on the slice, no exchange',
      run: async () => {
        const out = train.trainStep(model, sgd, x, labels, step++);
        await out.loss.data();
        out.loss.dispose(); out.correct.dispose();
      },
    });
  }
  // The forms interleaved step by step, so that both see the same conditions on a shared machine.
  const times = forms.map(() => [] as number[]);
  for (let s = 0; s <= steps; s++) {
    for (const [i, f] of forms.entries()) {
      await group.barrier();
      const t0 = performance.now();
      await f.run();
      const [worst] = await group.allReduce(Float64Array.of(performance.now() - t0), 'max');
      if (s > 0) times[i]!.push(worst!); // step 0 warms up (allocations, first touch)
    }
  }
  if (group.rank === 0) {
    for (const [i, f] of forms.entries()) {
      const best = Math.min(...times[i]!);
      console.log(JSON.stringify({ form: f.form, batch: global, ranks: group.size, threads, input: side, stepMs: best, medianMs: median(times[i]!), imgPerSec: global / (best / 1000) }));
    }
  }
  x.dispose(); labels.dispose();
}
model.dispose();
await group.close();
