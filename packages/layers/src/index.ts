/**
 * @alexnet/layers: the layers of AlexNet with paired forward/backward passes, and the paper's models
 * as declarative descriptions placed on one device or two (§3.2).
 */
export { Parameter, gradPair, type ParameterPart } from './parameter.js';
export { initParameter, type ParameterInit, type ParameterPlacement } from './init.js';
export { seedFor } from './seed.js';
export {
  Layer, Conv2d, Linear, ReLU, Tanh, LocalResponseNorm, MaxPool2d, Dropout, Flatten, AdaptiveAvgPool2d, SoftmaxCrossEntropy,
  Sequential, writeHost,
  type ForwardContext, type Conv2dOptions, type LinearOptions, type LocalResponseNormOptions, type MaxPool2dOptions,
  type DropoutOptions,
} from './layers.js';
export {
  PAPER_LEARNING, applyAblations, paperDescription, paperHalfDescription, torchvisionDescription, cifarDescription, describeModel, inferShapes, parameterCount,
  flopsPerImage, type ModelDescription, type LayerSpec, type TowerInputs, type ModelOptions, type ModelName, type LayerShape,
} from './models.js';
export {
  Network, createModel, reluZeroFractions, placementRows, formatPlacement, type PlacementOptions, type CreateModelOptions, type PlacementRow,
} from './network.js';
