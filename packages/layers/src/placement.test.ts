// The placement of the paper's net as rows (§3.2), checked against the paper's Figure 2 by hand.
import { describe, expect, it } from 'vitest';
import { paperDescription, torchvisionDescription } from './models.js';
import { formatPlacement, placementRows } from './network.js';

describe('placementRows', () => {
  const two = placementRows(paperDescription({ classes: 1000 }), 2);
  const byName = (rows: typeof two, name: string) => rows.find((t) => t[0]!.layer === name)!;

  it('two devices: each tower holds half of every layer, and maps cross only at conv3, fc6, fc7 and fc8', () => {
    expect(byName(two, 'conv1').map((r) => r.rows)).toEqual([[0, 48], [48, 96]]);
    expect(byName(two, 'conv2').map((r) => [r.rows, r.inChannels, r.groups])).toEqual([[[0, 128], 48, 1], [[128, 256], 48, 1]]);
    expect(byName(two, 'conv3').map((r) => [r.rows, r.inChannels])).toEqual([[[0, 192], 256], [[192, 384], 256]]);
    expect(byName(two, 'fc8').map((r) => r.rows)).toEqual([[0, 500], [500, 1000]]);
    expect(two.filter((t) => t[0]!.gathers).map((t) => t[0]!.layer)).toEqual(['conv3', 'fc6', 'fc7', 'fc8']);
    expect(two.every((t) => t.map((r) => r.device).join() === '0,1')).toBe(true);
  });

  it('one device: the same net with grouped own-tower layers', () => {
    const one = placementRows(paperDescription({ classes: 1000 }), 1);
    expect(byName(one, 'conv2')[0]).toMatchObject({ rows: [0, 256], inChannels: 96, groups: 2, gathers: false });
    expect(byName(one, 'conv3')[0]).toMatchObject({ inChannels: 256, groups: 1 });
    expect(byName(one, 'norm1')[0]!.groups).toBe(2);
    expect(one.some((t) => t[0]!.gathers)).toBe(false);
  });

  it('formats a readable table, and refuses two devices for a one-tower net', () => {
    const lines = formatPlacement(two, ['cpu:0', 'cpu:1']);
    expect(lines.find((l) => l.startsWith('conv3'))).toBe('conv3    cpu:0 [0, 192) | cpu:1 [192, 384)   <- gathers both towers (§3.2)');
    expect(lines.find((l) => l.startsWith('conv2'))).toBe('conv2    cpu:0 [0, 128) | cpu:1 [128, 256)');
    expect(() => placementRows(torchvisionDescription(), 2)).toThrow(/has one tower; place it on one device/);
  });
});
