/**
 * One training step (§5), the unit the trainer repeats and the benchmarks time: forward with
 * dropout, softmax cross-entropy, backward, the SGD update of every parameter on its own device.
 * Nothing is read back: the loss and the count of correct top-1 answers stay on the device, so the
 * caller decides when to wait for them (the trainer reads step s after enqueuing step s + 1).
 */
import type { Network } from '@alexnet/layers';
import type { SGD } from '@alexnet/optim';
import { softmaxCrossEntropy, tidy, topkCorrect, type Tensor } from '@alexnet/tensor';

export interface StepOutput {
  /** Mean loss of the batch, [1], on the device of the logits. */
  loss: Tensor;
  /** Images whose top-1 answer was right, [1] int32. */
  correct: Tensor;
}

/**
 * images [n, 3, crop, crop] float32 and labels [n] int32 on the model's input device; `step` keys
 * the dropout masks (§4.2), so a resumed run draws the same masks.
 */
export function trainStep(model: Network, optimizer: SGD, images: Tensor, labels: Tensor, step: number): StepOutput {
  const out = tidy(() => {
    const logits = model.forward(images, { training: true, step });
    const { loss, dlogits } = softmaxCrossEntropy(logits, labels);
    const correct = topkCorrect(logits, labels, 1);
    model.backward(dlogits!);
    return { loss, correct };
  });
  optimizer.step();
  model.zeroGrad();
  return out;
}
