// Helpers shared by this package's tests (not exported by the package).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSampleImageNet, type SampleImageNetOptions } from './sample.js';

/** Every item of an async iterable. */
export async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

/**
 * A temporary folder holding a sample ImageNet at `<dir>/<name>` (for a beforeAll); `remove()` deletes
 * the folder (return it from the beforeAll).
 */
export async function sampleImageNet(prefix: string, name: string, opts: Omit<SampleImageNetOptions, 'dir'>): Promise<{ dir: string; src: string; remove: () => void }> {
  const dir = mkdtempSync(join(tmpdir(), `alexnet-${prefix}-`));
  const src = join(dir, name);
  await createSampleImageNet({ dir: src, ...opts });
  return { dir, src, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
