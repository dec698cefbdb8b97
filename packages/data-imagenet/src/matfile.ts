/**
 * Just enough of the MATLAB 5 MAT-file format (MathWorks, "MAT-File Format", 2019, ch. 1) to read
 * the ILSVRC devkit's meta.mat: compressed elements, numeric and char arrays, structs and cells.
 * The devkit's `synsets` struct array maps ILSVRC2012_ID (the 1-based class number used by the
 * ground-truth file) to WNID.
 */
import { readFile } from 'node:fs/promises';
import { deflateSync, inflateSync } from 'node:zlib';
import { basename } from 'node:path';
import { ImageNetDataError } from './errors.js';

export type MatValue = number[] | string | MatStruct[] | MatValue[] | null;
export interface MatStruct {
  [field: string]: MatValue;
}

const mi = { INT8: 1, UINT8: 2, INT16: 3, UINT16: 4, INT32: 5, UINT32: 6, SINGLE: 7, DOUBLE: 9, INT64: 12, UINT64: 13, MATRIX: 14, COMPRESSED: 15, UTF8: 16, UTF16: 17, UTF32: 18 };
const mx = { CELL: 1, STRUCT: 2, CHAR: 4 };

interface Element {
  type: number;
  data: Buffer;
}

function readElement(buf: Buffer, pos: number): { el: Element; next: number } {
  const first = buf.readUInt32LE(pos);
  if (first >>> 16 !== 0) {
    // Small data element: type and size share the first word, data sits in the second.
    const n = first >>> 16;
    return { el: { type: first & 0xffff, data: buf.subarray(pos + 4, pos + 4 + n) }, next: pos + 8 };
  }
  const n = buf.readUInt32LE(pos + 4);
  const data = buf.subarray(pos + 8, pos + 8 + n);
  if (data.length !== n) throw new Error('element runs past the end of the file');
  const padded = first === mi.COMPRESSED ? n : (n + 7) & ~7;
  return { el: { type: first, data }, next: pos + 8 + padded };
}

function numbers(el: Element): number[] {
  const d = el.data;
  const out: number[] = [];
  const size: Record<number, number> = { 1: 1, 2: 1, 3: 2, 4: 2, 5: 4, 6: 4, 7: 4, 9: 8, 12: 8, 13: 8, 16: 1, 17: 2, 18: 4 };
  const s = size[el.type];
  if (s === undefined) throw new Error(`unsupported data type ${el.type}`);
  for (let i = 0; i + s <= d.length; i += s) {
    switch (el.type) {
      case mi.INT8: out.push(d.readInt8(i)); break;
      case mi.UINT8: case mi.UTF8: out.push(d.readUInt8(i)); break;
      case mi.INT16: out.push(d.readInt16LE(i)); break;
      case mi.UINT16: case mi.UTF16: out.push(d.readUInt16LE(i)); break;
      case mi.INT32: out.push(d.readInt32LE(i)); break;
      case mi.UINT32: case mi.UTF32: out.push(d.readUInt32LE(i)); break;
      case mi.SINGLE: out.push(d.readFloatLE(i)); break;
      case mi.DOUBLE: out.push(d.readDoubleLE(i)); break;
      case mi.INT64: out.push(Number(d.readBigInt64LE(i))); break;
      case mi.UINT64: out.push(Number(d.readBigUInt64LE(i))); break;
    }
  }
  return out;
}

function parseMatrix(data: Buffer): { name: string; value: MatValue } {
  if (data.length === 0) return { name: '', value: null };
  let pos = 0;
  const sub = (): Element => {
    const r = readElement(data, pos);
    pos = r.next;
    return r.el;
  };
  const flags = numbers(sub());
  const cls = flags[0]! & 0xff;
  const dims = numbers(sub());
  const name = Buffer.from(sub().data).toString('latin1');
  const count = dims.reduce((a, b) => a * b, 1);
  if (cls === mx.STRUCT) {
    const len = numbers(sub())[0]!;
    const namesEl = sub();
    const fields: string[] = [];
    for (let i = 0; i < namesEl.data.length / len; i++) {
      fields.push(namesEl.data.subarray(i * len, (i + 1) * len).toString('latin1').replace(/\0.*$/s, ''));
    }
    const out: MatStruct[] = [];
    for (let i = 0; i < count; i++) {
      const rec: MatStruct = {};
      for (const f of fields) rec[f] = parseMatrix(sub().data).value;
      out.push(rec);
    }
    return { name, value: out };
  }
  if (cls === mx.CELL) {
    const out: MatValue[] = [];
    for (let i = 0; i < count; i++) out.push(parseMatrix(sub().data).value);
    return { name, value: out };
  }
  const real = sub();
  if (cls === mx.CHAR) {
    // Column-major over dims: for a 1xN row the order is the reading order.
    return { name, value: String.fromCodePoint(...numbers(real)) };
  }
  return { name, value: numbers(real) };
}

/** All variables of a MAT 5 file, by name. */
export function parseMat(buf: Buffer): Map<string, MatValue> {
  if (buf.length < 128 || buf.toString('latin1', 126, 128) !== 'IM') {
    throw new Error('not a little-endian MATLAB 5 MAT-file');
  }
  const vars = new Map<string, MatValue>();
  let pos = 128;
  while (pos + 8 <= buf.length) {
    const { el, next } = readElement(buf, pos);
    pos = next;
    let m = el;
    if (el.type === mi.COMPRESSED) m = readElement(inflateSync(el.data), 0).el;
    if (m.type !== mi.MATRIX) continue;
    const { name, value } = parseMatrix(m.data);
    vars.set(name, value);
  }
  return vars;
}

/** The devkit's class order: wnids indexed by ILSVRC2012_ID - 1, from meta.mat's `synsets`. */
export async function readDevkitMeta(file: string): Promise<string[]> {
  let vars: Map<string, MatValue>;
  try {
    vars = parseMat(await readFile(file));
  } catch (e) {
    throw new ImageNetDataError(`${basename(file)} could not be read as a MAT-file: ${(e as Error).message}`, file);
  }
  const synsets = vars.get('synsets');
  if (!Array.isArray(synsets)) throw new ImageNetDataError(`${basename(file)} has no synsets struct array`, file);
  const wnids: string[] = [];
  for (const s of synsets as MatStruct[]) {
    const idv = s['ILSVRC2012_ID'] ?? s['ILSVRC2010_ID'];
    const id = Array.isArray(idv) ? (idv[0] as number) : NaN;
    const wnid = s['WNID'];
    if (typeof wnid !== 'string' || !Number.isInteger(id)) {
      throw new ImageNetDataError(`${basename(file)}: a synsets entry lacks ILSVRC2012_ID or WNID`, file);
    }
    const children = s['num_children'];
    if (Array.isArray(children) && (children[0] as number) > 0) continue;
    wnids[id - 1] = wnid;
  }
  for (let i = 0; i < wnids.length; i++) {
    if (wnids[i] === undefined) throw new ImageNetDataError(`${basename(file)} has no leaf synset with ILSVRC2012_ID ${i + 1}`, file);
  }
  return wnids;
}

function element(type: number, data: Buffer): Buffer {
  const tag = Buffer.alloc(8);
  tag.writeUInt32LE(type, 0);
  tag.writeUInt32LE(data.length, 4);
  const pad = Buffer.alloc((8 - (data.length % 8)) % 8);
  return Buffer.concat([tag, data, pad]);
}

function matrix(cls: number, dims: number[], name: string, body: Buffer[]): Buffer {
  const flags = Buffer.alloc(8);
  flags.writeUInt32LE(cls, 0);
  const d = Buffer.alloc(4 * dims.length);
  dims.forEach((v, i) => d.writeInt32LE(v, 4 * i));
  return element(mi.MATRIX, Buffer.concat([element(mi.UINT32, flags), element(mi.INT32, d), element(mi.INT8, Buffer.from(name, 'latin1')), ...body]));
}

function doubleMatrix(v: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeDoubleLE(v, 0);
  return matrix(6, [1, 1], '', [element(mi.DOUBLE, b)]);
}

function charMatrix(s: string): Buffer {
  const b = Buffer.alloc(2 * s.length);
  for (let i = 0; i < s.length; i++) b.writeUInt16LE(s.charCodeAt(i), 2 * i);
  return matrix(mx.CHAR, [1, s.length], '', [element(mi.UTF16, b)]);
}

/**
 * Writes a devkit-style meta.mat: a compressed `synsets` struct array (n x 1) with the fields
 * ILSVRC2012_ID, WNID, words and num_children (0: a leaf class), as the ILSVRC2012 devkit has.
 * Used by the sample generator and the tests.
 */
export function devkitMetaMat(synsets: { id: number; wnid: string; words: string }[]): Buffer {
  const fields = ['ILSVRC2012_ID', 'WNID', 'words', 'num_children'];
  const len = 32;
  const names = Buffer.alloc(len * fields.length);
  fields.forEach((f, i) => names.write(f, i * len, 'latin1'));
  const lenEl = Buffer.alloc(8);
  lenEl.writeUInt32LE((4 << 16) | mi.INT32, 0);
  lenEl.writeInt32LE(len, 4);
  const body: Buffer[] = [lenEl, element(mi.INT8, names)];
  for (const s of synsets) body.push(doubleMatrix(s.id), charMatrix(s.wnid), charMatrix(s.words), doubleMatrix(0));
  const m = matrix(mx.STRUCT, [synsets.length, 1], 'synsets', body);
  const z = deflateSync(m);
  const tag = Buffer.alloc(8);
  tag.writeUInt32LE(mi.COMPRESSED, 0);
  tag.writeUInt32LE(z.length, 4);
  const header = Buffer.alloc(128, ' ');
  header.write('MATLAB 5.0 MAT-file, Platform: GLNXA64, Created by: @alexnet/data-imagenet', 0, 'latin1');
  header.fill(0, 116, 124);
  header.writeUInt16LE(0x0100, 124);
  header.write('IM', 126, 'latin1');
  return Buffer.concat([header, tag, z]);
}
