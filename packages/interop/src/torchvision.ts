/**
 * torchvision's AlexNet (torchvision.models.alexnet, the one-tower variant of the paper's net: 64-192-
 * 384-256-256 kernels, no LRN) from the file torch.save(model.state_dict(), f) writes, as the plain
 * parts of an @alexnet checkpoint: the model record, the weights under torchvision's own names, the
 * 1000 ILSVRC-2012 classes in torchvision's output order, and torchvision's preprocessing.
 */
import { torchvisionDescription } from '@alexnet/layers';
import type { HostTensor } from '@alexnet/tensor';
import { ilsvrc2012Classes, type ClassEntry } from './classes.js';
import { InteropError } from './errors.js';
import { nonFinite, weightProblems } from './model.js';
import { checkPreprocessing, TORCHVISION_PREPROCESSING, type Preprocessing } from './preprocess.js';
import { readTorchStateDict, type TorchDtype } from './torch-file.js';

export interface ImportOptions {
  /**
   * The classes of the file's last layer, in its output order. Default: the 1000 ILSVRC-2012 classes
   * (torchvision's ImageNet weights). A fine-tuned model with K outputs needs its own K classes.
   */
  classes?: readonly ClassEntry[];
  /** The preprocessing its weights expect (default: torchvision's ImageNet transform). */
  preprocessing?: Preprocessing;
}

export interface ImportedModel {
  /** The checkpoint's `model` record (createModel's arguments). */
  model: { name: 'torchvision'; classes: number; inputSize: number };
  /** The weights by torchvision's names (features.0.weight ... classifier.6.bias), float32. */
  weights: Map<string, HostTensor>;
  /**
   * The checkpoint's `data` record. `mean` is 'none' because the normalisation is in `preprocessing`
   * (scale, mean and std), not a mean image; size = preprocessing.resize, crop = the model's input.
   */
  data: { classes: ClassEntry[]; mean: 'none'; crop: number; size: number; preprocessing: Preprocessing };
  /** Where the weights came from, for the checkpoint's `trainer` record or a log line. */
  source: { file: string; format: 'zip' | 'legacy'; dtypes: TorchDtype[]; parameters: number; renamed?: string };
  /** One line for the user. */
  summary: string;
}

/** DataParallel's prefixes: "module." on every name, or torchvision's old "features.module." (its ImageNet training script wraps features). */
function undoDataParallel(t: Map<string, HostTensor>): { tensors: Map<string, HostTensor>; renamed?: string } {
  const keys = [...t.keys()];
  if (keys.length && keys.every((k) => k.startsWith('module.'))) {
    return { tensors: new Map(keys.map((k) => [k.slice(7), t.get(k)!])), renamed: 'removed the "module." prefix of torch.nn.DataParallel' };
  }
  if (keys.some((k) => k.startsWith('features.module.'))) {
    return { tensors: new Map(keys.map((k) => [k.replace(/^features\.module\./, 'features.'), t.get(k)!])), renamed: 'renamed features.module.* to features.* (torch.nn.DataParallel)' };
  }
  return { tensors: t };
}

/**
 * Reads torchvision's AlexNet state dict from a torch.save file (zip or legacy format) and returns it
 * as the parts of a checkpoint. A file that is not such a state dict is refused with one sentence
 * listing what is missing, unexpected or mis-shaped.
 */
export async function importTorchvision(file: string, opts: ImportOptions = {}): Promise<ImportedModel> {
  const classes = [...(opts.classes ?? ilsvrc2012Classes())].map((c) => ({ wnid: c.wnid, name: c.name }));
  const given = opts.preprocessing ?? TORCHVISION_PREPROCESSING;
  const preprocessing: Preprocessing = { ...given, mean: [...given.mean], std: [...given.std] };
  if (classes.length < 1) throw new InteropError('importTorchvision needs at least one class');
  const bad = checkPreprocessing(preprocessing);
  if (bad) throw new InteropError(`importTorchvision: ${bad}`);
  const sd = await readTorchStateDict(file);
  const { tensors, renamed } = undoDataParallel(sd.tensors);
  const inputSize = preprocessing.crop;
  const description = torchvisionDescription({ classes: classes.length, inputSize });
  const problems = weightProblems(description, tensors);
  if (problems) {
    const out = tensors.get('classifier.6.weight')?.shape[0];
    const hint = out !== undefined && out !== classes.length && tensors.has('features.0.weight')
      ? ` (its last layer has ${out} outputs: to import a model fine-tuned for ${out} classes, pass its ${out} classes)` : '';
    throw new InteropError(`${file} is not a state dict of torchvision's AlexNet (torchvision.models.alexnet)${sd.path ? ` under "${sd.path}"` : ''}: ${problems}${hint}`, file);
  }
  const infinite = nonFinite(tensors);
  if (infinite.length) throw new InteropError(`${file} holds NaN or infinite weights in ${infinite.join(', ')}`, file);
  const weights = new Map<string, HostTensor>();
  for (const [k, t] of tensors) weights.set(k, t.dtype === 'float32' ? t : { dtype: 'float32', shape: t.shape, data: Float32Array.from(t.data) });
  const dtypes = [...new Set(sd.dtypes.values())];
  const parameters = [...weights.values()].reduce((s, t) => s + t.data.length, 0);
  const p = preprocessing;
  const summary = `${file}: torchvision's AlexNet (torch.save ${sd.format} format, ${dtypes.join('/')}${dtypes.some((d) => d !== 'float32') ? ' read as float32' : ''}), ` +
    `${parameters.toLocaleString('en-US')} parameters, ${classes.length} classes; inputs ${inputSize}x${inputSize} made as torchvision makes them ` +
    `(shorter side ${p.resize}, centre crop ${p.crop}, RGB / 255 minus mean [${p.mean.join(', ')}] divided by std [${p.std.join(', ')}])` + (renamed ? `; ${renamed}` : '');
  return {
    model: { name: 'torchvision', classes: classes.length, inputSize },
    weights,
    data: { classes, mean: 'none', crop: inputSize, size: p.resize, preprocessing },
    source: { file, format: sd.format, dtypes, parameters, ...(renamed ? { renamed } : {}) },
    summary,
  };
}
