/**
 * Process groups: the processes of one job and the collectives among them. `initProcessGroup()` gives
 * an MPI group when the process was launched by mpirun, a single-process group otherwise (rank 0 of 1,
 * collectives resolve at once and leave the data as it is), so code written for N processes runs
 * unchanged as one.
 */
import { launcherEnv, type LauncherEnv } from './launcher.js';
import { addon, type CollectiveArray, type NativeAddon, type ReduceOp } from './native.js';

export type { CollectiveArray, ReduceOp } from './native.js';

export interface ProcessGroup {
  /** 'mpi': launched by mpirun; 'local': a single process. */
  readonly backend: 'mpi' | 'local';
  readonly rank: number;
  readonly size: number;
  /** Rank and count of this job's processes on this machine (for picking a GPU). */
  readonly localRank: number;
  readonly localSize: number;
  /**
   * Reduces `buf` across the group in place (every rank ends with the elementwise sum, max or min)
   * and resolves with it. Collectives run in the order they are called, on every rank: call them in
   * the same order everywhere. Many may be in flight; don't touch `buf` until its Promise settles.
   */
  allReduce<T extends CollectiveArray>(buf: T, op?: ReduceOp): Promise<T>;
  /** Overwrites `buf` on every rank with root's (in place). */
  broadcast<T extends CollectiveArray>(buf: T, root?: number): Promise<T>;
  /** Every rank's `buf`, concatenated in rank order (a new array of size x buf.length). For small arrays. */
  allGather<T extends CollectiveArray>(buf: T): Promise<T>;
  /** Resolves once every rank has called it. */
  barrier(): Promise<void>;
  /** Collectives started and not yet settled. */
  readonly pending: number;
  readonly closed: boolean;
  /**
   * Finalizes MPI after the collectives already started (a collective call on every rank); later
   * calls reject. Optional: at exit the package finalizes a group that was not closed.
   */
  close(): Promise<void>;
}

export interface InitOptions {
  /** The environment to read the launcher's variables from (default process.env). */
  env?: NodeJS.ProcessEnv;
  /**
   * 'auto' (default): MPI when launched by mpirun, else a single process. 'local': a single process
   * even under mpirun. 'mpi': MPI even without mpirun (an MPI singleton of size 1).
   */
  backend?: 'auto' | 'mpi' | 'local';
  /**
   * At a normal exit (code 0) with the group not closed, how long to wait for MPI_Finalize (which
   * waits for the other ranks, and for collectives still queued) before exiting without it.
   * Default 60 000 ms, or ALEXNET_MPI_EXIT_TIMEOUT_MS.
   */
  exitTimeoutMs?: number;
}

const ARRAY_TYPES = 'a Float32Array, Float64Array or Int32Array';

function describe(v: unknown): string {
  if (v === null) return 'null of type object';
  if (typeof v === 'object') return `${(v as object).constructor?.name ?? 'object'} of type object`;
  return `${String(v)} of type ${typeof v}`;
}

function checkArray(buf: unknown, name: string): asserts buf is CollectiveArray {
  if (!(buf instanceof Float32Array || buf instanceof Float64Array || buf instanceof Int32Array)) {
    throw new TypeError(`Expected ${ARRAY_TYPES} for ${name} but received ${describe(buf)}`);
  }
}

function checkOp(op: unknown): asserts op is ReduceOp {
  if (op !== 'sum' && op !== 'max' && op !== 'min') throw new TypeError(`Expected one of 'sum', 'max', 'min' for op but received ${describe(op)}`);
}

function checkRoot(root: unknown, size: number): asserts root is number {
  if (typeof root !== 'number' || !Number.isInteger(root) || root < 0 || root >= size) {
    throw new RangeError(`Expected integer in [0, ${size - 1}] for root but received ${describe(root)}`);
  }
}

/** Runs fn, turning a synchronous throw into a rejected Promise (every collective is asynchronous). */
function settle<T>(fn: () => Promise<T>): Promise<T> {
  try { return fn(); } catch (e) { return Promise.reject(e); }
}

/** One process: rank 0 of 1. Collectives check their arguments as the MPI group does, then resolve. */
export class LocalGroup implements ProcessGroup {
  readonly backend = 'local' as const;
  readonly rank = 0;
  readonly size = 1;
  readonly localRank = 0;
  readonly localSize = 1;
  private isClosed = false;

  private check(what: string): void {
    if (this.isClosed) throw new Error(`${what}: the process group was closed`);
  }
  allReduce<T extends CollectiveArray>(buf: T, op: ReduceOp = 'sum'): Promise<T> {
    return settle(async () => { this.check('allReduce'); checkArray(buf, 'buf'); checkOp(op); return buf; });
  }
  broadcast<T extends CollectiveArray>(buf: T, root = 0): Promise<T> {
    return settle(async () => { this.check('broadcast'); checkArray(buf, 'buf'); checkRoot(root, 1); return buf; });
  }
  allGather<T extends CollectiveArray>(buf: T): Promise<T> {
    return settle(async () => { this.check('allGather'); checkArray(buf, 'buf'); return buf.slice() as T; });
  }
  barrier(): Promise<void> {
    return settle(async () => { this.check('barrier'); });
  }
  get pending(): number { return 0; }
  get closed(): boolean { return this.isClosed; }
  async close(): Promise<void> { this.isClosed = true; }
}

/** The processes of an mpirun job, over MPI (see native/mpi/addon.cpp for the threading). */
export class MpiGroup implements ProcessGroup {
  readonly backend = 'mpi' as const;
  private isClosed = false;

  /** @internal Use initProcessGroup(). */
  constructor(private readonly native: NativeAddon, readonly rank: number, readonly size: number,
    readonly localRank: number, readonly localSize: number, readonly threadLevel: number) {}

  private check(what: string): void {
    if (this.isClosed) throw new Error(`${what}: the MPI process group was closed`);
  }
  allReduce<T extends CollectiveArray>(buf: T, op: ReduceOp = 'sum'): Promise<T> {
    return settle(() => { this.check('allReduce'); checkArray(buf, 'buf'); checkOp(op); return this.native.allReduce(buf, op); });
  }
  broadcast<T extends CollectiveArray>(buf: T, root = 0): Promise<T> {
    return settle(() => { this.check('broadcast'); checkArray(buf, 'buf'); checkRoot(root, this.size); return this.native.broadcast(buf, root); });
  }
  allGather<T extends CollectiveArray>(buf: T): Promise<T> {
    return settle(() => {
      this.check('allGather');
      checkArray(buf, 'buf');
      const recv = new (buf.constructor as new (n: number) => T)(buf.length * this.size);
      return this.native.allGather(buf, recv);
    });
  }
  barrier(): Promise<void> {
    return settle(() => { this.check('barrier'); return this.native.barrier(); });
  }
  get pending(): number { return this.native.pending(); }
  get closed(): boolean { return this.isClosed; }
  close(): Promise<void> {
    if (this.isClosed) return Promise.resolve();
    this.isClosed = true;
    return this.native.finalize();
  }
}

let the: Promise<ProcessGroup> | undefined;
let exitHooked = false;

/**
 * The process group of this process (the same one on every call): an MPI group when launched by
 * mpirun (see launcherEnv), else a single-process group. Launched by mpirun with a package built
 * without MPI, it rejects with the sentence that says what to install.
 */
export function initProcessGroup(opts: InitOptions = {}): Promise<ProcessGroup> {
  the ??= create(opts);
  return the;
}

async function create(opts: InitOptions): Promise<ProcessGroup> {
  const mode = opts.backend ?? 'auto';
  if (mode !== 'auto' && mode !== 'mpi' && mode !== 'local') {
    throw new TypeError(`Expected one of 'auto', 'mpi', 'local' for backend but received ${describe(mode)}`);
  }
  const launched: LauncherEnv | null = launcherEnv(opts.env ?? process.env);
  if (mode === 'local' || (mode === 'auto' && !launched)) return new LocalGroup();
  const loaded = addon();
  if (!loaded.addon || !loaded.mpi) throw new Error(loaded.reason);
  const native = loaded.addon;
  const timeout = opts.exitTimeoutMs ?? Number(process.env.ALEXNET_MPI_EXIT_TIMEOUT_MS || 60_000);
  if (!Number.isFinite(timeout) || timeout < 0) throw new RangeError(`Expected non-negative number for exitTimeoutMs but received ${describe(timeout)}`);
  hookExit(native, timeout);
  const r = await native.init();
  if (launched && launched.size > 0 && (r.rank !== launched.rank || r.size !== launched.size)) {
    throw new Error(`MPI says rank ${r.rank} of ${r.size}, the launcher's environment (${launched.launcher}) rank ${launched.rank} of ${launched.size}: ` +
      'was this program started by another MPI than the one @alexnet/distributed was built with?');
  }
  return new MpiGroup(native, r.rank, r.size, launched?.localRank ?? 0, launched?.localSize ?? 1, r.threadLevel);
}

function hookExit(native: NativeAddon, timeoutMs: number): void {
  if (exitHooked) return;
  exitHooked = true;
  process.on('exit', (code) => {
    if (code !== 0) {
      // Another rank may be waiting in a collective this one will never join: finalizing would wait
      // for it. Exit without MPI_Finalize; mpirun then ends the job.
      native.shutdown(0, false);
      return;
    }
    if (!native.shutdown(Math.round(timeoutMs), true)) {
      process.stderr.write(`[@alexnet/distributed] MPI_Finalize did not finish within ${Math.round(timeoutMs)} ms at exit ` +
        '(a collective the other ranks never joined?): exiting without it\n');
    }
  });
}
