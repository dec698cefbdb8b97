// The real thing: `mpirun -n 2` and `-n 3` run test/mpi-check.mjs, whose every rank checks the
// launcher's rank and size against MPI's, sum/max/min of rank-dependent arrays against hand-computed
// values, 40 all-reduces in flight awaited in reverse, broadcasts, allGather, a barrier, 64 MB in 16
// buckets, allReduceTensors with average, argument errors, NCCL's absence (or a stand-in NCCL without a
// CUDA driver), and then ends in one of four ways, none of which may hang. Skipped, with the line that
// says what to install, where mpirun is missing.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildNcclStub, haveCc } from './test-support/nccl-stub.js';
import { addon } from './native.js';

const pkg = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const script = join(pkg, 'test', 'mpi-check.mjs');
const dist = join(pkg, 'dist', 'index.js');

function which(cmd: string): string | undefined {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

const mpirun = which('mpirun') ?? which('mpiexec');
const openmpi = !!mpirun && /Open MPI|OpenRTE/.test(spawnSync(mpirun, ['--version'], { encoding: 'utf8' }).stdout ?? '');
const built = addon();
const skip = !mpirun ? 'mpirun was not found: install OpenMPI (apt-get install openmpi-bin libopenmpi-dev), then npm rebuild @alexnet/distributed'
  : !built.mpi ? `mpirun is here but the addon has no MPI (${built.reason})` : undefined;
if (skip) console.warn(`[@alexnet/distributed] skipping the mpirun tests: ${skip}`);
if (skip && !mpirun) {
  // nothing else to say
} else if (skip && process.env.CI) {
  // CI installs OpenMPI before npm ci (see .ci/run): an addon without MPI there is a build bug
  throw new Error(`CI: ${skip}`);
}

interface RankResult { rank: number; size: number; mode: string; seconds: number; checks: { name: string; ok: boolean; detail: string }[] }
interface Run { code: number | null; signal: string | null; stdout: string; stderr: string; ms: number; results: RankResult[] }

function launch(n: number, mode: string, env: Record<string, string> = {}, timeoutMs = 60_000): Promise<Run> {
  const args = openmpi
    ? ['--oversubscribe', ...(process.getuid?.() === 0 ? ['--allow-run-as-root'] : []), '--mca', 'btl', 'self,vader', '-n', String(n)]
    : ['-n', String(n)];
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(OMPI_|PMI_|PMIX_)/.test(k) || k.startsWith('OMPI_MCA_')));
  return new Promise((res) => {
    const t0 = Date.now();
    const p = spawn(mpirun!, [...args, process.execPath, script, mode], { cwd: pkg, env: { ...clean, ...env }, detached: true });
    let stdout = '', stderr = '';
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => { try { process.kill(-p.pid!, 'SIGKILL'); } catch { /* gone */ } }, timeoutMs);
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      const results = stdout.split('\n').filter((l) => l.startsWith('RESULT ')).map((l) => JSON.parse(l.slice(7)) as RankResult);
      res({ code, signal, stdout, stderr, ms: Date.now() - t0, results });
    });
  });
}

/** Every rank reported, and every check passed on every rank (the failures listed otherwise). */
function expectAllPassed(run: Run, n: number, mode: string): void {
  expect(run.results.map((r) => r.rank).sort(), `ranks that reported\n${run.stderr}`).toEqual([...Array(n).keys()]);
  const failed = run.results.flatMap((r) => r.checks.filter((c) => !c.ok).map((c) => `rank ${r.rank}: ${c.name}: ${c.detail}`));
  expect(failed).toEqual([]);
  for (const r of run.results) {
    expect(r.size).toBe(n);
    expect(r.mode).toBe(mode);
    expect(r.checks.length).toBeGreaterThanOrEqual(28);
  }
  expect(run.code, run.stderr).toBe(0);
}

const tmp = mkdtempSync(join(tmpdir(), 'alexnet-mpi-'));
let stub: string | undefined;
beforeAll(() => { if (haveCc()) stub = buildNcclStub(join(tmp, 'nccl')); });
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe.skipIf(!!skip)('mpirun', () => {
  it('the check script and the built package are there', () => {
    expect(existsSync(dist), 'dist/ is missing: npm run build in packages/distributed').toBe(true);
  });

  it('mpirun -n 2: every check on every rank, then close()', async () => {
    const run = await launch(2, 'close');
    expectAllPassed(run, 2, 'close');
    const names = run.results[0]!.checks.map((c) => c.name);
    for (const n of ['launcher', 'sum float32', 'max float32', 'min float32', 'in flight: completion order', 'broadcast float32 from last rank',
      '64 MB in 16 buckets', 'tensors average float32', 'initNcclGroup rejects', 'closed']) expect(names).toContain(n);
    expect(run.ms).toBeLessThan(30_000);
  });

  it('mpirun -n 3: every check on every rank, ending without close() (finalized at exit)', async () => {
    const run = await launch(3, 'forget');
    expectAllPassed(run, 3, 'forget');
    expect(run.stderr).not.toMatch(/MPI_Finalize did not finish|exited without calling finalize/i);
  });

  it('mpirun -n 2: process.exit(0) with collectives still queued finishes them and exits', async () => {
    const run = await launch(2, 'exit-pending');
    expectAllPassed(run, 2, 'exit-pending');
    expect(run.stderr).not.toMatch(/MPI_Finalize did not finish|exited without calling finalize/i);
  });

  it.skipIf(!haveCc())('mpirun -n 2 with a stand-in NCCL at ALEXNET_NCCL_PATH: found, and initNcclGroup fails on every rank on the missing CUDA driver', async () => {
    const run = await launch(2, 'close', { ALEXNET_NCCL_PATH: stub! });
    expectAllPassed(run, 2, 'close');
    for (const r of run.results) {
      const c = r.checks.find((x) => x.name === 'nccl stand-in');
      expect(c, JSON.stringify(r.checks.map((x) => x.name))).toBeDefined();
      expect(c!.ok).toBe(true);
    }
  });

  it('a rank that throws ends the whole job promptly instead of hanging the others', async () => {
    const run = await launch(2, 'crash', {}, 40_000);
    expect(run.signal).toBeNull(); // not our timeout's SIGKILL
    expect(run.code).not.toBe(0);
    expect(run.stderr).toContain('rank 1 fails on purpose');
    expect(run.ms).toBeLessThan(30_000);
  });
});
