#!/usr/bin/env node
// Builds the two addons of @alexnet/cuda from native/cuda (no node-gyp: the compilers are called
// directly, so nvcc can compile the kernels):
//   build/Release/alexnet_cuda_emu.node  g++ only, always: the kernels on the host emulation ('cuda-emu')
//   build/Release/alexnet_cuda.node      nvcc + g++, when nvcc is found: the kernels on the GPU ('cuda'),
//                                        static CUDA runtime, sm_80 and sm_90 SASS plus compute_90 PTX
// and build/Release/build-info.json, which the package reads to say how it was built.
//
//   node scripts/build.mjs            build both, fail loudly (npm run build)
//   node scripts/build.mjs --install  at npm install: a failed or skipped build is a warning, never an error
//   node scripts/build.mjs --emu-only | --cuda-only
// Environment: NVCC (path to nvcc), ALEXNET_CUDA_ARCHS (default "80,90": SASS for each, PTX for the
// last), ALEXNET_CUDA_SKIP=1 (no nvcc build), CXX (default g++), ALEXNET_BUILD_JOBS (default 2),
// ALEXNET_NAPI_INCLUDE (node-addon-api's headers when it is not installed: the GPU bundle).
// cuDNN and cuBLASLt are never needed to build (the engine loads them at run time, vendor/loader.cpp);
// where their headers are found (ALEXNET_CUDNN_INCLUDE, ALEXNET_CUBLAS_INCLUDE, the CUDA toolkit's
// include folder, the nvidia/*/include folders of Python's site-packages), the GPU build also compiles
// vendor/check_headers.cpp, which fails when vendor/api.h's declarations differ from them; the result is
// build-info.json's vendorHeaders (a mismatch keeps the engine on its own kernels).
// Incremental: an addon is rebuilt only when a source under native/ is newer than it.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, realpathSync, statSync, writeFileSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const pkg = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = new Set(process.argv.slice(2));
const atInstall = args.has('--install');
const out = join(pkg, 'build', 'Release');
const objDir = join(pkg, 'build', 'obj');
const log = (m) => console.log(`[@alexnet/cuda] ${m}`);

// native sources: <repo>/native in the monorepo, ./native in a packed tarball (prepack: native/copy-into-package.mjs)
const nativeRoot = [join(pkg, 'native'), resolve(pkg, '..', '..', 'native')].find((d) => existsSync(join(d, 'cuda', 'engine.cu')));
const infoPath = join(out, 'build-info.json');
const info = existsSync(infoPath) ? safeJson(readFileSync(infoPath, 'utf8')) : {};

function safeJson(s) { try { return JSON.parse(s); } catch { return {}; } }
function saveInfo() { mkdirSync(out, { recursive: true }); writeFileSync(infoPath, JSON.stringify(info, null, 2) + '\n'); }

if (!nativeRoot) {
  info.emu = { built: false, reason: 'the native sources (native/cuda) are missing from this install' };
  info.cuda = { built: false, reason: info.emu.reason };
  saveInfo();
  finish(false, info.emu.reason);
}

const { nodeInclude, addonApiInclude, which, newestMtime } = await import(pathToFileURL(join(nativeRoot, 'common', 'build-env.mjs')).href);

function upToDate(target) {
  if (!existsSync(target)) return false;
  const src = newestMtime([join(nativeRoot, 'cuda'), join(nativeRoot, 'common'), join(pkg, 'scripts', 'build.mjs')]);
  return statSync(target).mtimeMs > src;
}

function run(cmd, argv) {
  return new Promise((resolveP) => {
    const t0 = Date.now();
    const p = spawn(cmd, argv, { stdio: ['ignore', 'inherit', 'inherit'] });
    p.on('error', (e) => resolveP({ ok: false, error: e.message, seconds: 0 }));
    p.on('close', (code) => resolveP({ ok: code === 0, error: code === 0 ? undefined : `${cmd} exited with ${code}`, seconds: (Date.now() - t0) / 1000 }));
  });
}

async function parallel(jobs, limit) {
  const results = [];
  let next = 0;
  async function worker() {
    while (next < jobs.length) { const j = jobs[next++]; results.push(await j()); }
  }
  await Promise.all(Array.from({ length: Math.max(1, limit) }, worker));
  return results;
}

const CXX = process.env.CXX || 'g++';
const JOBS = Number(process.env.ALEXNET_BUILD_JOBS || 2);
const nodeInc = nodeInclude();
const napiInc = addonApiInclude(pkg);
const cuda = join(nativeRoot, 'cuda');
const common = ['-std=c++17', '-O2', '-fPIC', '-pthread', '-DNAPI_VERSION=8', '-DNAPI_CPP_EXCEPTIONS', '-DNODE_ADDON_API_DISABLE_DEPRECATED'];

async function buildEmu() {
  const target = join(out, 'alexnet_cuda_emu.node');
  if (upToDate(target)) { log('alexnet_cuda_emu.node is up to date'); return { built: true, upToDate: true }; }
  if (!nodeInc || !napiInc) return { built: false, reason: `Node.js headers ${nodeInc ? '' : '(node_api.h) '}${napiInc ? '' : 'node-addon-api '}not found` };
  const dir = join(objDir, 'emu');
  mkdirSync(dir, { recursive: true });
  mkdirSync(out, { recursive: true });
  const defs = [...common, '-DALEXNET_CUDA_EMU', '-DNODE_GYP_MODULE_NAME=alexnet_cuda_emu', `-I${nodeInc}`, `-I${napiInc}`];
  const units = [['engine.o', ['-x', 'c++', join(cuda, 'engine.cu')]], ['runtime.o', [join(cuda, 'emu', 'runtime.cpp')]], ['selftest.o', [join(cuda, 'emu', 'selftest.cpp')]], ['addon.o', [join(cuda, 'addon.cpp')]], ['loader.o', [join(cuda, 'vendor', 'loader.cpp')]]];
  const t0 = Date.now();
  const res = await parallel(units.map(([o, src]) => () => run(CXX, [...defs, '-c', ...src, '-o', join(dir, o)])), JOBS);
  const bad = res.find((r) => !r.ok);
  if (bad) return { built: false, reason: `compiling the emulated backend failed: ${bad.error}` };
  const link = await run(CXX, ['-shared', '-pthread', ...units.map(([o]) => join(dir, o)), '-ldl', '-o', target]);
  if (!link.ok) return { built: false, reason: `linking the emulated backend failed: ${link.error}` };
  const seconds = (Date.now() - t0) / 1000;
  log(`built alexnet_cuda_emu.node in ${seconds.toFixed(1)} s`);
  return { built: true, seconds };
}

function findNvcc() {
  if (process.env.NVCC && existsSync(process.env.NVCC)) return process.env.NVCC;
  return which('nvcc') ?? ['/usr/local/cuda/bin/nvcc'].find((p) => existsSync(p));
}

function cudaLibDir(nvcc) {
  let root;
  try {
    // /usr/local/bin/nvcc may be a wrapper script: ask nvcc where it lives
    const r = spawnSync(nvcc, ['--dryrun', '--version'], { encoding: 'utf8' });
    const m = /TOP=(\S+)/.exec((r.stderr ?? '') + (r.stdout ?? ''));
    root = m ? resolve(m[1]) : resolve(dirname(realpathSync(nvcc)), '..');
  } catch { root = resolve(dirname(nvcc), '..'); }
  const cands = [join(root, 'lib64'), join(root, 'lib'), join(root, 'targets', 'x86_64-linux', 'lib'), '/usr/local/cuda/lib64', '/usr/local/cuda/lib'];
  return cands.find((d) => existsSync(join(d, 'libcudart_static.a')));
}

async function buildCuda() {
  const target = join(out, 'alexnet_cuda.node');
  if (process.env.ALEXNET_CUDA_SKIP === '1') return { built: false, reason: 'built without CUDA: ALEXNET_CUDA_SKIP=1 was set at install' };
  const nvcc = findNvcc();
  if (!nvcc) return { built: false, reason: 'built without CUDA: nvcc was not found at install (set NVCC or put nvcc on PATH, then run `npm rebuild @alexnet/cuda`)' };
  const archs = (process.env.ALEXNET_CUDA_ARCHS || '80,90').split(',').map((s) => s.trim().replace(/^sm_/, '')).filter(Boolean);
  if (upToDate(target) && JSON.stringify(info.cuda?.archs) === JSON.stringify(archs)) { log('alexnet_cuda.node is up to date'); return { ...info.cuda, upToDate: true }; }
  if (!nodeInc || !napiInc) return { built: false, reason: 'built without CUDA: Node.js headers or node-addon-api not found' };
  const lib = cudaLibDir(nvcc);
  if (!lib) return { built: false, reason: `built without CUDA: libcudart_static.a was not found next to ${nvcc}` };
  const dir = join(objDir, 'cuda');
  mkdirSync(dir, { recursive: true });
  mkdirSync(out, { recursive: true });
  const gencode = archs.flatMap((a) => ['-gencode', `arch=compute_${a},code=sm_${a}`]);
  const last = archs[archs.length - 1];
  gencode.push('-gencode', `arch=compute_${last},code=compute_${last}`);
  const t0 = Date.now();
  log(`compiling the CUDA kernels with ${nvcc} for sm_${archs.join(', sm_')} + compute_${last} PTX`);
  const res = await parallel([
    () => run(nvcc, ['-std=c++17', '-O3', '-Xcompiler', '-fPIC', '--expt-relaxed-constexpr', ...gencode, '-c', join(cuda, 'engine.cu'), '-o', join(dir, 'engine.o')]),
    () => run(CXX, [...common, '-DNODE_GYP_MODULE_NAME=alexnet_cuda', `-I${nodeInc}`, `-I${napiInc}`, '-c', join(cuda, 'addon.cpp'), '-o', join(dir, 'addon.o')]),
    () => run(CXX, [...common, '-c', join(cuda, 'vendor', 'loader.cpp'), '-o', join(dir, 'loader.o')]),
  ], JOBS);
  const bad = res.find((r) => !r.ok);
  if (bad) return { built: false, reason: `built without CUDA: compiling failed (${bad.error})` };
  const link = await run(CXX, ['-shared', '-pthread', join(dir, 'addon.o'), join(dir, 'engine.o'), join(dir, 'loader.o'), `-L${lib}`, '-lcudart_static', '-ldl', '-lpthread', '-lrt', '-o', target]);
  if (!link.ok) return { built: false, reason: `built without CUDA: linking failed (${link.error})` };
  const seconds = (Date.now() - t0) / 1000;
  const ver = spawnSync(nvcc, ['--version'], { encoding: 'utf8' }).stdout?.split('\n').find((l) => l.includes('release'))?.trim();
  log(`built alexnet_cuda.node in ${seconds.toFixed(1)} s`);
  return { built: true, seconds, archs, nvcc: ver, vendorHeaders: checkVendorHeaders(lib) };
}

/** Python's site-packages folders (where pip puts PyTorch and NVIDIA's wheels), or none. */
function sitePackages() {
  const r = spawnSync('python3', ['-c', 'import site\nd = list(site.getsitepackages())\ntry:\n  d.append(site.getusersitepackages())\nexcept Exception:\n  pass\nprint("\\n".join(d))'],
    { encoding: 'utf8', timeout: 5000 });
  return r.status === 0 ? r.stdout.split('\n').map((l) => l.trim()).filter(Boolean) : [];
}

/** The folder holding `header` among the usual places, or undefined. */
function findHeader(header, envVar, toolkitInclude) {
  const dirs = [process.env[envVar], toolkitInclude, '/usr/include', '/usr/local/cuda/include'];
  for (const site of sitePackages()) {
    try {
      for (const d of readdirSync(join(site, 'nvidia')).sort()) dirs.push(join(site, 'nvidia', d, 'include'));
    } catch { /* no nvidia wheels there */ }
  }
  return dirs.filter(Boolean).find((d) => existsSync(join(d, header)));
}

/**
 * Where cudnn.h and cublasLt.h are found, compiles vendor/check_headers.cpp (-fsyntax-only) against
 * them: our declarations of the functions the engine calls must match NVIDIA's.
 */
function checkVendorHeaders(cudaLib) {
  // root/lib64 -> root/include; root/targets/x86_64-linux/lib -> .../include
  const toolkitInclude = [resolve(cudaLib, '..', 'include'), '/usr/local/cuda/include'].find((d) => existsSync(join(d, 'cuda_runtime_api.h')));
  const cudnn = findHeader('cudnn.h', 'ALEXNET_CUDNN_INCLUDE', toolkitInclude);
  const cublasLt = findHeader('cublasLt.h', 'ALEXNET_CUBLAS_INCLUDE', toolkitInclude);
  if (!cudnn || !cublasLt || !toolkitInclude) {
    const missing = [!cudnn && 'cudnn.h', !cublasLt && 'cublasLt.h', !toolkitInclude && 'cuda_runtime_api.h'].filter(Boolean).join(', ');
    log(`vendor headers: not checked (${missing} not found; nothing of NVIDIA's is needed to build)`);
    return { checked: false, reason: `${missing} not found at build time` };
  }
  const r = spawnSync(CXX, ['-std=c++17', '-fsyntax-only', `-I${cudnn}`, `-I${cublasLt}`, `-I${toolkitInclude}`, join(cuda, 'vendor', 'check_headers.cpp')], { encoding: 'utf8' });
  const ok = r.status === 0;
  log(ok ? `vendor headers: vendor/api.h matches ${cudnn}/cudnn.h and ${cublasLt}/cublasLt.h`
    : `WARNING: vendor/api.h does not match the headers found (${cudnn}, ${cublasLt}); the engine will use its own kernels:\n${r.stderr}`);
  return { checked: true, ok, cudnn, cublasLt, ...(ok ? {} : { error: (r.stderr || String(r.error)).slice(0, 4000) }) };
}

function finish(ok, reason) {
  if (ok) process.exit(0);
  if (atInstall) {
    console.warn(`[@alexnet/cuda] WARNING: ${reason}. The package still loads; cuda.available() says why.`);
    process.exit(0);
  }
  console.error(`[@alexnet/cuda] build failed: ${reason}`);
  process.exit(1);
}

const wantEmu = !args.has('--cuda-only'), wantCuda = !args.has('--emu-only');
const [emu, cu] = await Promise.all([
  wantEmu ? buildEmu() : Promise.resolve(info.emu ?? { built: false, reason: 'not built' }),
  // the nvcc build waits for nothing, but keep the machine usable: run it after the emulated one
  Promise.resolve(),
]).then(async ([e]) => [e, wantCuda ? await buildCuda() : (info.cuda ?? { built: false, reason: 'built without CUDA' })]);
info.emu = emu;
info.cuda = cu;
info.node = process.version;
saveInfo();
if (cu.built === false) log(cu.reason);
// --cuda-only answers for the GPU addon; otherwise the emulated addon is the one that must build
// (the GPU addon is optional: without it the package says why).
if (wantCuda && !wantEmu) finish(cu.built, cu.reason);
finish(emu.built, emu.reason);
