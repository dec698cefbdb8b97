/**
 * metrics.jsonl: one JSON object per line, written as the run goes (buffered, flushed every few
 * seconds and before every checkpoint, so `tail -f` follows a run on ImageNet). Line types:
 * - recipe: what the run does (data, mean, lighting, model, init, optimizer, schedule, devices), once;
 * - step: one per training step (step, epoch, loss, top-1, lr, img/s, time);
 * - epoch: one per finished epoch (losses, errors, lr, img/s, memory);
 * - bad-images: images that failed to load, with the step that met them.
 *
 * A resumed run first cuts the file back to what its checkpoint had seen (steps before the
 * checkpoint's step, epochs it had finished), so after a crash and `--resume` the log reads exactly
 * as an uninterrupted run's: no step or epoch twice.
 */
import { existsSync } from 'node:fs';
import { appendFile, readFile, rename, writeFile } from 'node:fs/promises';

export interface MetricsPosition {
  /** Steps taken (the next step's index). */
  step: number;
  /** Epochs finished. */
  epoch: number;
}

type Line = { type?: unknown; step?: unknown; epoch?: unknown };

/** Whether a line of a log belongs before `at` (and so survives a resume from there). */
function before(l: Line, at: MetricsPosition): boolean {
  switch (l.type) {
    case 'step':
    case 'bad-images':
      return typeof l.step === 'number' && l.step < at.step;
    case 'epoch':
      return typeof l.epoch === 'number' && l.epoch <= at.epoch;
    default:
      return true; // the recipe, and lines of other tools
  }
}

export class MetricsLog {
  private buffer: string[] = [];
  private timer: NodeJS.Timeout | null = null;
  private writing: Promise<void> = Promise.resolve();
  private failed: Error | null = null;

  private constructor(readonly path: string, private readonly flushMs: number) {}

  /**
   * Opens the log. `resumeAt`: the position of the checkpoint a run resumes from; lines after it
   * (written by the interrupted run after its last checkpoint) are dropped, atomically.
   * Returns the log and whether it already holds a recipe line.
   */
  static async open(path: string, opts: { resumeAt?: MetricsPosition; flushMs?: number } = {}): Promise<{ log: MetricsLog; hasRecipe: boolean }> {
    const log = new MetricsLog(path, opts.flushMs ?? 2000);
    let hasRecipe = false;
    if (opts.resumeAt && existsSync(path)) {
      const text = await readFile(path, 'utf8');
      const kept: string[] = [];
      for (const raw of text.split('\n')) {
        if (raw.trim() === '') continue;
        let l: Line;
        try { l = JSON.parse(raw) as Line; } catch { continue; } // a line cut by a kill mid-write
        if (!before(l, opts.resumeAt)) continue;
        if (l.type === 'recipe') hasRecipe = true;
        kept.push(raw);
      }
      const tmp = `${path}.tmp-${process.pid}`;
      await writeFile(tmp, kept.length ? `${kept.join('\n')}\n` : '');
      await rename(tmp, path);
    } else if (!opts.resumeAt) {
      await writeFile(path, ''); // a fresh run starts a fresh log
    }
    return { log, hasRecipe };
  }

  /** A log that writes nothing (the processes other than rank 0 of a data-parallel run). */
  static discard(): MetricsLog {
    const log = new MetricsLog('', 0);
    log.write = () => undefined;
    return log;
  }

  /** Queues a line; it reaches the file within flushMs. */
  write(record: Record<string, unknown>): void {
    this.buffer.push(JSON.stringify(record));
    if (!this.timer) {
      this.timer = setTimeout(() => { this.timer = null; void this.flush().catch(() => undefined); }, this.flushMs);
      this.timer.unref();
    }
  }

  /** Writes every queued line (in order). Throws if a write failed. */
  flush(): Promise<void> {
    if (this.timer) { clearTimeout(this.timer); this.timer = null; }
    const lines = this.buffer;
    this.buffer = [];
    if (lines.length > 0) {
      this.writing = this.writing.then(() => appendFile(this.path, `${lines.join('\n')}\n`)).catch((e: Error) => {
        this.failed ??= new Error(`cannot write ${this.path}: ${e.message}`);
      });
    }
    return this.writing.then(() => { if (this.failed) throw this.failed; });
  }

  async close(): Promise<void> {
    await this.flush();
  }
}
