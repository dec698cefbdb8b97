// What the build scripts of the packages with native code need to find on a machine: Node's N-API
// headers, node-addon-api's, programs on PATH, and whether the sources changed since the last build.
// Lives in native/common so that npm pack carries it with the headers (native/copy-into-package.mjs).
// Used by @alexnet/cuda's scripts/build.mjs: `await import(<native>/common/build-env.mjs)`.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';

/** The folder of node_api.h: npm's nodedir, beside the running node, the system's, node-gyp's cache. */
export function nodeInclude() {
  const cands = [];
  if (process.env.npm_config_nodedir) cands.push(join(process.env.npm_config_nodedir, 'include', 'node'));
  cands.push(join(resolve(dirname(process.execPath), '..'), 'include', 'node'));
  cands.push('/usr/include/node', '/usr/local/include/node');
  const home = process.env.HOME ?? '';
  for (const base of [join(home, '.cache', 'node-gyp'), join(home, '.node-gyp')]) {
    cands.push(join(base, process.versions.node, 'include', 'node'));
  }
  return cands.find((d) => existsSync(join(d, 'node_api.h')));
}

/** The folder of napi.h: ALEXNET_NAPI_INCLUDE (the GPU bundle), else node-addon-api as `pkg` resolves it. */
export function addonApiInclude(pkg) {
  if (process.env.ALEXNET_NAPI_INCLUDE && existsSync(join(process.env.ALEXNET_NAPI_INCLUDE, 'napi.h'))) return process.env.ALEXNET_NAPI_INCLUDE;
  try { return dirname(createRequire(join(pkg, 'package.json')).resolve('node-addon-api/package.json')); } catch { return undefined; }
}

/** The path of a program on PATH, or undefined. */
export function which(cmd) {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/** The newest modification time (ms) of the files under `paths` (files or folders; missing ones skipped). */
export function newestMtime(paths) {
  let newest = 0;
  for (const p of paths) {
    if (!existsSync(p)) continue;
    if (!statSync(p).isDirectory()) { newest = Math.max(newest, statSync(p).mtimeMs); continue; }
    newest = Math.max(newest, newestMtime(readdirSync(p).map((e) => join(p, e))));
  }
  return newest;
}
