/**
 * A small zip reader, enough for the archives torch.save writes (PyTorch >= 1.6): the end-of-central-
 * directory record (and its ZIP64 form), the central directory, and stored (method 0) or deflated
 * (method 8) entries, each checked against its CRC-32. PyTorch stores its entries uncompressed and
 * 64-byte aligned, so reading an entry is a view of the file's bytes.
 */
import { crc32, inflateRawSync } from 'node:zlib';
import { InteropError } from './errors.js';

export interface ZipEntry {
  name: string;
  /** 0 stored, 8 deflated. */
  method: number;
  compressedSize: number;
  size: number;
  crc32: number;
  localHeaderOffset: number;
  flags: number;
}

const EOCD = 0x06054b50, ZIP64_LOCATOR = 0x07064b50, ZIP64_EOCD = 0x06064b50, CENTRAL = 0x02014b50, LOCAL = 0x04034b50;

export class ZipArchive {
  readonly entries = new Map<string, ZipEntry>();
  private readonly view: DataView;

  /** `source` names the file in every error. */
  constructor(readonly bytes: Uint8Array, readonly source: string) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.readCentralDirectory();
  }

  private fail(what: string): never {
    throw new InteropError(`${this.source} ${what}`, this.source);
  }

  private u16(at: number): number { return this.view.getUint16(at, true); }
  private u32(at: number): number { return this.view.getUint32(at, true); }
  private u64(at: number): number {
    const v = this.view.getBigUint64(at, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`is not a zip archive this reader can read (a 64-bit field holds ${v})`);
    return Number(v);
  }

  private readCentralDirectory(): void {
    const n = this.bytes.length;
    let eocd = -1;
    for (let i = n - 22; i >= Math.max(0, n - 22 - 0xffff); i--) {
      if (this.u32(i) === EOCD) { eocd = i; break; }
    }
    if (eocd < 0) this.fail(`is not a complete zip archive: it has no end-of-central-directory record (${n} bytes; a truncated or partly copied file ends like this)`);
    let count = this.u16(eocd + 10), cdSize = this.u32(eocd + 12), cdOffset = this.u32(eocd + 16);
    if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
      const loc = eocd - 20;
      if (loc < 0 || this.u32(loc) !== ZIP64_LOCATOR) this.fail('is a damaged zip archive: its ZIP64 locator is missing');
      const z = this.u64(loc + 8);
      if (z + 56 > n || this.u32(z) !== ZIP64_EOCD) this.fail('is a damaged zip archive: its ZIP64 end-of-central-directory record is missing');
      count = this.u64(z + 32); cdSize = this.u64(z + 40); cdOffset = this.u64(z + 48);
    }
    if (cdOffset + cdSize > n) this.fail(`is a truncated zip archive: its central directory (bytes ${cdOffset} to ${cdOffset + cdSize}) lies past the end of the ${n}-byte file`);
    let p = cdOffset;
    for (let i = 0; i < count; i++) {
      if (p + 46 > cdOffset + cdSize || this.u32(p) !== CENTRAL) this.fail(`is a damaged zip archive: central directory entry ${i} of ${count} is missing`);
      const flags = this.u16(p + 8), method = this.u16(p + 10), crc = this.u32(p + 16);
      let csize = this.u32(p + 20), usize = this.u32(p + 24);
      const nameLen = this.u16(p + 28), extraLen = this.u16(p + 30), commentLen = this.u16(p + 32);
      let local = this.u32(p + 42);
      if (p + 46 + nameLen + extraLen > n) this.fail('is a truncated zip archive: its central directory ends mid-entry');
      const name = new TextDecoder().decode(this.bytes.subarray(p + 46, p + 46 + nameLen));
      // ZIP64 extra field (0x0001): the 64-bit values of the fields that read 0xffffffff, in this order.
      for (let e = p + 46 + nameLen; e + 4 <= p + 46 + nameLen + extraLen;) {
        const id = this.u16(e), len = this.u16(e + 2);
        if (id === 0x0001) {
          let q = e + 4;
          if (usize === 0xffffffff) { usize = this.u64(q); q += 8; }
          if (csize === 0xffffffff) { csize = this.u64(q); q += 8; }
          if (local === 0xffffffff) { local = this.u64(q); q += 8; }
        }
        e += 4 + len;
      }
      this.entries.set(name, { name, method, compressedSize: csize, size: usize, crc32: crc, localHeaderOffset: local, flags });
      p += 46 + nameLen + extraLen + commentLen;
    }
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  /** An entry's bytes (a view of the file when stored), after checking its CRC-32. */
  read(name: string): Uint8Array {
    const e = this.entries.get(name);
    if (!e) this.fail(`has no entry ${name}`);
    if (e.flags & 1) this.fail(`has an encrypted entry ${name}`);
    const h = e.localHeaderOffset;
    if (h + 30 > this.bytes.length || this.u32(h) !== LOCAL) this.fail(`is a damaged zip archive: the local header of ${name} is missing`);
    const start = h + 30 + this.u16(h + 26) + this.u16(h + 28);
    const end = start + e.compressedSize;
    if (end > this.bytes.length) this.fail(`is truncated: entry ${name} needs bytes ${start} to ${end} but the file has ${this.bytes.length}`);
    let data: Uint8Array;
    if (e.method === 0) data = this.bytes.subarray(start, end);
    else if (e.method === 8) {
      try {
        data = inflateRawSync(this.bytes.subarray(start, end));
      } catch (err) {
        this.fail(`has a corrupt deflated entry ${name} (${(err as Error).message})`);
      }
    } else this.fail(`has entry ${name} compressed with zip method ${e.method}, which this reader does not read (only stored and deflated)`);
    if (data.length !== e.size) this.fail(`has entry ${name} of ${data.length} bytes where the directory says ${e.size}`);
    if ((crc32(data) >>> 0) !== e.crc32) this.fail(`is corrupt: entry ${name} fails its CRC-32 check`);
    return data;
  }
}

/** True when the bytes start like a zip archive (a local file header). */
export function looksLikeZip(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 0x03 && bytes[3] === 0x04;
}
