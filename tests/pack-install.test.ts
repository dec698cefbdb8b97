// `npm pack` of every package installs into an empty folder outside the repo and works there:
// the tarballs carry what they need (dist/, native sources built at install) and nothing reaches
// back into the monorepo.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const repo = resolve(import.meta.dirname, '..');
const packagesDir = join(repo, 'packages');
const packages = readdirSync(packagesDir)
  .map((dir) => ({ dir: join(packagesDir, dir), pkg: JSON.parse(readFileSync(join(packagesDir, dir, 'package.json'), 'utf8')) }))
  .filter(({ pkg }) => !pkg.private);

let work: string;
const tarballs: string[] = [];

function npm(args: string[], cwd: string): string {
  return execFileSync('npm', args, { cwd, encoding: 'utf8', env: { ...process.env, npm_config_audit: 'false', npm_config_fund: 'false' }, stdio: ['ignore', 'pipe', 'pipe'] });
}

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'alexnet-pack-'));
  for (const { dir } of packages) {
    const out = npm(['pack', '--json', '--pack-destination', work], dir);
    tarballs.push(join(work, JSON.parse(out)[0].filename));
  }
  const app = join(work, 'app');
  execFileSync('mkdir', ['-p', app]);
  // npm 11 runs dependencies' install scripts only when the project approves them (allowScripts),
  // as a user does with `npm install-scripts approve`: the native builds of tensor and cuda.
  const allowScripts = Object.fromEntries(packages.map(({ pkg }) => [pkg.name, true]).concat([['sharp', true]]));
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'empty-app', version: '1.0.0', private: true, type: 'module', allowScripts }));
  npm(['install', '--no-audit', '--no-fund', ...tarballs], app);
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('npm pack + install in an empty folder', () => {
  it('packs every public package', () => {
    expect(tarballs.length).toBe(packages.length);
    expect(packages.map((p) => p.pkg.name)).toContain('@alexnet/tensor');
  });

  for (const { pkg } of packages) {
    it(`${pkg.name} imports cleanly outside the repo`, () => {
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', `const m = await import('${pkg.name}'); console.log(Object.keys(m).length);`],
        { cwd: join(work, 'app'), encoding: 'utf8' });
      expect(r.stderr).not.toMatch(/Error/);
      expect(r.status).toBe(0);
      expect(Number(r.stdout.trim())).toBeGreaterThan(0);
    });
  }

  it('`npx alexnet --help` runs the command there (the bin of @alexnet/train is linked and packed)', () => {
    const app = join(work, 'app');
    const env = { ...process.env, npm_config_offline: 'true', npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' };
    const r = spawnSync('npx', ['--no-install', 'alexnet', '--help'], { cwd: app, encoding: 'utf8', env, timeout: 120_000 });
    expect(r.stderr).not.toMatch(/could not determine executable|npm error|not built yet|could not load/);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/usage: alexnet <command> \[options\]/);
    for (const cmd of ['prepare', 'train', 'eval', 'predict', 'visualize', 'sample']) expect(r.stdout).toMatch(new RegExp(`^  ${cmd} `, 'm'));
    const t = spawnSync('npx', ['--no-install', 'alexnet', 'train', '--help'], { cwd: app, encoding: 'utf8', env, timeout: 120_000 });
    expect(t.status, t.stderr).toBe(0);
    expect(t.stdout).toMatch(/^usage: alexnet train /m);
  });

  it('@alexnet/tensor computes there, on its native cpu engine when it was built', () => {
    const script = `
      const T = await import('@alexnet/tensor');
      const dev = T.listBackends().find((b) => b.name === 'cpu')?.available ? 'cpu:0' : 'reference:0';
      const a = T.tensor([1, 2, 3, 4], [2, 2], { device: dev });
      const c = T.matmul(a, a);
      console.log(JSON.stringify({ dev, c: Array.from(c.dataSync()) }));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: join(work, 'app'), encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim());
    expect(out.c).toEqual([7, 10, 15, 22]);
    if (process.env.CI) expect(out.dev).toBe('cpu:0');
  });
});
