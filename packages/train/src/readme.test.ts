// The README's "In code" example, run as written (from a folder inside the package, so that
// `@alexnet/train` resolves to this workspace's build).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

describe('README', () => {
  it('runs the "In code" example: a sample ImageNet, shards, two towers, predict', () => {
    const pkg = fileURLToPath(new URL('..', import.meta.url));
    const block = /## In code\s+```js\n([\s\S]*?)```/.exec(readFileSync(join(pkg, 'README.md'), 'utf8'))![1]!;
    const dir = mkdtempSync(join(pkg, '.readme-'));
    try {
      writeFileSync(join(dir, 'example.mjs'), block);
      const r = spawnSync(process.execPath, ['example.mjs'], { cwd: dir, encoding: 'utf8', timeout: 300_000 });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/epoch: 2,\s+trainLoss: [\d.]+,\s+trainTop1Error: [\d.]+,\s+lr: 0\.01,\s+valTop1Error: [\d.]+,\s+valTop5Error: [\d.]+/);
      expect(r.stdout).toMatch(/index: \d+,\s+wnid: 'n\d+',\s+name: '[^']+',\s+probability: [\d.e-]+/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 300_000);
});
