/**
 * ONNX export (opset 13, IR version 7) of the models @alexnet/layers describes, written with the small
 * protobuf writer beside this file: inference only (dropout is the identity there, §4.2), input
 * "input" [batch, 3, size, size] with a symbolic batch dimension, output "logits" [batch, classes].
 *
 * The paper's two-tower net (§3.2) has two forms:
 * - 'grouped' (default; what one device runs): conv2, conv4 and conv5 are Conv with group = 2 (each
 *   tower's kernels see only their tower's maps), and each LRN that normalises within a tower is
 *   Split -> LRN per half -> Concat (the paper's towers normalise their own 48 / 128 maps, §3.3);
 * - 'towers': the two towers as two branches of the graph, each with its half of every layer's
 *   kernels and neurons, joined by Concat exactly where the paper's GPUs exchange maps (the inputs of
 *   conv3, fc6, fc7, fc8, and the logits).
 * Both compute the same logits as @alexnet/layers' forward pass, on either placement.
 *
 * LRN: ONNX computes b = a / (bias + alpha / size * sum a^2)^beta. The paper's §3.3 has no division
 * by the size (k + alpha * sum), so a 'paper'-convention layer is written with alpha * size; a
 * 'pytorch'-convention layer already holds the divided form and is written as it is.
 */
import { open, rename, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { AdaptiveAvgPool2d, inferShapes, type LayerShape, type ModelDescription } from '@alexnet/layers';
import { tensor, type HostTensor } from '@alexnet/tensor';
import { InteropError } from './errors.js';
import { resolveSource, type ModelSource, type ResolvedSource } from './model.js';
import { Message } from './protobuf.js';

export const ONNX_OPSET = 13;
const IR_VERSION = 7;
const FLOAT = 1, INT64 = 7;
const ATTR = { FLOAT: 1, INT: 2, INTS: 7 } as const;

export interface OnnxExportOptions {
  /** For the two-tower paper net: 'grouped' (default) or 'towers' (two branches, §3.2). One-tower nets have one form. */
  form?: 'grouped' | 'towers';
  /** How errors name the weights' origin, e.g. 'checkpoint run/checkpoint.safetensors' (default 'the checkpoint'). */
  from?: string;
  /**
   * How LRN (§3.3) is written. 'conv' (default): the window sum of squares as a 1x1 convolution with a
   * fixed banded (block-diagonal within towers) matrix, then the power, in plain operators
   * (`Mul -> Conv -> Sqrt, Sqrt, Mul -> Div`, for beta 0.75; another beta takes the LRN operator): onnxruntime runs it
   * several times faster than its own LRN kernel. 'node': ONNX's LRN operator (within towers as
   * Split -> LRN, LRN -> Concat), the graph a reader expects.
   */
  lrn?: 'conv' | 'node';
}

export interface OnnxExportResult {
  file: string;
  bytes: number;
  form: 'grouped' | 'towers';
  nodes: number;
  parameters: number;
  input: { name: string; shape: (number | string)[] };
  output: { name: string; shape: (number | string)[] };
  summary: string;
}

function version(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return '0.0.0';
  }
}

type Attr = Message;
const attrInt = (name: string, v: number): Attr => new Message().string(1, name).int(20, ATTR.INT).int(3, v);
const attrInts = (name: string, v: number[]): Attr => new Message().string(1, name).int(20, ATTR.INTS).packedInts(8, v);
const attrFloat = (name: string, v: number): Attr => new Message().string(1, name).int(20, ATTR.FLOAT).float(2, v);

function valueInfo(name: string, dims: (number | string)[]): Message {
  const shape = new Message();
  for (const d of dims) shape.message(1, typeof d === 'number' ? new Message().int(1, d) : new Message().string(2, d));
  const tensorType = new Message().int(1, FLOAT).message(2, shape);
  return new Message().string(1, name).message(2, new Message().message(1, tensorType));
}

class Graph {
  readonly nodes: Message[] = [];
  readonly initializers: Message[] = [];
  parameters = 0;

  node(op: string, inputs: string[], outputs: string[], attrs: Attr[] = [], name = outputs[0]!): void {
    const m = new Message();
    for (const i of inputs) m.string(1, i);
    for (const o of outputs) m.string(2, o);
    m.string(3, name).string(4, op);
    for (const a of attrs) m.message(5, a);
    this.nodes.push(m);
  }

  floats(name: string, dims: number[], data: Float32Array, count = true): string {
    const raw = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    this.initializers.push(new Message().packedInts(1, dims).int(2, FLOAT).string(8, name).bytes(9, raw));
    if (count) this.parameters += data.length;
    return name;
  }

  int64s(name: string, values: number[]): string {
    const data = BigInt64Array.from(values.map((v) => BigInt(v)));
    this.initializers.push(new Message().packedInts(1, [values.length]).int(2, INT64).string(8, name).bytes(9, new Uint8Array(data.buffer)));
    return name;
  }
}

function asFloat32(t: HostTensor): Float32Array {
  return t.data instanceof Float32Array ? t.data : Float32Array.from(t.data);
}

/** Rows [start, end) of dimension 0 for tower t (the split @alexnet/layers uses). */
function towerRange(count: number, t: number): [number, number] {
  return [Math.floor((t * count) / 2), Math.floor(((t + 1) * count) / 2)];
}

/**
 * The adaptive average pool of @alexnet/layers (PyTorch's bins) as one [h*w, oh*ow] matrix, read from
 * the layer itself: row i is its output for the image that is 1 at pixel i and 0 elsewhere.
 */
function adaptivePoolMatrix(h: number, w: number, out: number): Float32Array {
  const eye = new Float32Array(h * w * h * w);
  for (let i = 0; i < h * w; i++) eye[i * h * w + i] = 1;
  const x = tensor(eye, [h * w, 1, h, w], { device: 'reference:0' });
  const pool = new AdaptiveAvgPool2d({ outputSize: out });
  const y = pool.forward(x);
  const m = Float32Array.from(y.dataSync());
  for (const t of [x, y]) t.dispose();
  pool.dispose();
  return m;
}

/**
 * LRN's window sum as a 1x1 convolution: weight [C, C / groups, 1, 1] with scale at (i, j) when
 * channel j is within the window of channel i (|i - j| <= (size - 1) / 2, ONNX's and §3.3's
 * centred window) and in the same group, else 0; bias k. Initializers shared by the towers.
 */
function lrnBand(g: Graph, name: string, channels: number, groups: number, size: number, scale: number, k: number): { weight: string; bias: string } {
  const per = channels / groups, lo = Math.floor((size - 1) / 2), hi = Math.ceil((size - 1) / 2);
  const w = new Float32Array(channels * per);
  for (let i = 0; i < channels; i++) {
    const base = Math.floor(i / per) * per; // the group's first channel
    for (let j = Math.max(base, i - lo); j <= Math.min(base + per - 1, i + hi); j++) w[i * per + (j - base)] = scale;
  }
  return {
    weight: g.floats(`${name}.band`, [channels, per, 1, 1], w, false),
    bias: g.floats(`${name}.k`, [channels], new Float32Array(channels).fill(k), false),
  };
}

function buildGraph(r: ResolvedSource, form: 'grouped' | 'towers', lrnMode: 'conv' | 'node' = 'conv'): { graph: Graph; last: string } {
  const desc: ModelDescription = r.description;
  const T = desc.towers;
  const P = form === 'towers' ? 2 : 1;
  const g = new Graph();
  const rows: LayerShape[] = inferShapes(desc);
  let parts: string[] = P === 2 ? ['input', 'input'] : ['input'];
  let replicated = true; // before the first layer with weights, every tower holds the whole image
  for (const row of rows) {
    const spec = row.spec;
    const suffix = (t: number) => (P === 2 ? `.tower${t}` : '');
    switch (spec.kind) {
      case 'conv':
      case 'linear': {
        const w = r.weights.get(`${spec.name}.weight`)!, b = r.weights.get(`${spec.name}.bias`)!;
        const wData = asFloat32(w), bData = asFloat32(b);
        const own = spec.inputs === 'own' && T === 2 && !replicated;
        // The §3.2 exchange: a layer reading both towers' maps gets them concatenated, in tower order.
        let inputs = parts;
        if (P === 2 && !own && !replicated) {
          const joined = `${spec.name}.inputs`;
          g.node('Concat', parts, [joined], [attrInt('axis', 1)]);
          inputs = [joined, joined];
        }
        const rowSize = w.shape.slice(1).reduce((a, c) => a * c, 1);
        parts = inputs.map((input, t) => {
          const [o0, o1] = P === 2 ? towerRange(spec.out, t) : [0, spec.out];
          const W = g.floats(`${spec.name}.weight${suffix(t)}`, [o1 - o0, ...w.shape.slice(1)], wData.subarray(o0 * rowSize, o1 * rowSize));
          const B = g.floats(`${spec.name}.bias${suffix(t)}`, [o1 - o0], bData.subarray(o0, o1));
          const out = `${spec.name}${suffix(t)}`;
          if (spec.kind === 'conv') {
            g.node('Conv', [input, W, B], [out], [
              attrInts('kernel_shape', [spec.kernel, spec.kernel]), attrInts('strides', [spec.stride, spec.stride]),
              attrInts('pads', [spec.padding, spec.padding, spec.padding, spec.padding]), attrInt('group', P === 1 && own ? 2 : 1),
            ]);
          } else {
            g.node('Gemm', [input, W, B], [out], [attrInt('transB', 1)]);
          }
          return out;
        });
        replicated = false;
        break;
      }
      case 'relu':
        parts = parts.map((p, t) => { const out = `${spec.name}${suffix(t)}`; g.node('Relu', [p], [out]); return out; });
        break;
      case 'tanh': // activation 'tanh' (§3.1, Figure 1)
        parts = parts.map((p, t) => { const out = `${spec.name}${suffix(t)}`; g.node('Tanh', [p], [out]); return out; });
        break;
      case 'lrn': {
        // §3.3 with ONNX's alpha / size: the paper's alpha (no division) becomes alpha * size.
        const onnxAlpha = spec.convention === 'paper' ? spec.alpha * spec.size : spec.alpha;
        const attrs = () => [attrInt('size', spec.size), attrFloat('alpha', onnxAlpha), attrFloat('beta', spec.beta), attrFloat('bias', spec.k)];
        const withinTowers = T === 2 && spec.inputs !== 'all';
        if (spec.inputs === 'all' && P === 2) throw new InteropError(`${desc.name}: ${spec.name} normalises across both towers, which only the 'grouped' form can write`);
        const channels = (row.inShape as number[])[0]! / P;
        const groups = P === 1 && withinTowers ? 2 : 1;
        // the plain-operator form is for §3.3's beta = 0.75 (every model here); any other beta takes the LRN operator
        const band = lrnMode === 'conv' && spec.beta === 0.75 ? lrnBand(g, spec.name, channels, groups, spec.size, onnxAlpha / spec.size, spec.k) : undefined;
        parts = parts.map((p, t) => {
          const out = `${spec.name}${suffix(t)}`;
          if (band) {
            // k + alpha * sum over the window of a^2, in one 1x1 convolution; then a / that^beta
            g.node('Mul', [p, p], [`${out}.sq`]);
            g.node('Conv', [`${out}.sq`, band.weight, band.bias], [`${out}.den`], [attrInts('kernel_shape', [1, 1]), attrInt('group', groups)]);
            // d^0.75 = sqrt(d) * sqrt(sqrt(d)): two vectorised square roots in place of a power
            g.node('Sqrt', [`${out}.den`], [`${out}.r2`]);
            g.node('Sqrt', [`${out}.r2`], [`${out}.r4`]);
            g.node('Mul', [`${out}.r2`, `${out}.r4`], [`${out}.pow`]);
            g.node('Div', [p, `${out}.pow`], [out]);
          } else if (P === 1 && withinTowers) {
            const halves = [`${out}.in0`, `${out}.in1`];
            g.node('Split', [p], halves, [attrInt('axis', 1)], `${out}.split`);
            g.node('LRN', [halves[0]!], [`${out}.tower0`], attrs());
            g.node('LRN', [halves[1]!], [`${out}.tower1`], attrs());
            g.node('Concat', [`${out}.tower0`, `${out}.tower1`], [out], [attrInt('axis', 1)]);
          } else {
            g.node('LRN', [p], [out], attrs());
          }
          return out;
        });
        break;
      }
      case 'maxpool':
        parts = parts.map((p, t) => {
          const out = `${spec.name}${suffix(t)}`;
          g.node('MaxPool', [p], [out], [attrInts('kernel_shape', [spec.size, spec.size]), attrInts('strides', [spec.stride, spec.stride])]);
          return out;
        });
        break;
      case 'avgpool': {
        const [, h, w] = row.inShape as [number, number, number];
        if (h === spec.size && w === spec.size) break; // the identity at this input size
        const M = g.floats(`${spec.name}.matrix`, [h * w, spec.size * spec.size], adaptivePoolMatrix(h, w, spec.size), false);
        const flat = g.int64s(`${spec.name}.flat_shape`, [0, 0, -1]);
        const back = g.int64s(`${spec.name}.out_shape`, [0, 0, spec.size, spec.size]);
        parts = parts.map((p, t) => {
          const out = `${spec.name}${suffix(t)}`;
          g.node('Reshape', [p, flat], [`${out}.flat`]);
          g.node('MatMul', [`${out}.flat`, M], [`${out}.pooled`]);
          g.node('Reshape', [`${out}.pooled`, back], [out]);
          return out;
        });
        break;
      }
      case 'flatten':
        parts = parts.map((p, t) => { const out = `${spec.name}${suffix(t)}`; g.node('Flatten', [p], [out], [attrInt('axis', 1)]); return out; });
        break;
      case 'dropout':
        break; // the identity at inference: @alexnet/layers' dropout is inverted (§4.2's test-time 0.5 is applied while training)
    }
  }
  if (parts.length === 2) {
    g.node('Concat', parts, ['logits'], [attrInt('axis', 1)]);
  } else {
    g.node('Identity', parts, ['logits']);
  }
  return { graph: g, last: 'logits' };
}

/** The ONNX model as protobuf chunks (a view of the weights, no copy of them). */
export function encodeOnnx(source: ModelSource, opts: OnnxExportOptions = {}): { model: Message; form: 'grouped' | 'towers'; nodes: number; parameters: number; input: (number | string)[]; output: (number | string)[] } {
  const r = resolveSource(source, opts.from ?? 'the checkpoint');
  const desc = r.description;
  const form = opts.form ?? 'grouped';
  if (form !== 'grouped' && form !== 'towers') throw new InteropError(`Expected form 'grouped' or 'towers' but received ${String(form)}`);
  if (form === 'towers' && desc.towers !== 2) throw new InteropError(`the 'towers' form is for the two-tower paper net (§3.2); ${desc.name} has one tower`);
  const lrn = opts.lrn ?? 'conv';
  if (lrn !== 'conv' && lrn !== 'node') throw new InteropError(`Expected lrn 'conv' or 'node' but received ${String(lrn)}`);
  const { graph } = buildGraph(r, form, lrn);
  const size = desc.input.size, classes = r.config.classes;
  const input = ['batch', desc.input.channels, size, size], output = ['batch', classes];
  const g = new Message();
  for (const n of graph.nodes) g.message(1, n);
  g.string(2, `alexnet-${desc.name}`);
  for (const i of graph.initializers) g.message(5, i);
  g.string(10, `AlexNet (Krizhevsky, Sutskever, Hinton 2012), ${desc.name} model, ${form} form; input ${desc.input.channels}x${size}x${size}, ${classes} classes`);
  g.message(11, valueInfo('input', input));
  g.message(12, valueInfo('logits', output));
  const meta: Record<string, string> = {
    'alexnet.model': JSON.stringify(r.config),
    'alexnet.form': form,
    'alexnet.input_size': String(size),
  };
  if (r.classes) meta['alexnet.classes'] = JSON.stringify(r.classes.map((c) => [c.wnid, c.name]));
  if (r.preprocessing) meta['alexnet.preprocessing'] = JSON.stringify(r.preprocessing);
  const model = new Message()
    .int(1, IR_VERSION)
    .string(2, '@alexnet/interop')
    .string(3, version())
    .string(6, `AlexNet ${desc.name} (§3), exported by @alexnet/interop`)
    .message(7, g)
    .message(8, new Message().string(1, '').int(2, ONNX_OPSET));
  for (const [key, value] of Object.entries(meta)) model.message(14, new Message().string(1, key).string(2, value));
  return { model: model.finish(), form, nodes: graph.nodes.length, parameters: graph.parameters, input, output };
}

/** Writes chunks to `path` atomically (a temporary file beside it, fsync, rename). */
export async function writeChunksAtomic(path: string, chunks: readonly Uint8Array[]): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  let fh;
  try {
    fh = await open(tmp, 'w');
  } catch (e) {
    throw new InteropError(`cannot write ${path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, path);
  }
  try {
    for (const c of chunks) for (let off = 0; off < c.length;) off += (await fh.write(c, off, c.length - off)).bytesWritten;
    await fh.sync();
    await fh.close();
    await rename(tmp, path);
  } catch (e) {
    await fh.close().catch(() => undefined);
    await rm(tmp, { force: true });
    throw new InteropError(`cannot write ${path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, path);
  }
}

/**
 * Exports a model (a checkpoint as loadCheckpoint returns it, or { model, weights }) to an ONNX file
 * that onnxruntime and other ONNX runtimes run.
 */
export async function exportOnnx(source: ModelSource, out: string, opts: OnnxExportOptions = {}): Promise<OnnxExportResult> {
  const e = encodeOnnx(source, opts);
  await writeChunksAtomic(out, e.model.chunks);
  const cfg = 'meta' in source ? source.meta.model : source.model;
  return {
    file: out, bytes: e.model.length, form: e.form, nodes: e.nodes, parameters: e.parameters,
    input: { name: 'input', shape: e.input }, output: { name: 'logits', shape: e.output },
    summary: `${out}: ONNX opset ${ONNX_OPSET}, ${String(cfg.name)} model${e.form === 'towers' ? ' as two towers (§3.2)' : ''}, ` +
      `${e.parameters.toLocaleString('en-US')} parameters, input [${e.input.join(', ')}] -> logits [${e.output.join(', ')}], ${(e.model.length / 2 ** 20).toFixed(1)} MiB`,
  };
}
