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
import { copyInto, softmaxCrossEntropy, tensor, tidy, topkCorrect, type Tensor } from '@alexnet/tensor';

/** What the trainer needs of a process group (@alexnet/distributed's ProcessGroup has it). */
export interface Collective {
  readonly rank: number;
  readonly size: number;
  readonly localRank: number;
  readonly localSize: number;
  allReduce<T extends Float32Array | Float64Array>(buf: T, op?: 'sum' | 'max' | 'min'): Promise<T>;
  barrier(): Promise<void>;
}

/** Default bucket: enough to amortise a collective's latency, small enough to start early (PyTorch DDP's is 25 MiB). */
export const BUCKET_BYTES = 25 * 2 ** 20;

/**
 * Sums the gradients of one step across the group, in buckets, in the same order on every rank.
 * `add` is called by Network.backward (onGradients) as each layer's gradients are enqueued: it asks
 * for them back at once (the read lands right after their ops in the device's queue), and each full
 * bucket is all-reduced as soon as its reads are in. Each rank's gradient is scaled by its share of
 * the global batch first (n / total), so the sum is the gradient of the global batch's mean loss.
 */
export class GradientReducer {
  private bucket: Parameter[] = [];
  private bytes = 0;
  /** Submissions in bucket order (MPI needs the same order of collectives on every rank). */
  private chain: Promise<void> = Promise.resolve();
  private readonly done: Promise<void>[] = [];

  constructor(private readonly group: Collective, private readonly scale: number, private readonly bucketBytes = BUCKET_BYTES) {}

  add(params: readonly Parameter[]): void {
    for (const p of params) {
      this.bucket.push(p);
      this.bytes += p.grad.size * 4;
    }
    if (this.bytes >= this.bucketBytes) this.flush();
  }

  private flush(): void {
    const params = this.bucket;
    if (params.length === 0) return;
    this.bucket = [];
    this.bytes = 0;
    const reads = params.map((p) => p.grad.data() as Promise<Float32Array>);
    for (const r of reads) r.catch(() => undefined); // reported through the chain
    this.chain = this.chain.then(async () => {
      const hosts = await Promise.all(reads);
      const buf = new Float32Array(hosts.reduce((a, h) => a + h.length, 0));
      let at = 0;
      for (const h of hosts) {
        for (let i = 0; i < h.length; i++) buf[at + i] = h[i]! * this.scale;
        at += h.length;
      }
      this.done.push(this.group.allReduce(buf, 'sum').then((sum) => {
        let k = 0;
        for (const p of params) {
          const src = tensor(sum.subarray(k, k + p.grad.size), p.grad.shape, { device: p.grad.device });
          copyInto(src, p.grad);
          src.dispose(); // the engine frees it after the queued copy
          k += p.grad.size;
        }
      }));
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
  const reducer = new GradientReducer(group, n / samples.total);
  const out = tidy(() => {
    const logits = model.forward(images, { training: true, step, samples });
    const { loss, dlogits } = softmaxCrossEntropy(logits, labels);
    const correct = topkCorrect(logits, labels, 1);
    model.backward(dlogits!, { onGradients: (_layer, params) => reducer.add(params) });
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
 * else null: a single process trains exactly as without it.
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
  return group.size > 1 ? group : null;
}
