// importTorchvision: torchvision's own file (torch.save of a seeded torchvision.models.alexnet()) gives
// PyTorch's logits here; a file that is not its state dict is refused with what is missing, extra or
// mis-shaped; the class list and the preprocessing record. The PyTorch parts need Debian's
// python3-torch and python3-torchvision and skip without them.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { createModel } from '@alexnet/layers';
import { listBackends, loadSafetensors, saveSafetensors, tensor } from '@alexnet/tensor';
import { relativeError } from '@alexnet/tensor/conformance';
import {
  checkPreprocessing, ilsvrc2012Classes, importTorchvision, preprocessImage, resizeBilinearWindow, resizedSize, roundHalfEven, TORCHVISION_PREPROCESSING,
} from './index.js';
import { FIXTURES, NEEDS_TORCH, python, torchAvailable } from './helpers.test-util.js';

const DEV = listBackends().find((b) => b.name === 'cpu')?.available ? 'cpu:0' : 'reference:0';
const dir = mkdtempSync(join(tmpdir(), 'alexnet-interop-tv-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Stand-ins for photographs: colour fields with texture, of different shapes and kinds (PNG, JPEG, grey, RGBA). */
async function images(): Promise<string[]> {
  const out: string[] = [];
  for (const [i, [w, h]] of [[320, 240], [200, 300], [256, 256], [500, 375]].entries()) {
    const px = new Uint8Array(w * h * 3);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
      const o = 3 * (y * w + x);
      px[o] = (x * 255) / w; px[o + 1] = (y * 255) / h;
      px[o + 2] = 128 + 100 * Math.sin((x + 2 * y) / (7 + i)) * Math.cos(x / 13);
    }
    const img = sharp(px, { raw: { width: w, height: h, channels: 3 } });
    const file = join(dir, `img${i}.${i === 1 ? 'jpg' : 'png'}`);
    if (i === 1) await img.jpeg({ quality: 85 }).toFile(file);
    else if (i === 2) await img.greyscale().png().toFile(file);
    else if (i === 3) await img.ensureAlpha(0.5).png().toFile(file);
    else await img.png().toFile(file);
    out.push(file);
  }
  return out;
}

describe('importTorchvision without PyTorch', () => {
  it('a file that is not torchvision\'s AlexNet: the sentence lists missing, unexpected and mis-shaped tensors', async () => {
    const file = join(FIXTURES, 'not-alexnet.pt');
    const err = await importTorchvision(file).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    const msg = (err as Error).message;
    expect(msg).toMatch(/^\S+not-alexnet\.pt is not a state dict of torchvision's AlexNet \(torchvision\.models\.alexnet\): /);
    expect(msg).toMatch(/missing features\.3\.weight \[192, 64, 5, 5\], features\.3\.bias \[192\], .* and \d+ more/);
    expect(msg).toMatch(/unexpected fc\.weight \[1\]/);
    expect(msg).toMatch(/mis-shaped features\.0\.weight: \[4, 3, 3, 3\] here, \[64, 3, 11, 11\] expected, features\.0\.bias: \[4\] here, \[64\] expected/);
  });

  it('the 1000 ILSVRC-2012 classes in the standard (sorted WordNet id) order, with their names', () => {
    const c = ilsvrc2012Classes();
    expect(c).toHaveLength(1000);
    expect(c[0]).toEqual({ wnid: 'n01440764', name: 'tench, Tinca tinca' });
    expect(c[1]).toEqual({ wnid: 'n01443537', name: 'goldfish, Carassius auratus' });
    expect(c[134]).toEqual({ wnid: 'n02012849', name: 'crane' }); // the bird; 517 is the machine
    expect(c[517]).toEqual({ wnid: 'n03126707', name: 'crane' });
    expect(c[999]).toEqual({ wnid: 'n15075141', name: 'toilet tissue, toilet paper, bathroom tissue' });
    const ids = c.map((x) => x.wnid);
    expect([...ids].sort()).toEqual(ids);
    expect(new Set(ids).size).toBe(1000);
  });

  it('PIL\'s antialiased bilinear resize, worked by hand: [0, 70, 140, 210] to two samples is [50, 160]', () => {
    // Shrinking by 2 widens the triangle to +-2 samples: weights 3/7, 3/7, 1/7 around centre 1, and 1/7, 3/7, 3/7 around centre 3.
    const row = Uint8Array.from([0, 70, 140, 210].flatMap((v) => [v, v, v]));
    expect(Array.from(resizeBilinearWindow(row, 4, 1, 2, 1, { left: 0, top: 0, width: 2, height: 1 }))).toEqual([50, 50, 50, 160, 160, 160]);
    expect(resizedSize(500, 375, 256)).toEqual({ width: 341, height: 256 }); // int(256 * 500 / 375)
    expect([roundHalfEven(58.5), roundHalfEven(57.5), roundHalfEven(16)]).toEqual([58, 58, 16]); // Python's round in CenterCrop
  });

  it('torchvision\'s preprocessing record is checked like checkpoint metadata', () => {
    expect(checkPreprocessing(TORCHVISION_PREPROCESSING)).toBeNull();
    expect(checkPreprocessing({ ...TORCHVISION_PREPROCESSING, std: [0.2, 0, 0.2] })).toMatch(/std .* not three positive numbers/);
    expect(checkPreprocessing({ ...TORCHVISION_PREPROCESSING, resize: 100 })).toMatch(/resize is 100, not an integer from the crop \(224\)/);
    expect(checkPreprocessing('nope')).toMatch(/not an object/);
  });
});

describe.skipIf(!torchAvailable)(`importTorchvision against PyTorch (${NEEDS_TORCH})`, () => {
  it('torch.save(torchvision.models.alexnet().state_dict()) imports, in zip and legacy formats, and gives PyTorch\'s logits within 1e-4', async () => {
    python(['save-torchvision', dir]);
    const files = await images();
    const inputs = await Promise.all(files.map((f) => preprocessImage(f, TORCHVISION_PREPROCESSING)));
    const x = new Float32Array(inputs.length * 3 * 224 * 224);
    inputs.forEach((p, i) => x.set(p.input, i * 3 * 224 * 224));
    const xFile = join(dir, 'x.safetensors');
    await saveSafetensors(xFile, { x: { dtype: 'float32', shape: [inputs.length, 3, 224, 224], data: x } });
    python(['torchvision-logits', join(dir, 'tv.pth'), xFile, join(dir, 'tv-logits.safetensors')]);
    const theirs = (await loadSafetensors(join(dir, 'tv-logits.safetensors'))).tensors.get('logits')!;
    expect(theirs.shape).toEqual([files.length, 1000]);
    for (const [file, format] of [['tv.pth', 'zip'], ['tv-legacy.pth', 'legacy']] as const) {
      const imported = await importTorchvision(join(dir, file));
      expect(imported.source.format).toBe(format);
      expect(imported.model).toEqual({ name: 'torchvision', classes: 1000, inputSize: 224 });
      expect(imported.data).toMatchObject({ mean: 'none', crop: 224, size: 256, preprocessing: TORCHVISION_PREPROCESSING });
      expect(imported.data.classes[0]).toEqual({ wnid: 'n01440764', name: 'tench, Tinca tinca' });
      expect(imported.source.parameters).toBe(61_100_840);
      expect(imported.summary).toMatch(/torchvision's AlexNet \(torch\.save (zip|legacy) format, float32\), 61,100,840 parameters, 1000 classes/);
      const net = createModel(imported.model.name, { ...imported.model, devices: [DEV] });
      net.loadStateDict(imported.weights);
      const xt = tensor(x, [files.length, 3, 224, 224], { device: DEV });
      const ours = net.forward(xt);
      const { error } = relativeError(ours.dataSync(), theirs.data);
      expect(error, `${format} logits`).toBeLessThan(1e-4);
      for (const t of [xt, ours]) t.dispose();
      net.dispose();
    }
  }, 240_000);

  it('preprocessImage equals torchvision\'s Resize(256) / CenterCrop(224) / ToTensor / Normalize on PIL (PNG, JPEG, grey, RGBA)', async () => {
    const files = await images();
    python(['preprocess', join(dir, 'pil.safetensors'), ...files]);
    const pil = (await loadSafetensors(join(dir, 'pil.safetensors'))).tensors.get('x')!;
    expect(pil.shape).toEqual([files.length, 3, 224, 224]);
    for (const [i, f] of files.entries()) {
      const ours = (await preprocessImage(f, TORCHVISION_PREPROCESSING)).input;
      const theirs = pil.data.subarray(i * ours.length, (i + 1) * ours.length);
      expect(relativeError(ours, theirs).error, f).toBeLessThan(1e-6);
    }
  }, 120_000);
});
