// CIFAR-10's binary version: records read as 32x32 HWC images (hand-built records), the generated
// sample set, the loader on the in-memory source, and damaged files named.
import { mkdtempSync, rmSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CIFAR10_CLASSES, createSampleCifar10, openCifar10 } from './cifar.js';
import { createLoader } from './loader.js';
import { subsetDataset } from './subset.js';

const dir = mkdtempSync(join(tmpdir(), 'alexnet-cifar-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('CIFAR-10 binary', () => {
  it('reads records as label + planar RGB, into HWC images; the sample set and the loader', async () => {
    const r = await createSampleCifar10({ dir, perClass: 6, testPerClass: 2, seed: 3 });
    expect([r.train, r.test]).toEqual([60, 20]);
    const train = await openCifar10(dir, 'train'), test = await openCifar10(dir, 'test');
    expect([train.length, test.length, train.size]).toEqual([60, 20, 32]);
    expect(train.classes.map((c) => c.name)).toEqual([...CIFAR10_CLASSES]);
    expect([...new Set(train.labels)].sort()).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    // Record 7 of data_batch_1.bin, by hand: label byte, then pixel p's R at 1 + p, G at 1025 + p, B at 2049 + p.
    const bytes = await readFile(join(dir, 'data_batch_1.bin'));
    const rec = bytes.subarray(7 * 3073, 8 * 3073);
    expect(train.labels[7]).toBe(rec[0]);
    const src = train.source.kind === 'pixels' ? new Uint8Array(train.source.pixels, 7 * 3072, 3072) : null;
    for (const p of [0, 33, 1023]) expect([src![3 * p], src![3 * p + 1], src![3 * p + 2]]).toEqual([rec[1 + p], rec[1025 + p], rec[2049 + p]]);
    // The loader's centre crop of the whole image, no mean: the same values, planar again.
    const loader = createLoader(subsetDataset(train, [7, 3]), { batchSize: 2, mode: 'center', crop: 32, mean: 'none', workers: 1 });
    for await (const b of loader.epoch(0)) {
      expect([...b.labels]).toEqual([train.labels[7], train.labels[3]]);
      for (const p of [0, 33, 1023]) expect([b.images[p], b.images[1024 + p], b.images[2048 + p]]).toEqual([rec[1 + p], rec[1025 + p], rec[2049 + p]]);
    }
    await loader.close();
  });

  it('names a missing file, a file that is not whole records, and a bad label', async () => {
    const bad = mkdtempSync(join(dir, 'bad-'));
    await expect(openCifar10(bad)).rejects.toThrow(/is not CIFAR-10's binary version: data_batch_1\.bin, .* missing/);
    for (let b = 1; b <= 5; b++) await writeFile(join(bad, `data_batch_${b}.bin`), Buffer.alloc(3073));
    await writeFile(join(bad, 'data_batch_3.bin'), Buffer.alloc(3074));
    await expect(openCifar10(bad)).rejects.toThrow(/data_batch_3\.bin holds 3074 bytes, not a whole number of 3073-byte CIFAR-10 records/);
    const lab = Buffer.alloc(3073); lab[0] = 12;
    await writeFile(join(bad, 'data_batch_3.bin'), lab);
    await expect(openCifar10(bad)).rejects.toThrow(/data_batch_3\.bin record 0 has label 12, outside CIFAR-10's 0\.\.9/);
  });
});
