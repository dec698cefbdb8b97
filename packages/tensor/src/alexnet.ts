/**
 * The paper's layer shapes (§3, Figure 2) as the engines see them: the conv, LRN, pool and fully
 * connected layers of the net with both towers on one device (groups = 2 where a layer reads only its
 * own tower's maps), for a batch and an input side. The conformance suite and both benchmarks take
 * their AlexNet cases from here.
 *
 * This is data, not derived from @alexnet/layers' description (paperDescription, inferShapes): that
 * package sits above this one, which must not depend on it. Instead @alexnet/layers'
 * src/alexnet-shapes.test.ts checks that these shapes are exactly inferShapes(paperDescription()).
 */
import type { ConvGeometry, LrnParams, PoolGeometry } from './backend.js';
import { convGeometry, poolGeometry } from './geometry.js';

/** conv1 unpadded on 227 x 227 (Caffe's crop, at which the paper's sizes work out). */
export const ALEXNET_INPUT = { channels: 3, size: 227 } as const;

/** §3.3's normalisation: n = 5, alpha = 1e-4 (per term, the paper's convention), beta = 0.75, k = 2. */
export const PAPER_LRN: LrnParams = { size: 5, alpha: 1e-4, beta: 0.75, k: 2 };

type Spec =
  | { kind: 'conv'; name: string; out: number; kernel: number; stride: number; padding: number; groups: number }
  | { kind: 'lrn'; name: string }
  | { kind: 'pool'; name: string; size: number; stride: number }
  | { kind: 'fc'; name: string; out: number };

/** The layers in order (ReLU and dropout keep shapes and are left out). */
const LAYERS: readonly Spec[] = [
  { kind: 'conv', name: 'conv1', out: 96, kernel: 11, stride: 4, padding: 0, groups: 1 },
  { kind: 'lrn', name: 'norm1' },
  { kind: 'pool', name: 'pool1', size: 3, stride: 2 },
  { kind: 'conv', name: 'conv2', out: 256, kernel: 5, stride: 1, padding: 2, groups: 2 },
  { kind: 'lrn', name: 'norm2' },
  { kind: 'pool', name: 'pool2', size: 3, stride: 2 },
  { kind: 'conv', name: 'conv3', out: 384, kernel: 3, stride: 1, padding: 1, groups: 1 },
  { kind: 'conv', name: 'conv4', out: 384, kernel: 3, stride: 1, padding: 1, groups: 2 },
  { kind: 'conv', name: 'conv5', out: 256, kernel: 3, stride: 1, padding: 1, groups: 2 },
  { kind: 'pool', name: 'pool5', size: 3, stride: 2 },
  { kind: 'fc', name: 'fc6', out: 4096 },
  { kind: 'fc', name: 'fc7', out: 4096 },
  { kind: 'fc', name: 'fc8', out: 1000 },
];

export interface AlexnetShapes {
  conv: { name: string; geometry: ConvGeometry }[];
  /** LRN over [n, c, hw] (all c channels of the layer; the towers' halves are [2 n, c / 2, hw]). */
  lrn: { name: string; n: number; c: number; hw: number; params: LrnParams }[];
  pool: { name: string; geometry: PoolGeometry }[];
  /** Fully connected: a GEMM of [n, in] by [out, in]^T. */
  fc: { name: string; in: number; out: number }[];
}

/** Every layer's shapes at batch `n` on inputs of `size` x `size` (the paper's 227, or smaller for tests). */
export function alexnetShapes(n = 1, size: number = ALEXNET_INPUT.size): AlexnetShapes {
  const out: AlexnetShapes = { conv: [], lrn: [], pool: [], fc: [] };
  let c: number = ALEXNET_INPUT.channels, h = size;
  let features = 0;
  for (const l of LAYERS) {
    if (l.kind === 'conv') {
      const g = convGeometry([n, c, h, h], [l.out, c / l.groups, l.kernel, l.kernel],
        { stride: l.stride, padding: l.padding, groups: l.groups }, `alexnetShapes(${n}, ${size}) ${l.name}`);
      out.conv.push({ name: l.name, geometry: g });
      [c, h] = [g.k, g.outH];
    } else if (l.kind === 'lrn') {
      out.lrn.push({ name: l.name, n, c, hw: h * h, params: PAPER_LRN });
    } else if (l.kind === 'pool') {
      const g = poolGeometry([n, c, h, h], { size: l.size, stride: l.stride }, `alexnetShapes(${n}, ${size}) ${l.name}`);
      out.pool.push({ name: l.name, geometry: g });
      [h, features] = [g.outH, c * g.outH * g.outW];
    } else {
      out.fc.push({ name: l.name, in: features, out: l.out });
      features = l.out;
    }
  }
  return out;
}

/** "conv2 [1,96,27,27] 256x5x5 s1 p2 g2": a geometry as a case label. */
export function describeConv(name: string, g: ConvGeometry): string {
  return `${name} [${g.n},${g.c},${g.h},${g.w}] ${g.k}x${g.r}x${g.s} s${g.strideH} p${g.padH} g${g.groups}`;
}

/** "pool1 [1,96,55,55] 3/2". */
export function describePool(name: string, g: PoolGeometry): string {
  return `${name} [${g.n},${g.c},${g.h},${g.w}] ${g.kh}/${g.strideH}${g.padH ? ` p${g.padH}` : ''}`;
}

