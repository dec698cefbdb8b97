/**
 * A protocol-buffers writer, enough for ONNX: varints, 32-bit floats, length-delimited strings, bytes
 * and nested messages. A message is kept as a list of chunks with its total length, so a parent can
 * write the child's length before it without copying it, and hundreds of megabytes of weights go to
 * the file as the views of the Float32Arrays they are.
 */

export class Message {
  readonly chunks: Uint8Array[] = [];
  length = 0;
  private buf = new Uint8Array(256);
  private used = 0;

  private flush(): void {
    if (this.used) {
      this.chunks.push(this.buf.subarray(0, this.used));
      this.buf = new Uint8Array(256);
      this.used = 0;
    }
  }

  private room(k: number): void {
    if (this.used + k > this.buf.length) {
      this.flush();
      if (k > this.buf.length) this.buf = new Uint8Array(k);
    }
  }

  private varintRaw(v: bigint | number): void {
    let x = BigInt.asUintN(64, BigInt(v));
    this.room(10);
    do {
      let b = Number(x & 0x7fn);
      x >>= 7n;
      if (x) b |= 0x80;
      this.buf[this.used++] = b;
      this.length++;
    } while (x);
  }

  private tag(field: number, wire: number): void {
    this.varintRaw((field << 3) | wire);
  }

  /** int32 / int64 / enum / bool fields (negative values take ten bytes, as protobuf's int64 does). */
  int(field: number, v: number | bigint): this {
    this.tag(field, 0);
    this.varintRaw(v);
    return this;
  }

  float(field: number, v: number): this {
    this.tag(field, 5);
    this.room(4);
    new DataView(this.buf.buffer, this.buf.byteOffset).setFloat32(this.used, v, true);
    this.used += 4;
    this.length += 4;
    return this;
  }

  bytes(field: number, data: Uint8Array): this {
    this.tag(field, 2);
    this.varintRaw(data.length);
    if (data.length <= 64) {
      this.room(data.length);
      this.buf.set(data, this.used);
      this.used += data.length;
    } else {
      this.flush();
      this.chunks.push(data);
    }
    this.length += data.length;
    return this;
  }

  string(field: number, s: string): this {
    return this.bytes(field, new TextEncoder().encode(s));
  }

  message(field: number, m: Message): this {
    this.tag(field, 2);
    this.varintRaw(m.length);
    this.flush();
    this.chunks.push(...m.finish().chunks);
    this.length += m.length;
    return this;
  }

  /** A packed repeated int64 field. */
  packedInts(field: number, values: readonly number[]): this {
    const m = new Message();
    for (const v of values) m.varintRaw(v);
    return this.message(field, m);
  }

  /** Closes the open chunk; the message can be written after this. */
  finish(): this {
    this.flush();
    return this;
  }

  /** The whole message in one array (for tests and small messages). */
  toBytes(): Uint8Array {
    this.finish();
    const out = new Uint8Array(this.length);
    let p = 0;
    for (const c of this.chunks) { out.set(c, p); p += c.length; }
    return out;
  }
}
