/**
 * The recipe of a run, said once at its start: what data, which mean (§2), whether PCA lighting is on
 * (§4.1), the crop, the LRN convention (§3.3), the initialisation and optimizer (§5), the schedule,
 * the batch, where the model runs (§3.2) and in which precision. Printed in a few lines, written as the first line of
 * metrics.jsonl and kept in the checkpoint, so a number can always be traced to how it was made.
 * Wherever a default of the paper cannot apply, the recipe says what is done instead.
 */

export interface Recipe {
  data: {
    kind: 'shards' | 'folder';
    root: string;
    classes: number;
    trainImages: number;
    /** Where validation comes from: the data set's own split, a held-back slice of training, or none. */
    validation: { kind: 'split' | 'held-back' | 'none'; images: number; fraction?: number };
  };
  /** §2: the mean image of the training set, or per-channel means; where the statistics come from. */
  mean: { kind: 'image' | 'channel' | 'none'; from: string };
  /** §4.1 PCA lighting. */
  lighting: { on: boolean; std?: number; scale?: string; why?: string };
  crop: number;
  flip: boolean;
  model: {
    name: string;
    /** §3.3: 'paper' (k + α Σ a²) or 'pytorch' (k + α/n Σ a²); whether the sum spans both towers; null: no LRN. */
    lrn: { convention: 'paper' | 'pytorch'; acrossTowers: boolean } | null;
    /** §3.4: the max-pool window and stride (3/2: overlapping). */
    pool: { size: number; stride: number } | null;
    /** §4.2 dropout in the hidden fully-connected layers. */
    dropout: boolean;
    /** §3.1: ReLU (the paper's) or tanh. */
    activation: 'relu' | 'tanh';
    weightStd: number;
    positiveBias: number;
  };
  optimizer: { form: 'paper' | 'pytorch'; lr: number; momentum: number; weightDecay: number; biasDecay: boolean };
  schedule: { kind: 'plateau'; watch: 'validation top-1 error' | 'training loss'; factor: number; patience: number; maxReductions: number };
  batch: number;
  epochs: number;
  devices: string[];
  placement: 'one device' | 'two towers';
  seed: number;
  /**
   * The GEMMs' arithmetic (--precision): fp32, or bf16 inputs with fp32 accumulation on the CPU
   * engine (master weights fp32). Absent in recipes written before the option: fp32.
   */
  precision?: 'fp32' | 'bf16';
}

/** The recipe as the few lines printed at the start of a run. */
export function formatRecipe(r: Recipe): string[] {
  const v = r.data.validation;
  const val = v.kind === 'split' ? `${v.images} validation images` : v.kind === 'held-back'
    ? `${v.images} validation images held back from training (--val-fraction ${v.fraction})` : 'no validation images';
  const lrn = r.model.lrn ? `LRN ${r.model.lrn.convention} convention${r.model.lrn.acrossTowers ? ', across both towers' : r.placement === 'two towers' || r.model.name === 'paper' ? ', within each tower' : ''} (§3.3)` : 'no LRN';
  return [
    `data: ${r.data.kind === 'shards' ? 'prepared shards' : 'raw image folder'} ${r.data.root}: ${r.data.trainImages} training images of ${r.data.classes} classes, ${val}`,
    `preprocessing: ${r.mean.kind === 'none' ? `no mean subtracted: ${r.mean.from}` : `${r.mean.kind === 'image' ? 'mean image' : 'channel means'} subtracted (${r.mean.from})`}; ` +
      `PCA lighting ${r.lighting.on ? `on (std ${r.lighting.std}, ${r.lighting.scale})` : `off${r.lighting.why ? ` (${r.lighting.why})` : ''}`}; ` +
      `${r.crop}x${r.crop} crops${r.flip ? ' and reflections' : ''} (§4.1)`,
    `model: ${r.model.name}, ${lrn}${r.model.pool ? `, max-pool ${r.model.pool.size}/${r.model.pool.stride}${r.model.pool.size > r.model.pool.stride ? ' (overlapping, §3.4)' : ' (not overlapping, §3.4)'}` : ''}` +
      `, ${r.model.dropout ? 'dropout 0.5 (§4.2)' : 'no dropout'}${r.model.activation === 'tanh' ? ', tanh neurons (§3.1)' : ''}; weights ~ N(0, ${r.model.weightStd}²), positive biases ${r.model.positiveBias} (§5)`,
    `optimizer: SGD (${r.optimizer.form} form), lr ${r.optimizer.lr}, momentum ${r.optimizer.momentum}, weight decay ${r.optimizer.weightDecay}` +
      `${r.optimizer.biasDecay ? ' on weights and biases' : ' on weights only (biases exempt)'}, batch ${r.batch}`,
    `schedule: lr / ${Math.round(1 / r.schedule.factor)} when the ${r.schedule.watch} stops improving for ${r.schedule.patience} epoch(s), at most ${r.schedule.maxReductions} times (§5); ${r.epochs} epochs; seed ${r.seed}`,
    `devices: ${r.devices.join(', ')} (${r.placement === 'two towers' ? 'one tower per device, §3.2' : 'one device'})`,
    `precision: ${r.precision === 'bf16' ? 'bf16 GEMM inputs (dense layers and im2col convolutions), fp32 accumulation, fp32 master weights and activations' : 'fp32 throughout'}`,
  ];
}
