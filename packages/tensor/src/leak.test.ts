// A thousand iterations of a forward/backward op sequence leave memory() where it started.
import { describe, expect, it } from 'vitest';
import {
  conv2d, conv2dBackwardData, conv2dBackwardFilter, dispose, listBackends, localResponseNorm, localResponseNormBackward,
  matmul, maxPool2d, maxPool2dBackward, memory, randn, relu, reluBackward, sgdUpdate, softmaxCrossEntropy, tensor, tidy, zeros,
  dropout, dropoutBackward,
} from './index.js';

const backends = listBackends().filter((b) => b.available && (b.name === 'reference' || b.name === 'cpu')).map((b) => b.name);

describe.each(backends)('no leaks on %s', (name) => {
  it('1000 forward/backward/update steps return memory() to where it started', async () => {
    const dev = `${name}:0`;
    const w = randn([4, 3, 3, 3], { seed: 1, std: 0.1, device: dev });
    const v = zeros([4, 3, 3, 3], { device: dev });
    const fcw = randn([4 * 3 * 3, 5], { seed: 2, std: 0.1, device: dev });
    const labels = tensor(Int32Array.of(1, 4), [2], { device: dev });
    const start = memory();
    for (let step = 0; step < 1000; step++) {
      tidy(() => {
        const x = randn([2, 3, 8, 8], { seed: 3, offset: step * 384, device: dev });
        const y = relu(conv2d(x, w, null, { padding: 1 }));
        const n = localResponseNorm(y, { size: 3 });
        const { y: p, argmax } = maxPool2d(n, { size: 3, stride: 2 });
        const d = dropout(p.reshape([2, 36]), { p: 0.5, seed: 9, offset: step * 72 });
        const logits = matmul(d, fcw);
        const { dlogits } = softmaxCrossEntropy(logits, labels);
        const dd = dropoutBackward(matmul(dlogits!, fcw, { transB: true }), { p: 0.5, seed: 9, offset: step * 72 });
        const dn = maxPool2dBackward(dd.reshape([2, 4, 3, 3]), argmax, n.shape, { size: 3, stride: 2 });
        const dy = reluBackward(y, localResponseNormBackward(y, n, dn, { size: 3 }));
        conv2dBackwardData(dy, w, x.shape, { padding: 1 });
        const { dw } = conv2dBackwardFilter(x, dy, w.shape, { padding: 1 }, { db: null });
        sgdUpdate(w, dw, v, { lr: 0.01 });
      });
    }
    expect(memory()).toEqual(start);
    dispose([w, v, fcw, labels]);
  }, 300_000);
});
