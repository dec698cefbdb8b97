/**
 * The ops of the paper's training, over tensors. Every argument is validated here, before any
 * engine sees it, and errors name the op and the argument ("conv2d: expected w of rank 4 ...").
 * Each op only enqueues work on its device (see backend.ts) and returns at once.
 */
import type { Engine, FloatDType, LrnParams, SgdForm } from './backend.js';
import { fail, finite, posInt, shapeStr } from './check.js';
import { describe, type Device } from './device.js';
import { convGeometry, poolGeometry, type Conv2dOptions, type MaxPoolOptions } from './geometry.js';
import { empty, Tensor, type Shape } from './tensor.js';
import { checkSeed } from './philox.js';

// ---- validation helpers ----

function checkTensor(op: string, name: string, t: unknown, opts: { rank?: number; float?: boolean; dtype?: string } = {}): Tensor {
  if (!(t instanceof Tensor)) fail(op, `expected ${name} to be a Tensor but received ${describe(t)}`);
  if (t.isDisposed) fail(op, `${name} was disposed`);
  if (opts.rank !== undefined && t.rank !== opts.rank) fail(op, `expected ${name} of rank ${opts.rank} but received shape ${shapeStr(t.shape)}`);
  if (opts.float && t.dtype !== 'float32' && t.dtype !== 'float64') fail(op, `expected ${name} to be float32 or float64 but received ${t.dtype}`);
  if (opts.dtype && t.dtype !== opts.dtype) fail(op, `expected ${name} to be ${opts.dtype} but received ${t.dtype}`);
  if (t.size === 0) fail(op, `${name} has a zero-size dimension (shape ${shapeStr(t.shape)})`);
  return t;
}

function sameDevice(op: string, tensors: Record<string, Tensor | null | undefined>): Device {
  let dev: Device | undefined, first = '';
  for (const [name, t] of Object.entries(tensors)) {
    if (!t) continue;
    if (!dev) { dev = t.device; first = name; continue; }
    if (t.device !== dev) fail(op, `${name} is on ${t.device.name} but ${first} is on ${dev.name}; copy it first with .to("${dev.name}")`);
  }
  return dev!;
}

function sameFloatDType(op: string, tensors: Record<string, Tensor | null | undefined>): FloatDType {
  let dt: string | undefined, first = '';
  for (const [name, t] of Object.entries(tensors)) {
    if (!t) continue;
    if (!dt) { dt = t.dtype; first = name; continue; }
    if (t.dtype !== dt) fail(op, `${name} is ${t.dtype} but ${first} is ${dt}`);
  }
  return dt as FloatDType;
}

function sameShape(op: string, a: Tensor, an: string, b: Tensor, bn: string): void {
  if (a.rank !== b.rank || a.shape.some((d, i) => d !== b.shape[i])) {
    fail(op, `${bn} has shape ${shapeStr(b.shape)} but ${an} has shape ${shapeStr(a.shape)}`);
  }
}

function engineOf(t: Tensor): Engine {
  return t.device.engine;
}

function out(shape: Shape, like: Tensor, dtype = like.dtype): Tensor {
  return empty(shape, { dtype, device: like.device });
}

// ---- dense algebra ----

export interface GemmOptions {
  transA?: boolean;
  transB?: boolean;
  alpha?: number;
  beta?: number;
}

/** c = alpha op(a) op(b) + beta c, in place on c (2-D float tensors). */
export function gemm(a: Tensor, b: Tensor, c: Tensor, opts: GemmOptions = {}): Tensor {
  const op = 'gemm';
  checkTensor(op, 'a', a, { rank: 2, float: true });
  checkTensor(op, 'b', b, { rank: 2, float: true });
  checkTensor(op, 'c', c, { rank: 2, float: true });
  sameDevice(op, { a, b, c });
  sameFloatDType(op, { a, b, c });
  const transA = !!opts.transA, transB = !!opts.transB;
  const alpha = finite(op, 'alpha', opts.alpha ?? 1), beta = finite(op, 'beta', opts.beta ?? 0);
  const m = transA ? a.shape[1]! : a.shape[0]!, k = transA ? a.shape[0]! : a.shape[1]!;
  const kb = transB ? b.shape[1]! : b.shape[0]!, n = transB ? b.shape[0]! : b.shape[1]!;
  if (k !== kb) fail(op, `inner dimensions differ: op(a) is ${m}x${k} but op(b) is ${kb}x${n}`);
  if (c.shape[0] !== m || c.shape[1] !== n) fail(op, `expected c of shape [${m}, ${n}] but received ${shapeStr(c.shape)}`);
  engineOf(a).gemm(transA, transB, m, n, k, alpha, a.buffer, b.buffer, beta, c.buffer);
  return c;
}

/** op(a) op(b) as a new tensor. */
export function matmul(a: Tensor, b: Tensor, opts: { transA?: boolean; transB?: boolean } = {}): Tensor {
  checkTensor('matmul', 'a', a, { rank: 2, float: true });
  checkTensor('matmul', 'b', b, { rank: 2, float: true });
  const m = opts.transA ? a.shape[1]! : a.shape[0]!, n = opts.transB ? b.shape[0]! : b.shape[1]!;
  const c = out([m, n], a);
  try { return gemm(a, b, c, { ...opts, beta: 0 }); } catch (e) { c.dispose(); throw e; }
}

/** y += alpha x, in place. */
export function axpy(alpha: number, x: Tensor, y: Tensor): Tensor {
  checkTensor('axpy', 'x', x, { float: true });
  checkTensor('axpy', 'y', y, { float: true });
  sameDevice('axpy', { x, y });
  sameFloatDType('axpy', { x, y });
  sameShape('axpy', x, 'x', y, 'y');
  engineOf(x).axpy(finite('axpy', 'alpha', alpha), x.buffer, y.buffer);
  return y;
}

/** x *= alpha, in place. */
export function scale(x: Tensor, alpha: number): Tensor {
  checkTensor('scale', 'x', x, { float: true });
  engineOf(x).scale(finite('scale', 'alpha', alpha), x.buffer);
  return x;
}

/** a + b as a new tensor (or into `into`). */
export function add(a: Tensor, b: Tensor, into?: Tensor): Tensor {
  checkTensor('add', 'a', a, { float: true });
  checkTensor('add', 'b', b, { float: true });
  if (into !== undefined) checkTensor('add', 'into', into, { float: true });
  sameDevice('add', { a, b, into });
  sameFloatDType('add', { a, b, into });
  sameShape('add', a, 'a', b, 'b');
  if (into) sameShape('add', a, 'a', into, 'into');
  const o = into ?? out(a.shape, a);
  engineOf(a).add(a.buffer, b.buffer, o.buffer);
  return o;
}

/** Fills t with value, in place. */
export function fill(t: Tensor, value: number): Tensor {
  checkTensor('fill', 't', t);
  engineOf(t).fill(t.buffer, finite('fill', 'value', value));
  return t;
}

function channelsAndPlane(x: Tensor): [number, number, number] {
  const n = x.shape[0]!, c = x.shape[1]!;
  return [n, c, x.size / (n * c)];
}

/** y[:, j, ...] += bias[j], in place (y is [n, c, ...]). */
export function biasAdd(y: Tensor, bias: Tensor): Tensor {
  const op = 'biasAdd';
  checkTensor(op, 'y', y, { float: true });
  checkTensor(op, 'bias', bias, { rank: 1, float: true });
  if (y.rank < 2) fail(op, `expected y of rank >= 2 but received shape ${shapeStr(y.shape)}`);
  sameDevice(op, { y, bias });
  sameFloatDType(op, { y, bias });
  const [n, c, hw] = channelsAndPlane(y);
  if (bias.shape[0] !== c) fail(op, `bias has ${bias.shape[0]} elements but y has ${c} channels`);
  engineOf(y).biasAdd(y.buffer, bias.buffer, n, c, hw);
  return y;
}

/** The bias gradient: sum of dy over all but the channel axis; accumulates into `into` when given and accumulate. */
export function biasGrad(dy: Tensor, into?: Tensor, accumulate = false): Tensor {
  const op = 'biasGrad';
  checkTensor(op, 'dy', dy, { float: true });
  if (dy.rank < 2) fail(op, `expected dy of rank >= 2 but received shape ${shapeStr(dy.shape)}`);
  const [n, c, hw] = channelsAndPlane(dy);
  if (into !== undefined) {
    checkTensor(op, 'into', into, { rank: 1, float: true });
    sameDevice(op, { dy, into });
    sameFloatDType(op, { dy, into });
    if (into.shape[0] !== c) fail(op, `into has ${into.shape[0]} elements but dy has ${c} channels`);
  }
  const db = into ?? out([c], dy);
  engineOf(dy).biasGrad(dy.buffer, db.buffer, n, c, hw, into && accumulate ? 1 : 0);
  return db;
}

// ---- convolution ----

/** y = conv(x, w) + bias: x [n, c, h, w], w [k, c/groups, r, s], bias [k] or null. */
export function conv2d(x: Tensor, w: Tensor, bias: Tensor | null, opts: Conv2dOptions = {}): Tensor {
  const op = 'conv2d';
  checkTensor(op, 'x', x, { rank: 4, float: true });
  checkTensor(op, 'w', w, { rank: 4, float: true });
  if (bias !== null) checkTensor(op, 'bias', bias, { rank: 1, float: true });
  sameDevice(op, { x, w, bias });
  sameFloatDType(op, { x, w, bias });
  const g = convGeometry(x.shape, w.shape, opts, op);
  if (bias && bias.shape[0] !== g.k) fail(op, `bias has ${bias.shape[0]} elements but w has ${g.k} kernels`);
  const y = out([g.n, g.k, g.outH, g.outW], x);
  engineOf(x).conv2dForward(x.buffer, w.buffer, bias?.buffer ?? null, y.buffer, g);
  return y;
}

/** dx for y = conv2d(x, w): dy [n, k, outH, outW] -> dx of xShape. */
export function conv2dBackwardData(dy: Tensor, w: Tensor, xShape: Shape, opts: Conv2dOptions = {}): Tensor {
  const op = 'conv2dBackwardData';
  checkTensor(op, 'dy', dy, { rank: 4, float: true });
  checkTensor(op, 'w', w, { rank: 4, float: true });
  sameDevice(op, { dy, w });
  sameFloatDType(op, { dy, w });
  const g = convGeometry(xShape, w.shape, opts, op);
  checkOutShape(op, dy, [g.n, g.k, g.outH, g.outW]);
  const dx = out(xShape, dy);
  engineOf(dy).conv2dBackwardData(dy.buffer, w.buffer, dx.buffer, g);
  return dx;
}

function checkOutShape(op: string, dy: Tensor, expected: number[]): void {
  if (dy.shape.some((d, i) => d !== expected[i])) fail(op, `expected dy of shape ${shapeStr(expected)} but received ${shapeStr(dy.shape)}`);
}

export interface FilterGradOutputs {
  /** Weight gradient to write (or add to, with accumulate). */
  dw?: Tensor;
  /** Bias gradient to write, or null for a convolution without bias. */
  db?: Tensor | null;
  /** Add to dw/db instead of overwriting them. */
  accumulate?: boolean;
}

/** dw (and db) for y = conv2d(x, w): returns the tensors written. */
export function conv2dBackwardFilter(x: Tensor, dy: Tensor, wShape: Shape, opts: Conv2dOptions = {},
  outputs: FilterGradOutputs = {}): { dw: Tensor; db: Tensor | null } {
  const op = 'conv2dBackwardFilter';
  checkTensor(op, 'x', x, { rank: 4, float: true });
  checkTensor(op, 'dy', dy, { rank: 4, float: true });
  const g = convGeometry(x.shape, wShape, opts, op);
  checkOutShape(op, dy, [g.n, g.k, g.outH, g.outW]);
  if (outputs.dw !== undefined) {
    checkTensor(op, 'dw', outputs.dw, { rank: 4, float: true });
    if (outputs.dw.shape.some((d, i) => d !== wShape[i])) fail(op, `expected dw of shape ${shapeStr(wShape)} but received ${shapeStr(outputs.dw.shape)}`);
  }
  if (outputs.db) {
    checkTensor(op, 'db', outputs.db, { rank: 1, float: true });
    if (outputs.db.shape[0] !== g.k) fail(op, `db has ${outputs.db.shape[0]} elements but there are ${g.k} kernels`);
  }
  sameDevice(op, { x, dy, dw: outputs.dw, db: outputs.db });
  sameFloatDType(op, { x, dy, dw: outputs.dw, db: outputs.db });
  if (outputs.accumulate && (!outputs.dw || outputs.db === undefined)) fail(op, 'accumulate needs dw and db (null for no bias) to add to');
  const dw = outputs.dw ?? out(wShape, x);
  const db = outputs.db === null ? null : outputs.db ?? out([g.k], x);
  engineOf(x).conv2dBackwardFilter(x.buffer, dy.buffer, dw.buffer, db?.buffer ?? null, g, outputs.accumulate ? 1 : 0);
  return { dw, db };
}

// ---- activations ----

/** max(0, x) (§3.1), as a new tensor or in place. NaN propagates: relu(NaN) = NaN, as in PyTorch. */
export function relu(x: Tensor, opts: { inPlace?: boolean } = {}): Tensor {
  checkTensor('relu', 'x', x, { float: true });
  const y = opts.inPlace ? x : out(x.shape, x);
  engineOf(x).reluForward(x.buffer, y.buffer);
  return y;
}

/** dx = dy where y > 0 and 0 where y <= 0 (y is relu's output); where y is NaN dy passes, as in PyTorch. */
export function reluBackward(y: Tensor, dy: Tensor, opts: { inPlace?: boolean } = {}): Tensor {
  return activationBackward('reluBackward', y, dy, opts);
}

/** An activation's gradient from its output y (relu's, tanh's), as a new tensor or in place on dy. */
function activationBackward(op: 'reluBackward' | 'tanhBackward', y: Tensor, dy: Tensor, opts: { inPlace?: boolean }): Tensor {
  checkTensor(op, 'y', y, { float: true });
  checkTensor(op, 'dy', dy, { float: true });
  sameDevice(op, { y, dy });
  sameFloatDType(op, { y, dy });
  sameShape(op, y, 'y', dy, 'dy');
  const dx = opts.inPlace ? dy : out(dy.shape, dy);
  engineOf(y)[op](y.buffer, dy.buffer, dx.buffer);
  return dx;
}

/**
 * tanh(x), the saturating nonlinearity of §3.1 (Figure 1: ReLU against tanh), as a new tensor or in
 * place. Any shape. NaN propagates (tanh(NaN) = NaN, as in PyTorch); tanh(±Infinity) = ±1.
 */
export function tanh(x: Tensor, opts: { inPlace?: boolean } = {}): Tensor {
  checkTensor('tanh', 'x', x, { float: true });
  const y = opts.inPlace ? x : out(x.shape, x);
  engineOf(x).tanhForward(x.buffer, y.buffer);
  return y;
}

/** dx = dy (1 - y²), from tanh's output y (as reluBackward takes relu's), as a new tensor or in place on dy. */
export function tanhBackward(y: Tensor, dy: Tensor, opts: { inPlace?: boolean } = {}): Tensor {
  return activationBackward('tanhBackward', y, dy, opts);
}

// ---- local response normalisation (§3.3) ----

export interface LrnOptions {
  /** n, the number of adjacent channels summed (paper: 5). */
  size?: number;
  /** Paper: 1e-4. */
  alpha?: number;
  /** Paper: 0.75. */
  beta?: number;
  /** Paper: 2. */
  k?: number;
  /**
   * 'paper': alpha multiplies the sum of squares as written in §3.3.
   * 'pytorch' (also Caffe's): alpha is divided by size first, as torch.nn.LocalResponseNorm does.
   */
  convention?: 'paper' | 'pytorch';
}

/** The engine parameters for the options (paper defaults k = 2, n = 5, alpha = 1e-4, beta = 0.75). */
export function lrnParams(opts: LrnOptions = {}, op = 'localResponseNorm'): LrnParams {
  const size = posInt(op, 'size', opts.size ?? 5);
  const alpha = finite(op, 'alpha', opts.alpha ?? 1e-4), beta = finite(op, 'beta', opts.beta ?? 0.75), k = finite(op, 'k', opts.k ?? 2);
  const convention = opts.convention ?? 'paper';
  if (convention !== 'paper' && convention !== 'pytorch') fail(op, `expected convention 'paper' or 'pytorch' but received ${describe(convention)}`);
  if (k <= 0) fail(op, `expected k > 0 but received ${k}`);
  return { size, alpha: convention === 'pytorch' ? alpha / size : alpha, beta, k };
}

/** §3.3 local response normalisation across channels of x [n, c, ...]. */
export function localResponseNorm(x: Tensor, opts: LrnOptions = {}): Tensor {
  const op = 'localResponseNorm';
  checkTensor(op, 'x', x, { float: true });
  if (x.rank < 2) fail(op, `expected x of rank >= 2 but received shape ${shapeStr(x.shape)}`);
  const p = lrnParams(opts, op);
  const [n, c, hw] = channelsAndPlane(x);
  const y = out(x.shape, x);
  engineOf(x).lrnForward(x.buffer, y.buffer, p, n, c, hw);
  return y;
}

/** dx for y = localResponseNorm(x). */
export function localResponseNormBackward(x: Tensor, y: Tensor, dy: Tensor, opts: LrnOptions = {}): Tensor {
  const op = 'localResponseNormBackward';
  checkTensor(op, 'x', x, { float: true });
  checkTensor(op, 'y', y, { float: true });
  checkTensor(op, 'dy', dy, { float: true });
  if (x.rank < 2) fail(op, `expected x of rank >= 2 but received shape ${shapeStr(x.shape)}`);
  sameDevice(op, { x, y, dy });
  sameFloatDType(op, { x, y, dy });
  sameShape(op, x, 'x', y, 'y');
  sameShape(op, x, 'x', dy, 'dy');
  const p = lrnParams(opts, op);
  const [n, c, hw] = channelsAndPlane(x);
  const dx = out(x.shape, x);
  engineOf(x).lrnBackward(x.buffer, y.buffer, dy.buffer, dx.buffer, p, n, c, hw);
  return dx;
}

// ---- pooling (§3.4) ----

/**
 * Max-pool of x [n, c, h, w] (§3.4); argmax (int32) is what the backward pass needs. Ties go to the
 * first cell in row-major window order; a window holding NaN gives NaN, with the first NaN as argmax.
 */
export function maxPool2d(x: Tensor, opts: MaxPoolOptions): { y: Tensor; argmax: Tensor } {
  const op = 'maxPool2d';
  checkTensor(op, 'x', x, { rank: 4, float: true });
  const g = poolGeometry(x.shape, opts, op);
  const shape = [g.n, g.c, g.outH, g.outW];
  const y = out(shape, x), argmax = out(shape, x, 'int32');
  engineOf(x).maxPoolForward(x.buffer, y.buffer, argmax.buffer, g);
  return { y, argmax };
}

export function maxPool2dBackward(dy: Tensor, argmax: Tensor, xShape: Shape, opts: MaxPoolOptions): Tensor {
  const op = 'maxPool2dBackward';
  checkTensor(op, 'dy', dy, { rank: 4, float: true });
  checkTensor(op, 'argmax', argmax, { rank: 4, dtype: 'int32' });
  sameDevice(op, { dy, argmax });
  sameShape(op, dy, 'dy', argmax, 'argmax');
  const g = poolGeometry(xShape, opts, op);
  checkOutShape(op, dy, [g.n, g.c, g.outH, g.outW]);
  const dx = out(xShape, dy);
  engineOf(dy).maxPoolBackward(dy.buffer, argmax.buffer, dx.buffer, g);
  return dx;
}

// ---- dropout (§4.2) ----

export interface DropoutOptions {
  /** Probability of dropping a unit (paper: 0.5). */
  p: number;
  /** Generator stream and first index: the same pair regenerates the same mask in backward. */
  seed: number;
  offset?: number;
}

function dropoutArgs(op: string, opts: DropoutOptions): [number, number, number] {
  if (opts === null || typeof opts !== 'object') fail(op, `expected options { p, seed, offset? } but received ${describe(opts)}`);
  const p = finite(op, 'p', opts.p);
  if (p < 0 || p >= 1) fail(op, `expected p in [0, 1) but received ${p}`);
  checkSeed(opts.seed, `${op}: seed`);
  const offset = opts.offset ?? 0;
  checkSeed(offset, `${op}: offset`);
  return [p, opts.seed, offset];
}

/** The mask of (seed, offset) applied to x (forward) or dy (backward): the same op both ways. */
function dropoutOp(op: 'dropout' | 'dropoutBackward', name: string, x: Tensor, opts: DropoutOptions): Tensor {
  checkTensor(op, name, x, { float: true });
  const [p, seed, offset] = dropoutArgs(op, opts);
  const y = out(x.shape, x);
  const e = engineOf(x);
  (op === 'dropout' ? e.dropoutForward : e.dropoutBackward).call(e, x.buffer, y.buffer, p, seed, offset);
  return y;
}

/** Inverted dropout: kept units are scaled by 1/(1-p), so evaluation is the identity. */
export function dropout(x: Tensor, opts: DropoutOptions): Tensor {
  return dropoutOp('dropout', 'x', x, opts);
}

export function dropoutBackward(dy: Tensor, opts: DropoutOptions): Tensor {
  return dropoutOp('dropoutBackward', 'dy', dy, opts);
}

// ---- loss and metrics ----

function checkLogitsLabels(op: string, logits: Tensor, labels: Tensor): [number, number] {
  checkTensor(op, 'logits', logits, { rank: 2, float: true });
  checkTensor(op, 'labels', labels, { rank: 1, dtype: 'int32' });
  sameDevice(op, { logits, labels });
  if (labels.shape[0] !== logits.shape[0]) fail(op, `labels has ${labels.shape[0]} entries but logits has ${logits.shape[0]} rows`);
  return [logits.shape[0]!, logits.shape[1]!];
}

/**
 * Mean multinomial logistic loss of softmax(logits) (§3) and, with grad, its gradient
 * (softmax - onehot) / n in one pass. loss is a [1] tensor.
 */
export function softmaxCrossEntropy(logits: Tensor, labels: Tensor, opts: { grad?: boolean } = {}): { loss: Tensor; dlogits: Tensor | null } {
  const [n, c] = checkLogitsLabels('softmaxCrossEntropy', logits, labels);
  const loss = out([1], logits);
  const dlogits = opts.grad === false ? null : out(logits.shape, logits);
  engineOf(logits).softmaxCrossEntropy(logits.buffer, labels.buffer, loss.buffer, dlogits?.buffer ?? null, n, c);
  return { loss, dlogits };
}

export function softmax(x: Tensor): Tensor {
  checkTensor('softmax', 'x', x, { rank: 2, float: true });
  const y = out(x.shape, x);
  engineOf(x).softmax(x.buffer, y.buffer, x.shape[0]!, x.shape[1]!);
  return y;
}

/**
 * How many rows have their label among the k largest logits (a [1] int32 tensor): the top-1 and
 * top-5 counts of §6. Class j ranks above the label t when z[j] > z[t], or z[j] = z[t] and j < t:
 * ties go to the lower class index, as in a stable sort by descending score, so an all-equal row
 * counts only when t < k (never 100 % for a network whose outputs are all equal). A NaN anywhere in
 * a row makes that row wrong.
 */
export function topkCorrect(logits: Tensor, labels: Tensor, k: number): Tensor {
  const [n, c] = checkLogitsLabels('topkCorrect', logits, labels);
  posInt('topkCorrect', 'k', k);
  const o = out([1], logits, 'int32');
  engineOf(logits).topkCorrect(logits.buffer, labels.buffer, o.buffer, n, c, k);
  return o;
}

// ---- channel concat / split (the §3.2 cross-device exchange) ----

function planeOf(op: string, t: Tensor, name: string): [number, number, number] {
  if (t.rank < 2) fail(op, `expected ${name} of rank >= 2 but received shape ${shapeStr(t.shape)}`);
  return channelsAndPlane(t);
}

/** Concatenates tensors [n, c_i, ...] along the channel axis (all on one device). */
export function concatChannels(tensors: readonly Tensor[]): Tensor {
  const op = 'concatChannels';
  if (!Array.isArray(tensors) || tensors.length === 0) fail(op, `expected a non-empty array of tensors but received ${describe(tensors)}`);
  tensors.forEach((t, i) => checkTensor(op, `tensors[${i}]`, t));
  const first = tensors[0]!;
  sameDevice(op, Object.fromEntries(tensors.map((t, i) => [`tensors[${i}]`, t])));
  const [n, , hw] = planeOf(op, first, 'tensors[0]');
  let total = 0;
  tensors.forEach((t, i) => {
    const [tn, tc, thw] = planeOf(op, t, `tensors[${i}]`);
    if (tn !== n || thw !== hw || t.rank !== first.rank || t.shape.slice(2).some((d: number, j: number) => d !== first.shape[j + 2]) || t.dtype !== first.dtype) {
      fail(op, `tensors[${i}] (${t.dtype}, ${shapeStr(t.shape)}) does not match tensors[0] (${first.dtype}, ${shapeStr(first.shape)}) outside the channel axis`);
    }
    total += tc;
  });
  const y = out([n, total, ...first.shape.slice(2)], first);
  let off = 0;
  for (const t of tensors) {
    const tc = t.shape[1]!;
    engineOf(first).channelCopy(t.buffer, y.buffer, n, hw, tc, 0, total, off, tc);
    off += tc;
  }
  return y;
}

/** Splits x [n, c, ...] along channels into parts of the given channel counts. */
export function splitChannels(x: Tensor, sizes: readonly number[]): Tensor[] {
  const op = 'splitChannels';
  checkTensor(op, 'x', x);
  const [n, c, hw] = planeOf(op, x, 'x');
  if (!Array.isArray(sizes) || sizes.length === 0) fail(op, `expected a non-empty array of channel counts but received ${describe(sizes)}`);
  sizes.forEach((s, i) => posInt(op, `sizes[${i}]`, s));
  const sum = sizes.reduce((a, b) => a + b, 0);
  if (sum !== c) fail(op, `sizes add up to ${sum} but x has ${c} channels`);
  let off = 0;
  return sizes.map((s) => {
    const part = out([n, s, ...x.shape.slice(2)], x);
    engineOf(x).channelCopy(x.buffer, part.buffer, n, hw, c, off, s, 0, s);
    off += s;
    return part;
  });
}

/** dst[:, dstOffset + j] = src[:, srcOffset + j] for j < count, in place on dst (same device). */
export function channelCopy(src: Tensor, srcOffset: number, dst: Tensor, dstOffset: number, count: number): Tensor {
  const op = 'channelCopy';
  checkTensor(op, 'src', src);
  checkTensor(op, 'dst', dst);
  sameDevice(op, { src, dst });
  if (src.dtype !== dst.dtype) fail(op, `src is ${src.dtype} but dst is ${dst.dtype}`);
  const [n, c, hw] = planeOf(op, src, 'src');
  const [dn, dc, dhw] = planeOf(op, dst, 'dst');
  if (dn !== n || dhw !== hw) fail(op, `src ${shapeStr(src.shape)} and dst ${shapeStr(dst.shape)} differ outside the channel axis`);
  posInt(op, 'count', count);
  posInt(op, 'srcOffset', srcOffset, 0);
  posInt(op, 'dstOffset', dstOffset, 0);
  if (srcOffset + count > c) fail(op, `channels [${srcOffset}, ${srcOffset + count}) exceed src's ${c}`);
  if (dstOffset + count > dc) fail(op, `channels [${dstOffset}, ${dstOffset + count}) exceed dst's ${dc}`);
  engineOf(src).channelCopy(src.buffer, dst.buffer, n, hw, c, srcOffset, dc, dstOffset, count);
  return dst;
}

// ---- SGD (§5) ----

export interface SgdOptions {
  lr: number;
  momentum?: number;
  weightDecay?: number;
  /** 'paper' (default): v = m v - wd lr w - lr g; w += v. 'pytorch': v = m v + g + wd w; w -= lr v. */
  form?: SgdForm;
}

/** One fused pass over a parameter: updates w and its velocity v in place from gradient g. */
export function sgdUpdate(w: Tensor, g: Tensor, v: Tensor, opts: SgdOptions): void {
  const op = 'sgdUpdate';
  checkTensor(op, 'w', w, { float: true });
  checkTensor(op, 'g', g, { float: true });
  checkTensor(op, 'v', v, { float: true });
  sameDevice(op, { w, g, v });
  sameFloatDType(op, { w, g, v });
  sameShape(op, w, 'w', g, 'g');
  sameShape(op, w, 'w', v, 'v');
  if (opts === null || typeof opts !== 'object') fail(op, `expected options { lr, momentum?, weightDecay?, form? } but received ${describe(opts)}`);
  const form = opts.form ?? 'paper';
  if (form !== 'paper' && form !== 'pytorch') fail(op, `expected form 'paper' or 'pytorch' but received ${describe(form)}`);
  const lr = finite(op, 'lr', opts.lr), momentum = finite(op, 'momentum', opts.momentum ?? 0.9);
  const weightDecay = finite(op, 'weightDecay', opts.weightDecay ?? 0.0005);
  if (lr < 0) fail(op, `expected lr >= 0 but received ${lr}`);
  if (momentum < 0 || momentum >= 1) fail(op, `expected momentum in [0, 1) but received ${momentum}`);
  if (weightDecay < 0) fail(op, `expected weightDecay >= 0 but received ${weightDecay}`);
  engineOf(w).sgdUpdate(w.buffer, g.buffer, v.buffer, { lr, momentum, weightDecay, form });
}
