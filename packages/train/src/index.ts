/**
 * @alexnet/train: the paper's training end to end (§5): the trainer, the two-device model-parallel
 * pipeline (through @alexnet/layers' placement), evaluation (centre crop or 10-crop), checkpoints that
 * resume exactly, pictures of the result, and the `alexnet` CLI.
 */
export { train, evaluate, TrainingError, CHECKPOINT_FILE, type TrainOptions, type TrainResult } from './trainer.js';
export { saveCheckpoint, loadCheckpoint, checkCompatible, CheckpointError, CHECKPOINT_FORMAT, type CheckpointMeta, type CheckpointContents } from './checkpoint.js';
export { openData, batchToTensors, chooseMean, IMAGENET_CHANNEL_MEAN, DataError, type TrainingData } from './data.js';
export { loadTrained, preprocess, predict, type TrainedModel, type Prediction } from './inference.js';
export { runTrain, evaluateCheckpoint, visualizeCheckpoint, forwardUntil } from './commands.js';
export { drawKernels, drawCurves, curvesSvg, drawNeighbours, nearest, type EpochRecord, type NeighbourRow } from './visualize.js';
export { ProgressBar, formatStep, type StepStats } from './progress.js';
