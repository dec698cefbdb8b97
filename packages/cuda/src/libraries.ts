/**
 * Where the CUDA engine looks for NVIDIA's libraries, and what it found. cuDNN 9 and cuBLASLt (12.x,
 * 13.x) are loaded at run time with dlopen when present (native/cuda/vendor/loader.cpp), never needed
 * to build or install, never downloaded or shipped; NCCL is looked for the same way
 * @alexnet/distributed loads it, to report it beside them. The candidates, in order:
 *
 * 1. ALEXNET_CUDNN_PATH / ALEXNET_CUBLASLT_PATH / ALEXNET_NCCL_PATH: the library file, or a folder
 *    holding it
 * 2. the bare file names, through the dynamic loader (LD_LIBRARY_PATH, /etc/ld.so.cache, the system
 *    folders: NVIDIA's and the distributions' packages)
 * 3. the CUDA toolkit folders: $CUDA_HOME, $CUDA_PATH, /usr/local/cuda, /usr/local/cuda-* (lib64, lib,
 *    targets/<arch>-linux/lib), then $CONDA_PREFIX/lib
 * 4. the nvidia/<name>/lib folders of Python's site-packages (pip's nvidia-cudnn-cu*, nvidia-cublas-cu*
 *    and nvidia-nccl-cu* wheels, which PyTorch's wheels bring; CUDA 13's nvidia/cu13/lib), then
 *    torch/lib: the folders python3 reports (site.getsitepackages()), /usr/local/lib/python3.* and
 *    /usr/lib/python3 dist-packages, ~/.local, $VIRTUAL_ENV
 */
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** The file names of each library, newest first. */
export const LIBRARY_NAMES = {
  cudnn: ['libcudnn.so.9'],
  cublasLt: ['libcublasLt.so.13', 'libcublasLt.so.12'],
  nccl: ['libnccl.so.2'],
} as const;
export type LibraryName = keyof typeof LIBRARY_NAMES;

const ENV: Record<LibraryName, string> = { cudnn: 'ALEXNET_CUDNN_PATH', cublasLt: 'ALEXNET_CUBLASLT_PATH', nccl: 'ALEXNET_NCCL_PATH' };
const LABEL: Record<LibraryName, string> = { cudnn: 'cuDNN', cublasLt: 'cuBLASLt', nccl: 'NCCL' };

let sitesCache: string[] | undefined;
/** Python's site-packages folders (python3's own answer), asked once per process. */
export function pythonSitePackages(): string[] {
  if (sitesCache) return sitesCache;
  try {
    const out = execFileSync('python3', ['-c',
      'import site, sys\nd = list(site.getsitepackages())\ntry:\n  d.append(site.getusersitepackages())\nexcept Exception:\n  pass\nprint("\\n".join(d))'],
    { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'ignore'] });
    sitesCache = out.split('\n').map((s) => s.trim()).filter(Boolean);
  } catch {
    sitesCache = [];
  }
  return sitesCache;
}

/** Folders under `parent` whose names match `re` (newest name first), joined with `rest`. */
function globDirs(parent: string, re: RegExp, rest: string): string[] {
  try {
    return readdirSync(parent).filter((n) => re.test(n)).sort().reverse().map((n) => join(parent, n, rest));
  } catch {
    return [];
  }
}

/** The nvidia/<name>/lib folders of a site-packages folder, in name order (cublas, cudnn, cu13, nccl, ...). */
function nvidiaLibDirs(site: string): string[] {
  try {
    return readdirSync(join(site, 'nvidia')).sort().map((n) => join(site, 'nvidia', n, 'lib'));
  } catch {
    return [];
  }
}

export interface SearchEnv {
  env?: NodeJS.ProcessEnv;
  /** The site-packages folders (default: python3's answer). */
  sitePackages?: () => string[];
}

function siteFolders(env: NodeJS.ProcessEnv, sitePackages: () => string[]): string[] {
  return [...new Set([
    ...sitePackages(),
    ...globDirs('/usr/local/lib', /^python3/, 'dist-packages'),
    ...globDirs('/usr/local/lib', /^python3/, 'site-packages'),
    '/usr/lib/python3/dist-packages',
    ...globDirs(join(homedir(), '.local', 'lib'), /^python3/, 'site-packages'),
    ...(env.VIRTUAL_ENV ? globDirs(join(env.VIRTUAL_ENV, 'lib'), /^python3/, 'site-packages') : []),
  ])];
}

/**
 * The paths tried for `lib`, in order (see the module's comment). For NCCL the order is exactly
 * @alexnet/distributed's ncclCandidates(): both packages find the same library.
 */
export function libraryCandidates(lib: LibraryName, o: SearchEnv = {}): string[] {
  const env = o.env ?? process.env;
  const sitePackages = o.sitePackages ?? pythonSitePackages;
  const names = LIBRARY_NAMES[lib];
  const out: string[] = [];
  const given = env[ENV[lib]];
  if (given) {
    if (/\.so(\.\d+)*$/.test(given)) out.push(given);
    else for (const n of names) out.push(join(given, n));
  }
  out.push(...names);
  const roots = [env.CUDA_HOME, env.CUDA_PATH, '/usr/local/cuda', ...globDirs('/usr/local', /^cuda-\d/, '')].filter((r): r is string => !!r);
  const arch = process.arch === 'arm64' ? 'sbsa' : 'x86_64';
  for (const r of roots) for (const sub of ['lib64', 'lib', `targets/${arch}-linux/lib`]) for (const n of names) out.push(join(r, sub, n));
  if (env.CONDA_PREFIX) for (const n of names) out.push(join(env.CONDA_PREFIX, 'lib', n));
  for (const s of siteFolders(env, sitePackages)) {
    if (lib === 'nccl') {
      out.push(join(s, 'nvidia', 'nccl', 'lib', names[0]!));
    } else {
      for (const d of nvidiaLibDirs(s)) for (const n of names) out.push(join(d, n));
    }
    for (const n of names) out.push(join(s, 'torch', 'lib', n));
  }
  return [...new Set(out.map((x) => x.replace(/\/+/g, '/')))];
}

/**
 * Libraries cuDNN loads by name at run time, loaded first from where pip keeps them so that its own
 * dlopen finds them: NVRTC (its runtime-compiled engines) and cuBLASLt of either major.
 */
export function preloadCandidates(o: SearchEnv = {}): string[] {
  const env = o.env ?? process.env;
  const out: string[] = [];
  for (const s of siteFolders(env, o.sitePackages ?? pythonSitePackages)) {
    for (const d of nvidiaLibDirs(s)) {
      for (const n of ['libnvrtc.so.13', 'libnvrtc.so.12', 'libcublasLt.so.13', 'libcublasLt.so.12', 'libz.so.1']) out.push(join(d, n));
    }
  }
  return [...new Set(out)];
}

/** A library found, or not with every place tried (as @alexnet/distributed's libraries().nccl). */
export type LibraryInfo =
  | { found: true; path: string; version: string; preloaded?: string[] }
  | { found: false; reason: string; searched: string[] };

export interface NativeLibReport {
  found: boolean;
  path?: string;
  version?: string;
  versionCode?: number;
  attempts: { path: string; error: string }[];
  preloaded: string[];
  note?: string;
}

/** libraries()'s entry for one library from the loader's report. */
export function describeLibrary(lib: LibraryName, r: NativeLibReport, env: NodeJS.ProcessEnv = process.env): LibraryInfo {
  if (r.found) {
    return { found: true, path: r.path!, version: r.version!, ...(r.preloaded.length ? { preloaded: r.preloaded } : {}) };
  }
  const bare = new Set<string>(LIBRARY_NAMES[lib]);
  const searched = r.attempts.map((t) => (bare.has(t.path) ? `${t.path} (the dynamic loader's paths)` : t.path));
  // Name the candidates that exist but were passed over (a stand-in, the wrong version, not the library), not every absent path.
  const broken = r.attempts.filter((t) => t.error !== 'no such file' && !(bare.has(t.path) && /cannot open shared object file/.test(t.error)))
    .map((t) => `${t.path}: ${t.error}`);
  const envNote = env[ENV[lib]] ? '' : ` (${ENV[lib]} is not set)`;
  return {
    found: false,
    searched,
    reason: `${LABEL[lib]} (${LIBRARY_NAMES[lib].join(' or ')}) was not found${envNote}; searched ${searched.join(', ')}` +
      (broken.length ? `; passed over: ${broken.join('; ')}` : '') + (r.note ? `; ${r.note}` : ''),
  };
}
