/**
 * `npm run bench`: all-reduce bandwidth of 244 MB (AlexNet's gradient) in buckets, on N ranks of this
 * machine (default 2, BENCH_RANKS), over Open MPI's shared-memory transport (vader), as a table.
 * algbw = bytes / time (what one rank's gradient sees), busbw = algbw x 2(N-1)/N (the traffic of a
 * ring all-reduce, comparable across N, as nccl-tests reports it).
 */
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const ranks = Number(process.env.BENCH_RANKS ?? 2);
const which = spawnSync('sh', ['-c', 'command -v mpirun'], { encoding: 'utf8' });
if (which.status !== 0) {
  console.log('bench: mpirun was not found: install OpenMPI (apt-get install openmpi-bin libopenmpi-dev), then npm rebuild @alexnet/distributed');
  process.exit(0);
}
const mpirun = which.stdout.trim();
const openmpi = /Open MPI/.test(spawnSync(mpirun, ['--version'], { encoding: 'utf8' }).stdout ?? '');
const args = openmpi
  ? ['--oversubscribe', ...(process.getuid?.() === 0 ? ['--allow-run-as-root'] : []), '--mca', 'btl', process.env.BENCH_BTL ?? 'self,vader', '-n', String(ranks)]
  : ['-n', String(ranks)];
const t0 = Date.now();
const r = spawnSync(mpirun, [...args, process.execPath, join(here, 'allreduce.js')], { encoding: 'utf8', timeout: 600_000, maxBuffer: 1 << 24 });
if (r.status !== 0) {
  console.error(r.stdout, r.stderr);
  process.exit(1);
}
const chunk = Number(process.env.ALEXNET_MPI_CHUNK_BYTES || 4 << 20);
const rows = r.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { bucketMB: number; buckets: number; bytes: number; seconds: number; ranks: number });
const GB = 1e9;
console.log(`all-reduce of ${(rows[0]!.bytes / 1e6).toFixed(1)} MB (${(rows[0]!.bytes / 2 ** 20).toFixed(0)} MiB) float32 (AlexNet's gradient) on ${ranks} ranks, ${openmpi ? `Open MPI btl ${process.env.BENCH_BTL ?? 'self,vader'}` : 'MPI'}, pieces of ${(chunk / 2 ** 20).toFixed(0)} MiB per MPI call, best of ${process.env.BENCH_ROUNDS ?? 3}`);
console.log('| bucket MiB | buckets | ms per step | algbw GB/s | busbw GB/s |');
console.log('|-----------:|--------:|------------:|-----------:|-----------:|');
for (const x of rows) {
  const alg = x.bytes / x.seconds / GB;
  const bus = alg * (2 * (x.ranks - 1)) / x.ranks;
  console.log(`| ${String(x.bucketMB).padStart(10)} | ${String(x.buckets).padStart(7)} | ${(x.seconds * 1000).toFixed(0).padStart(11)} | ${alg.toFixed(2).padStart(10)} | ${bus.toFixed(2).padStart(10)} |`);
}
console.log(`(${((Date.now() - t0) / 1000).toFixed(0)} s)`);
