/**
 * `npm run bench`: the data pipeline's throughput next to the PIL/numpy reference
 * (shared/reference/data_pipeline.py), on the same machine and the same files.
 *
 *   node dist/bench/index.js [--n 500] [--dir DIR] [--passes 3] [--pil] [--json FILE]
 *
 * - prepare step: decode + rescale shorter side to 256 + centre crop 256 (sharp, 'linear' kernel)
 *   on n JPEGs like ImageNet's typical image (500x375, quality 90), with 1 and 2 threads;
 *   --pil times PIL doing the same on the same files (Debian's /usr/bin/python3 with python3-pil).
 * - prepareImageNet end to end (decode, shard writing, statistics) with 1 and 2 worker threads.
 * - training transform (random crop 224, flip, PCA lighting, mean-image subtraction, float32 CHW):
 *   in memory on one thread (the numpy reference's stage 2), and through the loader from shards
 *   with 1 and 2 worker threads.
 */
import sharp from 'sharp';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { decodeResizeCrop } from '../decode.js';
import { prepareImageNet } from '../prepare.js';
import { createLoader, openShards } from '../loader.js';
import { transformImage, type TransformSpec } from '../transform.js';
import { makeBenchJpegs } from './jpegs.js';

const { values } = parseArgs({
  options: {
    n: { type: 'string', default: '500' },
    dir: { type: 'string', default: join(tmpdir(), 'alexnet-bench-jpegs') },
    passes: { type: 'string', default: '3' },
    pil: { type: 'boolean', default: false },
    json: { type: 'string' },
  },
});
const N = Number(values.n);
const PASSES = Number(values.passes);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Median rate over PASSES timed passes after one warm-up pass. */
async function rate(items: number, pass: () => Promise<void> | void): Promise<number> {
  await pass();
  const rs: number[] = [];
  for (let p = 0; p < PASSES; p++) {
    const t0 = performance.now();
    await pass();
    rs.push(items / ((performance.now() - t0) / 1000));
  }
  return median(rs);
}

const PIL_SCRIPT = `
import glob, os, sys, time, statistics, multiprocessing as mp
import numpy as np
from PIL import Image
def one(path):
    with Image.open(path) as im:
        im = im.convert('RGB'); w, h = im.size
        nw, nh = (256, int(256 * h / w)) if w < h else (int(256 * w / h), 256)
        im = im.resize((nw, nh), Image.BILINEAR)
        l, t = int(round((nw - 256) / 2.0)), int(round((nh - 256) / 2.0))
        return np.asarray(im.crop((l, t, l + 256, t + 256)))
def chunk(files):
    return sum(int(one(f)[128, 128, 0]) for f in files)
ARRAYS = MEAN = None
def chunk2(args):
    idx, seed = args
    rng = np.random.default_rng(seed); s = 0.0
    for i in idx:
        a = ARRAYS[i]; y, x = rng.integers(0, 33, 2)
        crop = a[y:y + 224, x:x + 224].astype(np.float32) - MEAN[y:y + 224, x:x + 224]
        if rng.random() < 0.5: crop = crop[:, ::-1]
        s += float(np.ascontiguousarray(crop.transpose(2, 0, 1))[0, 0, 0])
    return s
def timed(fn, make, n, passes):
    out = []
    for nproc in (1, 2):
        pool = mp.get_context('fork').Pool(nproc) if nproc > 1 else None
        ts = []
        for p in range(passes + 1):
            t0 = time.perf_counter()
            if pool: pool.map(fn, make(nproc, p))
            else: [fn(c) for c in make(1, p)]
            if p: ts.append(time.perf_counter() - t0)
        if pool: pool.close(); pool.join()
        out.append(n / statistics.median(ts))
    return out
files = sorted(glob.glob(os.path.join(sys.argv[1], '*.jpg')))[:int(sys.argv[2])]
passes = int(sys.argv[3]); n = len(files)
r1 = timed(chunk, lambda k, p: [files[i::k] for i in range(k)], n, passes)
ARRAYS = [one(f) for f in files]
MEAN = np.mean(np.stack(ARRAYS).astype(np.float32), axis=0)
m = 8 * n
r2 = timed(chunk2, lambda k, p: [([j % n for j in range(i, m, k)], 1000 * p + i) for i in range(k)], m, passes)
print(r1[0], r1[1], r2[0], r2[1])
`;

function pil(dir: string): number[] | null {
  const py = '/usr/bin/python3';
  if (!existsSync(py)) return null;
  try {
    const s = join(tmpdir(), 'alexnet-bench-pil.py');
    writeFileSync(s, PIL_SCRIPT);
    return execFileSync(py, [s, dir, String(N), String(PASSES)], { encoding: 'utf8' }).trim().split(/\s+/).map(Number);
  } catch (e) {
    console.error(`PIL reference not measured: ${(e as Error).message.split('\n')[0]}`);
    return null;
  }
}

async function main(): Promise<void> {
  sharp.concurrency(1); // one libvips thread per image: "threads" below are images in flight
  const t0 = performance.now();
  const files = await makeBenchJpegs(values.dir!, N);
  const bufs = files.map((f) => readFileSync(f));
  const kib = bufs.reduce((a, b) => a + b.length, 0) / N / 1024;
  console.log(`${N} JPEGs in ${values.dir} (80 % 500x375, 20 % 375x500, quality 90, mean ${kib.toFixed(1)} KiB), ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  console.log(`sharp ${sharp.versions.sharp}, libvips ${sharp.versions.vips}, node ${process.version}; median of ${PASSES} passes after a warm-up\n`);
  const fig: Record<string, number | null> = {};

  // 1. decode + resize + crop, T images in flight on libuv's pool.
  for (const threads of [1, 2]) {
    fig[`decode_resize_crop_t${threads}`] = await rate(N, async () => {
      let next = 0;
      await Promise.all(Array.from({ length: threads }, async () => {
        while (next < N) await decodeResizeCrop(bufs[next++]!);
      }));
    });
  }
  if (values.pil) {
    const p = pil(values.dir!);
    fig.pil_t1 = p ? p[0]! : null;
    fig.pil_t2 = p ? p[1]! : null;
    fig.numpy_transform_t1 = p ? p[2]! : null;
    fig.numpy_transform_t2 = p ? p[3]! : null;
  }

  // 2. prepareImageNet end to end: one class folder of symlinks to the JPEGs.
  const work = mkdtempSync(join(tmpdir(), 'alexnet-bench-'));
  try {
    const cls = join(work, 'in', 'train', 'n00000001');
    mkdirSync(cls, { recursive: true });
    files.forEach((f, i) => symlinkSync(f, join(cls, `n00000001_${i}.JPEG`)));
    for (const workers of [1, 2]) {
      fig[`prepare_w${workers}`] = await rate(N, async () => {
        rmSync(join(work, 'out'), { recursive: true, force: true });
        await prepareImageNet({ source: join(work, 'in'), out: join(work, 'out'), workers, shardSize: Math.ceil(N / (2 * workers)) });
      });
    }

    // 3. training transform, in memory on this thread (the numpy reference's stage 2 does the same work).
    const ds = await openShards(join(work, 'out'));
    const stats = ds.statistics!;
    const imgs = await Promise.all(bufs.slice(0, 64).map((b) => decodeResizeCrop(b)));
    const spec: TransformSpec = {
      mode: 'train', size: 256, crop: 224, flip: true, mean: { kind: 'image', image: stats.meanImage },
      lighting: { eigenvalues: stats.eigenvalues, eigenvectors: stats.eigenvectors, std: 0.1 },
    };
    const out = new Float32Array(3 * 224 * 224);
    const reps = 8 * N;
    fig.transform_t1 = await rate(reps, () => {
      for (let i = 0; i < reps; i++) transformImage(imgs[i % imgs.length]!, spec, 1, 0, i, out, 0);
    });
    const noLight = { ...spec, lighting: null };
    fig.transform_nolight_t1 = await rate(reps, () => {
      for (let i = 0; i < reps; i++) transformImage(imgs[i % imgs.length]!, noLight, 1, 0, i, out, 0);
    });

    // 4. the loader from shards: read record, transform, batch of 128, across worker threads.
    for (const workers of [1, 2]) {
      const loader = createLoader(ds, { batchSize: 128, workers, seed: 1, lighting: true });
      let epoch = 0;
      const epochs = Math.max(1, Math.round(4000 / N));
      fig[`loader_w${workers}`] = await rate(epochs * ds.length, async () => {
        for (let e = 0; e < epochs; e++) for await (const b of loader.epoch(epoch++)) void b;
      });
      await loader.close();
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }

  const f = (v: number | null | undefined) => (v == null ? 'not measured' : `${v.toFixed(0)} img/s`);
  const rows: [string, string, string][] = [
    ['decode + resize 256 + centre crop (sharp)', f(fig.decode_resize_crop_t1), f(fig.decode_resize_crop_t2)],
    ['  same, PIL 9 + numpy (reference, same files)', values.pil ? f(fig.pil_t1) : 'use --pil', values.pil ? f(fig.pil_t2) : ''],
    ['prepareImageNet end to end (shards + statistics)', f(fig.prepare_w1), f(fig.prepare_w2)],
    ['train transform in memory: crop 224 + flip + lighting + mean image', f(fig.transform_t1), '-'],
    ['  same without lighting (the numpy reference\'s work)', f(fig.transform_nolight_t1), '-'],
    ['  numpy: crop 224 + flip + float32 + mean image (reference)', values.pil ? f(fig.numpy_transform_t1) : 'use --pil', values.pil ? f(fig.numpy_transform_t2) : ''],
    ['loader from shards, train transform, batch 128', f(fig.loader_w1), f(fig.loader_w2)],
  ];
  const w0 = Math.max(...rows.map((r) => r[0].length)), w1 = 14;
  console.log(`| ${'what'.padEnd(w0)} | ${'1 thread'.padEnd(w1)} | ${'2 threads'.padEnd(w1)} |`);
  console.log(`|${'-'.repeat(w0 + 2)}|${'-'.repeat(w1 + 2)}|${'-'.repeat(w1 + 2)}|`);
  for (const r of rows) console.log(`| ${r[0].padEnd(w0)} | ${r[1].padEnd(w1)} | ${r[2].padEnd(w1)} |`);
  console.log('\nGoals (per core): prepare >= 800 img/s (2x PIL\'s 404), training transform >= 6.4k img/s (numpy).');
  if (fig.pil_t1) console.log(`sharp / PIL, 1 thread: ${(fig.decode_resize_crop_t1! / fig.pil_t1).toFixed(2)}x`);
  if (values.json) writeFileSync(values.json, JSON.stringify({ n: N, passes: PASSES, meanKiB: kib, figures: fig }, null, 2) + '\n');
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
