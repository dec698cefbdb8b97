/**
 * NCCL for CUDA memory, loaded at run time with dlopen (nothing of NVIDIA's is linked, shipped or
 * downloaded): the library is searched in the order of ncclCandidates(), its communicator's unique id
 * is broadcast over the MPI group, and its collectives run on the package's MPI thread, in the same
 * queue as the MPI collectives. The CUDA driver (libcuda.so.1) is loaded the same way.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { ProcessGroup } from './group.js';
import { addon, type CollectiveArray, type DeviceDType, type NcclProbeResult } from './native.js';

const LIB = 'libnccl.so.2';

function pythonSitePackages(): string[] {
  try {
    const out = execFileSync('python3', ['-c',
      'import site, sys\nd = list(site.getsitepackages())\ntry:\n  d.append(site.getusersitepackages())\nexcept Exception:\n  pass\nprint("\\n".join(d))'],
    { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'ignore'] });
    return out.split('\n').map((s) => s.trim()).filter(Boolean);
  } catch {
    return [];
  }
}

/** Folders under `parent` whose names match `re` (newest name first), joined with `rest`. */
function globDirs(parent: string, re: RegExp, rest: string): string[] {
  try {
    return readdirSync(parent).filter((n) => re.test(n)).sort().reverse().map((n) => join(parent, n, rest));
  } catch {
    return [];
  }
}

/**
 * Where NCCL is looked for, in order:
 * 1. ALEXNET_NCCL_PATH: the library file, or a folder holding libnccl.so.2
 * 2. libnccl.so.2 through the dynamic loader (LD_LIBRARY_PATH, /etc/ld.so.cache, the system folders:
 *    Debian's and NVIDIA's libnccl2 packages)
 * 3. the CUDA toolkit folders: $CUDA_HOME, $CUDA_PATH, /usr/local/cuda, /usr/local/cuda-* (lib64, lib,
 *    targets/x86_64-linux/lib), and $CONDA_PREFIX/lib
 * 4. the nvidia/nccl/lib folder of Python's site-packages (pip's nvidia-nccl-cu* wheels, which
 *    PyTorch's wheels depend on), and torch/lib: the folders python3 reports (site.getsitepackages()),
 *    then /usr/local/lib/python3.* and /usr/lib/python3 dist-packages, ~/.local, $VIRTUAL_ENV
 */
export function ncclCandidates(env: NodeJS.ProcessEnv = process.env, sitePackages: () => string[] = pythonSitePackages): string[] {
  const out: string[] = [];
  const p = env.ALEXNET_NCCL_PATH;
  if (p) out.push(/\.so(\.\d+)*$/.test(p) ? p : join(p, LIB));
  out.push(LIB);
  const roots = [env.CUDA_HOME, env.CUDA_PATH, '/usr/local/cuda', ...globDirs('/usr/local', /^cuda-\d/, '')].filter((r): r is string => !!r);
  for (const r of roots) for (const sub of ['lib64', 'lib', `targets/${process.arch === 'arm64' ? 'sbsa' : 'x86_64'}-linux/lib`]) out.push(join(r, sub, LIB));
  if (env.CONDA_PREFIX) out.push(join(env.CONDA_PREFIX, 'lib', LIB));
  const sites = [
    ...sitePackages(),
    ...globDirs('/usr/local/lib', /^python3/, 'dist-packages'),
    ...globDirs('/usr/local/lib', /^python3/, 'site-packages'),
    '/usr/lib/python3/dist-packages',
    ...globDirs(join(homedir(), '.local', 'lib'), /^python3/, 'site-packages'),
    ...(env.VIRTUAL_ENV ? globDirs(join(env.VIRTUAL_ENV, 'lib'), /^python3/, 'site-packages') : []),
  ];
  for (const s of sites) {
    out.push(join(s, 'nvidia', 'nccl', 'lib', LIB));
    out.push(join(s, 'torch', 'lib', LIB));
  }
  return [...new Set(out.map((x) => x.replace(/\/+/g, '/')))];
}

export type NcclInfo =
  | { found: true; path: string; version: string }
  | { found: false; reason: string; searched: string[] };

let probed: NcclInfo | undefined;

/** Looks for NCCL (once per process when found; again on each call while it is not). */
export function ncclInfo(env: NodeJS.ProcessEnv = process.env): NcclInfo {
  if (probed?.found) return probed;
  const a = addon().addon;
  if (!a) {
    return { found: false, reason: `NCCL cannot be loaded: ${addon().reason ?? 'the addon was not built'}`, searched: [] };
  }
  const candidates = ncclCandidates(env);
  const r: NcclProbeResult = a.ncclProbe(candidates);
  if (r.found) {
    probed = { found: true, path: r.path!, version: r.version! };
    return probed;
  }
  const searched = r.attempts.map((t) => t.path === LIB ? `${LIB} (the dynamic loader's paths)` : t.path);
  // Name the candidates that exist but failed (a wrong architecture, not NCCL...), not every absent path.
  const broken = r.attempts.filter((t) => t.error !== 'no such file' && t.path !== LIB).map((t) => `${t.path}: ${t.error}`);
  const envNote = env.ALEXNET_NCCL_PATH ? '' : ' (ALEXNET_NCCL_PATH is not set)';
  probed = {
    found: false,
    searched,
    reason: `NCCL (${LIB}) was not found${envNote}; searched ${searched.join(', ')}` +
      (broken.length ? `; failed: ${broken.join('; ')}` : '') +
      '. Install NCCL (NVIDIA\'s libnccl2 package, or the nvidia-nccl wheel PyTorch brings) or set ALEXNET_NCCL_PATH to libnccl.so.2',
  };
  return probed;
}

export type NcclReduceOp = 'sum' | 'max' | 'min' | 'avg';

/**
 * An NCCL communicator over the ranks of an MPI process group, one CUDA device per rank. Addresses
 * are device pointers as bigint; `stream` is a CUstream/cudaStream_t as bigint (0n: the legacy
 * default stream), or undefined for the communicator's own non-blocking stream. Each Promise settles
 * once the operation is done on the device (the stream is synchronized on the MPI thread).
 */
export interface NcclGroup {
  readonly rank: number;
  readonly size: number;
  /** The CUDA device ordinal of this rank, and its name. */
  readonly device: number;
  readonly deviceName: string;
  readonly version: string;
  readonly path: string;
  allReduce(ptr: bigint, count: number, dtype: DeviceDType, op?: NcclReduceOp, stream?: bigint): Promise<void>;
  /** Several buffers in one ncclGroupStart/ncclGroupEnd (one launch). */
  allReduceMany(buffers: readonly { ptr: bigint; count: number }[], dtype: DeviceDType, op?: NcclReduceOp, stream?: bigint): Promise<void>;
  broadcast(ptr: bigint, count: number, dtype: DeviceDType, root?: number, stream?: bigint): Promise<void>;
  /** Device memory for staging and checks (cuMemAlloc on this rank's device). */
  alloc(bytes: number): Promise<bigint>;
  free(ptr: bigint): Promise<void>;
  upload(ptr: bigint, host: CollectiveArray): Promise<void>;
  download<T extends CollectiveArray>(host: T, ptr: bigint): Promise<T>;
  /** ncclCommDestroy (also done before MPI_Finalize for a communicator not closed). */
  close(): Promise<void>;
}

/**
 * Creates an NCCL communicator over `group` (a collective call: every rank calls it, with its own
 * device, by default its local rank). Rejects on every rank when NCCL or the CUDA driver is missing on
 * any rank, with the reason where it is missing.
 */
export async function initNcclGroup(group: ProcessGroup, opts: { device?: number } = {}): Promise<NcclGroup> {
  if (group.backend !== 'mpi') {
    throw new Error('initNcclGroup needs an MPI process group (a program launched by mpirun): NCCL\'s unique id travels over MPI');
  }
  const device = opts.device ?? group.localRank;
  if (!Number.isInteger(device) || device < 0) throw new RangeError(`Expected non-negative integer for device but received ${String(device)} of type ${typeof device}`);
  const info = ncclInfo();
  const native = addon().addon!;
  let r;
  try {
    r = await native.ncclInit(device);
  } catch (e) {
    throw new Error(`initNcclGroup: ${(e as Error).message}${info.found ? '' : `. ${info.reason}`}`);
  }
  const id = r.id;
  let closed = false;
  const live = (): void => { if (closed) throw new Error('the NCCL group was closed'); };
  const call = <T>(fn: () => Promise<T>): Promise<T> => { try { live(); return fn(); } catch (e) { return Promise.reject(e); } };
  return {
    rank: r.rank, size: r.size, device: r.device, deviceName: r.name,
    version: info.found ? info.version : '', path: info.found ? info.path : '',
    allReduce: (ptr, count, dtype, op = 'sum', stream) => call(() => native.ncclAllReduce(id, [ptr], [count], dtype, op, stream)),
    allReduceMany: (buffers, dtype, op = 'sum', stream) =>
      call(() => native.ncclAllReduce(id, buffers.map((b) => b.ptr), buffers.map((b) => b.count), dtype, op, stream)),
    broadcast: (ptr, count, dtype, root = 0, stream) => call(() => native.ncclBroadcast(id, ptr, count, dtype, root, stream)),
    alloc: (bytes) => call(() => native.cuAlloc(id, bytes)),
    free: (ptr) => call(() => native.cuFree(id, ptr)),
    upload: (ptr, host) => call(() => native.cuUpload(id, ptr, host)),
    download: (host, ptr) => call(() => native.cuDownload(id, ptr, host)),
    close: () => { if (closed) return Promise.resolve(); closed = true; return native.ncclDestroy(id); },
  };
}
