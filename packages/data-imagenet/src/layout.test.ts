import { describe, it, expect, beforeAll } from 'vitest';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync, renameSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, basename } from 'node:path';
import { indexImageNet, indexImageFolder, requireSplit } from './layout.js';
import { createSampleImageNet } from './sample.js';
import { openImageFolder, createLoader } from './loader.js';
import { devkitMetaMat, parseMat, readDevkitMeta } from './matfile.js';

// Indexing never decodes, so the "images" here are empty files: fast, and the layout is all that matters.
function touch(p: string): void {
  mkdirSync(join(p, '..'), { recursive: true });
  writeFileSync(p, '');
}

const WNIDS = ['n03000000', 'n01000000', 'n02000000']; // deliberately not in sorted order
const SORTED = [...WNIDS].sort();
// Val image k (1-based) has class VAL_WNID[k-1].
const VAL_WNID = ['n02000000', 'n03000000', 'n01000000', 'n01000000', 'n03000000'];
// The devkit numbers classes in its own order: ILSVRC2012_ID 1 = n03, 2 = n01, 3 = n02.
const DEVKIT = ['n03000000', 'n01000000', 'n02000000'];

function makeTrain(root: string): void {
  for (const w of WNIDS) for (let i = 1; i <= 2; i++) touch(join(root, 'train', w, `${w}_${i}.JPEG`));
}
function valName(k: number): string {
  return `ILSVRC2012_val_${String(k).padStart(8, '0')}.JPEG`;
}
function makeFlatVal(root: string): void {
  VAL_WNID.forEach((_, i) => touch(join(root, 'val', valName(i + 1))));
}
function writeMapping(root: string, file = 'LOC_synset_mapping.txt', wnids = SORTED): void {
  writeFileSync(join(root, file), wnids.map((w) => `${w} name of ${w}, alias`).join('\n') + '\n');
}
function writeDevkit(root: string, lines = VAL_WNID.map((w) => DEVKIT.indexOf(w) + 1)): string {
  const data = join(root, 'ILSVRC2012_devkit_t12', 'data');
  mkdirSync(data, { recursive: true });
  writeFileSync(join(data, 'ILSVRC2012_validation_ground_truth.txt'), lines.join('\n') + '\n');
  writeFileSync(join(data, 'meta.mat'), devkitMetaMat(DEVKIT.map((w, i) => ({ id: i + 1, wnid: w, words: `words ${w}` }))));
  return data;
}
function expectedValLabels(): number[] {
  return VAL_WNID.map((w) => SORTED.indexOf(w));
}

let base: string;
let n = 0;
function fresh(): string {
  const d = join(base, String(n++));
  mkdirSync(d, { recursive: true });
  return d;
}
beforeAll(() => {
  base = mkdtempSync(join(tmpdir(), 'alexnet-layout-'));
  return () => rmSync(base, { recursive: true, force: true });
});

describe('indexImageNet', () => {
  it('reads train/<wnid> in sorted-wnid order with names from LOC_synset_mapping.txt', async () => {
    const root = fresh();
    makeTrain(root);
    writeMapping(root);
    const idx = await indexImageNet(root);
    expect(idx.classes.map((c) => c.wnid)).toEqual(SORTED);
    expect(idx.classes[0]).toEqual({ index: 0, wnid: 'n01000000', name: 'name of n01000000, alias' });
    expect(idx.splits.train!.map((s) => [basename(s.path), s.label])).toEqual([
      ['n01000000_1.JPEG', 0], ['n01000000_2.JPEG', 0], ['n02000000_1.JPEG', 1], ['n02000000_2.JPEG', 1],
      ['n03000000_1.JPEG', 2], ['n03000000_2.JPEG', 2],
    ]);
    expect(idx.splits.val).toBeUndefined();
  });

  it('takes names from synset_words.txt too', async () => {
    const root = fresh();
    makeTrain(root);
    writeMapping(root, 'synset_words.txt');
    const idx = await indexImageNet(root);
    expect(idx.classes.map((c) => c.name)).toEqual(SORTED.map((w) => `name of ${w}, alias`));
  });

  it('labels a flat val/ from the devkit ground truth, mapping devkit order (meta.mat) to sorted order', async () => {
    const root = fresh();
    makeTrain(root);
    makeFlatVal(root);
    writeDevkit(root);
    const idx = await indexImageNet(root);
    expect(idx.splits.val!.map((s) => basename(s.path))).toEqual(VAL_WNID.map((_, i) => valName(i + 1)));
    expect(idx.splits.val!.map((s) => s.label)).toEqual(expectedValLabels());
    expect(basename(idx.sources.devkitOrder!)).toBe('meta.mat');
  });

  it('reads the devkit order from a synsets.txt of wnids instead of meta.mat', async () => {
    const root = fresh();
    makeTrain(root);
    makeFlatVal(root);
    const data = writeDevkit(root);
    rmSync(join(data, 'meta.mat'));
    writeFileSync(join(data, 'synsets.txt'), DEVKIT.join('\n') + '\n');
    const idx = await indexImageNet(root);
    expect(idx.splits.val!.map((s) => s.label)).toEqual(expectedValLabels());
  });

  it('labels a flat val/ from LOC_val_solution.csv', async () => {
    const root = fresh();
    makeTrain(root);
    makeFlatVal(root);
    const rows = VAL_WNID.map((w, i) => `${valName(i + 1).replace('.JPEG', '')},${w} 10 20 30 40 ${w} 1 2 3 4`);
    writeFileSync(join(root, 'LOC_val_solution.csv'), ['ImageId,PredictionString', ...rows.reverse()].join('\n') + '\n');
    const idx = await indexImageNet(root);
    expect(idx.splits.val!.map((s) => s.label)).toEqual(expectedValLabels());
  });

  it('reads val/<wnid>/ folders with the train class index', async () => {
    const root = fresh();
    makeTrain(root);
    touch(join(root, 'val', 'n03000000', 'a.JPEG'));
    touch(join(root, 'val', 'n01000000', 'b.JPEG'));
    const idx = await indexImageNet(root);
    expect(idx.splits.val!.map((s) => [basename(s.path), s.label])).toEqual([['b.JPEG', 0], ['a.JPEG', 2]]);
  });

  it("reads Kaggle's ILSVRC/Data/CLS-LOC nesting with the mapping and solution files at the top", async () => {
    const top = fresh();
    const root = join(top, 'ILSVRC', 'Data', 'CLS-LOC');
    makeTrain(root);
    makeFlatVal(root);
    writeMapping(top);
    const rows = VAL_WNID.map((w, i) => `${valName(i + 1).replace('.JPEG', '')},${w} 1 2 3 4`);
    writeFileSync(join(top, 'LOC_val_solution.csv'), ['ImageId,PredictionString', ...rows].join('\n'));
    const idx = await indexImageNet(top);
    expect(idx.root).toBe(root);
    expect(idx.splits.val!.map((s) => s.label)).toEqual(expectedValLabels());
    expect(idx.classes[2]!.name).toBe('name of n03000000, alias');
  });

  it('names a missing split', async () => {
    const root = fresh();
    makeTrain(root);
    await expect(indexImageNet(root, { splits: ['train', 'val'] })).rejects.toThrow(`${root} has no val/ folder: the val split is missing`);
    await expect(indexImageNet(join(root, 'train', 'n01000000'))).rejects.toThrow(
      `${join(root, 'train', 'n01000000')} has neither a train/ nor a val/ folder: expected an ImageNet folder with train/<wnid>/ and val/`,
    );
  });

  it('names an empty class folder', async () => {
    const root = fresh();
    makeTrain(root);
    mkdirSync(join(root, 'train', 'n01500000'));
    touch(join(root, 'train', 'n01500000', 'notes.txt'));
    await expect(indexImageNet(root)).rejects.toThrow(/^Class folder train\/n01500000 holds no images \(\.jpg, \.jpeg or \.png, any case\)/);
  });

  it('names a val file without a label (LOC_val_solution.csv)', async () => {
    const root = fresh();
    makeTrain(root);
    makeFlatVal(root);
    const rows = VAL_WNID.map((w, i) => `${valName(i + 1).replace('.JPEG', '')},${w} 1 2 3 4`).filter((_, i) => i !== 1);
    writeFileSync(join(root, 'LOC_val_solution.csv'), ['ImageId,PredictionString', ...rows].join('\n'));
    await expect(indexImageNet(root)).rejects.toThrow('val/ILSVRC2012_val_00000002.JPEG has no label in LOC_val_solution.csv');
  });

  it('names a val file without a label (ground truth too short)', async () => {
    const root = fresh();
    makeTrain(root);
    makeFlatVal(root);
    writeDevkit(root, [1, 2, 3]);
    await expect(indexImageNet(root)).rejects.toThrow(
      'val/ILSVRC2012_val_00000004.JPEG has no label in ILSVRC2012_validation_ground_truth.txt (it has 3 lines)',
    );
  });

  it('names a flat val/ with no label file at all, and a ground truth without the devkit order', async () => {
    const root = fresh();
    makeTrain(root);
    makeFlatVal(root);
    await expect(indexImageNet(root)).rejects.toThrow(/val is flat \(5 images, no class folders\) but no label file was found/);
    const data = writeDevkit(root);
    rmSync(join(data, 'meta.mat'));
    await expect(indexImageNet(root)).rejects.toThrow(/holds class numbers in devkit order, but no meta\.mat or synsets\.txt/);
  });

  it('names a ground-truth class number out of range', async () => {
    const root = fresh();
    makeTrain(root);
    makeFlatVal(root);
    writeDevkit(root, [1, 2, 7, 1, 1]);
    await expect(indexImageNet(root)).rejects.toThrow('ILSVRC2012_validation_ground_truth.txt line 3 holds "7", not a class number between 1 and 3');
  });

  it('names a label file that disagrees with the folders', async () => {
    const root = fresh();
    makeTrain(root);
    writeMapping(root, 'LOC_synset_mapping.txt', ['n01000000', 'n02000000', 'n04000000']);
    await expect(indexImageNet(root)).rejects.toThrow(
      'train/n03000000 is a class folder that LOC_synset_mapping.txt does not list (it lists 3 classes): a class must be one of the mapping\'s',
    );
    const root2 = fresh();
    makeTrain(root2);
    makeFlatVal(root2);
    const rows = VAL_WNID.map((w, i) => `${valName(i + 1).replace('.JPEG', '')},${i === 4 ? 'n09999999' : w} 1 2 3 4`);
    writeFileSync(join(root2, 'LOC_val_solution.csv'), ['ImageId,PredictionString', ...rows].join('\n'));
    await expect(indexImageNet(root2)).rejects.toThrow('LOC_val_solution.csv labels ILSVRC2012_val_00000005 with n09999999, which is not one of the 3 classes');
    const root3 = fresh();
    makeTrain(root3);
    touch(join(root3, 'val', 'n05000000', 'x.jpg'));
    await expect(indexImageNet(root3)).rejects.toThrow('val/n05000000 is not a class of train/ (3 classes)');
  });
});

// The standard 1000-line mapping: the three test classes among 997 others.
const THOUSAND = [...SORTED, ...Array.from({ length: 997 }, (_, i) => `n${String(5000000 + i * 7).padStart(8, '0')}`)].sort();
const SUBSET_NOTE = (folder: string, present: number) =>
  `LOC_synset_mapping.txt lists 1000 classes and ${folder} has folders for ${present} of them (a subset such as Imagenette or ImageNet-100): ` +
  `the ${1000 - present} others are absent, and the class indices 0..${present - 1} follow the sorted wnids of the ${present} folders`;

describe('subsets of ImageNet (a few class folders, the 1000-class mapping beside them)', () => {
  it('names the classes present from the mapping, in sorted-wnid order, and notes how many listed classes have no folder', async () => {
    const root = fresh();
    for (const w of ['n03000000', 'n01000000']) touch(join(root, 'train', w, `${w}_1.JPEG`));
    writeMapping(root, 'LOC_synset_mapping.txt', THOUSAND);
    const idx = await indexImageNet(root);
    expect(idx.classes).toEqual([
      { index: 0, wnid: 'n01000000', name: 'name of n01000000, alias' },
      { index: 1, wnid: 'n03000000', name: 'name of n03000000, alias' },
    ]);
    expect(idx.splits.train!.map((s) => s.label)).toEqual([0, 1]);
    expect(idx.notes).toEqual([SUBSET_NOTE('train/', 2)]);
    expect(idx.absentClasses.length).toBe(998);
    expect(idx.absentClasses).toContain('n02000000');
    // The full set has nothing to note.
    const full = fresh();
    makeTrain(full);
    writeMapping(full);
    expect((await indexImageNet(full)).notes).toEqual([]);
  });

  it('refuses a class folder the mapping does not list, naming it', async () => {
    const root = fresh();
    makeTrain(root);
    touch(join(root, 'train', 'n09999999', 'x.JPEG'));
    touch(join(root, 'train', 'oops', 'y.JPEG'));
    writeMapping(root, 'LOC_synset_mapping.txt', THOUSAND);
    await expect(indexImageNet(root)).rejects.toThrow(
      "train/n09999999 is a class folder that LOC_synset_mapping.txt does not list (it lists 1000 classes): a class must be one of the mapping's (1 more unlisted folder: oops)",
    );
  });

  it('leaves out val images of listed classes that have no train/ folder, with a note; refuses unlisted ones', async () => {
    const root = fresh();
    for (const w of ['n01000000', 'n02000000']) touch(join(root, 'train', w, `${w}_1.JPEG`));
    writeMapping(root, 'LOC_synset_mapping.txt', THOUSAND);
    makeFlatVal(root);
    const rows = VAL_WNID.map((w, i) => `${valName(i + 1).replace('.JPEG', '')},${w} 1 2 3 4`);
    writeFileSync(join(root, 'LOC_val_solution.csv'), ['ImageId,PredictionString', ...rows].join('\n'));
    const idx = await indexImageNet(root);
    // val images 1..5 are n02, n03, n01, n01, n03: the two of n03 are left out.
    expect(idx.splits.val!.map((s) => [basename(s.path), s.label])).toEqual([[valName(1), 1], [valName(3), 0], [valName(4), 0]]);
    expect(idx.notes[1]).toBe('val/ holds 2 images of 1 class that LOC_synset_mapping.txt lists but train/ has no folder for: they are left out, leaving 3');
    // val/<wnid>/ folders likewise.
    const root2 = fresh();
    for (const w of ['n01000000', 'n02000000']) touch(join(root2, 'train', w, `${w}_1.JPEG`));
    writeMapping(root2, 'LOC_synset_mapping.txt', THOUSAND);
    for (const w of SORTED) touch(join(root2, 'val', w, 'v.JPEG'));
    const idx2 = await indexImageNet(root2);
    expect(idx2.splits.val!.map((s) => s.label)).toEqual([0, 1]);
    expect(idx2.notes[1]).toBe('val/ holds 1 image of 1 class that LOC_synset_mapping.txt lists but train/ has no folder for: they are left out, leaving 2');
    touch(join(root2, 'val', 'n09999999', 'w.JPEG'));
    await expect(indexImageNet(root2)).rejects.toThrow('val/n09999999 is not a class of train/ (2 classes)');
  });
});

describe('evaluation folders (val/ without train/)', () => {
  it('indexes a val-only folder of val/<wnid>/ by default: classes from the folders, names from the mapping', async () => {
    const root = fresh();
    touch(join(root, 'val', 'n03000000', 'a.JPEG'));
    touch(join(root, 'val', 'n01000000', 'b.JPEG'));
    writeMapping(root, 'LOC_synset_mapping.txt', THOUSAND);
    const idx = await indexImageNet(root);
    expect(Object.keys(idx.splits)).toEqual(['val']);
    expect(idx.classes.map((c) => [c.wnid, c.name])).toEqual([['n01000000', 'name of n01000000, alias'], ['n03000000', 'name of n03000000, alias']]);
    expect(idx.splits.val!.map((s) => [basename(s.path), s.label])).toEqual([['b.JPEG', 0], ['a.JPEG', 1]]);
    expect(idx.notes).toEqual([SUBSET_NOTE('val/', 2)]);
    expect((await indexImageNet(root, { splits: ['val'] })).classes.length).toBe(2);
    // Training needs train/: the caller asks for it.
    expect(() => requireSplit(idx, 'train')).toThrow(`${root} has no train/ folder: the train split is missing`);
    expect(requireSplit(idx, 'val')).toBe(idx.splits.val);
    await expect(indexImageNet(root, { splits: ['train'] })).rejects.toThrow(`${root} has no train/ folder: the train split is missing`);
  });

  it('takes the classes of a flat val/ from the mapping, else from the devkit (meta.mat), else from LOC_val_solution.csv', async () => {
    const withMapping = fresh();
    makeFlatVal(withMapping);
    writeDevkit(withMapping);
    writeMapping(withMapping, 'LOC_synset_mapping.txt', THOUSAND);
    const a = await indexImageNet(withMapping);
    expect(a.classes.length).toBe(1000);
    expect(a.splits.val!.map((s) => a.classes[s.label]!.wnid)).toEqual(VAL_WNID);
    expect(a.splits.train).toBeUndefined();

    const devkitOnly = fresh();
    makeFlatVal(devkitOnly);
    writeDevkit(devkitOnly);
    const b = await indexImageNet(devkitOnly);
    expect(b.classes.map((c) => c.wnid)).toEqual(SORTED);
    expect(b.splits.val!.map((s) => s.label)).toEqual(expectedValLabels());

    const csvOnly = fresh();
    makeFlatVal(csvOnly);
    const rows = VAL_WNID.map((w, i) => `${valName(i + 1).replace('.JPEG', '')},${w} 1 2 3 4`);
    writeFileSync(join(csvOnly, 'LOC_val_solution.csv'), ['ImageId,PredictionString', ...rows].join('\n'));
    const c = await indexImageNet(csvOnly);
    expect(c.classes.map((x) => x.wnid)).toEqual(SORTED);
    expect(c.splits.val!.map((s) => s.label)).toEqual(expectedValLabels());
  });

  it('loads a real val-only sample folder (val/<wnid>/) for evaluation', async () => {
    const root = fresh();
    await createSampleImageNet({ dir: root, classes: 2, perClass: 1, valPerClass: 2, seed: 1, longSide: 32, valLayout: 'folders' });
    rmSync(join(root, 'train'), { recursive: true });
    const idx = await indexImageNet(root);
    expect(idx.splits.val!.length).toBe(4);
    const ds = await openImageFolder({ samples: idx.splits.val!, classes: idx.classes }, { size: 32 });
    const l = createLoader(ds, { batchSize: 4, mode: 'center', crop: 24, workers: 0 });
    for await (const b of l.epoch(0)) expect(Array.from(b.labels).sort()).toEqual([0, 0, 1, 1]);
    await l.close();
  });

  it('names a folder with neither train/ nor val/', async () => {
    const root = fresh();
    touch(join(root, 'readme.txt'));
    await expect(indexImageNet(root)).rejects.toThrow(`${root} has neither a train/ nor a val/ folder: expected an ImageNet folder with train/<wnid>/ and val/`);
  });
});

describe('indexImageFolder', () => {
  it('reads any ImageFolder tree: .jpg/.jpeg/.png in any case, nested, other files ignored, classes sorted', async () => {
    const root = fresh();
    touch(join(root, 'dog', 'a.JPG'));
    touch(join(root, 'dog', 'deeper', 'b.png'));
    touch(join(root, 'dog', 'readme.txt'));
    touch(join(root, 'Cat', 'c.jpeg'));
    touch(join(root, 'Cat', 'd.PNG'));
    touch(join(root, 'Cat', 'e.gif'));
    touch(join(root, 'stray.jpg'));
    const idx = await indexImageFolder(root);
    expect(idx.classes.map((c) => c.wnid)).toEqual(['Cat', 'dog']);
    expect(idx.samples.map((s) => [s.path.slice(root.length + 1), s.label])).toEqual([
      ['Cat/c.jpeg', 0], ['Cat/d.PNG', 0], ['dog/a.JPG', 1], ['dog/deeper/b.png', 1],
    ]);
  });

  it('names a folder without class folders, and a path that is not a folder', async () => {
    const root = fresh();
    touch(join(root, 'x.jpg'));
    await expect(indexImageFolder(root)).rejects.toThrow(/has no class folders/);
    await expect(indexImageFolder(join(root, 'nope'))).rejects.toThrow(/is not a folder/);
  });
});

describe('meta.mat', () => {
  it('round-trips a compressed devkit synsets struct and skips non-leaf synsets', async () => {
    const buf = devkitMetaMat([{ id: 2, wnid: 'n0002', words: 'two' }, { id: 1, wnid: 'n0001', words: 'one, uno' }]);
    expect(buf.toString('latin1', 126, 128)).toBe('IM');
    const vars = parseMat(buf);
    expect(vars.get('synsets')).toEqual([
      { ILSVRC2012_ID: [2], WNID: 'n0002', words: 'two', num_children: [0] },
      { ILSVRC2012_ID: [1], WNID: 'n0001', words: 'one, uno', num_children: [0] },
    ]);
    const root = fresh();
    writeFileSync(join(root, 'meta.mat'), buf);
    expect(await readDevkitMeta(join(root, 'meta.mat'))).toEqual(['n0001', 'n0002']);
    writeFileSync(join(root, 'bad.mat'), readFileSync(join(root, 'meta.mat')).subarray(0, 100));
    await expect(readDevkitMeta(join(root, 'bad.mat'))).rejects.toThrow(/bad\.mat could not be read as a MAT-file/);
  });
});
