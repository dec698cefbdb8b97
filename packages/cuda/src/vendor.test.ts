// The vendor path end to end without a GPU: stand-in cuDNN and cuBLASLt libraries (test/standin,
// compiled here with g++, nothing of NVIDIA's) that the emulated engine loads from ALEXNET_CUDNN_PATH /
// ALEXNET_CUBLASLT_PATH and runs on the emulated streams. Each case is a child process (the libraries
// are looked for once per process): found and version read, every convolution pass and GEMM through
// them against the float64 reference, one algorithm search per shape and pass (the cache), the
// workspace they ask for, the deterministic choice, the TF32 settings, the epilogues, the check
// against our kernels and its fallback with one warning, ALEXNET_CUDA_KERNELS=own, a handle that
// fails, libraries refused (not a stand-in, the wrong version, not cuDNN), and the search order.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildStandins, haveCxx, type Standins } from '../test/standin.js';
import { cuda, libraries, libraryCandidates } from './index.js';

const pkg = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(pkg, 'dist', 'index.js');
const childScript = join(pkg, 'test', 'vendor-child.mjs');
const tmp = mkdtempSync(join(tmpdir(), 'alexnet-vendor-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const ready = haveCxx() && existsSync(dist);
let good: Standins, noAttach: Standins;
let logs = 0;

interface ChildResult {
  rounds: { errors: Record<string, number>; liveBytes: number[]; cachedBytes: number[] }[];
  libraries: ReturnType<typeof libraries>;
  counters: Record<string, number>;
  precision: { conv: string; matmul: string };
}

function child(env: Record<string, string>, args: string[] = []): { out: ChildResult; stderr: string; log: string[] } {
  const log = join(tmp, `log-${++logs}.txt`);
  const r = spawnSync(process.execPath, [childScript, ...args], {
    encoding: 'utf8', timeout: 120_000,
    env: { ...process.env, ALEXNET_STANDIN_LOG: log, ...env },
  });
  if (r.status !== 0) throw new Error(`vendor-child failed (${r.status ?? r.signal}): ${r.stderr}`);
  const lines = r.stdout.trim().split('\n');
  return { out: JSON.parse(lines[lines.length - 1]!) as ChildResult, stderr: r.stderr, log: existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : [] };
}

const standinEnv = () => ({ ALEXNET_CUDNN_PATH: good.dir, ALEXNET_CUBLASLT_PATH: good.cublasLt });
const lines = (log: string[], re: RegExp) => log.filter((l) => re.test(l));
const maxError = (r: ChildResult, re: RegExp = /./) =>
  Math.max(...r.rounds.flatMap((x) => Object.entries(x.errors).filter(([k]) => re.test(k)).map(([, v]) => v)));

describe.skipIf(!ready)('vendor libraries through stand-ins on cuda-emu', () => {
  beforeAll(() => {
    good = buildStandins(join(tmp, 'good'));
    noAttach = buildStandins(join(tmp, 'no-attach'), { noAttach: true });
  }, 120_000);

  it('found at ALEXNET_CUDNN_PATH / ALEXNET_CUBLASLT_PATH with their versions; every pass matches the reference; one search per shape and pass; the workspace asked for; the deterministic algorithm', () => {
    const { out, log } = child({ ...standinEnv(), ALEXNET_CUDA_PRECISION: 'strict' });
    const L = out.libraries;
    expect(L.backend).toBe('cuda-emu');
    expect(L.cudnn).toMatchObject({ found: true, path: good.cudnn, version: '9.6.0' });
    expect(L.cublasLt).toMatchObject({ found: true, path: good.cublasLt, version: '12.8.4' });
    expect(L.kernels).toEqual({ conv2dForward: { library: 'cudnn' }, conv2dBackwardData: { library: 'cudnn' }, conv2dBackwardFilter: { library: 'cudnn' }, gemm: { library: 'cublasLt' } });
    for (const round of out.rounds) for (const [name, err] of Object.entries(round.errors)) expect(err, name).toBeLessThan(1e-5);
    // attached to the emulation, one handle each for the one engine
    expect(lines(log, /^attach version=1$/)).toHaveLength(2);
    expect(lines(log, /^cudnnCreate$/)).toHaveLength(1);
    expect(lines(log, /^cublasLtCreate$/)).toHaveLength(1);
    // one search per (shape, pass) over both rounds; beta 0 and 1 share the filter gradient's plan
    for (const [pass, algos] of [['conv2dForward', 8], ['conv2dBackwardData', 6], ['conv2dBackwardFilter', 7]] as const) {
      const finds = lines(log, new RegExp(`^find ${pass} `));
      expect(finds, pass).toHaveLength(2);
      // the search is given the most any algorithm asks for (the stand-in's last algorithm: (count - 1) x 8 KiB)
      for (const f of finds) expect(f).toMatch(new RegExp(` ws=${(algos - 1) * 8192} math=fma$`));
    }
    expect(out.counters['cudnn.find']).toBe(6);
    // the fastest algorithm that fits; for the filter gradient the fastest deterministic one (algo 3, not 0)
    const runs = (pass: string) => lines(log, new RegExp(`^${pass} n=`));
    expect(runs('conv2dForward')).toHaveLength(4);
    for (const l of runs('conv2dForward')) expect(l).toMatch(/ algo=1 ws=8192 math=fma beta=0$/);
    for (const l of runs('conv2dBackwardData')) expect(l).toMatch(/ algo=1 ws=8192 math=fma beta=0$/);
    expect(runs('conv2dBackwardFilter')).toHaveLength(8);
    for (const l of runs('conv2dBackwardFilter')) expect(l).toMatch(/ algo=3 ws=24576 math=fma beta=[01]$/);
    // cuBLASLt: one heuristic per plan, strict compute, the dense layer's bias and ReLU in the epilogue (RELU_BIAS = 6)
    const heur = lines(log, /^heuristic /);
    expect(heur).toHaveLength(5);
    for (const h of heur) expect(h).not.toMatch(/INCONSISTENT/);
    expect(heur.filter((h) => / epilogue=1 compute=68 maxws=33554432$/.test(h))).toHaveLength(4);
    expect(heur.filter((h) => /^heuristic m=6 n=4 k=10 transa=1 transb=0 epilogue=6 compute=68/.test(h))).toHaveLength(1);
    expect(lines(log, /^matmul .* ws=4096 /)).toHaveLength(10);
    // checked once per plan against our kernels, no fallback; ReLU folded into both epilogues, the bias into the GEMM's
    expect(out.counters['vendor.checks']).toBe(11);
    expect(out.counters['vendor.fallbacks']).toBe(0);
    expect(out.counters['fused.bias']).toBe(2);
    expect(out.counters['fused.relu']).toBe(6);
    // the second round allocates nothing more: the plans' workspace comes from the caching allocator once
    expect(out.rounds[1]!.liveBytes).toEqual(out.rounds[0]!.liveBytes);
  }, 150_000);

  it("TF32 per PyTorch's defaults (cuDNN convolutions allowed, cuBLASLt strict), everywhere with ALEXNET_CUDA_PRECISION=tf32", () => {
    const dflt = child(standinEnv());
    expect(dflt.out.precision).toMatchObject({ conv: 'tf32', matmul: 'ieee' });
    expect(lines(dflt.log, /^conv2dForward n=.* math=tf32 /).length).toBeGreaterThan(0);
    expect(maxError(dflt.out, /^conv2d/)).toBeGreaterThan(1e-5);  // visibly TF32 (the stand-in rounds inputs as tensor cores do)
    expect(maxError(dflt.out, /^conv2d/)).toBeLessThan(5e-3);
    expect(maxError(dflt.out, /gemm/)).toBeLessThan(1e-5);
    expect(lines(dflt.log, /^heuristic .* compute=77/)).toHaveLength(0);
    const tf32 = child({ ...standinEnv(), ALEXNET_CUDA_PRECISION: 'tf32' });
    expect(lines(tf32.log, /^heuristic .* compute=77 /)).toHaveLength(5);
    expect(maxError(tf32.out, /gemm/)).toBeGreaterThan(1e-5);
    expect(maxError(tf32.out, /gemm/)).toBeLessThan(5e-3);
  }, 150_000);

  it('trust but verify: a wrong first result is caught by the check against our kernel, corrected, and the family falls back with one warning', () => {
    const { out, stderr, log } = child({ ...standinEnv(), ALEXNET_CUDA_PRECISION: 'strict', ALEXNET_STANDIN_WRONG: 'conv2dForward,conv2dBackwardFilter,gemm' });
    for (const round of out.rounds) for (const [name, err] of Object.entries(round.errors)) expect(err, name).toBeLessThan(1e-5);
    const warnings = stderr.split('\n').filter((l) => l.includes('WARNING'));
    expect(warnings).toHaveLength(3);
    expect(warnings[0]).toMatch(/cuDNN's conv2dForward \(algo 1\) disagreed with our kernel on \[2,8,9,9\] 6x3x3 s1 p1 g2 \(the first sample\): relative error .* > 1\.00e-03; conv2dForward runs on our kernels from now on/);
    expect(stderr).toMatch(/cuBLASLt's gemm NN 5x7x9 disagreed with our kernel/);
    const K = out.libraries.kernels;
    expect(K.conv2dForward.library).toBe('own');
    expect(K.conv2dForward.reason).toMatch(/disagreed with our kernel/);
    expect(K.conv2dBackwardFilter.library).toBe('own');
    expect(K.gemm.library).toBe('own');
    expect(K.conv2dBackwardData).toEqual({ library: 'cudnn' });
    expect(out.counters['vendor.fallbacks']).toBe(3);
    // after the wrong run, those families never call the library again
    expect(lines(log, /^conv2dForward n=/)).toEqual([expect.stringMatching(/ WRONG$/)]);
    expect(lines(log, /^matmul /)).toEqual([expect.stringMatching(/ WRONG$/)]);
    expect(lines(log, /^conv2dBackwardData n=/)).toHaveLength(4);
  }, 150_000);

  it('ALEXNET_CUDA_KERNELS=own: the libraries are found and reported, and never called', () => {
    const { out, log } = child({ ...standinEnv(), ALEXNET_CUDA_KERNELS: 'own', ALEXNET_CUDA_PRECISION: 'strict' });
    expect(out.libraries.cudnn.found).toBe(true);
    for (const k of Object.values(out.libraries.kernels)) expect(k).toEqual({ library: 'own', reason: 'ALEXNET_CUDA_KERNELS=own' });
    expect(lines(log, /^(cudnnCreate|cublasLtCreate|find|heuristic|matmul|conv2d)/)).toEqual([]);
    for (const round of out.rounds) for (const [name, err] of Object.entries(round.errors)) expect(err, name).toBeLessThan(1e-5);
    expect(out.counters['cudnn.calls'] + out.counters['cublasLt.calls']).toBe(0);
  }, 150_000);

  it('a handle that fails (cudnnCreate): the convolutions fall back with the reason, the GEMMs stay on cuBLASLt', () => {
    const { out, stderr } = child({ ...standinEnv(), ALEXNET_CUDA_PRECISION: 'strict', ALEXNET_STANDIN_FAIL: 'cudnnCreate' });
    for (const round of out.rounds) for (const [name, err] of Object.entries(round.errors)) expect(err, name).toBeLessThan(1e-5);
    for (const f of ['conv2dForward', 'conv2dBackwardData', 'conv2dBackwardFilter'] as const) {
      expect(out.libraries.kernels[f].library).toBe('own');
      expect(out.libraries.kernels[f].reason).toMatch(/^cudnnCreate failed on cuda-emu:0: CUDNN_STATUS_NOT_INITIALIZED \(stand-in\) \(cudnnStatus_t 1001\)$/);
    }
    expect(out.libraries.kernels.gemm).toEqual({ library: 'cublasLt' });
    expect(stderr.split('\n').filter((l) => l.includes('WARNING'))).toHaveLength(1);
  }, 150_000);

  it('two logical devices: a handle each, on its own stream', () => {
    const { out, log } = child({ ...standinEnv(), ALEXNET_CUDA_PRECISION: 'strict' }, ['--devices', '2']);
    expect(lines(log, /^cudnnCreate$/)).toHaveLength(2);
    expect(lines(log, /^cublasLtCreate$/)).toHaveLength(2);
    for (const round of out.rounds) for (const [name, err] of Object.entries(round.errors)) expect(err, name).toBeLessThan(1e-5);
    expect(Object.keys(out.rounds[0]!.errors).some((k) => k.endsWith('on cuda-emu:1'))).toBe(true);
  }, 150_000);

  it('libraries that are not what is wanted are passed over, and said why: not a stand-in, cuDNN 8, not cuDNN; the GPU build refuses stand-ins', () => {
    const probe = (env: Record<string, string>, backend = 'cuda-emu') => {
      const r = spawnSync(process.execPath, ['--input-type=module', '-e',
        `const c = await import(${JSON.stringify(dist)}); console.log(JSON.stringify(c.libraries(${JSON.stringify(backend)})));`],
      { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 60_000 });
      if (r.status !== 0) throw new Error(r.stderr);
      return JSON.parse(r.stdout.trim()) as ReturnType<typeof libraries>;
    };
    const na = probe({ ALEXNET_CUDNN_PATH: noAttach.cudnn });
    expect(na.cudnn.found).toBe(false);
    if (!na.cudnn.found) {
      expect(na.cudnn.searched[0]).toBe(noAttach.cudnn);
      expect(na.cudnn.reason).toContain(`passed over: ${noAttach.cudnn}: loaded, but it is not a stand-in for the emulated engine`);
    }
    const v8 = probe({ ALEXNET_CUDNN_PATH: good.cudnn, ALEXNET_STANDIN_CUDNN_VERSION: '8907' });
    expect(v8.cudnn.found).toBe(false);
    if (!v8.cudnn.found) expect(v8.cudnn.reason).toContain(`${good.cudnn}: loaded, but cudnnGetVersion() says 8907 (cuDNN 9 is needed)`);
    const other = probe({ ALEXNET_CUDNN_PATH: good.cublasLt });
    if (!other.cudnn.found) expect(other.cudnn.reason).toMatch(/loaded, but it lacks cudnnGetVersion, cudnnGetErrorString, cudnnCreate, .* \(not cuDNN 9 with its legacy convolution API\)/);
    expect(other.cudnn.found).toBe(false);
    if (cuda.buildInfo().cuda?.built) {
      const gpu = probe({ ALEXNET_CUDNN_PATH: good.cudnn, ALEXNET_CUBLASLT_PATH: good.cublasLt }, 'cuda');
      expect(gpu.backend).toBe('cuda');
      expect(gpu.cudnn.found).toBe(false);
      if (!gpu.cudnn.found) expect(gpu.cudnn.reason).toContain(`${good.cudnn}: loaded, but it is a stand-in for the emulated engine`);
      expect(gpu.kernels.gemm.library).toBe('own');
    }
  }, 150_000);
});

describe('where the libraries are looked for', () => {
  it('in order: ALEXNET_*_PATH, the dynamic loader, CUDA folders, $CONDA_PREFIX, site-packages nvidia/*/lib, torch/lib', () => {
    const site = join(tmp, 'site');
    for (const d of ['cu13', 'cublas', 'cudnn', 'nccl']) mkdirSync(join(site, 'nvidia', d, 'lib'), { recursive: true });
    const env = { ALEXNET_CUDNN_PATH: '/opt/cudnn/lib', CUDA_HOME: '/opt/cuda', CONDA_PREFIX: '/opt/conda' };
    const c = libraryCandidates('cudnn', { env, sitePackages: () => [site] });
    expect(c.slice(0, 3)).toEqual(['/opt/cudnn/lib/libcudnn.so.9', 'libcudnn.so.9', '/opt/cuda/lib64/libcudnn.so.9']);
    const at = (p: string) => { const i = c.indexOf(p); expect(i, p).toBeGreaterThan(0); return i; };
    const cuda = at('/usr/local/cuda/lib64/libcudnn.so.9'), conda = at('/opt/conda/lib/libcudnn.so.9');
    const cu13 = at(join(site, 'nvidia', 'cu13', 'lib', 'libcudnn.so.9')), cudnn = at(join(site, 'nvidia', 'cudnn', 'lib', 'libcudnn.so.9'));
    const torch = at(join(site, 'torch', 'lib', 'libcudnn.so.9'));
    expect(cuda).toBeLessThan(conda);
    expect(conda).toBeLessThan(cu13);
    expect(cu13).toBeLessThan(cudnn);
    expect(cudnn).toBeLessThan(torch);
    expect(new Set(c).size).toBe(c.length);
    // a file given as is; cuBLASLt 13 before 12 in every folder
    expect(libraryCandidates('cublasLt', { env: { ALEXNET_CUBLASLT_PATH: '/x/libcublasLt.so.12.8.4.1' }, sitePackages: () => [] })[0]).toBe('/x/libcublasLt.so.12.8.4.1');
    const lt = libraryCandidates('cublasLt', { env: {}, sitePackages: () => [site] });
    expect(lt.slice(0, 2)).toEqual(['libcublasLt.so.13', 'libcublasLt.so.12']);
    expect(lt.indexOf(join(site, 'nvidia', 'cublas', 'lib', 'libcublasLt.so.13'))).toBe(lt.indexOf(join(site, 'nvidia', 'cublas', 'lib', 'libcublasLt.so.12')) - 1);
  });

  it("NCCL in @alexnet/distributed's order (so both find the same library)", async () => {
    let distributed: { ncclCandidates: (env: NodeJS.ProcessEnv, sites: () => string[]) => string[] } | undefined;
    try {
      distributed = await import('@alexnet/distributed' as string);
    } catch {
      distributed = undefined;
    }
    const env = { ALEXNET_NCCL_PATH: '/opt/nccl', CUDA_HOME: '/opt/cuda', CONDA_PREFIX: '/opt/conda' };
    const ours = libraryCandidates('nccl', { env, sitePackages: () => ['/venv/lib/python3.12/site-packages'] });
    expect(ours.slice(0, 3)).toEqual(['/opt/nccl/libnccl.so.2', 'libnccl.so.2', '/opt/cuda/lib64/libnccl.so.2']);
    expect(ours).toContain('/venv/lib/python3.12/site-packages/nvidia/nccl/lib/libnccl.so.2');
    if (distributed) expect(ours).toEqual(distributed.ncclCandidates(env, () => ['/venv/lib/python3.12/site-packages']));
  });

  it.skipIf(libraries().cudnn.found)('absent here: libraries() says so for each, with every place tried, and the kernels are ours', () => {
    const L = libraries();
    for (const lib of ['cudnn', 'cublasLt'] as const) {
      const r = L[lib];
      expect(r.found).toBe(false);
      if (r.found) continue;
      expect(r.searched[0]).toMatch(/ \(the dynamic loader's paths\)$/);
      expect(r.searched.some((p) => p.startsWith('/usr/local/cuda/lib64/'))).toBe(true);
      for (const p of r.searched) expect(r.reason).toContain(p);
      expect(r.reason).toMatch(/was not found \(ALEXNET_(CUDNN|CUBLASLT)_PATH is not set\)/);
    }
    expect(L.kernels.conv2dForward).toEqual({ library: 'own', reason: 'cuDNN was not found (libraries().cudnn says where it looked)' });
    expect(L.kernels.gemm.library).toBe('own');
    expect(L.precision).toEqual({ conv: 'tf32', matmul: 'ieee', ownKernels: { conv: 'ieee', matmul: 'ieee' } });
  });
});
