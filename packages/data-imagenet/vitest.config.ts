import { defineConfig } from 'vitest/config';
import { sharedConfig } from '../../vitest.shared.ts';

// Worker threads run the compiled dist/worker.js (Node 20 cannot run a .ts worker): the global
// setup rebuilds dist/ when a source file is newer than it.
const base = sharedConfig();
export default defineConfig({ ...base, test: { ...base.test, globalSetup: ['./test-setup/build-dist.ts'] } });
