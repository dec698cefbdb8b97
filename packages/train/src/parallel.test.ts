// Data-parallel training under mpirun (OpenMPI; skipped, naming what to install, where it is
// missing): two processes, each with half of every global batch, take the same steps as one
// process (weights within float32 summation-order noise), rank 0 alone writes, and a checkpoint
// written by two processes resumes in one.
import { spawnSync } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpoint, type CheckpointContents } from './checkpoint.js';
import { sampleFixture, type Fixture } from './fixture.test-util.js';

const cli = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
const mpirun = spawnSync('sh', ['-c', 'command -v mpirun'], { encoding: 'utf8' }).stdout.trim();
const skip = !mpirun ? 'mpirun was not found: install OpenMPI (apt-get install openmpi-bin libopenmpi-dev), then npm rebuild @alexnet/distributed' : '';
if (skip) console.warn(`skipping the data-parallel test: ${skip}`);

let fx: Fixture;
beforeAll(async () => { if (!skip) fx = await sampleFixture(24, 4); }, 120_000);
afterAll(async () => { if (fx) await rm(fx.root, { recursive: true, force: true }); });

const common = (out: string, steps: number) => ['train', fx.prepared, '--out', out, '--crop', '67', '-b', '16', '-j', '1', '--epochs', '2',
  '--positive-bias', '0.1', '--seed', '3', '--max-steps', String(steps)];
/** The environment without a launcher's variables (the test itself may run under one). */
const clean = () => Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(OMPI_|PMI_|PMIX_)/.test(k) || k.startsWith('OMPI_MCA_')));
function single(args: string[]) {
  return spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env: clean(), timeout: 300_000 });
}
function parallel(n: number, args: string[]) {
  const flags = ['--oversubscribe', ...(process.getuid?.() === 0 ? ['--allow-run-as-root'] : []), '--mca', 'btl', 'self,vader', '-n', String(n)];
  return spawnSync(mpirun, [...flags, process.execPath, cli, ...args], { encoding: 'utf8', env: clean(), timeout: 300_000 });
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
});
