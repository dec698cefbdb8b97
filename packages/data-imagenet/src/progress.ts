/**
 * Progress lines for the whole project (prepare, statistics, training epochs): a label, done/total,
 * a bar, a rate, the ETA and optional key/value fields such as loss, top-1 and learning rate:
 *
 *   epoch 3 1200/10009 [##......................] 412 img/s ETA 17:48 loss 4.123 top-1 12.5% lr 0.01
 *
 * On a terminal the line is redrawn in place; on anything else (a log file, CI) it is written as
 * a plain line at most every few seconds, and once at the end. The stream and the clock are
 * injectable, for tests.
 */

/** Where progress goes: process.stderr, a file stream, or anything with `write` (tests). */
export interface ProgressStream {
  write(chunk: string): unknown;
  /** true: a terminal, redrawn in place. */
  isTTY?: boolean;
  /** Terminal width: longer lines are cut so that redrawing in place still works. */
  columns?: number;
}

/** Extra fields, shown in insertion order as "key value"; numbers with 4 significant digits, NaN as "-". */
export type ProgressFields = Record<string, string | number>;

/** Everything one progress line shows. */
export interface ProgressLineState {
  label: string;
  done: number;
  total: number;
  /** Units per second. */
  rate: number;
  /** What the rate counts: "img" reads "412 img/s". */
  unit: string;
  etaSeconds: number;
  fields?: ProgressFields;
}

/** The counts of prepare and computeStatistics, as their `progress` callbacks receive them. */
export interface ProgressState {
  done: number;
  total: number;
  elapsedSeconds: number;
  imagesPerSecond: number;
  etaSeconds: number;
}

function clock(s: number): string {
  if (!Number.isFinite(s)) return '--:--';
  s = Math.round(s);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  const mm = String(m).padStart(2, '0'), ss = String(sec).padStart(2, '0');
  return h > 0 ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

function formatRate(r: number): string {
  if (!Number.isFinite(r)) return '-';
  return r >= 10 || r === 0 ? r.toFixed(0) : r >= 1 ? r.toFixed(1) : r.toFixed(2);
}

function formatField(v: string | number): string {
  if (typeof v === 'string') return v;
  if (!Number.isFinite(v)) return '-';
  return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(4)));
}

/** "label done/total [bar] rate unit/s ETA mm:ss key value ...". */
export function formatProgressLine(s: ProgressLineState, width = 24): string {
  const frac = s.total > 0 ? Math.min(1, Math.max(0, s.done / s.total)) : 1;
  const fill = Math.round(frac * width);
  const bar = '#'.repeat(fill) + '.'.repeat(width - fill);
  const fields = Object.entries(s.fields ?? {}).map(([k, v]) => ` ${k} ${formatField(v)}`).join('');
  return `${s.label} ${s.done}/${s.total} [${bar}] ${formatRate(s.rate)} ${s.unit}/s ETA ${clock(s.etaSeconds)}${fields}`;
}

/** The line of prepare's counts: images per second. */
export function formatProgress(label: string, p: ProgressState, width = 24): string {
  return formatProgressLine({ label, done: p.done, total: p.total, rate: p.imagesPerSecond, unit: 'img', etaSeconds: p.etaSeconds }, width);
}

/**
 * Writes successive lines: in place on a terminal (at most every `redrawMs`), else as plain lines
 * (the first, then at most every `intervalMs`, and the last).
 */
class LineWriter {
  private last = -Infinity;
  private drawn = false;
  private ended = false;
  constructor(
    private readonly stream: ProgressStream,
    readonly tty: boolean,
    private readonly intervalMs: number,
    private readonly redrawMs: number,
    private readonly now: () => number,
  ) {}

  private fit(line: string): string {
    const cols = this.stream.columns;
    return this.tty && cols && cols > 1 && line.length >= cols ? line.slice(0, cols - 1) : line;
  }

  /** A line; `last` marks the one that completes the work (always written, once, off a terminal). */
  write(line: string, last: boolean): void {
    if (this.ended) return;
    const t = this.now();
    if (this.tty) {
      if (!this.drawn || t - this.last >= this.redrawMs || last) {
        this.stream.write(`\r${this.fit(line)}\x1b[K`);
        this.last = t;
        this.drawn = true;
      }
    } else if (last || t - this.last >= this.intervalMs) {
      this.stream.write(line + '\n');
      this.last = t;
      if (last) this.ended = true;
    }
  }

  /** Erases the line being redrawn, so that other output can be written (a terminal only). */
  clear(): void {
    if (this.tty && this.drawn && !this.ended) {
      this.stream.write('\r\x1b[K');
      this.drawn = false;
    }
  }

  /** The final line: redrawn and ended on a terminal; written unless already written otherwise. */
  end(line: string): void {
    if (this.ended) return;
    if (this.tty) this.stream.write(`\r${this.fit(line)}\x1b[K\n`);
    else this.stream.write(line + '\n');
    this.ended = true;
  }
}

export interface ProgressOptions {
  /** Shown first: "prepare", "epoch 3". */
  label: string;
  /** Steps in all. */
  total: number;
  /** What the rate counts (default "it"). */
  unit?: string;
  /** Units per step (default 1): e.g. the batch size, to show images/s while counting steps. */
  unitsPerStep?: number;
  /** Steps already done when the line starts (a resumed epoch): the rate counts from here. */
  initial?: number;
  /** Default process.stderr. */
  stream?: ProgressStream;
  /** Draw in place (default: stream.isTTY). */
  tty?: boolean;
  /** Off a terminal: a line at most this often (default 5 s), plus the last. */
  intervalSeconds?: number;
  /** On a terminal: redraw at most this often (default 0.1 s). */
  redrawSeconds?: number;
  /** Bar width in characters (default 24). */
  width?: number;
  /** Milliseconds clock (default performance.now), for tests. */
  now?: () => number;
  /** false: draw nothing (default true). */
  enabled?: boolean;
}

/**
 * A progress line. `update(done, fields)` (or `add(n, fields)`) as work completes; `clear()` before
 * printing something else on a terminal (the next update redraws); `finish()` at the end (prints
 * the final line and ends it; later calls do nothing). Reaching `total` writes the line off a
 * terminal even within the interval.
 */
export class Progress {
  readonly label: string;
  readonly total: number;
  readonly unit: string;
  private readonly unitsPerStep: number;
  private readonly initial: number;
  private readonly width: number;
  private readonly now: () => number;
  private readonly t0: number;
  private readonly writer: LineWriter | null;
  private done: number;
  private fields: ProgressFields | undefined;

  constructor(opts: ProgressOptions) {
    this.label = opts.label;
    this.total = opts.total;
    this.unit = opts.unit ?? 'it';
    this.unitsPerStep = opts.unitsPerStep ?? 1;
    this.initial = opts.initial ?? 0;
    this.done = this.initial;
    this.width = opts.width ?? 24;
    this.now = opts.now ?? (() => performance.now());
    this.t0 = this.now();
    const stream = opts.stream ?? process.stderr;
    this.writer = opts.enabled === false ? null
      : new LineWriter(stream, opts.tty ?? stream.isTTY === true, (opts.intervalSeconds ?? 5) * 1000, (opts.redrawSeconds ?? 0.1) * 1000, this.now);
  }

  /** Sets the steps done (and the fields, when given), drawing when due. */
  update(done: number, fields?: ProgressFields): void {
    this.done = done;
    if (fields) this.fields = fields;
    this.writer?.write(this.line(), done >= this.total);
  }

  /** Adds `n` steps done (default 1). */
  add(n = 1, fields?: ProgressFields): void {
    this.update(this.done + n, fields);
  }

  /** Erases the line on a terminal, to print something else; the next update draws it again. */
  clear(): void {
    this.writer?.clear();
  }

  /** Draws the final line and ends it. */
  finish(fields?: ProgressFields): void {
    if (fields) this.fields = fields;
    this.writer?.end(this.line());
  }

  state(): ProgressLineState {
    const el = (this.now() - this.t0) / 1000;
    const rate = el > 0 ? ((this.done - this.initial) * this.unitsPerStep) / el : 0;
    const left = Math.max(0, this.total - this.done) * this.unitsPerStep;
    return {
      label: this.label, done: this.done, total: this.total, rate, unit: this.unit,
      etaSeconds: left === 0 ? 0 : rate > 0 ? left / rate : Infinity,
      ...(this.fields ? { fields: this.fields } : {}),
    };
  }

  line(): string {
    return formatProgressLine(this.state(), this.width);
  }
}

/** Counts images and hands the counts to a callback, at most every 200 ms and at the end. */
export class ProgressMeter {
  private done = 0;
  private readonly t0 = performance.now();
  private lastDraw = 0;
  constructor(
    readonly total: number,
    private readonly sink: ((p: ProgressState) => void) | null,
  ) {}

  add(n: number): void {
    this.done += n;
    const now = performance.now();
    if (this.sink && (now - this.lastDraw > 200 || this.done >= this.total)) {
      this.lastDraw = now;
      this.sink(this.state());
    }
  }

  state(): ProgressState {
    const el = (performance.now() - this.t0) / 1000;
    const rate = el > 0 ? this.done / el : 0;
    return { done: this.done, total: this.total, elapsedSeconds: el, imagesPerSecond: rate, etaSeconds: rate > 0 ? (this.total - this.done) / rate : Infinity };
  }
}

/**
 * A `progress` callback that draws prepare's counts to `stream` (default stderr): in place on a
 * terminal, otherwise a line at most every 5 seconds and at the end.
 */
export function stderrProgress(label: string, stream: ProgressStream = process.stderr): (p: ProgressState) => void {
  const w = new LineWriter(stream, stream.isTTY === true, 5000, 0, () => performance.now());
  return (p) => {
    const line = formatProgress(label, p);
    if (p.done >= p.total) w.end(line);
    else w.write(line, false);
  };
}

/**
 * The `progress` option of prepare and computeStatistics: true draws a line on stderr, a function
 * receives the counts, anything else does nothing.
 */
export function progressOption(
  option: boolean | ((p: ProgressState) => void) | undefined,
  label: string,
  total: number,
): { add(n: number): void; finish(): void } {
  if (option === true) {
    const p = new Progress({ label, total, unit: 'img' });
    return { add: (n) => p.add(n), finish: () => p.finish() };
  }
  const m = new ProgressMeter(total, typeof option === 'function' ? option : null);
  return { add: (n) => m.add(n), finish: () => undefined };
}
