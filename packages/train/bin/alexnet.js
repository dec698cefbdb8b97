#!/usr/bin/env node
// The `alexnet` command. This file is committed (unlike dist/), so `npm ci` in the repository links
// node_modules/.bin/alexnet before anything is built; it runs the compiled CLI, or says how to build it.
// Importing ../dist/cli/main.js runs the command on process.argv.
import { existsSync } from 'node:fs';

const cli = new URL('../dist/cli/main.js', import.meta.url);

if (!existsSync(cli)) {
  console.error('alexnet: the command is not built yet (@alexnet/train has no dist/): run `npm run build` at the root of the repository, then try again.');
  process.exitCode = 1;
} else {
  try {
    await import(cli.href);
  } catch (e) {
    if (process.env.ALEXNET_DEBUG) console.error(e);
    else console.error(`alexnet: could not load the command (${e instanceof Error ? e.message.split('\n')[0] : String(e)}); in the repository, run \`npm run build\` first (ALEXNET_DEBUG=1 shows the stack trace).`);
    process.exitCode = 1;
  }
}
