/**
 * `npm run bench`, on N ranks of this machine (default 2, BENCH_RANKS) over Open MPI's shared-memory
 * transport (vader):
 * 1. Scaling: the paper net (§3.5) trained at global batch 64 and 128 (BENCH_BATCHES) at 227x227
 *    (BENCH_INPUT), one process with N threads (trainStep) against N ranks with 1 thread each
 *    (@alexnet/train's parallelStep: slices, bucketed all-reduce from backward, the same SGD step),
 *    img/s and the scaling efficiency (N ranks' img/s / one process's, the same cores); and each rank's
 *    step on its slice without any exchange, so the cost of the exchange shows apart from the split.
 * 2. All-reduce of 244 MB (AlexNet's gradient) in buckets through this package, as a table;
 *    algbw = bytes / time (what one rank's gradient sees), busbw = algbw x 2(N-1)/N (the traffic of a
 *    ring all-reduce, comparable across N, as nccl-tests reports it).
 * 3. The MPI library's own figure for the same bytes: MPI_Allreduce called from a C program compiled
 *    here with mpicc (scripts/mpi-allreduce.c), as one call and in the pieces this package uses; the
 *    ratio to ours is our overhead (the MPI thread, the queue, Promises).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const pkg = resolve(here, '..', '..');
const ranks = Number(process.env.BENCH_RANKS ?? 2);
const rounds = process.env.BENCH_ROUNDS ?? '3';
const which = (cmd: string) => { const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }); return r.status === 0 ? r.stdout.trim() : undefined; };
const mpirun = which('mpirun');
if (!mpirun) {
  console.log('bench: mpirun was not found: install OpenMPI (apt-get install openmpi-bin libopenmpi-dev), then npm rebuild @alexnet/distributed');
  process.exit(0);
}
const openmpi = /Open MPI/.test(spawnSync(mpirun, ['--version'], { encoding: 'utf8' }).stdout ?? '');
const btl = process.env.BENCH_BTL ?? 'self,vader';
const mpiArgs = (n: number) => openmpi
  ? ['--oversubscribe', ...(process.getuid?.() === 0 ? ['--allow-run-as-root'] : []), '--mca', 'btl', btl, '-n', String(n)]
  : ['-n', String(n)];
const t0 = Date.now();
const load = () => loadavg().map((l) => l.toFixed(2)).join(' ');
console.log(`@alexnet/distributed bench: ${ranks} ranks on ${availableParallelism()} cores, ${openmpi ? `Open MPI btl ${btl}` : 'MPI'}; load average ${load()} ` +
  '(other jobs share the machine: compare the ratios within this run)');

/** Runs a command, returns the JSON lines it printed (rank 0's), or exits with its output. */
function jsonLines<T>(cmd: string, argv: string[], env: NodeJS.ProcessEnv = {}): T[] {
  const r = spawnSync(cmd, argv, { encoding: 'utf8', timeout: 900_000, maxBuffer: 1 << 24, env: { ...process.env, ...env } });
  if (r.status !== 0) {
    console.error(`bench: ${cmd} ${argv.join(' ')} failed (${r.error?.message ?? `exit ${r.status}`}):\n${r.stdout}\n${r.stderr}`);
    process.exit(1);
  }
  return r.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as T);
}
const pad = (s: string | number, n: number) => String(s).padStart(n);

// 1. Scaling of a training step.
interface StepRow { form: string; batch: number; ranks: number; threads: number; input: number; stepMs: number; medianMs: number; imgPerSec: number }
if (process.env.BENCH_SKIP_SCALING !== '1') {
  let trainBuilt = false;
  try { trainBuilt = existsSync(fileURLToPath(import.meta.resolve('@alexnet/train'))); } catch { /* not installed */ }
  if (!trainBuilt) {
    console.log('\nscaling: skipped: @alexnet/train is not built (npx turbo run build --filter=@alexnet/train...)');
  } else {
    const script = join(here, 'scaling.js');
    // One process and the ranks run alternately, BENCH_SCALING_ROUNDS times; the best step of all
    // counts (on a machine shared with other jobs, the least disturbed figure).
    const alone: StepRow[] = [], split: StepRow[] = [];
    for (let r = 0; r < Number(process.env.BENCH_SCALING_ROUNDS ?? 2); r++) {
      alone.push(...jsonLines<StepRow>(process.execPath, [script], { BENCH_THREADS: String(ranks) }));
      split.push(...jsonLines<StepRow>(mpirun, [...mpiArgs(ranks), process.execPath, script], { BENCH_THREADS: '1' }));
    }
    const best = (rows: StepRow[], batch: number, parallel?: boolean) => rows.filter((x) => x.batch === batch && (parallel === undefined || (x.form === 'parallelStep') === parallel))
      .reduce((a, b) => (b.stepMs < a.stepMs ? b : a));
    const input = alone[0]!.input;
    console.log(`\nScaling: the paper net, a training step at ${input}x${input}, best of ${process.env.BENCH_SCALING_ROUNDS ?? 2} x ${process.env.BENCH_STEPS ?? 4} steps after a warm-up (slowest rank), ` +
      `1 process x ${ranks} threads (trainStep) against ${ranks} ranks x 1 thread (parallelStep: each rank 1/${ranks} of the global batch, 25 MiB buckets from backward)`);
    console.log(`| global batch | 1 x ${ranks} threads img/s | ${ranks} ranks x 1 img/s | scaling efficiency | ${ranks} ranks, no exchange img/s | exchange's share of the step |`);
    console.log('|-------------:|------------------:|-----------------:|-------------------:|--------------------------:|-----------------------------:|');
    for (const batch of [...new Set(alone.map((x) => x.batch))]) {
      const a = best(alone, batch), p = best(split, batch, true), q = best(split, batch, false);
      console.log(`| ${pad(batch, 12)} | ${pad(a.imgPerSec.toFixed(1), 17)} | ${pad(p.imgPerSec.toFixed(1), 16)} | ${pad(`${(100 * p.imgPerSec / a.imgPerSec).toFixed(0)} %`, 18)} | ` +
        `${pad(q.imgPerSec.toFixed(1), 25)} | ${pad(`${(100 * (1 - q.stepMs / p.stepMs)).toFixed(0)} % (${(p.stepMs - q.stepMs).toFixed(0)} ms)`, 28)} |`);
    }
    console.log(`(best step, ms, and median over all rounds: ${[...new Set(alone.map((x) => x.batch))].flatMap((b) => [best(alone, b), best(split, b, true), best(split, b, false)])
      .map((r) => `${r.form} b${r.batch} ${r.stepMs.toFixed(0)} (${r.medianMs.toFixed(0)})`).join(', ')}; load average now ${load()})`);
  }
}

// 2. Our all-reduce, in buckets.
interface ArRow { bucketMB: number; buckets: number; bytes: number; seconds: number; ranks: number }
const chunk = Number(process.env.ALEXNET_MPI_CHUNK_BYTES || 4 << 20);
const rows = jsonLines<ArRow>(mpirun, [...mpiArgs(ranks), process.execPath, join(here, 'allreduce.js')]);
const GB = 1e9;
const bus = (alg: number, n: number) => alg * (2 * (n - 1)) / n;
console.log(`\nAll-reduce of ${(rows[0]!.bytes / 1e6).toFixed(1)} MB (${(rows[0]!.bytes / 2 ** 20).toFixed(0)} MiB) float32 (AlexNet's gradient) on ${ranks} ranks through @alexnet/distributed, ` +
  `every bucket in flight, pieces of ${(chunk / 2 ** 20).toFixed(0)} MiB per MPI call, best of ${rounds}`);
console.log('| bucket MiB | buckets | ms per step | algbw GB/s | busbw GB/s |');
console.log('|-----------:|--------:|------------:|-----------:|-----------:|');
for (const x of rows) {
  const alg = x.bytes / x.seconds / GB;
  console.log(`| ${pad(x.bucketMB, 10)} | ${pad(x.buckets, 7)} | ${pad((x.seconds * 1000).toFixed(0), 11)} | ${pad(alg.toFixed(2), 10)} | ${pad(bus(alg, x.ranks).toFixed(2), 10)} |`);
}

// 3. The MPI library's own figure, from C.
const mpicc = process.env.MPICC || which('mpicc');
if (!mpicc) {
  console.log('\nMPI from C: skipped: mpicc was not found (apt-get install libopenmpi-dev)');
} else {
  const dir = mkdtempSync(join(tmpdir(), 'alexnet-mpi-bench-'));
  try {
    const exe = join(dir, 'mpi-allreduce');
    const cc = spawnSync(mpicc, ['-O2', '-o', exe, join(pkg, 'scripts', 'mpi-allreduce.c')], { encoding: 'utf8' });
    if (cc.status !== 0) throw new Error(`mpicc could not compile scripts/mpi-allreduce.c:\n${cc.stderr}`);
    const c = jsonLines<{ form: string; pieceBytes: number; bytes: number; seconds: number; ranks: number }>(mpirun, [...mpiArgs(ranks), exe, String(rows[0]!.bytes / 4), String(chunk), rounds]);
    console.log(`\nThe same bytes through MPI_Allreduce called from C (mpicc, MPI_IN_PLACE), best of ${rounds}, against ours:`);
    console.log('| what | ms | algbw GB/s | busbw GB/s | ours / MPI (time) |');
    console.log('|------|---:|-----------:|-----------:|------------------:|');
    const pieces = c.find((r) => r.form === 'pieces')!;
    for (const r of c) {
      const alg = r.bytes / r.seconds / GB;
      console.log(`| MPI from C, ${r.form === 'pieces' ? `pieces of ${(r.pieceBytes / 2 ** 20).toFixed(0)} MiB` : 'one call'} | ${(r.seconds * 1000).toFixed(0)} | ${alg.toFixed(2)} | ${bus(alg, r.ranks).toFixed(2)} | |`);
    }
    for (const mb of [Math.max(...rows.map((x) => x.bucketMB)), 25]) {
      const o = rows.find((x) => x.bucketMB === mb);
      if (!o) continue;
      const alg = o.bytes / o.seconds / GB;
      console.log(`| ours, ${o.buckets === 1 ? 'one allReduce call' : `${o.buckets} buckets of ${mb} MiB`} (pieces of ${(chunk / 2 ** 20).toFixed(0)} MiB) | ${(o.seconds * 1000).toFixed(0)} | ${alg.toFixed(2)} | ${bus(alg, o.ranks).toFixed(2)} | ${(o.seconds / pieces.seconds).toFixed(2)} |`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
console.log(`\n(${((Date.now() - t0) / 1000).toFixed(0)} s; load average ${load()})`);
