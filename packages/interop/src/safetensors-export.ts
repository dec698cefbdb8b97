/**
 * The bare weights as safetensors, by their PyTorch names and in PyTorch's layouts (OIHW, [out, in]),
 * which `safetensors.torch.load_file` reads and `load_state_dict(strict=True)` accepts for the
 * matching PyTorch module:
 * - torchvision: torchvision.models.alexnet(num_classes=classes);
 * - paper: the Sequential of the README (conv1 ... fc8; conv2, conv4, conv5 are Conv2d(groups=2), whose
 *   weight [out, in / 2, k, k] holds each tower's kernels in its half of the rows, §3.2);
 * - paper-half: the same names, one tower, no groups.
 */
import { saveSafetensors, type HostTensor } from '@alexnet/tensor';
import { InteropError } from './errors.js';
import { resolveSource, type ModelSource } from './model.js';

export interface SafetensorsExportResult {
  file: string;
  tensors: number;
  parameters: number;
  summary: string;
}

/** Writes the weights of `source` (a checkpoint as loadCheckpoint returns it, or { model, weights }) to `out`. */
export async function exportSafetensors(source: ModelSource, out: string, opts: { from?: string } = {}): Promise<SafetensorsExportResult> {
  const r = resolveSource(source, opts.from ?? 'the checkpoint');
  const tensors: Record<string, HostTensor> = {};
  for (const [k, t] of r.weights) tensors[k] = t.dtype === 'float32' ? t : { dtype: 'float32', shape: t.shape, data: Float32Array.from(t.data) };
  const metadata: Record<string, string> = { format: 'pt', 'alexnet.model': JSON.stringify(r.config) };
  try {
    await saveSafetensors(out, tensors, metadata);
  } catch (e) {
    throw new InteropError(`cannot write ${out} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, out);
  }
  const parameters = Object.values(tensors).reduce((s, t) => s + t.data.length, 0);
  return {
    file: out, tensors: Object.keys(tensors).length, parameters,
    summary: `${out}: ${Object.keys(tensors).length} tensors (${parameters.toLocaleString('en-US')} parameters) of the ${r.description.name} model by their PyTorch names, float32`,
  };
}
