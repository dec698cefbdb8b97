// The GPU check itself, run here before any GPU time is spent: `gpu-check.sh --emulated` does the
// steps of the GPU run on 'cuda-emu' (the bundle prepared first when its sources changed; node
// unpacked with Python's lzma, as on a machine without xz; nvcc's sm_90 build where nvcc is found;
// the vendor path through the stand-in libraries). Held to: exit 0, one training step of the paper
// net (§5) on both paths within the stated tolerances of PyTorch's float64 step (or, without PyTorch,
// @alexnet/tensor's float64 reference), and the timing table printed last with every row. Then the
// verdict itself: the same logs with one step over its tolerance must fail the check.
// About 2-4 minutes on 2 cores (the first run also compresses node and builds for sm_90).
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cudaEmu } from './index.js';

const pkg = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const root = resolve(pkg, '..', '..');
const scripts = join(pkg, 'scripts');
const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const hasTorch = ['python3', '/usr/bin/python3'].some((p) => spawnSync(p, ['-c', 'import torch']).status === 0);

const missing = [
  !has('bash') && 'bash',
  !has('python3') && 'python3 (the check unpacks node with its lzma and prints its tables with it)',
  !has('g++') && 'g++ (the stand-in vendor libraries)',
  !cudaEmu.available() && `the emulated addon (${cudaEmu.reason()}; run npm run build in @alexnet/cuda)`,
  !existsSync(join(root, 'node_modules', 'typescript')) && 'typescript in node_modules (npm ci)',
].filter(Boolean);
if (missing.length) console.log(`gpu-check.test: skipped, this machine lacks ${missing.join(', ')}`);

const LIMITS = { loss: 1e-4, logits: 1e-4, update: 2e-3 };
const OURS = ['ours, vendor path', 'ours, vendor path, two towers', 'ours, own kernels', 'ours, vendor path, TF32 everywhere'];
const PYTORCH = ['PyTorch, defaults', 'PyTorch, TF32 everywhere', 'PyTorch, channels_last + bf16 autocast'];

const work = mkdtempSync(join(tmpdir(), 'alexnet-gpu-check-test-'));
const logDir = join(work, 'log');
afterAll(() => rmSync(work, { recursive: true, force: true }));
let result: { status: number | null; stdout: string; stderr: string };

interface Validate { label: string; ref: string; passed: number; failed: number; loss: number; logits: number; limits: typeof LIMITS; worstUpdate: { what: string; error: number } }
const tagged = <T>(tag: string): T[] =>
  result.stdout.split('\n').filter((l) => l.startsWith(`${tag} `)).map((l) => JSON.parse(l.slice(tag.length + 1)) as T);
const cells = (line: string) => line.split('|').slice(1, -1).map((c) => c.trim());

describe.skipIf(missing.length > 0)('gpu-check.sh --emulated', () => {
  beforeAll(() => {
    const xz = existsSync(join(root, '.gpu', 'node', 'bin', 'node.xz'));
    const prep = spawnSync('bash', [join(scripts, 'prepare-gpu-bundle.sh'), '--if-stale'], {
      encoding: 'utf8', timeout: 300_000, env: { ...process.env, ...(xz ? {} : { ALEXNET_GPU_BUNDLE_XZ: '1' }) },
    });
    if (prep.status !== 0) throw new Error(`prepare-gpu-bundle.sh failed (${prep.status ?? prep.signal}):\n${prep.stdout}\n${prep.stderr}`);
    const r = spawnSync('bash', [join(scripts, 'gpu-check.sh'), '--emulated'], {
      encoding: 'utf8', timeout: 840_000,
      env: {
        ...process.env,
        ALEXNET_GPU_CHECK_DIR: logDir,
        ALEXNET_GPU_CHECK_NO_XZ: '1', // node unpacked by Python's lzma, as on the GPU machine
        TMPDIR: work, // so node is unpacked afresh
        ALEXNET_GPU_CHECK_CACHE: join(tmpdir(), 'alexnet-gpu-check-cache'), // the sm_90 build, incremental across runs
      },
    });
    result = { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  }, 900_000);

  it('exits 0, every check passed, node unpacked with lzma', () => {
    expect(result.status, `gpu-check.sh --emulated failed:\n${result.stdout.slice(-6000)}\n${result.stderr.slice(-2000)}`).toBe(0);
    expect(result.stdout).toContain("unpacking node with Python's lzma");
    expect(result.stdout).toMatch(/^gpu-check: every check passed$/m);
  });

  it(`one training step on both paths within the stated tolerances of ${hasTorch ? "PyTorch's" : "the reference's"} float64 step`, () => {
    const v = tagged<Validate>('VALIDATE');
    const refs = hasTorch ? ['torch', 'reference'] : ['reference'];
    for (const label of ['after', 'after-own']) {
      for (const ref of refs) {
        const line = v.find((x) => x.label === label && x.ref === ref);
        expect(line, `no VALIDATE line for ${label} against ${ref}`).toBeDefined();
        expect(line!.limits).toEqual(LIMITS);
        expect(line!.failed).toBe(0);
        expect(line!.passed).toBe(18); // loss, logits and the 16 parameters of the paper net
        expect(line!.loss).toBeLessThan(LIMITS.loss);
        expect(line!.logits).toBeLessThan(LIMITS.logits);
        expect(line!.worstUpdate.error).toBeLessThan(LIMITS.update);
      }
    }
  });

  it('the checks table: the vendor path ran on the stand-ins, the own path on our kernels, every check ok', () => {
    const rows = result.stdout.split('\n').filter((l) => /^\| (node|build|conformance|compute-sanitizer|one step) /.test(l)).map(cells);
    const row = (re: RegExp) => rows.find((r) => re.test(r[0]!));
    expect(row(/^node from the bundle/)?.[1]).toBe('ok');
    expect(['ok', '-']).toContain(row(/^build sm_90/)?.[1]); // '-': nvcc not found, which the emulation does not need
    expect(row(/vendor path/)?.[2]).toMatch(/passed, 0 failed .*conv cudnn, gemm cublasLt; vendor calls [1-9]/);
    expect(row(/own kernels \(quick\)/)?.[2]).toMatch(/passed, 0 failed .*conv own, gemm own/);
    expect(rows.filter((r) => r[0]!.startsWith('one step')).length).toBe(hasTorch ? 4 : 2);
    for (const r of rows) expect(['ok', '-'], r.join(' | ')).toContain(r[1]);
  });

  it('prints the timing table last, with every row', () => {
    const lines = result.stdout.trimEnd().split('\n');
    const head = lines.findIndex((l) => l.startsWith('| training step |'));
    expect(head).toBeGreaterThan(0);
    const rows = lines.slice(head + 2).map(cells);
    expect(rows.map((r) => r[0])).toEqual([...OURS, ...PYTORCH]); // and nothing after them
    for (const r of rows.slice(0, OURS.length)) {
      expect(Number(r[4]), r.join(' | ')).toBeGreaterThan(0); // ms
      expect(Number(r[5]), r.join(' | ')).toBeGreaterThan(0); // img/s
    }
    expect(rows[1]![8]).toMatch(/of one device/);
    for (const r of rows.slice(OURS.length)) {
      if (hasTorch) expect(Number(r[4]), r.join(' | ')).toBeGreaterThan(0);
      else expect(r[4]).toBe('PyTorch not installed');
    }
  });

  it('the verdict: the same logs with one parameter update over its tolerance fail the check', () => {
    const bad = join(work, 'bad-log');
    cpSync(logDir, bad, { recursive: true });
    const file = join(bad, 'validate.txt');
    const text = readFileSync(file, 'utf8').split('\n').map((l) => {
      if (!l.startsWith('VALIDATE ')) return l;
      const v = JSON.parse(l.slice(9)) as Validate;
      return v.label === 'after-own' ? `VALIDATE ${JSON.stringify({ ...v, passed: v.passed - 1, failed: 1, worstUpdate: { what: 'fc7.weight', error: 3e-3 } })}` : l;
    });
    writeFileSync(file, text.join('\n'));
    const r = spawnSync('python3', [join(scripts, 'gpu', 'summary.py'), bad], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/^gpu-check: \d problem\(s\):$/m);
    expect(r.stdout).toMatch(/own kernels, vs .*17 within the limits, 1 over: .*worst update fc7\.weight 3\.0e-03/);
  });
});
