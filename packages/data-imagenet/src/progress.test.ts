import { describe, it, expect } from 'vitest';
import { formatProgress, formatProgressLine, Progress, ProgressMeter, stderrProgress, type ProgressState } from './progress.js';

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

/** A stream that records what is written, as a terminal or as a log file. */
function fakeStream(isTTY: boolean, columns?: number) {
  const chunks: string[] = [];
  return { isTTY, columns, chunks, write: (s: string) => chunks.push(s), text: () => chunks.join('') };
}

/** A clock the test moves by hand (milliseconds). */
function fakeClock() {
  let t = 1000;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe('formatProgressLine', () => {
  it('adds key/value fields after the ETA, formats rates by size, and any unit', () => {
    expect(formatProgressLine({ label: 'epoch 3', done: 120, total: 480, rate: 2.5, unit: 'step', etaSeconds: 144, fields: { loss: 4.12345, 'top-1': '12.5%', lr: 0.01 } }, 4))
      .toBe('epoch 3 120/480 [#...] 2.5 step/s ETA 02:24 loss 4.123 top-1 12.5% lr 0.01');
    expect(formatProgressLine({ label: 'x', done: 1, total: 2, rate: 45.26, unit: 'img', etaSeconds: 0.4, fields: { loss: NaN, n: 7 } }, 2))
      .toBe('x 1/2 [#.] 45 img/s ETA 00:00 loss - n 7');
  });
});

describe('Progress', () => {
  it('redraws in place on a terminal, at most every redraw interval, and ends the line on finish', () => {
    const s = fakeStream(true), c = fakeClock();
    const p = new Progress({ label: 'epoch 0', total: 4, unit: 'img', unitsPerStep: 10, stream: s, now: c.now, width: 4, redrawSeconds: 0.1 });
    c.advance(1000);
    p.update(1, { loss: 2.302585 });
    c.advance(50);
    p.update(2, { loss: 2.1 }); // within 100 ms of the last draw: not drawn
    c.advance(1000);
    p.update(3, { loss: 2.0 });
    expect(s.chunks).toEqual([
      '\r' + 'epoch 0 1/4 [#...] 10 img/s ETA 00:03 loss 2.303' + '\x1b[K',
      '\r' + 'epoch 0 3/4 [###.] 15 img/s ETA 00:01 loss 2' + '\x1b[K',
    ]);
    p.clear(); // make room for another line of output
    expect(s.chunks.at(-1)).toBe('\r\x1b[K');
    c.advance(500);
    p.update(4, { loss: 1.9 });
    p.finish();
    expect(s.chunks.slice(3)).toEqual(['\repoch 0 4/4 [####] 16 img/s ETA 00:00 loss 1.9\x1b[K', '\repoch 0 4/4 [####] 16 img/s ETA 00:00 loss 1.9\x1b[K\n']);
    p.finish(); // once only
    p.update(4);
    expect(s.chunks.length).toBe(5);
  });

  it('writes plain lines to a non-terminal: the first, then one per interval, and the end once', () => {
    const s = fakeStream(false), c = fakeClock();
    const p = new Progress({ label: 'prepare', total: 100, unit: 'img', stream: s, now: c.now, width: 4, intervalSeconds: 2 });
    for (let i = 1; i <= 100; i++) {
      c.advance(100);
      p.add(1);
    }
    p.finish();
    // 100 updates over 10 s: at 0.1 s, then every 2 s, then the end (done = total) once.
    expect(s.text().split('\n')).toEqual([
      'prepare 1/100 [....] 10 img/s ETA 00:10',
      'prepare 21/100 [#...] 10 img/s ETA 00:08',
      'prepare 41/100 [##..] 10 img/s ETA 00:06',
      'prepare 61/100 [##..] 10 img/s ETA 00:04',
      'prepare 81/100 [###.] 10 img/s ETA 00:02',
      'prepare 100/100 [####] 10 img/s ETA 00:00',
      '',
    ]);
    expect(s.chunks.every((x) => !x.includes('\r') && !x.includes('\x1b'))).toBe(true);
  });

  it('counts the rate from where it started (a resumed epoch), cuts lines to the terminal width, and can be off', () => {
    const s = fakeStream(true, 30), c = fakeClock();
    const p = new Progress({ label: 'epoch 1', total: 1000, initial: 900, stream: s, now: c.now, width: 4 });
    c.advance(2000);
    p.update(910, { lr: 0.001 });
    expect(p.state()).toMatchObject({ done: 910, rate: 5, etaSeconds: 18, unit: 'it' });
    expect(s.chunks).toEqual(['\repoch 1 910/1000 [####] 5.0 i\x1b[K']);
    const off = fakeStream(true);
    const q = new Progress({ label: 'x', total: 1, stream: off, enabled: false });
    q.update(1);
    q.finish();
    expect(off.chunks).toEqual([]);
  });

  it('stderrProgress draws ProgressState lines to an injected stream as prepare always did', () => {
    const s = fakeStream(false);
    const sink = stderrProgress('prepare', s);
    sink({ done: 1, total: 3, elapsedSeconds: 0.1, imagesPerSecond: 10, etaSeconds: 0.2 });
    sink({ done: 2, total: 3, elapsedSeconds: 0.2, imagesPerSecond: 10, etaSeconds: 0.1 }); // within 5 s: skipped
    sink({ done: 3, total: 3, elapsedSeconds: 0.3, imagesPerSecond: 10, etaSeconds: 0 });
    expect(s.text()).toBe('prepare 1/3 [########................] 10 img/s ETA 00:00\nprepare 3/3 [########################] 10 img/s ETA 00:00\n');
    const t = fakeStream(true);
    const tty = stderrProgress('prepare', t);
    tty({ done: 3, total: 3, elapsedSeconds: 0.3, imagesPerSecond: 10, etaSeconds: 0 });
    expect(t.text()).toBe('\rprepare 3/3 [########################] 10 img/s ETA 00:00\x1b[K\n');
  });
});
