/**
 * The shard format: one file per `shardSize` consecutive images of a split, little-endian.
 *
 *   offset  size  field
 *   0       8     magic "ALXSHRD1"
 *   8       4     u32 version (1)
 *   12      4     u32 count: records in this shard
 *   16      4     u32 height (256)
 *   20      4     u32 width (256)
 *   24      4     u32 channels (3, RGB)
 *   28      4     u32 encoding: 0 = raw uint8 HWC, 1 = JPEG
 *   32      4     u32 JPEG quality (0 when raw)
 *   36      4     u32 metaLength: bytes of the UTF-8 JSON block
 *   40      8     u64 metaOffset: where the JSON block starts
 *   48      8     u64 dataOffset: where the first record starts
 *   56      8     reserved (0)
 *   64      24*n  index, one entry per record:
 *                   u64 offset (absolute), u32 length, i32 label, u32 sample, u32 reserved
 *   dataOffset    records: height*width*channels bytes each when raw, a JPEG file each when encoded
 *   metaOffset    JSON { split, shard, first, end, sources: [relative path per record],
 *                        failures: [{ path, reason }] }
 *
 * `sample` is the record's position in the split's sorted file list (the index), so records keep
 * their identity across shards; shard k of a split holds the images first..end-1 of that list that
 * decoded. A shard is written under a temporary name and renamed when complete, so a file with the
 * final name is always whole; its total size (metaOffset + metaLength) is checked on open, and so
 * is its index (`readShardInfo`): every record inside the data region, no two overlapping, raw
 * records exactly height*width*channels bytes, labels in [0, classes).
 */
import { open, type FileHandle } from 'node:fs/promises';
import { openSync, readSync, closeSync, fstatSync } from 'node:fs';
import { ImageNetDataError, fsReason } from './errors.js';

export const SHARD_MAGIC = 'ALXSHRD1';
export const SHARD_VERSION = 1;
export const HEADER_BYTES = 64;
export const ENTRY_BYTES = 24;

export type ShardEncoding = 'raw' | 'jpeg';

export interface ShardHeader {
  count: number;
  height: number;
  width: number;
  channels: number;
  encoding: ShardEncoding;
  quality: number;
  metaOffset: number;
  metaLength: number;
  dataOffset: number;
}

export interface ShardEntry {
  offset: number;
  length: number;
  label: number;
  sample: number;
}

export interface ShardMeta {
  split: string;
  shard: number;
  first: number;
  end: number;
  sources: string[];
  failures: { path: string; reason: string }[];
}

export interface ShardInfo {
  path: string;
  header: ShardHeader;
  entries: ShardEntry[];
  meta: ShardMeta;
}

export function shardFileName(split: string, shard: number): string {
  return `${split}-${String(shard).padStart(5, '0')}.shard`;
}

function encodeHeader(h: ShardHeader): Buffer {
  const b = Buffer.alloc(HEADER_BYTES);
  b.write(SHARD_MAGIC, 0, 'latin1');
  b.writeUInt32LE(SHARD_VERSION, 8);
  b.writeUInt32LE(h.count, 12);
  b.writeUInt32LE(h.height, 16);
  b.writeUInt32LE(h.width, 20);
  b.writeUInt32LE(h.channels, 24);
  b.writeUInt32LE(h.encoding === 'jpeg' ? 1 : 0, 28);
  b.writeUInt32LE(h.quality, 32);
  b.writeUInt32LE(h.metaLength, 36);
  b.writeBigUInt64LE(BigInt(h.metaOffset), 40);
  b.writeBigUInt64LE(BigInt(h.dataOffset), 48);
  return b;
}

/** Parses the 64-byte header; throws a sentence naming the file when it is not a shard. */
export function decodeHeader(b: Buffer, path: string): ShardHeader {
  if (b.length < HEADER_BYTES || b.toString('latin1', 0, 8) !== SHARD_MAGIC) {
    throw new ImageNetDataError(`${path} is not an @alexnet/data-imagenet shard (no ${SHARD_MAGIC} magic)`, path);
  }
  const version = b.readUInt32LE(8);
  if (version !== SHARD_VERSION) throw new ImageNetDataError(`${path} is shard format version ${version}; this reader knows ${SHARD_VERSION}`, path);
  return {
    count: b.readUInt32LE(12),
    height: b.readUInt32LE(16),
    width: b.readUInt32LE(20),
    channels: b.readUInt32LE(24),
    encoding: b.readUInt32LE(28) === 1 ? 'jpeg' : 'raw',
    quality: b.readUInt32LE(32),
    metaLength: b.readUInt32LE(36),
    metaOffset: Number(b.readBigUInt64LE(40)),
    dataOffset: Number(b.readBigUInt64LE(48)),
  };
}

/** Streams records into a temporary file; `finish` writes index, JSON and header, syncs and closes. */
export class ShardWriter {
  private pos: number;
  private entries: ShardEntry[] = [];
  private constructor(
    private readonly fh: FileHandle,
    readonly path: string,
    private readonly capacity: number,
    private readonly layout: { height: number; width: number; channels: number; encoding: ShardEncoding; quality: number },
  ) {
    this.pos = HEADER_BYTES + ENTRY_BYTES * capacity;
  }

  static async create(
    path: string,
    capacity: number,
    layout: { height: number; width: number; channels: number; encoding: ShardEncoding; quality: number },
  ): Promise<ShardWriter> {
    return new ShardWriter(await open(path, 'w'), path, capacity, layout);
  }

  get count(): number {
    return this.entries.length;
  }

  async append(record: Uint8Array, label: number, sample: number): Promise<void> {
    if (this.entries.length >= this.capacity) throw new Error(`${this.path} is full (${this.capacity} records)`);
    await this.fh.write(record, 0, record.length, this.pos);
    this.entries.push({ offset: this.pos, length: record.length, label, sample });
    this.pos += record.length;
  }

  async finish(meta: ShardMeta): Promise<void> {
    const n = this.entries.length;
    const idx = Buffer.alloc(ENTRY_BYTES * n);
    this.entries.forEach((e, i) => {
      const o = i * ENTRY_BYTES;
      idx.writeBigUInt64LE(BigInt(e.offset), o);
      idx.writeUInt32LE(e.length, o + 8);
      idx.writeInt32LE(e.label, o + 12);
      idx.writeUInt32LE(e.sample, o + 16);
    });
    const json = Buffer.from(JSON.stringify(meta), 'utf8');
    await this.fh.write(idx, 0, idx.length, HEADER_BYTES);
    await this.fh.write(json, 0, json.length, this.pos);
    const header = encodeHeader({
      count: n,
      ...this.layout,
      metaOffset: this.pos,
      metaLength: json.length,
      dataOffset: HEADER_BYTES + ENTRY_BYTES * this.capacity,
    });
    await this.fh.write(header, 0, header.length, 0);
    await this.fh.datasync();
    await this.fh.close();
  }

  async abandon(): Promise<void> {
    await this.fh.close().catch(() => undefined);
  }
}

/** What the manifest says a shard holds; `readShardInfo` checks the shard against it. */
export interface ShardExpectations {
  /** Number of classes: every label must be in [0, classes). Without it only negative labels are refused. */
  classes?: number;
  /** Side of the square images. */
  size?: number;
  encoding?: ShardEncoding;
  /** The file the expectations come from, for messages (default "the manifest"). */
  source?: string;
}

/**
 * Reads a shard's header, index and JSON block (not the records) and checks them: the file is
 * complete, the header is consistent, every index entry lies inside the records and overlaps no
 * other, a raw record is exactly height*width*channels bytes, and labels are in [0, classes). A
 * failure is an ImageNetDataError naming the file and the entry.
 */
export function readShardInfo(path: string, expect: ShardExpectations = {}): ShardInfo {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw new ImageNetDataError(`cannot read shard ${path}: ${fsReason(e)}`, path);
  }
  try {
    const hb = Buffer.alloc(HEADER_BYTES);
    let size: number;
    try {
      size = fstatSync(fd).size;
      readSync(fd, hb, 0, HEADER_BYTES, 0);
    } catch (e) {
      throw new ImageNetDataError(`cannot read shard ${path}: ${fsReason(e)}`, path);
    }
    const header = decodeHeader(hb, path);
    if (size !== header.metaOffset + header.metaLength) {
      throw new ImageNetDataError(`${path} is incomplete: ${size} bytes, header says ${header.metaOffset + header.metaLength}`, path);
    }
    const indexEnd = HEADER_BYTES + ENTRY_BYTES * header.count;
    if (header.dataOffset < indexEnd || header.metaOffset < header.dataOffset) {
      throw new ImageNetDataError(
        `${path} is corrupt: its header puts the records at bytes ${header.dataOffset}..${header.metaOffset}, which overlaps the index of ${header.count} entries (bytes ${HEADER_BYTES}..${indexEnd})`,
        path,
      );
    }
    const ib = Buffer.alloc(ENTRY_BYTES * header.count);
    readSync(fd, ib, 0, ib.length, HEADER_BYTES);
    const entries: ShardEntry[] = [];
    for (let i = 0; i < header.count; i++) {
      const o = i * ENTRY_BYTES;
      entries.push({
        offset: Number(ib.readBigUInt64LE(o)),
        length: ib.readUInt32LE(o + 8),
        label: ib.readInt32LE(o + 12),
        sample: ib.readUInt32LE(o + 16),
      });
    }
    const mb = Buffer.alloc(header.metaLength);
    readSync(fd, mb, 0, mb.length, header.metaOffset);
    let meta: ShardMeta;
    try {
      meta = JSON.parse(mb.toString('utf8')) as ShardMeta;
    } catch (e) {
      throw new ImageNetDataError(`${path} has a corrupt JSON block: ${(e as Error).message}`, path);
    }
    const info = { path, header, entries, meta };
    checkShardInfo(info, expect);
    return info;
  } finally {
    closeSync(fd);
  }
}

function describeImages(h: { height: number; width: number; channels: number; encoding: ShardEncoding }): string {
  return `${h.height}x${h.width}x${h.channels} ${h.encoding === 'jpeg' ? 'JPEG' : 'raw'}`;
}

/** The checks of `readShardInfo` on an index already read (cheap: a pass over the entries and a sort). */
export function checkShardInfo(info: ShardInfo, expect: ShardExpectations = {}): void {
  const { path, header: h, entries } = info;
  const fail = (m: string) => new ImageNetDataError(m, path);
  const source = expect.source ?? 'the manifest';
  if ((expect.size !== undefined && (h.height !== expect.size || h.width !== expect.size)) || h.channels !== 3 ||
      (expect.encoding !== undefined && h.encoding !== expect.encoding)) {
    const want = { height: expect.size ?? h.height, width: expect.size ?? h.width, channels: 3, encoding: expect.encoding ?? h.encoding };
    throw fail(`${path} holds ${describeImages(h)} images, but ${source} says ${describeImages(want)}`);
  }
  if (!Array.isArray(info.meta.sources) || info.meta.sources.length !== entries.length) {
    throw fail(`${path} lists ${Array.isArray(info.meta.sources) ? info.meta.sources.length : 'no'} source files in its JSON block for ${entries.length} index entries`);
  }
  const rawBytes = h.height * h.width * h.channels;
  const classes = expect.classes;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!;
    if (e.label < 0 || (classes !== undefined && e.label >= classes)) {
      throw fail(
        classes !== undefined
          ? `${path} entry ${i} has label ${e.label}, outside the ${classes} classes (0..${classes - 1}) of ${source}`
          : `${path} entry ${i} has the negative label ${e.label}`,
      );
    }
    if (h.encoding === 'raw' && e.length !== rawBytes) {
      throw fail(`${path} entry ${i} is ${e.length} bytes long, but a raw ${h.height}x${h.width}x${h.channels} record is ${rawBytes} bytes`);
    }
    if (e.length === 0) throw fail(`${path} entry ${i} is an empty record (0 bytes)`);
    if (e.offset < h.dataOffset || e.offset + e.length > h.metaOffset) {
      throw fail(`${path} entry ${i} points at bytes ${e.offset}..${e.offset + e.length}, outside the records (bytes ${h.dataOffset}..${h.metaOffset})`);
    }
  }
  const byOffset = Array.from(entries.keys()).sort((a, b) => entries[a]!.offset - entries[b]!.offset);
  for (let k = 1; k < byOffset.length; k++) {
    const a = entries[byOffset[k - 1]!]!, b = entries[byOffset[k]!]!;
    if (b.offset < a.offset + a.length) {
      const [i, j] = [byOffset[k - 1]!, byOffset[k]!].sort((x, y) => x - y);
      const [ei, ej] = [entries[i!]!, entries[j!]!];
      throw fail(`${path} entries ${i} and ${j} overlap (bytes ${ei.offset}..${ei.offset + ei.length} and ${ej.offset}..${ej.offset + ej.length})`);
    }
  }
}

/** Reads records by file descriptor; one per worker, files opened lazily and kept open. */
export class ShardReader {
  private fds = new Map<string, number>();

  /** Reads `length` bytes at `offset`; a failure is an ImageNetDataError "cannot read shard PATH: ...". */
  read(path: string, offset: number, length: number, out?: Uint8Array): Uint8Array {
    const fail = (why: string) => new ImageNetDataError(`cannot read shard ${path}: ${why}`, path);
    let fd = this.fds.get(path);
    if (fd === undefined) {
      try {
        fd = openSync(path, 'r');
      } catch (e) {
        throw fail(fsReason(e));
      }
      this.fds.set(path, fd);
    }
    const buf = out ?? new Uint8Array(length);
    let done = 0;
    while (done < length) {
      let n: number;
      try {
        n = readSync(fd, buf, done, length - done, offset + done);
      } catch (e) {
        throw fail(fsReason(e));
      }
      if (n === 0) {
        throw fail(`the file ends at byte ${offset + done}, inside a record of ${length} bytes at byte ${offset} (it was truncated after it was opened)`);
      }
      done += n;
    }
    return buf;
  }

  close(): void {
    for (const fd of this.fds.values()) closeSync(fd);
    this.fds.clear();
  }
}
