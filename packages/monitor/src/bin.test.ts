// The package's own command, bin/alexnet-monitor.js (it runs dist/: the build comes before the tests).
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const bin = fileURLToPath(new URL('../bin/alexnet-monitor.js', import.meta.url));
const run = (...args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 30_000 });

describe('alexnet-monitor', () => {
  it('--help, and errors that name the argument', () => {
    const help = run('--help');
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/^usage: alexnet-monitor RUN_DIR \[--port 6006\] \[--host 127.0.0.1\]/);
    const gone = join(tmpdir(), 'alexnet-monitor-no-such-run');
    const missing = run(gone);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toBe(`alexnet-monitor: the run directory ${gone} does not exist; give the folder that \`alexnet train --out\` writes (it holds metrics.jsonl)\n`);
    expect(run('x', '--port', 'abc').stderr).toBe('alexnet-monitor: --port must be a port number from 0 to 65535 but is "abc"\n');
    expect(run().stderr).toMatch(/^alexnet-monitor: give the run folder\nusage:/);
    expect(run('a', 'b').stderr).toBe('alexnet-monitor: one run folder only, but received "a" and "b"\n');
  });

  it('serves a run folder on the port it is given, until SIGTERM', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'alexnet-monitor-bin-'));
    const child = spawn(process.execPath, [bin, dir, '--port=0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const line = await new Promise<string>((done, fail) => {
        let out = '';
        child.stdout.on('data', (d: Buffer) => { out += d.toString(); if (out.includes('\n')) done(out); });
        child.on('exit', (code) => fail(new Error(`exited with ${code}`)));
      });
      const url = /at (http:\/\/127\.0\.0\.1:\d+\/)/.exec(line)?.[1];
      expect(line).toBe(`monitoring ${dir} at ${url} (Ctrl-C stops)\n`);
      expect(await (await fetch(url!)).text()).toMatch(/<title>alexnet monitor<\/title>/);
      const exit = new Promise((done) => child.on('exit', done));
      child.kill('SIGTERM');
      expect(await exit).toBe(0);
    } finally {
      child.kill();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
