// Data-parallel training under mpirun (OpenMPI; skipped, naming what to install, where it is
// missing): two processes, each with half of every global batch, take the same steps as one
// process (weights within float32 summation-order noise), rank 0 alone writes, and a checkpoint
// written by two processes resumes in one. Processes given different settings fail at start, naming
// what differs; a killed or stopped process ends the job within seconds, never a hang.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpoint, type CheckpointContents } from './checkpoint.js';
import { checkSameSettings, watchCollectives, type Collective } from './parallel.js';
import { sampleFixture, type Fixture } from './fixture.test-util.js';

const cli = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
const mpirun = spawnSync('sh', ['-c', 'command -v mpirun'], { encoding: 'utf8' }).stdout.trim();
const skip = !mpirun ? 'mpirun was not found: install OpenMPI (apt-get install openmpi-bin libopenmpi-dev), then npm rebuild @alexnet/distributed' : '';
if (skip) console.warn(`skipping the data-parallel test: ${skip}`);

let fx: Fixture, other: Fixture;
beforeAll(async () => { if (!skip) [fx, other] = await Promise.all([sampleFixture(24, 4), sampleFixture(20, 4)]); }, 120_000);
afterAll(async () => { for (const f of [fx, other]) if (f) await rm(f.root, { recursive: true, force: true }); });

const common = (out: string, steps: number) => ['train', fx.prepared, '--out', out, '--crop', '67', '-b', '16', '-j', '1', '--epochs', '2',
  '--positive-bias', '0.1', '--seed', '3', '--max-steps', String(steps)];
/** The environment without a launcher's variables (the test itself may run under one). */
const clean = () => Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(OMPI_|PMI_|PMIX_)/.test(k) || k.startsWith('OMPI_MCA_')));
function single(args: string[]) {
  return spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env: clean(), timeout: 300_000 });
}
const mpiFlags = ['--oversubscribe', ...(process.getuid?.() === 0 ? ['--allow-run-as-root'] : []), '--mca', 'btl', 'self,vader'];
function parallel(n: number, args: string[]) {
  return spawnSync(mpirun, [...mpiFlags, '-n', String(n), process.execPath, cli, ...args], { encoding: 'utf8', env: clean(), timeout: 300_000 });
}
/** One rank per argument list (Open MPI's MPMD form: -n 1 a : -n 1 b). */
function ranksWith(...args: string[][]) {
  const apps = args.flatMap((a, i) => [...(i ? [':'] : []), '-n', '1', process.execPath, cli, ...a]);
  return spawnSync(mpirun, [...mpiFlags, ...apps], { encoding: 'utf8', env: clean(), timeout: 300_000 });
}
/** The pid of the given rank among mpirun's children (from each child's OMPI_COMM_WORLD_RANK). */
function pidOfRank(launcher: number, rank: number): number | undefined {
  const kids = spawnSync('pgrep', ['-P', String(launcher)], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean).map(Number);
  return kids.find((p) => {
    try { return readFileSync(`/proc/${p}/environ`, 'utf8').split('\0').includes(`OMPI_COMM_WORLD_RANK=${rank}`); } catch { return false; }
  });
}
/**
 * Starts a long 2-rank run, waits for rank 0 to report step 3, sends `signal` to rank 1, and returns
 * the job's output, exit status and the seconds from the signal to the job's end (null: still running
 * after 60 s; then everything is killed).
 */
async function signalRankOne(out: string, signal: NodeJS.Signals, env: NodeJS.ProcessEnv = {}) {
  const job = spawn(mpirun, [...mpiFlags, '-n', '2', process.execPath, cli, ...common(out, 10_000), '--epochs', '1000', '--print-freq', '1'],
    { env: { ...clean(), ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  job.stdout.on('data', (d) => { output += d; });
  job.stderr.on('data', (d) => { output += d; });
  const ended = new Promise<number | null>((res) => job.on('close', (code) => res(code)));
  const started = Date.now();
  while (!/step 3\//.test(output) && Date.now() - started < 180_000 && job.exitCode === null) await new Promise((r) => setTimeout(r, 100));
  const victim = pidOfRank(job.pid!, 1);
  if (!victim || !/step 3\//.test(output)) { job.kill('SIGKILL'); throw new Error(`the run did not reach step 3 (rank 1's pid ${victim}):\n${output}`); }
  const t0 = Date.now();
  process.kill(victim, signal);
  const status = await Promise.race([ended, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 60_000))]);
  const seconds = status === 'hung' ? null : (Date.now() - t0) / 1000;
  if (status === 'hung') {
    for (const r of [0, 1]) { const p = pidOfRank(job.pid!, r); if (p) { try { process.kill(p, 'SIGCONT'); process.kill(p, 'SIGKILL'); } catch { /* gone */ } } }
    job.kill('SIGKILL');
  }
  return { output, status, seconds };
}
/** The largest difference of two checkpoints' weights, relative to each tensor's scale. */
function weightDiff(a: CheckpointContents, b: CheckpointContents): number {
  let worst = 0;
  for (const [name, t] of a.model) {
    const u = b.model.get(name)!.data;
    let d = 0, s = 0;
    t.data.forEach((v, i) => { d = Math.max(d, Math.abs(v - u[i]!)); s = Math.max(s, Math.abs(v)); });
    worst = Math.max(worst, s ? d / s : d);
  }
  return worst;
}
async function steps(out: string): Promise<{ step: number; loss: number }[]> {
  return (await readFile(join(out, 'metrics.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l)).filter((l) => l.type === 'step');
}

/**
 * Two ranks of one process, for the settings check: allGather concatenates both ranks' buffers once
 * both have called it (as MPI's does), barrier waits for both.
 */
function twoRanks(): [Collective, Collective] {
  const rounds: { bufs: Int32Array[]; done: ((v: unknown) => void)[] }[] = [];
  const calls = [0, 0];
  const meet = (rank: number, buf: Int32Array) => new Promise<unknown>((done) => {
    const k = calls[rank]!++;
    const r = rounds[k] ??= { bufs: [], done: [] };
    r.bufs[rank] = buf; r.done[rank] = done;
    if (r.bufs[0] && r.bufs[1]) {
      const all = new Int32Array(r.bufs[0].length * 2);
      all.set(r.bufs[0]); all.set(r.bufs[1], r.bufs[0].length);
      r.done.forEach((d) => d(all.slice()));
    }
  });
  const make = (rank: number): Collective => ({
    rank, size: 2, localRank: rank, localSize: 2,
    allReduce: () => Promise.reject(new Error('not used')),
    allGather: (buf) => meet(rank, buf) as Promise<never>,
    barrier: async () => { await meet(rank, new Int32Array(1)); },
  });
  return [make(0), make(1)];
}
const settings = (over: Record<string, unknown> = {}) => ({
  optimizer: { lr: 0.01, momentum: 0.9 }, batch: 128, classList: ['n01', 'n02', 'n03'], data: { classes: 3, trainImages: 300 },
  weights: { 'conv1.weight': '1.5 2', 'fc8.bias': '0 0' }, ...over,
});
async function compare(a: Record<string, unknown>, b: Record<string, unknown>): Promise<[string, string] | null> {
  const [g0, g1] = twoRanks();
  const r = await Promise.allSettled([checkSameSettings(g0, a), checkSameSettings(g1, b)]);
  if (r[0].status === 'fulfilled' && r[1].status === 'fulfilled') return null;
  return r.map((x) => (x.status === 'rejected' ? (x.reason as Error).message : 'passed')) as [string, string];
}

describe('the settings check of a data-parallel run (two ranks in one process)', () => {
  it('passes equal settings, and names each differing field with its value on each rank (rank 0) or points to rank 0 (the others)', async () => {
    expect(await compare(settings(), settings())).toBeNull();
    const lr = await compare(settings(), settings({ optimizer: { lr: 0.02, momentum: 0.9 } }));
    expect(lr![0]).toBe('the 2 processes were not started with the same settings: optimizer.lr (--lr) is 0.01 on rank 0 but 0.02 on rank 1. ' +
      'Every process of a data-parallel run must be given the same data, model and recipe (the same command line)');
    expect(lr![1]).toBe('rank 1: the 2 processes were not started with the same settings (rank 0\'s message says which)');
    const data = await compare(settings(), settings({ classList: ['n01', 'n02', 'n04'], data: { classes: 3, trainImages: 290 } }));
    expect(data![0]).toContain('classList (the data) is ["n01","n02","n03"] on rank 0 but ["n01","n02","n04"] on rank 1; data.trainImages (the data) is 300 on rank 0 but 290 on rank 1.');
    const w = await compare(settings(), settings({ weights: { 'conv1.weight': '1.5 2.5', 'fc8.bias': '0 0' }, batch: 64 }));
    expect(w![0]).toContain('batch (--batch-size) is 128 on rank 0 but 64 on rank 1; the initial values of conv1.weight differ on rank 1 from rank 0\'s (--weights, --resume or the initialisation).');
    const long = await compare(settings({ classList: Array.from({ length: 40 }, (_, i) => `n${1000 + i}`) }), settings({ classList: Array.from({ length: 39 }, (_, i) => `n${1000 + i}`) }));
    expect(long![0]).toContain('classList (the data) is a list of 40, item 39 "n1039" on rank 0 but a list of 39 on rank 1.');
  });
});

describe('the collective watchdog', () => {
  it('ends the process, naming the rank and the collective, when one waits past the timeout; not when collectives complete', async () => {
    const never = new Promise<never>(() => undefined);
    const base: Collective = { rank: 1, size: 3, localRank: 1, localSize: 3, allReduce: (b) => (b.length === 1 ? Promise.resolve(b) : never), allGather: () => never, barrier: () => Promise.resolve() };
    const said: string[] = [];
    const g = watchCollectives(base, 0.05, (m) => said.push(m));
    await g.allReduce(Float64Array.of(1));
    await g.barrier();
    await new Promise((r) => setTimeout(r, 120));
    expect(said).toEqual([]);
    void g.allReduce(new Float32Array(64 * 1024 * 1024 / 4));
    await new Promise((r) => setTimeout(r, 120));
    expect(said).toEqual(['rank 1 of 3: collective #3 (an all-reduce of 67.1 MB) has waited 0.05 s for the other processes (ALEXNET_COLLECTIVE_TIMEOUT_S): ' +
      'another process has died or stopped; ending this one so that the launcher ends the job']);
  });
});

describe.skipIf(!!skip)('data parallelism under mpirun', () => {
  it('two processes take the same steps as one; rank 0 alone writes; their checkpoint resumes in one process', async () => {
    const one = join(fx.root, 'one'), two = join(fx.root, 'two');
    const a = single(common(one, 6));
    expect(a.status, a.stderr).toBe(0);
    const b = parallel(2, common(two, 3));
    expect(b.status, b.stderr + b.stdout).toBe(0);
    expect(b.stderr).toMatch(/^data parallel: 2 processes, each with its part of every batch of 16 \(rank 0 writes\)$/m);
    expect(b.stderr.match(/^data: /gm)).toHaveLength(1); // one recipe: rank 0's
    const two3 = await loadCheckpoint(join(two, 'checkpoint.safetensors'));
    expect(two3.meta.trainer.step).toBe(3);
    // metrics.jsonl: written once, by rank 0, with the global batch's loss; equal to one process's.
    const s1 = await steps(one), s2 = await steps(two);
    expect(s2.map((l) => l.step)).toEqual([0, 1, 2]);
    s2.forEach((l, i) => expect(Math.abs(l.loss - s1[i]!.loss) / s1[i]!.loss).toBeLessThan(1e-4));
    // Resume the two-process checkpoint in one process, to step 6: the weights of the uninterrupted run.
    const c = single([...common(two, 6), '--resume', join(two, 'checkpoint.safetensors')]);
    expect(c.status, c.stderr).toBe(0);
    const six = await loadCheckpoint(join(two, 'checkpoint.safetensors')), ref = await loadCheckpoint(join(one, 'checkpoint.safetensors'));
    expect(six.meta.trainer.step).toBe(6);
    // float32 sums in another order: relative 1e-4 of each tensor's scale (the two-device test's bound).
    expect(weightDiff(six, ref)).toBeLessThan(1e-4);
    expect((await steps(two)).map((l) => l.step)).toEqual([0, 1, 2, 3, 4, 5]);
  }, 600_000);

  it('composes with the two-tower placement: two processes, each with the towers on cpu:0 and cpu:1, take one process\'s steps', async () => {
    const one = join(fx.root, 'one-2'), towers = join(fx.root, 'towers');
    expect(single(common(one, 2)).status).toBe(0);
    const r = parallel(2, [...common(towers, 2), '--devices', 'cpu:0,cpu:1']);
    expect(r.status, r.stderr + r.stdout).toBe(0);
    expect(r.stderr).toMatch(/^devices: cpu:0, cpu:1 \(one tower per device, §3\.2\)$/m);
    const a = await loadCheckpoint(join(one, 'checkpoint.safetensors')), b = await loadCheckpoint(join(towers, 'checkpoint.safetensors'));
    expect(weightDiff(a, b)).toBeLessThan(1e-4);
  }, 300_000);

  it('processes started with different settings fail at start, rank 0 naming what differs (a different --lr; different data)', async () => {
    const out = join(fx.root, 'mismatch');
    const lr = ranksWith([...common(out, 3), '--lr', '0.01'], [...common(out, 3), '--lr', '0.02']);
    expect(lr.status).not.toBe(0);
    expect(lr.stderr + lr.stdout).toContain('alexnet: the 2 processes were not started with the same settings: optimizer.lr (--lr) is 0.01 on rank 0 but 0.02 on rank 1. Every process');
    expect(existsSync(join(out, 'metrics.jsonl'))).toBe(false); // no step was taken
    const other10 = common(out, 3).map((a) => (a === fx.prepared ? other.prepared : a));
    const data = ranksWith(common(out, 3), other10);
    expect(data.status).not.toBe(0);
    expect(data.stderr + data.stdout).toContain('same settings: data.trainImages (the data) is 240 on rank 0 but 200 on rank 1. Every process');
    expect(data.stderr + data.stdout).toContain("rank 1: the 2 processes were not started with the same settings (rank 0's message says which)");
  }, 300_000);

  it('killing one process (SIGKILL) mid-training ends the job within seconds, naming the rank', async () => {
    const r = await signalRankOne(join(fx.root, 'killed'), 'SIGKILL');
    expect(r.seconds, r.output).not.toBeNull();
    expect(r.seconds!).toBeLessThan(15);
    expect(r.status).not.toBe(0);
    expect(r.output).toMatch(/process rank 1 with PID \d+ on node \S+ exited on signal 9/); // mpirun's sentence
  }, 300_000);

  it('a process that stops without dying (SIGSTOP) ends the job after ALEXNET_COLLECTIVE_TIMEOUT_S, the waiting rank naming itself and the collective', async () => {
    const r = await signalRankOne(join(fx.root, 'stopped'), 'SIGSTOP', { ALEXNET_COLLECTIVE_TIMEOUT_S: '4' });
    expect(r.seconds, r.output).not.toBeNull();
    expect(r.seconds!).toBeGreaterThan(3.5);
    expect(r.seconds!).toBeLessThan(15);
    expect(r.status).not.toBe(0);
    expect(r.output).toMatch(/^alexnet: rank 0 of 2: collective #\d+ \(an? [-\w]+ of [\d.]+ (MB|bytes)\) has waited 4 s for the other processes \(ALEXNET_COLLECTIVE_TIMEOUT_S\): another process has died or stopped; ending this one so that the launcher ends the job$/m);
  }, 300_000);
});
