/**
 * Follows a growing line file (metrics.jsonl) the way `tail -F` does, for one reader:
 * - it hands out complete lines only: a last line without its newline waits until it has one;
 * - a file that does not exist yet is waited for;
 * - a file cut back, replaced (a new inode: the trainer's resume writes a shortened copy and renames it
 *   over the log) or rewritten from the start (a fresh run in the same folder truncates it, and its new
 *   first line differs) is read again from the start, after a `reset`.
 * It reads only when poked: the server pokes every follower on fs.watch events and on a timer.
 */
import { open, stat } from 'node:fs/promises';

export type ResetReason = 'truncated' | 'replaced' | 'rewritten' | 'removed';

export interface FollowerSink {
  /** Complete lines, in file order (without their newline; empty lines left out). */
  lines(lines: string[]): void | Promise<void>;
  /** The file changed under the reader: what was sent is void; lines start again from the file's start. */
  reset(reason: ResetReason): void | Promise<void>;
}

/** Read this much at a time, so a long log goes out in pieces. */
const CHUNK = 1 << 20;
/** The first line (the recipe, with its time) tells one run's log from the next; this much of it is kept. */
const FIRST_LINE_MAX = 1 << 16;

export class LineFollower {
  /** Bytes of the file consumed (complete lines sent plus `partial`). */
  private read = 0;
  private partial: Buffer = Buffer.alloc(0);
  private ino: number | null = null;
  private mtimeMs = -1;
  /** The file's first line (or its first FIRST_LINE_MAX bytes), once read. */
  private first: Buffer | null = null;
  private running: Promise<void> | null = null;
  private again = false;
  private closed = false;

  constructor(readonly path: string, private readonly sink: FollowerSink) {}

  /** Reads whatever is new. Calls made while a read runs fold into one more read after it. */
  poke(): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.running) { this.again = true; return this.running; }
    this.running = (async () => {
      try {
        do { this.again = false; await this.step(); } while (this.again && !this.closed);
      } finally {
        this.running = null;
      }
    })();
    return this.running;
  }

  close(): void {
    this.closed = true;
  }

  private async restart(reason: ResetReason): Promise<void> {
    this.read = 0;
    this.partial = Buffer.alloc(0);
    this.first = null;
    this.mtimeMs = -1;
    await this.sink.reset(reason);
  }

  private async step(): Promise<void> {
    let st;
    try { st = await stat(this.path); } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      if (this.ino !== null) { this.ino = null; await this.restart('removed'); }
      return;
    }
    if (!st.isFile()) return;
    if (this.ino !== null && st.ino !== this.ino) await this.restart('replaced');
    else if (st.size < this.read) await this.restart('truncated');
    else if (st.size === this.read && st.mtimeMs === this.mtimeMs) return;
    this.ino = st.ino;
    const fh = await open(this.path, 'r').catch((e: NodeJS.ErrnoException) => { if (e.code === 'ENOENT') return null; throw e; });
    if (!fh) return; // gone between stat and open: the next poke sees it
    try {
      if (this.first) {
        const now = Buffer.alloc(this.first.length);
        const { bytesRead } = await fh.read(now, 0, now.length, 0);
        if (bytesRead < now.length || !now.equals(this.first)) await this.restart('rewritten');
      }
      this.mtimeMs = st.mtimeMs;
      const buf = Buffer.allocUnsafe(Math.min(CHUNK, Math.max(4096, st.size - this.read)));
      for (;;) {
        if (this.closed) return;
        const { bytesRead } = await fh.read(buf, 0, buf.length, this.read);
        if (bytesRead === 0) return;
        const dataStart = this.read - this.partial.length; // the file offset of data[0]
        this.read += bytesRead;
        const data = this.partial.length ? Buffer.concat([this.partial, buf.subarray(0, bytesRead)]) : buf.subarray(0, bytesRead);
        if (!this.first && dataStart === 0) this.noteFirst(data);
        const end = data.lastIndexOf(0x0a);
        if (end < 0) { this.partial = Buffer.from(data); continue; }
        this.partial = Buffer.from(data.subarray(end + 1));
        const lines = data.subarray(0, end).toString('utf8').split('\n')
          .map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l)).filter((l) => l.trim() !== '');
        if (lines.length) await this.sink.lines(lines);
      }
    } finally {
      await fh.close();
    }
  }

  /** Keeps the first line once it is complete (or its first FIRST_LINE_MAX bytes); `start` begins at the file's first byte. */
  private noteFirst(start: Buffer): void {
    const nl = start.indexOf(0x0a);
    if (nl >= 0) this.first = Buffer.from(start.subarray(0, Math.min(nl + 1, FIRST_LINE_MAX)));
    else if (start.length >= FIRST_LINE_MAX) this.first = Buffer.from(start.subarray(0, FIRST_LINE_MAX));
  }
}
