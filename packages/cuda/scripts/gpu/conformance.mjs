// The shared conformance suite against a CUDA backend, outside vitest (GPU machines have Node.js from
// the bundle but no registry): node conformance.mjs [--backend cuda] [--quick] [--random N]
//   --quick   random shapes only (for compute-sanitizer, which slows every kernel down, and for the
//             emulated check)
// The last line, `CONFORMANCE {json}`, holds the counts, the kernels each op family ran on (a vendor
// library, or ours and why) and the engine's counters (vendor calls, checks against our kernels,
// fallbacks), so that a run meant for the vendor path shows that the vendor path ran.
import { run } from 'vitest';
import { runConformanceSuite } from '@alexnet/tensor/conformance';
import { cuda, cudaEmu, libraries } from '@alexnet/cuda';

const args = process.argv.slice(2);
const opt = (n, d) => { const i = args.indexOf(n); return i >= 0 ? args[i + 1] : d; };
const backend = opt('--backend', 'cuda');
const quick = args.includes('--quick');
if (backend === 'cuda' && !cuda.available()) {
  console.error(`conformance: cuda is not available here: ${cuda.reason()}`);
  console.log(`CONFORMANCE ${JSON.stringify({ backend, quick, error: `cuda is not available here: ${cuda.reason()}` })}`);
  process.exit(2);
}
runConformanceSuite(backend, { required: true, alexnetShapes: !quick, randomCases: Number(opt('--random', quick ? 2 : 6)) });
const t0 = performance.now();
const r = await run();
const seconds = (performance.now() - t0) / 1000;
const k = (backend === 'cuda' ? cuda : cudaEmu).kernels();
const kernels = Object.fromEntries(Object.entries(libraries(backend).kernels).map(([f, c]) => [f, c.library === 'own' && c.reason ? `own (${c.reason})` : c.library]));
const counters = Object.fromEntries(Object.entries(k?.counters ?? {}).filter(([, v]) => v));
console.log(`conformance ${backend}${quick ? ' (quick)' : ''}: ${r.passed} passed, ${r.failed} failed, ${r.skipped} skipped in ${seconds.toFixed(1)} s; kernels ${JSON.stringify(kernels)}`);
console.log(`CONFORMANCE ${JSON.stringify({ backend, quick, ...r, seconds, kernels, precision: k?.precision, counters })}`);
process.exit(r.failed ? 1 : 0);
