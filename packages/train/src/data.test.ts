// Class identity between a model and a data set: by wnid, not by count.
import { describe, expect, it } from 'vitest';
import type { Dataset } from '@alexnet/data-imagenet';
import { matchClasses } from './data.js';

const cls = (...w: string[]) => w.map((wnid) => ({ wnid, name: `name of ${wnid}` }));
const ds = (classes: { wnid: string; name: string }[], labels: number[]): Dataset => ({
  length: labels.length, labels: Int32Array.from(labels), classes, size: 8, statistics: null,
  source: { kind: 'folder', paths: labels.map((_, i) => `${i}.JPEG`), size: 8, kernel: 'linear' },
});

describe('matchClasses', () => {
  const model = cls('n01', 'n02', 'n03', 'n04');
  it('passes the same classes unchanged, and maps a subset onto the model\'s indices by wnid', () => {
    const same = ds(cls('n01', 'n02', 'n03', 'n04'), [0, 3]);
    expect(matchClasses(same, model, 'val').dataset).toBe(same);
    const sub = matchClasses(ds(cls('n02', 'n04'), [0, 1, 1]), model, 'val');
    expect([...sub.dataset.labels]).toEqual([1, 3, 3]);
    expect(sub.dataset.classes).toEqual(model);
    expect(sub.note).toBe('val has 2 of the model\'s 4 classes (matched by wnid)');
  });
  it('refuses classes the model does not know, even when the count agrees', () => {
    expect(() => matchClasses(ds(cls('n01', 'n02', 'n03', 'n99'), [0]), model, 'the validation split of /d'))
      .toThrow(/the validation split of \/d has 1 class\(es\) the model was not trained on: n99 \(the model knows 4 classes, e\.g\. n01, n02, n03\)/);
  });
});
