// The ablation switches of the paper's claims (§3.3, §3.4, §4.1, §4.2) through the CLI: each changes
// the model description (or the loader) as it says, the recipe says so, the run trains, and the
// checkpoint rebuilds the same model for eval.
import { spawnSync } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import sharp from 'sharp';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpoint } from './checkpoint.js';
import { loadTrained } from './inference.js';
import { sampleFixture, type Fixture } from './fixture.test-util.js';

const cli = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
let fx: Fixture;
beforeAll(async () => { fx = await sampleFixture(8, 2); }, 120_000);
afterAll(async () => { if (fx) await rm(fx.root, { recursive: true, force: true }); });

describe('ablation switches', () => {
  it('--no-lrn, --pool 2/2, --no-dropout, --no-lighting each change what they say, train, and evaluate', async () => {
    const cases: [string[], (kinds: string[], recipe: Record<string, any>) => void][] = [
      [['--no-lrn'], (k, r) => { expect(k.filter((x) => x.startsWith('lrn'))).toEqual([]); expect(r.model.lrn).toBeNull(); }],
      [['--pool', '2/2'], (k, r) => { expect(k.filter((x) => x.startsWith('maxpool'))).toEqual(['maxpool 2/2', 'maxpool 2/2', 'maxpool 2/2']); expect(r.model.pool).toEqual({ size: 2, stride: 2 }); }],
      [['--no-dropout'], (k, r) => { expect(k.filter((x) => x.startsWith('dropout'))).toEqual([]); expect(r.model.dropout).toBe(false); }],
      [['--no-lighting'], (k, r) => { expect(k.filter((x) => x.startsWith('lrn'))).toHaveLength(2); expect(r.lighting).toEqual({ on: false, why: 'turned off (--no-lighting)' }); }],
    ];
    const outs: string[] = [];
    for (const [flags, check] of cases) {
      const out = join(fx.root, flags.join('').replace(/\W/g, ''));
      const r = spawnSync(process.execPath, [cli, 'train', fx.prepared, '--out', out, '--crop', '67', '-b', '16', '-j', '1', '--epochs', '1', '--positive-bias', '0.1', ...flags], { encoding: 'utf8' });
      expect(r.status, `${flags}: ${r.stderr}`).toBe(0);
      const ck = await loadCheckpoint(join(out, 'checkpoint.safetensors'));
      const t = await loadTrained(join(out, 'checkpoint.safetensors'));
      const kinds = t.model.description.layers.map((l) => (l.kind === 'maxpool' ? `maxpool ${l.size}/${l.stride}` : `${l.kind} ${l.name}`));
      check(kinds, ck.meta.recipe as Record<string, any>);
      expect(Number.isFinite((ck.meta.trainer as { history: { trainLoss: number }[] }).history[0]!.trainLoss)).toBe(true);
      t.model.dispose();
      const ev = spawnSync(process.execPath, [cli, 'eval', '--checkpoint', join(out, 'checkpoint.safetensors'), fx.prepared, '-j', '1'], { encoding: 'utf8' });
      expect(ev.status, ev.stderr).toBe(0);
      outs.push(out);
    }

    // alexnet compare: one picture of both runs' curves, and the table of final errors and differences.
    const png = join(fx.root, 'compare.png');
    const c = spawnSync(process.execPath, [cli, 'compare', outs[0]!, outs[3]!, '--out', png], { encoding: 'utf8' });
    expect(c.status, c.stderr).toBe(0);
    const epochOf = async (dir: string) => JSON.parse((await readFile(join(dir, 'metrics.jsonl'), 'utf8')).trim().split('\n').filter((l) => l.includes('"type":"epoch"')).pop()!);
    const [e0, e3] = [await epochOf(outs[0]!), await epochOf(outs[3]!)];
    const rows = c.stdout.split('\n').filter((l) => l.startsWith('| nolrn') || l.startsWith('| nolighting'));
    expect(rows).toHaveLength(2);
    // Each run is labelled by what its recipe changes (LRN off; lighting off), the differences in points from the first.
    expect(rows[0]).toMatch(/^\| nolrn \(reference\) \| 1 \| .* \| \(reference\) \|/);
    expect(rows[1]).toMatch(/^\| nolighting: lighting\.on false, model\.lrn \{"convention":"paper","acrossTowers":false\} \| 1 \|/);
    expect(rows[1]).toContain(`| ${e3.valTop1Error >= e0.valTop1Error ? '+' : ''}${(100 * (e3.valTop1Error - e0.valTop1Error)).toFixed(1)} |`);
    const meta = await sharp(png).metadata();
    expect([meta.width, meta.height]).toEqual([1520, 440]);
  }, 300_000);
});
