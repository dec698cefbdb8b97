// Run under mpirun by src/mpi.test.ts (mpirun -n N node test/mpi-check.mjs MODE): every rank runs the
// same checks against hand-computed values and prints one line `RESULT <json>` with each check's
// outcome; the test asserts them on every rank. MODE says how the program ends:
//   close         await group.close(), then a collective must reject
//   forget        end without close (the package finalizes at exit)
//   exit-pending  start collectives and call process.exit(0) at once (they finish, then MPI_Finalize)
//   crash         rank 1 throws while rank 0 waits in a collective: mpirun must end the job, not hang
import { allReduceTensors, initNcclGroup, initProcessGroup, launcherEnv, libraries } from '../dist/index.js';
import { tensor } from '@alexnet/tensor';

const mode = process.argv[2] ?? 'close';
const checks = [];
const check = (name, ok, detail = '') => checks.push({ name, ok: !!ok, detail: ok ? '' : String(detail) });
const t0 = Date.now();

const group = await initProcessGroup();
const { rank, size } = group;
const env = launcherEnv();
check('launcher', env && env.rank === rank && env.size === size && group.backend === 'mpi' && env.localRank === rank && env.localSize === size,
  JSON.stringify({ env, rank, size, backend: group.backend }));

if (mode === 'crash') {
  if (rank === 1) throw new Error('rank 1 fails on purpose');
  await group.allReduce(new Float32Array(4), 'sum'); // never completes: rank 1 is gone
  process.exit(3);
}

// first element that differs, for the messages
function firstBad(got, want) {
  for (let i = 0; i < want.length; i++) if (got[i] !== want[i]) return `[${i}] = ${got[i]}, expected ${want[i]}`;
  return got.length === want.length ? '' : `length ${got.length}, expected ${want.length}`;
}
const S = (size * (size + 1)) / 2; // sum over ranks of (rank + 1)

// sum / max / min on rank-dependent values, three element types
{
  const n = 1000;
  const mk = (C) => C.from({ length: n }, (_, i) => (rank + 1) * (i + 1));
  const [s, mx, mn] = await Promise.all([group.allReduce(mk(Float32Array), 'sum'), group.allReduce(mk(Float32Array), 'max'), group.allReduce(mk(Float32Array), 'min')]);
  check('sum float32', !firstBad(s, Float32Array.from({ length: n }, (_, i) => S * (i + 1))), firstBad(s, Float32Array.from({ length: n }, (_, i) => S * (i + 1))));
  check('max float32', !firstBad(mx, Float32Array.from({ length: n }, (_, i) => size * (i + 1))), firstBad(mx, Float32Array.from({ length: n }, (_, i) => size * (i + 1))));
  check('min float32', !firstBad(mn, Float32Array.from({ length: n }, (_, i) => i + 1)), firstBad(mn, Float32Array.from({ length: n }, (_, i) => i + 1)));
  const d = await group.allReduce(Float64Array.from({ length: n }, (_, i) => rank + 0.25 + i * 1e-9), 'sum');
  const dWant = Float64Array.from({ length: n }, (_, i) => { let t = 0; for (let r = 0; r < size; r++) t += r + 0.25 + i * 1e-9; return t; });
  const dErr = d.reduce((m, v, i) => Math.max(m, Math.abs(v - dWant[i])), 0);
  check('sum float64', dErr < 1e-12, `max error ${dErr}`);
  const im = await group.allReduce(Int32Array.from({ length: n }, (_, i) => (rank % 2 ? -1 : 1) * (rank * 1000 + i)), 'min');
  const imWant = Int32Array.from({ length: n }, (_, i) => { let m = Infinity; for (let r = 0; r < size; r++) m = Math.min(m, (r % 2 ? -1 : 1) * (r * 1000 + i)); return m; });
  check('min int32', !firstBad(im, imWant), firstBad(im, imWant));
  const is = await group.allReduce(Int32Array.from({ length: n }, (_, i) => rank * 1000 + i), 'sum');
  check('sum int32', !firstBad(is, Int32Array.from({ length: n }, (_, i) => 1000 * ((size * (size - 1)) / 2) + size * i)),
    firstBad(is, Int32Array.from({ length: n }, (_, i) => 1000 * ((size * (size - 1)) / 2) + size * i)));
  // a view into a larger buffer: only the view changes
  const big = new Float32Array(10).fill(rank + 1);
  await group.allReduce(big.subarray(3, 6), 'sum');
  check('subarray view', big[2] === rank + 1 && big[3] === S && big[5] === S && big[6] === rank + 1, Array.from(big).join(','));
}

// many collectives in flight, awaited out of order; they complete in submission order
{
  const K = 40;
  const bufs = Array.from({ length: K }, (_, k) => Float32Array.from({ length: 1 + ((k * 37) % 500) }, (_, i) => (rank + 1) * (k + 1) + i));
  const order = [];
  const ps = bufs.map((b, k) => group.allReduce(b, k % 3 === 0 ? 'max' : 'sum').then((r) => { order.push(k); return r; }));
  const pendingNow = group.pending;
  for (const k of [...ps.keys()].reverse()) await ps[k];
  let bad = '';
  for (let k = 0; k < K && !bad; k++) {
    const b = bufs[k];
    for (let i = 0; i < b.length; i++) {
      const want = k % 3 === 0 ? size * (k + 1) + i : S * (k + 1) + size * i;
      if (b[i] !== want) { bad = `buffer ${k}[${i}] = ${b[i]}, expected ${want}`; break; }
    }
  }
  check('in flight: values', !bad, bad);
  check('in flight: completion order', order.every((k, i) => k === i), order.join(','));
  check('in flight: pending', pendingNow >= 1 && pendingNow <= K && group.pending === 0, `pending ${pendingNow} then ${group.pending}`);
}

// broadcast from the last rank (float32) and from 0 (int32)
{
  const b = Float32Array.from({ length: 257 }, (_, i) => rank * 1000 + i);
  await group.broadcast(b, size - 1);
  check('broadcast float32 from last rank', !firstBad(b, Float32Array.from({ length: 257 }, (_, i) => (size - 1) * 1000 + i)), firstBad(b, Float32Array.from({ length: 257 }, (_, i) => (size - 1) * 1000 + i)));
  const c = Int32Array.of(rank, -rank, 7);
  await group.broadcast(c);
  check('broadcast int32 from 0', c[0] === 0 && c[1] === 0 && c[2] === 7, Array.from(c).join(','));
}

// allGather of small arrays
{
  const g = await group.allGather(Int32Array.of(rank, rank * 10));
  const want = Int32Array.from({ length: 2 * size }, (_, i) => (i % 2 ? 10 : 1) * Math.floor(i / 2));
  check('allGather', !firstBad(g, want), firstBad(g, want));
}

// barrier: rank 0 arrives late, nobody leaves before it
{
  const before = Date.now();
  if (rank === 0) await new Promise((r) => setTimeout(r, 300));
  await group.barrier();
  const waited = Date.now() - before;
  check('barrier', waited >= 250, `left after ${waited} ms`);
}

// 64 MB split into 16 buckets of 4 MB, all in flight
{
  const n = 16 * 1024 * 1024;
  const big = new Float32Array(n);
  for (let i = 0; i < n; i++) big[i] = (rank + 1) + (i % 7);
  const bucket = 1024 * 1024;
  const tb = Date.now();
  const ps = [];
  for (let off = 0; off < n; off += bucket) ps.push(group.allReduce(big.subarray(off, Math.min(n, off + bucket)), 'sum'));
  await Promise.all(ps);
  const secs = (Date.now() - tb) / 1000;
  let bad = '';
  for (let i = 0; i < n; i++) if (big[i] !== S + size * (i % 7)) { bad = `[${i}] = ${big[i]}, expected ${S + size * (i % 7)}`; break; }
  check('64 MB in 16 buckets', !bad, bad);
  check('64 MB time', secs > 0, secs);
  checks.push({ name: 'bandwidth', ok: true, detail: `${(64 / 1024 / secs).toFixed(2)} GB/s` });
}

// tensors: average over ranks (float32 on the default device, float64 on the reference device), int32 sum
{
  const a = tensor(Float32Array.from({ length: 12 }, (_, i) => (rank + 1) * i), [3, 4]);
  const b = tensor(Float64Array.from({ length: 5 }, (_, i) => rank * 2 + i), [5], { device: 'reference:0' });
  const c = tensor(Int32Array.from({ length: 3 }, (_, i) => rank + i), [3]);
  await allReduceTensors(group, [a, b], { average: true });
  await allReduceTensors(group, [c]);
  const av = a.dataSync(), bv = b.dataSync(), cv = c.dataSync();
  const aWant = Float32Array.from({ length: 12 }, (_, i) => (S * i) / size);
  const bWant = Float64Array.from({ length: 5 }, (_, i) => (size - 1) + i);
  const cWant = Int32Array.from({ length: 3 }, (_, i) => (size * (size - 1)) / 2 + size * i);
  check('tensors average float32', !firstBad(av, aWant) && a.device.name === tensor([0]).device.name, firstBad(av, aWant));
  check('tensors average float64', bv.every((v, i) => Math.abs(v - bWant[i]) < 1e-12), Array.from(bv).join(','));
  check('tensors sum int32', !firstBad(cv, cWant), firstBad(cv, cWant));
  let threw = '';
  try { await allReduceTensors(group, [c], { average: true }); } catch (e) { threw = e.message; }
  check('tensors average int32 refused', /average needs float tensors/.test(threw), threw);
}

// argument errors reject before anything is queued (so the ranks stay in step)
{
  const msg = async (p) => { try { await p; return ''; } catch (e) { return e.message; } };
  const m1 = await msg(group.allReduce(new Uint8Array(4), 'sum'));
  const m2 = await msg(group.allReduce(new Float32Array(4), 'mean'));
  const m3 = await msg(group.broadcast(new Float32Array(4), size));
  check('error: dtype', /Expected a Float32Array, Float64Array or Int32Array for buf but received Uint8Array of type object/.test(m1), m1);
  check('error: op', /Expected one of 'sum', 'max', 'min' for op but received mean of type string/.test(m2), m2);
  check('error: root', new RegExp(`Expected integer in \\[0, ${size - 1}\\] for root but received ${size} of type number`).test(m3), m3);
  const after = await group.allReduce(Float32Array.of(1), 'sum');
  check('in step after errors', after[0] === size, after[0]);
}

// NCCL: absent here; libraries() says where it looked, initNcclGroup rejects on every rank, MPI goes on
{
  const libs = libraries();
  check('libraries().mpi', libs.mpi.found && /Open MPI|MPICH/i.test(libs.mpi.version) && libs.mpi.path.includes('mpi'), JSON.stringify(libs.mpi));
  if (process.env.ALEXNET_NCCL_PATH) {
    // the stand-in of test/nccl-stub.ts: found and its version read; with no CUDA driver here (or, on a
    // GPU machine, with the stand-in's failing ncclGetUniqueId) initNcclGroup rejects on every rank
    let m = '';
    try { await initNcclGroup(group); } catch (e) { m = e.message; }
    const after = await group.allReduce(Int32Array.of(1), 'sum');
    check('nccl stand-in', libs.nccl.found && libs.nccl.version === '2.19.3' && libs.nccl.path.startsWith(process.env.ALEXNET_NCCL_PATH.replace(/\/libnccl\.so\.2$/, '')) &&
      /^initNcclGroup: (the CUDA driver \(libcuda\.so\.1\) could not be loaded|NCCL setup failed on another rank|ncclGetUniqueId failed on rank 0|CUDA device|cuInit failed)/.test(m) &&
      after[0] === size, `${JSON.stringify(libs.nccl)} / ${m} / ${after[0]}`);
  } else if (libs.nccl.found) {
    checks.push({ name: 'nccl present (not checked here)', ok: true, detail: libs.nccl.path });
  } else {
    check('libraries().nccl', /NCCL \(libnccl\.so\.2\) was not found/.test(libs.nccl.reason) && libs.nccl.searched.some((p) => p.includes('nvidia/nccl/lib')), libs.nccl.reason);
    let m = '';
    try { await initNcclGroup(group); } catch (e) { m = e.message; }
    check('initNcclGroup rejects', /NCCL was not found on rank \d|NCCL setup failed on another rank/.test(m) && /was not found/.test(m), m);
    const after = await group.allReduce(Int32Array.of(rank), 'sum');
    check('in step after NCCL failure', after[0] === (size * (size - 1)) / 2, after[0]);
  }
}

function report() {
  console.log(`RESULT ${JSON.stringify({ rank, size, mode, seconds: (Date.now() - t0) / 1000, checks })}`);
}

if (mode === 'close') {
  await group.close();
  let m = '';
  try { await group.allReduce(new Float32Array(1)); } catch (e) { m = e.message; }
  check('closed', /closed/.test(m) && group.closed, m);
  report();
} else if (mode === 'forget') {
  report();
} else if (mode === 'exit-pending') {
  const b = new Float32Array(1 << 20).fill(1);
  for (let k = 0; k < 8; k++) void group.allReduce(b, 'sum');
  report();
  process.exit(0);
}
