/**
 * Line charts as SVG (drawn to PNG with sharp): several series on shared axes, with a legend and
 * optional horizontal marks. Used by `alexnet compare` (runs side by side) and `alexnet figure1`
 * (Figure 1's training-error curves, §3.1).
 */
import sharp from 'sharp';

export interface Series {
  label: string;
  color: string;
  points: readonly (readonly [number, number])[];
  dash?: string;
  /** Left out of the legend (a second series of the same run, told apart by its dash). */
  unlisted?: boolean;
}

export interface ChartOptions {
  title?: string;
  xLabel: string;
  yLabel: string;
  /** Formats a y value for the axis (default: 3 significant digits). */
  yFormat?: (v: number) => string;
  /** The y range (default: 0 to the largest value). */
  yMax?: number;
  /** Horizontal lines with a label (e.g. the 25 % error of Figure 1). */
  marks?: { y: number; label: string }[];
  width?: number;
  height?: number;
}

/** A qualitative palette (the first colours of matplotlib's tab10). */
export const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];

export function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (ch) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[ch]!);
}

/** Round numbers for axis ticks: about `count` steps of 1, 2 or 5 times a power of ten. */
export function ticks(max: number, count = 5): number[] {
  if (!(max > 0)) return [0];
  const raw = max / count, p = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw)!;
  const out: number[] = [];
  for (let v = 0; v <= max + step * 1e-9; v += step) out.push(+v.toPrecision(12));
  return out;
}

/** The chart as an SVG string; `x` starts at 0 and ends at the largest x of any series. */
export function chartSvg(series: readonly Series[], o: ChartOptions): string {
  const W = o.width ?? 760, H = o.height ?? 420;
  const listed = series.filter((s) => !s.unlisted);
  const legendRows = Math.ceil(listed.length / 2);
  const pad = { l: 64, r: 24, t: (o.title ? 34 : 14) + 18 * legendRows, b: 48 };
  const pw = W - pad.l - pad.r, ph = H - pad.t - pad.b;
  const all = series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  const xMax = Math.max(1e-9, ...all.map(([x]) => x));
  const yMax = o.yMax ?? Math.max(1e-9, ...all.map(([, y]) => y), ...(o.marks ?? []).map((m) => m.y));
  const X = (x: number) => pad.l + (x / xMax) * pw, Y = (y: number) => pad.t + ph - (Math.min(y, yMax) / yMax) * ph;
  const fmt = o.yFormat ?? ((v: number) => String(+v.toPrecision(3)));
  const xt = ticks(xMax).map((v) => `<text x="${X(v).toFixed(1)}" y="${pad.t + ph + 16}" font-size="11" text-anchor="middle">${+v.toPrecision(4)}</text>`).join('');
  const yt = ticks(yMax).map((v) => `<line x1="${pad.l}" x2="${pad.l + pw}" y1="${Y(v).toFixed(1)}" y2="${Y(v).toFixed(1)}" stroke="#eee"/>` +
    `<text x="${pad.l - 6}" y="${(Y(v) + 4).toFixed(1)}" font-size="11" text-anchor="end">${escapeXml(fmt(v))}</text>`).join('');
  const lines = series.map((s) => {
    const pts = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)).map(([x, y]) => `${X(x).toFixed(1)},${Y(y).toFixed(1)}`);
    if (pts.length === 0) return '';
    const dots = pts.length <= 60 ? pts.map((p) => `<circle cx="${p.split(',')[0]}" cy="${p.split(',')[1]}" r="2.5" fill="${s.color}"/>`).join('') : '';
    return `<polyline fill="none" stroke="${s.color}" stroke-width="2"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''} points="${pts.join(' ')}"/>${dots}`;
  }).join('\n');
  const marks = (o.marks ?? []).map((m) => `<line x1="${pad.l}" x2="${pad.l + pw}" y1="${Y(m.y).toFixed(1)}" y2="${Y(m.y).toFixed(1)}" stroke="#555" stroke-dasharray="6 4"/>` +
    `<text x="${pad.l + pw - 4}" y="${(Y(m.y) - 5).toFixed(1)}" font-size="11" text-anchor="end" fill="#555">${escapeXml(m.label)}</text>`).join('');
  const legend = listed.map((s, i) => {
    const x = pad.l + (i % 2) * (pw / 2), y = (o.title ? 34 : 14) + Math.floor(i / 2) * 18;
    return `<line x1="${x}" x2="${x + 18}" y1="${y + 6}" y2="${y + 6}" stroke="${s.color}" stroke-width="3"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/>` +
      `<text x="${x + 24}" y="${y + 10}" font-size="12">${escapeXml(s.label)}</text>`;
  }).join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
${o.title ? `<text x="${W / 2}" y="20" font-size="14" text-anchor="middle">${escapeXml(o.title)}</text>` : ''}
${yt}<rect x="${pad.l}" y="${pad.t}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>
${marks}
${lines}
${xt}${legend}
<text x="${pad.l + pw / 2}" y="${H - 12}" font-size="12" text-anchor="middle">${escapeXml(o.xLabel)}</text>
<text x="16" y="${pad.t + ph / 2}" font-size="12" text-anchor="middle" transform="rotate(-90 16 ${pad.t + ph / 2})">${escapeXml(o.yLabel)}</text>
</svg>`;
}

/** Several charts side by side in one PNG. */
export async function chartsPng(svgs: readonly string[], width: number, height: number): Promise<Buffer> {
  const tiles = await Promise.all(svgs.map((s) => sharp(Buffer.from(s)).png().toBuffer()));
  return sharp({ create: { width: width * tiles.length, height, channels: 3, background: '#ffffff' } })
    .composite(tiles.map((input, i) => ({ input, left: i * width, top: 0 }))).png().toBuffer();
}
