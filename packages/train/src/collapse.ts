/**
 * The collapse check. With §5's positive biases of 1 on a small data set the net can, after an early
 * loss spike, fall into predicting one constant class: every fc7 ReLU dead, the loss pinned at
 * ln(classes). Caffe's AlexNet uses 0.1 for those biases for this reason. Once two epochs in a row
 * sit at chance, the check looks for dead ReLU layers on a few training images, and warns when one
 * is dead, or after three such epochs.
 */
import { reluZeroFractions, type Network } from '@alexnet/layers';
import { tensor, tidy, type Device } from '@alexnet/tensor';
import type { EpochRecord } from './visualize.js';

/** A few training images (copied) for the dead-ReLU check. */
export interface Probe { images: Float32Array; shape: [number, number, number, number] }

/** The warning when `history` looks collapsed, else undefined. */
export function collapseWarning(history: readonly EpochRecord[], classes: number, model: Network, probe: Probe | null, device: Device): string | undefined {
  const chance = Math.log(classes);
  const pinned = (h: EpochRecord) => Math.abs(h.trainLoss - chance) < 0.01 * chance && h.trainTop1Error! > 1 - 1.5 / classes;
  const recent = history.slice(-3);
  if (!probe || recent.length < 2 || !recent.slice(-2).every(pinned)) return undefined;
  const fractions = tidy(() => reluZeroFractions(model, tensor(probe.images, probe.shape, { device })));
  const dead = Object.entries(fractions).filter(([, f]) => f >= 0.999).map(([k]) => k);
  if (dead.length === 0 && !(recent.length === 3 && recent.every(pinned))) return undefined;
  return `training looks collapsed: the loss sits at ln(${classes}) = ${chance.toFixed(3)} and accuracy at chance` +
    (dead.length > 0 ? `, and every unit of ${dead.join(', ')} is zero (dead ReLUs)` : '') +
    ', the sign of an early loss spike (§5\'s positive biases on small data). Try --positive-bias 0.1 (Caffe\'s choice) or a lower --lr.';
}
