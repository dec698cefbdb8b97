/**
 * Argument checks shared by the ops (ops.ts) and the geometry helpers (geometry.ts): every failure
 * is a TypeError that names the op and the argument ("conv2d: expected groups to be an integer >= 1
 * but received 0 of type number").
 */
import { describe } from './device.js';

export function fail(op: string, msg: string): never {
  throw new TypeError(`${op}: ${msg}`);
}

export function shapeStr(s: readonly number[]): string {
  return `[${s.join(', ')}]`;
}

export function posInt(op: string, name: string, v: unknown, min = 1): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) fail(op, `expected ${name} to be an integer >= ${min} but received ${describe(v)}`);
  return v;
}

export function finite(op: string, name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) fail(op, `expected ${name} to be a finite number but received ${describe(v)}`);
  return v;
}

/** A number for both dimensions, or a pair [h, w], each an integer >= min (dflt when undefined). */
export function pair(op: string, name: string, v: number | readonly [number, number] | undefined, dflt: number, min: number): [number, number] {
  if (v === undefined) return [dflt, dflt];
  if (typeof v === 'number') { posInt(op, name, v, min); return [v, v]; }
  if (!Array.isArray(v) || v.length !== 2) fail(op, `expected ${name} to be a number or a pair [h, w] but received ${describe(v)}`);
  return [posInt(op, `${name}[0]`, v[0], min), posInt(op, `${name}[1]`, v[1], min)];
}
