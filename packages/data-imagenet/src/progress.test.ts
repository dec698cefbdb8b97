import { describe, it, expect } from 'vitest';
import { formatProgress, ProgressMeter, type ProgressState } from './progress.js';

describe('progress', () => {
  it('shows the count, a bar, images/s and the ETA', () => {
    const line = formatProgress('prepare', { done: 250, total: 1000, elapsedSeconds: 0.5, imagesPerSecond: 500, etaSeconds: 1.5 * 60 + 30 }, 8);
    expect(line).toBe('prepare 250/1000 [##......] 500 img/s ETA 02:00');
    expect(formatProgress('p', { done: 0, total: 10, elapsedSeconds: 0, imagesPerSecond: 0, etaSeconds: Infinity }, 4)).toBe('p 0/10 [....] 0 img/s ETA --:--');
    expect(formatProgress('p', { done: 5, total: 5, elapsedSeconds: 4000, imagesPerSecond: 0, etaSeconds: 3725 }, 2)).toBe('p 5/5 [##] 0 img/s ETA 1:02:05');
  });

  it('reports the final count to its sink', () => {
    const seen: ProgressState[] = [];
    const m = new ProgressMeter(10, (p) => seen.push(p));
    for (let i = 0; i < 10; i++) m.add(1);
    expect(seen.at(-1)!.done).toBe(10);
    expect(seen.at(-1)!.etaSeconds).toBe(0);
  });
});
