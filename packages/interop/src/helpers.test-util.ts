// Test helpers: pickles and zip archives built byte by byte (hostile ones included), and the PyTorch
// side of the cross-checks.
import { spawnSync } from 'node:child_process';
import { crc32, deflateRawSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';

const enc = new TextEncoder();

/** Pickle opcodes as bytes, for writing pickles by hand. */
export const P = {
  proto: (v = 2) => [0x80, v],
  global: (module: string, name: string) => [0x63, ...enc.encode(`${module}\n${name}\n`)],
  str: (s: string) => { const b = enc.encode(s); return [0x58, b.length & 255, (b.length >> 8) & 255, (b.length >> 16) & 255, b.length >>> 24, ...b]; },
  int: (v: number) => { const b = new Uint8Array(4); new DataView(b.buffer).setInt32(0, v, true); return [0x4a, ...b]; },
  mark: [0x28], tuple: [0x74], emptyTuple: [0x29], tuple1: [0x85], reduce: [0x52], stop: [0x2e], none: [0x4e],
  emptyDict: [0x7d], setitems: [0x75], setitem: [0x73], binpersid: [0x51], newfalse: [0x89], build: [0x62],
  stackGlobal: [0x93], inst: (module: string, name: string) => [0x69, ...enc.encode(`${module}\n${name}\n`)],
  binput: (i: number) => [0x71, i], binget: (i: number) => [0x68, i],
};

export function pickle(...parts: (number[] | number)[]): Uint8Array {
  return Uint8Array.from(parts.flat());
}

/** A zip archive of stored entries (what torch.save writes, less its 64-byte alignment), or deflated ones. */
export function makeZip(entries: Record<string, Uint8Array>, opts: { deflate?: boolean } = {}): Uint8Array {
  const locals: Uint8Array[] = [], centrals: Uint8Array[] = [];
  let offset = 0;
  for (const [name, raw] of Object.entries(entries)) {
    const n = enc.encode(name), crc = crc32(raw) >>> 0, method = opts.deflate ? 8 : 0;
    const data = opts.deflate ? new Uint8Array(deflateRawSync(raw)) : raw;
    const l = new Uint8Array(30 + n.length), lv = new DataView(l.buffer);
    lv.setUint32(0, 0x04034b50, true); lv.setUint16(4, 20, true); lv.setUint16(8, method, true); lv.setUint32(14, crc, true);
    lv.setUint32(18, data.length, true); lv.setUint32(22, raw.length, true); lv.setUint16(26, n.length, true);
    l.set(n, 30);
    const c = new Uint8Array(46 + n.length), cv = new DataView(c.buffer);
    cv.setUint32(0, 0x02014b50, true); cv.setUint16(4, 20, true); cv.setUint16(6, 20, true); cv.setUint16(10, method, true);
    cv.setUint32(16, crc, true); cv.setUint32(20, data.length, true); cv.setUint32(24, raw.length, true); cv.setUint16(28, n.length, true);
    cv.setUint32(42, offset, true);
    c.set(n, 46);
    locals.push(l, data);
    centrals.push(c);
    offset += l.length + data.length;
  }
  const cdSize = centrals.reduce((s, c) => s + c.length, 0);
  const end = new Uint8Array(22), ev = new DataView(end.buffer);
  ev.setUint32(0, 0x06054b50, true); ev.setUint16(8, centrals.length, true); ev.setUint16(10, centrals.length, true);
  ev.setUint32(12, cdSize, true); ev.setUint32(16, offset, true);
  const all = [...locals, ...centrals, end];
  const out = new Uint8Array(all.reduce((s, a) => s + a.length, 0));
  let p = 0;
  for (const a of all) { out.set(a, p); p += a.length; }
  return out;
}

export const PY = '/usr/bin/python3';
export const TORCH_SCRIPT = fileURLToPath(new URL('../scripts/torch_side.py', import.meta.url));
export const FIXTURES = fileURLToPath(new URL('../test/fixtures/', import.meta.url));

/** Whether Debian's PyTorch is there; tests that need it skip and say what to install. */
export const NEEDS_TORCH = 'needs PyTorch: apt-get install python3-torch python3-torchvision';
/** ALEXNET_NO_TORCH=1 runs the suite as a machine without PyTorch would. */
export const torchAvailable = !process.env.ALEXNET_NO_TORCH && spawnSync(PY, ['-c', 'import torch, torchvision'], { timeout: 120_000 }).status === 0;
if (!torchAvailable) console.warn(`skipping the PyTorch cross-checks of @alexnet/interop: /usr/bin/python3 has no torch and torchvision (${NEEDS_TORCH})`);

export function python(args: string[], timeout = 300_000): string {
  const r = spawnSync(PY, [TORCH_SCRIPT, ...args], { encoding: 'utf8', timeout });
  if (r.status !== 0) throw new Error(`torch_side.py ${args[0]} failed: ${r.stderr || r.error}`);
  return r.stdout;
}
