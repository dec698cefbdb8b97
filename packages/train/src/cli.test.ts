// The `alexnet` CLI as users run it, in child processes: Ctrl-C saves and resumes to the same loss
// sequence (bit for bit on CPU), SIGKILL during a checkpoint write loses nothing, help and errors.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpoint } from './checkpoint.js';
import { sampleFixture, type Fixture } from './fixture.test-util.js';

const cli = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
let fx: Fixture;
beforeAll(async () => { fx = await sampleFixture(24, 4); }, 120_000);
afterAll(async () => { if (fx) await rm(fx.root, { recursive: true, force: true }); });

const common = (out: string) => ['train', '--data', fx.prepared, '--out', out, '--crop', '67', '--batch', '16', '--epochs', '2',
  '--positive-bias', '0.1', '--seed', '5', '--workers', '1'];

function run(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 300_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

async function stepLosses(out: string): Promise<[number, number][]> {
  const lines = (await readFile(join(out, 'metrics.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
  return lines.filter((l) => l.type === 'step').map((l) => [l.step, l.loss]);
}

function waitFor(cond: () => boolean, child: ChildProcess, ms = 120_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const tick = () => {
      if (cond()) return resolve();
      if (child.exitCode !== null) return reject(new Error(`the child exited (${child.exitCode}) before the condition held`));
      if (Date.now() - t0 > ms) return reject(new Error('timed out'));
      setTimeout(tick, 5);
    };
    tick();
  });
}

const exited = (child: ChildProcess) => new Promise<number | null>((res) => child.on('exit', (code, sig) => res(code ?? (sig ? -1 : null))));

describe('alexnet CLI', () => {
  it('prints help for every command, and usage errors as sentences', () => {
    const top = run(['--help']);
    expect(top.status).toBe(0);
    for (const cmd of ['prepare', 'train', 'eval', 'predict', 'visualize', 'sample']) {
      expect(top.stdout).toContain(`  ${cmd}`);
      const h = run([cmd, '--help']);
      expect(h.status, cmd).toBe(0);
      expect(h.stdout).toMatch(new RegExp(`^alexnet ${cmd}: .*\\n\\nusage: alexnet ${cmd}`));
    }
    const bad = run(['train', '--epochs', 'many', '--data', fx.prepared]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/^alexnet: --epochs expects an integer >= 1 but received "many"/);
    expect(bad.stderr).not.toMatch(/\n\s+at /); // no stack trace
    const missing = run(['train', '--data', join(fx.root, 'nowhere')]);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/^alexnet: data folder .*nowhere does not exist\n$/);
    const dev = run([...common(join(fx.root, 'dev')), '--devices', 'cpu:0,gpu:7']);
    expect(dev.stderr).toMatch(/^alexnet: Unknown device "gpu:7"/);
    // @alexnet/cuda is picked up when installed; without a GPU (or a CUDA build) cuda:0 says why.
    const gpu = run([...common(join(fx.root, 'gpu')), '--devices', 'cuda:0', '--max-steps', '1']);
    if (gpu.status !== 0) expect(gpu.stderr).toMatch(/^alexnet: Device "cuda:0" is not available: \S/);
  }, 120_000);

  it('Ctrl-C saves a checkpoint; --resume continues with exactly the loss sequence of an uninterrupted run', async () => {
    const ref = join(fx.root, 'ref');
    const full = run(common(ref));
    expect(full.status).toBe(0);
    // The run got to its end (pictures drawn after training): no pending await left the process early.
    expect(full.stdout).toMatch(/^finished after \d+ steps; checkpoint .*checkpoint\.safetensors/m);
    expect(existsSync(join(ref, 'neighbours.png'))).toBe(true);
    const whole = await stepLosses(ref);
    expect(whole.length).toBeGreaterThan(12);

    const out = join(fx.root, 'interrupted');
    const child = spawn(process.execPath, [cli, ...common(out), '--checkpoint-every', '3'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d) => { stderr += d; });
    const done = exited(child);
    await waitFor(() => existsSync(join(out, 'checkpoint.safetensors')), child);
    child.kill('SIGINT');
    expect(await done).toBe(130);
    expect(stderr).toMatch(/interrupted: checkpoint saved to/);
    const before = await stepLosses(out);
    expect(before.length).toBeGreaterThan(0);
    expect(before.length).toBeLessThan(whole.length);

    const resumed = run([...common(out), '--resume', join(out, 'checkpoint.safetensors')]);
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(resumed.stderr).toMatch(/resumed from/);
    expect(await stepLosses(out)).toEqual(whole); // same steps, same losses, bit for bit
  }, 600_000);

  it('SIGKILL during a checkpoint write leaves the previous checkpoint whole, and the run resumes', async () => {
    const out = join(fx.root, 'killed');
    const child = spawn(process.execPath, [cli, ...common(out), '--checkpoint-every', '1'], { stdio: 'ignore' });
    const done = exited(child);
    // Wait for a second checkpoint write to be under way (its temporary file exists), then kill.
    await waitFor(() => existsSync(join(out, 'checkpoint.safetensors')), child);
    await waitFor(() => existsSync(out) && readdirSync(out).some((f) => f.includes('.tmp-')), child);
    child.kill('SIGKILL');
    await done;
    const ck = await loadCheckpoint(join(out, 'checkpoint.safetensors')); // complete, readable
    expect(ck.meta.trainer.step).toBeGreaterThan(0);
    const resumed = run([...common(out), '--resume', join(out, 'checkpoint.safetensors'), '--max-steps', String((ck.meta.trainer.step as number) + 2)]);
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(readdirSync(out).filter((f) => f.includes('.tmp-'))).toEqual([]);
    const after = await loadCheckpoint(join(out, 'checkpoint.safetensors'));
    expect(after.meta.trainer.step).toBe((ck.meta.trainer.step as number) + 2);
  }, 600_000);
});
