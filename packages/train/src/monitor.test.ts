// `alexnet train --monitor` and `alexnet monitor` in a real browser (Debian's Chromium, headless,
// driven by playwright-core, which downloads no browser of its own): the chart gains points as a
// short run trains, and the finished run reads whole from `alexnet monitor`. Without
// /usr/bin/chromium the test skips, saying what to install.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const CHROMIUM = '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) console.warn(`skipping the monitor's browser test: ${CHROMIUM} is missing; install Debian's Chromium (apt-get install chromium)`);
// As root Chromium needs --no-sandbox; the network flags keep it from calling out of a closed network.
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const cli = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));

type MonitorState = { lossPoints: number; errorPoints: number; epochs: number; status: string; resets: number; kernels: { version: string; width: number; height: number } | null };

/** The first URL a child prints on stderr or stdout after `prefix`. */
function urlOf(child: ChildProcess, prefix: RegExp): Promise<string> {
  return new Promise((done, fail) => {
    let text = '';
    const look = (d: Buffer) => { text += d.toString(); const m = prefix.exec(text); if (m) done(m[1]!); };
    child.stdout?.on('data', look);
    child.stderr?.on('data', look);
    child.on('exit', (code) => fail(new Error(`exited (${code}) before printing its URL: ${text}`)));
  });
}

describe.skipIf(!haveChromium)(`alexnet train --monitor in headless Chromium${haveChromium ? '' : ` (skipped: no ${CHROMIUM}; apt-get install chromium)`}`, () => {
  let ctx: BrowserContext, profile: string, work: string;
  beforeAll(async () => {
    profile = await mkdtemp(join(tmpdir(), 'alexnet-chromium-'));
    work = await mkdtemp(join(tmpdir(), 'alexnet-monitor-run-'));
    ctx = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: FLAGS, viewport: { width: 1280, height: 1000 } });
  });
  afterAll(async () => {
    await ctx?.close();
    for (const d of [profile, work]) if (d) await rm(d, { recursive: true, force: true });
  });
  const state = (page: Page) => page.evaluate(() => (globalThis as unknown as { __monitor: MonitorState }).__monitor);

  it('the chart gains points as a short run trains; alexnet monitor serves the finished run', async () => {
    const run = join(work, 'run');
    const alexnet = (...args: string[]) => execFileSync(process.execPath, [cli, ...args], { stdio: 'pipe', encoding: 'utf8' });
    alexnet('sample', join(work, 'raw'), '--classes', '3', '--per-class', '24'); // 72 training images: 9 steps of 8 an epoch
    alexnet('prepare', join(work, 'raw'), '--out', join(work, 'shards'), '--size', '76');
    const trainer = spawn(process.execPath, [cli, 'train', join(work, 'shards'), '--out', run, '--crop', '67', '-b', '8', '--epochs', '3',
      '--positive-bias', '0.1', '-j', '1', '--monitor', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<number | null>((done) => trainer.on('exit', (code) => done(code)));
    let running = true;
    void exited.then(() => { running = false; });
    const page = await ctx.newPage();
    const problems: string[] = [];
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    await page.goto(await urlOf(trainer, /^monitor: (http:\/\/127\.0\.0\.1:\d+\/)/m));
    const seen: number[] = [];
    while (running) {
      const s = await state(page).catch(() => null); // the page loses its server when training ends
      if (s && seen.at(-1) !== s.lossPoints) seen.push(s.lossPoints);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(await exited).toBe(0);
    // The chart grew while the run trained: it drew points before the last step was in, and never lost any.
    expect(seen.filter((n) => n > 0 && n < 27).length, `point counts seen: ${seen.join(', ')}`).toBeGreaterThan(0);
    expect([...seen].sort((a, b) => a - b)).toEqual(seen);
    await page.close();

    // The finished run, served by `alexnet monitor`.
    const server = spawn(process.execPath, [cli, 'monitor', run, '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const done = await ctx.newPage();
      await done.goto(await urlOf(server, /at (http:\/\/127\.0\.0\.1:\d+\/)/));
      await done.waitForFunction(`window.__monitor.status === 'finished' && window.__monitor.lossPoints === 27 && window.__monitor.kernels?.version.startsWith('picture')`, null, { timeout: 15_000, polling: 50 });
      expect(await state(done)).toMatchObject({ lossPoints: 27, errorPoints: 3, epochs: 3, resets: 0, kernels: { width: 738, height: 288 } }); // Figure 3: 48 + 48 kernels, 16 a row
      expect(await done.locator('#recipe').innerText()).toContain(`data: prepared shards ${join(work, 'shards')}: 72 training images of 3 classes, `);
      expect(await done.locator('#epoch').innerText()).toBe('3 of 3 (finished)');
      expect((await done.locator('#epochs tbody').innerText()).split('\n')).toHaveLength(3);
      const shot = process.env.MONITOR_SCREENSHOT ?? join(work, 'monitor.png');
      await done.screenshot({ path: shot, fullPage: true });
      expect(statSync(shot).size).toBeGreaterThan(20_000);
      expect(problems).toEqual([]);
    } finally {
      const stopped = new Promise<number | null>((done) => server.on('exit', (code) => done(code)));
      server.kill('SIGINT');
      expect(await stopped).toBe(0);
    }
  }, 180_000);
});
