/**
 * Data-parallel training over N processes (launched with mpirun; @alexnet/distributed binds MPI).
 * `--batch` stays the global batch (the paper's 128): every process takes its part of each global
 * batch (the loader's `part`), draws its dropout masks and augmentation by each sample's place in the
 * whole run (so N processes take the same steps as one, up to the order of the gradient sums), and
 * all of them apply the same SGD step to the same averaged gradient. Rank 0 alone writes.
 *
 * The gradients are summed in buckets started from inside backward, last layer first (fc8, fc7, fc6:
 * about 90 % of the 244 MB, first in line), each as soon as its layer's gradient ops are enqueued, so
 * the exchange of the fully-connected layers overlaps the backward pass of the convolutions.
 */
import type { Network, Parameter } from '@alexnet/layers';
import type { SGD } from '@alexnet/optim';
import type { Recipe } from './recipe.js';
import { scale, softmaxCrossEntropy, tensor, tidy, topkCorrect, type Tensor } from '@alexnet/tensor';

/** What the trainer needs of a process group (@alexnet/distributed's ProcessGroup has it). */
export interface Collective {
  readonly rank: number;
  readonly size: number;
  readonly localRank: number;
  readonly localSize: number;
  allReduce<T extends Float32Array | Float64Array>(buf: T, op?: 'sum' | 'max' | 'min'): Promise<T>;
  /** Every rank's `buf`, concatenated in rank order. */
  allGather<T extends Int32Array>(buf: T): Promise<T>;
  barrier(): Promise<void>;
}

/** Default bucket: enough to amortise a collective's latency, small enough to start early (PyTorch DDP's is 25 MiB). */
export const BUCKET_BYTES = 25 * 2 ** 20;

/**
 * Sums the gradients of one step across the group, in buckets, in the same order on every rank.
 * `add` is called by Network.backward (onGradients) as each layer's gradients are enqueued: it asks
 * for them back at once (the read lands right after their ops in the device's queue), and once a
 * bucket is full and its reads are in, its gradients are all-reduced, each in place in its host copy
 * (no concatenation: the package cuts every call into 4 MiB pieces anyway), and written back into the
 * gradient with one queued write. Every pass over the 244 MB counts on a CPU whose cores all compute.
 * `scale` (default 1) multiplies each rank's gradient first; parallelStep scales the loss gradient
 * instead (by n / total: then the sum is the gradient of the global batch's mean loss).
 */
export class GradientReducer {
  private bucket: { p: Parameter; read: Promise<Float32Array> }[] = [];
  private bytes = 0;
  /** Submissions in bucket order (MPI needs the same order of collectives on every rank). */
  private chain: Promise<void> = Promise.resolve();
  private readonly done: Promise<void>[] = [];

  constructor(private readonly group: Collective, private readonly scale = 1, private readonly bucketBytes = BUCKET_BYTES) {}

  add(params: readonly Parameter[]): void {
    for (const p of params) {
      const read = p.grad.data() as Promise<Float32Array>;
      read.catch(() => undefined); // reported through the chain
      this.bucket.push({ p, read });
      this.bytes += p.grad.size * 4;
    }
    if (this.bytes >= this.bucketBytes) this.flush();
  }

  private flush(): void {
    const items = this.bucket;
    if (items.length === 0) return;
    this.bucket = [];
    this.bytes = 0;
    this.chain = this.chain.then(async () => {
      const hosts = await Promise.all(items.map((x) => x.read));
      items.forEach(({ p }, i) => {
        const h = hosts[i]!;
        if (this.scale !== 1) for (let k = 0; k < h.length; k++) h[k] = h[k]! * this.scale;
        // The sum lands in h; one queued write puts it in the gradient (what copyInto of a new
        // tensor does, without the second copy; the engine copies h before write returns).
        this.done.push(this.group.allReduce(h, 'sum').then((sum) => { p.grad.device.engine.write(p.grad.buffer, sum); }));
      });
    });
  }

  /** Reduces what is left and resolves when every gradient holds the global sum. */
  async finish(): Promise<void> {
    this.flush();
    await this.chain;
    await Promise.all(this.done);
  }
}

/** One data-parallel step's result, the same on every rank. */
export interface ParallelStepResult {
  /** The global batch's mean loss and top-1 count, as [1] tensors (like trainStep's). */
  loss: Tensor;
  correct: Tensor;
  /** Images of the global batch. */
  n: number;
  /** Some rank was asked to stop (Ctrl-C): every rank stops after this step. */
  stop: boolean;
}

/**
 * A training step on this rank's part of a global batch (samples [offset, offset + n) of total):
 * forward, loss, backward with the gradient sums started layer by layer, the SGD step on the summed
 * gradient, and the step's loss and accuracy summed over the group (with the ranks' stop requests).
 */
export async function parallelStep(group: Collective, model: Network, optimizer: SGD, images: Tensor, labels: Tensor, step: number,
  samples: { offset: number; total: number }, stopRequested: boolean): Promise<ParallelStepResult> {
  const n = labels.shape[0]!;
  const reducer = new GradientReducer(group);
  const out = tidy(() => {
    const logits = model.forward(images, { training: true, step, samples });
    const { loss, dlogits } = softmaxCrossEntropy(logits, labels);
    const correct = topkCorrect(logits, labels, 1);
    // The gradient of this rank's mean loss, weighted by its share of the global batch (exact for
    // equal power-of-two shares): the ranks' sum is then the global batch's mean-loss gradient.
    model.backward(scale(dlogits!, n / samples.total), { onGradients: (_layer, params) => reducer.add(params) });
    return { loss, correct };
  });
  await reducer.finish();
  optimizer.step();
  model.zeroGrad();
  const [l, c] = await Promise.all([out.loss.data(), out.correct.data()]);
  out.loss.dispose(); out.correct.dispose();
  // The step's statistics are summed after its gradients: the same order of collectives everywhere.
  const s = await group.allReduce(Float64Array.of(l[0]! * n, c[0]!, n, stopRequested ? 1 : 0), 'sum');
  return {
    loss: tensor(Float32Array.of(s[0]! / s[2]!), [1]), correct: tensor(Int32Array.of(s[1]!), [1], { dtype: 'int32' }),
    n: s[2]!, stop: s[3]! > 0,
  };
}

/**
 * The process group when this process was started by mpirun (OMPI_COMM_WORLD_*, PMI_*, PMIX_RANK),
 * else null: a single process trains exactly as without it. Its collectives are watched
 * (watchCollectives): one that waits past ALEXNET_COLLECTIVE_TIMEOUT_S ends the process.
 */
export async function joinLaunchedGroup(env: NodeJS.ProcessEnv = process.env): Promise<Collective | null> {
  const launched = ['OMPI_COMM_WORLD_SIZE', 'PMI_SIZE', 'PMIX_RANK'].some((k) => env[k] !== undefined);
  if (!launched) return null;
  let dist: typeof import('@alexnet/distributed');
  try {
    dist = await import('@alexnet/distributed');
  } catch (e) {
    throw new Error(`this process was started by mpirun, but @alexnet/distributed cannot be loaded (${(e as Error).message}); install it (npm install @alexnet/distributed) with MPI present`);
  }
  const group = await dist.initProcessGroup({ env });
  return group.size > 1 ? watchCollectives(group, collectiveTimeout(env)) : null;
}

/** PyTorch's default for its process groups (30 minutes): long enough for rank 0 to compute a raw folder's statistics while the others wait. */
export const COLLECTIVE_TIMEOUT_S = 1800;

function collectiveTimeout(env: NodeJS.ProcessEnv): number {
  const v = env.ALEXNET_COLLECTIVE_TIMEOUT_S;
  if (v === undefined || v.trim() === '') return COLLECTIVE_TIMEOUT_S;
  const s = Number(v);
  if (!Number.isFinite(s) || s <= 0) throw new RangeError(`Expected a positive number of seconds for ALEXNET_COLLECTIVE_TIMEOUT_S but received ${JSON.stringify(v)}`);
  return s;
}

/**
 * The group with a watchdog on its collectives. When a rank dies, mpirun (or MPICH's Hydra) ends the
 * others within about a second and names the rank; but a rank that stops without dying (stopped,
 * deadlocked, its machine unreachable without a broken connection) or a launcher that does not end
 * the job (srun without --kill-on-bad-exit) would leave the others waiting in a collective forever,
 * and MPI cannot cancel one. So a collective still waiting after `timeoutS` seconds ends this process
 * with a sentence naming it and the wait (exit code 1); the launcher then ends the job.
 */
export function watchCollectives(group: Collective, timeoutS: number, exit: (message: string) => void = dieWith): Collective {
  let seq = 0;
  const watch = <T>(what: string, p: Promise<T>): Promise<T> => {
    const n = ++seq;
    const timer = setTimeout(() => {
      exit(`rank ${group.rank} of ${group.size}: collective #${n} (${what}) has waited ${timeoutS} s for the other processes ` +
        '(ALEXNET_COLLECTIVE_TIMEOUT_S): another process has died or stopped; ending this one so that the launcher ends the job');
    }, timeoutS * 1000);
    timer.unref();
    return p.finally(() => clearTimeout(timer));
  };
  const bytes = (b: { byteLength: number }) => b.byteLength < 1e5 ? `${b.byteLength} bytes` : `${(b.byteLength / 1e6).toFixed(1)} MB`;
  return {
    rank: group.rank, size: group.size, localRank: group.localRank, localSize: group.localSize,
    allReduce: (buf, op) => watch(`an all-reduce of ${bytes(buf)}`, group.allReduce(buf, op)),
    allGather: (buf) => watch(`an all-gather of ${bytes(buf)}`, group.allGather(buf)),
    barrier: () => watch('a barrier', group.barrier()),
  };
}

function dieWith(message: string): void {
  process.stderr.write(`alexnet: ${message}\n`);
  // Exit code 1: @alexnet/distributed then leaves without MPI_Finalize (which would wait for the
  // missing process), and mpirun ends the job.
  process.exit(1);
}

/** What a run's settings check compares (see checkSameSettings). */
export interface RunSettings {
  [field: string]: unknown;
}

/**
 * The settings every rank of a data-parallel run must share: the recipe (except where the data lie
 * and which device this rank uses, which may differ between machines), the class list, where the run
 * starts (a resumed step), the stopping rules, and a fingerprint of each parameter's initial values
 * (so different --weights or --resume files, or a different initialisation, are caught).
 */
export async function runSettings(recipe: Recipe, model: Network, extra: {
  classList: readonly { wnid: string; name: string }[]; start: { epoch: number; batch: number; step: number }; maxSteps?: number; tenCrop?: boolean; maxBadImages?: number;
}): Promise<RunSettings> {
  const { root: _root, ...data } = recipe.data;
  const { devices, ...rest } = recipe;
  const weights: Record<string, string> = {};
  for (const p of model.parameters()) {
    const v = await p.value.data() as Float32Array;
    let s = 0, s2 = 0;
    for (let i = 0; i < v.length; i++) { s += v[i]!; s2 += v[i]! * v[i]! * ((i % 7) + 1); }
    weights[`${p.name}${p.offset ? `@${p.offset}` : ''}`] = `${s.toPrecision(17)} ${s2.toPrecision(17)}`;
  }
  return {
    ...rest, data, devices: devices.length, classList: extra.classList.map((c) => c.wnid), start: extra.start,
    maxSteps: extra.maxSteps ?? null, tenCrop: !!extra.tenCrop, maxBadImages: extra.maxBadImages ?? null, weights,
  };
}

/** The command-line flag that sets a settings field, for the message. */
const FLAGS: Record<string, string> = {
  'optimizer.lr': '--lr', 'optimizer.momentum': '--momentum', 'optimizer.weightDecay': '--weight-decay', 'optimizer.biasDecay': '--no-bias-decay',
  batch: '--batch-size', crop: '--crop', seed: '--seed', epochs: '--epochs', 'model.name': '--model', 'model.positiveBias': '--positive-bias',
  'model.weightStd': '--weight-std', 'model.dropout': '--no-dropout', 'model.lrn': '--no-lrn', 'model.pool': '--pool', 'model.activation': '--activation',
  'lighting.on': '--no-lighting', 'schedule.patience': '--patience', maxSteps: '--max-steps', tenCrop: '--ten-crop', maxBadImages: '--max-bad-images',
  'data.validation.fraction': '--val-fraction', devices: '--devices', placement: '--devices', start: '--resume', classList: 'the data',
  data: 'the data',
};

/** The leaves of a settings object by dotted path (arrays are leaves). */
function leaves(v: unknown, path: string, out: Map<string, unknown>): Map<string, unknown> {
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
    for (const [k, x] of Object.entries(v as object)) leaves(x, path ? `${path}.${k}` : k, out);
  } else {
    out.set(path, v);
  }
  return out;
}

function show(v: unknown, other: unknown): string {
  if (v === undefined) return 'not set';
  if (Array.isArray(v)) {
    const o = Array.isArray(other) ? other : [];
    const i = v.findIndex((x, k) => JSON.stringify(x) !== JSON.stringify(o[k]));
    const first = i >= 0 ? `, item ${i} ${JSON.stringify(v[i])}` : '';
    return JSON.stringify(v).length <= 60 ? JSON.stringify(v) : `a list of ${v.length}${first}`;
  }
  return JSON.stringify(v);
}

/**
 * Checks, at the start of a data-parallel run, that every rank was given the same settings (same
 * data, model, recipe, batch, start): all-gathers each rank's settings and compares them with rank 0's.
 * A difference throws on every rank: rank 0's sentence names each differing field (and the flag that
 * sets it) with its value on each rank; the other ranks' say that rank 0's names them.
 */
export async function checkSameSettings(group: Collective, settings: RunSettings): Promise<void> {
  const mine = new TextEncoder().encode(JSON.stringify(settings));
  const lengths = await group.allGather(Int32Array.of(mine.length));
  const width = Math.max(...lengths);
  const buf = new Int32Array(width);
  buf.set(mine);
  const all = await group.allGather(buf);
  const decoder = new TextDecoder();
  const ranks = Array.from(lengths, (len, r) => leaves(JSON.parse(decoder.decode(Uint8Array.from(all.subarray(r * width, r * width + len)))), '', new Map()));
  const base = ranks[0]!;
  const fields = [...new Set([...base.keys(), ...ranks.flatMap((m) => [...m.keys()])])];
  const differing: string[] = [];
  for (const f of fields) {
    const v0 = JSON.stringify(base.get(f));
    const others = ranks.map((m, r) => ({ r, v: m.get(f) })).filter((x) => x.r > 0 && JSON.stringify(x.v) !== v0);
    if (others.length === 0) continue;
    const [field, name] = f.startsWith('weights.') ? ['weights', `the initial values of ${f.slice('weights.'.length)}`] : [f, f];
    const flag = FLAGS[field] ?? FLAGS[field.split('.').slice(0, 2).join('.')] ?? FLAGS[field.split('.')[0]!];
    const what = `${name}${flag && flag !== 'the data' ? ` (${flag})` : flag ? ' (the data)' : ''}`;
    if (f.startsWith('weights.')) {
      differing.push(`${what} differ on rank${others.length > 1 ? 's' : ''} ${others.map((x) => x.r).join(', ')} from rank 0's (--weights, --resume or the initialisation)`);
    } else {
      differing.push(`${what} is ${show(base.get(f), others[0]!.v)} on rank 0 but ${others.map((x) => `${show(x.v, base.get(f))} on rank ${x.r}`).join(', ')}`);
    }
  }
  if (differing.length === 0) return;
  await group.barrier(); // every rank has its sentence before any ends (mpirun then ends the rest)
  const shown = differing.slice(0, 4).join('; ') + (differing.length > 4 ? `; and ${differing.length - 4} more` : '');
  throw new Error(group.rank === 0
    ? `the ${group.size} processes were not started with the same settings: ${shown}. Every process of a data-parallel run must be given the same data, model and recipe (the same command line)`
    : `rank ${group.rank}: the ${group.size} processes were not started with the same settings (rank 0's message says which)`);
}
