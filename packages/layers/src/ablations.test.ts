// The switches behind the paper's claims (§3.3, §3.4, §4.2) change the description and nothing else.
import { describe, expect, it } from 'vitest';
import { describeModel, inferShapes, parameterCount } from './models.js';

describe('ablations', () => {
  const base = describeModel('paper', { classes: 1000 });
  const kinds = (d: typeof base) => d.layers.map((l) => `${l.kind}:${l.name}`);
  it('lrn false drops norm1 and norm2; dropout false drops drop6 and drop7; the weights stay the same', () => {
    const noLrn = describeModel('paper', { classes: 1000, lrn: false });
    expect(kinds(base).filter((k) => !kinds(noLrn).includes(k))).toEqual(['lrn:norm1', 'lrn:norm2']);
    const noDrop = describeModel('paper', { classes: 1000, dropout: false });
    expect(kinds(base).filter((k) => !kinds(noDrop).includes(k))).toEqual(['dropout:drop6', 'dropout:drop7']);
    for (const d of [noLrn, noDrop]) expect(parameterCount(d)).toBe(parameterCount(base)); // 60 965 224
  });
  it('pool 2/2 replaces the overlapping 3/2 pooling everywhere, with the same map sizes at 227', () => {
    const p = describeModel('paper', { classes: 1000, pool: { size: 2, stride: 2 } });
    expect(p.layers.filter((l) => l.kind === 'maxpool').map((l) => l.kind === 'maxpool' && [l.name, l.size, l.stride])).toEqual([['pool1', 2, 2], ['pool2', 2, 2], ['pool5', 2, 2]]);
    const sizes = (d: typeof base) => inferShapes(d).filter((r) => r.spec.kind === 'maxpool').map((r) => r.outShape);
    expect(sizes(p)).toEqual(sizes(base)); // 27, 13, 6: (55 - 2) / 2 + 1 = 27 as (55 - 3) / 2 + 1
    expect(sizes(base)).toEqual([[96, 27, 27], [256, 13, 13], [256, 6, 6]]);
    expect(() => describeModel('paper', { pool: { size: 0, stride: 2 } })).toThrow(/pool \{ size, stride \} of positive integers/);
  });
});
