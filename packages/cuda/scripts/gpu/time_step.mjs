// The paper net's training step (§5) timed on a CUDA backend: @alexnet/train's trainStep (forward with
// dropout, softmax cross-entropy, backward, the SGD update of every parameter), exactly what the
// trainer repeats, waited for on every device after each step, as PyTorch's torch_step.py waits with
// torch.cuda.synchronize(). One configuration per process (the kernel choice, ALEXNET_CUDA_KERNELS,
// is read once at start); scripts/gpu-check.sh runs it once per row of its table.
//
//   node time_step.mjs --backend cuda --batch 128 --size 224 --devices 1|2 --warmup 5 --reps 20
//        [--precision default|strict|tf32] [--label L] [--lr 1e-6]
//
// --devices 2 places the two towers (§3.2) on cuda:0 and cuda:1 (two logical devices on a one-GPU
// machine). --precision: 'default' keeps PyTorch's defaults (convolutions may use TF32, matmuls strict
// FP32; for our own kernels too), 'tf32' allows TF32 everywhere, 'strict' none. Prints one
// `TIME {json}` line: the median and best of the timed steps, images/s, the kernels each op family
// ran on, and the loss after the last step (finite, or the row is marked as failed).
import { createModel, paperDescription } from '@alexnet/layers';
import { SGD } from '@alexnet/optim';
import { device, dispose, randn, tensor } from '@alexnet/tensor';
import { cuda, cudaEmu, libraries } from '@alexnet/cuda';
// The bundle's @alexnet/train is its step.js alone (prepare-gpu-bundle.sh); in the repo, the package.
import { trainStep } from '@alexnet/train';

const args = process.argv.slice(2);
const opt = (name, dflt) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : dflt; };
const backend = opt('--backend', 'cuda');
const batch = Number(opt('--batch', 128)), size = Number(opt('--size', 224));
const nDevices = Number(opt('--devices', 1)), warmup = Number(opt('--warmup', 5)), reps = Number(opt('--reps', 20));
const precision = opt('--precision', 'default');
const label = opt('--label', `ours ${nDevices === 2 ? 'two towers' : 'one device'}`);

const control = backend === 'cuda' ? cuda : cudaEmu;
if (backend === 'cuda' && !cuda.available()) {
  console.log(`TIME ${JSON.stringify({ label, error: `cuda is not available here: ${cuda.reason()}` })}`);
  process.exit(2);
}
const PRECISIONS = { default: { conv: 'tf32', matmul: 'ieee' }, strict: { conv: 'ieee', matmul: 'ieee' }, tf32: { conv: 'tf32', matmul: 'tf32' } };
if (!PRECISIONS[precision]) throw new Error(`--precision must be default, strict or tf32, not '${precision}'`);
const inForce = control.setPrecision(PRECISIONS[precision]);

const devs = Array.from({ length: nDevices }, (_, i) => device(`${backend}:${i}`));
if (backend === 'cuda-emu') for (const d of devs) d.setThreads(nDevices === 1 ? 2 : 1); // the emulated blocks run on host threads
const net = createModel(paperDescription({ inputSize: size }), { devices: devs, seed: 1 });
// The same batch every step: at the paper's lr 0.01 the loss diverges within 20 steps; a tiny lr keeps
// the weights (and the loss) where they start, and the work is the same (as torch_step.py's --lr).
const sgd = new SGD(net.parameters(), { lr: Number(opt('--lr', 1e-6)), momentum: 0.9, weightDecay: 5e-4, form: 'paper' });
const x = randn([batch, 3, size, size], { seed: 3, device: `${backend}:0` });
const labels = tensor(Int32Array.from({ length: batch }, (_, i) => (i * 37) % 1000), [batch], { device: `${backend}:0`, dtype: 'int32' });

let s = 0;
let lastLoss;
async function step() {
  const t0 = performance.now();
  const { loss, correct } = trainStep(net, sgd, x, labels, s++);
  await Promise.all(devs.map((d) => d.synchronize()));
  const ms = performance.now() - t0;
  if (lastLoss) lastLoss.dispose();
  lastLoss = loss;
  dispose([correct]);
  return ms;
}

const t0 = performance.now();
for (let i = 0; i < warmup; i++) await step();
const warmMs = performance.now() - t0;
const times = [];
for (let i = 0; i < reps; i++) times.push(await step());
const loss = (await lastLoss.data())[0];
const sorted = [...times].sort((a, b) => a - b);
const ms = sorted[Math.floor(sorted.length / 2)];
const lib = libraries(backend);
const kernels = Object.fromEntries(Object.entries(lib.kernels).map(([family, k]) => [family, k.library]));
const row = {
  label, backend, batch, size, devices: nDevices, precision, inForce, warmup, reps, ms, bestMs: sorted[0], imgPerSec: (batch * 1000) / ms,
  warmupMs: warmMs, loss, finite: Number.isFinite(loss), kernels, gpu: backend === 'cuda' ? cuda.gpus().name : 'cuda-emu (emulated on the host)',
};
console.log(`  ${label}: ${ms.toFixed(1)} ms median of ${reps} steps after ${warmup} warm-up (${row.imgPerSec.toFixed(1)} img/s), loss ${loss.toFixed(4)}; kernels ${JSON.stringify(kernels)}`);
console.log(`TIME ${JSON.stringify(row)}`);
net.dispose();
