// The README's export example runs as written against the built packages and prints what it says.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));

describe('README', () => {
  it('runs "Export in a few lines" as written and prints the lines it shows', () => {
    const readme = readFileSync(here('../README.md'), 'utf8');
    const m = /## Export in a few lines\s+```js\n([\s\S]*?)```\s+prints\s+```\n([\s\S]*?)```/.exec(readme)!;
    const [, code, printed] = m as unknown as [string, string, string];
    const dist = (pkg: string) => pathToFileURL(here(`../../${pkg}/dist/index.js`)).href;
    const dir = mkdtempSync(join(tmpdir(), 'alexnet-interop-readme-'));
    try {
      writeFileSync(join(dir, 'example.mjs'), code.replace("'@alexnet/layers'", `'${dist('layers')}'`).replace("'@alexnet/interop'", `'${dist('interop')}'`));
      const r = spawnSync(process.execPath, ['example.mjs'], { cwd: dir, encoding: 'utf8', timeout: 120_000 });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout.trim()).toBe(printed.trim());
      expect(existsSync(join(dir, 'paper.onnx')) && existsSync(join(dir, 'paper.safetensors'))).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
