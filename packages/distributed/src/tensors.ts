/**
 * All-reduce of @alexnet/tensor tensors through the host: each tensor is read back (await t.data(),
 * which waits for the device's queue to reach it), all-reduced in a host array, and written back
 * (a host tensor copied into it with copyInto). Correct on every device and simple; it copies each
 * tensor twice (device to host, host to device) and holds one host copy per tensor while in flight.
 * A zero-copy path is described in the README.
 */
import { copyInto, tensor, type Tensor } from '@alexnet/tensor';
import type { CollectiveArray, ProcessGroup, ReduceOp } from './group.js';

export interface AllReduceTensorsOptions {
  /** Divide by the group's size after the sum (mean gradients). float32/float64 only. */
  average?: boolean;
  /** 'sum' (default), 'max' or 'min'. */
  op?: ReduceOp;
}

/**
 * All-reduces `tensors` in place across `group`, one collective per tensor, started in the order
 * given (every rank must pass its tensors in the same order, with the same shapes and dtypes), while
 * later tensors are still being read back. Resolves when every tensor holds the result. Don't write to
 * the tensors until it resolves. With a single-process group it returns without touching them.
 */
export async function allReduceTensors(group: ProcessGroup, tensors: readonly Tensor[], opts: AllReduceTensorsOptions = {}): Promise<void> {
  const op = opts.op ?? 'sum';
  if (op !== 'sum' && op !== 'max' && op !== 'min') throw new TypeError(`Expected one of 'sum', 'max', 'min' for op but received ${String(op)}`);
  if (opts.average && op !== 'sum') throw new TypeError(`average divides a sum: it cannot be used with op '${op}'`);
  if (!Array.isArray(tensors)) throw new TypeError('Expected an array of tensors for tensors');
  for (const [i, t] of tensors.entries()) {
    if (t.dtype !== 'float32' && t.dtype !== 'float64' && t.dtype !== 'int32') {
      throw new TypeError(`Expected a float32, float64 or int32 tensor for tensors[${i}] but received ${t.toString()}`);
    }
    if (opts.average && t.dtype === 'int32') throw new TypeError(`average needs float tensors: tensors[${i}] is ${t.toString()}`);
    if (t.isDisposed) throw new Error(`tensors[${i}] was disposed`);
  }
  if (group.size === 1) return;
  const reads = tensors.map((t) => t.data() as Promise<CollectiveArray>);
  for (const r of reads) r.catch(() => {}); // the first failure is reported below; don't leave others unhandled
  const done: Promise<void>[] = [];
  const size = group.size;
  for (let i = 0; i < tensors.length; i++) {
    const t = tensors[i]!;
    const host = await reads[i]!;
    done.push(group.allReduce(host, op).then((h) => {
      if (opts.average) for (let k = 0; k < h.length; k++) h[k] = h[k]! / size;
      if (t.isDisposed) return;
      const src = tensor(h, t.shape, { dtype: t.dtype, device: t.device });
      copyInto(src, t);
      src.dispose(); // safe while the copy is queued: the engine frees it after the copy
    }));
  }
  await Promise.all(done);
}
