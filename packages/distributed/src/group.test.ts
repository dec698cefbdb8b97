// The single-process group: what a program gets without mpirun. Collectives check their arguments
// as the MPI group does and resolve at once with the data unchanged.
import { describe, expect, it } from 'vitest';
import { tensor } from '@alexnet/tensor';
import { initProcessGroup, LocalGroup } from './group.js';
import { allReduceTensors } from './tensors.js';

describe('single-process group', () => {
  it('initProcessGroup() without mpirun is rank 0 of 1, the same group every call', async () => {
    const g = await initProcessGroup();
    expect(g.backend).toBe('local');
    expect([g.rank, g.size, g.localRank, g.localSize]).toEqual([0, 1, 0, 1]);
    expect(await initProcessGroup()).toBe(g);
  });

  it('collectives resolve with the same buffer, unchanged', async () => {
    const g = new LocalGroup();
    const a = Float32Array.of(1, -2, 3);
    expect(await g.allReduce(a, 'sum')).toBe(a);
    expect(Array.from(a)).toEqual([1, -2, 3]);
    const d = Float64Array.of(0.5);
    expect(await g.allReduce(d, 'max')).toBe(d);
    const i = Int32Array.of(7, 8);
    expect(await g.broadcast(i, 0)).toBe(i);
    const gathered = await g.allGather(i);
    expect(gathered).not.toBe(i);
    expect(Array.from(gathered)).toEqual([7, 8]);
    await g.barrier();
    expect(g.pending).toBe(0);
  });

  it('rejects bad arguments with the messages of the MPI group', async () => {
    const g = new LocalGroup();
    await expect(g.allReduce(new Uint8Array(2) as never)).rejects.toThrow('Expected a Float32Array, Float64Array or Int32Array for buf but received Uint8Array of type object');
    await expect(g.allReduce([1, 2] as never)).rejects.toThrow('but received Array of type object');
    await expect(g.allReduce(new Float32Array(2), 'mean' as never)).rejects.toThrow("Expected one of 'sum', 'max', 'min' for op but received mean of type string");
    await expect(g.broadcast(new Float32Array(2), 1)).rejects.toThrow('Expected integer in [0, 0] for root but received 1 of type number');
  });

  it('after close(), collectives reject', async () => {
    const g = new LocalGroup();
    await g.close();
    expect(g.closed).toBe(true);
    await expect(g.allReduce(new Float32Array(1))).rejects.toThrow(/closed/);
    await expect(g.barrier()).rejects.toThrow(/closed/);
  });

  it('allReduceTensors on one process leaves the tensors as they are (and checks its arguments)', async () => {
    const g = new LocalGroup();
    const t = tensor([1, 2, 3, 4], [2, 2]);
    await allReduceTensors(g, [t], { average: true });
    expect(Array.from(t.dataSync())).toEqual([1, 2, 3, 4]);
    const u = tensor(new Uint8Array([1]));
    await expect(allReduceTensors(g, [u])).rejects.toThrow(/Expected a float32, float64 or int32 tensor for tensors\[0\]/);
    await expect(allReduceTensors(g, [t], { average: true, op: 'max' })).rejects.toThrow(/average divides a sum/);
    const i = tensor(Int32Array.of(1));
    await expect(allReduceTensors(g, [i], { average: true })).rejects.toThrow(/average needs float tensors/);
    t.dispose(); u.dispose(); i.dispose();
  });
});
