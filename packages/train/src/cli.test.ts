// The `alexnet` CLI as users run it, in child processes: Ctrl-C saves and resumes to the same loss
// sequence (bit for bit on CPU), SIGKILL during a checkpoint write loses nothing, help and errors.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { cp, mkdir, readFile, rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpoint, saveCheckpoint } from './checkpoint.js';
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
    const end = (ck.meta.trainer.step as number) + 2;
    expect(after.meta.trainer.step).toBe(end);
    // metrics.jsonl reads as an uninterrupted run's: each step once, in order, with the same losses
    // as the uninterrupted run of the test above (the killed run had written lines its checkpoint never saw).
    const lines = (await readFile(join(out, 'metrics.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    expect(lines[0]!.type).toBe('recipe');
    expect(lines.filter((l) => l.type === 'recipe')).toHaveLength(1);
    const steps = await stepLosses(out);
    expect(steps.map(([s]) => s)).toEqual(Array.from({ length: end }, (_, i) => i));
    const epochs = lines.filter((l) => l.type === 'epoch').map((l) => l.epoch);
    expect(epochs).toEqual([...new Set(epochs)].sort((a, b) => a - b));
    if (existsSync(join(fx.root, 'ref', 'metrics.jsonl'))) expect(steps).toEqual((await stepLosses(join(fx.root, 'ref'))).slice(0, end));
    // Step lines carry what a user watching `tail -f` wants.
    expect(lines.find((l) => l.type === 'step')).toMatchObject({ epoch: 1, step: 0, lr: 0.01, imagesPerSecond: expect.any(Number), time: expect.any(String) });
  }, 600_000);

  it('sample writes the generated ImageNet in either val layout', () => {
    const flat = join(fx.root, 'sample-flat'), folders = join(fx.root, 'sample-folders');
    const a = run(['sample', flat, '--classes', '2', '--per-class', '2', '--val-per-class', '1', '--long-side', '32']);
    expect(a.stdout).toMatch(/^wrote 4 training and 2 validation images of 2 classes to /);
    expect(existsSync(join(flat, 'val', 'ILSVRC2012_val_00000002.JPEG'))).toBe(true);
    expect(run(['sample', '--dir', folders, '--classes', '2', '--per-class', '2', '--val-layout', 'folders', '--long-side', '32']).status).toBe(0);
    expect(readdirSync(join(folders, 'val')).sort()).toEqual(readdirSync(join(folders, 'train')).sort());
  });

  it('takes the flags PyTorch users type, checks every value before any work, and help comes from the same table', () => {
    const h = run(['train', '--help']).stdout;
    for (const f of ['-b, --batch-size, --batch N', '-j, --workers N', '--momentum X', '--weight-decay, --wd X', '-p, --print-freq N', '--epochs N', '--lr, --learning-rate X',
      '--resume FILE', '--seed N', '-a, --model, --arch paper|paper-half|torchvision', '--no-bias-decay', '--val-fraction X', '--max-bad-images N']) expect(h).toContain(f);
    expect(h).toMatch(/^usage: alexnet train \[DIR\] \[options\]$/m);
    expect(h).toMatch(/--momentum X +momentum \(§5\) \(default 0\.9\)/);
    const model = run(['train', fx.prepared, '--model', 'vgg']);
    expect(model.status).toBe(2);
    expect(model.stderr).toMatch(/^alexnet: --model expects one of paper, paper-half, torchvision but received "vgg"/);
    const crop = run(['train', fx.prepared, '--crop', '32']);
    expect(crop.stderr).toMatch(/^alexnet: --crop expects an integer from 67 to 4096 but received "32"/);
    expect(run(['train', fx.prepared, '--data', fx.prepared]).stderr).toMatch(/DIR is given twice/);
    expect(run(['train']).stderr).toMatch(/^alexnet: DIR \(or --data\) is required/);
    expect(run(['train', fx.prepared, '--wd=-1']).stderr).toMatch(/--weight-decay expects a number >= 0 but received "-1"/);
    expect(run(['train', fx.prepared, '--batch', '8', '-b', '8']).stderr).toMatch(/--batch-size is given twice/);
    // PyTorch's spelling trains (positional data, -b, -j, --wd, -p, --momentum), and -p prints a line every N steps.
    const out = join(fx.root, 'flags');
    const r = run(['train', fx.prepared, '--out', out, '--crop', '67', '-b', '16', '-j', '1', '--wd', '0.0005', '--momentum', '0.9', '-p', '5',
      '--positive-bias', '0.1', '--epochs', '1', '--max-steps', '10']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr.match(/^epoch 1 step \d+\/\d+: loss [\d.]+, top-1 [\d.]+%, lr 0\.01, [\d.]+ img\/s$/gm)).toHaveLength(2);
    expect(r.stderr).toMatch(/^data: prepared shards .*: 240 training images of 10 classes, 40 validation images$/m);
  }, 300_000);

  it('eval and predict on a diverged (NaN) checkpoint exit 1 with a sentence; eval needs only val/ and shows progress', async () => {
    const out = join(fx.root, 'base');
    expect(run([...common(out), '--max-steps', '2']).status).toBe(0);
    const good = join(out, 'checkpoint.safetensors');
    const c = await loadCheckpoint(good);
    c.model.get('fc6.weight')!.data.fill(NaN);
    const { format: _f, version: _v, createdAt: _c, ...meta } = c.meta;
    const nan = join(fx.root, 'nan.safetensors');
    await saveCheckpoint(nan, { model: Object.fromEntries(c.model), optimizer: Object.fromEntries(c.optimizer), data: Object.fromEntries(c.data), meta });
    const ev = run(['eval', '--checkpoint', nan, fx.prepared]);
    expect(ev.status).toBe(1);
    expect(ev.stderr).toMatch(/^alexnet: checkpoint .*nan\.safetensors: the model's outputs are NaN or infinite/m);
    expect(ev.stdout).not.toMatch(/NaN%/);
    const pr = run(['predict', '--checkpoint', nan, join(fx.raw, 'val', 'ILSVRC2012_val_00000001.JPEG')]);
    expect(pr.status).toBe(1);
    expect(pr.stderr).toMatch(/^alexnet: the model's outputs for .* are NaN or infinite/);
    // A folder with only val/ (and the class list) evaluates: no training set needed.
    const valOnly = join(fx.root, 'val-only');
    await mkdir(valOnly, { recursive: true });
    await cp(join(fx.raw, 'val'), join(valOnly, 'val'), { recursive: true });
    for (const f of ['LOC_synset_mapping.txt', 'ILSVRC2012_devkit_t12']) await cp(join(fx.raw, f), join(valOnly, f), { recursive: true });
    const ok = run(['eval', '--checkpoint', good, valOnly, '-b', '16', '-j', '1']);
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/^top-1 error [\d.]+%, top-5 error [\d.]+% on 40 images \(centre crop\)$/m);
    expect(ok.stderr).toMatch(/^eval 40\/40 \[#+\] \d+ img\/s/m);
  }, 300_000);

  it('a damaged shard stops training with one sentence naming the file (no "Error: Error:", no stack trace)', async () => {
    const broken = join(fx.root, 'broken');
    await cp(fx.prepared, broken, { recursive: true });
    const shard = readdirSync(broken).find((f) => f.startsWith('train-'))!;
    const { truncate, stat } = await import('node:fs/promises');
    await truncate(join(broken, shard), Math.floor((await stat(join(broken, shard))).size / 2));
    const r = run(['train', broken, '--out', join(fx.root, 'broken-run'), '--crop', '67', '-b', '16', '-j', '1', '--epochs', '1']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^alexnet: .*${shard.replace('.', '\\.')}`, 'm'));
    expect(r.stderr).not.toMatch(/Error: .*Error:|\n\s+at /);
  }, 120_000);

  it('each model (paper, paper-half, torchvision) trains, draws its pictures, evaluates and predicts through the CLI', () => {
    for (const model of ['paper', 'paper-half', 'torchvision']) {
      const out = join(fx.root, `model-${model}`);
      const r = run(['train', fx.prepared, '--model', model, '--out', out, '--crop', '67', '-b', '16', '-j', '1', '--epochs', '1', '--positive-bias', '0.1']);
      expect(r.status, `${model}: ${r.stderr}`).toBe(0);
      for (const png of ['conv1-kernels.png', 'curves.png', 'neighbours.png']) expect(existsSync(join(out, png)), `${model} ${png}`).toBe(true);
      const ck = join(out, 'checkpoint.safetensors');
      const ev = run(['eval', '--checkpoint', ck, fx.prepared, '-j', '1']);
      expect(ev.status, `${model}: ${ev.stderr}`).toBe(0);
      const pr = run(['predict', '--checkpoint', ck, '--json', join(fx.raw, 'val', 'ILSVRC2012_val_00000001.JPEG')]);
      expect(pr.status, `${model}: ${pr.stderr}`).toBe(0);
      expect(JSON.parse(pr.stdout)[0].top5).toHaveLength(5);
    }
  }, 600_000);
});
