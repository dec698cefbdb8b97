/**
 * Convolution and pooling geometry, once: the output size of a window sliding over an input, and the
 * ConvGeometry / PoolGeometry that every engine takes (backend.ts), built from the shapes and the
 * options of conv2d and maxPool2d and checked. The ops (ops.ts), the conformance suite, the benchmarks
 * and the tests all build their geometries here; native/common/geometry.h checks them again.
 */
import type { ConvGeometry, PoolGeometry } from './backend.js';
import { describe } from './device.js';
import { fail, pair, posInt, shapeStr } from './check.js';

/** Outputs of a window sliding over `input` cells: floor((input + 2 pad - window) / stride) + 1. */
export function outputSize(input: number, window: number, stride = 1, pad = 0): number {
  return Math.floor((input + 2 * pad - window) / stride) + 1;
}

export interface Conv2dOptions {
  stride?: number | readonly [number, number];
  padding?: number | readonly [number, number];
  groups?: number;
}

/**
 * The geometry of conv2d(x, w, opts) for x [n, c, h, w] and w [k, c / groups, r, s], checked (errors
 * name `op`): groups divide c and k, w matches x's channels, the kernel fits the padded input.
 */
export function convGeometry(xShape: readonly number[], wShape: readonly number[], opts: Conv2dOptions = {},
  op = 'convGeometry'): ConvGeometry {
  if (xShape.length !== 4) fail(op, `expected x of rank 4 (NCHW) but received shape ${shapeStr(xShape)}`);
  if (wShape.length !== 4) fail(op, `expected w of rank 4 (OIHW) but received shape ${shapeStr(wShape)}`);
  const [n, c, h, w] = xShape as [number, number, number, number];
  const [k, cg, r, s] = wShape as [number, number, number, number];
  const groups = posInt(op, 'groups', opts.groups ?? 1);
  const [strideH, strideW] = pair(op, 'stride', opts.stride, 1, 1);
  const [padH, padW] = pair(op, 'padding', opts.padding, 0, 0);
  if (c % groups !== 0 || k % groups !== 0) fail(op, `groups = ${groups} must divide both the input channels (${c}) and the output channels (${k})`);
  if (cg !== c / groups) fail(op, `w has ${cg} input channels per kernel but x has ${c} channels in ${groups} group(s) (expected ${c / groups})`);
  if (h + 2 * padH < r || w + 2 * padW < s) fail(op, `kernel ${r}x${s} is larger than the padded input ${h + 2 * padH}x${w + 2 * padW}`);
  return {
    n, c, h, w, k, r, s, strideH, strideW, padH, padW, groups,
    outH: outputSize(h, r, strideH, padH), outW: outputSize(w, s, strideW, padW),
  };
}

export interface MaxPoolOptions {
  /** Window (paper: 3, "overlapping" since it exceeds the stride). */
  size: number | readonly [number, number];
  /** Paper: 2. Defaults to the window size. */
  stride?: number | readonly [number, number];
  padding?: number | readonly [number, number];
}

/** The geometry of maxPool2d(x, opts) for x [n, c, h, w], checked (errors name `op`). */
export function poolGeometry(xShape: readonly number[], opts: MaxPoolOptions, op = 'poolGeometry'): PoolGeometry {
  if (xShape.length !== 4) fail(op, `expected x of rank 4 (NCHW) but received shape ${shapeStr(xShape)}`);
  if (opts === null || typeof opts !== 'object') fail(op, `expected options { size, stride?, padding? } but received ${describe(opts)}`);
  const [n, c, h, w] = xShape as [number, number, number, number];
  const [kh, kw] = pair(op, 'size', opts.size, NaN, 1);
  const [strideH, strideW] = pair(op, 'stride', opts.stride ?? opts.size, 1, 1);
  const [padH, padW] = pair(op, 'padding', opts.padding, 0, 0);
  if (padH * 2 > kh || padW * 2 > kw) fail(op, `padding (${padH}, ${padW}) must be at most half the window (${kh}, ${kw})`);
  if (h + 2 * padH < kh || w + 2 * padW < kw) fail(op, `window ${kh}x${kw} is larger than the padded input ${h + 2 * padH}x${w + 2 * padW}`);
  return {
    n, c, h, w, kh, kw, strideH, strideW, padH, padW,
    outH: outputSize(h, kh, strideH, padH), outW: outputSize(w, kw, strideW, padW),
  };
}
