/**
 * The backend interface: what a device engine (reference, native CPU, CUDA, emulated CUDA) must do.
 *
 * Rules every engine follows (the conformance suite in src/conformance checks them):
 * - An engine is one device ("cpu:0", "cuda:1", ...) with one in-order queue. Every op below only
 *   enqueues work and returns at once; `read` resolves (and `readSync` returns) once all work queued
 *   before it has finished. The reference engine may run ops immediately: that is a valid queue.
 * - No op touches host memory of a device buffer; host data only enters through `write` and leaves
 *   through `read`/`readSync`.
 * - Buffers are contiguous, row-major. Activations are NCHW, convolution weights OIHW
 *   (O = output channels, I = input channels / groups), linear weights [out, in].
 * - Sizes are element counts, not bytes. Callers (src/ops.ts) validate shapes, dtypes and devices
 *   before calling; engines must still never crash on a bad call: a buffer too small for the sizes
 *   given is an Error thrown synchronously by the engine, naming the argument.
 * - `beta = 0` means the output is overwritten and never read (NaN in it must not leak through).
 * - Floating-point buffers are 'float32' on every engine; the reference engine also supports
 *   'float64' so gradients can be checked by finite differences without float32 rounding.
 */

export type DType = 'float32' | 'float64' | 'int32' | 'uint8';
export type FloatDType = 'float32' | 'float64';

export type TypedArray = Float32Array | Float64Array | Int32Array | Uint8Array;

export interface DataTypeMap {
  float32: Float32Array;
  float64: Float64Array;
  int32: Int32Array;
  uint8: Uint8Array;
}

export const BYTES_PER_ELEMENT: Record<DType, number> = { float32: 4, float64: 8, int32: 4, uint8: 1 };

/** An engine's memory for `length` elements of `dtype`. Opaque outside its engine. */
export interface DeviceBuffer {
  readonly dtype: DType;
  readonly length: number;
}

/** A point in an engine's queue that another engine (of the same backend) can wait for. */
export interface EngineEvent {
  readonly engine: Engine;
}

/**
 * 2-D convolution geometry. Input x [n, c, h, w]; weights [k, c / groups, r, s];
 * output y [n, k, outH, outW] with outH = floor((h + 2 padH - r) / strideH) + 1 (likewise outW).
 * Group g uses input channels [g c/G, (g+1) c/G) and produces output channels [g k/G, (g+1) k/G).
 */
export interface ConvGeometry {
  n: number; c: number; h: number; w: number;
  k: number; r: number; s: number;
  strideH: number; strideW: number;
  padH: number; padW: number;
  groups: number;
  outH: number; outW: number;
}

/**
 * Max-pool geometry. x [n, c, h, w] -> y [n, c, outH, outW], outH = floor((h + 2 padH - kh) / strideH) + 1.
 * Padding cells never win (they count as -Infinity).
 */
export interface PoolGeometry {
  n: number; c: number; h: number; w: number;
  kh: number; kw: number;
  strideH: number; strideW: number;
  padH: number; padW: number;
  outH: number; outW: number;
}

/**
 * Local response normalisation across channels (§3.3), for x [n, c, h, w]:
 *   scale[i] = k + alpha * sum_{j = max(0, i - floor(size/2))}^{min(c-1, i + floor(size/2))} x[j]^2
 *   y[i] = x[i] * scale[i]^-beta
 * `alpha` here is the per-term coefficient: the paper's alpha as is, or alpha / size for the
 * Caffe/PyTorch convention (ops.ts converts).
 */
export interface LrnParams {
  size: number;
  alpha: number;
  beta: number;
  k: number;
}

/** SGD update forms (§5). paper: v = m v - wd lr w - lr g; w += v.  pytorch: v = m v + g + wd w; w -= lr v. */
export type SgdForm = 'paper' | 'pytorch';

export interface SgdParams {
  lr: number;
  momentum: number;
  weightDecay: number;
  form: SgdForm;
}

export interface Engine {
  /** Backend name, e.g. 'reference', 'cpu', 'cuda'. */
  readonly backend: string;
  /** Device index within the backend. */
  readonly index: number;

  // ---- memory and queue ----
  alloc(dtype: DType, length: number): DeviceBuffer;
  /** Releases the buffer once every op queued so far that uses it has finished. Idempotent. */
  free(buf: DeviceBuffer): void;
  /** Copies `data` (copied before returning; it may be a view of a SharedArrayBuffer) into buf[offset, offset + data.length). */
  write(buf: DeviceBuffer, data: TypedArray, offset?: number): void;
  read(buf: DeviceBuffer, offset?: number, length?: number): Promise<TypedArray>;
  readSync(buf: DeviceBuffer, offset?: number, length?: number): TypedArray;
  /** Resolves when everything queued so far has finished. */
  synchronize(): Promise<void>;
  synchronizeSync(): void;
  recordEvent(): EngineEvent;
  /** Later ops on this engine wait until `event` (of any engine of this backend) has been reached. */
  waitEvent(event: EngineEvent): void;
  /** Worker threads this engine's ops may use (CPU engines); others ignore it. */
  setThreads(threads: number): void;
  getThreads(): number;

  // ---- data movement ----
  fill(buf: DeviceBuffer, value: number): void;
  /**
   * Counter-based random numbers (Philox4x32-10, see src/philox.ts): element i gets the draw for
   * global index offset + i of stream `seed`. 'uniform': a + (b - a) u, u in [0, 1).
   * 'normal': mean a, standard deviation b.
   */
  random(buf: DeviceBuffer, dist: 'uniform' | 'normal', seed: number, offset: number, a: number, b: number): void;
  /** dst[dstOffset + i] = src[srcOffset + i] for i < length; same dtype; same engine. */
  copy(src: DeviceBuffer, srcOffset: number, dst: DeviceBuffer, dstOffset: number, length: number): void;
  /**
   * Copies src (on this engine) into dst on `peer` (same backend), queued on this engine. The caller
   * orders it with events (src waits for peer before, peer waits for src after).
   */
  copyToPeer(src: DeviceBuffer, peer: Engine, dst: DeviceBuffer, length: number): void;
  /**
   * For each sample i < n and channel j < count:
   *   dst[i, dstOffset + j, :] = src[i, srcOffset + j, :]   (planes of `hw` elements)
   * src has srcC channels per sample, dst has dstC. Concat and split along channels are this.
   */
  channelCopy(src: DeviceBuffer, dst: DeviceBuffer, n: number, hw: number,
    srcC: number, srcOffset: number, dstC: number, dstOffset: number, count: number): void;

  // ---- dense algebra ----
  /**
   * C[m, n] = alpha op(A) op(B) + beta C, row-major. op(A) is m x k: A is stored [m, k], or [k, m]
   * when transA. op(B) is k x n: B is stored [k, n], or [n, k] when transB.
   */
  gemm(transA: boolean, transB: boolean, m: number, n: number, k: number,
    alpha: number, a: DeviceBuffer, b: DeviceBuffer, beta: number, c: DeviceBuffer): void;
  /** y += alpha x (same length). */
  axpy(alpha: number, x: DeviceBuffer, y: DeviceBuffer): void;
  /** x *= alpha. */
  scale(alpha: number, x: DeviceBuffer): void;
  /** out = a + b (same length; out may alias a or b). */
  add(a: DeviceBuffer, b: DeviceBuffer, out: DeviceBuffer): void;
  /** y[i, j, :] += bias[j] for y [n, c, hw]. */
  biasAdd(y: DeviceBuffer, bias: DeviceBuffer, n: number, c: number, hw: number): void;
  /** db[j] = beta db[j] + sum_{i, p} dy[i, j, p] for dy [n, c, hw]. */
  biasGrad(dy: DeviceBuffer, db: DeviceBuffer, n: number, c: number, hw: number, beta: number): void;

  // ---- convolution (§3.1, §3.2: groups = 2 is "same GPU only") ----
  /** y = conv(x, w) + bias (bias may be null). */
  conv2dForward(x: DeviceBuffer, w: DeviceBuffer, bias: DeviceBuffer | null, y: DeviceBuffer, g: ConvGeometry): void;
  /** dx = grad of the loss wrt x (overwritten). */
  conv2dBackwardData(dy: DeviceBuffer, w: DeviceBuffer, dx: DeviceBuffer, g: ConvGeometry): void;
  /** dw = beta dw + grad wrt w; db = beta db + grad wrt bias (db may be null). beta is 0 or 1. */
  conv2dBackwardFilter(x: DeviceBuffer, dy: DeviceBuffer, dw: DeviceBuffer, db: DeviceBuffer | null,
    g: ConvGeometry, beta: number): void;

  // ---- activations ----
  /** y = max(0, x); y may alias x. NaN propagates, as in PyTorch: relu(NaN) = NaN. */
  reluForward(x: DeviceBuffer, y: DeviceBuffer): void;
  /**
   * dx = 0 where y <= 0, else dy (uses the forward output y); dx may alias dy. Where y is NaN the
   * gradient passes (PyTorch's threshold_backward), so a NaN is never masked into a zero gradient.
   */
  reluBackward(y: DeviceBuffer, dy: DeviceBuffer, dx: DeviceBuffer): void;
  /**
   * y = tanh(x), the saturating nonlinearity ReLU is compared with (§3.1, Figure 1); y may alias x.
   * NaN propagates (tanh(NaN) = NaN, as in PyTorch) and tanh(±Infinity) = ±1.
   */
  tanhForward(x: DeviceBuffer, y: DeviceBuffer): void;
  /** dx = dy (1 - y²) (uses the forward output y, like reluBackward); dx may alias dy. NaN in y or dy gives NaN. */
  tanhBackward(y: DeviceBuffer, dy: DeviceBuffer, dx: DeviceBuffer): void;

  // ---- local response normalisation (§3.3), one fused kernel each way ----
  lrnForward(x: DeviceBuffer, y: DeviceBuffer, p: LrnParams, n: number, c: number, hw: number): void;
  /**
   * dx[i] = dy[i] scale[i]^-beta - 2 alpha beta x[i] sum_{j: |j - i| <= size/2} dy[j] y[j] / scale[j]
   * (y is the forward output; scale is recomputed from x).
   */
  lrnBackward(x: DeviceBuffer, y: DeviceBuffer, dy: DeviceBuffer, dx: DeviceBuffer, p: LrnParams,
    n: number, c: number, hw: number): void;

  // ---- pooling (§3.4) ----
  /**
   * y = max over each window; argmax (int32, same size as y) = index ih * w + iw of the winner
   * within its input plane; ties go to the first in row-major window order. NaN propagates (as in
   * PyTorch): a window holding NaN outputs NaN, and its argmax is the first NaN in that order.
   */
  maxPoolForward(x: DeviceBuffer, y: DeviceBuffer, argmax: DeviceBuffer, g: PoolGeometry): void;
  /** dx = 0, then dx[plane, argmax] += dy for every output (overlapping windows add up). */
  maxPoolBackward(dy: DeviceBuffer, argmax: DeviceBuffer, dx: DeviceBuffer, g: PoolGeometry): void;

  // ---- dropout (§4.2), inverted: the mask is regenerated from (seed, offset), never stored ----
  /** u = uniform draw at global index offset + i; y[i] = u >= p ? x[i] / (1 - p) : 0. */
  dropoutForward(x: DeviceBuffer, y: DeviceBuffer, p: number, seed: number, offset: number): void;
  dropoutBackward(dy: DeviceBuffer, dx: DeviceBuffer, p: number, seed: number, offset: number): void;

  // ---- loss and metrics ----
  /**
   * logits [n, c], labels int32 [n]. loss[0] = mean_i -log softmax(logits_i)[label_i];
   * dlogits = (softmax - onehot) / n when not null. A label outside [0, c) makes loss NaN and its
   * gradient row NaN (labels are validated on the host before they are written). A NaN logit makes
   * its row's gradient NaN, and so the loss.
   */
  softmaxCrossEntropy(logits: DeviceBuffer, labels: DeviceBuffer, loss: DeviceBuffer,
    dlogits: DeviceBuffer | null, n: number, c: number): void;
  /** y = softmax(x) along rows of [n, c]; y may alias x. A row holding NaN is NaN throughout. */
  softmax(x: DeviceBuffer, y: DeviceBuffer, n: number, c: number): void;
  /**
   * out[0] (int32) = number of rows i of logits [n, c] whose label t = labels[i] is in the top k:
   *   #{j : z[j] > z[t], or z[j] = z[t] and j < t} < k      (z = logits[i, :])
   * i.e. its rank in a stable sort by descending score (ties go to the lower class index, so an
   * all-equal row counts only when t < k). A NaN anywhere in the row, or t outside [0, c), makes
   * the row wrong.
   */
  topkCorrect(logits: DeviceBuffer, labels: DeviceBuffer, out: DeviceBuffer, n: number, c: number, k: number): void;

  // ---- optimizer (§5), one fused pass over a parameter ----
  sgdUpdate(w: DeviceBuffer, g: DeviceBuffer, v: DeviceBuffer, p: SgdParams): void;

  /** Releases everything this engine holds (threads, memory). */
  destroy(): void;
}

/** A backend makes engines for its devices. */
export interface Backend {
  readonly name: string;
  /**
   * Whether its engines compute on host threads, off the JavaScript thread (the native CPU engine, the
   * CUDA emulation): devices of such backends share the machine's cores, which device.ts divides
   * among them. Others (the reference engine, on the JavaScript thread; a GPU) get one thread each.
   */
  readonly hostThreaded?: boolean;
  /** Whether this backend can run here, and if not, why (e.g. "built without CUDA", "no driver"). */
  availability(): { available: boolean; reason?: string };
  /** Devices this backend offers (for CPU engines: any number of logical devices). */
  deviceCount(): number;
  createEngine(index: number): Engine;
}
