// One vitest configuration for every package: tests import the other @alexnet packages from
// their TypeScript sources, so a change is tested without rebuilding dist/ first.
import { fileURLToPath } from 'node:url';
import { readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';

const root = fileURLToPath(new URL('.', import.meta.url));

export function alexnetAliases(): Record<string, string> {
  const alias: Record<string, string> = {};
  for (const dir of readdirSync(join(root, 'packages'))) {
    const src = join(root, 'packages', dir, 'src', 'index.ts');
    if (existsSync(src)) alias[`@alexnet/${dir}`] = src;
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
