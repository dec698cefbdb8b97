// The option table: parsing, defaults, aliases, positionals, bare values, and help from one declaration.
import { describe, expect, it } from 'vitest';
import { helpText, parseCommand, UsageError, type CommandSpec } from './args.js';

const spec: CommandSpec = {
  name: 'train', summary: 'test', positional: { meta: 'DIR', option: 'data', help: 'data' },
  options: [
    { name: 'data', kind: 'string', meta: 'DIR', required: true, help: 'data folder' },
    { name: 'batch-size', short: 'b', aliases: ['batch'], kind: 'int', min: 1, default: 128, help: 'batch' },
    { name: 'monitor', kind: 'int', min: 0, max: 65535, meta: 'PORT', bareValue: '6006', help: 'monitor' },
    { name: 'model', kind: 'choice', choices: ['paper', 'torchvision'], default: 'paper', help: 'model' },
  ],
};

describe('parseCommand', () => {
  it('fills defaults, takes the data folder as a positional, and aliases', () => {
    expect(parseCommand(spec, ['d']).values).toEqual({ data: 'd', 'batch-size': 128, model: 'paper' });
    expect(parseCommand(spec, ['--data', 'd', '-b', '16']).values['batch-size']).toBe(16);
    expect(parseCommand(spec, ['d', '--batch', '8']).values['batch-size']).toBe(8);
  });
  it('a bare --monitor means its bare value; a number after it is its value; a folder after it is the positional', () => {
    expect(parseCommand(spec, ['d', '--monitor']).values.monitor).toBe(6006);
    expect(parseCommand(spec, ['--monitor', '0', 'd']).values).toMatchObject({ monitor: 0, data: 'd' });
    expect(parseCommand(spec, ['--monitor', 'shards']).values).toMatchObject({ monitor: 6006, data: 'shards' });
    expect(parseCommand(spec, ['--monitor', '--batch', '4', 'd']).values).toMatchObject({ monitor: 6006, 'batch-size': 4 });
    expect(() => parseCommand(spec, ['d', '--monitor', '70000'])).toThrow(/--monitor expects an integer from 0 to 65535 but received "70000"/);
  });
  it('refuses what it cannot take, naming it, with the help', () => {
    expect(() => parseCommand(spec, [])).toThrow(UsageError);
    expect(() => parseCommand(spec, [])).toThrow(/^DIR \(or --data\) is required/);
    expect(() => parseCommand(spec, ['d', '--model', 'vgg'])).toThrow(/--model expects one of paper, torchvision but received "vgg"/);
    expect(() => parseCommand(spec, ['d', '-b', '0'])).toThrow(/--batch-size expects an integer >= 1 but received "0"/);
    expect(() => parseCommand(spec, ['d', '--nope'])).toThrow(/unknown option --nope/i);
    expect(() => parseCommand(spec, ['d', 'e'])).toThrow(/expected one DIR but received 2: d e/);
  });
  it('help lists every option once, from the same table', () => {
    const h = helpText(spec);
    expect(h).toMatch(/^alexnet train: test\n\nusage: alexnet train \[DIR\] \[options\]\n/);
    expect(h).toContain('-b, --batch-size, --batch N');
    expect(h).toContain('--monitor [PORT]');
    expect(h).toContain('--model paper|torchvision');
    expect(h).toMatch(/--data DIR +data folder \(required: this or DIR\)/);
  });
});
