/**
 * A pool of worker threads running worker-tasks.ts; size 0 runs the same handler inline on the calling
 * thread. Tasks queue in submission order; `broadcast` queues a task on every worker (the loader's
 * init). Idle workers are unref'd, so a forgotten pool does not keep the process alive.
 */
import { Worker } from 'node:worker_threads';
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { reviveError, type SerializedError } from './errors.js';
import { TaskHandler, describeTask, type Task } from './worker-tasks.js';

/**
 * The compiled worker script. From dist/ it sits beside this module. Under vitest (which runs
 * src/*.ts and cannot hand a .ts file to a worker thread on Node 20) it is the built
 * ../dist/worker.js; vitest.config.ts rebuilds dist/ before the tests when src/ is newer.
 */
export function workerScriptUrl(): URL {
  const here = import.meta.url;
  if (here.endsWith('.ts')) {
    const built = new URL('../dist/worker.js', here);
    if (!existsSync(fileURLToPath(built))) {
      throw new Error(`${fileURLToPath(built)} does not exist: run "npm run build" in packages/data-imagenet before using worker threads from the TypeScript sources`);
    }
    return built;
  }
  return new URL('./worker.js', here);
}

export function defaultWorkers(): number {
  return availableParallelism();
}

interface Pending {
  id: number;
  task: Task;
  transfer: ArrayBuffer[];
  onProgress: ((n: number) => void) | undefined;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

interface Slot {
  worker: Worker;
  current: Pending | null;
  pinned: Pending[];
}

export class WorkerPool {
  private slots: Slot[] = [];
  private queue: Pending[] = [];
  private nextId = 1;
  private inline: TaskHandler | null = null;
  private closed = false;

  constructor(readonly size: number) {
    if (!Number.isInteger(size) || size < 0) throw new TypeError(`Expected a non-negative integer for workers but received ${String(size)}`);
    if (size === 0) {
      this.inline = new TaskHandler();
      return;
    }
    const url = workerScriptUrl();
    for (let i = 0; i < size; i++) {
      // Node refuses --input-type for a file entry point: a script run with `node --input-type=module -e`
      // would pass it on to every worker, which then fails to start.
      const worker = new Worker(url, { execArgv: process.execArgv.filter((a) => !a.startsWith('--input-type')) });
      const slot: Slot = { worker, current: null, pinned: [] };
      worker.unref();
      worker.on('message', (m: { id: number; progress?: number; result?: unknown; error?: SerializedError }) => {
        const p = slot.current;
        if (!p || p.id !== m.id) return;
        if (m.progress !== undefined) {
          p.onProgress?.(m.progress);
          return;
        }
        slot.current = null;
        worker.unref();
        if (m.error !== undefined) p.reject(reviveError(m.error));
        else p.resolve(m.result);
        this.dispatch();
      });
      worker.on('error', (e) => this.fail(slot, e));
      worker.on('exit', (code) => {
        if (!this.closed) {
          const doing = slot.current ? ` while ${describeTask(slot.current.task)}` : '';
          this.fail(slot, new Error(`a data-imagenet worker thread exited with code ${code}${doing}`));
        }
      });
      this.slots.push(slot);
    }
  }

  private fail(slot: Slot, e: Error): void {
    const lost = [slot.current, ...slot.pinned].filter((p): p is Pending => p !== null);
    slot.current = null;
    slot.pinned = [];
    this.slots = this.slots.filter((s) => s !== slot);
    for (const p of lost) p.reject(e);
    if (this.slots.length === 0) for (const p of this.queue.splice(0)) p.reject(e);
  }

  private dispatch(): void {
    for (const slot of this.slots) {
      if (slot.current) continue;
      const p = slot.pinned.shift() ?? this.queue.shift();
      if (!p) continue;
      slot.current = p;
      slot.worker.ref();
      slot.worker.postMessage({ id: p.id, task: p.task }, p.transfer);
    }
  }

  private make<T>(task: Task, transfer: ArrayBuffer[], onProgress?: (n: number) => void): { p: Pending; promise: Promise<T> } {
    let resolve!: (v: unknown) => void, reject!: (e: Error) => void;
    const promise = new Promise<T>((res, rej) => {
      resolve = res as (v: unknown) => void;
      reject = rej;
    });
    return { p: { id: this.nextId++, task, transfer, onProgress, resolve, reject }, promise };
  }

  /** Runs a task on the next free worker. */
  run<T>(task: Task, transfer: ArrayBuffer[] = [], onProgress?: (n: number) => void): Promise<T> {
    if (this.closed) return Promise.reject(new Error('the worker pool is closed'));
    if (this.inline) {
      return this.inline.handle(task, onProgress ?? (() => undefined)).then((r) => r.result as T);
    }
    const { p, promise } = this.make<T>(task, transfer, onProgress);
    this.queue.push(p);
    this.dispatch();
    return promise;
  }

  /** Runs a task once on every worker (structured-cloned to each). */
  broadcast(task: Task): Promise<unknown[]> {
    if (this.inline) return this.run(task).then((r) => [r]);
    const all = this.slots.map((slot) => {
      const { p, promise } = this.make<unknown>(task, []);
      slot.pinned.push(p);
      return promise;
    });
    this.dispatch();
    return Promise.all(all);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.inline?.close();
    const err = new Error('the worker pool was closed');
    for (const p of this.queue.splice(0)) p.reject(err);
    // Terminate without waiting for the threads to exit: a worker's exit can take long (or, unref'd,
    // never be waited for by the event loop), and an `await close()` that never settled made a script
    // exit with code 13 under top-level await. Nothing runs on a terminated worker.
    for (const s of this.slots) void s.worker.terminate().catch(() => undefined);
    for (const s of this.slots) {
      if (s.current) s.current.reject(err);
      for (const p of s.pinned) p.reject(err);
    }
    this.slots = [];
  }
}
