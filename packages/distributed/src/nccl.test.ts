// NCCL is loaded at run time: the search order, the report when it is absent (as here), a library
// found through ALEXNET_NCCL_PATH (a stand-in built with cc), one that is not NCCL, and the error of
// asking for an NCCL group without MPI.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { buildNcclStub, haveCc } from './test-support/nccl-stub.js';
import { LocalGroup } from './group.js';
import { libraries } from './index.js';
import { initNcclGroup, ncclCandidates } from './nccl.js';
import { addon } from './native.js';

const pkg = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(pkg, 'dist', 'index.js');
const tmp = mkdtempSync(join(tmpdir(), 'alexnet-nccl-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const probeNccl = (env: Record<string, string>) => {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e',
    `const d = await import(${JSON.stringify(dist)}); console.log(JSON.stringify(d.libraries().nccl));`],
  { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 30_000 });
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout.trim());
};

describe('NCCL', () => {
  it('is searched in order: ALEXNET_NCCL_PATH, the loader, CUDA folders, Python site-packages', () => {
    const c = ncclCandidates({ ALEXNET_NCCL_PATH: '/opt/nccl/lib', CUDA_HOME: '/opt/cuda', CONDA_PREFIX: '/opt/conda' }, () => ['/venv/lib/python3.11/site-packages']);
    expect(c.slice(0, 3)).toEqual(['/opt/nccl/lib/libnccl.so.2', 'libnccl.so.2', '/opt/cuda/lib64/libnccl.so.2']);
    expect(c).toContain('/usr/local/cuda/lib64/libnccl.so.2');
    expect(c).toContain('/opt/conda/lib/libnccl.so.2');
    const site = c.indexOf('/venv/lib/python3.11/site-packages/nvidia/nccl/lib/libnccl.so.2');
    expect(site).toBeGreaterThan(c.indexOf('/usr/local/cuda/lib64/libnccl.so.2'));
    expect(c.indexOf('/usr/lib/python3/dist-packages/nvidia/nccl/lib/libnccl.so.2')).toBeGreaterThan(site);
    expect(new Set(c).size).toBe(c.length);
    // a file given as is
    expect(ncclCandidates({ ALEXNET_NCCL_PATH: '/x/libnccl.so.2.21.5' }, () => [])[0]).toBe('/x/libnccl.so.2.21.5');
    // python3 is asked where its site-packages are
    expect(ncclCandidates({}).some((p) => p.endsWith('/nvidia/nccl/lib/libnccl.so.2'))).toBe(true);
  });

  it.skipIf(libraries().nccl.found)('absent here: libraries().nccl says so and names the places searched', () => {
    const n = libraries().nccl;
    if (n.found) return;
    expect(n.reason).toMatch(/^NCCL \(libnccl\.so\.2\) was not found \(ALEXNET_NCCL_PATH is not set\); searched libnccl\.so\.2 \(the dynamic loader's paths\), /);
    expect(n.reason).toMatch(/set ALEXNET_NCCL_PATH/);
    expect(n.searched[0]).toBe("libnccl.so.2 (the dynamic loader's paths)");
    expect(n.searched).toContain('/usr/local/cuda/lib64/libnccl.so.2');
    expect(n.searched.some((p) => /site-packages|dist-packages/.test(p) && p.endsWith('nvidia/nccl/lib/libnccl.so.2'))).toBe(true);
    for (const p of n.searched) expect(n.reason).toContain(p);
  });

  it('asking for an NCCL group without an MPI group is a clear error', async () => {
    await expect(initNcclGroup(new LocalGroup())).rejects.toThrow(
      "initNcclGroup needs an MPI process group (a program launched by mpirun): NCCL's unique id travels over MPI");
  });

  it.skipIf(!haveCc() || !existsSync(dist) || !addon().addon)('a library at ALEXNET_NCCL_PATH is found first and its version read', () => {
    const lib = buildNcclStub(join(tmp, 'good'));
    const n = probeNccl({ ALEXNET_NCCL_PATH: dirname(lib) });
    expect(n).toEqual({ found: true, path: lib, version: '2.19.3' });
    expect(probeNccl({ ALEXNET_NCCL_PATH: lib })).toEqual({ found: true, path: lib, version: '2.19.3' });
  });

  it.skipIf(!haveCc() || !existsSync(dist) || !addon().addon || libraries().nccl.found)('a library that lacks NCCL\'s functions is passed over, and named', () => {
    const lib = buildNcclStub(join(tmp, 'partial'), false);
    const n = probeNccl({ ALEXNET_NCCL_PATH: lib });
    expect(n.found).toBe(false);
    expect(n.searched[0]).toBe(lib);
    expect(n.reason).toContain(`failed: ${lib}: loaded, but it lacks ncclGetUniqueId, ncclCommInitRank`);
    expect(n.reason).toContain('(not an NCCL 2 library)');
  });
});
