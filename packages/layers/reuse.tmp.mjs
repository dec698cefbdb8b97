import { device, randn, tensor, listDevices, sgdUpdate, zeros } from '@alexnet/tensor';
import { createModel, paperDescription, SoftmaxCrossEntropy } from '@alexnet/layers';
const reuse = process.argv[2] === 'reuse';
const mode = process.argv[3] ?? 'one';
const batch = Number(process.argv[4] ?? 128);
const devs = mode === 'one' ? [device('cpu:0')] : [device('cpu:0'), device('cpu:1')];
if (mode === 'one') devs[0].setThreads(2); else devs.forEach(d => d.setThreads(1));
let hits = 0, misses = 0;
if (reuse) for (const d of devs) {
  const e = d.engine, cache = new Map();
  const alloc = e.alloc.bind(e);
  e.alloc = (dtype, n) => { const l = cache.get(dtype + n); if (l?.length) { hits++; return l.pop(); } misses++; return alloc(dtype, n); };
  e.free = (b) => { const k = b.dtype + b.length; if (!cache.has(k)) cache.set(k, []); cache.get(k).push(b); };
}
const net = createModel(paperDescription(), { devices: devs, seed: 1 });
const params = net.parameters();
const vel = params.map(p => zeros(p.value.shape, { device: p.value.device }));
const x = randn([batch, 3, 227, 227], { seed: 3, device: devs[0] });
const labels = tensor(Int32Array.from({ length: batch }, (_, i) => i % 1000), [batch], { device: devs[0], dtype: 'int32' });
const loss = new SoftmaxCrossEntropy();
const sync = () => Promise.all(devs.map(d => d.synchronize()));
const out = [];
for (const sec of ['infer', 'train']) {
  const ts = [];
  for (let r = 0; r < 4; r++) {
    const t0 = performance.now();
    if (sec === 'infer') { const y = net.forward(x); await y.data(); y.dispose(); }
    else {
      net.zeroGrad();
      const lg = net.forward(x, { training: true }); const l = loss.forward(lg, labels, { training: true }); const d = loss.backward(); net.backward(d);
      params.forEach((p, i) => sgdUpdate(p.value, p.grad, vel[i], { lr: 1e-6 }));
      [lg, l, d].forEach(t => t.dispose()); await sync();
    }
    if (r > 0) ts.push(performance.now() - t0);
  }
  out.push(`${sec} best ${(batch * 1000 / Math.min(...ts)).toFixed(1)}`);
}
console.log(`${reuse ? 'reuse' : 'fresh'} ${mode} b${batch}: ${out.join(', ')} img/s (hits ${hits}, misses ${misses})`);
for (const d of listDevices()) if (d.started) d.engine.destroy();
