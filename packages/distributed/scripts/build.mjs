#!/usr/bin/env node
// Builds build/Release/alexnet_mpi.node from native/mpi (g++ called directly, no node-gyp) and
// writes build/Release/build-info.json, which the package reads to say how it was built.
//
// MPI is found, in this order, through:
//   $MPICC or mpicc on PATH:  --showme:compile / --showme:link (Open MPI), -compile_info / -link_info (MPICH)
//   pkg-config:               ompi-c, ompi, mpich
// Found: the addon is compiled with -DALEXNET_WITH_MPI against it. Not found (or it does not compile):
// the addon is built without MPI (it still answers libraries() and the NCCL probe) and one line says so.
//
//   node scripts/build.mjs            fail loudly if the addon cannot be compiled at all (npm run build)
//   node scripts/build.mjs --install  at npm install: never an error; one line when built without MPI
// Environment: MPICC, CXX (default g++), ALEXNET_MPI_SKIP=1 (build without MPI), ALEXNET_BUILD_JOBS
// (default 2), ALEXNET_NAPI_INCLUDE (node-addon-api's headers when it is not installed),
// ALEXNET_DISTRIBUTED_BUILD_DIR (instead of ./build).
// Incremental: rebuilt only when a source under native/mpi or native/common or this script is newer than the addon,
// or when the MPI that was found changed (npm rebuild after installing MPI rebuilds with it).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const pkg = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const atInstall = process.argv.includes('--install');
const require = createRequire(join(pkg, 'package.json'));
// ALEXNET_DISTRIBUTED_BUILD_DIR: build somewhere else than ./build (the package's tests build a variant)
const buildDir = process.env.ALEXNET_DISTRIBUTED_BUILD_DIR ? resolve(process.env.ALEXNET_DISTRIBUTED_BUILD_DIR) : join(pkg, 'build');
const out = join(buildDir, 'Release');
const objDir = join(buildDir, 'obj');
const target = join(out, 'alexnet_mpi.node');
const infoPath = join(out, 'build-info.json');
const INSTALL_HINT = 'install OpenMPI (apt-get install openmpi-bin libopenmpi-dev) and rebuild with npm rebuild @alexnet/distributed';
const log = (m) => console.log(`[@alexnet/distributed] ${m}`);

// native sources: <repo>/native in the monorepo, ./native in a packed tarball (scripts/copy-native.mjs)
const nativeRoot = [join(pkg, 'native'), resolve(pkg, '..', '..', 'native')].find((d) => existsSync(join(d, 'mpi', 'addon.cpp')));

function saveInfo(info) { mkdirSync(out, { recursive: true }); writeFileSync(infoPath, JSON.stringify(info, null, 2) + '\n'); }
function readInfo() { try { return JSON.parse(readFileSync(infoPath, 'utf8')); } catch { return {}; } }

function sh(cmd, argv) {
  const r = spawnSync(cmd, argv, { encoding: 'utf8', timeout: 20_000 });
  return { ok: r.status === 0 && !r.error, out: (r.stdout ?? '').trim() };
}
function which(cmd) {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}
const words = (s) => s.split(/\s+/).filter(Boolean);
// From a full MPICH command line ("gcc -I... -L... -lmpich"), the flags that matter here.
const flagsOnly = (s) => words(s).filter((w) => /^(-I|-D|-L|-l|-Wl,|-pthread$|-Xlinker$)/.test(w));

function detectMpi() {
  if (process.env.ALEXNET_MPI_SKIP === '1') return { found: false, reason: 'ALEXNET_MPI_SKIP=1 was set' };
  const tried = [];
  const mpicc = process.env.MPICC || which('mpicc');
  if (mpicc) {
    const c = sh(mpicc, ['--showme:compile']), l = sh(mpicc, ['--showme:link']);
    if (c.ok && l.ok) return { found: true, flavour: 'openmpi', via: `${mpicc} --showme:compile/--showme:link`, cflags: words(c.out), libs: words(l.out) };
    const ci = sh(mpicc, ['-compile_info']), li = sh(mpicc, ['-link_info']);
    if (ci.ok && li.ok) return { found: true, flavour: 'mpich', via: `${mpicc} -compile_info/-link_info`, cflags: flagsOnly(ci.out), libs: flagsOnly(li.out) };
    tried.push(`${mpicc} answered neither --showme:compile nor -compile_info`);
  } else {
    tried.push('mpicc is not on PATH');
  }
  if (which('pkg-config')) {
    for (const name of ['ompi-c', 'ompi', 'mpich']) {
      const c = sh('pkg-config', ['--cflags', name]), l = sh('pkg-config', ['--libs', name]);
      if (c.ok && l.ok) return { found: true, flavour: name === 'mpich' ? 'mpich' : 'openmpi', via: `pkg-config ${name}`, cflags: words(c.out), libs: words(l.out) };
    }
    tried.push('pkg-config knows none of ompi-c, ompi, mpich');
  } else {
    tried.push('pkg-config is not installed');
  }
  return { found: false, reason: tried.join('; ') };
}

function nodeInclude() {
  const cands = [];
  if (process.env.npm_config_nodedir) cands.push(join(process.env.npm_config_nodedir, 'include', 'node'));
  cands.push(join(resolve(dirname(process.execPath), '..'), 'include', 'node'));
  cands.push('/usr/include/node', '/usr/local/include/node');
  const home = process.env.HOME ?? '';
  for (const base of [join(home, '.cache', 'node-gyp'), join(home, '.node-gyp')]) cands.push(join(base, process.versions.node, 'include', 'node'));
  return cands.find((d) => existsSync(join(d, 'node_api.h')));
}

function addonApiInclude() {
  if (process.env.ALEXNET_NAPI_INCLUDE && existsSync(join(process.env.ALEXNET_NAPI_INCLUDE, 'napi.h'))) return process.env.ALEXNET_NAPI_INCLUDE;
  try { return dirname(require.resolve('node-addon-api/package.json')); } catch { return undefined; }
}

function newest(dir) {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

function run(cmd, argv) {
  return new Promise((res) => {
    let err = '';
    const p = spawn(cmd, argv, { stdio: ['ignore', 'inherit', 'pipe'] });
    p.stderr.on('data', (d) => { err += d; });
    p.on('error', (e) => res({ ok: false, error: e.message }));
    p.on('close', (code) => res({ ok: code === 0, error: code === 0 ? undefined : `${cmd} exited with ${code}`, stderr: err }));
  });
}

async function compile(mpi) {
  const nodeInc = nodeInclude(), napiInc = addonApiInclude();
  if (!nodeInc || !napiInc) return { built: false, reason: `${nodeInc ? '' : "Node.js's headers (node_api.h) "}${napiInc ? '' : 'node-addon-api '}not found` };
  const CXX = process.env.CXX || 'g++';
  const dir = join(objDir, mpi.found ? 'mpi' : 'nompi');
  mkdirSync(dir, { recursive: true });
  mkdirSync(out, { recursive: true });
  const src = join(nativeRoot, 'mpi');
  const flags = ['-std=c++17', '-O2', '-fPIC', '-fvisibility=hidden', '-pthread', '-Wall', '-DNAPI_VERSION=8', '-DNAPI_CPP_EXCEPTIONS',
    '-DNODE_ADDON_API_DISABLE_DEPRECATED', '-DNODE_GYP_MODULE_NAME=alexnet_mpi', '-DOMPI_SKIP_MPICXX=1', '-DMPICH_SKIP_MPICXX=1',
    `-I${nodeInc}`, `-I${napiInc}`, ...(mpi.found ? ['-DALEXNET_WITH_MPI', ...mpi.cflags] : [])];
  const units = ['addon', 'dynlib'];
  const jobs = Math.max(1, Number(process.env.ALEXNET_BUILD_JOBS || 2));
  const results = [];
  for (let i = 0; i < units.length; i += jobs) {
    results.push(...await Promise.all(units.slice(i, i + jobs).map((u) => run(CXX, [...flags, '-c', join(src, `${u}.cpp`), '-o', join(dir, `${u}.o`)]))));
  }
  const bad = results.find((r) => !r.ok);
  if (bad) return { built: false, reason: `compiling native/mpi failed (${bad.error})`, stderr: bad.stderr };
  const libDirs = mpi.found ? mpi.libs.filter((f) => f.startsWith('-L')).map((f) => `-Wl,-rpath,${f.slice(2)}`) : [];
  const link = await run(CXX, ['-shared', '-pthread', ...units.map((u) => join(dir, `${u}.o`)), ...(mpi.found ? mpi.libs : []), ...libDirs, '-ldl', '-o', target]);
  if (!link.ok) return { built: false, reason: `linking alexnet_mpi.node failed (${link.error})`, stderr: link.stderr };
  return { built: true };
}

function finish(code, message) {
  if (message) (code === 0 ? console.log : console.error)(`[@alexnet/distributed] ${message}`);
  process.exit(atInstall ? 0 : code);
}

if (!nativeRoot) {
  const reason = 'the native sources (native/mpi) are missing from this install';
  saveInfo({ mpi: { built: false, reason }, addon: { built: false, reason }, node: process.version });
  finish(1, `WARNING: ${reason}; the package loads without MPI`);
}

const mpi = detectMpi();
const prev = readInfo();
const mpiKey = JSON.stringify(mpi.found ? { flavour: mpi.flavour, cflags: mpi.cflags, libs: mpi.libs } : null);
const fresh = existsSync(target) && prev.mpiKey === mpiKey && prev.addon?.built &&
  statSync(target).mtimeMs > Math.max(newest(join(nativeRoot, 'mpi')), existsSync(join(nativeRoot, 'common')) ? newest(join(nativeRoot, 'common')) : 0,
    statSync(fileURLToPath(import.meta.url)).mtimeMs);
if (fresh) {
  if (!atInstall) log(`alexnet_mpi.node is up to date (${mpi.found ? `with ${mpi.flavour}` : 'without MPI'})`);
  else if (!mpi.found) log(`built without MPI (${mpi.reason}): ${INSTALL_HINT}`);
  process.exit(0);
}

const t0 = Date.now();
let res = await compile(mpi);
let mpiInfo = mpi.found ? { built: true, flavour: mpi.flavour, via: mpi.via, cflags: mpi.cflags, libs: mpi.libs } : { built: false, reason: mpi.reason };
if (!res.built && mpi.found) {
  // MPI was found but the addon did not compile or link against it: build without it and say why.
  const why = `${mpi.via} was found, but ${res.reason}${res.stderr ? `: ${res.stderr.split('\n').find((l) => /error/.test(l)) ?? ''}` : ''}`;
  mpiInfo = { built: false, reason: why };
  res = await compile({ found: false });
}
const seconds = (Date.now() - t0) / 1000;
const info = { mpi: mpiInfo, addon: res.built ? { built: true, seconds } : { built: false, reason: res.reason }, mpiKey: res.built && mpiInfo.built === mpi.found ? mpiKey : null, node: process.version };
saveInfo(info);
if (!res.built) {
  if (res.stderr) process.stderr.write(res.stderr);
  finish(1, `${atInstall ? 'WARNING: ' : 'build failed: '}${res.reason}; the package loads, and libraries() says why MPI is unavailable`);
}
if (mpiInfo.built) finish(0, `built alexnet_mpi.node with ${mpi.flavour} (${mpi.via}) in ${seconds.toFixed(1)} s`);
finish(0, `built without MPI (${mpiInfo.reason}): ${INSTALL_HINT}`);
