import { appendFile, mkdir, mkdtemp, open, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LineFollower, startMonitor, type Monitor } from './index.js';
import { epochLine, recipeLine, sleep, SseClient, stepLine } from './sse.test-util.js';

let dir: string, metrics: string;
const opened: { close(): unknown }[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'alexnet-monitor-'));
  metrics = join(dir, 'metrics.jsonl');
});

afterEach(async () => {
  for (const o of opened.splice(0).reverse()) await o.close();
  await rm(dir, { recursive: true, force: true });
});

async function monitor(runDir = dir): Promise<Monitor> {
  const m = await startMonitor({ runDir, port: 0, pollMs: 50 });
  opened.push(m);
  return m;
}

async function events(m: Monitor): Promise<SseClient> {
  const c = await SseClient.open(`${m.url}events`);
  opened.push(c);
  return c;
}

describe('startMonitor', () => {
  it('binds 127.0.0.1 by default and serves the page, its script and a 404 that names the routes', async () => {
    const m = await monitor();
    expect(m.host).toBe('127.0.0.1');
    expect(m.url).toBe(`http://127.0.0.1:${m.port}/`);
    expect(m.runDir).toBe(dir);
    const page = await fetch(m.url);
    expect(page.headers.get('content-type')).toMatch(/text\/html/);
    expect(await page.text()).toMatch(/<canvas id="loss-chart"/);
    expect((await fetch(`${m.url}monitor.js`)).headers.get('content-type')).toMatch(/javascript/);
    const missing = await fetch(`${m.url}nope`);
    expect(missing.status).toBe(404);
    expect(await missing.text()).toMatch(/\/nope is not a page of the monitor \(\/, \/events, \/kernels.png/);
    expect((await fetch(m.url, { method: 'POST' })).status).toBe(405);
  });

  it('refuses a run directory that does not exist, or a file, naming it', async () => {
    const gone = join(dir, 'no-such-run');
    await expect(startMonitor({ runDir: gone, port: 0 })).rejects.toThrow(`the run directory ${gone} does not exist; give the folder that \`alexnet train --out\` writes`);
    await writeFile(metrics, '');
    await expect(startMonitor({ runDir: metrics, port: 0 })).rejects.toThrow(`the run directory ${metrics} is not a directory`);
    await expect(startMonitor({ runDir: dir, port: 70000 })).rejects.toThrow(/port must be an integer from 0 to 65535 .* but is 70000/);
  });

  it('says when the port is taken', async () => {
    const taken = createServer();
    await new Promise<void>((done) => taken.listen(0, '127.0.0.1', done));
    const port = (taken.address() as { port: number }).port;
    try {
      await expect(startMonitor({ runDir: dir, port })).rejects.toThrow(`cannot serve the monitor on 127.0.0.1:${port}: the port is in use; choose another port (--port, or 0 for any free port)`);
    } finally {
      taken.close();
    }
  });

  it('sends the lines the file holds, then the lines appended to it', async () => {
    await writeFile(metrics, `${recipeLine()}\n${stepLine(0)}\n${stepLine(1)}\n`);
    const m = await monitor();
    const c = await events(m);
    await c.until(() => c.lines().length === 3);
    expect(c.named('start')).toEqual([{ runDir: dir, metrics, exists: true }]);
    expect(JSON.parse(c.lines()[0]!).type).toBe('recipe');
    await appendFile(metrics, `${stepLine(2)}\n${stepLine(3)}\n`);
    await c.until(() => c.lines().length === 5);
    await appendFile(metrics, `${epochLine(1)}\n`);
    await c.until(() => c.lines().length === 6);
    expect(c.lines().map((l) => JSON.parse(l).type)).toEqual(['recipe', 'step', 'step', 'step', 'step', 'epoch']);
    expect(c.lines().map((l) => JSON.parse(l).step)).toEqual([undefined, 0, 1, 2, 3, 6]);
    expect(c.named('reset')).toEqual([]);
    // A second page gets the whole file too.
    const d = await events(m);
    await d.until(() => d.lines().length === 6);
    expect(d.lines()).toEqual(c.lines());
  });

  it('holds back a last line until its newline arrives', async () => {
    await writeFile(metrics, `${recipeLine()}\n`);
    const m = await monitor();
    const c = await events(m);
    await c.until(() => c.lines().length === 1);
    const line = stepLine(0);
    await appendFile(metrics, line.slice(0, 20));
    await sleep(400); // 8 polls
    expect(c.lines()).toHaveLength(1);
    await appendFile(metrics, line.slice(20));
    await sleep(200);
    expect(c.lines()).toHaveLength(1);
    await appendFile(metrics, '\n');
    await c.until(() => c.lines().length === 2);
    expect(c.lines()[1]).toBe(line);
  });

  it('a file cut back in place: a reset, then the file again from its start', async () => {
    await writeFile(metrics, `${recipeLine()}\n${[0, 1, 2, 3].map((s) => stepLine(s)).join('\n')}\n`);
    const m = await monitor();
    const c = await events(m);
    await c.until(() => c.lines().length === 5);
    const fh = await open(metrics, 'r+');
    await fh.truncate(Buffer.byteLength(`${recipeLine()}\n${stepLine(0)}\n`));
    await fh.close();
    await c.until(() => c.named('reset').length === 1 && c.lines().length === 2);
    expect(c.named('reset')).toEqual([{ reason: 'truncated' }]);
    expect(c.lines()).toEqual([recipeLine(), stepLine(0)]);
    await appendFile(metrics, `${stepLine(1)}\n`);
    await c.until(() => c.lines().length === 3);
  });

  it('a resumed run (a shorter copy renamed over the log): a reset, then the kept lines', async () => {
    const all = [recipeLine(), ...[0, 1, 2, 3, 4, 5, 6, 7].map((s) => stepLine(s)), epochLine(1)];
    await writeFile(metrics, `${all.join('\n')}\n`);
    const m = await monitor();
    const c = await events(m);
    await c.until(() => c.lines().length === all.length);
    // What MetricsLog.open does with resumeAt: keep the lines before the checkpoint, write them to a temporary file, rename it.
    const kept = all.slice(0, 7);
    await writeFile(`${metrics}.tmp-1`, `${kept.join('\n')}\n`);
    await rename(`${metrics}.tmp-1`, metrics);
    await c.until(() => c.named('reset').length === 1 && c.lines().length === kept.length);
    expect(c.named('reset')).toEqual([{ reason: 'replaced' }]);
    expect(c.lines()).toEqual(kept);
  });

  it('a fresh run in the same folder, seen only once the file is longer again: a reset (its first line differs)', async () => {
    await writeFile(metrics, `${recipeLine()}\n${stepLine(0)}\n`);
    const m = await monitor();
    const c = await events(m);
    await c.until(() => c.lines().length === 2);
    const fresh = [recipeLine({ time: '2026-01-02T00:00:00.000Z' }), stepLine(0), stepLine(1)];
    const fh = await open(metrics, 'r+'); // over the old bytes, never shorter: only the first line tells
    await fh.write(`${fresh.join('\n')}\n`, 0);
    await fh.close();
    await c.until(() => c.named('reset').length === 1 && c.lines().length === 3);
    expect(c.named('reset')).toEqual([{ reason: 'rewritten' }]);
    expect(c.lines()).toEqual(fresh);
  });

  it('waits for a metrics.jsonl that does not exist yet, and for a run folder\'s log that is removed and written again', async () => {
    const m = await monitor();
    const c = await events(m);
    await c.until(() => c.named('start').length === 1);
    expect(c.named('start')).toEqual([{ runDir: dir, metrics, exists: false }]);
    await sleep(200);
    expect(c.lines()).toEqual([]);
    await writeFile(metrics, `${recipeLine()}\n`);
    await c.until(() => c.lines().length === 1);
    await rm(metrics);
    await c.until(() => c.named('reset').length === 1);
    expect(c.named('reset')).toEqual([{ reason: 'removed' }]);
    await writeFile(metrics, `${recipeLine()}\n${stepLine(0)}\n`);
    await c.until(() => c.lines().length === 2);
  });

  it('close() ends the event streams', async () => {
    await writeFile(metrics, `${recipeLine()}\n`);
    const m = await startMonitor({ runDir: dir, port: 0 });
    const c = await events(m);
    await c.until(() => c.lines().length === 1);
    await m.close();
    await expect(fetch(m.url)).rejects.toThrow();
  });
});

describe('LineFollower', () => {
  it('reads a log longer than its read size, with lines and UTF-8 characters cut at its read boundaries', async () => {
    const lines = Array.from({ length: 15_000 }, (_, i) => JSON.stringify({ type: 'step', step: i, note: 'Σ αᵢλᵢpᵢ'.repeat(1 + (i % 13)) }));
    await writeFile(metrics, `${lines.join('\n')}\n`);
    expect((await readFile(metrics)).length).toBeGreaterThan(2 ** 21);
    const got: string[] = [];
    let calls = 0;
    const f = new LineFollower(metrics, { lines: (l) => { got.push(...l); calls++; }, reset: () => { throw new Error('no reset expected'); } });
    await f.poke();
    expect(calls).toBeGreaterThan(1); // in pieces
    expect(got).toEqual(lines);
    await f.poke(); // nothing new
    expect(got).toHaveLength(lines.length);
  });

  it('leaves out empty lines and carriage returns, and folds pokes made while reading into one more read', async () => {
    await mkdir(dir, { recursive: true });
    await writeFile(metrics, 'a\r\n\n  \nb\n');
    const got: string[] = [];
    const f = new LineFollower(metrics, { lines: (l) => { got.push(...l); }, reset: () => undefined });
    await Promise.all([f.poke(), f.poke(), f.poke()]);
    expect(got).toEqual(['a', 'b']);
  });
});
