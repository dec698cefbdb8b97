// The monitor page: reads /events (the lines of metrics.jsonl as server-sent events) and
// /kernels.json, draws with plain canvas. No build step, no dependencies.
// window.__monitor tells what is plotted (lossPoints, errorPoints, ...), for tests and curious users.

const $ = (id) => document.getElementById(id);

const monitor = (window.__monitor = { lines: 0, resets: 0, lossPoints: 0, errorPoints: 0, epochs: 0, status: 'connecting', kernels: null });

let run;
function clear() {
  run = { recipe: null, steps: [], loss: [], times: [], lrMarks: [], epochs: new Map(), last: null, bad: null, lastTime: 0 };
  monitor.lines = 0;
}
clear();

// ---- the lines of metrics.jsonl ----

function add(l) {
  monitor.lines++;
  const t = Date.parse(l.time);
  if (Number.isFinite(t)) run.lastTime = Math.max(run.lastTime, t);
  switch (l.type) {
    case 'recipe': run.recipe = l; break;
    case 'step': {
      const prev = run.last;
      if (prev && l.lr !== prev.lr) run.lrMarks.push({ x: l.step, label: `lr ${fmtNum(l.lr)}` });
      run.steps.push(l.step); run.loss.push(l.loss); run.times.push(t); run.last = l;
      break;
    }
    case 'epoch': run.epochs.set(l.epoch, l); break;
    case 'bad-images': run.bad = l; break;
    default: break; // lines of other tools
  }
}

const events = new EventSource('events');
events.addEventListener('start', (e) => {
  const s = JSON.parse(e.data);
  clear();
  $('run').textContent = s.runDir;
  document.title = `alexnet monitor: ${s.runDir}`;
  run.waiting = s.exists ? null : s.metrics;
  redraw();
  kernels();
});
events.addEventListener('reset', (e) => {
  monitor.resets++;
  monitor.lastReset = JSON.parse(e.data).reason;
  clear();
  redraw();
});
events.addEventListener('lines', (e) => {
  run.waiting = null;
  for (const raw of e.data.split('\n')) {
    let l;
    try { l = JSON.parse(raw); } catch { continue; } // a line of another tool, or cut by a kill
    if (l && typeof l === 'object') add(l);
  }
  redraw();
});
events.addEventListener('problem', (e) => { run.problem = JSON.parse(e.data).message; redraw(); });
events.addEventListener('open', () => { run.disconnected = false; redraw(); });
events.addEventListener('error', () => { run.disconnected = true; redraw(); });

// ---- numbers ----

function fmtNum(v, digits = 3) {
  if (typeof v !== 'number' || !Number.isFinite(v)) return '–';
  return Math.abs(v) >= 1e4 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toExponential(digits - 1) : String(Number(v.toPrecision(digits)));
}
const pct = (v) => (typeof v === 'number' && Number.isFinite(v) ? `${(100 * v).toFixed(1)}%` : '–');
function fmtDuration(s) {
  if (!Number.isFinite(s) || s < 0) return '–';
  s = Math.round(s);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  return `${h ? `${h}:` : ''}${String(m).padStart(h ? 2 : 1, '0')}:${String(sec).padStart(2, '0')}`;
}

/** Steps in an epoch: the trainer drops the last partial batch when there is at least one whole batch. */
function stepsPerEpoch(r) {
  const n = r?.data?.trainImages, b = r?.batch;
  if (!(n > 0 && b > 0)) return NaN;
  return n >= b ? Math.floor(n / b) : Math.ceil(n / b);
}

/** Steps per second over the last (up to) 50 steps, from their times; else from images/s. */
function stepRate() {
  const n = run.steps.length;
  if (n === 0) return NaN;
  const i = Math.max(0, n - 50);
  const dt = (run.times[n - 1] - run.times[i]) / 1000, ds = run.steps[n - 1] - run.steps[i];
  if (ds > 0 && dt > 0) return ds / dt;
  const ips = run.last.imagesPerSecond, b = run.recipe?.batch;
  return ips > 0 && b > 0 ? ips / b : NaN;
}

// ---- the recipe, as the trainer prints it ----

function recipeLines(r) {
  const v = r.data.validation;
  const val = v.kind === 'split' ? `${v.images} validation images` : v.kind === 'held-back'
    ? `${v.images} validation images held back from training (--val-fraction ${v.fraction})` : 'no validation images';
  const lrn = r.model.lrn ? `LRN ${r.model.lrn.convention} convention${r.model.lrn.acrossTowers ? ', across both towers' : r.placement === 'two towers' || r.model.name === 'paper' ? ', within each tower' : ''} (§3.3)` : 'no LRN';
  const l = r.lighting;
  return [
    `data: ${r.data.kind === 'shards' ? 'prepared shards' : 'raw image folder'} ${r.data.root}: ${r.data.trainImages} training images of ${r.data.classes} classes, ${val}`,
    `preprocessing: ${r.mean.kind === 'image' ? 'mean image' : 'channel means'} subtracted (${r.mean.from}); PCA lighting ${l.on ? `on (std ${l.std}, ${l.scale})` : `off${l.why ? ` (${l.why})` : ''}`}; ${r.crop}x${r.crop} crops${r.flip ? ' and reflections' : ''} (§4.1)`,
    `model: ${r.model.name}, ${lrn}; weights ~ N(0, ${r.model.weightStd}²), positive biases ${r.model.positiveBias} (§5)`,
    `optimizer: SGD (${r.optimizer.form} form), lr ${r.optimizer.lr}, momentum ${r.optimizer.momentum}, weight decay ${r.optimizer.weightDecay}${r.optimizer.biasDecay ? ' on weights and biases' : ' on weights only (biases exempt)'}, batch ${r.batch}`,
    `schedule: lr / ${Math.round(1 / r.schedule.factor)} when the ${r.schedule.watch} stops improving for ${r.schedule.patience} epoch(s), at most ${r.schedule.maxReductions} times (§5); ${r.epochs} epochs; seed ${r.seed}`,
    `devices: ${r.devices.join(', ')} (${r.placement === 'two towers' ? 'one tower per device, §3.2' : 'one device'})`,
    `started ${new Date(r.time).toLocaleString()}; ${stepsPerEpoch(r)} steps per epoch`,
  ];
}

// ---- charts ----

function niceTicks(lo, hi, count = 5) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count, mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

/** A line chart: series of { xs, ys, color, width, dash, dots, band }, vertical marks { x, label }. */
function drawChart(canvas, { x: [x0, x1], y: [y0, y1], series, marks = [], yFormat = fmtNum, xLabel = '', empty = '' }) {
  const dpr = window.devicePixelRatio || 1, W = canvas.clientWidth, H = canvas.clientHeight;
  if (canvas.width !== Math.round(W * dpr) || canvas.height !== Math.round(H * dpr)) { canvas.width = Math.round(W * dpr); canvas.height = Math.round(H * dpr); }
  const g = canvas.getContext('2d');
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, W, H);
  const pad = { l: 52, r: 12, t: 10, b: 34 }, pw = W - pad.l - pad.r, ph = H - pad.t - pad.b;
  if (x1 <= x0) x1 = x0 + 1;
  if (y1 <= y0) y1 = y0 + 1;
  const X = (v) => pad.l + ((v - x0) / (x1 - x0)) * pw, Y = (v) => pad.t + ph - ((v - y0) / (y1 - y0)) * ph;
  g.font = '11px system-ui, sans-serif';
  g.strokeStyle = '#e4e4e4'; g.fillStyle = '#666'; g.lineWidth = 1;
  g.textAlign = 'right';
  for (const v of niceTicks(y0, y1)) { g.beginPath(); g.moveTo(pad.l, Y(v)); g.lineTo(pad.l + pw, Y(v)); g.stroke(); g.fillText(yFormat(v), pad.l - 6, Y(v) + 4); }
  g.textAlign = 'center';
  for (const v of niceTicks(x0, x1, Math.max(2, Math.floor(pw / 80)))) if (Number.isInteger(v) || x1 - x0 < 2) g.fillText(String(v), X(v), pad.t + ph + 14);
  g.fillText(xLabel, pad.l + pw / 2, H - 4);
  g.strokeStyle = '#999'; g.strokeRect(pad.l, pad.t, pw, ph);
  g.save();
  g.beginPath(); g.rect(pad.l, pad.t, pw, ph); g.clip();
  g.setLineDash([4, 4]); g.strokeStyle = '#aaa'; g.fillStyle = '#777'; g.textAlign = 'left';
  for (const m of marks) { g.beginPath(); g.moveTo(X(m.x), pad.t); g.lineTo(X(m.x), pad.t + ph); g.stroke(); if (m.label) g.fillText(m.label, X(m.x) + 3, pad.t + 12); }
  g.setLineDash([]);
  for (const s of series) {
    g.strokeStyle = s.color; g.fillStyle = s.color; g.lineWidth = s.width ?? 1.5; g.setLineDash(s.dash ?? []);
    if (s.band) { // one min..max stroke per pixel column
      for (let i = 0; i < s.band.length; i++) { const [px, lo, hi] = s.band[i]; g.beginPath(); g.moveTo(px, Y(lo)); g.lineTo(px, Y(hi)); g.stroke(); }
      continue;
    }
    g.beginPath();
    let pen = false;
    for (let i = 0; i < s.xs.length; i++) {
      const v = s.ys[i];
      if (typeof v !== 'number' || !Number.isFinite(v)) { pen = false; continue; }
      if (pen) g.lineTo(X(s.xs[i]), Y(v)); else g.moveTo(X(s.xs[i]), Y(v));
      pen = true;
    }
    g.stroke();
    if (s.dots) for (let i = 0; i < s.xs.length; i++) if (Number.isFinite(s.ys[i])) { g.beginPath(); g.arc(X(s.xs[i]), Y(s.ys[i]), 2.5, 0, 2 * Math.PI); g.fill(); }
  }
  g.restore();
  let lx = pad.l + 8;
  for (const s of series) if (s.label) { g.fillStyle = s.color; g.fillRect(lx, pad.t + ph - 16, 10, 3); g.fillStyle = '#444'; g.textAlign = 'left'; g.fillText(s.label, lx + 14, pad.t + ph - 12); lx += g.measureText(s.label).width + 32; }
  if (empty) { g.fillStyle = '#888'; g.textAlign = 'center'; g.fillText(empty, pad.l + pw / 2, pad.t + ph / 2); }
  return { X, pw, pad };
}

function drawLoss() {
  const canvas = $('loss-chart'), n = run.steps.length;
  const spe = stepsPerEpoch(run.recipe);
  const x0 = n ? run.steps[0] : 0, x1 = n ? Math.max(run.steps[n - 1], x0 + 1) : 1;
  let hi = 0;
  for (const v of run.loss) if (Number.isFinite(v) && v > hi) hi = v;
  const marks = [...run.lrMarks];
  const pw = canvas.clientWidth - 64, series = [];
  if (spe > 0) { // epoch starts, thinned to one every 60 px or more
    const every = Math.max(1, Math.ceil((60 * (x1 - x0)) / (spe * Math.max(pw, 1))));
    for (let e = Math.max(1, Math.ceil(x0 / spe)); e * spe <= x1; e++) {
      const near = run.lrMarks.some((m) => Math.abs(m.x - e * spe) < (60 * (x1 - x0)) / Math.max(pw, 1)); // leave the room to the lr's label
      if ((e % every) === 0) marks.push({ x: e * spe - 0.5, label: near ? '' : `epoch ${e + 1}` });
    }
  }
  if (n > 2 * pw) { // more steps than pixels: each column's min..max, and its mean as the line
    const band = [], xs = [], ys = [];
    const cols = Math.max(1, Math.floor(pw));
    for (let c = 0; c < cols; c++) {
      const a = Math.floor((c * n) / cols), b = Math.floor(((c + 1) * n) / cols);
      let lo = Infinity, top = -Infinity, sum = 0, k = 0;
      for (let i = a; i < b; i++) { const v = run.loss[i]; if (!Number.isFinite(v)) continue; lo = Math.min(lo, v); top = Math.max(top, v); sum += v; k++; }
      if (k) { band.push([52 + c + 0.5, lo, top]); xs.push(run.steps[Math.floor((a + b) / 2)]); ys.push(sum / k); }
    }
    series.push({ band, color: '#b9d3ea', width: 1 }, { xs, ys, color: '#1f5f99', width: 1.5, label: 'loss (mean per pixel column)' });
  } else {
    series.push({ xs: run.steps, ys: run.loss, color: n > 20 ? '#9cc0e2' : '#1f77b4', width: 1, dots: n <= 60, label: 'loss' });
    if (n > 20) { // a running mean, to see the trend through the batch noise
      const w = Math.max(5, Math.round(n / 50)), ys = [];
      let sum = 0;
      for (let i = 0; i < n; i++) { sum += run.loss[i]; if (i >= w) sum -= run.loss[i - w]; ys.push(sum / Math.min(i + 1, w)); }
      series.push({ xs: run.steps, ys, color: '#1f5f99', width: 2, label: `mean of ${w} steps` });
    }
  }
  drawChart(canvas, { x: [x0, x1 + (x1 - x0) * 0.01], y: [0, hi > 0 ? hi * 1.05 : 1], series, marks, xLabel: 'step', empty: n ? '' : 'no steps yet' });
  canvas.dataset.points = String(n);
  monitor.lossPoints = n;
}

function drawErrors() {
  const canvas = $('error-chart');
  const epochs = [...run.epochs.values()].sort((a, b) => a.epoch - b.epoch);
  const xs = epochs.map((e) => e.epoch);
  const total = Math.max(run.recipe?.epochs ?? 1, xs.at(-1) ?? 1);
  const series = [
    { xs, ys: epochs.map((e) => e.valTop1Error), color: '#d62728', width: 2, dots: true, label: 'validation top-1' },
    { xs, ys: epochs.map((e) => e.valTop5Error), color: '#2ca02c', width: 2, dots: true, label: 'validation top-5' },
    { xs, ys: epochs.map((e) => e.trainTop1Error), color: '#ff7f0e', width: 1.5, dash: [5, 4], dots: true, label: 'training top-1' },
  ];
  const marks = [];
  for (let i = 1; i < epochs.length; i++) if (epochs[i].lr !== epochs[i - 1].lr) marks.push({ x: epochs[i].epoch - 0.5, label: `lr ${fmtNum(epochs[i].lr)}` });
  drawChart(canvas, { x: [Math.min(1, xs[0] ?? 1) - 0.5, total + 0.5], y: [0, 1], series, marks, yFormat: (v) => `${Math.round(v * 100)}%`, xLabel: 'epoch', empty: epochs.length ? '' : 'no finished epoch yet' });
  const plotted = epochs.filter((e) => Number.isFinite(e.valTop1Error) || Number.isFinite(e.trainTop1Error)).length;
  canvas.dataset.points = String(plotted);
  monitor.errorPoints = plotted;
  monitor.epochs = epochs.length;
  const v = run.recipe?.data?.validation;
  $('error-note').textContent = v && v.kind === 'none' ? 'this run has no validation images: only the training error is drawn' : '';
  return epochs;
}

// ---- the page ----

let pending = false;
function redraw() {
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => { pending = false; render(); });
}

function render() {
  const r = run.recipe, last = run.last;
  $('recipe').replaceChildren(...(r ? safeRecipe(r) : [run.waiting ? `waiting for ${run.waiting}` : 'waiting for the recipe line of metrics.jsonl']).map((t) => el('li', t)));
  const epochs = drawErrors();
  drawLoss();
  $('epochs').tBodies[0].replaceChildren(...epochs.toReversed().map((e) => { // the latest first
    const tr = document.createElement('tr');
    for (const t of [e.epoch, fmtNum(e.trainLoss, 4), pct(e.trainTop1Error), pct(e.valTop1Error), pct(e.valTop5Error), fmtNum(e.lr), fmtNum(e.imagesPerSecond), fmtDuration(e.seconds)]) tr.append(el('td', String(t)));
    return tr;
  }));
  const spe = stepsPerEpoch(r), total = r?.epochs;
  const finished = total > 0 && epochs.some((e) => e.epoch >= total);
  if (last) {
    const inEpoch = spe > 0 ? Math.min(spe, Math.max(0, last.step - (last.epoch - 1) * spe + 1)) : NaN;
    const done = run.epochs.has(last.epoch);
    const rate = stepRate();
    $('epoch').textContent = `${last.epoch}${total ? ` of ${total}` : ''}${done ? ' (finished)' : ''}`;
    $('progress').value = done ? 1 : spe > 0 ? inEpoch / spe : 0;
    $('progress-text').textContent = done ? 'all steps' : spe > 0 ? `step ${inEpoch} of ${spe} (${Math.round((100 * inEpoch) / spe)}%)` : '';
    const runLeft = total > 0 && spe > 0 ? total * spe - (last.step + 1) : NaN;
    $('eta').textContent = finished ? 'finished' : `epoch ${done ? 'validating' : fmtDuration((spe - inEpoch) / rate)}, run ${fmtDuration(runLeft / rate)} (${fmtNum(rate)} steps/s, validation not counted)`;
    $('step').textContent = `${last.step + 1} steps taken`;
    $('loss').textContent = `${fmtNum(last.loss, 4)} (batch top-1 ${pct(last.top1)} right)`;
    $('lr').textContent = fmtNum(last.lr);
    $('ips').textContent = fmtNum(last.imagesPerSecond);
  } else {
    for (const id of ['epoch', 'eta', 'step', 'loss', 'lr', 'ips']) $(id).textContent = '–';
    $('progress').value = 0; $('progress-text').textContent = '';
  }
  const bad = run.bad;
  $('bad').textContent = bad ? `${bad.total} so far (last at step ${bad.step}: ${bad.images.map((b) => `${b.sample}: ${b.reason}`).slice(0, 2).join('; ')})` : 'none';
  let state, text;
  if (run.disconnected) [state, text] = ['disconnected', 'disconnected: retrying'];
  else if (run.problem) [state, text] = ['disconnected', run.problem];
  else if (run.waiting) [state, text] = ['waiting', 'waiting for metrics.jsonl'];
  else if (finished) [state, text] = ['finished', 'finished'];
  else if (run.lastTime && Date.now() - run.lastTime > 120_000) [state, text] = ['stale', `no new line for ${fmtDuration((Date.now() - run.lastTime) / 1000)}`];
  else [state, text] = ['live', r ? 'live' : 'waiting for the first line'];
  $('status').dataset.state = state;
  $('status').textContent = text;
  monitor.status = state;
}

function safeRecipe(r) {
  try { return recipeLines(r); } catch { return [JSON.stringify(r)]; } // a recipe of another version
}

function el(tag, text) {
  const e = document.createElement(tag);
  e.textContent = text;
  return e;
}

// ---- the kernels ----

let kernelsVersion = '';
async function kernels() {
  let info;
  try { info = await (await fetch('kernels.json', { cache: 'no-store' })).json(); } catch { return; }
  const img = $('kernels');
  if (!info.available) { $('kernels-note').textContent = info.message; return; }
  if (info.version !== kernelsVersion) {
    kernelsVersion = info.version;
    img.onload = () => { monitor.kernels = { version: info.version, width: img.naturalWidth, height: img.naturalHeight }; };
    img.src = `kernels.png?v=${encodeURIComponent(info.version)}`;
  }
  const when = new Date(info.modified).toLocaleTimeString();
  $('kernels-note').textContent = info.source === 'checkpoint'
    ? `from checkpoint.safetensors (${when}${info.epoch !== undefined ? `, ${info.epoch} epoch(s) finished, step ${info.step}` : ''})${info.model === 'paper' ? '; top: tower 1 (kernels 1-48), bottom: tower 2 (§3.5)' : ''}; each kernel scaled to its own min..max`
    : `conv1-kernels.png, written at the end of the run (${when})`;
}
setInterval(kernels, 5000);
setInterval(() => { if (run.lastTime) redraw(); }, 10_000); // the 'no new line for ...' clock
window.addEventListener('resize', redraw);
