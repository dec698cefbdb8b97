import { describe, it, expect, beforeAll } from 'vitest';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync, renameSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, basename } from 'node:path';
import { indexImageNet, indexImageFolder } from './layout.js';
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
    await expect(indexImageNet(join(root, 'train', 'n01000000'))).rejects.toThrow(/has no train\/ folder: the train split is missing/);
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
      'LOC_synset_mapping.txt disagrees with the folders (3 classes listed, 3 folders in train/): train/n03000000 is not listed in LOC_synset_mapping.txt; LOC_synset_mapping.txt lists n04000000 but train/ has no folder for it',
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
