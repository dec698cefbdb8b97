/**
 * A model description placed on devices and run (§3.2's model parallelism).
 *
 * Placement:
 * - One device: the whole net on it. In a two-tower description, layers whose inputs are 'own'
 *   become grouped convolutions (groups = 2), LRN normalises within each tower's half of the
 *   channels, and dropout draws each half's mask as its tower would: the same net, computed on one
 *   device.
 * - Two devices (two-tower descriptions only): tower t's half of every layer lives on device t.
 *   The image goes whole to both. Layers with inputs 'all' gather the other tower's maps with
 *   `t.to(device)` (conv3, fc6, fc7, fc8 in the paper), and backward sends the matching gradients
 *   back; nothing else crosses. fc8's two halves of the logits are gathered on the first device.
 *   Each step enqueues tower 0's layer, then tower 1's, and never reads a tensor back, so the two
 *   devices' queues compute at the same time.
 *
 * Parameters are whole tensors named after the layer (conv1.weight ... fc8.bias, or torchvision's
 * names). A tower holds rows [start, end) of dimension 0 (its kernels / neurons) of each, drawn from
 * the same Philox stream (seed, name) at the same offsets, so both placements hold identical weights
 * and save identical files.
 */
import {
  add, concatChannels, defaultDevice, device as toDevice, saveSafetensors as saveST, loadSafetensors as loadST, splitChannels,
  type Device, type DType, type HostTensor, type Tensor, type TypedArray,
} from '@alexnet/tensor';
import { initParameter } from './init.js';
import {
  AdaptiveAvgPool2d, Conv2d, Dropout, Flatten, Layer, Linear, LocalResponseNorm, MaxPool2d, ReLU, Tanh, writeHost,
  type ForwardContext,
} from './layers.js';
import { describeModel, inferShapes, parameterCount, type LayerSpec, type ModelDescription, type ModelName, type ModelOptions } from './models.js';
import type { Parameter } from './parameter.js';

export interface PlacementOptions {
  /**
   * One device (the whole net there), or two (one tower per device, two-tower descriptions only).
   * Default: the default device.
   */
  devices?: (string | Device)[];
  /** 'float32' (default), or 'float64' on the reference backend for gradient checks. */
  dtype?: DType;
  /** Seed of the §5 initialisation and of the dropout masks (default 0). */
  seed?: number;
}

/** Rows [start, end) of `count` for tower t of `towers` (equal halves when count is even). */
function towerRange(count: number, towers: number, t: number): [number, number] {
  return [Math.floor((t * count) / towers), Math.floor(((t + 1) * count) / towers)];
}

/** Where one layer of one tower runs and what it holds (§3.2). */
export interface PlacementRow {
  layer: string;
  kind: LayerSpec['kind'];
  /** The tower this row computes (0 on one device). */
  tower: number;
  /** Index of the device in the placement's device list. */
  device: number;
  /** Kernels / neurons [a, b) of the whole layer held here (layers with weights), else null. */
  rows: [number, number] | null;
  /** Input channels this layer reads (conv), after any gather. */
  inChannels: number | null;
  /** Groups on one device: 2 for the towers' 'own' layers (conv, LRN, dropout masks), else 1. */
  groups: number;
  /** Both towers' maps are gathered before this layer (one of the paper's exchanges, conv3, fc6, fc7, fc8). */
  gathers: boolean;
}

/**
 * The placement of a description on `devices` (1 or 2) as rows, one per layer and tower: which
 * device, which kernels, whether it gathers. On one device a two-tower net is the same net with
 * grouped 'own' layers; on two, tower t's half of every layer lives on device t.
 */
export function placementRows(description: ModelDescription, devices: 1 | 2): PlacementRow[][] {
  const P = devices, T = description.towers;
  if (P === 2 && T !== 2) throw new RangeError(`The "${description.name}" net has one tower; place it on one device (two devices are for the two-tower net, §3.2)`);
  const out: PlacementRow[][] = [];
  let replicated = true; // before the first layer with weights both towers hold the whole image
  for (const row of inferShapes(description)) {
    const spec = row.spec;
    const hasWeights = spec.kind === 'conv' || spec.kind === 'linear';
    const own = hasWeights && spec.inputs === 'own' && T === 2 && !replicated;
    if (own && spec.kind === 'linear') throw new TypeError(`${description.name}: linear layer ${spec.name} with inputs 'own' is not supported`);
    const towers: PlacementRow[] = [];
    for (let t = 0; t < P; t++) {
      let groups = 1, inChannels: number | null = null;
      if (spec.kind === 'conv') {
        const inC = row.inShape[0]!;
        const [i0, i1] = towerRange(inC, 2, t);
        inChannels = P === 2 && own ? i1 - i0 : inC;
        groups = P === 1 && own ? 2 : 1;
      } else if (spec.kind === 'lrn') {
        const across = spec.inputs === 'all';
        if (across && P === 2) throw new RangeError(`${description.name}: ${spec.name} normalises across both towers (inputs 'all'), which only a one-device placement can do`);
        groups = P === 1 && !across ? T : 1;
      } else if (spec.kind === 'dropout') {
        groups = P === 1 ? T : 1;
      }
      towers.push({
        layer: spec.name, kind: spec.kind, tower: t, device: t,
        rows: hasWeights ? (P === 2 ? towerRange(spec.out, 2, t) : [0, spec.out]) : null,
        inChannels, groups, gathers: P === 2 && hasWeights && spec.inputs === 'all' && !replicated,
      });
    }
    out.push(towers);
    if (hasWeights) replicated = false;
  }
  return out;
}

/** The placement as a table: one line per layer, what each device holds and where maps cross. */
export function formatPlacement(rows: PlacementRow[][], deviceNames: readonly string[]): string[] {
  return rows.map((towers) => {
    const r0 = towers[0]!;
    const parts = towers.map((r) => `${deviceNames[r.device] ?? `device ${r.device}`}${r.rows ? ` [${r.rows[0]}, ${r.rows[1]})` : ''}${r.groups > 1 ? ` groups ${r.groups}` : ''}`);
    return `${r0.layer.padEnd(8)} ${parts.join(' | ')}${r0.gathers ? '   <- gathers both towers (§3.2)' : ''}`;
  });
}

interface Stage {
  spec: LayerSpec;
  /** One layer per tower of the placement (one in all on a single device). */
  layers: Layer[];
  /** Inputs gathered from both towers before this stage (two devices, inputs 'all', not the image). */
  gather: boolean;
  hasWeights: boolean;
  /** Channel counts of each tower's input, recorded in forward, for splitting the gradient. */
  inSplit: number[];
}

export class Network {
  readonly description: ModelDescription;
  readonly devices: Device[];
  readonly dtype: DType;
  readonly seed: number;
  private readonly stages: Stage[] = [];
  /** Where each layer of each tower runs (placementRows). */
  readonly placement: PlacementRow[][];
  private steps = 0;
  private outSplit: number[] = [];
  private trainingForward = false;
  /**
   * When set, every stage is followed by a wait for all devices and its wall time is reported
   * (for the benchmark's per-layer profile; it serialises the queues, so leave it unset otherwise).
   */
  profiler: ((stage: string, pass: 'forward' | 'backward', ms: number) => void) | undefined;
  /**
   * When set, called after each stage of forward with its outputs (one per tower; borrowed: read
   * them, do not keep or dispose them). Reading them waits for the devices, so set it only for
   * occasional diagnostics (see reluZeroFractions).
   */
  observer: ((stage: string, kind: LayerSpec['kind'], outputs: readonly Tensor[]) => void) | undefined;

  constructor(description: ModelDescription, placement: PlacementOptions = {}) {
    this.description = description;
    this.devices = (placement.devices ?? [defaultDevice()]).map((d) => toDevice(d));
    this.dtype = placement.dtype ?? 'float32';
    this.seed = placement.seed ?? 0;
    const P = this.devices.length;
    if (P !== 1 && P !== 2) throw new RangeError(`Expected one or two devices but received ${P}`);
    if (P === 2 && description.towers !== 2) {
      throw new RangeError(`The "${description.name}" net has one tower; place it on one device (two devices are for the two-tower net, §3.2)`);
    }
    if (P === 2 && this.devices[0] === this.devices[1]) throw new RangeError(`The two towers need two different devices but both are ${this.devices[0]!.name}`);
    const shapes = inferShapes(description); // validates the description
    this.placement = placementRows(description, P);
    let prevKind = '';
    for (const [i, row] of shapes.entries()) {
      const spec = row.spec;
      const places = this.placement[i]!;
      const layers = places.map((p) => this.makeLayer(spec, row.params, p, prevKind, i === 0));
      const hasWeights = spec.kind === 'conv' || spec.kind === 'linear';
      this.stages.push({ spec, layers, gather: places[0]!.gathers, hasWeights, inSplit: [] });
      prevKind = spec.kind;
    }
  }

  /** The layer of one tower: `p` says where it runs and which rows of the whole layer it holds. */
  private makeLayer(spec: LayerSpec, params: { name: string; shape: number[] }[], p: PlacementRow, prevKind: string, first: boolean): Layer {
    const name = spec.name;
    const dev = this.devices[p.device]!;
    switch (spec.kind) {
      case 'conv':
      case 'linear': {
        const [wInfo, bInfo] = params as [{ name: string; shape: number[] }, { name: string; shape: number[] }];
        const [o0, o1] = p.rows!;
        const rowSize = wInfo.shape.slice(1).reduce((a, b) => a * b, 1);
        const place = { device: dev, dtype: this.dtype };
        const weight = initParameter(wInfo.name, [o1 - o0, ...wInfo.shape.slice(1)], { kind: 'normal', std: spec.weightStd }, this.seed,
          { ...place, fullShape: wInfo.shape, offset: o0 * rowSize });
        const bias = initParameter(bInfo.name, [o1 - o0], { kind: 'constant', value: spec.bias }, this.seed, { ...place, fullShape: bInfo.shape, offset: o0 });
        [weight.lrMult, bias.lrMult] = spec.lrMult ?? [1, 1];
        [weight.decayMult, bias.decayMult] = spec.decayMult ?? [1, 1];
        if (spec.kind === 'conv') {
          return new Conv2d({
            name, inChannels: p.inChannels!, outChannels: o1 - o0, kernel: spec.kernel, stride: spec.stride, padding: spec.padding, groups: p.groups,
            params: { weight, bias }, inputGrad: !first,
          });
        }
        return new Linear({ name, inFeatures: params[0]!.shape[1]!, outFeatures: o1 - o0, params: { weight, bias }, inputGrad: !first });
      }
      case 'relu': return new ReLU({ name, inPlace: prevKind === 'conv' || prevKind === 'linear' });
      case 'tanh': return new Tanh({ name, inPlace: prevKind === 'conv' || prevKind === 'linear' });
      case 'lrn': return new LocalResponseNorm({ name, size: spec.size, alpha: spec.alpha, beta: spec.beta, k: spec.k, convention: spec.convention, groups: p.groups });
      case 'maxpool': return new MaxPool2d({ name, size: spec.size, stride: spec.stride });
      case 'dropout': return new Dropout({ name, p: spec.p, seed: this.seed, groups: p.groups, part: { index: p.tower } });
      case 'flatten': return new Flatten({ name });
      case 'avgpool': return new AdaptiveAvgPool2d({ name, outputSize: spec.size });
    }
  }

  /** Number of towers this placement runs (1 on one device, 2 on two). */
  get placedTowers(): number {
    return this.devices.length;
  }

  /**
   * x [n, c, size, size] (any device; it is copied whole to each tower's device) -> logits
   * [n, classes] on the first device, owned by the caller. In training mode the layers keep what
   * backward needs and dropout uses the masks of `step` (counted automatically when omitted).
   */
  forward(x: Tensor, ctx: ForwardContext = {}): Tensor {
    const training = !!ctx.training;
    const lctx: ForwardContext = { training, step: training ? ctx.step ?? this.steps++ : undefined, ...(ctx.samples ? { samples: ctx.samples } : {}) };
    const { channels, size } = this.description.input;
    if (x.rank !== 4 || x.shape[1] !== channels || x.shape[2] !== size || x.shape[3] !== size) {
      throw new TypeError(`${this.description.name}: expected x of shape [n, ${channels}, ${size}, ${size}] but received [${x.shape.join(', ')}]`);
    }
    if (x.dtype !== this.dtype) throw new TypeError(`${this.description.name}: expected x to be ${this.dtype} (the model's dtype) but received ${x.dtype}`);
    let parts = this.devices.map((d) => (x.device === d ? x.reshape(x.shape) : x.to(d)));
    let t0 = this.profiler ? this.syncNow() : 0;
    for (const stage of this.stages) {
      let inputs = parts;
      const temps: Tensor[] = [];
      if (stage.gather) {
        // §3.2 exchange: both copies are enqueued before either tower concatenates.
        const from1 = parts[1]!.to(this.devices[0]!), from0 = parts[0]!.to(this.devices[1]!);
        inputs = [concatChannels([parts[0]!, from1]), concatChannels([from0, parts[1]!])];
        temps.push(from1, from0, ...inputs);
        stage.inSplit = [parts[0]!.shape[1]!, parts[1]!.shape[1]!];
      }
      const outs = stage.layers.map((layer, t) => layer.forward(inputs[t]!, lctx));
      for (const p of [...temps, ...parts]) p.dispose();
      parts = outs;
      this.observer?.(stage.spec.name, stage.spec.kind, outs);
      if (this.profiler) t0 = this.report(stage.spec.name, 'forward', t0);
    }
    this.trainingForward = training;
    if (parts.length === 1) return parts[0]!;
    this.outSplit = parts.map((p) => p.shape[1]!);
    const moved = parts[1]!.to(this.devices[0]!);
    const logits = concatChannels([parts[0]!, moved]);
    for (const p of [...parts, moved]) p.dispose();
    return logits;
  }

  /**
   * Backward from d(loss)/d(logits) [n, classes] (not consumed): adds every parameter's gradient
   * into parameter.grad and frees everything forward kept.
   */
  /**
   * dlogits [n, classes] -> the gradients of every parameter (accumulated into p.grad). `onGradients`
   * is called with each layer's parameters right after their gradient ops are enqueued, last layer
   * first (fc8, fc7, fc6, conv5, ...): a data-parallel trainer starts reducing them there, while the
   * devices still compute the layers below.
   */
  backward(dlogits: Tensor, opts: { onGradients?: (layer: string, params: Parameter[]) => void } = {}): void {
    if (!this.trainingForward) throw new Error(`${this.description.name}: backward needs a forward with { training: true } before it`);
    this.trainingForward = false;
    let d: (Tensor | null)[];
    if (this.devices.length === 2) {
      const local = dlogits.device === this.devices[0] ? dlogits : dlogits.to(this.devices[0]!);
      const [a, b] = splitChannels(local, this.outSplit) as [Tensor, Tensor];
      d = [a, b.to(this.devices[1]!)];
      b.dispose();
      if (local !== dlogits) local.dispose();
    } else {
      d = [dlogits.device === this.devices[0] ? dlogits.clone() : dlogits.to(this.devices[0]!)];
    }
    let t0 = this.profiler ? this.syncNow() : 0;
    for (let i = this.stages.length - 1; i >= 0; i--) {
      const stage = this.stages[i]!;
      const dins = stage.layers.map((layer, t) => layer.backward(d[t]!));
      if (stage.hasWeights) opts.onGradients?.(stage.spec.name, stage.layers.flatMap((l) => l.parameters()));
      if (dins.some((g) => g === null)) {
        if (this.profiler) t0 = this.report(stage.spec.name, 'backward', t0);
        for (const g of dins) g?.dispose();
        for (let j = i - 1; j >= 0; j--) for (const l of this.stages[j]!.layers) l.releaseCache();
        return;
      }
      if (stage.gather) {
        // Each tower's input gradient covers both towers' maps: split it, send the other half home, add.
        const [s0, s1] = dins.map((g) => splitChannels(g!, stage.inSplit)) as [Tensor[], Tensor[]];
        const to0 = s1[0]!.to(this.devices[0]!), to1 = s0[1]!.to(this.devices[1]!);
        d = [add(s0[0]!, to0, s0[0]!), add(s1[1]!, to1, s1[1]!)];
        for (const g of [...dins, s0[1]!, s1[0]!, to0, to1]) g!.dispose();
      } else {
        d = dins;
      }
      if (this.profiler) t0 = this.report(stage.spec.name, 'backward', t0);
    }
    for (const g of d) g?.dispose(); // the image gradient, when the first layer computes one
  }

  private syncNow(): number {
    for (const d of this.devices) d.synchronizeSync();
    return performance.now();
  }

  private report(name: string, pass: 'forward' | 'backward', t0: number): number {
    const t1 = this.syncNow();
    this.profiler?.(name, pass, t1 - t0);
    return t1;
  }

  /** Every parameter part (both towers' halves on two devices), in layer order. */
  parameters(): Parameter[] {
    return this.stages.flatMap((s) => s.layers.flatMap((l) => l.parameters()));
  }

  /** Number of learned values (the whole net, placement-independent). */
  parameterCount(): number {
    return parameterCount(this.description);
  }

  zeroGrad(): void {
    for (const p of this.parameters()) p.zeroGrad();
  }

  /** Frees whatever the last training forward kept, when no backward follows. */
  releaseCache(): void {
    for (const s of this.stages) for (const l of s.layers) l.releaseCache();
    this.trainingForward = false;
  }

  /**
   * The whole parameters, read back to the host, by name, in PyTorch layouts (OIHW, [out, in]); the
   * same for both placements.
   */
  stateDict(): Record<string, HostTensor> {
    const out: Record<string, HostTensor> = {};
    for (const p of this.parameters()) {
      let h = out[p.name];
      if (!h) {
        const size = p.fullShape.reduce((a, b) => a * b, 1);
        h = out[p.name] = { dtype: p.value.dtype, shape: [...p.fullShape], data: p.value.dtype === 'float64' ? new Float64Array(size) : new Float32Array(size) };
      }
      (h.data as TypedArray & { set(a: ArrayLike<number>, o: number): void }).set(p.value.dataSync() as ArrayLike<number> as never, p.offset);
    }
    return out;
  }

  /**
   * Loads whole parameters by name (from stateDict(), a safetensors file, or PyTorch). Values are
   * converted to the model's dtype. strict (default): every parameter must be present and no other
   * tensor may be.
   */
  loadStateDict(state: Record<string, HostTensor> | Map<string, HostTensor>, opts: { strict?: boolean } = {}): void {
    const map = state instanceof Map ? state : new Map(Object.entries(state));
    const params = this.parameters();
    const names = new Set(params.map((p) => p.name));
    const missing = [...names].filter((n) => !map.has(n));
    const unexpected = [...map.keys()].filter((n) => !names.has(n));
    if (opts.strict !== false && (missing.length || unexpected.length)) {
      throw new Error(`${this.description.name}: the weights do not match the model` +
        (missing.length ? `; missing: ${missing.join(', ')}` : '') + (unexpected.length ? `; unexpected: ${unexpected.join(', ')}` : ''));
    }
    for (const p of params) {
      const h = map.get(p.name);
      if (h) writeHost(p, h);
    }
  }

  /** Writes the weights as safetensors (PyTorch layouts and the description's names). */
  async saveSafetensors(path: string, metadata: Record<string, string> = {}): Promise<void> {
    await saveST(path, this.stateDict(), { format: 'pt', model: this.description.name, ...metadata });
  }

  /** Reads weights saved by saveSafetensors, by PyTorch's safetensors, or by torchvision (for 'torchvision'). */
  async loadSafetensors(path: string, opts: { strict?: boolean } = {}): Promise<Record<string, string>> {
    const { tensors, metadata } = await loadST(path);
    this.loadStateDict(tensors, opts);
    return metadata;
  }

  /** The layers of each stage (one per tower), for inspection. */
  layers(): { spec: LayerSpec; layers: Layer[] }[] {
    return this.stages.map((s) => ({ spec: s.spec, layers: s.layers }));
  }

  dispose(): void {
    for (const s of this.stages) for (const l of s.layers) l.dispose();
  }
}

/**
 * The fraction of exactly-zero outputs of every ReLU of the net for the batch x, in evaluation mode
 * (both towers together). A ReLU layer at 1.0 is dead: every unit is off for every image, and no
 * gradient flows below it. That is how a collapse with the initialisation of the paper's §5 shows (with its
 * biases of 1 and lr 0.01 on small data, fc7's ReLUs all die and the loss sits at ln(classes)); a
 * trainer can check it now and then and tell the user. It reads activations back to the host.
 */
export function reluZeroFractions(net: Network, x: Tensor): Record<string, number> {
  const zeros = new Map<string, { zero: number; total: number }>();
  const previous = net.observer;
  net.observer = (stage, kind, outputs) => {
    if (kind !== 'relu') return;
    const z = zeros.get(stage) ?? { zero: 0, total: 0 };
    for (const t of outputs) {
      const v = t.dataSync();
      for (let i = 0; i < v.length; i++) if (v[i] === 0) z.zero++;
      z.total += v.length;
    }
    zeros.set(stage, z);
  };
  try {
    net.forward(x).dispose();
  } finally {
    net.observer = previous;
  }
  return Object.fromEntries([...zeros].map(([k, z]) => [k, z.zero / z.total]));
}

export interface CreateModelOptions extends ModelOptions, PlacementOptions {}

/**
 * Builds a named model ('paper', 'paper-half', 'torchvision') or a description of your own, placed on
 * one device or (two-tower nets) two.
 */
export function createModel(model: ModelName | ModelDescription, opts: CreateModelOptions = {}): Network {
  const desc = typeof model === 'string' ? describeModel(model, opts) : model;
  return new Network(desc, opts);
}
