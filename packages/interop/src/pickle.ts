/**
 * A restricted unpickler: it reads the pickle protocols 2 to 5 that torch.save writes (protocol 2 by
 * default) and builds plain values from them. It runs nothing. A pickle names the functions it wants
 * called ("GLOBAL module name", then REDUCE); here every such name must be in the caller's table of
 * allowed globals, each mapped to a TypeScript function that builds a value, and any other name stops
 * the reading with an error that says which one it met ("unsupported pickle global os.system").
 *
 * Values: None -> null, bool -> boolean, int -> number (bigint beyond 2^53), float -> number,
 * str -> string, bytes -> Uint8Array, list -> Array, tuple -> PyTuple, dict -> PyDict.
 * Opcodes read: see OPCODES below; the others (INST, OBJ, NEWOBJ, EXT*, sets, buffers, the text forms
 * of protocol 0) are refused by name.
 */
import { InteropError } from './errors.js';

export class PyTuple {
  constructor(readonly items: readonly unknown[]) {}
}

export class PyDict {
  readonly map = new Map<unknown, unknown>();
  /** Attributes set by BUILD (an OrderedDict's instance dict, e.g. a state dict's `_metadata`). */
  attrs: PyDict | null = null;
  constructor(readonly kind: 'dict' | 'OrderedDict' = 'dict') {}
}

/** What an allowed global stands for: a function REDUCE may call, or a value (a storage type). */
export type GlobalHandler = { call: (args: readonly unknown[], at: number) => unknown } | { value: unknown };

/** A global the pickle named, pushed on the stack. */
export class PyGlobal {
  constructor(readonly qualified: string, readonly handler: GlobalHandler) {}
}

export interface UnpickleOptions {
  /** Names the file or stream in errors. */
  source: string;
  /** "module.name" -> what it builds. Anything else is refused. */
  globals: Readonly<Record<string, GlobalHandler>>;
  /** Resolves BINPERSID ids (torch's storages). Without it, a persistent id is an error. */
  persistentLoad?: (pid: unknown, at: number) => unknown;
  /** Byte to start at (a stream of several pickles, as the legacy torch.save format is). */
  offset?: number;
  /** Extra words for the "unsupported global" error (what the caller expected instead). */
  hint?: (qualified: string) => string;
}

/** Opcode byte -> name, for every opcode of protocols 0-5 (the names of refused ones appear in errors). */
const NAMES: Record<number, string> = {
  0x28: 'MARK', 0x2e: 'STOP', 0x30: 'POP', 0x31: 'POP_MARK', 0x32: 'DUP', 0x46: 'FLOAT', 0x49: 'INT', 0x4a: 'BININT',
  0x4b: 'BININT1', 0x4c: 'LONG', 0x4d: 'BININT2', 0x4e: 'NONE', 0x50: 'PERSID', 0x51: 'BINPERSID', 0x52: 'REDUCE',
  0x53: 'STRING', 0x54: 'BINSTRING', 0x55: 'SHORT_BINSTRING', 0x56: 'UNICODE', 0x58: 'BINUNICODE', 0x61: 'APPEND',
  0x62: 'BUILD', 0x63: 'GLOBAL', 0x64: 'DICT', 0x7d: 'EMPTY_DICT', 0x65: 'APPENDS', 0x67: 'GET', 0x68: 'BINGET',
  0x69: 'INST', 0x6a: 'LONG_BINGET', 0x6c: 'LIST', 0x5d: 'EMPTY_LIST', 0x6f: 'OBJ', 0x70: 'PUT', 0x71: 'BINPUT',
  0x72: 'LONG_BINPUT', 0x73: 'SETITEM', 0x74: 'TUPLE', 0x29: 'EMPTY_TUPLE', 0x75: 'SETITEMS', 0x47: 'BINFLOAT',
  0x80: 'PROTO', 0x81: 'NEWOBJ', 0x82: 'EXT1', 0x83: 'EXT2', 0x84: 'EXT4', 0x85: 'TUPLE1', 0x86: 'TUPLE2', 0x87: 'TUPLE3',
  0x88: 'NEWTRUE', 0x89: 'NEWFALSE', 0x8a: 'LONG1', 0x8b: 'LONG4', 0x42: 'BINBYTES', 0x43: 'SHORT_BINBYTES',
  0x8c: 'SHORT_BINUNICODE', 0x8d: 'BINUNICODE8', 0x8e: 'BINBYTES8', 0x8f: 'EMPTY_SET', 0x90: 'ADDITEMS', 0x91: 'FROZENSET',
  0x92: 'NEWOBJ_EX', 0x93: 'STACK_GLOBAL', 0x94: 'MEMOIZE', 0x95: 'FRAME', 0x96: 'BYTEARRAY8', 0x97: 'NEXT_BUFFER',
  0x98: 'READONLY_BUFFER',
};

/** The opcodes this reader executes (the rest of NAMES is refused). */
export const OPCODES: readonly string[] = [
  'PROTO', 'FRAME', 'STOP', 'MARK', 'POP', 'POP_MARK', 'DUP', 'NONE', 'NEWTRUE', 'NEWFALSE', 'BININT', 'BININT1', 'BININT2',
  'LONG1', 'LONG4', 'BINFLOAT', 'BINUNICODE', 'SHORT_BINUNICODE', 'BINUNICODE8', 'BINSTRING', 'SHORT_BINSTRING', 'BINBYTES',
  'SHORT_BINBYTES', 'BINBYTES8', 'EMPTY_TUPLE', 'TUPLE', 'TUPLE1', 'TUPLE2', 'TUPLE3', 'EMPTY_LIST', 'APPEND', 'APPENDS',
  'LIST', 'EMPTY_DICT', 'DICT', 'SETITEM', 'SETITEMS', 'GLOBAL', 'STACK_GLOBAL', 'REDUCE', 'BUILD', 'BINPERSID', 'BINPUT',
  'LONG_BINPUT', 'MEMOIZE', 'BINGET', 'LONG_BINGET',
];

const MARK = Symbol('mark');
const utf8 = new TextDecoder('utf-8', { fatal: true });

function describe(v: unknown): string {
  if (v === null) return 'None';
  if (v instanceof PyGlobal) return v.qualified;
  if (v instanceof PyTuple) return 'a tuple';
  if (v instanceof PyDict) return v.kind === 'OrderedDict' ? 'an OrderedDict' : 'a dict';
  if (Array.isArray(v)) return 'a list';
  if (v instanceof Uint8Array) return 'bytes';
  if (typeof v === 'object') return (v as object).constructor?.name ?? 'an object';
  return `${typeof v} ${JSON.stringify(typeof v === 'bigint' ? String(v) : v)?.slice(0, 40)}`;
}

/** Reads one pickle from `bytes` (at opts.offset) up to its STOP. Returns the value and the byte after STOP. */
export function unpickle(bytes: Uint8Array, opts: UnpickleOptions): { value: unknown; end: number } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = bytes.length;
  const src = opts.source;
  let pos = opts.offset ?? 0;
  let at = pos; // start of the current opcode, for errors
  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();

  const fail: (what: string) => never = (what) => {
    throw new InteropError(`${src}: ${what} (pickle byte ${at})`, src);
  };
  const need = (k: number): number => {
    if (k < 0 || pos + k > n) fail(`the pickle is truncated: it ends at byte ${n} inside ${NAMES[bytes[at]!] ?? 'an opcode'}`);
    const p = pos;
    pos += k;
    return p;
  };
  const pop = (): unknown => {
    if (stack.length === 0 || stack[stack.length - 1] === MARK) fail('the pickle is damaged: it pops from an empty stack');
    return stack.pop();
  };
  const top = (): unknown => {
    if (stack.length === 0 || stack[stack.length - 1] === MARK) fail('the pickle is damaged: it reads an empty stack');
    return stack[stack.length - 1];
  };
  const popMark = (): unknown[] => {
    const m = marks.pop();
    if (m === undefined) fail('the pickle is damaged: it closes a MARK it never opened');
    const items = stack.splice(m);
    items.shift(); // the MARK itself
    return items;
  };
  const text = (p: number, len: number): string => {
    try {
      return utf8.decode(bytes.subarray(p, p + len));
    } catch {
      return fail('the pickle holds a string that is not UTF-8');
    }
  };
  const line = (): string => {
    const end = bytes.indexOf(0x0a, pos);
    if (end < 0) fail('the pickle is truncated inside a GLOBAL');
    const s = text(pos, end - pos);
    pos = end + 1;
    return s;
  };
  const length64 = (): number => {
    const p = need(8);
    const v = view.getBigUint64(p, true);
    if (v > BigInt(n)) fail(`the pickle is truncated: a length of ${v} bytes runs past its end`);
    return Number(v);
  };
  const global = (module: string, name: string): PyGlobal => {
    const q = `${module}.${name}`;
    const h = Object.prototype.hasOwnProperty.call(opts.globals, q) ? opts.globals[q] : undefined;
    if (!h) fail(`unsupported pickle global ${q}${opts.hint ? `; ${opts.hint(q)}` : ''}. Nothing in the file was run`);
    return new PyGlobal(q, h!);
  };
  const setItems = (d: unknown, items: unknown[]): void => {
    if (!(d instanceof PyDict)) fail(`the pickle sets items on ${describe(d)}, not a dict`);
    if (items.length % 2) fail('the pickle is damaged: SETITEMS has an odd number of values');
    for (let i = 0; i < items.length; i += 2) (d as PyDict).map.set(items[i], items[i + 1]);
  };
  const appendItems = (l: unknown, items: unknown[]): void => {
    if (!Array.isArray(l)) fail(`the pickle appends to ${describe(l)}, not a list`);
    (l as unknown[]).push(...items);
  };
  const signed = (p: number, len: number): number | bigint => {
    if (len === 0) return 0;
    let v = 0n;
    for (let i = len - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[p + i]!);
    if (bytes[p + len - 1]! & 0x80) v -= 1n << BigInt(8 * len);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };

  for (;;) {
    at = pos;
    if (pos >= n) fail(`the pickle is truncated: it ends at byte ${n} before its STOP`);
    const op = bytes[pos++]!;
    switch (op) {
      case 0x80: { const p = need(1); if (bytes[p]! > 5) fail(`the pickle uses protocol ${bytes[p]}, newer than 5`); break; } // PROTO
      case 0x95: need(8); break; // FRAME: frames are read inline
      case 0x2e: { // STOP
        if (stack.length !== 1 || marks.length) fail(`the pickle is damaged: it stops with ${stack.length} values on the stack`);
        return { value: stack[0], end: pos };
      }
      case 0x28: marks.push(stack.length); stack.push(MARK); break;
      case 0x30: if (stack[stack.length - 1] === MARK) popMark(); else pop(); break;
      case 0x31: popMark(); break;
      case 0x32: stack.push(top()); break;
      case 0x4e: stack.push(null); break;
      case 0x88: stack.push(true); break;
      case 0x89: stack.push(false); break;
      case 0x4a: stack.push(view.getInt32(need(4), true)); break;
      case 0x4b: stack.push(bytes[need(1)]!); break;
      case 0x4d: stack.push(view.getUint16(need(2), true)); break;
      case 0x8a: { const len = bytes[need(1)]!; stack.push(signed(need(len), len)); break; }
      case 0x8b: {
        const len = view.getInt32(need(4), true);
        if (len < 0) fail('the pickle is damaged: LONG4 has a negative length');
        stack.push(signed(need(len), len));
        break;
      }
      case 0x47: stack.push(view.getFloat64(need(8), false)); break;
      case 0x58: { const len = view.getUint32(need(4), true); stack.push(text(need(len), len)); break; }
      case 0x8c: { const len = bytes[need(1)]!; stack.push(text(need(len), len)); break; }
      case 0x8d: { const len = length64(); stack.push(text(need(len), len)); break; }
      case 0x54: {
        const len = view.getInt32(need(4), true);
        if (len < 0) fail('the pickle is damaged: BINSTRING has a negative length');
        stack.push(text(need(len), len));
        break;
      }
      case 0x55: { const len = bytes[need(1)]!; stack.push(text(need(len), len)); break; }
      case 0x42: { const len = view.getUint32(need(4), true); const p = need(len); stack.push(new Uint8Array(bytes.subarray(p, p + len))); break; }
      case 0x43: { const len = bytes[need(1)]!; const p = need(len); stack.push(new Uint8Array(bytes.subarray(p, p + len))); break; }
      case 0x8e: { const len = length64(); const p = need(len); stack.push(new Uint8Array(bytes.subarray(p, p + len))); break; }
      case 0x29: stack.push(new PyTuple([])); break;
      case 0x74: stack.push(new PyTuple(popMark())); break;
      case 0x85: { const a = pop(); stack.push(new PyTuple([a])); break; }
      case 0x86: { const b = pop(), a = pop(); stack.push(new PyTuple([a, b])); break; }
      case 0x87: { const c = pop(), b = pop(), a = pop(); stack.push(new PyTuple([a, b, c])); break; }
      case 0x5d: stack.push([]); break;
      case 0x61: { const v = pop(); appendItems(top(), [v]); break; }
      case 0x65: { const items = popMark(); appendItems(top(), items); break; }
      case 0x6c: stack.push(popMark()); break;
      case 0x7d: stack.push(new PyDict()); break;
      case 0x64: { const items = popMark(); const d = new PyDict(); setItems(d, items); stack.push(d); break; }
      case 0x73: { const v = pop(), k = pop(); setItems(top(), [k, v]); break; }
      case 0x75: { const items = popMark(); setItems(top(), items); break; }
      case 0x63: { const module = line(), name = line(); stack.push(global(module, name)); break; }
      case 0x93: {
        const name = pop(), module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail('the pickle is damaged: STACK_GLOBAL needs two strings');
        stack.push(global(module as string, name as string));
        break;
      }
      case 0x52: { // REDUCE
        const args = pop(), f = pop();
        if (!(f instanceof PyGlobal) || !('call' in f.handler)) fail(`the pickle calls ${describe(f)}, which is not a function a state dict uses`);
        if (!(args instanceof PyTuple)) fail(`the pickle calls ${(f as PyGlobal).qualified} with ${describe(args)} instead of a tuple of arguments`);
        stack.push(((f as PyGlobal).handler as { call: (a: readonly unknown[], at: number) => unknown }).call((args as PyTuple).items, at));
        break;
      }
      case 0x62: { // BUILD: only an OrderedDict's attributes (a state dict's _metadata)
        const state = pop(), obj = top();
        if (!(obj instanceof PyDict) || !(state instanceof PyDict)) fail(`the pickle sets the state of ${describe(obj)} from ${describe(state)}, which a state dict does not do`);
        (obj as PyDict).attrs = state as PyDict;
        break;
      }
      case 0x51: { // BINPERSID
        const pid = pop();
        if (!opts.persistentLoad) fail('the pickle refers to outside data (a persistent id) but none is expected here');
        stack.push(opts.persistentLoad!(pid, at));
        break;
      }
      case 0x71: memo.set(bytes[need(1)]!, top()); break;
      case 0x72: memo.set(view.getUint32(need(4), true), top()); break;
      case 0x94: memo.set(memo.size, top()); break;
      case 0x68: case 0x6a: {
        const i = op === 0x68 ? bytes[need(1)]! : view.getUint32(need(4), true);
        if (!memo.has(i)) fail(`the pickle is damaged: it reads memo entry ${i}, which was never stored`);
        stack.push(memo.get(i));
        break;
      }
      default:
        fail(`unsupported pickle opcode ${NAMES[op] ?? 'unknown'} (0x${op.toString(16).padStart(2, '0')}); a state dict uses only ${OPCODES.length} opcodes. Nothing in the file was run`);
    }
  }
}
