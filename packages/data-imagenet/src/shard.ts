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
 * final name is always whole; its total size (metaOffset + metaLength) is checked on open.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { openSync, readSync, closeSync, fstatSync } from 'node:fs';

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
    throw new Error(`${path} is not an @alexnet/data-imagenet shard (no ${SHARD_MAGIC} magic)`);
  }
  const version = b.readUInt32LE(8);
  if (version !== SHARD_VERSION) throw new Error(`${path} is shard format version ${version}; this reader knows ${SHARD_VERSION}`);
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

/** Reads a shard's header, index and JSON block (not the records); throws if incomplete. */
export function readShardInfo(path: string): ShardInfo {
  const fd = openSync(path, 'r');
  try {
    const hb = Buffer.alloc(HEADER_BYTES);
    readSync(fd, hb, 0, HEADER_BYTES, 0);
    const header = decodeHeader(hb, path);
    const size = fstatSync(fd).size;
    if (size !== header.metaOffset + header.metaLength) {
      throw new Error(`${path} is incomplete: ${size} bytes, header says ${header.metaOffset + header.metaLength}`);
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
    const meta = JSON.parse(mb.toString('utf8')) as ShardMeta;
    return { path, header, entries, meta };
  } finally {
    closeSync(fd);
  }
}

/** Reads records by file descriptor; one per worker, files opened lazily and kept open. */
export class ShardReader {
  private fds = new Map<string, number>();

  read(path: string, offset: number, length: number, out?: Uint8Array): Uint8Array {
    let fd = this.fds.get(path);
    if (fd === undefined) {
      fd = openSync(path, 'r');
      this.fds.set(path, fd);
    }
    const buf = out ?? new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const n = readSync(fd, buf, done, length - done, offset + done);
      if (n === 0) throw new Error(`${path} ended early reading ${length} bytes at ${offset}`);
      done += n;
    }
    return buf;
  }

  close(): void {
    for (const fd of this.fds.values()) closeSync(fd);
    this.fds.clear();
  }
}
