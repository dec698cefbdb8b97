import { defineConfig } from 'vitest/config';
import { sharedConfig } from '../../vitest.shared.ts';

// The shared aliases also map '@alexnet/tensor/conformance' to its source.
export default defineConfig(sharedConfig());
