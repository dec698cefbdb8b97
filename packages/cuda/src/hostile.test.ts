// The raw cuda-emu addon under hostile calls, in a child process (test/hostile-child.mjs): getters
// that destroy the engine or free a buffer mid-call, the wrong `this`, zero-size geometries with
// huge counts, overflowing size products, LRN memory. Every case must throw an Error (or, for calls
// that describe no elements, return at once); the child must not crash or hang (it runs under a
// timeout, and names each case on stderr).
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { cudaEmu } from './index.js';

const child = fileURLToPath(new URL('../test/hostile-child.mjs', import.meta.url));

describe('cuda-emu addon: hostile calls', () => {
  it('throw Errors, never crash or hang', () => {
    expect(cudaEmu.reason()).toBeUndefined();
    const timeout = 90_000;
    const r = spawnSync(process.execPath, [child], { encoding: 'utf8', timeout });
    const last = r.stderr.trim().split('\n').filter((l) => l.startsWith('case: ')).pop() ?? '(none)';
    expect(r.signal, `child ended by ${r.signal} (crash, or a hang past ${timeout} ms) in ${last}: ${r.stderr.slice(-2000)}`).toBeNull();
    expect(r.status, r.stderr.slice(-2000)).toBe(0);
    const { calls, failures } = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(failures).toEqual([]);
    expect(calls).toBeGreaterThan(120);
  }, 100_000);
});
