/**
 * The peers of the whole-model benchmark, run side by side in the same rounds as ours: PyTorch 1.13
 * (Debian's python3-torch, with Debian's OpenBLAS in place of the netlib BLAS it links) for inference
 * and the training step, and onnxruntime-node for inference, each in a child process that stays warm
 * and times one run per request (a line "infer 128" or "train 32" in, "ms 123.4" out), so that our
 * runs and theirs alternate under the same machine load.
 *
 * Both run the same net as ours: PyTorch builds the paper's net from @alexnet/layers' own PyTorch
 * definition (scripts/torch_crosscheck.py, the one its cross-check tests hold equal to ours), and
 * onnxruntime runs our net exported by @alexnet/interop's exportOnnx (the ONNX file users would run).
 * Found, never installed: torch (apt-get install python3-torch), OpenBLAS (apt-get install
 * libopenblas0-openmp, or ALEXNET_OPENBLAS_DIR: a folder holding its libblas.so.3), onnxruntime-node
 * (a devDependency of the repository: npm ci at its root).
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { exportOnnx } from '@alexnet/interop';
import type { HostTensor } from '@alexnet/tensor';

export interface Peer {
  /** How the table names it, e.g. "PyTorch 1.13.1 + OpenBLAS". */
  label: string;
  /** What it runs: 'infer', 'train' or both. */
  kinds: ('infer' | 'train')[];
  /** Milliseconds of one run (the child's own timer, around the run only). */
  run(kind: 'infer' | 'train', batch: number): Promise<number>;
  close(): void;
}

const PY = '/usr/bin/python3';

const TORCH_PEER = `
import json, sys, time
scripts, threads, cfg = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
sys.path.insert(0, scripts)
import torch, torch.nn as nn
from torch_crosscheck import paper_net
torch.set_num_threads(threads)
torch.manual_seed(0)
runs = {}
def setup(kind, batch):
    size = cfg['inputSize']
    x = torch.randn(batch, 3, size, size)
    m = paper_net(cfg)
    if kind == 'train':
        m.train()
        # §5: momentum 0.9, weight decay 5e-4 (PyTorch's form of the update; the same work)
        opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        crit = nn.CrossEntropyLoss()
        y = torch.randint(0, cfg['classes'], (batch,))
        def step():
            opt.zero_grad(set_to_none=True)
            loss = crit(m(x), y)
            loss.backward()
            opt.step()
        return step
    m.eval()
    def fwd():
        with torch.no_grad():
            m(x)
    return fwd
print('ready', torch.__version__, torch.get_num_threads(), flush=True)
for line in sys.stdin:
    kind, batch = line.split()
    key = (kind, int(batch))
    if key not in runs:
        runs[key] = setup(*key)
    t0 = time.perf_counter()
    runs[key]()
    print('ms', (time.perf_counter() - t0) * 1e3, flush=True)
`;

const ORT_PEER = `
const ort = require(process.argv[2]);
const readline = require('node:readline');
(async () => {
  const s = await ort.InferenceSession.create(process.argv[3], { intraOpNumThreads: Number(process.argv[4]), interOpNumThreads: 1, graphOptimizationLevel: 'all' });
  const inputs = new Map();
  const size = Number(process.argv[5]);
  console.log('ready', require(require('node:path').join(process.argv[2], '..', 'package.json')).version);
  for await (const line of readline.createInterface({ input: process.stdin })) {
    const n = Number(line.split(' ')[1]);
    if (!inputs.has(n)) inputs.set(n, new ort.Tensor('float32', Float32Array.from({ length: n * 3 * size * size }, () => Math.random() - 0.5), [n, 3, size, size]));
    const t = process.hrtime.bigint();
    await s.run({ [s.inputNames[0]]: inputs.get(n) });
    console.log('ms', Number(process.hrtime.bigint() - t) / 1e6);
  }
})().catch((e) => { console.log('error', String(e.message || e).split('\\n')[0]); process.exit(1); });
`;

/** A child speaking the line protocol: its first line is "ready ...", then one "ms X" per request. */
async function lineChild(cmd: string, args: string[], env: NodeJS.ProcessEnv, label: (ready: string) => string,
  kinds: Peer['kinds']): Promise<Peer> {
  const child: ChildProcessWithoutNullStreams = spawn(cmd, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-2000); });
  const lines = createInterface({ input: child.stdout });
  const queue: ((line: string | null) => void)[] = [];
  const pending: string[] = [];
  lines.on('line', (l) => { const w = queue.shift(); if (w) w(l); else pending.push(l); });
  child.on('exit', () => { for (const w of queue.splice(0)) w(null); });
  const next = () => new Promise<string | null>((res) => { const l = pending.shift(); if (l !== undefined) res(l); else queue.push(res); });
  const ready = await next();
  if (!ready?.startsWith('ready')) {
    child.kill();
    throw new Error(`${cmd} did not start: ${(ready ?? stderr.trim().split('\n').slice(-1)[0] ?? 'no output').slice(0, 300)}`);
  }
  return {
    label: label(ready),
    kinds,
    async run(kind, batch) {
      child.stdin.write(`${kind} ${batch}\n`);
      const l = await next();
      if (!l?.startsWith('ms ')) throw new Error(`peer failed: ${l ?? stderr.trim().split('\n').slice(-1)[0]}`);
      return Number(l.slice(3));
    },
    close() { child.stdin.end(); child.kill(); },
  };
}

/** @alexnet/layers' scripts folder (torch_crosscheck.py: the paper's net in PyTorch), in this repository. */
export function findTorchScripts(): string | undefined {
  try {
    const d = join(dirname(fileURLToPath(import.meta.resolve('@alexnet/layers'))), '..', 'scripts');
    return existsSync(join(d, 'torch_crosscheck.py')) ? resolve(d) : undefined;
  } catch {
    return undefined;
  }
}

/** A folder with OpenBLAS's libblas.so.3: ALEXNET_OPENBLAS_DIR, or Debian's libopenblas0-openmp / -pthread. */
export function findOpenBlas(): string | undefined {
  const dirs = process.env.ALEXNET_OPENBLAS_DIR ? [process.env.ALEXNET_OPENBLAS_DIR]
    : ['/usr/lib/x86_64-linux-gnu/openblas-openmp', '/usr/lib/x86_64-linux-gnu/openblas-pthread', '/usr/lib/aarch64-linux-gnu/openblas-openmp'];
  return dirs.find((d) => existsSync(join(d, 'libblas.so.3')));
}

function hasTorch(env: NodeJS.ProcessEnv): boolean {
  return existsSync(PY) && spawnSync(PY, ['-c', 'import torch'], { env, stdio: 'ignore' }).status === 0;
}

/** The net both peers run, as @alexnet/layers' paper description has it (PyTorch's side of the options). */
export interface PeerNet { name: 'paper'; classes: number; inputSize: number; lrnAcrossTowers: boolean }

/** PyTorch on `threads` threads, or why not. */
export async function startTorchPeer(threads: number, net: PeerNet): Promise<Peer | string> {
  const scripts = findTorchScripts();
  if (!scripts) return 'PyTorch peer: @alexnet/layers\' scripts/torch_crosscheck.py was not found (run the benchmark from the repository)';
  const blas = findOpenBlas();
  if (!blas) return 'PyTorch peer: OpenBLAS not found (Debian\'s torch then runs the netlib BLAS, 3-4x slower in training): apt-get install libopenblas0-openmp, or set ALEXNET_OPENBLAS_DIR to a folder holding its libblas.so.3';
  const env = { ...process.env, LD_LIBRARY_PATH: [blas, process.env.LD_LIBRARY_PATH].filter(Boolean).join(':'), OMP_NUM_THREADS: String(threads) };
  if (!hasTorch(env)) return `PyTorch peer: ${PY} cannot import torch (apt-get install python3-torch python3-torchvision)`;
  const script = join(tmpdir(), 'alexnet-bench-torch-peer.py');
  writeFileSync(script, TORCH_PEER);
  try {
    return await lineChild(PY, ['-u', script, scripts, String(threads), JSON.stringify(net)], env,
      (r) => `PyTorch ${r.split(' ')[1]} + OpenBLAS (${r.split(' ')[2]} threads)`, ['infer', 'train']);
  } catch (e) {
    return `PyTorch peer: ${(e as Error).message}`;
  }
}

/**
 * onnxruntime-node on `threads` intra-op threads, running our net (its weights as given) exported to
 * ONNX by @alexnet/interop into the temp folder, or why not.
 */
export async function startOrtPeer(threads: number, net: PeerNet, weights: Record<string, HostTensor>): Promise<Peer | string> {
  let ortDir: string;
  try {
    ortDir = dirname(createRequire(import.meta.url).resolve('onnxruntime-node'));
  } catch {
    return 'onnxruntime-node peer: the package is not installed (a devDependency of the repository: npm ci at its root)';
  }
  const dir = join(tmpdir(), 'alexnet-bench-ort');
  mkdirSync(dir, { recursive: true });
  const model = join(dir, `paper-${net.inputSize}.onnx`);
  try {
    await exportOnnx({ model: net, weights }, model, { from: 'the benchmark\'s net' });
  } catch (e) {
    return `onnxruntime-node peer: exporting the net to ONNX failed: ${(e as Error).message}`;
  }
  const script = join(tmpdir(), 'alexnet-bench-ort-peer.cjs');
  writeFileSync(script, ORT_PEER);
  try {
    return await lineChild(process.execPath, [script, ortDir, model, String(threads), String(net.inputSize)], process.env,
      (r) => `onnxruntime-node ${r.split(' ')[1]} (${threads} threads)`, ['infer']);
  } catch (e) {
    return `onnxruntime-node peer: ${(e as Error).message}`;
  }
}
