/**
 * The benchmark's input: JPEGs like ImageNet's typical image, drawn the way the PyTorch reference
 * (as the PIL reference pipeline's benchmark draws them) draws them: 80 % 500x375 and 20 % 375x500,
 * smooth per-channel gradients with four Gaussian blobs, mid-frequency texture and pixel noise,
 * quality 90. Cached in a folder so that the PIL figure can be measured on the same files.
 */
import sharp from 'sharp';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Rng } from '../rng.js';

export async function makeBenchJpegs(dir: string, n: number, seed = 0): Promise<string[]> {
  mkdirSync(dir, { recursive: true });
  const name = (i: number) => join(dir, `img${String(i).padStart(4, '0')}.jpg`);
  const have = new Set(readdirSync(dir));
  for (let i = 0; i < n; i++) {
    if (have.has(`img${String(i).padStart(4, '0')}.jpg`)) continue;
    const rng = Rng.forKey(seed, i);
    const [w, h] = i % 5 ? [500, 375] : [375, 500];
    const img = new Float32Array(w * h * 3);
    for (let c = 0; c < 3; c++) {
      const ax = (rng.uniform() - 0.5) * 0.8, ay = (rng.uniform() - 0.5) * 0.8, base = 40 + 160 * rng.uniform();
      const blobs = Array.from({ length: 4 }, () => ({ x: rng.uniform() * w, y: rng.uniform() * h, r: 20 + 100 * rng.uniform(), a: (rng.uniform() - 0.5) * 160 }));
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          let g = base + ax * x + ay * y;
          for (const b of blobs) g += b.a * Math.exp(-((x - b.x) ** 2 + (y - b.y) ** 2) / (2 * b.r * b.r));
          img[(y * w + x) * 3 + c] = g;
        }
      }
    }
    const lw = (w >> 1) + 1;
    const lo = Float32Array.from({ length: ((h >> 1) + 1) * lw * 3 }, () => rng.normal() * 20);
    const px = new Uint8Array(w * h * 3);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        for (let c = 0; c < 3; c++) {
          const v = img[(y * w + x) * 3 + c]! + lo[((y >> 1) * lw + (x >> 1)) * 3 + c]! + rng.normal() * 16;
          px[(y * w + x) * 3 + c] = Math.max(0, Math.min(255, Math.round(v)));
        }
      }
    }
    await sharp(px, { raw: { width: w, height: h, channels: 3 } }).jpeg({ quality: 90 }).toFile(name(i));
  }
  return Array.from({ length: n }, (_, i) => name(i));
}

export function benchJpegsExist(dir: string, n: number): boolean {
  return existsSync(join(dir, `img${String(n - 1).padStart(4, '0')}.jpg`));
}
