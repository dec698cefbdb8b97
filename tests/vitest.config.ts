import { defineConfig } from 'vitest/config';

// These tests use the packed packages, not the sources: no aliases.
export default defineConfig({
  test: { include: ['*.test.ts'], testTimeout: 900_000, hookTimeout: 900_000, pool: 'forks' },
});
