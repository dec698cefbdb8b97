/**
 * Parts of a data set: a subset by positions, and a seeded uniform sample. Used for a validation
 * slice held back from the training set (when a data set has no validation split, the §5 schedule
 * has nothing to watch), and for the bank of training images Figure 4's neighbours come from (§6.1).
 */
import { checkNonNegativeInteger } from './errors.js';
import type { Dataset } from './loader.js';
import { permutation, Rng } from './rng.js';
import type { DatasetSource } from './worker-tasks.js';

/** The samples of `dataset` at `positions` (in that order), as a data set of their own. Statistics are kept. */
export function subsetDataset(dataset: Dataset, positions: ArrayLike<number>): Dataset {
  const n = dataset.length;
  const idx = Int32Array.from(positions as ArrayLike<number>);
  for (const [i, p] of idx.entries()) {
    if (!Number.isInteger(positions[i]) || p < 0 || p >= n) {
      throw new RangeError(`Expected positions in [0, ${n}) but received ${String(positions[i])} at index ${i}`);
    }
  }
  const s = dataset.source;
  let source: DatasetSource;
  if (s.kind === 'shards') {
    source = {
      ...s,
      file: Int32Array.from(idx, (p) => s.file[p]!),
      offset: Float64Array.from(idx, (p) => s.offset[p]!),
      length: Int32Array.from(idx, (p) => s.length[p]!),
    };
  } else if (s.kind === 'pixels') {
    source = { ...s, index: Int32Array.from(idx, (p) => s.index[p]!) };
  } else {
    source = { ...s, paths: Array.from(idx, (p) => s.paths[p]!) };
  }
  return { ...dataset, length: idx.length, labels: Int32Array.from(idx, (p) => dataset.labels[p]!), source };
}

/**
 * `count` positions drawn uniformly without replacement from [0, n) with `seed` (all of them when
 * n <= count), in increasing order: the same for the same (n, count, seed).
 */
export function samplePositions(n: number, count: number, seed = 0): Int32Array {
  checkNonNegativeInteger(n, 'n');
  checkNonNegativeInteger(count, 'count');
  checkNonNegativeInteger(seed, 'seed');
  if (count >= n) return Int32Array.from({ length: n }, (_, i) => i);
  return permutation(n, Rng.forKey(seed, n, 7)).subarray(0, count).sort();
}

/**
 * Splits a data set in two with a seeded draw: `fraction` of the samples (at least one) go to the
 * second part, the rest to the first, each part in the data set's order.
 */
export function splitDataset(dataset: Dataset, fraction: number, seed = 0): [Dataset, Dataset] {
  if (typeof fraction !== 'number' || !(fraction > 0 && fraction < 1)) {
    throw new RangeError(`Expected a fraction between 0 and 1 (exclusive) but received ${String(fraction)}`);
  }
  const n = dataset.length;
  if (n < 2) throw new RangeError(`Expected a data set of at least 2 samples to split but it has ${n}`);
  const held = samplePositions(n, Math.min(n - 1, Math.max(1, Math.round(fraction * n))), seed);
  const inHeld = new Uint8Array(n);
  for (const p of held) inHeld[p] = 1;
  const rest: number[] = [];
  for (let i = 0; i < n; i++) if (!inHeld[i]) rest.push(i);
  return [subsetDataset(dataset, rest), subsetDataset(dataset, held)];
}
