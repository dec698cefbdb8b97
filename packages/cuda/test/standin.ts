// Builds the stand-in vendor libraries (test/standin/vendor_standin.cpp, nothing of NVIDIA's) with g++:
// <dir>/libcudnn.so.9 and <dir>/libcublasLt.so.12, for the emulated engine's vendor path.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const source = join(here, 'standin', 'vendor_standin.cpp');
/** native/cuda/vendor: in the monorepo, or copied into the package (npm pack). */
const vendorInclude = [resolve(here, '..', '..', '..', 'native', 'cuda', 'vendor'), resolve(here, '..', 'native', 'cuda', 'vendor')]
  .find((d) => existsSync(join(d, 'api.h')))!;

export function haveCxx(): boolean {
  return spawnSync(process.env.CXX || 'g++', ['--version']).status === 0 && !!vendorInclude;
}

export interface Standins { dir: string; cudnn: string; cublasLt: string }

/**
 * Compiles both stand-ins into `dir`. `noAttach`: without alexnetStandinAttach (a library with
 * cuDNN's functions that is not a stand-in, which the emulated engine must refuse).
 */
export function buildStandins(dir: string, o: { noAttach?: boolean } = {}): Standins {
  mkdirSync(dir, { recursive: true });
  const out: Standins = { dir, cudnn: join(dir, 'libcudnn.so.9'), cublasLt: join(dir, 'libcublasLt.so.12') };
  for (const [def, file] of [['STANDIN_CUDNN', out.cudnn], ['STANDIN_CUBLASLT', out.cublasLt]] as const) {
    const r = spawnSync(process.env.CXX || 'g++', ['-std=c++17', '-O2', '-shared', '-fPIC', `-D${def}`, ...(o.noAttach ? ['-DSTANDIN_NO_ATTACH'] : []),
      `-I${vendorInclude}`, source, '-o', file], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`building the stand-in ${file} failed: ${r.stderr}`);
  }
  return out;
}
