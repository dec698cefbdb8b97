// The page in a real browser: Debian's Chromium, headless, driven by playwright-core (which downloads
// no browser of its own). Without /usr/bin/chromium these tests skip, saying what to install.
import { existsSync } from 'node:fs';
import { appendFile, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMonitor, type Monitor } from './index.js';
import { epochLine, recipeLine, sleep, stepLine } from './sse.test-util.js';

const CHROMIUM = '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) console.warn(`skipping the browser tests of @alexnet/monitor: ${CHROMIUM} is missing; install Debian's Chromium (apt-get install chromium)`);
// As root, Chromium needs --no-sandbox; the network flags keep it from calling out of a closed network.
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];


type MonitorState = { lines: number; resets: number; lossPoints: number; errorPoints: number; epochs: number; status: string; kernels: { version: string; width: number; height: number } | null };

describe.skipIf(!haveChromium)(`the page in headless Chromium${haveChromium ? '' : ` (skipped: no ${CHROMIUM}; apt-get install chromium)`}`, () => {
  let ctx: BrowserContext, profile: string;
  const problems: string[] = [];

  beforeAll(async () => {
    profile = await mkdtemp(join(tmpdir(), 'alexnet-monitor-chromium-'));
    ctx = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: FLAGS, viewport: { width: 1280, height: 1000 } });
  });
  afterAll(async () => {
    await ctx?.close();
    if (profile) await rm(profile, { recursive: true, force: true });
  });

  async function open(m: Monitor): Promise<Page> {
    const page = await ctx.newPage();
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('console', (msg) => { if (msg.type() === 'error') problems.push(`console: ${msg.text()}`); });
    await page.goto(m.url);
    return page;
  }
  const state = (page: Page) => page.evaluate(() => (globalThis as unknown as { __monitor: MonitorState }).__monitor);
  const until = (page: Page, fn: string, timeout = 10_000) => page.waitForFunction(fn, null, { timeout, polling: 50 });
  const text = (page: Page, selector: string) => page.locator(selector).innerText();

  it('follows a growing metrics.jsonl: points as steps arrive, progress and ETA, the recipe, epochs, a partial line, a cut-back log', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'alexnet-monitor-page-'));
    const m = await startMonitor({ runDir: dir, port: 0, pollMs: 100 });
    const metrics = join(dir, 'metrics.jsonl');
    try {
      const page = await open(m);
      await until(page, `window.__monitor.status === 'waiting'`);
      expect(await text(page, '#recipe')).toBe(`waiting for ${metrics}`);

      await writeFile(metrics, `${recipeLine()}\n${stepLine(0)}\n${stepLine(1)}\n`);
      await until(page, 'window.__monitor.lossPoints === 2');
      expect(await page.locator('#loss-chart').getAttribute('data-points')).toBe('2');
      const recipe = await text(page, '#recipe');
      expect(recipe).toContain('data: prepared shards /data/shards: 48 training images of 3 classes, 12 validation images');
      expect(recipe).toContain('model: paper, LRN paper convention, within each tower (§3.3); weights ~ N(0, 0.01²), positive biases 0.1 (§5)');
      expect(recipe).toContain('6 steps per epoch'); // 48 images / batch 8
      expect(await text(page, '#epoch')).toBe('1 of 3');

      await appendFile(metrics, `${[2, 3, 4].map((s) => stepLine(s)).join('\n')}\n`);
      await until(page, 'window.__monitor.lossPoints === 5');
      expect(await text(page, '#progress-text')).toBe('step 5 of 6 (83%)');
      // Steps one second apart: 1 step left in the epoch, 13 in the run (3 epochs of 6).
      expect(await text(page, '#eta')).toBe('epoch 0:01, run 0:13 (1 steps/s, validation not counted)');
      expect(await text(page, '#lr')).toBe('0.01');
      expect(await text(page, '#ips')).toBe('8');

      await appendFile(metrics, `${stepLine(5)}\n${epochLine(1)}\n`);
      await until(page, 'window.__monitor.lossPoints === 6 && window.__monitor.errorPoints === 1');
      expect(await page.locator('#error-chart').getAttribute('data-points')).toBe('1');
      expect(await text(page, '#epochs tbody')).toMatch(/^1\t1\.05\t65\.0%\t61\.0%\t10\.0%\t0\.01\t8\t0:06$/);
      expect(await text(page, '#epoch')).toBe('1 of 3 (finished)');

      const half = stepLine(6);
      await appendFile(metrics, half.slice(0, 30));
      await sleep(500);
      expect((await state(page)).lossPoints).toBe(6); // not until its newline
      await appendFile(metrics, `${half.slice(30)}\n${stepLine(7, 6, 0.001)}\n`);
      await until(page, 'window.__monitor.lossPoints === 8');
      expect(await text(page, '#lr')).toBe('0.001');

      // A resumed run cuts the log back to its checkpoint (a shorter copy renamed over it).
      await writeFile(`${metrics}.tmp`, `${[recipeLine(), stepLine(0), stepLine(1), stepLine(2)].join('\n')}\n`);
      await rename(`${metrics}.tmp`, metrics);
      await until(page, 'window.__monitor.resets === 1 && window.__monitor.lossPoints === 3');
      expect((await state(page)).errorPoints).toBe(0);
      expect(await text(page, '#epochs tbody')).toBe('');
      expect(problems).toEqual([]);
      await page.close();
    } finally {
      await m.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
