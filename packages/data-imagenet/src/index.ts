/**
 * @alexnet/data-imagenet: ImageNet for AlexNet (Krizhevsky et al. 2012, §2 and §4.1) with sharp and
 * the Node standard library only. Index any ImageNet / ImageFolder layout, prepare 256x256 shards
 * with training-set statistics, and load augmented float32 NCHW batches on worker threads.
 */
export { ImageNetDataError, UndecodableImageError } from './errors.js';
export {
  indexImageNet, indexImageFolder, readSynsetMapping, isImageFile, requireSplit,
  type Sample, type ClassInfo, type ImageFolderIndex, type ImageNetIndex, type IndexImageNetOptions, type SplitName,
} from './layout.js';
export { readDevkitMeta, parseMat, devkitMetaMat, type MatValue, type MatStruct } from './matfile.js';
export { decodeResizeCrop, type DecodeOptions } from './decode.js';
export {
  SHARD_MAGIC, SHARD_VERSION, HEADER_BYTES, ENTRY_BYTES, shardFileName, readShardInfo, checkShardInfo, decodeHeader, ShardReader, ShardWriter,
  type ShardEncoding, type ShardHeader, type ShardEntry, type ShardMeta, type ShardInfo, type ShardExpectations,
} from './shard.js';
export { StatisticsAccumulator, symmetricEigen3, saveStatistics, loadStatistics, STATS_JSON, MEAN_IMAGE_FILE, type Statistics } from './stats.js';
export {
  drawAugmentation, pcaLighting, tenCropOffsets, cropToCHW, cropsPerImage, transformImage,
  type CropFunction, type TransformSpec, type MeanSpec, type LightingSpec, type Augmentation,
} from './transform.js';
export { Rng, permutation } from './rng.js';
export {
  prepareImageNet, estimatePrepareBytes, formatBytes, JPEG_RECORD_BYTES, MANIFEST, REPORT,
  type PrepareOptions, type PrepareReport, type PrepareEstimateOptions, type Manifest,
} from './prepare.js';
export {
  Progress, formatProgressLine, formatProgress, stderrProgress, ProgressMeter,
  type ProgressOptions, type ProgressFields, type ProgressStream, type ProgressLineState, type ProgressState,
} from './progress.js';
export { openShards, openImageFolder, withStatistics, createLoader, Loader, type Dataset, type LoaderOptions, type Batch } from './loader.js';
export { computeStatistics, DEFAULT_STATISTICS_SAMPLES, type ComputeStatisticsOptions, type ComputedStatistics } from './compute-stats.js';
export type { DatasetSource } from './tasks.js';
export { createSampleImageNet, drawSampleImage, sampleWnid, sampleClassName, type SampleImageNetOptions, type SampleImageNet } from './sample.js';
export { defaultWorkers } from './pool.js';
export { simdAvailable, createKernelMemory, createSimdCrop, kernelModuleBytes, type KernelMemory } from './simd.js';
export { subsetDataset, samplePositions, splitDataset } from './subset.js';
