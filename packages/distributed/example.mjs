// mpirun -n 2 node example.mjs   (as root: mpirun --allow-run-as-root; more ranks than cores: --oversubscribe)
// Without mpirun (node example.mjs) it runs as one process: rank 0 of 1.
import { initProcessGroup, allReduceTensors, libraries } from '@alexnet/distributed';
import { tensor } from '@alexnet/tensor';

const group = await initProcessGroup();
const { rank, size } = group;
if (rank === 0) console.log(`${size} rank(s), ${libraries().mpi.found ? libraries().mpi.version : 'no MPI'}`);

// gradient buckets: start one all-reduce per bucket as soon as it is ready, await them later
const buckets = [new Float32Array(1000).fill(rank + 1), new Float32Array(10).fill(10 * (rank + 1))];
const inFlight = buckets.map((b) => group.allReduce(b, 'sum'));
await Promise.all(inFlight);
console.log(`rank ${rank}: sums ${buckets[0][0]} and ${buckets[1][0]}`); // 3 and 30 on 2 ranks

// the same for tensors, averaged
const w = tensor([rank, rank + 1, rank + 2], [3]);
await allReduceTensors(group, [w], { average: true });
console.log(`rank ${rank}: mean ${Array.from(w.dataSync())}`); // 0.5,1.5,2.5 on 2 ranks

await group.close(); // optional: MPI is finalized at exit otherwise
