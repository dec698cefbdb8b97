/**
 * The monitor's HTTP server (node:http only). Routes:
 * - `/`, `/monitor.js`, `/monitor.css`: the page, static files served as they are (page/ in the package);
 * - `/events`: server-sent events. `start` ({ runDir, metrics, exists }), then `lines` events whose
 *   data fields are the lines of metrics.jsonl, one `data:` field a line: first every line the file
 *   holds, then the new ones as it grows. `reset` ({ reason }) when the file was cut back, replaced
 *   or rewritten (a resumed run cuts it back to its checkpoint): the lines sent so far are void and
 *   the file is sent again from its start. `problem` ({ message }) when it cannot be read;
 * - `/kernels.json`: where the latest conv1 kernels come from; `/kernels.png`: the picture (Figure 3),
 *   drawn from checkpoint.safetensors or, when newer, the run's own conv1-kernels.png.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { watch, type FSWatcher } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LineFollower } from './follow.js';
import { kernelsPng } from './kernels.js';

export interface MonitorOptions {
  /** The run's folder: the `--out` of `alexnet train` (metrics.jsonl, checkpoint.safetensors, conv1-kernels.png). */
  runDir: string;
  /** TCP port; 0 picks a free one. Default 6006. */
  port?: number;
  /** Address to listen on. Default 127.0.0.1 (this machine only). */
  host?: string;
  /** How often the file is looked at besides fs.watch events, in ms. Default 1000. */
  pollMs?: number;
}

export interface Monitor {
  /** The page, e.g. http://127.0.0.1:6006/ */
  url: string;
  port: number;
  host: string;
  /** The run's folder, absolute. */
  runDir: string;
  /** Ends the event streams and stops the server. */
  close(): Promise<void>;
}

export type KernelsInfo =
  | { available: true; source: 'checkpoint' | 'picture'; file: string; modified: string; version: string; model?: string; epoch?: number; step?: number; width?: number; height?: number }
  | { available: false; message: string };

const PAGE_DIR = fileURLToPath(new URL('../page/', import.meta.url));
const PAGE_FILES: Record<string, [file: string, type: string]> = {
  '/': ['index.html', 'text/html; charset=utf-8'],
  '/index.html': ['index.html', 'text/html; charset=utf-8'],
  '/monitor.js': ['monitor.js', 'text/javascript; charset=utf-8'],
  '/monitor.css': ['monitor.css', 'text/css; charset=utf-8'],
};

async function loadPage(): Promise<Map<string, Buffer>> {
  const page = new Map<string, Buffer>();
  for (const file of new Set(Object.values(PAGE_FILES).map(([f]) => f))) {
    try { page.set(file, await readFile(join(PAGE_DIR, file))); } catch {
      throw new Error(`the monitor's page ${join(PAGE_DIR, file)} is missing; reinstall @alexnet/monitor`);
    }
  }
  return page;
}

async function checkRunDir(runDir: string): Promise<void> {
  let st;
  try { st = await stat(runDir); } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new Error(`the run directory ${runDir} does not exist; give the folder that \`alexnet train --out\` writes (it holds metrics.jsonl)`);
    }
    throw new Error(`cannot read the run directory ${runDir}: ${(e as Error).message}`);
  }
  if (!st.isDirectory()) throw new Error(`the run directory ${runDir} is not a directory; give the folder that \`alexnet train --out\` writes, not a file in it`);
}

/** Where the kernels come from now, and the PNG, cached by file, time and size. */
class Kernels {
  private cache: { key: string; result: Promise<{ png: Buffer; info: KernelsInfo }> } | null = null;

  constructor(private readonly runDir: string) {}

  async latest(): Promise<{ png: Buffer | null; info: KernelsInfo }> {
    const checkpoint = join(this.runDir, 'checkpoint.safetensors'), picture = join(this.runDir, 'conv1-kernels.png');
    const [c, p] = await Promise.all([stat(checkpoint).catch(() => null), stat(picture).catch(() => null)]);
    const fromPicture = async () => {
      const png = await readFile(picture);
      return { png, info: { available: true as const, source: 'picture' as const, file: picture, modified: p!.mtime.toISOString(), version: `picture-${p!.mtimeMs}-${p!.size}` } };
    };
    if (p?.isFile() && (!c?.isFile() || p.mtimeMs >= c.mtimeMs)) return fromPicture();
    if (c?.isFile()) {
      const key = `${c.mtimeMs}-${c.size}`;
      if (this.cache?.key !== key) {
        const result = kernelsPng(checkpoint).then(({ png, conv1, width, height }) => ({
          png,
          info: {
            available: true as const, source: 'checkpoint' as const, file: checkpoint, modified: c.mtime.toISOString(), version: `checkpoint-${key}`,
            model: conv1.model, epoch: conv1.epoch, step: conv1.step, width, height,
          },
        }));
        this.cache = { key, result };
        result.catch(() => { if (this.cache?.result === result) this.cache = null; });
      }
      try { return await this.cache!.result; } catch (e) {
        if (p?.isFile()) return fromPicture();
        return { png: null, info: { available: false, message: (e as Error).message } };
      }
    }
    return {
      png: null,
      info: { available: false, message: `no kernels yet: ${this.runDir} has no checkpoint.safetensors (written at the end of each epoch) and no conv1-kernels.png (written at the end of the run)` },
    };
  }
}

function sse(res: ServerResponse, event: string, data: string[]): Promise<void> {
  if (res.writableEnded || res.destroyed) return Promise.resolve();
  const text = `event: ${event}\n${data.map((d) => `data: ${d.replace(/\r/g, '')}\n`).join('')}\n`;
  if (res.write(text)) return Promise.resolve();
  return new Promise((done) => {
    const finish = () => { res.off('drain', finish); res.off('close', finish); done(); };
    res.on('drain', finish);
    res.on('close', finish);
  });
}

/** Serves the monitor page of one run folder. */
export async function startMonitor(opts: MonitorOptions): Promise<Monitor> {
  if (typeof opts?.runDir !== 'string' || opts.runDir === '') throw new TypeError('startMonitor: runDir must be the path of a run folder (the --out of alexnet train)');
  const runDir = resolve(opts.runDir);
  const port = opts.port ?? 6006, host = opts.host ?? '127.0.0.1', pollMs = opts.pollMs ?? 1000;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`startMonitor: port must be an integer from 0 to 65535 (0: any free port) but is ${port}`);
  await checkRunDir(runDir);
  const page = await loadPage();
  const metrics = join(runDir, 'metrics.jsonl');
  const kernels = new Kernels(runDir);
  const clients = new Set<{ res: ServerResponse; follower: LineFollower }>();
  let closing: Promise<void> | null = null;

  const pokeAll = () => {
    for (const c of clients) {
      c.follower.poke().catch((e: Error) => sse(c.res, 'problem', [JSON.stringify({ message: `cannot read ${metrics}: ${e.message}` })]));
    }
  };

  const events = (req: IncomingMessage, res: ServerResponse) => {
    res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-cache', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
    res.write('retry: 2000\n\n');
    const follower = new LineFollower(metrics, {
      lines: (lines) => sse(res, 'lines', lines),
      reset: (reason) => sse(res, 'reset', [JSON.stringify({ reason })]),
    });
    const client = { res, follower };
    const ping = setInterval(() => { if (!res.writableEnded) res.write(': ping\n\n'); }, 15_000);
    ping.unref();
    req.on('close', () => { clearInterval(ping); follower.close(); clients.delete(client); });
    void stat(metrics).then(() => true, () => false).then(async (exists) => {
      await sse(res, 'start', [JSON.stringify({ runDir, metrics, exists })]);
      if (res.destroyed || closing) return;
      clients.add(client); // from here on, the watcher and the timer poke it too
      await follower.poke();
    }).catch((e: Error) => sse(res, 'problem', [JSON.stringify({ message: `cannot read ${metrics}: ${e.message}` })]));
  };

  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://monitor').pathname;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain; charset=utf-8' }).end(`${req.method} is not served here; the monitor only reads\n`);
      return;
    }
    const file = PAGE_FILES[path];
    if (file) {
      res.writeHead(200, { 'Content-Type': file[1], 'Cache-Control': 'no-cache' }).end(page.get(file[0]));
      return;
    }
    if (path === '/events') { events(req, res); return; }
    if (path === '/kernels.json' || path === '/kernels.png') {
      kernels.latest().then(({ png, info }) => {
        if (path === '/kernels.json') {
          res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store' }).end(JSON.stringify(info));
        } else if (!png || !info.available) {
          res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store' }).end(`${info.available ? 'no kernels' : info.message}\n`);
        } else if (req.headers['if-none-match'] === `"${info.version}"`) {
          res.writeHead(304, { ETag: `"${info.version}"` }).end();
        } else {
          res.writeHead(200, { 'Content-Type': 'image/png', 'Cache-Control': 'no-cache', ETag: `"${info.version}"`, 'Content-Length': png.length }).end(png);
        }
      }).catch((e: Error) => {
        res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' }).end(`cannot draw the kernels of ${runDir}: ${e.message}\n`);
      });
      return;
    }
    if (path === '/favicon.ico') { res.writeHead(204).end(); return; }
    res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end(`${path} is not a page of the monitor (/, /events, /kernels.png, /kernels.json)\n`);
  });

  await new Promise<void>((done, fail) => {
    server.once('error', (e: NodeJS.ErrnoException) => {
      fail(new Error(e.code === 'EADDRINUSE'
        ? `cannot serve the monitor on ${host}:${port}: the port is in use; choose another port (--port, or 0 for any free port)`
        : `cannot serve the monitor on ${host}:${port}: ${e.message}`));
    });
    server.listen(port, host, () => done());
  });

  let watcher: FSWatcher | null = null;
  try {
    watcher = watch(runDir, { persistent: false }, (_event, name) => { if (!name || name.toString().startsWith('metrics.jsonl')) pokeAll(); });
    watcher.on('error', () => { watcher?.close(); watcher = null; }); // the timer still polls
  } catch { watcher = null; }
  const timer = setInterval(pokeAll, pollMs);
  timer.unref();

  const address = server.address();
  const actualPort = typeof address === 'object' && address ? address.port : port;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${urlHost}:${actualPort}/`,
    port: actualPort,
    host,
    runDir,
    close() {
      closing ??= new Promise<void>((done) => {
        clearInterval(timer);
        watcher?.close();
        for (const c of clients) { c.follower.close(); c.res.end(); }
        clients.clear();
        server.close(() => done());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
