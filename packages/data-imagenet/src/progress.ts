/** A one-line progress bar: count, images/s and ETA, redrawn in place on a terminal. */
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

export function formatProgress(label: string, p: ProgressState, width = 24): string {
  const frac = p.total > 0 ? Math.min(1, p.done / p.total) : 1;
  const fill = Math.round(frac * width);
  const bar = '#'.repeat(fill) + '.'.repeat(width - fill);
  return `${label} ${p.done}/${p.total} [${bar}] ${p.imagesPerSecond.toFixed(0)} img/s ETA ${clock(p.etaSeconds)}`;
}

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

/** Draws to stderr: in place on a TTY, otherwise a line at most every 5 seconds and at the end. */
export function stderrProgress(label: string): (p: ProgressState) => void {
  const tty = process.stderr.isTTY === true;
  let last = -Infinity;
  return (p) => {
    const line = formatProgress(label, p);
    if (tty) {
      process.stderr.write(`\r${line}\x1b[K${p.done >= p.total ? '\n' : ''}`);
    } else if (p.done >= p.total || p.elapsedSeconds - last >= 5) {
      last = p.elapsedSeconds;
      process.stderr.write(line + '\n');
    }
  };
}
