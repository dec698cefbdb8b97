/**
 * @alexnet/data-imagenet: ImageNet for AlexNet (Krizhevsky et al. 2012, §2 and §4.1) with sharp and
 * the Node standard library only. Index any ImageNet / ImageFolder layout, prepare 256x256 shards
 * with training-set statistics, and load augmented float32 NCHW batches on worker threads.
 */
export { ImageNetDataError, UndecodableImageError } from './errors.js';
export {
  indexImageNet, indexImageFolder, readSynsetMapping, requireSplit, type Sample, type ClassInfo, type ImageFolderIndex, type ImageNetIndex, type IndexImageNetOptions, type SplitName,
} from './layout.js';
export { readDevkitMeta } from './matfile.js';
export { decodeResizeCrop, type DecodeOptions } from './decode.js';
export {
  shardFileName, readShardInfo, checkShardInfo, ShardReader, type ShardEncoding, type ShardInfo, type ShardExpectations,
} from './shard.js';
export { StatisticsAccumulator, symmetricEigen3, saveStatistics, loadStatistics, type Statistics } from './stats.js';
export {
  drawAugmentation, pcaLighting, tenCropOffsets, cropToCHW, cropsPerImage, transformImage, type CropFunction, type TransformSpec, type MeanSpec, type LightingSpec, type Augmentation,
} from './transform.js';
export { Rng, permutation } from './rng.js';
export {
  prepareImageNet, estimatePrepareBytes, formatBytes, JPEG_RECORD_BYTES, MANIFEST, type PrepareOptions, type PrepareReport, type PrepareEstimateOptions, type Manifest,
} from './prepare.js';
export {
  Progress, formatProgressLine, formatProgress, stderrProgress, type ProgressOptions, type ProgressFields, type ProgressStream, type ProgressLineState, type ProgressState,
} from './progress.js';
export {
  openShards, openImageFolder, withStatistics, createLoader, Loader, type Dataset, type LoaderOptions, type Batch,
} from './loader.js';
export {
  computeStatistics, DEFAULT_STATISTICS_SAMPLES, type ComputeStatisticsOptions, type ComputedStatistics,
} from './compute-stats.js';
export type { DatasetSource } from './worker-tasks.js';
export { createSampleImageNet, type SampleImageNetOptions, type SampleImageNet } from './sample.js';
export { subsetDataset, samplePositions, splitDataset } from './subset.js';
export { openCifar10, createSampleCifar10, cifar10Files, CIFAR10_CLASSES, type SampleCifar10Options } from './cifar.js';
