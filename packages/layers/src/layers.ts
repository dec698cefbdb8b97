/**
 * The layers of AlexNet as paired forward/backward modules (the style of cuda-convnet and llm.c).
 *
 * Contract of every layer:
 * - `forward(x, { training })` returns a new tensor the caller owns; `x` stays the caller's. In
 *   training mode the layer keeps (as reference-counted views) only what its backward needs.
 * - `backward(dy)` CONSUMES dy (disposes it, or reuses its memory for dx), adds the parameter
 *   gradients into `parameter.grad` (overwriting right after zeroGrad()), frees what forward kept,
 *   and returns dx (owned by the caller), or null when the layer was built with `inputGrad: false`.
 * - Shapes are written above each class: x -> y. Activations are NCHW, conv weights OIHW
 *   [out, in/groups, kh, kw], linear weights [out, in] (PyTorch's layouts).
 * - Nothing here reads a tensor back to the host, so a layer only enqueues work on its device.
 */
import {
  concatChannels, copyInto, conv2d, conv2dBackwardData, conv2dBackwardFilter, dropout as dropoutOp, dropoutBackward,
  empty, gemm, localResponseNorm, localResponseNormBackward, matmul, maxPool2d, maxPool2dBackward, relu,
  reluBackward, softmaxCrossEntropy, splitChannels, tanh, tanhBackward, tensor, biasAdd, biasGrad, type DType, type Device,
  type HostTensor, type LrnOptions, type Shape, type Tensor,
} from '@alexnet/tensor';
import { initParameter } from './init.js';
import { gradPair, Parameter } from './parameter.js';
import { seedFor } from './seed.js';

export interface ForwardContext {
  /** Training mode: keep what backward needs, apply dropout. Default false (evaluation). */
  training?: boolean;
  /** Training step, which selects the dropout masks; layers count their own steps when omitted. */
  step?: number;
  /**
   * This batch is samples [offset, offset + n) of a global batch of `total` (data-parallel training:
   * each process takes a slice). Dropout draws each sample's mask by its place in the global batch,
   * so the masks, and the run, do not depend on how many processes share it. Default: the whole batch.
   */
  samples?: { offset: number; total: number };
}

function err(layer: string, msg: string): never {
  throw new TypeError(`${layer}: ${msg}`);
}

/** What a training forward kept for backward, or the error that there was none. */
function kept<T>(layer: string, v: T | null | undefined): T {
  if (v === null || v === undefined) err(layer, 'backward called without a training forward before it');
  return v;
}

/** A view of t that this layer holds on to (reference-counted, survives the caller's tidy). */
function hold(t: Tensor): Tensor {
  return t.reshape(t.shape).keep();
}

function release(t: Tensor | null | undefined): void {
  t?.dispose();
}

function checkInt(layer: string, name: string, v: unknown, min = 1): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) {
    err(layer, `expected ${name} to be an integer >= ${min} but received ${String(v)} of type ${typeof v}`);
  }
  return v;
}

export abstract class Layer {
  /** The layer's name in the model ("conv1", "features.3"); parameters are named `${name}.weight`. */
  abstract readonly name: string;
  abstract forward(x: Tensor, ctx?: ForwardContext): Tensor;
  abstract backward(dy: Tensor): Tensor | null;
  parameters(): Parameter[] {
    return [];
  }
  zeroGrad(): void {
    for (const p of this.parameters()) p.zeroGrad();
  }
  /** The parameters read back to the host, by name (PyTorch layouts). */
  stateDict(): Record<string, HostTensor> {
    const out: Record<string, HostTensor> = {};
    for (const p of this.parameters()) out[p.name] = { dtype: p.value.dtype, shape: [...p.value.shape], data: p.value.dataSync() };
    return out;
  }
  /** Copies host tensors (by parameter name) into the parameters. */
  loadStateDict(state: Record<string, HostTensor> | Map<string, HostTensor>): void {
    const get = (k: string) => (state instanceof Map ? state.get(k) : state[k]);
    for (const p of this.parameters()) {
      const h = get(p.name);
      if (!h) err(this.name || this.constructor.name, `the state dict has no tensor "${p.name}"`);
      writeHost(p, h);
    }
  }
  /** Frees whatever forward kept for backward (when no backward follows). */
  releaseCache(): void {}
  /** Frees the parameters and the cache. */
  dispose(): void {
    this.releaseCache();
    for (const p of this.parameters()) p.dispose();
  }
}

/** Writes a host tensor (the whole tensor or exactly this part's size) into a parameter. */
export function writeHost(p: Parameter, h: HostTensor): void {
  const size = p.value.size;
  const fullSize = p.fullShape.reduce((a, b) => a * b, 1);
  const sameShape = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((d, i) => d === b[i]);
  let data: ArrayLike<number>;
  if (sameShape(h.shape, p.fullShape)) data = h.data.subarray(p.offset, p.offset + size);
  else if (sameShape(h.shape, p.value.shape) && size !== fullSize) data = h.data;
  else throw new RangeError(`"${p.name}" has shape [${p.fullShape.join(', ')}] but the tensor loaded for it has shape [${h.shape.join(', ')}]`);
  const typed = p.value.dtype === 'float64' ? Float64Array.from(data) : Float32Array.from(data);
  const tmp = tensor(typed, p.value.shape, { device: p.value.device, dtype: p.value.dtype });
  try {
    copyInto(tmp, p.value); // same device: an in-queue copy
  } finally {
    tmp.dispose();
  }
}

interface ParamOptions {
  /** Device of the parameters (default: the default device). */
  device?: string | Device;
  dtype?: DType;
  /** Seed of the §5 initialisation (default 0). */
  seed?: number;
  /** Standard deviation of the weights (§5: 0.01). */
  weightStd?: number;
  /** Initial bias (§5: 1 in conv2, conv4, conv5, fc6, fc7; 0 elsewhere). */
  biasInit?: number;
  bias?: boolean;
  /** Parameters made elsewhere (a model's tower halves); overrides the initialisation options. */
  params?: { weight: Parameter; bias: Parameter | null };
  /** Whether backward computes dx (false for the first layer, whose input is the image). */
  inputGrad?: boolean;
}

function makeParams(name: string, wShape: Shape, outCount: number, o: ParamOptions): { weight: Parameter; bias: Parameter | null } {
  if (o.params) return o.params;
  const place = { device: o.device, dtype: o.dtype ?? 'float32' };
  const seed = o.seed ?? 0;
  const prefix = name ? `${name}.` : '';
  const weight = initParameter(`${prefix}weight`, wShape, { kind: 'normal', std: o.weightStd ?? 0.01 }, seed, place);
  const bias = o.bias === false ? null : initParameter(`${prefix}bias`, [outCount], { kind: 'constant', value: o.biasInit ?? 0 }, seed, place);
  return { weight, bias };
}

export interface Conv2dOptions extends ParamOptions {
  name?: string;
  inChannels: number;
  outChannels: number;
  kernel: number | [number, number];
  stride?: number | [number, number];
  padding?: number | [number, number];
  /** Groups of channels (§3.2: 2 = each kernel sees only its own GPU's maps). */
  groups?: number;
}

/** Convolution (§3.1). x [n, inC, h, w] -> y [n, outC, outH, outW]; weight [outC, inC/groups, kh, kw]. */
/**
 * A layer with a weight and an optional bias that keeps its input for backward (Conv2d, Linear):
 * `backward` computes dx (unless it is the first layer, `inputGrad` false), then dW and db from
 * the kept input, and releases it.
 */
abstract class WeightLayer extends Layer {
  abstract override readonly name: string;
  readonly weight: Parameter;
  readonly bias: Parameter | null;
  readonly inputGrad: boolean;
  protected x: Tensor | null = null;

  protected constructor(params: { weight: Parameter; bias: Parameter | null }, inputGrad: boolean | undefined) {
    super();
    this.weight = params.weight;
    this.bias = params.bias;
    this.inputGrad = inputGrad ?? true;
  }

  /** Keeps x for backward in training (after releasing what an earlier forward kept). */
  protected keep(x: Tensor, ctx: ForwardContext): void {
    this.releaseCache();
    if (ctx.training) this.x = hold(x);
  }

  protected abstract gradients(x: Tensor, dy: Tensor, grads: ReturnType<typeof gradPair>): Tensor | null;

  backward(dy: Tensor): Tensor | null {
    const x = kept(`${this.constructor.name} ${this.name}`, this.x);
    const dx = this.gradients(x, dy, gradPair(this.weight, this.bias));
    dy.dispose();
    this.releaseCache();
    return dx;
  }

  override parameters(): Parameter[] {
    return this.bias ? [this.weight, this.bias] : [this.weight];
  }

  override releaseCache(): void {
    release(this.x);
    this.x = null;
  }
}

export class Conv2d extends WeightLayer {
  readonly name: string;
  readonly stride: [number, number];
  readonly padding: [number, number];
  readonly groups: number;

  constructor(o: Conv2dOptions) {
    const name = o.name ?? '';
    const L = `Conv2d${name ? ` ${name}` : ''}`;
    const inC = checkInt(L, 'inChannels', o.inChannels), outC = checkInt(L, 'outChannels', o.outChannels);
    const [kh, kw] = typeof o.kernel === 'number' ? [o.kernel, o.kernel] : o.kernel;
    const groups = checkInt(L, 'groups', o.groups ?? 1);
    if (inC % groups || outC % groups) err(L, `groups = ${groups} must divide inChannels (${inC}) and outChannels (${outC})`);
    super(makeParams(name, [outC, inC / groups, checkInt(L, 'kernel', kh), checkInt(L, 'kernel', kw)], outC, o), o.inputGrad);
    this.name = name;
    this.groups = groups;
    this.stride = typeof o.stride === 'number' || o.stride === undefined ? [o.stride ?? 1, o.stride ?? 1] : o.stride;
    this.padding = typeof o.padding === 'number' || o.padding === undefined ? [o.padding ?? 0, o.padding ?? 0] : o.padding;
  }

  private get opts() {
    return { stride: this.stride, padding: this.padding, groups: this.groups };
  }

  forward(x: Tensor, ctx: ForwardContext = {}): Tensor {
    const y = conv2d(x, this.weight.value, this.bias?.value ?? null, this.opts);
    this.keep(x, ctx);
    return y;
  }

  protected gradients(x: Tensor, dy: Tensor, { dw, db, accumulate }: ReturnType<typeof gradPair>): Tensor | null {
    const dx = this.inputGrad ? conv2dBackwardData(dy, this.weight.value, x.shape, this.opts) : null;
    conv2dBackwardFilter(x, dy, this.weight.value.shape, this.opts, { dw, db, accumulate });
    return dx;
  }
}

export interface LinearOptions extends ParamOptions {
  name?: string;
  inFeatures: number;
  outFeatures: number;
}

/** Fully connected layer. x [n, in] -> y [n, out] = x W^T + b; weight [out, in] (PyTorch's layout). */
export class Linear extends WeightLayer {
  readonly name: string;

  constructor(o: LinearOptions) {
    const name = o.name ?? '';
    const L = `Linear${name ? ` ${name}` : ''}`;
    const inF = checkInt(L, 'inFeatures', o.inFeatures), outF = checkInt(L, 'outFeatures', o.outFeatures);
    super(makeParams(name, [outF, inF], outF, o), o.inputGrad);
    this.name = name;
  }

  forward(x: Tensor, ctx: ForwardContext = {}): Tensor {
    const [outF, inF] = this.weight.value.shape as [number, number];
    if (x.rank !== 2 || x.shape[1] !== inF) err(`Linear ${this.name}`, `expected x of shape [n, ${inF}] but received [${x.shape.join(', ')}] (Flatten first)`);
    const y = empty([x.shape[0]!, outF], { dtype: x.dtype, device: x.device });
    gemm(x, this.weight.value, y, { transB: true });
    if (this.bias) biasAdd(y, this.bias.value);
    this.keep(x, ctx);
    return y;
  }

  protected gradients(x: Tensor, dy: Tensor, { dw, db, accumulate }: ReturnType<typeof gradPair>): Tensor | null {
    const dx = this.inputGrad ? matmul(dy, this.weight.value) : null; // [n, out] [out, in] -> [n, in]
    gemm(dy, x, dw, { transA: true, beta: accumulate ? 1 : 0 }); // dW [out, in] = dy^T x
    if (db) biasGrad(dy, db, accumulate);
    return dx;
  }
}

/**
 * An elementwise nonlinearity that keeps its output y for backward (ReLU's mask y > 0, tanh's
 * 1 - y²). In place reuses x's memory (safe after conv/linear, which keep their input, not their output).
 */
abstract class Activation extends Layer {
  readonly name: string;
  readonly inPlace: boolean;
  private y: Tensor | null = null;

  constructor(private readonly kind: string, private readonly f: typeof relu, private readonly df: typeof reluBackward,
    o: { name?: string; inPlace?: boolean }) {
    super();
    this.name = o.name ?? '';
    this.inPlace = o.inPlace ?? false;
  }

  forward(x: Tensor, ctx: ForwardContext = {}): Tensor {
    let y = this.f(x, { inPlace: this.inPlace });
    if (y === x) y = x.reshape(x.shape); // the caller owns a separate handle
    this.releaseCache();
    if (ctx.training) this.y = hold(y);
    return y;
  }

  backward(dy: Tensor): Tensor {
    if (!this.y) err(`${this.kind} ${this.name}`, 'backward called without a training forward before it');
    const dx = this.df(this.y, dy, { inPlace: true }); // written into dy, which we own
    this.releaseCache();
    return dx;
  }

  override releaseCache(): void {
    release(this.y);
    this.y = null;
  }
}

/** f(x) = max(0, x) (§3.1). Any shape. */
export class ReLU extends Activation {
  constructor(o: { name?: string; inPlace?: boolean } = {}) {
    super('ReLU', relu, reluBackward, o);
  }
}

/** f(x) = tanh(x), the saturating nonlinearity §3.1 compares ReLU with (Figure 1). Any shape. */
export class Tanh extends Activation {
  constructor(o: { name?: string; inPlace?: boolean } = {}) {
    super('Tanh', tanh, tanhBackward, o);
  }
}

export interface LocalResponseNormOptions extends LrnOptions {
  name?: string;
  /**
   * Normalise within `groups` equal blocks of channels (default 1). The paper's towers normalise
   * over their own 48 (conv1) or 128 (conv2) maps, so the one-device placement of the two-tower net
   * uses groups = 2 to compute exactly what the two GPUs compute.
   */
  groups?: number;
}

/**
 * Local response normalisation across channels (§3.3). x [n, c, h, w] -> y, same shape.
 * Defaults are the paper's: size (n) 5, k 2, alpha 1e-4, beta 0.75, convention 'paper' (alpha
 * multiplies the sum of squares as written). convention 'pytorch' divides alpha by size first, as
 * torch.nn.LocalResponseNorm and Caffe do.
 */
export class LocalResponseNorm extends Layer {
  readonly name: string;
  readonly options: LrnOptions;
  readonly groups: number;
  private x: Tensor | null = null;
  private y: Tensor | null = null;

  constructor(o: LocalResponseNormOptions = {}) {
    super();
    this.name = o.name ?? '';
    this.options = { size: o.size ?? 5, alpha: o.alpha ?? 1e-4, beta: o.beta ?? 0.75, k: o.k ?? 2, convention: o.convention ?? 'paper' };
    this.groups = checkInt('LocalResponseNorm', 'groups', o.groups ?? 1);
  }

  /** [n, c, ...] as [n * groups, c / groups, rest]: LRN per block of channels without a copy. */
  private grouped(t: Tensor): Tensor {
    const n = t.shape[0]!, c = t.shape[1]!;
    if (c % this.groups) err(`LocalResponseNorm ${this.name}`, `groups = ${this.groups} must divide the ${c} channels`);
    return t.reshape([n * this.groups, c / this.groups, t.size / (n * c)]);
  }

  forward(x: Tensor, ctx: ForwardContext = {}): Tensor {
    if (x.rank < 2) err(`LocalResponseNorm ${this.name}`, `expected x of rank >= 2 but received [${x.shape.join(', ')}]`);
    const xg = this.grouped(x);
    const yg = localResponseNorm(xg, this.options);
    xg.dispose();
    const y = yg.reshape(x.shape);
    yg.dispose();
    this.releaseCache();
    if (ctx.training) {
      this.x = hold(x);
      this.y = hold(y);
    }
    return y;
  }

  backward(dy: Tensor): Tensor {
    if (!this.x || !this.y) err(`LocalResponseNorm ${this.name}`, 'backward called without a training forward before it');
    const xg = this.grouped(this.x), yg = this.grouped(this.y), dyg = this.grouped(dy);
    const dxg = localResponseNormBackward(xg, yg, dyg, this.options);
    const dx = dxg.reshape(dy.shape);
    for (const t of [xg, yg, dyg, dxg, dy]) t.dispose();
    this.releaseCache();
    return dx;
  }

  override releaseCache(): void {
    release(this.x);
    release(this.y);
    this.x = this.y = null;
  }
}

export interface MaxPool2dOptions {
  name?: string;
  /** Window z (§3.4: 3). */
  size: number | [number, number];
  /** Stride s (§3.4: 2; "overlapping" because s < z). Defaults to the window. */
  stride?: number | [number, number];
  padding?: number | [number, number];
}

/** Max pooling (§3.4), overlapping when stride < size. x [n, c, h, w] -> y [n, c, outH, outW]. */
export class MaxPool2d extends Layer {
  readonly name: string;
  readonly options: { size: number | [number, number]; stride?: number | [number, number]; padding?: number | [number, number] };
  private argmax: Tensor | null = null;
  private xShape: Shape | null = null;

  constructor(o: MaxPool2dOptions) {
    super();
    this.name = o.name ?? '';
    this.options = { size: o.size, stride: o.stride, padding: o.padding };
  }

  forward(x: Tensor, ctx: ForwardContext = {}): Tensor {
    const { y, argmax } = maxPool2d(x, this.options);
    this.releaseCache();
    if (ctx.training) {
      this.argmax = argmax.keep();
      this.xShape = x.shape;
    } else {
      argmax.dispose();
    }
    return y;
  }

  backward(dy: Tensor): Tensor {
    if (!this.argmax || !this.xShape) err(`MaxPool2d ${this.name}`, 'backward called without a training forward before it');
    const dx = maxPool2dBackward(dy, this.argmax, this.xShape, this.options);
    dy.dispose();
    this.releaseCache();
    return dx;
  }

  override releaseCache(): void {
    release(this.argmax);
    this.argmax = null;
    this.xShape = null;
  }
}

export interface DropoutOptions {
  name?: string;
  /** Probability of dropping a unit (§4.2: 0.5). */
  p?: number;
  /** Seed of the masks; the mask of a step comes from (seed, name, step). */
  seed?: number;
  /**
   * Masks are drawn per block of channels: block g of x [n, c] uses draws at offsets
   * (part.index + g) * n * c / groups onwards. A tower of a two-tower model is block `part.index` of
   * the whole layer; the one-device placement uses groups = 2. Both draw identical masks (§3.2).
   */
  groups?: number;
  part?: { index: number };
}

/**
 * Dropout (§4.2), inverted: at training, kept units are scaled by 1/(1-p); at evaluation it is the
 * identity (the paper's "multiply the outputs by 0.5" at test time, moved to training time).
 * The mask is never stored: backward regenerates it from (seed, offset).
 */
export class Dropout extends Layer {
  readonly name: string;
  readonly p: number;
  readonly seed: number;
  readonly groups: number;
  readonly partIndex: number;
  private steps = 0;
  private pending: { seed: number; shape: Shape; samples: { offset: number; total: number } | undefined } | null = null;

  constructor(o: DropoutOptions = {}) {
    super();
    this.name = o.name ?? '';
    this.p = o.p ?? 0.5;
    if (!(this.p >= 0 && this.p < 1)) err('Dropout', `expected p in [0, 1) but received ${this.p}`);
    this.seed = o.seed ?? 0;
    this.groups = checkInt('Dropout', 'groups', o.groups ?? 1);
    this.partIndex = o.part?.index ?? 0;
  }

  /**
   * The mask of element j of sample s in block g (a tower's channels) is Philox word
   * (part + g) * total * d + (offset + s) * d + j of the step's stream (d: elements per sample and
   * block): the same for one device or two, and for any slicing of the global batch.
   */
  private blocks(x: Tensor, seed: number, samples: { offset: number; total: number } | undefined,
    fn: (t: Tensor, opts: { p: number; seed: number; offset: number }) => Tensor): Tensor {
    const n = x.shape[0]!;
    const { offset, total } = samples ?? { offset: 0, total: n };
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(total) || offset < 0 || offset + n > total) {
      err(`Dropout ${this.name}`, `expected samples [offset, offset + ${n}) within a batch of total, but received offset ${offset}, total ${total}`);
    }
    const d = n > 0 ? x.size / this.groups / n : 0;
    const at = (g: number) => (this.partIndex + g) * total * d + offset * d;
    if (this.groups === 1) return fn(x, { p: this.p, seed, offset: at(0) });
    const c = x.shape[1]!;
    if (c % this.groups) err(`Dropout ${this.name}`, `groups = ${this.groups} must divide the ${c} channels`);
    const parts = splitChannels(x, new Array(this.groups).fill(c / this.groups));
    const outs = parts.map((t, g) => fn(t, { p: this.p, seed, offset: at(g) }));
    const y = concatChannels(outs);
    for (const t of [...parts, ...outs]) t.dispose();
    return y;
  }

  forward(x: Tensor, ctx: ForwardContext = {}): Tensor {
    this.releaseCache();
    if (!ctx.training || this.p === 0) return x.reshape(x.shape); // identity: a view
    const step = ctx.step ?? this.steps++;
    const seed = seedFor(this.seed, this.name, step);
    this.pending = { seed, shape: x.shape, samples: ctx.samples };
    return this.blocks(x, seed, ctx.samples, dropoutOp);
  }

  backward(dy: Tensor): Tensor {
    if (this.p === 0) return dy;
    const { seed, samples } = kept(`Dropout ${this.name}`, this.pending);
    const dx = this.blocks(dy, seed, samples, dropoutBackward);
    dy.dispose();
    this.pending = null;
    return dx;
  }

  override releaseCache(): void {
    this.pending = null;
  }
}

/** x [n, d1, d2, ...] -> [n, d1 * d2 * ...] (a view; channel-major, as torch.flatten). */
export class Flatten extends Layer {
  readonly name: string;
  private xShape: Shape | null = null;

  constructor(o: { name?: string } = {}) {
    super();
    this.name = o.name ?? '';
  }

  forward(x: Tensor, ctx: ForwardContext = {}): Tensor {
    this.xShape = ctx.training ? x.shape : null;
    return x.reshape([x.shape[0]!, x.size / x.shape[0]!]);
  }

  backward(dy: Tensor): Tensor {
    const dx = dy.reshape(kept(`Flatten ${this.name}`, this.xShape));
    dy.dispose();
    this.xShape = null;
    return dx;
  }

  override releaseCache(): void {
    this.xShape = null;
  }
}

/**
 * Adaptive average pooling to a fixed output size (torchvision's AlexNet: 6x6), with PyTorch's
 * windows: output cell i covers input rows [floor(i h / oh), ceil((i + 1) h / oh)).
 * x [n, c, h, w] -> y [n, c, oh, ow]. It is a linear map of each plane, so it runs as one GEMM
 * against a [h w, oh ow] pooling matrix (built once per input size and device), on any backend;
 * when h, w already equal the output size it is the identity.
 */
export class AdaptiveAvgPool2d extends Layer {
  readonly name: string;
  readonly outputSize: [number, number];
  private matrices = new Map<string, Tensor>();
  private cache: { shape: Shape; m: Tensor | null } | null = null;

  constructor(o: { name?: string; outputSize: number | [number, number] }) {
    super();
    this.name = o.name ?? '';
    this.outputSize = typeof o.outputSize === 'number' ? [o.outputSize, o.outputSize] : o.outputSize;
  }

  private matrix(x: Tensor): Tensor | null {
    const [h, w] = [x.shape[2]!, x.shape[3]!];
    const [oh, ow] = this.outputSize;
    if (h === oh && w === ow) return null;
    const key = `${x.device.name}/${x.dtype}/${h}x${w}`;
    let m = this.matrices.get(key);
    if (!m) {
      const host = new Float64Array(h * w * oh * ow);
      for (let i = 0; i < oh; i++) {
        const h0 = Math.floor((i * h) / oh), h1 = Math.ceil(((i + 1) * h) / oh);
        for (let j = 0; j < ow; j++) {
          const w0 = Math.floor((j * w) / ow), w1 = Math.ceil(((j + 1) * w) / ow);
          const inv = 1 / ((h1 - h0) * (w1 - w0));
          for (let r = h0; r < h1; r++) for (let s = w0; s < w1; s++) host[(r * w + s) * oh * ow + i * ow + j] = inv;
        }
      }
      m = tensor(x.dtype === 'float64' ? host : Float32Array.from(host), [h * w, oh * ow], { device: x.device, dtype: x.dtype }).keep();
      this.matrices.set(key, m);
    }
    return m;
  }

  forward(x: Tensor, ctx: ForwardContext = {}): Tensor {
    if (x.rank !== 4) err(`AdaptiveAvgPool2d ${this.name}`, `expected x of rank 4 (NCHW) but received [${x.shape.join(', ')}]`);
    const m = this.matrix(x);
    this.cache = ctx.training ? { shape: x.shape, m } : null;
    if (!m) return x.reshape(x.shape);
    const [n, c, h, w] = x.shape as [number, number, number, number];
    const x2 = x.reshape([n * c, h * w]);
    const y2 = matmul(x2, m);
    const y = y2.reshape([n, c, ...this.outputSize]);
    x2.dispose();
    y2.dispose();
    return y;
  }

  backward(dy: Tensor): Tensor {
    if (!this.cache) err(`AdaptiveAvgPool2d ${this.name}`, 'backward called without a training forward before it');
    const { shape, m } = this.cache;
    this.cache = null;
    if (!m) return dy;
    const [n, c] = shape as [number, number];
    const dy2 = dy.reshape([n * c, this.outputSize[0] * this.outputSize[1]]);
    const dx2 = matmul(dy2, m, { transB: true });
    const dx = dx2.reshape(shape);
    for (const t of [dy2, dx2, dy]) t.dispose();
    return dx;
  }

  override releaseCache(): void {
    this.cache = null;
  }

  override dispose(): void {
    super.dispose();
    for (const m of this.matrices.values()) m.dispose();
    this.matrices.clear();
  }
}

/**
 * The loss (§3): mean multinomial logistic loss of softmax(logits). logits [n, classes], labels
 * int32 [n] (a tensor on the logits' device, or host integers, checked to lie in [0, classes)).
 * forward returns the loss as a [1] tensor; in training mode it also computes the gradient in the
 * same pass, and backward() hands that dlogits [n, classes] to the caller.
 */
export class SoftmaxCrossEntropy {
  readonly name: string;
  private dlogits: Tensor | null = null;

  constructor(o: { name?: string } = {}) {
    this.name = o.name ?? 'loss';
  }

  forward(logits: Tensor, labels: Tensor | Int32Array | readonly number[], ctx: ForwardContext = {}): Tensor {
    let lab: Tensor;
    if (Array.isArray(labels) || labels instanceof Int32Array) {
      const classes = logits.shape[1]!;
      for (const v of labels as ArrayLike<number> & Iterable<number>) {
        if (!Number.isInteger(v) || v < 0 || v >= classes) err('SoftmaxCrossEntropy', `expected labels to be integers in [0, ${classes}) but received ${v}`);
      }
      lab = tensor(Int32Array.from(labels as ArrayLike<number>), [(labels as ArrayLike<number>).length], { device: logits.device, dtype: 'int32' });
    } else {
      lab = (labels as Tensor).device === logits.device ? labels as Tensor : (labels as Tensor).to(logits.device);
    }
    try {
      const { loss, dlogits } = softmaxCrossEntropy(logits, lab, { grad: !!ctx.training });
      this.releaseCache();
      this.dlogits = dlogits?.keep() ?? null;
      return loss;
    } finally {
      if (lab !== labels) lab.dispose();
    }
  }

  /** d(loss)/d(logits), owned by the caller. */
  backward(): Tensor {
    if (!this.dlogits) err('SoftmaxCrossEntropy', 'backward called without a training forward before it');
    const d = this.dlogits;
    this.dlogits = null;
    return d;
  }

  releaseCache(): void {
    release(this.dlogits);
    this.dlogits = null;
  }
}

/** Layers applied in order. backward runs them in reverse; intermediate tensors are freed on the way. */
export class Sequential extends Layer {
  readonly name: string;
  readonly layers: Layer[];

  constructor(layers: Layer[], o: { name?: string } = {}) {
    super();
    this.layers = layers;
    this.name = o.name ?? '';
  }

  forward(x: Tensor, ctx: ForwardContext = {}): Tensor {
    let cur = x;
    for (const layer of this.layers) {
      const next = layer.forward(cur, ctx);
      if (cur !== x) cur.dispose();
      cur = next;
    }
    return cur === x ? x.reshape(x.shape) : cur;
  }

  backward(dy: Tensor): Tensor | null {
    let cur: Tensor | null = dy;
    for (let i = this.layers.length - 1; i >= 0; i--) {
      if (!cur) {
        // A layer below produced no dx (inputGrad false): nothing further down needs gradients.
        for (let j = i; j >= 0; j--) this.layers[j]!.releaseCache();
        break;
      }
      cur = this.layers[i]!.backward(cur);
    }
    return cur;
  }

  override parameters(): Parameter[] {
    return this.layers.flatMap((l) => l.parameters());
  }

  override releaseCache(): void {
    for (const l of this.layers) l.releaseCache();
  }

  override dispose(): void {
    for (const l of this.layers) l.dispose();
  }
}
