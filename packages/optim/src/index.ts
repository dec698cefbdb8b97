/**
 * @alexnet/optim: the paper's SGD (§5: momentum 0.9, weight decay 0.0005, its exact update rule, and
 * PyTorch's form as an option), per-parameter-group multipliers, learning-rate schedules including
 * the paper's divide-by-10-on-plateau, and their state for checkpoints.
 */
export { SGD, CAFFE_BIAS_RULE, type SGDOptions, type SGDState, type OptimParameter, type ParamGroupRule } from './sgd.js';
export { ConstantLR, StepLR, PlateauLR, type LrSchedule, type ScheduleState, type PlateauOptions } from './schedule.js';
export { velocityStateDict, loadVelocityStateDict } from './state.js';
