#!/usr/bin/env node
// npm pack of @alexnet/distributed must carry the sources it compiles at install (native/mpi, and the
// shared argument helpers of native/common that native/mpi/args.h includes where present). In the
// monorepo they live in <repo>/native; prepack copies them into ./native, postpack (--clean) removes
// the copy.
import { cpSync, existsSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const pkg = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const repoNative = resolve(pkg, '..', '..', 'native');
const local = join(pkg, 'native');
if (process.argv.includes('--clean')) {
  if (existsSync(repoNative)) rmSync(local, { recursive: true, force: true });
} else if (existsSync(repoNative)) {
  rmSync(local, { recursive: true, force: true });
  for (const dir of ['mpi', 'common']) {
    if (existsSync(join(repoNative, dir))) cpSync(join(repoNative, dir), join(local, dir), { recursive: true });
  }
}
