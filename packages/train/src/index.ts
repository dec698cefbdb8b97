/**
 * @alexnet/train: the paper's training end to end (§5): the trainer, the two-device model-parallel
 * pipeline (through @alexnet/layers' placement), evaluation (centre crop or 10-crop), checkpoints that
 * resume exactly, pictures of the result, and the `alexnet` CLI.
 */
export { train, TrainingError, CHECKPOINT_FILE, type TrainOptions, type TrainResult } from './trainer.js';
export { trainStep, type StepOutput } from './step.js';
export { collapseWarning } from './collapse.js';
export {
  evaluate, evaluateWithProgress, nonFiniteRows, NonFiniteOutputError, BadImagesError, type Evaluation, type EvaluateOptions,
} from './evaluate.js';
export { saveCheckpoint, loadCheckpoint, validateCheckpointMeta, newTrainerState, TRAINER_STATE_VERSION, type TrainerState, checkCompatible, CheckpointError, CHECKPOINT_FORMAT, type CheckpointMeta, type CheckpointContents } from './checkpoint.js';
export { openData, readyData, batchToTensors, chooseMean, IMAGENET_CHANNEL_MEAN, STATISTICS_CACHE, DataError, type TrainingData, type RunData } from './data.js';
export { MetricsLog, type MetricsPosition } from './metrics.js';
export { formatRecipe, type Recipe } from './recipe.js';
export { loadTrained, preprocess, predict, type TrainedModel, type Prediction } from './inference.js';
export { runTrain, evaluateCheckpoint, visualizeCheckpoint, chooseNeighbours, featureLayer, forwardUntil, type NeighbourChoice } from './commands.js';
export { drawKernels, drawCurves, curvesSvg, drawNeighbours, nearest, type EpochRecord, type NeighbourRow } from './visualize.js';
export { compareRuns, readRun, runLabels, type Comparison, type RunRecord } from './compare.js';
export { figure1, epochsToReach, FIGURE1_TARGET, type Figure1Options, type Figure1Result } from './figure1.js';
export { parallelStep, GradientReducer, joinLaunchedGroup, BUCKET_BYTES, COLLECTIVE_TIMEOUT_S, watchCollectives, runSettings, checkSameSettings, type Collective, type RunSettings } from './parallel.js';
