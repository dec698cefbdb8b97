// Without MPI: the package loads, libraries() says why, a launched process gets the sentence that
// says what to install, and one process runs as without the package. Simulated by pointing the
// loader at a missing addon (ALEXNET_DISTRIBUTED_ADDON), and by a build with ALEXNET_MPI_SKIP=1 into
// a folder of its own (the install's one line, and an addon that answers without MPI).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { BUILT_WITHOUT_MPI, loadAddon } from './native.js';

const pkg = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(pkg, 'dist', 'index.js');
const tmp = mkdtempSync(join(tmpdir(), 'alexnet-distributed-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const SENTENCE = '@alexnet/distributed was built without MPI: install OpenMPI (apt-get install openmpi-bin libopenmpi-dev) and rebuild with npm rebuild @alexnet/distributed';

function node(script: string, env: Record<string, string>) {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(OMPI_|PMI_|PMIX_)/.test(k)));
  return spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: pkg, encoding: 'utf8', env: { ...clean, ...env }, timeout: 30_000 });
}

describe('without MPI', () => {
  it('the sentence is the one the issue asks for', () => {
    expect(BUILT_WITHOUT_MPI).toBe(SENTENCE);
  });

  it('loadAddon of a missing file: no addon, the sentence as the reason', () => {
    const r = loadAddon(join(tmp, 'nowhere', 'alexnet_mpi.node'));
    expect(r.addon).toBeUndefined();
    expect(r.mpi).toBe(false);
    expect(r.reason!.startsWith(SENTENCE)).toBe(true);
    expect(r.reason).toContain('no addon at');
  });

  it.skipIf(!existsSync(dist))('the package (dist) loads without its addon; launched by mpirun it rejects with the sentence; alone it is one process', () => {
    const script = `
      const d = await import(${JSON.stringify(dist)});
      const libs = d.libraries();
      const out = { mpi: libs.mpi, nccl: libs.nccl };
      try { await d.initProcessGroup(); out.launched = 'resolved'; } catch (e) { out.launched = e.message; }
      console.log(JSON.stringify(out));`;
    const missing = join(tmp, 'missing.node');
    const r = node(script, { ALEXNET_DISTRIBUTED_ADDON: missing, OMPI_COMM_WORLD_RANK: '0', OMPI_COMM_WORLD_SIZE: '2' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout.trim());
    expect(out.mpi.found).toBe(false);
    expect(out.mpi.reason.startsWith(SENTENCE)).toBe(true);
    expect(out.nccl).toMatchObject({ found: false });
    expect(out.nccl.reason).toMatch(/NCCL cannot be loaded: @alexnet\/distributed was built without MPI/);
    expect(out.launched.startsWith(SENTENCE)).toBe(true);

    const alone = `
      const d = await import(${JSON.stringify(dist)});
      const g = await d.initProcessGroup();
      const a = await g.allReduce(Float32Array.of(1, 2), 'sum');
      const l = await (await import(${JSON.stringify(join(pkg, 'dist', 'group.js'))})).initProcessGroup({ backend: 'local' });
      console.log(JSON.stringify({ backend: g.backend, rank: g.rank, size: g.size, a: Array.from(a), same: l === g }));`;
    const s = node(alone, { ALEXNET_DISTRIBUTED_ADDON: missing });
    expect(s.status, s.stderr).toBe(0);
    expect(JSON.parse(s.stdout.trim())).toEqual({ backend: 'local', rank: 0, size: 1, a: [1, 2], same: true });

    const forcedLocal = `
      const d = await import(${JSON.stringify(dist)});
      const g = await d.initProcessGroup({ backend: 'local' });
      console.log(g.backend, g.size);`;
    const f = node(forcedLocal, { ALEXNET_DISTRIBUTED_ADDON: missing, OMPI_COMM_WORLD_RANK: '1', OMPI_COMM_WORLD_SIZE: '2' });
    expect(f.status, f.stderr).toBe(0);
    expect(f.stdout.trim()).toBe('local 1');
  });

  it('a build with ALEXNET_MPI_SKIP=1 prints one line at install, and its addon answers without MPI', () => {
    const out = join(tmp, 'build');
    const r = spawnSync(process.execPath, [join(pkg, 'scripts', 'build.mjs'), '--install'], {
      cwd: pkg, encoding: 'utf8', timeout: 120_000, env: { ...process.env, ALEXNET_MPI_SKIP: '1', ALEXNET_DISTRIBUTED_BUILD_DIR: out },
    });
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toEqual([`[@alexnet/distributed] built without MPI (ALEXNET_MPI_SKIP=1 was set): install OpenMPI (apt-get install openmpi-bin libopenmpi-dev) and rebuild with npm rebuild @alexnet/distributed`]);
    const l = loadAddon(join(out, 'Release', 'alexnet_mpi.node'));
    expect(l.addon).toBeDefined();
    expect(l.mpi).toBe(false);
    expect(l.reason).toBe(`${SENTENCE} (ALEXNET_MPI_SKIP=1 was set)`);
    expect(() => l.addon!.init()).toThrow(SENTENCE);
    expect(() => l.addon!.allReduce(new Float32Array(1), 'sum')).toThrow(SENTENCE);
    // the NCCL probe still works in such a build
    const p = l.addon!.ncclProbe([join(tmp, 'none', 'libnccl.so.2')]);
    expect(p).toEqual({ found: false, attempts: [{ path: join(tmp, 'none', 'libnccl.so.2'), error: 'no such file' }] });
  }, 120_000);
});
