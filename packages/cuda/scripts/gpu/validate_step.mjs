// One training step of the paper net (dropout off, so that both sides compute the same function),
// on our backend and on a float64 reference, compared: the GPU check's proof that the step the
// benchmark times is the right one (scripts/gpu-check.sh).
//
//   node validate_step.mjs run --backend cuda --batch 128 --size 227 --dir D [--precision strict] [--out after]
//        [--save-before 0]
//        builds the net (seed 1) and a batch, writes D/before.safetensors (the weights, x, labels;
//        its metadata holds the layer list and the SGD settings, which torch_validate.py builds from),
//        runs forward, softmax cross-entropy, backward and the SGD update (lr 0.01, momentum 0.9,
//        weight decay 5e-4, the paper's form, §5) in strict FP32 unless --precision says otherwise
//        (default: PyTorch's defaults, TF32 convolutions; tf32: everywhere), and writes
//        D/<out>.safetensors (after.safetensors): the logits, the loss and
//        each parameter's update (update.<name>: the SGD's velocity after one step from zero, i.e.
//        -lr (gradient + decay w), compared directly rather than as a difference of weights, which
//        float32 rounds away where |w| is much larger than the update)
//   node validate_step.mjs reference --dir D
//        the same step from D/before.safetensors on @alexnet/tensor's float64 reference backend,
//        written to D/reference.safetensors (where PyTorch is not at hand: the emulated check)
//   node validate_step.mjs compare --dir D --ref torch|reference [--after after] [--label L]
//        the update of every parameter, the logits and the loss of D/<after>.safetensors against
//        D/<ref>.safetensors (torch_validate.py writes torch.safetensors) as norm-wise relative
//        errors, |ours - ref| / |ref|: within 1e-4 for the loss and the logits and 2e-3 for each
//        update (--update-tol) in strict FP32; prints a VALIDATE line, exits 1 when one is over
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { applyAblations, createModel, paperDescription } from '@alexnet/layers';
import { SGD } from '@alexnet/optim';
import { fromHost, loadSafetensors, randn, saveSafetensors, softmaxCrossEntropy, tensor } from '@alexnet/tensor';

const args = process.argv.slice(2);
const cmd = args[0];
const opt = (name, dflt) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : dflt; };
const dir = opt('--dir', '.');
const SGD_OPTS = { lr: 0.01, momentum: 0.9, weightDecay: 5e-4, form: 'paper' };

function describe(size) {
  return applyAblations(paperDescription({ inputSize: size }), { dropout: false });
}

/** forward (training), loss, backward, SGD: what trainStep does, with the logits kept. */
async function step(net, x, labels) {
  const params = net.parameters();
  const sgd = new SGD(params, SGD_OPTS);
  net.zeroGrad();
  const logits = net.forward(x, { training: true, step: 0 });
  const { loss, dlogits } = softmaxCrossEntropy(logits, labels);
  net.backward(dlogits);
  sgd.step();
  const out = { logits: { dtype: logits.dtype, shape: logits.shape, data: await logits.data() }, loss: { dtype: loss.dtype, shape: [1], data: await loss.data() } };
  for (const [i, p] of params.entries()) {
    const v = sgd.velocityOf(i);
    out[`update.${p.name}`] = { dtype: v.dtype, shape: v.shape, data: await v.data() };
  }
  return out;
}

const PRECISIONS = { strict: { conv: 'ieee', matmul: 'ieee' }, default: { conv: 'tf32', matmul: 'ieee' }, tf32: { conv: 'tf32', matmul: 'tf32' } };

async function run() {
  const backend = opt('--backend', 'cuda'), batch = Number(opt('--batch', 128)), size = Number(opt('--size', 227));
  const precision = opt('--precision', 'strict'), outName = opt('--out', 'after');
  if (!PRECISIONS[precision]) throw new Error(`--precision must be strict, default or tf32, not '${precision}'`);
  const { cuda, cudaEmu, libraries } = await import('@alexnet/cuda');
  if (backend === 'cuda' && !cuda.available()) throw new Error(`cuda is not available here: ${cuda.reason()}`);
  (backend === 'cuda' ? cuda : cudaEmu).setPrecision(PRECISIONS[precision]);
  mkdirSync(dir, { recursive: true });
  const dev = `${backend}:0`;
  const desc = describe(size);
  const net = createModel(desc, { devices: [dev], seed: 1 });
  const x = randn([batch, 3, size, size], { seed: 3, device: dev });
  const lab = Int32Array.from({ length: batch }, (_, i) => (i * 37) % 1000);
  const labels = tensor(lab, [batch], { device: dev, dtype: 'int32' });
  const before = net.stateDict();
  // --save-before 0: a second run (other kernels) over the same weights and batch, which are the same
  // for the same seeds, leaves the file that the reference may be reading meanwhile alone
  if (opt('--save-before', '1') !== '0') await saveSafetensors(join(dir, 'before.safetensors'), { ...before, x: { dtype: 'float32', shape: x.shape, data: await x.data() }, labels: { dtype: 'int32', shape: [batch], data: lab } },
    { size: String(size), batch: String(batch), backend, model: JSON.stringify(desc), sgd: JSON.stringify(SGD_OPTS) });
  const t0 = performance.now();
  const out = await step(net, x, labels);
  const ms = performance.now() - t0;
  await saveSafetensors(join(dir, `${outName}.safetensors`), out);
  const kernels = Object.entries(libraries(backend).kernels).map(([f, k]) => `${f} ${k.library}`).join(', ');
  console.log(`validate: one step of the paper net (dropout off) at batch ${batch}, ${size} x ${size}, on ${dev}, ${precision} precision (${kernels}): loss ${out.loss.data[0].toFixed(6)} (${ms.toFixed(0)} ms with the first-use searches and checks)`);
}

async function reference() {
  const { tensors, metadata } = await loadSafetensors(join(dir, 'before.safetensors'));
  const size = Number(metadata.size);
  const net = createModel(describe(size), { devices: ['reference:0'], seed: 1, dtype: 'float64' });
  const weights = new Map([...tensors].filter(([k]) => k !== 'x' && k !== 'labels'));
  net.loadStateDict(weights);
  const xh = tensors.get('x');
  const x = fromHost({ dtype: 'float64', shape: xh.shape, data: Float64Array.from(xh.data) }, { device: 'reference:0' });
  const labels = tensor(tensors.get('labels').data, [xh.shape[0]], { device: 'reference:0', dtype: 'int32' });
  const out = await step(net, x, labels);
  await saveSafetensors(join(dir, 'reference.safetensors'), out);
  console.log(`validate: the float64 reference of the same step: loss ${out.loss.data[0].toFixed(6)}`);
}

function relErr(got, want) {
  let d = 0, r = 0;
  for (let i = 0; i < want.length; i++) {
    const g = got[i], w = want[i];
    if (!Number.isFinite(g)) return Infinity;
    d += (g - w) * (g - w);
    r += w * w;
  }
  return r > 0 ? Math.sqrt(d / r) : Math.sqrt(d);
}

async function compare() {
  const refName = opt('--ref', 'torch'), afterName = opt('--after', 'after'), label = opt('--label', afterName);
  const tol = { logits: 1e-4, loss: 1e-4, update: Number(opt('--update-tol', 2e-3)) };
  const before = (await loadSafetensors(join(dir, 'before.safetensors'))).tensors;
  const after = (await loadSafetensors(join(dir, `${afterName}.safetensors`))).tensors;
  const ref = (await loadSafetensors(join(dir, `${refName}.safetensors`))).tensors;
  const rows = [];
  const check = (what, err, limit) => rows.push({ what, error: err, limit, ok: err <= limit });
  check('loss', relErr(after.get('loss').data, ref.get('loss').data), tol.loss);
  check('logits', relErr(after.get('logits').data, ref.get('logits').data), tol.logits);
  let worst = { what: '', error: 0 };
  for (const name of before.keys()) {
    if (name === 'x' || name === 'labels') continue;
    const err = relErr(after.get(`update.${name}`).data, ref.get(`update.${name}`).data);
    check(`update of ${name}`, err, tol.update);
    if (err > worst.error) worst = { what: name, error: err };
  }
  const failed = rows.filter((r) => !r.ok);
  for (const r of rows) if (!r.ok || r.what === 'loss' || r.what === 'logits') console.log(`  ${r.ok ? 'ok ' : 'BAD'} ${r.what}: relative error ${r.error.toExponential(2)} (limit ${r.limit})`);
  console.log(`  worst parameter update: ${worst.what} ${worst.error.toExponential(2)} (limit ${tol.update}); ${rows.length - 2} parameters`);
  console.log(`VALIDATE ${JSON.stringify({ label, ref: refName, batch: after.get('logits').shape[0], limits: tol, passed: rows.length - failed.length, failed: failed.length, loss: rows[0].error, logits: rows[1].error, worstUpdate: worst })}`);
  process.exitCode = failed.length ? 1 : 0;
}

const commands = { run, reference, compare };
if (!commands[cmd]) {
  console.error('usage: node validate_step.mjs run|reference|compare [--backend B] [--batch N] [--size S] [--dir D] [--precision strict|default|tf32] [--out NAME] [--ref torch|reference] [--after NAME]');
  process.exit(2);
}
await commands[cmd]();
