// The README's "In code" example, run as written (from a folder inside the package, so that
// `@alexnet/monitor` resolves to this workspace's build).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

describe('README', () => {
  it('runs the "In code" example: a monitor on a run folder, and the step line it streams', () => {
    const pkg = fileURLToPath(new URL('..', import.meta.url));
    const block = /## In code\s+```js\n([\s\S]*?)```/.exec(readFileSync(join(pkg, 'README.md'), 'utf8'))![1]!;
    const dir = mkdtempSync(join(pkg, '.readme-'));
    try {
      writeFileSync(join(dir, 'example.mjs'), block);
      const r = spawnSync(process.execPath, ['example.mjs'], { cwd: dir, encoding: 'utf8', timeout: 30_000 });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^open http:\/\/127\.0\.0\.1:\d+\/ in a browser\ndata: \{"type":"step","epoch":1,"step":0,"loss":6\.91,"top1":0,"lr":0\.01,"imagesPerSecond":70,"time":"[^"]+"\}\n$/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
