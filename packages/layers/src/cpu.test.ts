// The models on the native 'cpu' backend, when it is available: its queues are asynchronous, so
// this checks that the two-tower placement orders its exchanges correctly (no reads inside
// forward/backward, copies ordered by events) and agrees with the one-device placement and with the
// float32 reference backend. Skipped where the native engine is not built or not registered.
import { afterAll, describe, expect, it } from 'vitest';
import { listBackends, listDevices, memory, randn } from '@alexnet/tensor';
import { createModel, paperDescription, SoftmaxCrossEntropy, type Network } from './index.js';
import { relativeError } from '@alexnet/tensor/conformance';

const cpuAvailable = listBackends().some((b) => b.name === 'cpu' && b.available);

afterAll(() => {
  // Stop the native engines' threads before the worker exits.
  for (const d of listDevices()) if (d.started && d.backend.name === 'cpu') d.engine.destroy();
});

/** Relative error: max |a - b| / max |b| (the conformance suite's measure). */
const relErr = (a: ArrayLike<number>, b: ArrayLike<number>): number => relativeError(a, b).error;

describe.skipIf(!cpuAvailable)('on the native cpu backend', () => {
  it('§5 initialisation gives the same weights as on the reference backend (Philox, seed and name)', () => {
    const desc = paperDescription({ classes: 10 });
    desc.input.size = 67;
    const a = createModel(desc, { devices: ['cpu:0'], seed: 3 }), b = createModel(desc, { devices: ['reference:0'], seed: 3 });
    const sa = a.stateDict(), sb = b.stateDict();
    for (const k of Object.keys(sb)) expect(relErr(sa[k]!.data, sb[k]!.data), k).toBeLessThan(1e-6);
    a.dispose();
    b.dispose();
  });

  it('two towers (cpu:1 + cpu:2) = one device (cpu:0) = reference, over three training steps, without leaks', () => {
    const desc = paperDescription({ classes: 10 });
    desc.input.size = 67;
    const nets: Network[] = [
      createModel(desc, { devices: ['cpu:0'], seed: 7 }),
      createModel(desc, { devices: ['cpu:1', 'cpu:2'], seed: 7 }),
      createModel(desc, { devices: ['reference:0'], seed: 7 }),
    ];
    const before = memory();
    const results = nets.map((net) => {
      const x = randn([4, 3, 67, 67], { seed: 1, device: net.devices[0]! });
      let out: { logits: Float32Array; grads: Map<string, Float32Array> } | undefined;
      for (let step = 0; step < 3; step++) {
        const loss = new SoftmaxCrossEntropy();
        net.zeroGrad();
        const logits = net.forward(x, { training: true, step });
        const l = loss.forward(logits, [1, 2, 3, 4], { training: true });
        const d = loss.backward();
        net.backward(d);
        if (step === 2) {
          const grads = new Map<string, Float32Array>();
          for (const p of net.parameters()) {
            const g = grads.get(p.name) ?? new Float32Array(p.fullShape.reduce((a, b) => a * b, 1));
            g.set(p.grad.dataSync() as Float32Array, p.offset);
            grads.set(p.name, g);
          }
          out = { logits: logits.dataSync() as Float32Array, grads };
        }
        for (const t of [logits, l, d]) t.dispose();
      }
      x.dispose();
      return out!;
    });
    expect(relErr(results[1]!.logits, results[0]!.logits)).toBeLessThan(1e-5);
    expect(relErr(results[0]!.logits, results[2]!.logits)).toBeLessThan(1e-4);
    for (const [name, g] of results[0]!.grads) {
      expect(relErr(results[1]!.grads.get(name)!, g), `two towers vs one device: ${name}`).toBeLessThan(1e-5);
      expect(relErr(g, results[2]!.grads.get(name)!), `cpu vs reference: ${name}`).toBeLessThan(1e-4);
    }
    const after = memory();
    expect(after.tensors).toBe(before.tensors);
    expect(after.bytes).toBe(before.bytes);
    for (const n of nets) n.dispose();
  });
});
