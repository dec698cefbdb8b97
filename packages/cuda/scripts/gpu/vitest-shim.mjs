// A minimal stand-in for vitest (describe / it / beforeAll / expect), so the shared conformance suite
// (@alexnet/tensor/conformance, which imports 'vitest') runs on a GPU machine that has Node.js but no
// registry. prepare-gpu-bundle.sh installs it as .gpu/node_modules/vitest. Only what the suite uses.
const root = { name: '', tests: [], hooks: [], children: [], skip: false };
let current = root;

function suite(name, fn, skip) {
  const s = { name, tests: [], hooks: [], children: [], skip: skip || current.skip, parent: current };
  current.children.push(s);
  const prev = current;
  current = s;
  try { fn(); } finally { current = prev; }
}
export function describe(name, fn) { suite(name, fn, false); }
describe.skip = (name, fn) => suite(name, fn, true);
export function it(name, fn, timeout) { current.tests.push({ name, fn, timeout, skip: current.skip }); }
it.skip = (name, fn) => current.tests.push({ name, fn, skip: true });
it.skipIf = (cond) => (cond ? it.skip : it);
it.runIf = (cond) => (cond ? it : it.skip);
export const test = it;
export function beforeAll(fn) { current.hooks.push(fn); }

function same(a, b) {
  if (Object.is(a, b)) return true;
  if (typeof a === 'number' && typeof b === 'number') return a === b;
  if (ArrayBuffer.isView(a) || ArrayBuffer.isView(b) || Array.isArray(a) || Array.isArray(b)) {
    if (!a || !b || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!same(a[i], b[i])) return false;
    return true;
  }
  if (a && b && typeof a === 'object' && typeof b === 'object') {
    const ka = Object.keys(a), kb = Object.keys(b);
    return ka.length === kb.length && ka.every((k) => same(a[k], b[k]));
  }
  return false;
}
const show = (v) => { try { return JSON.stringify(ArrayBuffer.isView(v) ? Array.from(v) : v)?.slice(0, 300); } catch { return String(v); } };

export function expect(actual, message) {
  const fail = (what) => { throw new Error(message ? `${message}\n(${what})` : what); };
  const api = (negate) => ({
    toEqual(e) { if (same(actual, e) === negate) fail(`expected ${show(actual)} ${negate ? 'not ' : ''}to equal ${show(e)}`); },
    toBe(e) { if (Object.is(actual, e) === negate) fail(`expected ${show(actual)} ${negate ? 'not ' : ''}to be ${show(e)}`); },
    toBeUndefined() { if ((actual === undefined) === negate) fail(`expected ${show(actual)} ${negate ? 'not ' : ''}to be undefined`); },
    toContain(e) { if (actual.includes(e) === negate) fail(`expected ${show(actual)} ${negate ? 'not ' : ''}to contain ${show(e)}`); },
    toBeGreaterThan(e) { if ((actual > e) === negate) fail(`expected ${actual} > ${e}`); },
    toBeGreaterThanOrEqual(e) { if ((actual >= e) === negate) fail(`expected ${actual} >= ${e}`); },
    toMatch(re) { if ((typeof re === 'string' ? actual.includes(re) : re.test(actual)) === negate) fail(`expected ${show(actual)} to match ${re}`); },
    toThrow(re) {
      let threw = false, msg = '';
      try { actual(); } catch (e) { threw = true; msg = String(e?.message ?? e); }
      const ok = threw && (re === undefined || (typeof re === 'string' ? msg.includes(re) : re.test(msg)));
      if (ok === negate) fail(`expected the function ${negate ? 'not ' : ''}to throw${re ? ' ' + re : ''}${threw ? ` (threw: ${msg})` : ''}`);
    },
  });
  return Object.assign(api(false), { not: api(true) });
}

/** Runs everything registered so far; resolves to { passed, failed, skipped }. */
export async function run({ log = console.log } = {}) {
  const counts = { passed: 0, failed: 0, skipped: 0 };
  async function visit(s, path) {
    const name = [...path, s.name].filter(Boolean).join(' > ');
    let hookError;
    if (!s.skip) for (const h of s.hooks) { try { await h(); } catch (e) { hookError = e; break; } }
    for (const t of s.tests) {
      const full = `${name} > ${t.name}`;
      if (t.skip) { counts.skipped++; log(`  skip  ${full}`); continue; }
      const t0 = performance.now();
      try {
        if (hookError) throw hookError;
        await t.fn();
        counts.passed++;
        log(`  ok    ${full} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
      } catch (e) {
        counts.failed++;
        log(`  FAIL  ${full}\n${String(e?.stack ?? e).split('\n').slice(0, 40).map((l) => '        ' + l).join('\n')}`);
      }
    }
    for (const c of s.children) await visit(c, [...path, s.name]);
  }
  await visit(root, []);
  return counts;
}
