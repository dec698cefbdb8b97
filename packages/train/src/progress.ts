/** The live progress bar of an epoch (step, loss, top-1, images/s, learning rate, ETA). */
import type { WriteStream } from 'node:tty';

export interface StepStats {
  epoch: number;
  step: number;
  steps: number;
  loss: number;
  top1: number;
  imagesPerSecond: number;
  lr: number;
}

function fmtTime(s: number): string {
  if (!Number.isFinite(s)) return '--:--';
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = Math.floor(s % 60);
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${String(sec).padStart(2, '0')}` : `${m}:${String(sec).padStart(2, '0')}`;
}

export function formatStep(p: StepStats, width = 24): string {
  const frac = p.steps > 0 ? Math.min(1, p.step / p.steps) : 0;
  const filled = Math.round(frac * width);
  const bar = '█'.repeat(filled) + '░'.repeat(width - filled);
  return `epoch ${p.epoch} ${bar} ${p.step}/${p.steps} loss ${Number.isFinite(p.loss) ? p.loss.toFixed(4) : '-'} top-1 ${(100 * p.top1).toFixed(1)}% ` +
    `${p.imagesPerSecond.toFixed(1)} img/s lr ${p.lr.toPrecision(3)}`;
}

export class ProgressBar {
  private last = 0;
  private started = Date.now();
  constructor(private readonly stream: NodeJS.WritableStream = process.stderr, private readonly enabled = true) {}

  start(): void { this.started = Date.now(); }

  update(p: StepStats): void {
    if (!this.enabled) return;
    const elapsed = (Date.now() - this.started) / 1000;
    const eta = p.step > 0 ? (elapsed / p.step) * (p.steps - p.step) : NaN;
    const line = `${formatStep(p)} ETA ${fmtTime(eta)}`;
    const tty = (this.stream as WriteStream).isTTY;
    if (tty) {
      this.stream.write(`\r\x1b[2K${line}`);
    } else if (Date.now() - this.last > 5000 || p.step === p.steps) {
      // Not a terminal (CI, a log file): a line every few seconds instead of redrawing.
      this.stream.write(`${line}\n`);
      this.last = Date.now();
    }
  }

  done(): void {
    if (this.enabled && (this.stream as WriteStream).isTTY) this.stream.write('\n');
  }
}
