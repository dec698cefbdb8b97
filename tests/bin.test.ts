// `npx alexnet` works in the repository after the README's set-up (`npm ci`, then `npm run build` or
// `npm run demo` / `npm test`, which build). npm links node_modules/.bin/alexnet at `npm ci` time,
// before anything is built, and makes no link at all when the bin target does not exist then: so
// the target must be a committed file, not something under dist/.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const repo = resolve(import.meta.dirname, '..');
const trainDir = join(repo, 'packages', 'train');
const trainPkg = JSON.parse(readFileSync(join(trainDir, 'package.json'), 'utf8'));
const binTarget: string = trainPkg.bin?.alexnet;
const temps: string[] = [];

afterAll(() => {
  for (const t of temps) rmSync(t, { recursive: true, force: true });
});

/** Runs a copy of the bin file in a folder laid out like the package, with `dist` as given. */
function runBinCopy(dist: Record<string, string>): ReturnType<typeof spawnSync> {
  const dir = mkdtempSync(join(tmpdir(), 'alexnet-bin-'));
  temps.push(dir);
  mkdirSync(join(dir, 'bin'));
  copyFileSync(join(trainDir, binTarget), join(dir, 'bin', 'alexnet.js'));
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'copy', type: 'module' }));
  for (const [file, text] of Object.entries(dist)) {
    mkdirSync(join(dir, 'dist', file, '..'), { recursive: true });
    writeFileSync(join(dir, 'dist', file), text);
  }
  const env = { ...process.env };
  delete env.ALEXNET_DEBUG;
  return spawnSync(process.execPath, [join(dir, 'bin', 'alexnet.js'), '--help'], { cwd: dir, encoding: 'utf8', env });
}

describe('the alexnet command in the repository', () => {
  it('the bin of @alexnet/train is a committed file (so `npm ci` links it before the build), with a node shebang, and is packed', () => {
    expect(binTarget, 'packages/train/package.json has bin.alexnet').toBeTypeOf('string');
    const rel = join('packages', 'train', binTarget).replace(/\\/g, '/');
    expect(rel, 'the bin must not be a build output').not.toMatch(/\/(dist|build)\//);
    const inGit = spawnSync('git', ['rev-parse', '--is-inside-work-tree'], { cwd: repo, encoding: 'utf8' }).status === 0;
    if (inGit) {
      const tracked = spawnSync('git', ['ls-files', '--error-unmatch', rel], { cwd: repo, encoding: 'utf8' });
      expect(tracked.status, `${rel} must be tracked by git, not a build output`).toBe(0);
    }
    expect(readFileSync(join(trainDir, binTarget), 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
    const top = binTarget.replace(/^\.\//, '').split('/')[0];
    expect(trainPkg.files).toContain(top);
  });

  it('npm links node_modules/.bin/alexnet in a fresh checkout, where nothing is built yet', () => {
    // What `npm ci` sees in a new clone: @alexnet/train's committed files (no dist/) as a workspace.
    const dir = mkdtempSync(join(tmpdir(), 'alexnet-fresh-'));
    temps.push(dir);
    const files = spawnSync('git', ['ls-files', '-z', 'packages/train'], { cwd: repo, encoding: 'utf8' }).stdout.split('\0')
      .filter((f) => f && !f.startsWith('packages/train/src/') && existsSync(join(repo, f)));
    expect(files).toContain('packages/train/package.json');
    for (const f of files) {
      mkdirSync(join(dir, dirname(f)), { recursive: true });
      copyFileSync(join(repo, f), join(dir, f));
    }
    // Only the bin matters here: no dependencies to fetch, no scripts to run.
    const { dependencies: _d, optionalDependencies: _o, devDependencies: _v, scripts: _s, ...bare } = trainPkg;
    writeFileSync(join(dir, 'packages/train/package.json'), JSON.stringify(bare, null, 2));
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'fresh-checkout', private: true, workspaces: ['packages/train'] }));
    const r = spawnSync('npm', ['install', '--offline', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: dir, encoding: 'utf8', timeout: 120_000 });
    expect(r.status, r.stderr).toBe(0);
    const link = join(dir, 'node_modules', '.bin', 'alexnet');
    expect(existsSync(link), 'npm made no node_modules/.bin/alexnet: the bin target is missing before the build').toBe(true);
    expect(realpathSync(link)).toBe(realpathSync(join(dir, 'packages/train', binTarget)));
  });

  it('npm ci linked node_modules/.bin/alexnet to that file', () => {
    const link = join(repo, 'node_modules', '.bin', 'alexnet');
    let target = '';
    try {
      target = realpathSync(link);
    } catch {
      throw new Error(`${link} is missing: npm ci made no link for the alexnet bin`);
    }
    expect(target).toBe(realpathSync(join(trainDir, binTarget)));
  });

  it('`npx --no-install alexnet --help` from the repository root prints the usage and exits 0', () => {
    const r = spawnSync('npx', ['--no-install', 'alexnet', '--help'], {
      cwd: repo, encoding: 'utf8', timeout: 120_000,
      env: { ...process.env, npm_config_offline: 'true', npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' },
    });
    expect(r.stderr).not.toMatch(/could not determine executable|npm error/);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/usage: alexnet <command> \[options\]/);
    for (const cmd of ['prepare', 'train', 'eval', 'predict', 'visualize', 'sample']) expect(r.stdout).toMatch(new RegExp(`^  ${cmd} `, 'm'));
  });

  it('`npx alexnet train --help` lists the train options', () => {
    const r = spawnSync('npx', ['--no-install', 'alexnet', 'train', '--help'], { cwd: repo, encoding: 'utf8', timeout: 120_000, env: { ...process.env, npm_config_offline: 'true' } });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^usage: alexnet train /m);
    expect(r.stdout).toMatch(/--resume/);
  });

  it('before the build, the bin says in one sentence to run `npm run build` (no stack trace) and exits 1', () => {
    const r = runBinCopy({});
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    const lines = String(r.stderr).trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^alexnet: .*`npm run build`/);
    expect(r.stderr).not.toMatch(/^\s+at /m);
  });

  it('a dist that cannot load (a dependency not built) gets one sentence too, not a stack trace', () => {
    const r = runBinCopy({ 'cli/main.js': "import '@alexnet/not-built-yet';\n" });
    expect(r.status).toBe(1);
    const lines = String(r.stderr).trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^alexnet: could not load the command .*`npm run build`/);
    expect(r.stderr).not.toMatch(/^\s+at /m);
  });

  it('the bin runs the CLI on its own arguments (process.argv reaches main unchanged)', () => {
    const r = runBinCopy({ 'cli/main.js': 'console.log(JSON.stringify(process.argv.slice(2)));\n' });
    expect(r.status, String(r.stderr)).toBe(0);
    expect(JSON.parse(String(r.stdout))).toEqual(['--help']);
  });
});
