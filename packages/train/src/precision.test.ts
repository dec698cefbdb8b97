// --precision bf16 (precision.ts; the CPU engine's bf16 mode, docs/cpu-engine.md): a short run on
// the sample ImageNet trains like fp32 (the same seeds, so the same batches and initial weights:
// the per-step losses differ only by the GEMMs' bf16 rounding), the recipe and the checkpoint say
// which precision, the master weights stay fp32, and bf16 is refused where it cannot run.
import { readFile, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpuPrecision, setCpuPrecision } from '@alexnet/tensor';
import { loadCheckpoint } from './checkpoint.js';
import { applyPrecision } from './precision.js';
import { formatRecipe } from './recipe.js';
import { train } from './trainer.js';
import { sampleFixture, SMALL, type Fixture } from './fixture.test-util.js';

let fx: Fixture;
beforeAll(async () => { fx = await sampleFixture(); }, 120_000);
afterAll(async () => {
  setCpuPrecision('fp32');
  if (fx) await rm(fx.root, { recursive: true, force: true });
});

const bf16 = cpuPrecision().bf16Supported;
/** The CPU engine's module (setCpuConvAlgorithm is not part of @alexnet/tensor's main entry). */
const cpuModule = async () => (await import(pathToFileURL(join(dirname(createRequire(import.meta.url).resolve('@alexnet/tensor')), 'cpu', 'index.js')).href)) as {
  setCpuConvAlgorithm(pass: 'forward' | 'backwardData' | 'backwardFilter', algorithm: 'auto' | 'direct'): string;
};
const PASSES = ['forward', 'backwardData', 'backwardFilter'] as const;
const EPOCHS = 3, STEPS = EPOCHS * 25; // 400 training images, batch 16
const mean = (a: number[]) => a.reduce((s, x) => s + x, 0) / a.length;

describe('--precision', () => {
  it('refuses unknown values and non-CPU devices with a sentence', () => {
    expect(() => applyPrecision('fp16' as never, ['cpu:0'])).toThrow(/expected the precision fp32 or bf16 but received "fp16"/);
    expect(() => applyPrecision('bf16', ['cuda:0'])).toThrow(/bf16 is a mode of the CPU engine, but cuda:0 is not a cpu device/);
    expect(applyPrecision('fp32', ['cuda:0'])).toBe('fp32');
  });

  it.skipIf(bf16)('is refused at the start, with the reason, on a CPU without AVX512_BF16', async () => {
    console.log('this CPU lacks AVX512_BF16: testing the refusal of --precision bf16 only');
    await expect(train({ ...SMALL, data: fx.prepared, out: join(fx.root, 'no-bf16'), epochs: 1, maxSteps: 1, precision: 'bf16' }))
      .rejects.toThrow(/--precision bf16 was asked for, but this CPU lacks AVX512_BF16.*--precision fp32/);
  }, 120_000);

  it.skipIf(!bf16)('bf16 trains like fp32: per-step losses within 2 % over 3 epochs, both falling; fp32 master weights; said in the recipe', async () => {
    const run = async (precision: 'fp32' | 'bf16') => {
      const losses: number[] = [];
      const r = await train({ ...SMALL, data: fx.prepared, out: join(fx.root, precision), epochs: EPOCHS, patience: 5, seed: 4, dropout: false, precision,
        onStep: (s) => { losses.push(s.loss); } });
      return { r, losses };
    };
    // Every convolution through im2col, so that every GEMM of the net (conv1-5, fc6-8) is bf16 in the
    // bf16 run ('auto' keeps the Winograd layers' F(4x4,3x3) and F(2x2,5x5) GEMMs in fp32).
    const { setCpuConvAlgorithm } = await cpuModule();
    for (const p of PASSES) setCpuConvAlgorithm(p, 'direct');
    let f, b;
    try { f = await run('fp32'); b = await run('bf16'); } finally { for (const p of PASSES) setCpuConvAlgorithm(p, 'auto'); }
    expect(f.losses).toHaveLength(STEPS);
    expect(b.losses).toHaveLength(STEPS);
    // The first step sees identical weights and data: only the GEMMs' rounding differs.
    const rel = b.losses.map((l, i) => Math.abs(l - f.losses[i]!) / f.losses[i]!);
    console.log(`losses fp32 ${f.losses.map((l) => l.toFixed(4)).join(' ')}\nlosses bf16 ${b.losses.map((l) => l.toFixed(4)).join(' ')}\n` +
      `largest relative difference ${Math.max(...rel).toExponential(2)}, first step ${rel[0]!.toExponential(2)}`);
    expect(rel[0]!).toBeLessThan(2e-3);
    expect(Math.max(...rel)).toBeLessThan(0.02);
    // Both fall, alike: each epoch's mean training loss.
    const epochs = (h: typeof f.r.history) => h.map((e) => e.trainLoss);
    console.log(`epoch losses fp32 ${epochs(f.r.history).map((l) => l.toFixed(4)).join(' ')}, bf16 ${epochs(b.r.history).map((l) => l.toFixed(4)).join(' ')}`);
    for (const h of [f.r.history, b.r.history]) expect(h.at(-1)!.trainLoss).toBeLessThan(h[0]!.trainLoss - 0.04);
    epochs(b.r.history).forEach((l, i) => expect(Math.abs(l - f.r.history[i]!.trainLoss)).toBeLessThan(0.01 * f.r.history[i]!.trainLoss));
    // Said in the printed recipe, metrics.jsonl's first line and the checkpoint.
    expect(b.r.recipe.precision).toBe('bf16');
    expect(formatRecipe(b.r.recipe).at(-1)).toMatch(/^precision: bf16 GEMM inputs .*fp32 accumulation, fp32 master weights/);
    expect(formatRecipe(f.r.recipe).at(-1)).toBe('precision: fp32 throughout');
    const first = JSON.parse((await readFile(join(fx.root, 'bf16', 'metrics.jsonl'), 'utf8')).split('\n')[0]!);
    expect(first).toMatchObject({ type: 'recipe', precision: 'bf16' });
    const ck = await loadCheckpoint(b.r.checkpoint);
    expect((ck.meta.recipe as { precision?: string }).precision).toBe('bf16');
    // Master weights are fp32: many weights are not bf16 values (their low 16 bits are not zero).
    const w = ck.model.get('conv2.weight')!.data as Float32Array;
    const low = new Uint32Array(w.buffer, w.byteOffset, w.length).filter((u) => (u & 0xffff) !== 0).length;
    expect(low / w.length).toBeGreaterThan(0.9);
    expect(cpuPrecision().active).toBe('bf16');
  }, 600_000);
});
