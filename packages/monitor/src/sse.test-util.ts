// Test helpers: a server-sent-events client on node:http, and small run folders.
import { get, type ClientRequest } from 'node:http';

export interface SseEvent { event: string; data: string }

export class SseClient {
  readonly events: SseEvent[] = [];
  private waiters: (() => void)[] = [];
  private constructor(private readonly req: ClientRequest) {}

  static open(url: string): Promise<SseClient> {
    return new Promise((done, fail) => {
      const req = get(url, (res) => {
        if (res.statusCode !== 200) { fail(new Error(`${url}: HTTP ${res.statusCode}`)); return; }
        res.setEncoding('utf8');
        let buf = '';
        res.on('data', (text: string) => {
          buf += text;
          let end;
          while ((end = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, end);
            buf = buf.slice(end + 2);
            let event = 'message';
            const data: string[] = [];
            for (const line of block.split('\n')) {
              if (line.startsWith('event: ')) event = line.slice(7);
              else if (line.startsWith('data: ')) data.push(line.slice(6));
            }
            if (data.length) client.events.push({ event, data: data.join('\n') });
          }
          for (const w of client.waiters.splice(0)) w();
        });
        done(client);
      });
      const client = new SseClient(req);
      req.on('error', fail);
    });
  }

  /** The lines received since the last start or reset. */
  lines(): string[] {
    let from = 0;
    this.events.forEach((e, i) => { if (e.event === 'start' || e.event === 'reset') from = i + 1; });
    return this.events.slice(from).filter((e) => e.event === 'lines').flatMap((e) => e.data.split('\n'));
  }

  named(event: string): unknown[] {
    return this.events.filter((e) => e.event === event).map((e) => JSON.parse(e.data));
  }

  /** Resolves when `ok()` holds, checking as events arrive; rejects after `ms` with what was received. */
  async until(ok: () => boolean, ms = 5000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!ok()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out; events so far: ${JSON.stringify(this.events).slice(0, 2000)}`);
      await new Promise<void>((done) => { const t = setTimeout(done, Math.min(left, 200)); this.waiters.push(() => { clearTimeout(t); done(); }); });
    }
  }

  close(): void {
    this.req.destroy();
  }
}

export const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

/** Lines of a run's metrics.jsonl, like the trainer's. */
export function recipeLine(over: Record<string, unknown> = {}): string {
  return JSON.stringify({
    type: 'recipe',
    data: { kind: 'shards', root: '/data/shards', classes: 3, trainImages: 48, validation: { kind: 'split', images: 12 } },
    mean: { kind: 'image', from: 'statistics of the whole training set, from alexnet prepare' },
    lighting: { on: true, std: 0.1, scale: 'shifts Σ αᵢλᵢpᵢ with λ on the 0..1 scale' },
    crop: 67, flip: true,
    model: { name: 'paper', weightStd: 0.01, positiveBias: 0.1, lrn: { convention: 'paper', acrossTowers: false } },
    optimizer: { form: 'paper', lr: 0.01, momentum: 0.9, weightDecay: 0.0005, biasDecay: true },
    schedule: { kind: 'plateau', watch: 'validation top-1 error', factor: 0.1, patience: 1, maxReductions: 3 },
    batch: 8, epochs: 3, devices: ['cpu:0'], placement: 'one device', seed: 0,
    time: new Date(T0).toISOString(),
    ...over,
  });
}

/** When the made-up run started: now, so that a page does not call it stale. */
export const T0 = Math.floor(Date.now() / 1000) * 1000;

/** Step `step` (0-based) of a run with `perEpoch` steps an epoch, one second apart. */
export function stepLine(step: number, perEpoch = 6, lr = 0.01): string {
  return JSON.stringify({
    type: 'step', epoch: Math.floor(step / perEpoch) + 1, step, loss: 1.1 - 0.01 * step, top1: 0.25, lr, imagesPerSecond: 8,
    time: new Date(T0 + 1000 * (1 + step)).toISOString(),
  });
}

export function epochLine(epoch: number, perEpoch = 6): string {
  return JSON.stringify({
    type: 'epoch', epoch, trainLoss: 1.1 - 0.05 * epoch, trainTop1Error: 0.7 - 0.05 * epoch, valTop1Error: 0.66 - 0.05 * epoch, valTop5Error: 0.1,
    lr: 0.01, imagesPerSecond: 8, seconds: 6, step: epoch * perEpoch, time: new Date(T0 + 1000 * (1 + epoch * perEpoch) - 500).toISOString(), memory: 1e8, rss: 5e8,
  });
}
