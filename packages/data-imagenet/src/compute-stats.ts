/**
 * Statistics from any data set, without `prepare`: training straight from a raw ImageNet folder
 * still gets the mean image that §2 subtracts and the RGB eigen-decomposition that PCA lighting
 * (§4.1) needs. A seeded uniform sample of the images is decoded exactly as the loader decodes them
 * (same size, same resampling, from a folder or from shards) and accumulated exactly as prepare
 * accumulates them, so over all images the result is prepare's.
 */
import { checkNonNegativeInteger, checkPositiveInteger, ImageNetDataError } from './errors.js';
import type { Dataset } from './loader.js';
import { WorkerPool, defaultWorkers } from './pool.js';
import { progressOption, type ProgressState } from './progress.js';
import { StatisticsAccumulator, type Statistics } from './stats.js';
import { samplePositions } from './subset.js';
import type { StatsResult, StatsTask } from './worker-tasks.js';

/** Images decoded by default: enough for the mean image and the 3x3 covariance to settle. */
export const DEFAULT_STATISTICS_SAMPLES = 5000;

export interface ComputeStatisticsOptions {
  /** Images to decode (default 5000); all of them when the data set has no more. */
  samples?: number;
  /** Seed of the sample (default 0). */
  seed?: number;
  /** Worker threads (default: all cores; 0 decodes on the calling thread). */
  workers?: number;
  /** true: a progress line on stderr; a function: called with the counts. */
  progress?: boolean | ((p: ProgressState) => void);
}

export interface ComputedStatistics extends Statistics {
  sample: NonNullable<Statistics['sample']>;
  /** The data-set positions that were drawn, increasing. */
  positions: Int32Array;
  /** Drawn images that could not be decoded: skipped, as prepare skips them. */
  failures: { sample: number; reason: string }[];
}

/** Images per task: small enough to spread over the workers, large enough to keep them busy. */
const CHUNK = 32;

/**
 * Decodes a seeded uniform sample of `dataset`'s images at its size and returns their statistics:
 * the mean image, per-channel mean, RGB covariance and its eigen-decomposition, on the 0..255
 * scale (see Statistics). Attach them with `withStatistics(dataset, s)`; keep them with
 * `saveStatistics(dir, s)`.
 */
export async function computeStatistics(dataset: Dataset, opts: ComputeStatisticsOptions = {}): Promise<ComputedStatistics> {
  const count = checkPositiveInteger(opts.samples ?? DEFAULT_STATISTICS_SAMPLES, 'samples');
  const seed = checkNonNegativeInteger(opts.seed ?? 0, 'seed');
  const n = dataset.length;
  if (n === 0) throw new ImageNetDataError('the data set holds no images to compute statistics over');
  // Uniform without replacement, increasing (file order), all of them when n <= count.
  const positions = samplePositions(n, count, seed);
  const tasks: StatsTask[] = [];
  for (let i = 0; i < positions.length; i += CHUNK) {
    tasks.push({ type: 'stats', source: dataset.source, samples: positions.slice(i, i + CHUNK), inflight: 4 });
  }
  const workers = Math.min(checkNonNegativeInteger(opts.workers ?? defaultWorkers(), 'workers'), tasks.length);
  const meter = progressOption(opts.progress, 'statistics', positions.length);
  const pool = new WorkerPool(workers);
  let results: StatsResult[];
  try {
    results = await Promise.all(tasks.map((t) => pool.run<StatsResult>(t, [], (k) => meter.add(k))));
  } finally {
    meter.finish();
    await pool.close();
  }
  // Integer sums: the same totals in any order, so the result does not depend on the workers.
  const acc = new StatisticsAccumulator(dataset.size);
  const failures: ComputedStatistics['failures'] = [];
  for (const r of results) {
    acc.merge(r.stats);
    failures.push(...r.failures);
  }
  if (acc.images === 0) {
    throw new ImageNetDataError(`none of the ${positions.length} images drawn could be decoded, so there are no statistics: ${failures[0]!.reason}`);
  }
  const sample = { seed, drawn: positions.length, of: n };
  return { ...acc.finish(), sample, positions, failures };
}
