/**
 * The paper's pictures from a trained model (§6.1), drawn with sharp:
 * - Figure 3: the learned conv1 kernels, one block per tower (top: tower 1, bottom: tower 2).
 * - The training curves: loss, top-1 and top-5 error per epoch, learning-rate changes marked.
 * - Figure 4: validation images with their five most probable labels, and the training images whose
 *   last hidden-layer (fc7, 4096-d) vectors are nearest in Euclidean distance.
 */
import sharp from 'sharp';
import { escapeXml } from './charts.js';

/** conv1 weights [k, 3, r, s] (OIHW) -> a PNG grid, each kernel min-max scaled to 0..255 on its own. */
export async function drawKernels(weights: Float32Array, shape: readonly number[], opts: { scale?: number; columns?: number; towers?: number } = {}): Promise<Buffer> {
  const [k, c, r, s] = shape as [number, number, number, number];
  if (c !== 3) throw new TypeError(`drawKernels: expected conv1 weights with 3 input channels but received shape [${shape.join(', ')}]`);
  const scale = opts.scale ?? 4, towers = opts.towers ?? 2;
  const perTower = Math.ceil(k / towers);
  const cols = opts.columns ?? Math.min(16, perTower);
  const rowsPerTower = Math.ceil(perTower / cols);
  const tile = r * scale, gap = 2, towerGap = 8;
  const width = cols * (tile + gap) + gap;
  const height = towers * (rowsPerTower * (tile + gap) + gap) + (towers - 1) * towerGap;
  const img = Buffer.alloc(width * height * 3, 255);
  for (let o = 0; o < k; o++) {
    const tower = Math.floor(o / perTower), j = o % perTower;
    const x0 = gap + (j % cols) * (tile + gap);
    const y0 = tower * (rowsPerTower * (tile + gap) + gap + towerGap) + gap + Math.floor(j / cols) * (tile + gap);
    const base = o * 3 * r * s;
    let lo = Infinity, hi = -Infinity;
    for (let i = 0; i < 3 * r * s; i++) { lo = Math.min(lo, weights[base + i]!); hi = Math.max(hi, weights[base + i]!); }
    const span = hi - lo || 1;
    for (let y = 0; y < tile; y++) for (let x = 0; x < s * scale; x++) {
      const ky = Math.floor(y / scale), kx = Math.floor(x / scale);
      for (let ch = 0; ch < 3; ch++) {
        const v = (weights[base + (ch * r + ky) * s + kx]! - lo) / span;
        img[((y0 + y) * width + x0 + x) * 3 + ch] = Math.round(255 * v);
      }
    }
  }
  return sharp(img, { raw: { width, height, channels: 3 } }).png().toBuffer();
}

export interface EpochRecord {
  epoch: number;
  trainLoss: number;
  trainTop1Error?: number;
  valTop1Error?: number;
  valTop5Error?: number;
  lr: number;
}


/** Loss and error curves per epoch as an SVG (learning-rate changes as dashed vertical lines). */
export function curvesSvg(history: readonly EpochRecord[], opts: { width?: number; height?: number } = {}): string {
  const W = opts.width ?? 800, H = opts.height ?? 420, pad = { l: 60, r: 60, t: 40, b: 50 };
  const pw = W - pad.l - pad.r, ph = H - pad.t - pad.b;
  const n = history.length;
  const xOf = (i: number) => pad.l + (n <= 1 ? pw / 2 : (i / (n - 1)) * pw);
  const maxLoss = Math.max(1e-9, ...history.map((h) => h.trainLoss).filter(Number.isFinite));
  const yLoss = (v: number) => pad.t + ph - (v / maxLoss) * ph;
  const yErr = (v: number) => pad.t + ph - v * ph;
  const line = (vals: (number | undefined)[], y: (v: number) => number, color: string, dash = '') => {
    const pts = vals.map((v, i) => (v === undefined || !Number.isFinite(v) ? null : `${xOf(i).toFixed(1)},${y(v).toFixed(1)}`)).filter(Boolean);
    if (pts.length === 0) return '';
    const dots = pts.map((p) => `<circle cx="${p!.split(',')[0]}" cy="${p!.split(',')[1]}" r="3" fill="${color}"/>`).join('');
    return `<polyline fill="none" stroke="${color}" stroke-width="2" ${dash ? `stroke-dasharray="${dash}"` : ''} points="${pts.join(' ')}"/>${dots}`;
  };
  const lrMarks = history.map((h, i) => (i > 0 && h.lr !== history[i - 1]!.lr
    ? `<line x1="${xOf(i)}" x2="${xOf(i)}" y1="${pad.t}" y2="${pad.t + ph}" stroke="#888" stroke-dasharray="4 4"/><text x="${xOf(i) + 3}" y="${pad.t + 12}" font-size="11" fill="#555">lr ${h.lr.toPrecision(2)}</text>`
    : '')).join('');
  const ticks = history.map((h, i) => `<text x="${xOf(i)}" y="${pad.t + ph + 18}" font-size="11" text-anchor="middle">${h.epoch}</text>`).join('');
  const errTicks = [0, 0.25, 0.5, 0.75, 1].map((v) => `<text x="${pad.l + pw + 6}" y="${yErr(v) + 4}" font-size="11">${Math.round(v * 100)}%</text>`).join('');
  const lossTicks = [0, 0.5, 1].map((f) => `<text x="${pad.l - 6}" y="${yLoss(f * maxLoss) + 4}" font-size="11" text-anchor="end">${(f * maxLoss).toPrecision(3)}</text>`).join('');
  const legend = [['#1f77b4', 'training loss (left axis)'], ['#d62728', 'top-1 validation error'], ['#2ca02c', 'top-5 validation error'], ['#ff7f0e', 'top-1 training error']]
    .map(([c, t], i) => `<rect x="${pad.l + i * 180}" y="12" width="12" height="12" fill="${c}"/><text x="${pad.l + i * 180 + 16}" y="22" font-size="12">${escapeXml(t!)}</text>`).join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<rect x="${pad.l}" y="${pad.t}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>
${lrMarks}${line(history.map((h) => h.trainLoss), yLoss, '#1f77b4')}
${line(history.map((h) => h.valTop1Error), yErr, '#d62728')}
${line(history.map((h) => h.valTop5Error), yErr, '#2ca02c')}
${line(history.map((h) => h.trainTop1Error), yErr, '#ff7f0e', '5 3')}
${ticks}${errTicks}${lossTicks}${legend}
<text x="${pad.l + pw / 2}" y="${H - 10}" font-size="12" text-anchor="middle">epoch</text>
</svg>`;
}

export async function drawCurves(history: readonly EpochRecord[]): Promise<Buffer> {
  return sharp(Buffer.from(curvesSvg(history))).png().toBuffer();
}

export interface NeighbourRow {
  /** The query (validation) image, HWC uint8 RGB of side `size`. */
  image: Uint8Array;
  /** Its true class name. */
  truth: string;
  /** Five most probable classes with probabilities. */
  top5: { name: string; p: number }[];
  /** Nearest training images (HWC uint8 RGB) by last hidden layer distance. */
  neighbours: Uint8Array[];
}

/** Figure 4: one row per query: the image, its top-5 labels (true one in red), and its nearest training images. */
export async function drawNeighbours(rows: readonly NeighbourRow[], size: number, opts: { thumb?: number } = {}): Promise<Buffer> {
  const thumb = opts.thumb ?? 96, labelW = 220, gap = 6;
  const maxN = Math.max(0, ...rows.map((r) => r.neighbours.length));
  const W = gap + thumb + gap + labelW + maxN * (thumb + gap), H = gap + rows.length * (thumb + gap);
  const toPng = (img: Uint8Array) => sharp(Buffer.from(img), { raw: { width: size, height: size, channels: 3 } }).resize(thumb, thumb).png().toBuffer();
  const layers: Parameters<ReturnType<typeof sharp>["composite"]>[0] = [];
  for (const [i, row] of rows.entries()) {
    const y = gap + i * (thumb + gap);
    layers.push({ input: await toPng(row.image), left: gap, top: y });
    const text = row.top5.map((t, j) => {
      const w = Math.round(120 * t.p);
      const hit = t.name === row.truth;
      return `<rect x="0" y="${3 + j * 15}" width="${w}" height="11" fill="${hit ? '#d62728' : '#1f77b4'}" opacity="0.5"/>` +
        `<text x="2" y="${12 + j * 15}" font-size="11" fill="${hit ? '#b00' : '#000'}">${escapeXml(t.name.slice(0, 28))}</text>`;
    }).join('');
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${labelW}" height="${thumb}" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>` +
      `<text x="2" y="${thumb - 4}" font-size="11" fill="#555">true: ${escapeXml(row.truth.slice(0, 30))}</text>${text}</svg>`;
    layers.push({ input: Buffer.from(svg), left: gap + thumb + gap, top: y });
    for (const [j, nb] of row.neighbours.entries()) layers.push({ input: await toPng(nb), left: gap + thumb + gap + labelW + j * (thumb + gap), top: y });
  }
  return sharp({ create: { width: W, height: H, channels: 3, background: { r: 255, g: 255, b: 255 } } }).composite(layers).png().toBuffer();
}

/** Indices of the k rows of `bank` [m, d] nearest (Euclidean) to `query` [d]. */
export function nearest(query: Float32Array, bank: Float32Array, d: number, k: number): number[] {
  const m = bank.length / d;
  const dist: [number, number][] = [];
  for (let i = 0; i < m; i++) {
    let s = 0;
    for (let j = 0; j < d; j++) { const t = bank[i * d + j]! - query[j]!; s += t * t; }
    dist.push([s, i]);
  }
  dist.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  return dist.slice(0, k).map(([, i]) => i);
}
