/**
 * @alexnet/distributed: process groups and collectives for data-parallel training.
 *
 * - launcherEnv(): rank and size from mpirun's environment (Open MPI, MPICH/Hydra, PMIx), or null.
 * - initProcessGroup(): an MPI group when launched by mpirun, a single-process group otherwise.
 *   Its collectives (allReduce, broadcast, allGather, barrier) work in place on Float32Array,
 *   Float64Array and Int32Array, return Promises, and run in call order on one dedicated MPI thread.
 * - initNcclGroup(): an NCCL communicator for CUDA memory, NCCL loaded at run time.
 * - allReduceTensors(): the same for @alexnet/tensor tensors, through host copies.
 * - libraries(): which MPI and NCCL this process can use, or why not.
 */
import { addon, readBuildInfo, BUILT_WITHOUT_MPI } from './native.js';
import { ncclInfo, type NcclInfo } from './nccl.js';

export { launcherEnv, type LauncherEnv } from './launcher.js';
export { initProcessGroup, LocalGroup, MpiGroup, type ProcessGroup, type InitOptions, type CollectiveArray, type ReduceOp } from './group.js';
export { initNcclGroup, ncclCandidates, type NcclGroup, type NcclInfo, type NcclReduceOp } from './nccl.js';
export { allReduceTensors, type AllReduceTensorsOptions } from './tensors.js';
export { BUILT_WITHOUT_MPI, type BuildInfo, type DeviceDType } from './native.js';

export type MpiInfo =
  | { found: true; version: string; library: string; path: string; standard: string; flavour?: string }
  | { found: false; reason: string };

export interface Libraries {
  mpi: MpiInfo;
  nccl: NcclInfo;
}

/** Which MPI this package was built with and loads, and whether NCCL was found (with where it looked). */
export function libraries(env: NodeJS.ProcessEnv = process.env): Libraries {
  const a = addon();
  let mpi: MpiInfo;
  if (a.mpi && a.probe) {
    const library = a.probe.library ?? '';
    mpi = {
      found: true, library, version: library.split(',')[0]!.trim(), path: a.probe.path ?? '', standard: a.probe.standard ?? '',
      flavour: readBuildInfo().mpi?.flavour,
    };
  } else {
    mpi = { found: false, reason: a.reason ?? BUILT_WITHOUT_MPI };
  }
  return { mpi, nccl: ncclInfo(env) };
}
