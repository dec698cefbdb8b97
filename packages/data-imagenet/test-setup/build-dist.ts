import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const pkg = fileURLToPath(new URL('..', import.meta.url));

function newest(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : e.name.endsWith('.test.ts') ? 0 : statSync(p).mtimeMs);
  }
  return t;
}

export default function setup(): void {
  const built = join(pkg, 'dist', 'worker.js');
  const stamp = existsSync(built) ? newest(join(pkg, 'dist')) : 0;
  if (stamp < newest(join(pkg, 'src'))) {
    const tsc = createRequire(join(pkg, 'package.json')).resolve('typescript/bin/tsc');
    execFileSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: pkg, stdio: 'inherit' });
  }
}
