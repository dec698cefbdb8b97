// A script that stops reading an epoch early and awaits close() must run to its end: close() once
// waited for idle (unref'd) worker threads to exit, so under top-level await the event loop emptied
// first and Node exited with code 13 before the script finished.
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSampleImageNet, prepareImageNet } from './index.js';

const dist = fileURLToPath(new URL('../dist/index.js', import.meta.url));
let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'alexnet-pool-'));
  await createSampleImageNet({ dir: join(root, 'raw'), classes: 4, perClass: 12, valPerClass: 2, seed: 2, longSide: 64 });
  await prepareImageNet({ source: join(root, 'raw'), out: join(root, 'prep'), size: 40, workers: 1 });
}, 120_000);
afterAll(async () => { if (root) await rm(root, { recursive: true, force: true }); });

describe('WorkerPool', () => {
  it('close() after an early break settles, so a top-level-await script finishes', () => {
    const script = `
      const D = await import(${JSON.stringify(dist)});
      for (let round = 0; round < 3; round++) {
        const ds = await D.openShards(${JSON.stringify(join(root, 'prep'))}, 'train');
        const l = D.createLoader(ds, { batchSize: 4, crop: 32, workers: 2, mean: ds.statistics.meanImage, prefetch: 4 });
        for await (const b of l.epoch(round)) { if (b.index === 0) break; }
        await l.close();
      }
      console.log('finished');`;
    const file = join(root, 'early-close.mjs');
    writeFileSync(file, script);
    const r = spawnSync(process.execPath, [file], { encoding: 'utf8', timeout: 120_000 });
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('finished');
    expect(r.status).toBe(0);
  }, 150_000);
});
