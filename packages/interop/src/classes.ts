/**
 * The 1000 ILSVRC-2012 classes (§6: the 1000-class subset of ImageNet the paper trains on) in the
 * standard order: the WordNet ids sorted, which is the order of torchvision's and Caffe's outputs.
 * Names as LOC_synset_mapping.txt writes them ("tench, Tinca tinca"). Sources: data/NOTICE.md.
 */
import { readFileSync } from 'node:fs';

export interface ClassEntry {
  wnid: string;
  name: string;
}

let cached: readonly ClassEntry[] | null = null;

/** The 1000 classes, read once from the package's data/ilsvrc2012-classes.json. */
export function ilsvrc2012Classes(): readonly ClassEntry[] {
  if (!cached) {
    const rows = JSON.parse(readFileSync(new URL('../data/ilsvrc2012-classes.json', import.meta.url), 'utf8')) as [string, string][];
    cached = Object.freeze(rows.map(([wnid, name]) => Object.freeze({ wnid, name })));
  }
  return cached;
}
