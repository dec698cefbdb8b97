/**
 * Which process of a job launched by mpirun (or mpiexec, srun) this is, read from the environment the
 * launcher sets, before MPI is initialized.
 */

/** Rank and size of this process in the job, and on this machine. */
export interface LauncherEnv {
  /** This process's rank in the job, 0 <= rank < size. */
  rank: number;
  /**
   * Processes in the job. 0 only for a PMIx launch that sets no size variable (PMIX_RANK alone):
   * then MPI tells the size at initProcessGroup().
   */
  size: number;
  /** Rank among the job's processes on this machine (pick a GPU with it). */
  localRank: number;
  /** The job's processes on this machine. */
  localSize: number;
  /** Which launcher's variables these came from. */
  launcher: 'openmpi' | 'mpich' | 'pmix';
}

function intVar(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const v = env[name];
  if (v === undefined || v.trim() === '') return undefined;
  if (!/^\d+$/.test(v.trim())) throw new TypeError(`Expected non-negative integer for ${name} but received ${JSON.stringify(v)} of type string`);
  return Number(v.trim());
}

/**
 * `{ rank, size, localRank, localSize }` from the launcher's variables, or null when this process was
 * not launched by mpirun:
 * - Open MPI: OMPI_COMM_WORLD_RANK, OMPI_COMM_WORLD_SIZE, OMPI_COMM_WORLD_LOCAL_RANK, OMPI_COMM_WORLD_LOCAL_SIZE
 * - MPICH / Intel MPI (Hydra): PMI_RANK, PMI_SIZE, MPI_LOCALRANKID, MPI_LOCALNRANKS
 * - PMIx (Slurm's srun --mpi=pmix, PRRTE): PMIX_RANK, with the size from SLURM_NTASKS or SLURM_NPROCS
 *   and the local rank from SLURM_LOCALID where set
 * A local rank the launcher does not give is taken as the rank (one machine), a local size as the size.
 * A variable that is set but not a non-negative integer is an error, not a silent single process.
 */
export function launcherEnv(env: NodeJS.ProcessEnv = process.env): LauncherEnv | null {
  let out: LauncherEnv | null = null;
  const ompiRank = intVar(env, 'OMPI_COMM_WORLD_RANK');
  if (ompiRank !== undefined) {
    const size = intVar(env, 'OMPI_COMM_WORLD_SIZE');
    if (size === undefined) throw new TypeError('OMPI_COMM_WORLD_RANK is set but OMPI_COMM_WORLD_SIZE is not: a broken Open MPI launch environment');
    out = {
      rank: ompiRank, size,
      localRank: intVar(env, 'OMPI_COMM_WORLD_LOCAL_RANK') ?? ompiRank,
      localSize: intVar(env, 'OMPI_COMM_WORLD_LOCAL_SIZE') ?? size,
      launcher: 'openmpi',
    };
  } else if (intVar(env, 'PMI_RANK') !== undefined) {
    const rank = intVar(env, 'PMI_RANK')!;
    const size = intVar(env, 'PMI_SIZE');
    if (size === undefined) throw new TypeError('PMI_RANK is set but PMI_SIZE is not: a broken MPICH (Hydra) launch environment');
    out = {
      rank, size,
      localRank: intVar(env, 'MPI_LOCALRANKID') ?? rank,
      localSize: intVar(env, 'MPI_LOCALNRANKS') ?? size,
      launcher: 'mpich',
    };
  } else if (intVar(env, 'PMIX_RANK') !== undefined) {
    const rank = intVar(env, 'PMIX_RANK')!;
    const size = intVar(env, 'SLURM_NTASKS') ?? intVar(env, 'SLURM_NPROCS') ?? 0;
    out = { rank, size, localRank: intVar(env, 'SLURM_LOCALID') ?? rank, localSize: size, launcher: 'pmix' };
  }
  if (out && out.size > 0 && (out.rank >= out.size || out.localRank >= out.localSize || out.localSize > out.size)) {
    throw new RangeError(`Inconsistent launcher environment (${out.launcher}): rank ${out.rank} of ${out.size}, local rank ${out.localRank} of ${out.localSize}`);
  }
  return out;
}
