/**
 * The index: which image files exist, which class each belongs to, and the class order.
 *
 * Reads the layouts ImageNet users have (§2): train/<wnid>/*.JPEG; val/ flat with either the devkit's
 * ground-truth file (1-based ILSVRC2012_IDs, one line per val image, in devkit order) or Kaggle's
 * LOC_val_solution.csv; val/<wnid>/; Kaggle's ILSVRC/Data/CLS-LOC/ nesting; and any ImageFolder tree
 * (class folders of .jpg/.jpeg/.png in any case). Class order is the sorted wnids (folder names),
 * the standard 0..999 index of torchvision and Caffe; for a subset of ImageNet (Imagenette,
 * ImageNet-100), 0..k-1 over the sorted wnids of its k folders.
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
  /**
   * Sentences worth showing the user that are not errors: the folders are a subset of the
   * mapping's classes (how many are absent), val images of absent classes were left out.
   */
  notes: string[];
  /** Wnids the synset mapping lists that have no class folder (a subset of ImageNet), sorted. */
  absentClasses: string[];
}

export interface IndexImageNetOptions {
  /**
   * Splits to read, each of which must exist; default: train/ and val/, each when present (at least
   * one must be). Training needs train/: see requireSplit.
   */
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

/** A flat val/'s label file, read: the classes it can name, and the class of each image. */
interface ValLabels {
  file: string;
  /** Wnids the file can name: those it uses (LOC_val_solution.csv), or the devkit's list. */
  classes: string[];
  /** The wnid of a val image, and how the file says so (for messages). */
  wnidOf(path: string): { wnid: string; says: string };
}

async function readValLabels(labelsFile: string, opts: IndexImageNetOptions, root: string, sources: ImageNetIndex['sources']): Promise<ValLabels> {
  const labelName = basename(labelsFile);
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
    return {
      file: labelsFile,
      classes: [...new Set(byId.values())].sort(byCodePoint),
      wnidOf(f) {
        const id = valImageId(basename(f));
        const wnid = byId.get(id);
        if (wnid === undefined) throw new ImageNetDataError(`${show(root, f)} has no label in ${labelName}`, f);
        return { wnid, says: `labels ${id} with ${wnid}` };
      },
    };
  }
  // Devkit: line k holds the 1-based ILSVRC2012_ID of ILSVRC2012_val_<k>.JPEG.
  const order = await readDevkitOrder(opts.devkitOrder, labelsFile);
  sources.devkitOrder = order.source;
  const lines = (await readFile(labelsFile, 'utf8')).split(/\r?\n/).map((l) => l.trim());
  while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return {
    file: labelsFile,
    classes: [...order.wnids].sort(byCodePoint),
    wnidOf(f) {
      const m = /(\d+)\.[^.]+$/.exec(basename(f));
      if (!m) throw new ImageNetDataError(`${show(root, f)} has no image number in its name, so it has no label in ${labelName}`, f);
      const k = Number(m[1]);
      const line = lines[k - 1];
      if (k < 1 || line === undefined || line === '') {
        throw new ImageNetDataError(`${show(root, f)} has no label in ${labelName} (it has ${lines.length} lines)`, f);
      }
      const id = Number(line);
      if (!Number.isInteger(id) || id < 1 || id > order.wnids.length) {
        throw new ImageNetDataError(`${labelName} line ${k} holds "${line}", not a class number between 1 and ${order.wnids.length}`, labelsFile);
      }
      const wnid = order.wnids[id - 1]!;
      return { wnid, says: `line ${k} names class ${id} = ${wnid} (from ${basename(order.source)})` };
    },
  };
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

/**
 * Indexes an ImageNet folder: `root/train/<wnid>/*`, `root/val/` (flat with a label file, or
 * `val/<wnid>/`), also Kaggle's `root/ILSVRC/Data/CLS-LOC/{train,val}`. Names come from
 * LOC_synset_mapping.txt or synset_words.txt when present.
 *
 * Classes are the sorted wnids (code-point order, as the devkit and torchvision's ImageFolder):
 * of the train/ folders; without train/, of the val/<wnid>/ folders; for a flat val/ alone, of
 * the mapping, else of the label file. A mapping may list more classes than there are folders (a
 * subset such as Imagenette or ImageNet-100): the index then notes how many are absent, lists them
 * in `absentClasses`, and leaves out val images of those classes; a folder the mapping does not
 * list is an error.
 */
export async function indexImageNet(rootDir: string, opts: IndexImageNetOptions = {}): Promise<ImageNetIndex> {
  const top = resolve(rootDir);
  if (!(await isDir(top))) throw new ImageNetDataError(`${top} is not a folder: expected an ImageNet folder with train/ and val/`, top);
  let root = top;
  const kaggle = join(top, 'ILSVRC', 'Data', 'CLS-LOC');
  if (!(await isDir(join(top, 'train'))) && !(await isDir(join(top, 'val'))) && (await isDir(kaggle))) root = kaggle;
  const searchDirs = root === top ? [top, resolve(top, '..')] : [top, root];
  const sources: ImageNetIndex['sources'] = {};
  const notes: string[] = [];

  const wanted: SplitName[] = opts.splits ?? ['train', 'val'];
  for (const s of opts.splits ?? []) {
    if (!(await isDir(join(root, s)))) {
      throw new ImageNetDataError(`${root} has no ${s}/ folder: the ${s} split is missing`, join(root, s));
    }
  }
  const valDir = join(root, 'val');
  const hasTrain = wanted.includes('train') && (await isDir(join(root, 'train')));
  const hasVal = wanted.includes('val') && (await isDir(valDir));
  if (!hasTrain && !hasVal) {
    throw new ImageNetDataError(`${root} has neither a train/ nor a val/ folder: expected an ImageNet folder with train/<wnid>/ and val/`, root);
  }

  const mappingFile = opts.synsetMapping ?? (await findFirst(searchDirs, ['LOC_synset_mapping.txt', 'synset_words.txt']));
  const mapping = mappingFile ? await readSynsetMapping(mappingFile) : undefined;
  const mappingName = mappingFile ? basename(mappingFile) : '';
  if (mappingFile) sources.synsets = mappingFile;

  const splits: ImageNetIndex['splits'] = {};
  let classes: ClassInfo[] | undefined;
  let classSource = '';
  if (hasTrain) {
    const idx = await indexImageFolder(join(root, 'train'), { displayRoot: root });
    classes = idx.classes;
    classSource = 'train/';
    splits.train = idx.samples;
  }

  let valEntries: { files: string[]; folders: string[] } | undefined;
  let valLabels: ValLabels | undefined;
  if (hasVal) {
    const entries = await readdir(valDir, { withFileTypes: true });
    valEntries = {
      files: entries.filter((e) => !e.isDirectory() && isImageFile(e.name)).map((e) => join(valDir, e.name)).sort(byCodePoint),
      folders: entries.filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => e.name).sort(byCodePoint),
    };
    if (valEntries.files.length === 0 && valEntries.folders.length === 0) {
      throw new ImageNetDataError(`${show(root, valDir)} holds neither images nor class folders: the val split is empty`, valDir);
    }
    if (valEntries.files.length > 0) {
      const labelsFile = opts.valLabels ?? (await findFirst(searchDirs, ['LOC_val_solution.csv'])) ?? (await findGroundTruth(searchDirs));
      if (labelsFile === undefined) {
        throw new ImageNetDataError(
          `${show(root, valDir)} is flat (${valEntries.files.length} images, no class folders) but no label file was found: expected LOC_val_solution.csv or the devkit's ILSVRC2012_validation_ground_truth.txt, or pass valLabels`,
          valDir,
        );
      }
      sources.valLabels = labelsFile;
      valLabels = await readValLabels(labelsFile, opts, root, sources);
    }
  }

  if (classes === undefined) {
    if (!valLabels) {
      classes = valEntries!.folders.map((w, i) => ({ index: i, wnid: w, name: w }));
      classSource = 'val/';
    } else {
      const wnids = mapping ? [...mapping.keys()].sort(byCodePoint) : valLabels.classes;
      classes = wnids.map((w, i) => ({ index: i, wnid: w, name: w }));
      classSource = mapping ? mappingName : basename(valLabels.file);
    }
  }

  // Class folders against the mapping: each folder must be listed; listed classes may be absent.
  let absentClasses: string[] = [];
  if (mapping && (classSource === 'train/' || classSource === 'val/')) {
    const unlisted = classes.map((c) => c.wnid).filter((w) => !mapping.has(w));
    if (unlisted.length > 0) {
      const more = unlisted.length > 1 ? ` (${plural(unlisted.length - 1, 'more unlisted folder')}: ${unlisted.slice(1, 6).join(', ')}${unlisted.length > 6 ? ', ...' : ''})` : '';
      throw new ImageNetDataError(
        `${show(root, join(root, classSource, unlisted[0]!))} is a class folder that ${mappingName} does not list (it lists ${mapping.size} classes): a class must be one of the mapping's${more}`,
        join(root, classSource, unlisted[0]!),
      );
    }
    const present = new Set(classes.map((c) => c.wnid));
    absentClasses = [...mapping.keys()].filter((w) => !present.has(w)).sort(byCodePoint);
    if (absentClasses.length > 0) {
      const k = classes.length;
      notes.push(
        `${mappingName} lists ${mapping.size} classes and ${classSource} has folders for ${k} of them (a subset such as Imagenette or ImageNet-100): ` +
          `the ${absentClasses.length} others are absent, and the class indices 0..${k - 1} follow the sorted wnids of the ${k} folders`,
      );
    }
  }
  if (mapping) for (const c of classes) c.name = mapping.get(c.wnid) ?? c.wnid;
  const classIndex = new Map(classes.map((c) => [c.wnid, c.index] as const));
  const absent = new Set(absentClasses);
  // Val images of classes the mapping lists but the subset lacks are left out (and counted).
  const left = { images: 0, classes: new Set<string>() };

  if (valEntries && valLabels) {
    const labelName = basename(valLabels.file);
    const samples: Sample[] = [];
    for (const f of valEntries.files) {
      const { wnid, says } = valLabels.wnidOf(f);
      const label = classIndex.get(wnid);
      if (label !== undefined) {
        samples.push({ path: f, label });
      } else if (absent.has(wnid)) {
        left.images++;
        left.classes.add(wnid);
      } else {
        throw new ImageNetDataError(`${labelName} ${says}, which is not one of the ${classIndex.size} classes`, valLabels.file);
      }
    }
    splits.val = samples;
  } else if (valEntries) {
    const idx = await indexImageFolder(valDir, { displayRoot: root });
    const remap = idx.classes.map((c) => {
      const label = classIndex.get(c.wnid);
      if (label === undefined && !absent.has(c.wnid)) {
        throw new ImageNetDataError(`val/${c.wnid} is not a class of ${classSource} (${classes!.length} classes)`, join(valDir, c.wnid));
      }
      return label;
    });
    splits.val = [];
    for (const s of idx.samples) {
      const label = remap[s.label];
      if (label !== undefined) {
        splits.val.push({ path: s.path, label });
      } else {
        left.images++;
        left.classes.add(idx.classes[s.label]!.wnid);
      }
    }
  }
  if (left.images > 0) {
    notes.push(
      `val/ holds ${plural(left.images, 'image')} of ${plural(left.classes.size, 'class', 'classes')} that ${mappingName} lists but ${classSource} has no folder for: ` +
        `they are left out, leaving ${splits.val!.length}`,
    );
  }
  return { root, classes, splits, sources, notes, absentClasses };
}

/**
 * The samples of a split, or an ImageNetDataError naming the missing folder: for a caller that
 * indexed a folder with every split optional (the default) and needs one, e.g. train/ to train.
 */
export function requireSplit(index: ImageNetIndex, split: SplitName): Sample[] {
  const s = index.splits[split];
  if (!s) throw new ImageNetDataError(`${index.root} has no ${split}/ folder: the ${split} split is missing`, join(index.root, split));
  return s;
}
