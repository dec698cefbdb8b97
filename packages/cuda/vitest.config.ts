import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';
import { sharedConfig } from '../../vitest.shared.ts';

// The shared config aliases '@alexnet/tensor' to its src/index.ts; the conformance suite is the
// '/conformance' subpath, so it gets its own alias, listed first so that it wins.
const shared = sharedConfig();
const conformance = fileURLToPath(new URL('../tensor/src/conformance/index.ts', import.meta.url));

export default defineConfig({
  ...shared,
  resolve: {
    alias: [
      { find: '@alexnet/tensor/conformance', replacement: conformance },
      ...Object.entries(shared.resolve.alias).map(([find, replacement]) => ({ find, replacement })),
    ],
  },
});
