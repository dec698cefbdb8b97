/** Command-line parsing for `alexnet`: one help text per command, errors as sentences. */
import { parseArgs, type ParseArgsConfig } from 'node:util';

export class UsageError extends Error {
  override name = 'UsageError';
}

export interface CommandSpec {
  name: string;
  summary: string;
  usage: string;
  options: NonNullable<ParseArgsConfig['options']>;
  /** Help lines for the options, in order. */
  help: [string, string][];
  positionals?: boolean;
}

export function helpText(spec: CommandSpec): string {
  const width = Math.max(...spec.help.map(([o]) => o.length));
  return [`alexnet ${spec.name}: ${spec.summary}`, '', `usage: ${spec.usage}`, '', 'options:',
    ...spec.help.map(([o, d]) => `  ${o.padEnd(width)}  ${d}`)].join('\n');
}

export function parseCommand(spec: CommandSpec, argv: string[]): { values: Record<string, string | boolean | undefined>; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({ args: argv, options: { ...spec.options, help: { type: 'boolean', short: 'h' } }, allowPositionals: !!spec.positionals, strict: true });
    return { values: values as Record<string, string | boolean | undefined>, positionals };
  } catch (e) {
    const msg = (e as Error).message.replace(/\. To specify a positional argument.*$/, '');
    throw new UsageError(`${msg}\n\n${helpText(spec)}`);
  }
}

export function intOption(values: Record<string, unknown>, name: string, dflt: number, min = 1): number {
  const v = values[name];
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} expects an integer >= ${min} but received "${String(v)}"`);
  return n;
}

export function numberOption(values: Record<string, unknown>, name: string, dflt: number, check: (n: number) => boolean = (n) => n > 0): number {
  const v = values[name];
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || !check(n)) throw new UsageError(`--${name} received "${String(v)}", which is not a valid value`);
  return n;
}
