// Hostile input at every op of every backend, in a child process (test/fuzz-child.mjs) running the
// built package: each bad call must throw an Error, and the process must survive (no crash, exit 0).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { listBackends } from './index.js';

const child = fileURLToPath(new URL('../test/fuzz-child.mjs', import.meta.url));
const dist = fileURLToPath(new URL('../dist/index.js', import.meta.url));

describe('hostile input', () => {
  const names = listBackends().filter((b) => b.available && b.name !== 'cuda').map((b) => b.name);
  it(`every op of ${names.join(', ')} throws on bad arguments and never crashes`, () => {
    expect(existsSync(dist), 'build @alexnet/tensor first (npm run build)').toBe(true);
    const r = spawnSync(process.execPath, [child, ...names], { encoding: 'utf8', timeout: 300_000 });
    expect(r.signal, `child crashed with ${r.signal}: ${r.stderr}`).toBeNull();
    expect(r.status, r.stderr).toBe(0);
    const { calls, failures } = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(failures).toEqual([]);
    expect(calls).toBeGreaterThan(300 * names.length);
  }, 320_000);
});
