/**
 * One rank of the all-reduce benchmark (run by bench/index.ts under mpirun): AlexNet's gradient, 244 MB
 * of float32 (60,965,224 parameters), all-reduced in buckets of several sizes, every bucket of a round
 * in flight at once, as a trainer does while backward runs. Rank 0 prints one JSON line per size.
 */
import { initProcessGroup } from '../index.js';

const PARAMS = 60_965_224; // AlexNet's weights and biases (both towers, §3.5)
const bucketsMB = (process.env.BENCH_BUCKETS_MB ?? '1,4,16,25,64,244').split(',').map(Number);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);

const group = await initProcessGroup();
const grad = new Float32Array(PARAMS);
for (let i = 0; i < PARAMS; i++) grad[i] = (i % 13) * 0.001 + group.rank;

for (const mb of bucketsMB) {
  const per = Math.min(PARAMS, Math.round((mb * 1024 * 1024) / 4));
  const round = async (): Promise<number> => {
    await group.barrier();
    const t0 = process.hrtime.bigint();
    const ps: Promise<unknown>[] = [];
    for (let off = 0; off < PARAMS; off += per) ps.push(group.allReduce(grad.subarray(off, Math.min(PARAMS, off + per)), 'sum'));
    await Promise.all(ps);
    return Number(process.hrtime.bigint() - t0) / 1e9;
  };
  await round(); // warm-up (first touch of the shared-memory segments)
  const times: number[] = [];
  for (let r = 0; r < rounds; r++) times.push(await round());
  // the slowest rank decides
  const worst = await group.allReduce(Float64Array.from(times), 'max');
  if (group.rank === 0) {
    const best = Math.min(...worst);
    console.log(JSON.stringify({ bucketMB: mb, buckets: Math.ceil(PARAMS / per), bytes: PARAMS * 4, seconds: best, ranks: group.size }));
  }
}
await group.close();
