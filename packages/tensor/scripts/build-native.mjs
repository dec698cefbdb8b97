#!/usr/bin/env node
// Builds the native CPU engine (build/Release/alexnet_cpu.node) with node-gyp, offline:
// Node's own headers are used when they sit beside the node binary (nodedir), so nothing is
// downloaded. Incremental: a configured build only recompiles what changed.
//
//   node scripts/build-native.mjs            build, fail loudly on error (npm run build)
//   node scripts/build-native.mjs --install  at npm install: a failed build is a warning, and the
//                                            package still works on the reference backend
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const pkg = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const atInstall = process.argv.includes('--install');
const require = createRequire(join(pkg, 'package.json'));

if (!existsSync(join(pkg, 'binding.gyp'))) {
  console.log('[@alexnet/tensor] no binding.gyp: native CPU engine not part of this build');
  process.exit(0);
}

function findNodeGyp() {
  const candidates = [];
  try { candidates.push(require.resolve('node-gyp/bin/node-gyp.js')); } catch { /* not installed locally */ }
  if (process.env.npm_config_node_gyp) candidates.push(process.env.npm_config_node_gyp);
  candidates.push(join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  return candidates.find((p) => existsSync(p));
}

function nodedirArgs() {
  // Headers next to the running node (e.g. /usr/include/node for /usr/bin/node): use them.
  const prefix = resolve(dirname(process.execPath), '..');
  if (existsSync(join(prefix, 'include', 'node', 'node_api.h'))) return [`--nodedir=${prefix}`];
  if (process.env.npm_config_nodedir) return [`--nodedir=${process.env.npm_config_nodedir}`];
  return [];
}

const gyp = findNodeGyp();
if (!gyp) fail('node-gyp was not found (install it, or run through npm, which bundles it)');

const configured = existsSync(join(pkg, 'build', 'Makefile')) || existsSync(join(pkg, 'build', 'config.gypi'));
const jobs = ['--jobs', 'max'];
const steps = configured ? [['build', ...jobs]] : [['configure', ...nodedirArgs()], ['build', ...jobs]];
for (const args of steps) {
  const r = spawnSync(process.execPath, [gyp, ...args], { cwd: pkg, stdio: 'inherit' });
  if (r.status !== 0) {
    if (configured) {
      // A stale configuration (another node, moved tree): configure again once.
      const again = spawnSync(process.execPath, [gyp, 'rebuild', ...nodedirArgs(), ...jobs], { cwd: pkg, stdio: 'inherit' });
      if (again.status === 0) process.exit(0);
    }
    fail(`node-gyp ${args[0]} failed (exit ${r.status})`);
  }
}

function fail(reason) {
  if (atInstall) {
    console.warn(`[@alexnet/tensor] WARNING: the native CPU engine was not built: ${reason}.\n` +
      "  The 'reference' backend works; 'cpu' devices will report this reason. A C++17 compiler,\n" +
      '  make and python3 are needed; run `npm rebuild @alexnet/tensor` after installing them.');
    process.exit(0);
  }
  console.error(`[@alexnet/tensor] native build failed: ${reason}`);
  process.exit(1);
}
