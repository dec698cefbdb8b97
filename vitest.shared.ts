// One vitest configuration for every package: tests import the other @alexnet packages from
// their TypeScript sources, so a change is tested without rebuilding dist/ first.
import { fileURLToPath } from 'node:url';
import { readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';

const root = fileURLToPath(new URL('.', import.meta.url));

/** '@alexnet/<pkg>' -> packages/<pkg>/src/index.ts, and '@alexnet/<pkg>/<sub>' -> packages/<pkg>/src/<sub>/index.ts. */
export function alexnetAliases(): { find: RegExp; replacement: string }[] {
  const alias: { find: RegExp; replacement: string }[] = [];
  for (const dir of readdirSync(join(root, 'packages'))) {
    const src = join(root, 'packages', dir, 'src');
    if (!existsSync(join(src, 'index.ts'))) continue;
    alias.push({ find: new RegExp(`^@alexnet/${dir}/([a-z-]+)$`), replacement: `${src}/$1/index.ts` });
    alias.push({ find: new RegExp(`^@alexnet/${dir}$`), replacement: join(src, 'index.ts') });
  }
  return alias;
}

export function sharedConfig(overrides: { testTimeout?: number; include?: string[] } = {}) {
  return {
    resolve: { alias: alexnetAliases() },
    test: {
      include: overrides.include ?? ['src/**/*.test.ts', 'test/**/*.test.ts'],
      testTimeout: overrides.testTimeout ?? 60_000,
      hookTimeout: 120_000,
      pool: 'forks' as const,
      reporters: ['default'],
    },
  };
}
