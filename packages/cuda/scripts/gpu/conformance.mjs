// The shared conformance suite against a CUDA backend, outside vitest (GPU machines have Node.js from
// the bundle but no registry): node conformance.mjs [--backend cuda] [--quick] [--random N]
//   --quick   random shapes only (for compute-sanitizer, which slows every kernel down)
import { run } from 'vitest';
import { runConformanceSuite } from '@alexnet/tensor/conformance';
import { cuda } from '@alexnet/cuda';

const args = process.argv.slice(2);
const opt = (n, d) => { const i = args.indexOf(n); return i >= 0 ? args[i + 1] : d; };
const backend = opt('--backend', 'cuda');
const quick = args.includes('--quick');
if (backend === 'cuda' && !cuda.available()) {
  console.error(`conformance: cuda is not available here: ${cuda.reason()}`);
  process.exit(2);
}
runConformanceSuite(backend, { required: true, alexnetShapes: !quick, randomCases: Number(opt('--random', quick ? 2 : 6)) });
const t0 = performance.now();
const r = await run();
console.log(`conformance ${backend}${quick ? ' (quick)' : ''}: ${r.passed} passed, ${r.failed} failed, ${r.skipped} skipped in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
console.log(`CONFORMANCE ${JSON.stringify({ backend, quick, ...r })}`);
process.exit(r.failed ? 1 : 0);
