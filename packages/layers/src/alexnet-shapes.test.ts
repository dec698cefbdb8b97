// @alexnet/tensor keeps the paper net's layer shapes as data (alexnetShapes: the AlexNet cases of its
// conformance suite and of both benchmarks), since it sits below this package and must not depend on
// it. This test is where the two meet: the table must be exactly what inferShapes(paperDescription())
// says, layer by layer, at the paper's 227 x 227 and at the smallest input the net takes.
import { describe, expect, it } from 'vitest';
import { alexnetShapes } from '@alexnet/tensor';
import { inferShapes, MIN_INPUT_SIZE, paperDescription, type LayerShape } from './models.js';

describe("@alexnet/tensor's AlexNet shapes are inferShapes(paperDescription())", () => {
  for (const size of [227, MIN_INPUT_SIZE]) {
    it(`at ${size} x ${size}`, () => {
      const desc = paperDescription({ inputSize: size });
      const rows = new Map(inferShapes(desc).map((r) => [r.spec.name, r]));
      const row = (name: string): LayerShape => {
        const r = rows.get(name);
        if (!r) throw new Error(`@alexnet/tensor names a layer ${name} that paperDescription() does not have`);
        return r;
      };
      const t = alexnetShapes(1, size);
      for (const { name, geometry: g } of t.conv) {
        const r = row(name), spec = r.spec as Extract<LayerShape['spec'], { kind: 'conv' }>;
        expect([g.c, g.h, g.w], name).toEqual(r.inShape);
        expect([g.k, g.outH, g.outW], name).toEqual(r.outShape);
        expect([g.k, g.c / g.groups, g.r, g.s], name).toEqual(r.params[0]!.shape);
        expect([g.strideH, g.strideW, g.padH, g.padW], name).toEqual([spec.stride, spec.stride, spec.padding, spec.padding]);
      }
      for (const l of t.lrn) {
        const r = row(l.name), spec = r.spec as Extract<LayerShape['spec'], { kind: 'lrn' }>;
        expect([l.c, l.hw], l.name).toEqual([r.inShape[0], r.inShape[1]! * r.inShape[2]!]);
        expect(l.params, l.name).toEqual({ size: spec.size, alpha: spec.alpha, beta: spec.beta, k: spec.k });
      }
      for (const { name, geometry: g } of t.pool) {
        const r = row(name), spec = r.spec as Extract<LayerShape['spec'], { kind: 'maxpool' }>;
        expect([g.c, g.h, g.w], name).toEqual(r.inShape);
        expect([g.c, g.outH, g.outW], name).toEqual(r.outShape);
        expect([g.kh, g.kw, g.strideH, g.strideW, g.padH, g.padW], name).toEqual([spec.size, spec.size, spec.stride, spec.stride, 0, 0]);
      }
      for (const f of t.fc) expect([f.out, f.in], f.name).toEqual(row(f.name).params[0]!.shape);
      // Every layer with a shape of its own is in the table, in the description's order.
      const shaped = desc.layers.filter((l) => ['conv', 'lrn', 'maxpool', 'linear'].includes(l.kind)).map((l) => l.name);
      const order = [...t.conv, ...t.lrn, ...t.pool, ...t.fc].map((l) => l.name);
      expect([...order].sort()).toEqual([...shaped].sort());
      expect(shaped.filter((n) => n.startsWith('conv'))).toEqual(t.conv.map((c) => c.name));
    });
  }
});
