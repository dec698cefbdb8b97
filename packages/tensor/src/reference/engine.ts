/**
 * The reference engine: buffers are JavaScript typed arrays and every op runs at once on the
 * calling thread through the kernels in ./kernels.ts (a queue of length zero is still in order).
 * It is the oracle of the conformance suite and the only engine with float64 tensors, which the
 * finite-difference gradient checks use.
 */
import {
  BYTES_PER_ELEMENT, type Backend, type ConvGeometry, type DType, type DeviceBuffer, type Engine, type EngineEvent,
  type LrnParams, type PoolGeometry, type SgdParams, type TypedArray,
} from '../backend.js';
import * as K from './kernels.js';

class RefBuffer implements DeviceBuffer {
  constructor(readonly dtype: DType, readonly data: TypedArray) {}
  get length(): number { return this.data.length; }
  freed = false;
}

function makeArray(dtype: DType, length: number): TypedArray {
  switch (dtype) {
    case 'float32': return new Float32Array(length);
    case 'float64': return new Float64Array(length);
    case 'int32': return new Int32Array(length);
    case 'uint8': return new Uint8Array(length);
  }
}

export class ReferenceEngine implements Engine {
  readonly backend = 'reference';
  private threads = 1;
  constructor(readonly index: number) {}

  private buf(b: DeviceBuffer | null, name: string, op: string, need: number, kind: 'float' | 'int32' | 'any' = 'float'): TypedArray {
    if (!(b instanceof RefBuffer)) throw new TypeError(`${op}: ${name} is not a buffer of the reference engine`);
    if (b.freed) throw new Error(`${op}: ${name} was freed`);
    if (kind === 'float' && b.dtype !== 'float32' && b.dtype !== 'float64') throw new TypeError(`${op}: ${name} must be float32 or float64, got ${b.dtype}`);
    if (kind === 'int32' && b.dtype !== 'int32') throw new TypeError(`${op}: ${name} must be int32, got ${b.dtype}`);
    if (!Number.isFinite(need) || need < 0) throw new RangeError(`${op}: invalid size ${need} for ${name}`);
    if (b.length < need) throw new RangeError(`${op}: ${name} holds ${b.length} elements but ${need} are needed`);
    return b.data;
  }
  private f(b: DeviceBuffer | null, name: string, op: string, need: number): K.FloatArray {
    return this.buf(b, name, op, need, 'float') as K.FloatArray;
  }
  private i(b: DeviceBuffer, name: string, op: string, need: number): Int32Array {
    return this.buf(b, name, op, need, 'int32') as Int32Array;
  }

  alloc(dtype: DType, length: number): DeviceBuffer {
    if (!(dtype in BYTES_PER_ELEMENT)) throw new TypeError(`alloc: unknown dtype ${String(dtype)}`);
    if (!Number.isSafeInteger(length) || length < 0) throw new RangeError(`alloc: invalid length ${length}`);
    return new RefBuffer(dtype, makeArray(dtype, length));
  }
  free(buf: DeviceBuffer): void { if (buf instanceof RefBuffer) buf.freed = true; }
  write(buf: DeviceBuffer, data: TypedArray, offset = 0): void {
    const d = this.buf(buf, 'buf', 'write', offset + data.length, 'any');
    d.set(data as never, offset);
  }
  readSync(buf: DeviceBuffer, offset = 0, length?: number): TypedArray {
    const len = length ?? buf.length - offset;
    const d = this.buf(buf, 'buf', 'read', offset + len, 'any');
    return d.slice(offset, offset + len);
  }
  read(buf: DeviceBuffer, offset?: number, length?: number): Promise<TypedArray> {
    try { return Promise.resolve(this.readSync(buf, offset, length)); } catch (e) { return Promise.reject(e); }
  }
  synchronize(): Promise<void> { return Promise.resolve(); }
  synchronizeSync(): void {}
  recordEvent(): EngineEvent { return { engine: this }; }
  waitEvent(_event: EngineEvent): void {}
  setThreads(threads: number): void { this.threads = threads; }
  getThreads(): number { return this.threads; }
  destroy(): void {}

  fill(buf: DeviceBuffer, value: number): void { this.buf(buf, 'buf', 'fill', 0, 'any').fill(value); }
  random(buf: DeviceBuffer, dist: 'uniform' | 'normal', seed: number, offset: number, a: number, b: number): void {
    K.random(this.f(buf, 'buf', 'random', 0), dist, seed, offset, a, b);
  }
  copy(src: DeviceBuffer, srcOffset: number, dst: DeviceBuffer, dstOffset: number, length: number): void {
    const s = this.buf(src, 'src', 'copy', srcOffset + length, 'any');
    const d = this.buf(dst, 'dst', 'copy', dstOffset + length, 'any');
    if (src.dtype !== dst.dtype) throw new TypeError(`copy: src is ${src.dtype} but dst is ${dst.dtype}`);
    d.set(s.subarray(srcOffset, srcOffset + length) as never, dstOffset);
  }
  copyToPeer(src: DeviceBuffer, peer: Engine, dst: DeviceBuffer, length: number): void {
    if (!(peer instanceof ReferenceEngine)) throw new TypeError('copyToPeer: peer is not a reference engine');
    const s = this.buf(src, 'src', 'copyToPeer', length, 'any');
    const d = peer.buf(dst, 'dst', 'copyToPeer', length, 'any');
    d.set(s.subarray(0, length) as never, 0);
  }
  channelCopy(src: DeviceBuffer, dst: DeviceBuffer, n: number, hw: number, srcC: number, srcOffset: number,
    dstC: number, dstOffset: number, count: number): void {
    const s = this.buf(src, 'src', 'channelCopy', n * srcC * hw, 'any');
    const d = this.buf(dst, 'dst', 'channelCopy', n * dstC * hw, 'any');
    if (srcOffset + count > srcC || dstOffset + count > dstC) throw new RangeError('channelCopy: channel range out of bounds');
    K.channelCopy(s, d, n, hw, srcC, srcOffset, dstC, dstOffset, count);
  }

  gemm(transA: boolean, transB: boolean, m: number, n: number, k: number, alpha: number,
    a: DeviceBuffer, b: DeviceBuffer, beta: number, c: DeviceBuffer): void {
    K.gemm(transA, transB, m, n, k, alpha, this.f(a, 'a', 'gemm', m * k), this.f(b, 'b', 'gemm', k * n), beta,
      this.f(c, 'c', 'gemm', m * n));
  }
  axpy(alpha: number, x: DeviceBuffer, y: DeviceBuffer): void {
    const xd = this.f(x, 'x', 'axpy', 0), yd = this.f(y, 'y', 'axpy', x.length);
    for (let i = 0; i < xd.length; i++) yd[i] = yd[i]! + alpha * xd[i]!;
  }
  scale(alpha: number, x: DeviceBuffer): void {
    const xd = this.f(x, 'x', 'scale', 0);
    for (let i = 0; i < xd.length; i++) xd[i] = alpha * xd[i]!;
  }
  add(a: DeviceBuffer, b: DeviceBuffer, out: DeviceBuffer): void {
    const ad = this.f(a, 'a', 'add', 0), bd = this.f(b, 'b', 'add', a.length), od = this.f(out, 'out', 'add', a.length);
    for (let i = 0; i < ad.length; i++) od[i] = ad[i]! + bd[i]!;
  }
  biasAdd(y: DeviceBuffer, bias: DeviceBuffer, n: number, c: number, hw: number): void {
    K.biasAdd(this.f(y, 'y', 'biasAdd', n * c * hw), this.f(bias, 'bias', 'biasAdd', c), n, c, hw);
  }
  biasGrad(dy: DeviceBuffer, db: DeviceBuffer, n: number, c: number, hw: number, beta: number): void {
    K.biasGrad(this.f(dy, 'dy', 'biasGrad', n * c * hw), this.f(db, 'db', 'biasGrad', c), n, c, hw, beta);
  }

  conv2dForward(x: DeviceBuffer, w: DeviceBuffer, bias: DeviceBuffer | null, y: DeviceBuffer, g: ConvGeometry): void {
    K.conv2dForward(this.f(x, 'x', 'conv2dForward', g.n * g.c * g.h * g.w),
      this.f(w, 'w', 'conv2dForward', g.k * (g.c / g.groups) * g.r * g.s),
      bias ? this.f(bias, 'bias', 'conv2dForward', g.k) : null,
      this.f(y, 'y', 'conv2dForward', g.n * g.k * g.outH * g.outW), g);
  }
  conv2dBackwardData(dy: DeviceBuffer, w: DeviceBuffer, dx: DeviceBuffer, g: ConvGeometry): void {
    K.conv2dBackwardData(this.f(dy, 'dy', 'conv2dBackwardData', g.n * g.k * g.outH * g.outW),
      this.f(w, 'w', 'conv2dBackwardData', g.k * (g.c / g.groups) * g.r * g.s),
      this.f(dx, 'dx', 'conv2dBackwardData', g.n * g.c * g.h * g.w), g);
  }
  conv2dBackwardFilter(x: DeviceBuffer, dy: DeviceBuffer, dw: DeviceBuffer, db: DeviceBuffer | null, g: ConvGeometry, beta: number): void {
    K.conv2dBackwardFilter(this.f(x, 'x', 'conv2dBackwardFilter', g.n * g.c * g.h * g.w),
      this.f(dy, 'dy', 'conv2dBackwardFilter', g.n * g.k * g.outH * g.outW),
      this.f(dw, 'dw', 'conv2dBackwardFilter', g.k * (g.c / g.groups) * g.r * g.s),
      db ? this.f(db, 'db', 'conv2dBackwardFilter', g.k) : null, g, beta);
  }
  reluForward(x: DeviceBuffer, y: DeviceBuffer): void {
    K.reluForward(this.f(x, 'x', 'reluForward', 0), this.f(y, 'y', 'reluForward', x.length));
  }
  reluBackward(y: DeviceBuffer, dy: DeviceBuffer, dx: DeviceBuffer): void {
    K.reluBackward(this.f(y, 'y', 'reluBackward', 0), this.f(dy, 'dy', 'reluBackward', y.length), this.f(dx, 'dx', 'reluBackward', y.length));
  }
  tanhForward(x: DeviceBuffer, y: DeviceBuffer): void {
    K.tanhForward(this.f(x, 'x', 'tanhForward', 0), this.f(y, 'y', 'tanhForward', x.length));
  }
  tanhBackward(y: DeviceBuffer, dy: DeviceBuffer, dx: DeviceBuffer): void {
    K.tanhBackward(this.f(y, 'y', 'tanhBackward', 0), this.f(dy, 'dy', 'tanhBackward', y.length), this.f(dx, 'dx', 'tanhBackward', y.length));
  }
  lrnForward(x: DeviceBuffer, y: DeviceBuffer, p: LrnParams, n: number, c: number, hw: number): void {
    K.lrnForward(this.f(x, 'x', 'lrnForward', n * c * hw), this.f(y, 'y', 'lrnForward', n * c * hw), p, n, c, hw);
  }
  lrnBackward(x: DeviceBuffer, y: DeviceBuffer, dy: DeviceBuffer, dx: DeviceBuffer, p: LrnParams, n: number, c: number, hw: number): void {
    const need = n * c * hw;
    K.lrnBackward(this.f(x, 'x', 'lrnBackward', need), this.f(y, 'y', 'lrnBackward', need),
      this.f(dy, 'dy', 'lrnBackward', need), this.f(dx, 'dx', 'lrnBackward', need), p, n, c, hw);
  }
  maxPoolForward(x: DeviceBuffer, y: DeviceBuffer, argmax: DeviceBuffer, g: PoolGeometry): void {
    const out = g.n * g.c * g.outH * g.outW;
    K.maxPoolForward(this.f(x, 'x', 'maxPoolForward', g.n * g.c * g.h * g.w), this.f(y, 'y', 'maxPoolForward', out),
      this.i(argmax, 'argmax', 'maxPoolForward', out), g);
  }
  maxPoolBackward(dy: DeviceBuffer, argmax: DeviceBuffer, dx: DeviceBuffer, g: PoolGeometry): void {
    const out = g.n * g.c * g.outH * g.outW;
    K.maxPoolBackward(this.f(dy, 'dy', 'maxPoolBackward', out), this.i(argmax, 'argmax', 'maxPoolBackward', out),
      this.f(dx, 'dx', 'maxPoolBackward', g.n * g.c * g.h * g.w), g);
  }
  dropoutForward(x: DeviceBuffer, y: DeviceBuffer, p: number, seed: number, offset: number): void {
    K.dropoutForward(this.f(x, 'x', 'dropoutForward', 0), this.f(y, 'y', 'dropoutForward', x.length), p, seed, offset);
  }
  dropoutBackward(dy: DeviceBuffer, dx: DeviceBuffer, p: number, seed: number, offset: number): void {
    K.dropoutBackward(this.f(dy, 'dy', 'dropoutBackward', 0), this.f(dx, 'dx', 'dropoutBackward', dy.length), p, seed, offset);
  }
  softmaxCrossEntropy(logits: DeviceBuffer, labels: DeviceBuffer, loss: DeviceBuffer, dlogits: DeviceBuffer | null, n: number, c: number): void {
    K.softmaxCrossEntropy(this.f(logits, 'logits', 'softmaxCrossEntropy', n * c), this.i(labels, 'labels', 'softmaxCrossEntropy', n),
      this.f(loss, 'loss', 'softmaxCrossEntropy', 1), dlogits ? this.f(dlogits, 'dlogits', 'softmaxCrossEntropy', n * c) : null, n, c);
  }
  softmax(x: DeviceBuffer, y: DeviceBuffer, n: number, c: number): void {
    K.softmax(this.f(x, 'x', 'softmax', n * c), this.f(y, 'y', 'softmax', n * c), n, c);
  }
  topkCorrect(logits: DeviceBuffer, labels: DeviceBuffer, out: DeviceBuffer, n: number, c: number, k: number): void {
    K.topkCorrect(this.f(logits, 'logits', 'topkCorrect', n * c), this.i(labels, 'labels', 'topkCorrect', n),
      this.i(out, 'out', 'topkCorrect', 1), n, c, k);
  }
  sgdUpdate(w: DeviceBuffer, g: DeviceBuffer, v: DeviceBuffer, p: SgdParams): void {
    K.sgdUpdate(this.f(w, 'w', 'sgdUpdate', 0), this.f(g, 'g', 'sgdUpdate', w.length), this.f(v, 'v', 'sgdUpdate', w.length), p);
  }
}

export const referenceBackend: Backend = {
  name: 'reference',
  availability: () => ({ available: true }),
  deviceCount: () => 64,
  createEngine: (index: number) => new ReferenceEngine(index),
};
