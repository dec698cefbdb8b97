#!/usr/bin/env node
// npm pack of a package that compiles native code at install must carry the sources. In the monorepo
// they live here, in native/; a package's prepack runs `node ../../native/copy-into-package.mjs <dir>...`
// from the package's folder to copy those folders of native/ into its own ./native (binding.gyp and the
// build scripts look there first), and its postpack runs it with --clean to remove the copy.
// @alexnet/tensor packs common and cpu, @alexnet/cuda common and cuda.
import { cpSync, existsSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const local = resolve(process.cwd(), 'native');
if (local === resolve(here)) {
  console.error('copy-into-package: run it from a package folder (packages/<name>), not from the repository root');
  process.exit(1);
}
rmSync(local, { recursive: true, force: true });
if (!process.argv.includes('--clean')) {
  for (const dir of process.argv.slice(2)) {
    if (!existsSync(join(here, dir))) {
      console.error(`copy-into-package: native/${dir} does not exist`);
      process.exit(1);
    }
    cpSync(join(here, dir), join(local, dir), { recursive: true });
  }
}
