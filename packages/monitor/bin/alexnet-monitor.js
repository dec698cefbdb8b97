#!/usr/bin/env node
// alexnet-monitor RUN_DIR [--port 6006] [--host 127.0.0.1]: serves the live page of a training run.
import { startMonitor } from '../dist/index.js';

const usage = 'usage: alexnet-monitor RUN_DIR [--port 6006] [--host 127.0.0.1]\n' +
  '  RUN_DIR   the --out folder of `alexnet train` (metrics.jsonl, checkpoint.safetensors)\n' +
  '  --port N  the port to serve on (default 6006; 0: any free port)\n' +
  '  --host H  the address to listen on (default 127.0.0.1: this machine only)\n';

function fail(message) {
  process.stderr.write(`alexnet-monitor: ${message}\n`);
  process.exit(2);
}

const args = process.argv.slice(2);
let runDir, port = 6006, host = '127.0.0.1';
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  const [flag, inline] = a.startsWith('--') && a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
  const value = () => inline ?? args[++i] ?? fail(`${flag} needs a value\n${usage}`);
  if (flag === '--help' || flag === '-h') { process.stdout.write(usage); process.exit(0); }
  else if (flag === '--port' || flag === '-p') {
    const v = value();
    port = Number(v);
    if (!/^\d+$/.test(v) || port > 65535) fail(`--port must be a port number from 0 to 65535 but is ${JSON.stringify(v)}`);
  } else if (flag === '--host') host = value();
  else if (a.startsWith('-')) fail(`unknown option ${a}\n${usage}`);
  else if (runDir === undefined) runDir = a;
  else fail(`one run folder only, but received ${JSON.stringify(runDir)} and ${JSON.stringify(a)}`);
}
if (runDir === undefined) fail(`give the run folder\n${usage}`);

try {
  const m = await startMonitor({ runDir, port, host });
  process.stdout.write(`monitoring ${m.runDir} at ${m.url} (Ctrl-C stops)\n`);
  const stop = () => { void m.close().then(() => process.exit(0)); };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
} catch (e) {
  process.stderr.write(`alexnet-monitor: ${e.message}\n`);
  process.exit(1);
}
