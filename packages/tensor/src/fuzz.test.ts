// Hostile input at every op of every backend, in a child process (test/fuzz-child.mjs) running the
// built package: each bad call must throw an Error, and the process must survive (no crash, exit 0).
// The second child calls the raw CPU addon: getters that destroy the engine or free a buffer mid-call,
// the wrong `this`, zero-size geometries with huge counts, the LRN scratch bound. A hang is a failure
// too (the children run under a timeout, and each case names itself on stderr).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { listBackends } from './index.js';

const child = fileURLToPath(new URL('../test/fuzz-child.mjs', import.meta.url));
const dist = fileURLToPath(new URL('../dist/index.js', import.meta.url));

/** Runs the child; fails on a signal (crash, or the timeout's SIGTERM: a hang) or a non-zero exit. */
function runChild(args: string[], timeout: number): { calls: number; failures: string[] } {
  expect(existsSync(dist), 'build @alexnet/tensor first (npm run build)').toBe(true);
  const r = spawnSync(process.execPath, [child, ...args], { encoding: 'utf8', timeout });
  const last = r.stderr.trim().split('\n').filter((l) => l.startsWith('case: ')).pop() ?? '(none)';
  expect(r.signal, `child ended by ${r.signal} (crash, or a hang past ${timeout} ms) in ${last}: ${r.stderr.slice(-2000)}`).toBeNull();
  expect(r.status, r.stderr.slice(-2000)).toBe(0);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

describe('hostile input', () => {
  const names = listBackends().filter((b) => b.available && b.name !== 'cuda').map((b) => b.name);
  it(`every op of ${names.join(', ')} throws on bad arguments and never crashes`, () => {
    const { calls, failures } = runChild(names, 300_000);
    expect(failures).toEqual([]);
    expect(calls).toBeGreaterThan(300 * names.length);
  }, 320_000);

  it('the raw cpu addon survives hostile getters, the wrong this, zero-size huge counts, and bounds LRN scratch', () => {
    const { calls, failures } = runChild(['--native'], 60_000);
    expect(failures).toEqual([]);
    expect(calls).toBeGreaterThan(150);
  }, 70_000);
});
