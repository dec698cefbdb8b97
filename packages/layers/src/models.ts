/**
 * The models as data (cuda-convnet's "layer definition file"): each net is one description listing
 * its layers in order, with, for the two-tower net (§3.2), which layers read only their own tower's
 * maps and which gather the inputs of both towers. Where it runs (one device, or one tower per
 * device) is decided when it is built (network.ts), not here.
 */

/** How a layer with weights reads its input in a two-tower net (§3.2). */
export type TowerInputs =
  /** Only this tower's maps ("same GPU only"): groups = 2 when the net lives on one device. */
  | 'own'
  /** The maps of both towers, gathered across devices (conv3, fc6, fc7, fc8 in the paper). */
  | 'all';

interface WeightSpec {
  name: string;
  /** Output channels (conv) or neurons (linear) of the whole layer; each tower computes its share. */
  out: number;
  inputs: TowerInputs;
  /** §5: weights ~ N(0, weightStd^2). */
  weightStd: number;
  /** §5: the bias's initial value. */
  bias: number;
  /**
   * Per-layer learning-rate and weight-decay multipliers [weight, bias] (cuda-convnet's per-layer
   * epsW / epsB, Caffe's lr_mult / decay_mult); an optimizer applies them (default [1, 1]).
   */
  lrMult?: [number, number];
  decayMult?: [number, number];
}

export type LayerSpec =
  | (WeightSpec & { kind: 'conv'; kernel: number; stride: number; padding: number })
  | (WeightSpec & { kind: 'linear' })
  | { kind: 'relu'; name: string }
  /** tanh, the saturating nonlinearity ReLU is compared with (§3.1, Figure 1). */
  | { kind: 'tanh'; name: string }
  | {
    kind: 'lrn'; name: string; size: number; alpha: number; beta: number; k: number; convention: 'paper' | 'pytorch';
    /**
     * In a two-tower net: 'own' (default) normalises over the tower's own maps, as each of the
     * paper's GPUs did; 'all' over all the layer's maps, as Caffe's and PyTorch's one-device AlexNets
     * do (one device only: it would need an exchange the paper does not have).
     */
    inputs?: TowerInputs;
  }
  | { kind: 'maxpool'; name: string; size: number; stride: number }
  | { kind: 'dropout'; name: string; p: number }
  | { kind: 'flatten'; name: string }
  | { kind: 'avgpool'; name: string; size: number };

export interface ModelDescription {
  /** 'paper', 'paper-half', 'torchvision', or a name of your own. */
  name: string;
  /**
   * 2 for the paper's net: every layer's kernels (neurons) are divided between two towers, and a
   * layer's `inputs` says whether it sees one tower's maps or both. 1 for single-tower nets.
   */
  towers: 1 | 2;
  /** The image: channels and height = width. The model's input is given whole to every tower. */
  input: { channels: number; size: number };
  layers: LayerSpec[];
}

export interface ModelOptions {
  /** Number of classes (the last layer's outputs). Default 1000. */
  classes?: number;
  /**
   * 227 (conv1 padding 0, Caffe's crop; the default) or 224 (conv1 padding 2, torchvision's). Any
   * other side >= 67 (conv1 unpadded) runs the same layers on smaller images, for demos and tests:
   * fc6 then sees fewer than 6x6 maps.
   */
  inputSize?: number;
  /** §5 weight standard deviation (0.01). */
  weightStd?: number;
  /**
   * The bias of conv2, conv4, conv5, fc6, fc7 (§5: 1). Caffe's bvlc_alexnet uses 0.1, which avoids
   * the collapse that 1 can cause on small data ("initialization to 1 gave flat loss").
   */
  positiveBias?: number;
  /** LRN convention (the model's alpha is the paper's 1e-4 either way; 'pytorch' means alpha / n). */
  lrnConvention?: 'paper' | 'pytorch';
  /**
   * Normalise over all 96 / 256 maps rather than each tower's half (Caffe's bvlc_alexnet and the
   * PyTorch reference do this on one device). Default false: the paper's towers.
   */
  lrnAcrossTowers?: boolean;
  /**
   * The ablations of the paper's claims, each a change of the description (default: the paper's net).
   * lrn false: no response normalization (§3.3); pool: max-pool window and stride (§3.4: 3/2
   * overlapping, 2/2 the traditional one); dropout false: no dropout (§4.2).
   */
  lrn?: boolean;
  pool?: { size: number; stride: number };
  dropout?: boolean;
  /**
   * The nonlinearity (§3.1, Figure 1): 'relu' (default, the paper's) or 'tanh', which replaces every
   * ReLU layer with a tanh layer of the same name (the names, weights and shapes stay the same).
   */
  activation?: 'relu' | 'tanh';
}

/**
 * The paper's learning settings (§5), kept beside its net as cuda-convnet keeps its layer parameters
 * beside the layer definitions: batch 128, SGD with momentum 0.9 and weight decay 0.0005, lr 0.01
 * divided by 10 when the validation error stops improving (three times in all), about 90 epochs,
 * weights ~ N(0, 0.01²), biases 1 in conv2, conv4, conv5 and the hidden fully-connected layers.
 * The trainer's and the CLI's defaults come from here; 227 / 256 are the crop and image sides of §2
 * (227 being the side at which the paper's layer sizes work out, as in Caffe).
 */
export const PAPER_LEARNING = {
  batchSize: 128,
  lr: 0.01,
  momentum: 0.9,
  weightDecay: 0.0005,
  epochs: 90,
  weightStd: 0.01,
  positiveBias: 1,
  schedule: { factor: 0.1, patience: 1, maxReductions: 3 },
  crop: 227,
  imageSize: 256,
} as const;

/** Smallest input for which pool5 still has a 1x1 map (conv1 s4 -> pool 3/2 -> pool 3/2 -> pool 3/2). */
export const MIN_INPUT_SIZE = 67;

function conv1Padding(inputSize: number): number {
  if (!Number.isSafeInteger(inputSize) || inputSize < MIN_INPUT_SIZE) {
    throw new RangeError(`Expected inputSize 224 or 227 (or another integer >= ${MIN_INPUT_SIZE}) but received ${String(inputSize)}`);
  }
  return inputSize === 224 ? 2 : 0;
}

function checkClasses(classes: unknown): number {
  if (typeof classes !== 'number' || !Number.isSafeInteger(classes) || classes < 1) {
    throw new RangeError(`Expected a positive integer for classes but received ${String(classes)}`);
  }
  return classes;
}

/**
 * The paper's net (§3, Figure 2) in its two-tower form: 96-256-384-384-256 kernels, 4096-4096-classes
 * neurons, half of each layer per tower; conv2, conv4, conv5 read their own tower only; conv3, fc6,
 * fc7, fc8 read both (the four cross-GPU exchanges). fc8's neurons are split like every other
 * layer's (classes / 2 per tower) and the two halves of the logits are gathered on the first device.
 */
export function paperDescription(o: ModelOptions & { convKernels?: [number, number, number, number, number]; name?: string; towers?: 1 | 2 } = {}): ModelDescription {
  const classes = checkClasses(o.classes ?? 1000);
  const inputSize = o.inputSize ?? PAPER_LEARNING.crop;
  const std = o.weightStd ?? PAPER_LEARNING.weightStd, one = o.positiveBias ?? PAPER_LEARNING.positiveBias;
  const lrn = (name: string): LayerSpec => ({
    kind: 'lrn', name, size: 5, alpha: 1e-4, beta: 0.75, k: 2, convention: o.lrnConvention ?? 'paper', inputs: o.lrnAcrossTowers ? 'all' : 'own',
  });
  const alphaFix = (l: LayerSpec): LayerSpec => (l.kind === 'lrn' && l.convention === 'pytorch' ? { ...l, alpha: 1e-4 * 5 } : l);
  const [k1, k2, k3, k4, k5] = o.convKernels ?? [96, 256, 384, 384, 256];
  const towers = o.towers ?? 2;
  const own: TowerInputs = towers === 2 ? 'own' : 'all';
  return {
    name: o.name ?? 'paper',
    towers,
    input: { channels: 3, size: inputSize },
    layers: [
      { kind: 'conv', name: 'conv1', out: k1, kernel: 11, stride: 4, padding: conv1Padding(inputSize), inputs: 'all', weightStd: std, bias: 0 },
      { kind: 'relu', name: 'relu1' },
      lrn('norm1'),
      { kind: 'maxpool', name: 'pool1', size: 3, stride: 2 },
      { kind: 'conv', name: 'conv2', out: k2, kernel: 5, stride: 1, padding: 2, inputs: own, weightStd: std, bias: one },
      { kind: 'relu', name: 'relu2' },
      lrn('norm2'),
      { kind: 'maxpool', name: 'pool2', size: 3, stride: 2 },
      { kind: 'conv', name: 'conv3', out: k3, kernel: 3, stride: 1, padding: 1, inputs: 'all', weightStd: std, bias: 0 },
      { kind: 'relu', name: 'relu3' },
      { kind: 'conv', name: 'conv4', out: k4, kernel: 3, stride: 1, padding: 1, inputs: own, weightStd: std, bias: one },
      { kind: 'relu', name: 'relu4' },
      { kind: 'conv', name: 'conv5', out: k5, kernel: 3, stride: 1, padding: 1, inputs: own, weightStd: std, bias: one },
      { kind: 'relu', name: 'relu5' },
      { kind: 'maxpool', name: 'pool5', size: 3, stride: 2 },
      { kind: 'flatten', name: 'flatten' },
      { kind: 'linear', name: 'fc6', out: 4096, inputs: 'all', weightStd: std, bias: one },
      { kind: 'relu', name: 'relu6' },
      { kind: 'dropout', name: 'drop6', p: 0.5 },
      { kind: 'linear', name: 'fc7', out: 4096, inputs: 'all', weightStd: std, bias: one },
      { kind: 'relu', name: 'relu7' },
      { kind: 'dropout', name: 'drop7', p: 0.5 },
      { kind: 'linear', name: 'fc8', out: classes, inputs: 'all', weightStd: std, bias: 0 },
    ].map((l) => alphaFix(l as LayerSpec)),
  };
}

/**
 * The single-GPU net the paper compares against (§3.2): "half as many kernels in each convolutional
 * layer", one tower. Following the paper's footnote, the last convolutional layer and the
 * fully-connected layers are NOT halved ("to make the two nets have approximately the same number
 * of parameters"): conv 48-128-192-192-256, fc 4096-4096-classes.
 */
export function paperHalfDescription(o: ModelOptions = {}): ModelDescription {
  return paperDescription({ ...o, name: 'paper-half', towers: 1, convKernels: [48, 128, 192, 192, 256] });
}

/**
 * torchvision.models.alexnet (single tower: conv 64-192-384-256-256, no LRN, adaptive 6x6 average
 * pool, dropout before fc6 and fc7), with torchvision's layer names so that its published weights
 * load unchanged (features.0.weight ... classifier.6.bias). conv1 has padding 2 as in torchvision;
 * the default input is 224.
 */
export function torchvisionDescription(o: Omit<ModelOptions, 'inputSize' | 'lrnConvention'> & { inputSize?: number } = {}): ModelDescription {
  const classes = checkClasses(o.classes ?? 1000);
  const std = o.weightStd ?? PAPER_LEARNING.weightStd, b = o.positiveBias ?? 0;
  const conv = (i: number, out: number, kernel: number, stride: number, padding: number, bias = 0): LayerSpec =>
    ({ kind: 'conv', name: `features.${i}`, out, kernel, stride, padding, inputs: 'all', weightStd: std, bias });
  return {
    name: 'torchvision',
    towers: 1,
    input: { channels: 3, size: o.inputSize ?? 224 },
    layers: [
      conv(0, 64, 11, 4, 2), { kind: 'relu', name: 'features.1' }, { kind: 'maxpool', name: 'features.2', size: 3, stride: 2 },
      conv(3, 192, 5, 1, 2, b), { kind: 'relu', name: 'features.4' }, { kind: 'maxpool', name: 'features.5', size: 3, stride: 2 },
      conv(6, 384, 3, 1, 1), { kind: 'relu', name: 'features.7' },
      conv(8, 256, 3, 1, 1, b), { kind: 'relu', name: 'features.9' },
      conv(10, 256, 3, 1, 1, b), { kind: 'relu', name: 'features.11' }, { kind: 'maxpool', name: 'features.12', size: 3, stride: 2 },
      { kind: 'avgpool', name: 'avgpool', size: 6 },
      { kind: 'flatten', name: 'flatten' },
      { kind: 'dropout', name: 'classifier.0', p: 0.5 },
      { kind: 'linear', name: 'classifier.1', out: 4096, inputs: 'all', weightStd: std, bias: b },
      { kind: 'relu', name: 'classifier.2' },
      { kind: 'dropout', name: 'classifier.3', p: 0.5 },
      { kind: 'linear', name: 'classifier.4', out: 4096, inputs: 'all', weightStd: std, bias: b },
      { kind: 'relu', name: 'classifier.5' },
      { kind: 'linear', name: 'classifier.6', out: classes, inputs: 'all', weightStd: std, bias: 0 },
    ],
  };
}

/**
 * The four-layer convolutional net of §3.1's Figure 1 (ReLU against tanh on CIFAR-10: 25% training
 * error six times faster with ReLUs). The paper does not describe that net; this is the usual
 * stand-in, the layers of cuda-convnet's CIFAR-10 example: three 5x5 convolutions of 32, 32 and 64
 * kernels (padding 2), each followed by the activation and a 3/2 pool, then one fully-connected layer
 * to the classes. Here every pool is a max-pool and there is no response normalisation (the example
 * has average pools and normalisation layers in some of its variants). On 3x32x32 images the maps are
 * 32 -> 15 -> 15 -> 7 -> 7 -> 3, so fc4 reads 64 x 3 x 3 = 576 features (cuda-convnet's pools also
 * cover the last partial window, giving 16, 8 and 4; these round down, as max-pool does everywhere
 * here). One tower, named 'cifar-4layer'; weights ~ N(0, weightStd²), biases 0.
 */
export function cifarDescription(o: { activation?: 'relu' | 'tanh'; classes?: number; weightStd?: number } = {}): ModelDescription {
  const classes = checkClasses(o.classes ?? 10);
  const act = checkActivation(o.activation ?? 'relu');
  const std = o.weightStd ?? 0.01;
  if (typeof std !== 'number' || !Number.isFinite(std) || std < 0) throw new RangeError(`Expected weightStd to be a finite number >= 0 but received ${String(std)}`);
  const conv = (i: number, out: number): LayerSpec =>
    ({ kind: 'conv', name: `conv${i}`, out, kernel: 5, stride: 1, padding: 2, inputs: 'all', weightStd: std, bias: 0 });
  const block = (i: number, out: number): LayerSpec[] =>
    [conv(i, out), { kind: act, name: `${act}${i}` }, { kind: 'maxpool', name: `pool${i}`, size: 3, stride: 2 }];
  return {
    name: 'cifar-4layer',
    towers: 1,
    input: { channels: 3, size: 32 },
    layers: [
      ...block(1, 32), ...block(2, 32), ...block(3, 64),
      { kind: 'flatten', name: 'flatten' },
      { kind: 'linear', name: 'fc4', out: classes, inputs: 'all', weightStd: std, bias: 0 },
    ],
  };
}

export type ModelName = 'paper' | 'paper-half' | 'torchvision';

function checkActivation(a: unknown): 'relu' | 'tanh' {
  if (a !== 'relu' && a !== 'tanh') throw new RangeError(`Expected activation 'relu' or 'tanh' but received ${typeof a === 'string' ? `'${a}'` : String(a)}`);
  return a;
}

/**
 * The ablation switches of ModelOptions applied to a description: layers dropped or changed, nothing
 * else. activation 'tanh' swaps every relu layer for a tanh layer of the same name (§3.1, Figure 1).
 */
export function applyAblations(desc: ModelDescription, o: Pick<ModelOptions, 'lrn' | 'pool' | 'dropout' | 'activation'>): ModelDescription {
  const pool = o.pool;
  if (pool !== undefined && (!Number.isSafeInteger(pool.size) || !Number.isSafeInteger(pool.stride) || pool.size < 1 || pool.stride < 1)) {
    throw new RangeError(`Expected pool { size, stride } of positive integers but received ${JSON.stringify(pool)}`);
  }
  const tanh = o.activation !== undefined && checkActivation(o.activation) === 'tanh';
  const layers = desc.layers
    .filter((l) => !(o.lrn === false && l.kind === 'lrn') && !(o.dropout === false && l.kind === 'dropout'))
    .map((l): LayerSpec => (pool && l.kind === 'maxpool' ? { ...l, size: pool.size, stride: pool.stride } : l))
    .map((l): LayerSpec => (tanh && l.kind === 'relu' ? { kind: 'tanh', name: l.name } : l));
  return { ...desc, layers };
}

export function describeModel(name: ModelName, o: ModelOptions = {}): ModelDescription {
  switch (name) {
    case 'paper': return applyAblations(paperDescription(o), o);
    case 'paper-half': return applyAblations(paperHalfDescription(o), o);
    case 'torchvision': return applyAblations(torchvisionDescription(o), o);
    default: throw new TypeError(`Expected a model name 'paper', 'paper-half' or 'torchvision' but received ${String(name)}`);
  }
}

/** One layer's place in the whole (one-device) net: its output shape and parameters. */
export interface LayerShape {
  spec: LayerSpec;
  /** [channels, h, w] or [features] of the whole layer's input and output (per image). */
  inShape: number[];
  outShape: number[];
  /** Full parameter shapes (PyTorch layouts), by parameter name. */
  params: { name: string; shape: number[] }[];
  /** Multiply-accumulates per image in the forward pass. */
  macs: number;
}

/** Shapes, parameters and MACs of every layer, computed from the description alone (nothing runs). */
export function inferShapes(desc: ModelDescription): LayerShape[] {
  let shape: number[] = [desc.input.channels, desc.input.size, desc.input.size];
  let first = true;
  const rows: LayerShape[] = [];
  for (const spec of desc.layers) {
    const inShape = shape;
    let params: { name: string; shape: number[] }[] = [];
    let macs = 0;
    switch (spec.kind) {
      case 'conv': {
        if (shape.length !== 3) throw new TypeError(`${desc.name}: conv layer ${spec.name} needs [c, h, w] input but gets [${shape.join(', ')}]`);
        const [c, h, w] = shape as [number, number, number];
        const groups = spec.inputs === 'own' && desc.towers === 2 && !first ? 2 : 1;
        if (spec.inputs === 'own' && first) throw new TypeError(`${desc.name}: the first layer (${spec.name}) reads the whole image; its inputs must be 'all'`);
        const oh = Math.floor((h + 2 * spec.padding - spec.kernel) / spec.stride) + 1, ow = Math.floor((w + 2 * spec.padding - spec.kernel) / spec.stride) + 1;
        if (oh < 1 || ow < 1) throw new RangeError(`${desc.name}: ${spec.name}'s ${spec.kernel}x${spec.kernel} kernel does not fit its ${h}x${w} input`);
        params = [{ name: `${spec.name}.weight`, shape: [spec.out, c / groups, spec.kernel, spec.kernel] }, { name: `${spec.name}.bias`, shape: [spec.out] }];
        macs = spec.out * oh * ow * (c / groups) * spec.kernel * spec.kernel;
        shape = [spec.out, oh, ow];
        first = false;
        break;
      }
      case 'linear': {
        if (shape.length !== 1) throw new TypeError(`${desc.name}: linear layer ${spec.name} needs flat input (add a flatten layer)`);
        params = [{ name: `${spec.name}.weight`, shape: [spec.out, shape[0]!] }, { name: `${spec.name}.bias`, shape: [spec.out] }];
        macs = spec.out * shape[0]!;
        shape = [spec.out];
        first = false;
        break;
      }
      case 'maxpool': {
        const [c, h, w] = shape as [number, number, number];
        shape = [c, Math.floor((h - spec.size) / spec.stride) + 1, Math.floor((w - spec.size) / spec.stride) + 1];
        if (shape[1]! < 1 || shape[2]! < 1) throw new RangeError(`${desc.name}: ${spec.name}'s window does not fit its ${h}x${w} input`);
        break;
      }
      case 'avgpool': shape = [shape[0]!, spec.size, spec.size]; break;
      case 'flatten': shape = [shape.reduce((a, b) => a * b, 1)]; break;
      default: break;
    }
    rows.push({ spec, inShape, outShape: shape, params, macs });
  }
  return rows;
}

/** Learned parameters, counting biases (paper with 1000 classes: 60 965 224). */
export function parameterCount(desc: ModelDescription): number {
  return inferShapes(desc).reduce((s, r) => s + r.params.reduce((t, p) => t + p.shape.reduce((a, b) => a * b, 1), 0), 0);
}

/**
 * FLOPs per image (2 per multiply-accumulate) of conv and linear layers: forward, and a training step
 * (forward + gradient wrt inputs + gradient wrt weights, no input gradient for the first layer).
 * Paper net: 1.449 GFLOP forward, 4.136 GFLOP training.
 */
export function flopsPerImage(desc: ModelDescription): { forward: number; training: number } {
  const rows = inferShapes(desc).filter((r) => r.macs > 0);
  const fwd = rows.reduce((s, r) => s + r.macs, 0);
  return { forward: 2 * fwd, training: 2 * (3 * fwd - (rows[0]?.macs ?? 0)) };
}
