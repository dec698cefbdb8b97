/**
 * Command-line parsing for `alexnet`. Each option is declared once (name, short flag, aliases, type,
 * default, help); usage, help and parsing all come from that one table, and every value is converted
 * and checked before any work starts, so a typo costs a second, not an hour of indexing.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';

export class UsageError extends Error {
  override name = 'UsageError';
}

type Kind = 'string' | 'int' | 'number' | 'boolean' | 'choice' | 'list';

export interface OptionSpec {
  /** Long name, without dashes: the key of the parsed value. */
  name: string;
  kind: Kind;
  help: string;
  /** One-letter flag (-b). */
  short?: string;
  /** Other long names accepted for the same option (e.g. batch for batch-size). */
  aliases?: readonly string[];
  /** Shown after the flag in help (N, DIR, FILE, X). */
  meta?: string;
  /** Used when the option is absent (and shown in help). */
  default?: string | number | boolean | readonly string[];
  /** Smallest value of an int or number. */
  min?: number;
  /** Largest value of an int or number. */
  max?: number;
  /** For numbers: the lower bound is exclusive (e.g. a learning rate > 0). */
  exclusiveMin?: boolean;
  /** Valid values of a choice. */
  choices?: readonly string[];
  /** A required option (or its positional) must be given. */
  required?: boolean;
  /**
   * The option may be given without its value (`--monitor` alone means `--monitor 6006`): the value
   * is taken only when the next argument looks like one (an integer for int options).
   */
  bareValue?: string;
}

export interface CommandSpec {
  name: string;
  summary: string;
  options: readonly OptionSpec[];
  /**
   * Positional arguments: `option` fills that option from the first positional (the data folder,
   * as PyTorch's examples take it) unless the option is given; `many` takes them all as a list.
   */
  positional?: { meta: string; help: string; option?: string; many?: boolean };
}

export type Values = Record<string, string | number | boolean | string[] | undefined>;

function flag(o: OptionSpec): string {
  const names = [...(o.short ? [`-${o.short}`] : []), `--${o.name}`, ...(o.aliases ?? []).map((a) => `--${a}`)].join(', ');
  if (o.kind === 'boolean') return names;
  const meta = o.kind === 'choice' ? o.choices!.join('|') : o.meta ?? (o.kind === 'int' ? 'N' : o.kind === 'number' ? 'X' : 'VALUE');
  return o.bareValue !== undefined ? `${names} [${meta}]` : `${names} ${meta}`;
}

export function usageLine(spec: CommandSpec): string {
  const req = spec.options.filter((o) => o.required && o.name !== spec.positional?.option).map((o) => `--${o.name} ${o.meta ?? 'VALUE'}`);
  const pos = spec.positional ? (spec.positional.option ? `[${spec.positional.meta}]` : spec.positional.meta) : '';
  return ['alexnet', spec.name, ...req, pos, '[options]'].filter(Boolean).join(' ');
}

export function helpText(spec: CommandSpec): string {
  const rows: [string, string][] = [];
  if (spec.positional) rows.push([spec.positional.meta, spec.positional.help]);
  for (const o of spec.options) {
    const d = o.default;
    const shown = d === undefined || d === false ? '' : ` (default ${Array.isArray(d) ? d.join(',') : String(d)})`;
    const req = o.name === spec.positional?.option ? ` (required: this or ${spec.positional.meta})` : ' (required)';
    rows.push([flag(o), `${o.help}${o.required ? req : shown}`]);
  }
  rows.push(['-h, --help', 'this help']);
  const width = Math.min(34, Math.max(...rows.map(([o]) => o.length)));
  return [`alexnet ${spec.name}: ${spec.summary}`, '', `usage: ${usageLine(spec)}`, '', 'options:',
    ...rows.map(([o, d]) => (o.length > width ? `  ${o}\n  ${''.padEnd(width)}  ${d}` : `  ${o.padEnd(width)}  ${d}`))].join('\n');
}

function convert(o: OptionSpec, raw: string | boolean, spec: CommandSpec): string | number | boolean | string[] {
  const bad = (what: string) => new UsageError(`--${o.name} expects ${what} but received "${String(raw)}"\n\n${helpText(spec)}`);
  const bound = () => (o.max !== undefined ? `from ${o.min} to ${o.max}` : o.min !== undefined ? `${o.exclusiveMin ? '>' : '>='} ${o.min}` : '');
  switch (o.kind) {
    case 'boolean':
      return raw === true;
    case 'string':
      if (raw === '') throw bad('a value');
      return String(raw);
    case 'int': {
      const n = Number(raw);
      if (raw === '' || !Number.isSafeInteger(n) || (o.min !== undefined && n < o.min) || (o.max !== undefined && n > o.max)) throw bad(`an integer ${bound()}`.trim());
      return n;
    }
    case 'number': {
      const n = Number(raw);
      const low = o.min === undefined || (o.exclusiveMin ? n > o.min : n >= o.min);
      if (raw === '' || !Number.isFinite(n) || !low || (o.max !== undefined && n > o.max)) throw bad(`a number ${bound()}`.trim());
      return n;
    }
    case 'choice':
      if (!o.choices!.includes(String(raw))) throw bad(`one of ${o.choices!.join(', ')}`);
      return String(raw);
    case 'list': {
      const items = String(raw).split(',').map((s) => s.trim());
      if (items.some((s) => s === '')) throw bad('a comma-separated list');
      return items;
    }
  }
}

/** Parses argv for a command: every value converted and checked; defaults filled in. */
export function parseCommand(spec: CommandSpec, argv: string[]): { values: Values; positionals: string[]; help: boolean; given: Set<string> } {
  const options: NonNullable<ParseArgsConfig['options']> = { help: { type: 'boolean', short: 'h' } };
  const owner = new Map<string, OptionSpec>();
  for (const o of spec.options) {
    for (const [i, n] of [o.name, ...(o.aliases ?? [])].entries()) {
      options[n] = { type: o.kind === 'boolean' ? 'boolean' : 'string', ...(i === 0 && o.short ? { short: o.short } : {}) };
      owner.set(n, o);
    }
  }
  // Options given without their (optional) value get it here, before parseArgs sees them.
  const bare = new Map<string, OptionSpec>(spec.options.filter((o) => o.bareValue !== undefined).flatMap((o) => [o.name, ...(o.aliases ?? [])].map((n) => [`--${n}`, o] as [string, OptionSpec])));
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const o = bare.get(argv[i]!);
    args.push(argv[i]!);
    const next = argv[i + 1];
    if (o && (next === undefined || next.startsWith('-') || (o.kind === 'int' && !/^\d+$/.test(next)))) args.push(o.bareValue!);
  }
  let parsed;
  try {
    parsed = parseArgs({ args, options, allowPositionals: !!spec.positional, strict: true });
  } catch (e) {
    const msg = (e as Error).message.replace(/\. To specify a positional argument.*$/s, '').replace(/^Unknown option '(.*)'$/s, 'unknown option $1');
    throw new UsageError(`${msg}\n\n${helpText(spec)}`);
  }
  if (parsed.values.help) return { values: {}, positionals: [], help: true, given: new Set() };
  const values: Values = {};
  for (const [key, raw] of Object.entries(parsed.values)) {
    const o = owner.get(key);
    if (!o || raw === undefined) continue;
    if (values[o.name] !== undefined) throw new UsageError(`--${o.name} is given twice (as --${key} too)\n\n${helpText(spec)}`);
    values[o.name] = convert(o, raw as string | boolean, spec);
  }
  let positionals = parsed.positionals;
  const p = spec.positional;
  if (p?.option && !p.many) {
    if (positionals.length > 1) throw new UsageError(`expected one ${p.meta} but received ${positionals.length}: ${positionals.join(' ')}\n\n${helpText(spec)}`);
    if (positionals.length === 1) {
      if (values[p.option] !== undefined) throw new UsageError(`${p.meta} is given twice: as --${p.option} and as ${positionals[0]}\n\n${helpText(spec)}`);
      values[p.option] = positionals[0]!;
      positionals = [];
    }
  }
  /** The options the user gave (the others take their defaults). */
  const given = new Set(Object.keys(values));
  for (const o of spec.options) {
    if (values[o.name] === undefined && o.default !== undefined) values[o.name] = Array.isArray(o.default) ? [...o.default] : (o.default as string | number | boolean);
    if (o.required && values[o.name] === undefined) {
      throw new UsageError(`${o.name === p?.option ? `${p.meta} (or --${o.name})` : `--${o.name}`} is required\n\n${helpText(spec)}`);
    }
  }
  return { values, positionals, help: false, given };
}
