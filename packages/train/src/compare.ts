/**
 * `alexnet compare RUN_DIR...`: the curves of several runs in one picture (training and validation
 * top-1 error against epochs and against wall time, a colour per run, each run labelled by how its
 * recipe differs from the others'), and a table of the final errors and their differences from the
 * first run. This is how the paper's claims are read off (§3.1-§4.2: ReLU against tanh, LRN,
 * overlapping pooling, two towers, PCA lighting, dropout).
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { chartSvg, chartsPng, PALETTE, type Series } from './charts.js';

export interface RunRecord {
  dir: string;
  name: string;
  recipe: Record<string, unknown> | null;
  epochs: { epoch: number; trainTop1Error?: number; valTop1Error?: number; valTop5Error?: number; seconds: number }[];
}

/** The recipe and epoch lines of a run folder's metrics.jsonl. */
export async function readRun(dir: string): Promise<RunRecord> {
  const root = resolve(dir);
  const file = join(root, 'metrics.jsonl');
  if (!existsSync(file)) throw new Error(`${root} has no metrics.jsonl: give folders that alexnet train --out wrote`);
  let recipe: Record<string, unknown> | null = null;
  const epochs: RunRecord['epochs'] = [];
  for (const [i, line] of (await readFile(file, 'utf8')).split('\n').entries()) {
    if (line.trim() === '') continue;
    let l: Record<string, unknown>;
    try { l = JSON.parse(line); } catch { throw new Error(`${file} line ${i + 1} is not JSON`); }
    if (l.type === 'recipe') recipe = l;
    else if (l.type === 'epoch') epochs.push(l as unknown as RunRecord['epochs'][number]);
  }
  if (epochs.length === 0) throw new Error(`${file} has no finished epoch yet`);
  return { dir: root, name: basename(root), recipe, epochs };
}

/** A recipe's settings two levels down ("model.lrn", "optimizer.lr", "crop"), each as JSON. */
function settings(recipe: Record<string, unknown> | null): Map<string, string> {
  const out = new Map<string, string>();
  for (const [k, v] of Object.entries(recipe ?? {})) {
    if (v && typeof v === 'object' && !Array.isArray(v)) for (const [k2, v2] of Object.entries(v)) out.set(`${k}.${k2}`, JSON.stringify(v2));
    else out.set(k, JSON.stringify(v));
  }
  return out;
}
const IGNORED = new Set(['type', 'time', 'data.root', 'mean.from']);

/**
 * Each run's label: its folder's name and the settings in which its recipe differs from the first
 * run's (e.g. "no-lrn: model.lrn null"), so a picture of several runs says what was compared. A part
 * switched off ("lighting.on false") is named by that alone.
 */
export function runLabels(runs: readonly RunRecord[]): string[] {
  const ref = settings(runs[0]?.recipe ?? null);
  return runs.map((r, i) => {
    if (i === 0) return runs.length > 1 ? `${r.name} (reference)` : r.name;
    const mine = settings(r.recipe);
    let diff = [...new Set([...ref.keys(), ...mine.keys()])].filter((k) => !IGNORED.has(k) && ref.get(k) !== mine.get(k));
    const switched = new Set(diff.filter((k) => k.endsWith('.on')).map((k) => k.slice(0, -3)));
    diff = diff.filter((k) => k.endsWith('.on') || !switched.has(k.split('.')[0]!));
    const text = diff.slice(0, 4).map((k) => `${k} ${mine.get(k) ?? '-'}`).join(', ');
    return text ? `${r.name}: ${text}` : `${r.name}: the same recipe`;
  });
}

export interface Comparison {
  labels: string[];
  /** Markdown table of the final errors, with differences from the first run in points. */
  table: string;
  png: Buffer;
}

const pct = (v: number | undefined) => (v === undefined || !Number.isFinite(v) ? '-' : `${(100 * v).toFixed(1)} %`);
const delta = (v: number | undefined, ref: number | undefined) => (v === undefined || ref === undefined ? '-' : `${v >= ref ? '+' : ''}${(100 * (v - ref)).toFixed(1)}`);

export async function compareRuns(dirs: readonly string[]): Promise<Comparison> {
  if (dirs.length < 1) throw new Error('give at least one run folder');
  const runs = await Promise.all(dirs.map((d) => readRun(d)));
  const labels = runLabels(runs);
  const series = (key: 'trainTop1Error' | 'valTop1Error', x: (r: RunRecord, i: number) => number): Series[] => runs.map((r, k) => ({
    label: labels[k]!, color: PALETTE[k % PALETTE.length]!, dash: key === 'trainTop1Error' ? '5 3' : undefined, unlisted: key === 'trainTop1Error',
    points: r.epochs.map((e, i) => [x(r, i), e[key]!] as const).filter(([, y]) => y !== undefined),
  }));
  const byEpoch = (r: RunRecord, i: number) => r.epochs[i]!.epoch;
  const byTime = (r: RunRecord, i: number) => r.epochs.slice(0, i + 1).reduce((a, e) => a + (e.seconds ?? 0), 0) / 60;
  const pctFmt = (v: number) => `${Math.round(v * 100)} %`;
  const W = 760, H = 440;
  const both = (x: typeof byEpoch) => [...series('valTop1Error', x), ...series('trainTop1Error', x)];
  const png = await chartsPng([
    chartSvg(both(byEpoch), { title: 'top-1 error against epochs (solid: validation, dashed: training)', xLabel: 'epoch', yLabel: 'top-1 error', yFormat: pctFmt, yMax: 1, width: W, height: H }),
    chartSvg(both(byTime), { title: 'top-1 error against wall time (solid: validation, dashed: training)', xLabel: 'minutes of training', yLabel: 'top-1 error', yFormat: pctFmt, yMax: 1, width: W, height: H }),
  ], W, H);
  const last = runs.map((r) => r.epochs.at(-1)!);
  const rows = runs.map((r, i) => {
    const e = last[i]!, ref = last[0]!;
    return `| ${labels[i]} | ${e.epoch} | ${pct(e.trainTop1Error)} | ${pct(e.valTop1Error)} | ${pct(e.valTop5Error)} | ` +
      `${i === 0 ? '(reference)' : delta(e.valTop1Error, ref.valTop1Error)} | ${i === 0 ? '' : delta(e.valTop5Error, ref.valTop5Error)} |`;
  });
  const table = ['| run | epochs | train top-1 | val top-1 | val top-5 | Δ top-1 (points) | Δ top-5 |', '|---|---|---|---|---|---|---|', ...rows].join('\n');
  return { labels, table, png };
}
