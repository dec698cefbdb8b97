/**
 * The index: which image files exist, which class each belongs to, and the class order.
 *
 * Reads the layouts ImageNet users have (§2): train/<wnid>/*.JPEG; val/ flat with either the devkit's
 * ground-truth file (1-based ILSVRC2012_IDs, one line per val image, in devkit order) or Kaggle's
 * LOC_val_solution.csv; val/<wnid>/; Kaggle's ILSVRC/Data/CLS-LOC/ nesting; and any ImageFolder tree
 * (class folders of .jpg/.jpeg/.png in any case). Class order is the sorted wnids (folder names),
 * the standard 0..999 index of torchvision and Caffe.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, join, relative, resolve } from 'node:path';
import { ImageNetDataError } from './errors.js';
import { readDevkitMeta } from './matfile.js';

/** One image and its class index (0-based, in sorted-wnid order). */
export interface Sample {
  path: string;
  label: number;
}

export interface ClassInfo {
  index: number;
  /** The folder name: a WordNet id such as n01440764 for ImageNet. */
  wnid: string;
  /** Human-readable name from LOC_synset_mapping.txt / synset_words.txt, or the wnid. */
  name: string;
}

export interface ImageFolderIndex {
  root: string;
  classes: ClassInfo[];
  samples: Sample[];
}

export type SplitName = 'train' | 'val';

export interface ImageNetIndex {
  /** The folder that holds train/ and val/. */
  root: string;
  classes: ClassInfo[];
  splits: Partial<Record<SplitName, Sample[]>>;
  /** Files that supplied names and labels, for reports. */
  sources: { synsets?: string; valLabels?: string; devkitOrder?: string };
}

export interface IndexImageNetOptions {
  /** Splits that must exist; default: train required, val read when present. */
  splits?: SplitName[];
  /** LOC_synset_mapping.txt or synset_words.txt; found next to train/ (or above it) by default. */
  synsetMapping?: string;
  /** LOC_val_solution.csv or the devkit's ILSVRC2012_validation_ground_truth.txt, for a flat val/. */
  valLabels?: string;
  /**
   * The devkit's class order, needed to read a ground-truth file: the devkit's meta.mat, a text file
   * of wnids one per line in ILSVRC2012_ID order, or the list itself. Found beside the ground-truth
   * file (meta.mat or synsets.txt) by default.
   */
  devkitOrder?: string | string[];
}

const IMAGE_EXT = /\.(jpe?g|png)$/i;

export function isImageFile(name: string): boolean {
  return IMAGE_EXT.test(name);
}

function byCodePoint(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

async function isDir(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory();
  } catch {
    return false;
  }
}

async function isFile(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isFile();
  } catch {
    return false;
  }
}

async function listImagesRecursive(dir: string, out: string[]): Promise<void> {
  const entries = await readdir(dir, { withFileTypes: true });
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) await listImagesRecursive(p, out);
    else if ((e.isFile() || e.isSymbolicLink()) && isImageFile(e.name)) out.push(p);
  }
}

async function classFolders(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  return entries
    .filter((e) => e.isDirectory() || (e.isSymbolicLink() && !isImageFile(e.name)))
    .map((e) => e.name)
    .filter((n) => !n.startsWith('.'))
    .sort(byCodePoint);
}

function show(root: string, p: string): string {
  const r = relative(root, p);
  return r === '' ? p : r.startsWith('..') ? p : r;
}

/**
 * Indexes an ImageFolder tree: `dir/<class>/**\/*.{jpg,jpeg,png}`; classes are the folder names in
 * sorted order. An empty class folder is an error, not a silently shifted class index.
 */
export async function indexImageFolder(dir: string, opts: { displayRoot?: string } = {}): Promise<ImageFolderIndex> {
  const root = resolve(dir);
  const disp = opts.displayRoot ?? resolve(root, '..');
  if (!(await isDir(root))) {
    throw new ImageNetDataError(`${root} is not a folder: expected an image folder with one sub-folder per class`, root);
  }
  const names = await classFolders(root);
  if (names.length === 0) {
    throw new ImageNetDataError(`${show(disp, root)} has no class folders: expected ${show(disp, root)}/<class>/*.jpg`, root);
  }
  const classes: ClassInfo[] = [];
  const samples: Sample[] = [];
  for (let i = 0; i < names.length; i++) {
    const name = names[i]!;
    const files: string[] = [];
    await listImagesRecursive(join(root, name), files);
    if (files.length === 0) {
      throw new ImageNetDataError(
        `Class folder ${show(disp, join(root, name))} holds no images (.jpg, .jpeg or .png, any case): an empty class would shift every later class index`,
        join(root, name),
      );
    }
    files.sort(byCodePoint);
    classes.push({ index: i, wnid: name, name });
    for (const f of files) samples.push({ path: f, label: i });
  }
  return { root, classes, samples };
}

/** Reads "n01440764 tench, Tinca tinca" lines (LOC_synset_mapping.txt, synset_words.txt). */
export async function readSynsetMapping(file: string): Promise<Map<string, string>> {
  const text = await readFile(file, 'utf8');
  const map = new Map<string, string>();
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '') continue;
    const m = /^(\S+)(?:\s+(.*))?$/.exec(line)!;
    const wnid = m[1]!;
    if (map.has(wnid)) {
      throw new ImageNetDataError(`${basename(file)} lists ${wnid} twice (line ${i + 1})`, file);
    }
    map.set(wnid, (m[2] ?? wnid).trim());
  }
  if (map.size === 0) throw new ImageNetDataError(`${basename(file)} lists no classes`, file);
  return map;
}

async function findFirst(dirs: string[], names: string[]): Promise<string | undefined> {
  for (const d of dirs) for (const n of names) if (await isFile(join(d, n))) return join(d, n);
  return undefined;
}

async function findGroundTruth(dirs: string[]): Promise<string | undefined> {
  const candidates: string[] = [];
  for (const d of dirs) {
    candidates.push(d, join(d, 'data'));
    if (await isDir(d)) {
      for (const e of await readdir(d, { withFileTypes: true })) {
        if (e.isDirectory() && /devkit/i.test(e.name)) candidates.push(join(d, e.name), join(d, e.name, 'data'));
      }
    }
  }
  for (const c of candidates) {
    if (!(await isDir(c))) continue;
    const hit = (await readdir(c)).filter((n) => /validation_ground_truth\.txt$/i.test(n)).sort(byCodePoint)[0];
    if (hit) return join(c, hit);
  }
  return undefined;
}

async function readDevkitOrder(spec: string | string[] | undefined, groundTruth: string): Promise<{ wnids: string[]; source: string }> {
  if (Array.isArray(spec)) return { wnids: spec, source: 'the devkitOrder option' };
  let file = spec;
  if (file === undefined) {
    const dir = resolve(groundTruth, '..');
    file = await findFirst([dir], ['meta.mat', 'synsets.txt', 'ILSVRC2012_synsets.txt']);
    if (file === undefined) {
      throw new ImageNetDataError(
        `${basename(groundTruth)} holds class numbers in devkit order, but no meta.mat or synsets.txt (wnids in ILSVRC2012_ID order) was found beside it: pass devkitOrder`,
        groundTruth,
      );
    }
  }
  if (/\.mat$/i.test(file)) return { wnids: await readDevkitMeta(file), source: file };
  const lines = (await readFile(file, 'utf8')).split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '');
  return { wnids: lines.map((l) => l.split(/\s+/)[0]!), source: file };
}

function valImageId(name: string): string {
  return name.replace(/\.[^.]+$/, '');
}

async function labelFlatVal(
  valDir: string,
  files: string[],
  classIndex: Map<string, number>,
  labelsFile: string,
  opts: IndexImageNetOptions,
  root: string,
  sources: ImageNetIndex['sources'],
): Promise<Sample[]> {
  const labelName = basename(labelsFile);
  const samples: Sample[] = [];
  if (/\.csv$/i.test(labelsFile)) {
    // Kaggle: "ImageId,PredictionString" then "ILSVRC2012_val_00008726,n02119789 255 142 454 329 ...".
    const lines = (await readFile(labelsFile, 'utf8')).split(/\r?\n/);
    const byId = new Map<string, string>();
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i]!.trim();
      if (line === '') continue;
      const comma = line.indexOf(',');
      if (comma < 0) throw new ImageNetDataError(`${labelName} line ${i + 1} has no comma: "${line.slice(0, 60)}"`, labelsFile);
      byId.set(line.slice(0, comma), line.slice(comma + 1).trim().split(/\s+/)[0] ?? '');
    }
    for (const f of files) {
      const id = valImageId(basename(f));
      const wnid = byId.get(id);
      if (wnid === undefined) throw new ImageNetDataError(`${show(root, f)} has no label in ${labelName}`, f);
      const label = classIndex.get(wnid);
      if (label === undefined) {
        throw new ImageNetDataError(`${labelName} labels ${id} with ${wnid}, which is not one of the ${classIndex.size} classes`, labelsFile);
      }
      samples.push({ path: f, label });
    }
    return samples;
  }
  // Devkit: line k holds the 1-based ILSVRC2012_ID of ILSVRC2012_val_<k>.JPEG.
  const order = await readDevkitOrder(opts.devkitOrder, labelsFile);
  sources.devkitOrder = order.source;
  const lines = (await readFile(labelsFile, 'utf8')).split(/\r?\n/).map((l) => l.trim());
  while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  for (const f of files) {
    const m = /(\d+)\.[^.]+$/.exec(basename(f));
    if (!m) throw new ImageNetDataError(`${show(root, f)} has no image number in its name, so it has no label in ${labelName}`, f);
    const k = Number(m[1]);
    const line = lines[k - 1];
    if (k < 1 || line === undefined || line === '') {
      throw new ImageNetDataError(`${show(root, f)} has no label in ${labelName} (it has ${lines.length} lines)`, f);
    }
    const id = Number(line);
    if (!Number.isInteger(id) || id < 1 || id > order.wnids.length) {
      throw new ImageNetDataError(
        `${labelName} line ${k} holds "${line}", not a class number between 1 and ${order.wnids.length}`,
        labelsFile,
      );
    }
    const wnid = order.wnids[id - 1]!;
    const label = classIndex.get(wnid);
    if (label === undefined) {
      throw new ImageNetDataError(
        `${labelName} line ${k} names class ${id} = ${wnid} (from ${basename(order.source)}), which is not one of the ${classIndex.size} classes`,
        labelsFile,
      );
    }
    samples.push({ path: f, label });
  }
  return samples;
}

/**
 * Indexes an ImageNet folder: `root/train/<wnid>/*`, `root/val/` (flat with a label file, or
 * `val/<wnid>/`), also Kaggle's `root/ILSVRC/Data/CLS-LOC/{train,val}`. Names come from
 * LOC_synset_mapping.txt or synset_words.txt when present.
 */
export async function indexImageNet(rootDir: string, opts: IndexImageNetOptions = {}): Promise<ImageNetIndex> {
  const top = resolve(rootDir);
  if (!(await isDir(top))) throw new ImageNetDataError(`${top} is not a folder: expected an ImageNet folder with train/ and val/`, top);
  let root = top;
  const kaggle = join(top, 'ILSVRC', 'Data', 'CLS-LOC');
  if (!(await isDir(join(top, 'train'))) && !(await isDir(join(top, 'val'))) && (await isDir(kaggle))) root = kaggle;
  const searchDirs = root === top ? [top, resolve(top, '..')] : [top, root];
  const sources: ImageNetIndex['sources'] = {};

  const required = new Set<SplitName>(opts.splits ?? ['train']);
  const wanted: SplitName[] = opts.splits ?? ['train', 'val'];
  for (const s of required) {
    if (!(await isDir(join(root, s)))) {
      throw new ImageNetDataError(`${root} has no ${s}/ folder: the ${s} split is missing`, join(root, s));
    }
  }

  const mappingFile = opts.synsetMapping ?? (await findFirst(searchDirs, ['LOC_synset_mapping.txt', 'synset_words.txt']));
  const mapping = mappingFile ? await readSynsetMapping(mappingFile) : undefined;
  if (mappingFile) sources.synsets = mappingFile;

  const splits: ImageNetIndex['splits'] = {};
  let classes: ClassInfo[] | undefined;
  let classSource = '';
  const hasTrain = wanted.includes('train') && (await isDir(join(root, 'train')));
  if (hasTrain) {
    const idx = await indexImageFolder(join(root, 'train'), { displayRoot: root });
    classes = idx.classes;
    classSource = 'train/';
    splits.train = idx.samples;
  }

  const valDir = join(root, 'val');
  const hasVal = wanted.includes('val') && (await isDir(valDir));
  let valEntries: { files: string[]; folders: string[] } | undefined;
  if (hasVal) {
    const entries = await readdir(valDir, { withFileTypes: true });
    valEntries = {
      files: entries.filter((e) => !e.isDirectory() && isImageFile(e.name)).map((e) => join(valDir, e.name)).sort(byCodePoint),
      folders: entries.filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => e.name).sort(byCodePoint),
    };
    if (valEntries.files.length === 0 && valEntries.folders.length === 0) {
      throw new ImageNetDataError(`${show(root, valDir)} holds neither images nor class folders: the val split is empty`, valDir);
    }
  }

  if (classes === undefined) {
    if (valEntries && valEntries.files.length === 0) {
      classes = valEntries.folders.map((w, i) => ({ index: i, wnid: w, name: w }));
      classSource = 'val/';
    } else if (mapping) {
      classes = [...mapping.keys()].sort(byCodePoint).map((w, i) => ({ index: i, wnid: w, name: w }));
      classSource = basename(mappingFile!);
    } else {
      throw new ImageNetDataError(`${root} has no train/ class folders and no LOC_synset_mapping.txt or synset_words.txt to give the class list`, root);
    }
  }

  if (mapping && classSource !== basename(mappingFile!)) {
    const listed = mapping;
    const folderSet = new Set(classes.map((c) => c.wnid));
    const missing = [...listed.keys()].filter((w) => !folderSet.has(w)).sort(byCodePoint);
    const extra = classes.map((c) => c.wnid).filter((w) => !listed.has(w));
    if (missing.length > 0 || extra.length > 0) {
      const parts: string[] = [];
      if (extra.length > 0) parts.push(`${show(root, join(root, classSource, extra[0]!))} is not listed in ${basename(mappingFile!)}`);
      if (missing.length > 0) parts.push(`${basename(mappingFile!)} lists ${missing[0]} but ${classSource} has no folder for it`);
      throw new ImageNetDataError(
        `${basename(mappingFile!)} disagrees with the folders (${listed.size} classes listed, ${classes.length} folders in ${classSource}): ${parts.join('; ')}` +
          (missing.length + extra.length > 2 ? ` (${missing.length + extra.length} differences in all)` : ''),
        mappingFile,
      );
    }
  }
  if (mapping) for (const c of classes) c.name = mapping.get(c.wnid) ?? c.wnid;
  const classIndex = new Map(classes.map((c) => [c.wnid, c.index] as const));

  if (hasVal && valEntries) {
    if (valEntries.files.length > 0) {
      let labelsFile = opts.valLabels;
      if (labelsFile === undefined) {
        labelsFile = (await findFirst(searchDirs, ['LOC_val_solution.csv'])) ?? (await findGroundTruth(searchDirs));
      }
      if (labelsFile === undefined) {
        throw new ImageNetDataError(
          `${show(root, valDir)} is flat (${valEntries.files.length} images, no class folders) but no label file was found: expected LOC_val_solution.csv or the devkit's ILSVRC2012_validation_ground_truth.txt, or pass valLabels`,
          valDir,
        );
      }
      sources.valLabels = labelsFile;
      splits.val = await labelFlatVal(valDir, valEntries.files, classIndex, labelsFile, opts, root, sources);
    } else {
      const idx = await indexImageFolder(valDir, { displayRoot: root });
      const remap = idx.classes.map((c) => {
        const label = classIndex.get(c.wnid);
        if (label === undefined) {
          throw new ImageNetDataError(`val/${c.wnid} is not a class of ${classSource} (${classes!.length} classes)`, join(valDir, c.wnid));
        }
        return label;
      });
      splits.val = idx.samples.map((s) => ({ path: s.path, label: remap[s.label]! }));
    }
  }
  return { root, classes, splits, sources };
}
