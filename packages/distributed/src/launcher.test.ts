// launcherEnv() reads rank and size from each launcher's variables, and null when not launched.
import { describe, expect, it } from 'vitest';
import { launcherEnv } from './launcher.js';

describe('launcherEnv', () => {
  it('is null without a launcher (as under vitest)', () => {
    expect(launcherEnv({ PATH: '/usr/bin', HOME: '/root' })).toBeNull();
    expect(launcherEnv({ OMPI_COMM_WORLD_RANK: '' })).toBeNull();
  });

  it('reads Open MPI', () => {
    expect(launcherEnv({ OMPI_COMM_WORLD_RANK: '3', OMPI_COMM_WORLD_SIZE: '8', OMPI_COMM_WORLD_LOCAL_RANK: '1', OMPI_COMM_WORLD_LOCAL_SIZE: '2', PMIX_RANK: '3' }))
      .toEqual({ rank: 3, size: 8, localRank: 1, localSize: 2, launcher: 'openmpi' });
    // no local variables: one machine
    expect(launcherEnv({ OMPI_COMM_WORLD_RANK: '1', OMPI_COMM_WORLD_SIZE: '2' })).toEqual({ rank: 1, size: 2, localRank: 1, localSize: 2, launcher: 'openmpi' });
  });

  it('reads MPICH / Hydra', () => {
    expect(launcherEnv({ PMI_RANK: '2', PMI_SIZE: '4', MPI_LOCALRANKID: '0', MPI_LOCALNRANKS: '2' }))
      .toEqual({ rank: 2, size: 4, localRank: 0, localSize: 2, launcher: 'mpich' });
    expect(launcherEnv({ PMI_RANK: '0', PMI_SIZE: '1' })).toEqual({ rank: 0, size: 1, localRank: 0, localSize: 1, launcher: 'mpich' });
  });

  it('reads PMIx, with the size from Slurm or unknown (0)', () => {
    expect(launcherEnv({ PMIX_RANK: '5', SLURM_NTASKS: '6', SLURM_LOCALID: '1' })).toEqual({ rank: 5, size: 6, localRank: 1, localSize: 6, launcher: 'pmix' });
    expect(launcherEnv({ PMIX_RANK: '1' })).toEqual({ rank: 1, size: 0, localRank: 1, localSize: 0, launcher: 'pmix' });
  });

  it('refuses a broken environment instead of running as one process', () => {
    expect(() => launcherEnv({ OMPI_COMM_WORLD_RANK: 'one', OMPI_COMM_WORLD_SIZE: '2' }))
      .toThrow('Expected non-negative integer for OMPI_COMM_WORLD_RANK but received "one" of type string');
    expect(() => launcherEnv({ OMPI_COMM_WORLD_RANK: '0' })).toThrow(/OMPI_COMM_WORLD_SIZE is not/);
    expect(() => launcherEnv({ PMI_RANK: '0' })).toThrow(/PMI_SIZE is not/);
    expect(() => launcherEnv({ OMPI_COMM_WORLD_RANK: '2', OMPI_COMM_WORLD_SIZE: '2' })).toThrow(/rank 2 of 2/);
    expect(() => launcherEnv({ PMI_RANK: '0', PMI_SIZE: '2', MPI_LOCALRANKID: '3', MPI_LOCALNRANKS: '2' })).toThrow(/local rank 3 of 2/);
  });
});
