/**
 * Loading the addon (build/Release/alexnet_mpi.node) and saying, when it cannot be used, why: built
 * without MPI, not built, or failing to load (libmpi missing since the build).
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export type CollectiveArray = Float32Array | Float64Array | Int32Array;
export type ReduceOp = 'sum' | 'max' | 'min';
export type DeviceDType = 'float32' | 'float64' | 'int32';

/** The first sentence of every error about missing MPI. */
export const BUILT_WITHOUT_MPI =
  '@alexnet/distributed was built without MPI: install OpenMPI (apt-get install openmpi-bin libopenmpi-dev) and rebuild with npm rebuild @alexnet/distributed';

export interface NativeProbe {
  mpi: boolean;
  library?: string;
  path?: string;
  standard?: string;
  reason?: string;
  initialized: boolean;
  closed: boolean;
}

export interface NcclProbeResult {
  found: boolean;
  path?: string;
  version?: string;
  versionCode?: number;
  attempts: { path: string; error: string }[];
}

/** The N-API surface of native/mpi/addon.cpp. */
export interface NativeAddon {
  probe(): NativeProbe;
  init(): Promise<{ rank: number; size: number; threadLevel: number }>;
  allReduce<T extends CollectiveArray>(buf: T, op: ReduceOp): Promise<T>;
  broadcast<T extends CollectiveArray>(buf: T, root: number): Promise<T>;
  allGather<T extends CollectiveArray>(send: T, recv: T): Promise<T>;
  barrier(): Promise<void>;
  finalize(): Promise<void>;
  shutdown(timeoutMs: number, finalize: boolean): boolean;
  pending(): number;
  ncclProbe(candidates: string[]): NcclProbeResult;
  ncclInit(device: number): Promise<{ id: number; rank: number; size: number; device: number; name: string }>;
  ncclAllReduce(comm: number, ptrs: bigint[], counts: number[], dtype: DeviceDType, op: string, stream?: bigint): Promise<void>;
  ncclBroadcast(comm: number, ptr: bigint, count: number, dtype: DeviceDType, root: number, stream?: bigint): Promise<void>;
  ncclDestroy(comm: number): Promise<void>;
  cuAlloc(comm: number, bytes: number): Promise<bigint>;
  cuFree(comm: number, ptr: bigint): Promise<void>;
  cuUpload(comm: number, ptr: bigint, host: CollectiveArray): Promise<void>;
  cuDownload<T extends CollectiveArray>(comm: number, ptr: bigint, host: T): Promise<T>;
}

/** How the addon was built (build/Release/build-info.json, written by scripts/build.mjs). */
export interface BuildInfo {
  mpi?: { built: boolean; reason?: string; flavour?: string; via?: string };
  addon?: { built: boolean; reason?: string; seconds?: number };
  node?: string;
}

export interface LoadedAddon {
  /** The addon, when it loaded (also when it was built without MPI: it still probes NCCL). */
  addon?: NativeAddon;
  /** The addon has MPI. */
  mpi: boolean;
  path: string;
  /** Why MPI cannot be used (undefined when it can). */
  reason?: string;
  probe?: NativeProbe;
}

const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..'); // src/ and dist/ sit one level down
const requireNative = createRequire(import.meta.url);

/** build/Release/alexnet_mpi.node, or the file ALEXNET_DISTRIBUTED_ADDON names. */
export function defaultAddonPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.ALEXNET_DISTRIBUTED_ADDON || join(packageRoot, 'build', 'Release', 'alexnet_mpi.node');
}

export function readBuildInfo(path = join(packageRoot, 'build', 'Release', 'build-info.json')): BuildInfo {
  try { return JSON.parse(readFileSync(path, 'utf8')) as BuildInfo; } catch { return {}; }
}

/** Loads the addon at `path` (no caching; see addon()). Never throws: `reason` says what is missing. */
export function loadAddon(path: string = defaultAddonPath()): LoadedAddon {
  const info = readBuildInfo(join(dirname(path), 'build-info.json'));
  if (!existsSync(path)) {
    const why = info.addon?.reason ?? info.mpi?.reason ?? `no addon at ${path}`;
    return { mpi: false, path, reason: `${BUILT_WITHOUT_MPI} (${why})` };
  }
  let addon: NativeAddon;
  try {
    addon = requireNative(path) as NativeAddon;
  } catch (e) {
    const msg = (e as Error).message.split('\n')[0];
    const lib = /lib\w*mpi\w*\.so/.test(msg);
    return {
      mpi: false, path,
      reason: lib ? `${BUILT_WITHOUT_MPI} (the addon was built with MPI but its library is gone: ${msg})`
        : `the addon ${path} failed to load: ${msg}`,
    };
  }
  const probe = addon.probe();
  if (!probe.mpi) return { addon, mpi: false, path, probe, reason: `${BUILT_WITHOUT_MPI} (${info.mpi?.reason ?? 'MPI was not found at build time'})` };
  return { addon, mpi: true, path, probe };
}

let loaded: LoadedAddon | undefined;

/** The process's addon, loaded once. */
export function addon(): LoadedAddon {
  loaded ??= loadAddon();
  return loaded;
}
