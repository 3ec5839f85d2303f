// paro quantize's flag parsing and progress text: sizes for --max-shard-size / --max-host-memory, the block ETA
// (from the blocks this run optimized, not the resumed ones), durations, and line-based progress without carriage
// returns when stderr is not a terminal.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { BlockEta, formatDuration, parseSizeOption } from '../src/cli/quantize.js';
import { Progress } from '../src/cli/progress.js';

describe('paro quantize flags and progress', () => {
  afterEach(() => vi.restoreAllMocks());

  it('parses sizes in decimal and binary units and rejects others naming the flag', () => {
    const size = parseSizeOption('--max-shard-size');
    expect(size('5GB')).toBe(5e9);
    expect(size('1MB')).toBe(1e6);
    expect(size('2GiB')).toBe(2 * 2 ** 30);
    expect(size('512KiB')).toBe(512 * 1024);
    expect(size('1234')).toBe(1234);
    expect(() => size('5 parsecs')).toThrow(/--max-shard-size must be a size such as "5GB"/);
    expect(() => size('0GB')).toThrow(/--max-shard-size must be a positive size/);
  });

  it('estimates the time left from the optimized blocks only', () => {
    const eta = new BlockEta(10);
    expect(eta.done(0, 1, true)).toBeNaN(); // resumed: recomputed activations only, says nothing about a block's time
    expect(eta.done(1, 1, true)).toBeNaN();
    expect(eta.done(2, 10, false)).toBe(70);
    expect(eta.done(3, 20, false)).toBe(90); // mean 15 s × 6 blocks left
    expect(eta.done(9, 15, false)).toBe(0);
  });

  it('formats durations', () => {
    expect(formatDuration(12.4)).toBe('12s');
    expect(formatDuration(185)).toBe('3m 05s');
    expect(formatDuration(3720)).toBe('1h 02m');
    expect(formatDuration(NaN)).toBe('?');
  });

  it('writes whole lines with elapsed time and ETA, no carriage returns, off a terminal', () => {
    const isTTY = process.stderr.isTTY;
    Object.defineProperty(process.stderr, 'isTTY', { value: false, configurable: true });
    const quiet = process.env.PARO_QUIET;
    delete process.env.PARO_QUIET;
    const out: string[] = [];
    vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => {
      out.push(String(s));
      return true;
    });
    try {
      const p = new Progress('capture', 4, { lineInterval: 0 });
      for (let i = 1; i <= 4; i++) p.update(i);
      p.stop();
    } finally {
      Object.defineProperty(process.stderr, 'isTTY', { value: isTTY, configurable: true });
      if (quiet !== undefined) process.env.PARO_QUIET = quiet;
    }
    expect(out.length).toBe(5);
    for (const line of out) {
      expect(line.endsWith('\n')).toBe(true);
      expect(line).not.toContain('\r');
    }
    expect(out[4]).toMatch(/^capture: 4\/4 \(100%\) elapsed \d+s eta 0s\n$/);
  });
});
