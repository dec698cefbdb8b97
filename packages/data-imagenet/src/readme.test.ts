import { describe, it, expect } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

describe('README', () => {
  it('runs the ten-line reuse example as written, against the built package', () => {
    const readme = readFileSync(fileURLToPath(new URL('../README.md', import.meta.url)), 'utf8');
    const block = /## Reuse in ten lines\s+```js\n([\s\S]*?)```/.exec(readme)![1]!;
    expect(block.trim().split('\n').length).toBeLessThanOrEqual(10);
    const dist = pathToFileURL(fileURLToPath(new URL('../dist/index.js', import.meta.url))).href;
    const dir = mkdtempSync(join(tmpdir(), 'alexnet-readme-'));
    try {
      writeFileSync(join(dir, 'example.mjs'), block.replace("'@alexnet/data-imagenet'", `'${dist}'`));
      const out = execFileSync(process.execPath, ['example.mjs'], { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      // 10 classes x 20 = 200 training images, batches of 64: 64, 64, 64, 8 per epoch, two epochs.
      expect(out.trim().split('\n')).toEqual([
        ...['0', '1'].flatMap((e) => [
          `${e} [ 64, 3, 224, 224 ] 9633792 64`, `${e} [ 64, 3, 224, 224 ] 9633792 64`, `${e} [ 64, 3, 224, 224 ] 9633792 64`, `${e} [ 8, 3, 224, 224 ] 1204224 8`,
        ]),
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('runs the raw-folder example (statistics, loader, progress line, estimate) as written', () => {
    const readme = readFileSync(fileURLToPath(new URL('../README.md', import.meta.url)), 'utf8');
    const block = /## Training from a raw folder, with statistics and a progress line\s+```js\n([\s\S]*?)```/.exec(readme)![1]!;
    const dist = pathToFileURL(fileURLToPath(new URL('../dist/index.js', import.meta.url))).href;
    const dir = mkdtempSync(join(tmpdir(), 'alexnet-readme-'));
    try {
      writeFileSync(join(dir, 'example.mjs'), block.replace("'@alexnet/data-imagenet'", `'${dist}'`));
      const r = spawnSync(process.execPath, ['example.mjs'], { cwd: dir, encoding: 'utf8' });
      expect(r.status).toBe(0);
      expect(r.stdout.trim()).toBe('252 GB of raw shards for ILSVRC-2012');
      // stderr is not a terminal here: plain lines, the last one once.
      expect(r.stderr.trim().split('\n').at(-1)).toMatch(/^epoch 0 2\/2 \[#{24}\] [\d.]+ img\/s ETA 00:00 loss 2\.303 lr 0\.01$/);
      expect(existsSync(join(dir, 'run', 'statistics', 'stats.json'))).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
