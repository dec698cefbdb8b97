// Damaged shards and failures on worker threads: the error names the file (and the index entry),
// keeps its class across the thread boundary, and reads as one sentence.
import { describe, it, expect, beforeAll } from 'vitest';
import { cpSync, mkdtempSync, mkdirSync, readFileSync, rmSync, truncateSync, unlinkSync, writeFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSampleImageNet } from './sample.js';
import { prepareImageNet } from './prepare.js';
import { createLoader, openImageFolder, openShards, type Dataset, type LoaderOptions } from './loader.js';
import { readShardInfo, HEADER_BYTES, ENTRY_BYTES } from './shard.js';
import { ImageNetDataError } from './errors.js';
import { indexImageNet } from './layout.js';

let dir: string;
let raw: string;
let jpeg: string;
const SIZE = 32;
const RECORD = SIZE * SIZE * 3;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'alexnet-shard-errors-'));
  await createSampleImageNet({ dir: join(dir, 'in'), classes: 3, perClass: 4, valPerClass: 1, seed: 5, longSide: 40 });
  raw = join(dir, 'raw');
  jpeg = join(dir, 'jpeg');
  await prepareImageNet({ source: join(dir, 'in'), out: raw, size: SIZE, shardSize: 5, workers: 0 });
  await prepareImageNet({ source: join(dir, 'in'), out: jpeg, size: SIZE, shardSize: 5, workers: 0, encoding: 'jpeg', splits: ['train'] });
  return () => rmSync(dir, { recursive: true, force: true });
});

let copies = 0;
/** A fresh copy of the raw shards with entry `entry` of train-00001.shard patched by `edit`. */
function patched(edit: (b: Buffer, entry: number) => void, entry: number): { root: string; shard: string } {
  const root = join(dir, `copy-${copies++}`);
  cpSync(raw, root, { recursive: true });
  const shard = join(root, 'train-00001.shard');
  const b = readFileSync(shard);
  edit(b, HEADER_BYTES + entry * ENTRY_BYTES);
  writeFileSync(shard, b);
  return { root, shard };
}

async function openError(root: string): Promise<ImageNetDataError> {
  const e = await openShards(root).then(() => null, (x: unknown) => x);
  expect(e).toBeInstanceOf(ImageNetDataError);
  return e as ImageNetDataError;
}

function oneSentence(e: Error): void {
  expect(e.message).not.toMatch(/Error:/);
  expect(e.message).not.toContain('\n');
}

describe('shard index validation', () => {
  it('refuses a label outside [0, classes), naming the shard and the entry', async () => {
    for (const label of [3, -1]) {
      const { root, shard } = patched((b, o) => b.writeInt32LE(label, o + 12), 2);
      const e = await openError(root);
      expect(e.message).toBe(`${shard} entry 2 has label ${label}, outside the 3 classes (0..2) of manifest.json`);
      expect(e.path).toBe(shard);
    }
    // Without a class count, only negative labels are refused.
    const { shard } = patched((b, o) => b.writeInt32LE(7, o + 12), 2);
    expect(readShardInfo(shard).entries[2]!.label).toBe(7);
    expect(() => readShardInfo(shard, { classes: 3 })).toThrow(`${shard} entry 2 has label 7`);
  });

  it('refuses a raw record whose length is not size*size*3', async () => {
    const { root, shard } = patched((b, o) => b.writeUInt32LE(RECORD - 1, o + 8), 1);
    const e = await openError(root);
    expect(e.message).toBe(`${shard} entry 1 is ${RECORD - 1} bytes long, but a raw 32x32x3 record is ${RECORD} bytes`);
  });

  it('refuses an entry that points past the records, and entries that overlap', async () => {
    const past = patched((b, o) => {
      const metaOffset = Number(b.readBigUInt64LE(40));
      b.writeBigUInt64LE(BigInt(metaOffset - RECORD / 2), o);
    }, 0);
    expect((await openError(past.root)).message).toMatch(new RegExp(`^${past.shard} entry 0 points at bytes \\d+\\.\\.\\d+, outside the records \\(bytes \\d+\\.\\.\\d+\\)$`));
    const overlap = patched((b, o) => b.writeBigUInt64LE(b.readBigUInt64LE(o - ENTRY_BYTES), o), 1);
    expect((await openError(overlap.root)).message).toMatch(new RegExp(`^${overlap.shard} entries 0 and 1 overlap \\(bytes \\d+\\.\\.\\d+ and \\d+\\.\\.\\d+\\)$`));
  });

  it('refuses shards whose images disagree with the manifest', async () => {
    const root = join(dir, `copy-${copies++}`);
    cpSync(raw, root, { recursive: true });
    const mf = JSON.parse(readFileSync(join(root, 'manifest.json'), 'utf8'));
    writeFileSync(join(root, 'manifest.json'), JSON.stringify({ ...mf, size: 64 }));
    expect((await openError(root)).message).toBe(`${join(root, 'train-00000.shard')} holds 32x32x3 raw images, but manifest.json says 64x64x3 raw`);
  });

  it('names a shard the manifest lists but the folder lacks', async () => {
    const root = join(dir, `copy-${copies++}`);
    cpSync(raw, root, { recursive: true });
    unlinkSync(join(root, 'train-00002.shard'));
    const e = await openError(root);
    expect(e.message).toBe(`cannot read shard ${join(root, 'train-00002.shard')}: the file does not exist`);
  });
});

async function drain(ds: Dataset, opts: Partial<LoaderOptions> = {}): Promise<unknown> {
  const l = createLoader(ds, { batchSize: 4, crop: 24, workers: 1, ...opts });
  try {
    for await (const b of l.epoch(0)) void b;
    return null;
  } catch (e) {
    return e;
  } finally {
    await l.close();
  }
}

describe('errors on worker threads', () => {
  it('a shard truncated after it was opened: one ImageNetDataError naming the shard, raw and JPEG, 1 and 2 workers', async () => {
    for (const [src, workers] of [[raw, 1], [raw, 2], [jpeg, 1]] as const) {
      const root = join(dir, `copy-${copies++}`);
      cpSync(src, root, { recursive: true });
      const ds = await openShards(root);
      const shard = join(root, 'train-00001.shard');
      truncateSync(shard, statSync(shard).size >> 2);
      const e = (await drain(ds, { workers, shuffle: false })) as Error;
      expect(e).toBeInstanceOf(ImageNetDataError);
      expect(e.message).toMatch(new RegExp(`^cannot read shard ${shard}: the file ends at byte \\d+, inside a record of \\d+ bytes at byte \\d+ \\(it was truncated after it was opened\\)$`));
      expect((e as ImageNetDataError).path).toBe(shard);
      oneSentence(e);
    }
  });

  it('a shard deleted after it was opened', async () => {
    const root = join(dir, `copy-${copies++}`);
    cpSync(raw, root, { recursive: true });
    const ds = await openShards(root);
    unlinkSync(join(root, 'train-00002.shard'));
    const e = (await drain(ds, { workers: 1, shuffle: false })) as Error;
    expect(e).toBeInstanceOf(ImageNetDataError);
    expect(e.message).toBe(`cannot read shard ${join(root, 'train-00002.shard')}: the file does not exist`);
  });

  it('a deleted image in a folder data set is a listed failure naming the file, not a thread error', async () => {
    const copy = join(dir, `copy-${copies++}`);
    cpSync(join(dir, 'in'), copy, { recursive: true });
    const idx = await indexImageNet(copy);
    const ds = await openImageFolder({ samples: idx.splits.train!, classes: idx.classes }, { size: SIZE });
    const gone = idx.splits.train![3]!.path;
    unlinkSync(gone);
    const l = createLoader(ds, { batchSize: 12, crop: 24, workers: 1, shuffle: false });
    const failures = [];
    for await (const b of l.epoch(0)) failures.push(...b.failures);
    await l.close();
    expect(failures).toEqual([{ sample: 3, reason: `${gone} could not be decoded: it could not be read (the file does not exist)` }]);
  });

  it('a shard prepare cannot write: one ImageNetDataError naming the shard', async () => {
    const out = join(dir, 'blocked');
    mkdirSync(join(out, 'train-00001.shard'), { recursive: true });
    writeFileSync(join(out, 'train-00001.shard', 'x'), 'in the way');
    const e = (await prepareImageNet({ source: join(dir, 'in'), out, size: SIZE, shardSize: 5, workers: 1 }).then(() => null, (x: unknown) => x)) as Error;
    expect(e).toBeInstanceOf(ImageNetDataError);
    expect(e.message).toMatch(new RegExp(`^cannot write shard ${join(out, 'train-00001.shard')}: it is a folder`));
    oneSentence(e);
  });
});
