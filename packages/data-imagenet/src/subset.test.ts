import { describe, expect, it } from 'vitest';
import type { Dataset } from './loader.js';
import { samplePositions, splitDataset, subsetDataset } from './subset.js';

/** A folder data set of n samples, sorted by class as ImageFolder lists them (class = floor(i / per)). */
function folder(n: number, per: number): Dataset {
  return {
    length: n, labels: Int32Array.from({ length: n }, (_, i) => Math.floor(i / per)), classes: [], size: 8, statistics: null,
    source: { kind: 'folder', paths: Array.from({ length: n }, (_, i) => `/d/${i}.JPEG`), size: 8, kernel: 'linear' },
  };
}

describe('subsets of a data set', () => {
  it('subsetDataset keeps labels and sources aligned, for folders and shards', () => {
    const d = subsetDataset(folder(10, 5), [7, 2, 9]);
    expect(d.length).toBe(3);
    expect([...d.labels]).toEqual([1, 0, 1]);
    expect(d.source.kind === 'folder' && d.source.paths).toEqual(['/d/7.JPEG', '/d/2.JPEG', '/d/9.JPEG']);
    const shards: Dataset = {
      ...folder(4, 2),
      source: { kind: 'shards', files: ['a', 'b'], file: Int32Array.of(0, 0, 1, 1), offset: Float64Array.of(0, 10, 0, 10), length: Int32Array.of(10, 10, 10, 10), encoding: 'raw', size: 8 },
    };
    const s = subsetDataset(shards, [3, 0]);
    expect(s.source.kind === 'shards' && [[...s.source.file], [...s.source.offset]]).toEqual([[1, 0], [10, 0]]);
    expect(() => subsetDataset(shards, [4])).toThrow(/positions in \[0, 4\) but received 4 at index 0/);
    expect(() => subsetDataset(shards, [0.5])).toThrow(/received 0\.5/);
  });

  it('samplePositions is seeded, without repeats, and spreads over the whole set', () => {
    const a = samplePositions(1000, 100, 3);
    expect([...a]).toEqual([...samplePositions(1000, 100, 3)]);
    expect([...a]).not.toEqual([...samplePositions(1000, 100, 4)]);
    expect(new Set(a).size).toBe(100);
    // Sorted by class in blocks of 100: a uniform draw of 100 hits all 10 blocks (a prefix would hit one).
    expect(new Set(Array.from(a, (p) => Math.floor(p / 100))).size).toBe(10);
    expect([...samplePositions(5, 9)]).toEqual([0, 1, 2, 3, 4]);
  });

  it('splitDataset holds back the fraction, disjoint from the rest', () => {
    const [train, val] = splitDataset(folder(200, 20), 0.1, 1);
    expect([train.length, val.length]).toEqual([180, 20]);
    const paths = (d: Dataset) => (d.source.kind === 'folder' ? d.source.paths : []);
    expect(new Set([...paths(train), ...paths(val)]).size).toBe(200);
    expect(new Set(val.labels).size).toBeGreaterThan(5);
    expect(() => splitDataset(folder(10, 5), 1)).toThrow(/fraction between 0 and 1/);
  });
});
