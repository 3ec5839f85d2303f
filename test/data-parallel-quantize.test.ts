// Data-parallel ParoQuant (issue 12): which calibration windows each rank stores and computes (window-shares), and
// the rank logic of `paro quantize` with several cpu processes.
import { describe, expect, it } from 'vitest';
import { rankShare } from '../src/engine/collective.js';
import { largestShare, windowShares } from '../src/paroquant/window-shares.js';

/** Every batch of the single-rank run: [first window, count], training then validation. */
function batchesOf(nTrain: number, nVal: number, B: number): [number, number][] {
  const out: [number, number][] = [];
  for (let s = 0; s < nTrain; s += B) out.push([s, Math.min(B, nTrain - s)]);
  for (let s = 0; s < nVal; s += B) out.push([nTrain + s, Math.min(B, nVal - s)]);
  return out;
}

describe('windowShares: the windows a rank stores', () => {
  it('one rank holds every window in order, with the single-rank batches', () => {
    const sh = windowShares(10, 3, 4, 0, 1);
    expect(Array.from(sh.windows)).toEqual(Array.from({ length: 13 }, (_, i) => i));
    expect(sh.train).toEqual([{ n: 4, count: 4, local: 0 }, { n: 4, count: 4, local: 4 }, { n: 2, count: 2, local: 8 }]);
    expect(sh.val).toEqual([{ n: 3, count: 3, local: 10 }]);
  });

  it('an uneven last batch: 10 training windows in batches of 4 over 3 ranks', () => {
    // Batches [0,4) [4,8) [8,10): rank 0 takes 2+2+1 (the first n % W ranks take one more), rank 1 1+1+1, rank 2 1+1+0.
    const r0 = windowShares(10, 0, 4, 0, 3);
    const r1 = windowShares(10, 0, 4, 1, 3);
    const r2 = windowShares(10, 0, 4, 2, 3);
    expect(Array.from(r0.windows)).toEqual([0, 1, 4, 5, 8]);
    expect(Array.from(r1.windows)).toEqual([2, 6, 9]);
    expect(Array.from(r2.windows)).toEqual([3, 7]);
    expect(r2.train).toEqual([{ n: 4, count: 1, local: 0 }, { n: 4, count: 1, local: 1 }, { n: 2, count: 0, local: 2 }]);
    expect(r0.train.map((b) => b.local)).toEqual([0, 2, 4]);
  });

  it('more ranks than windows in a batch: the extra ranks hold nothing of it but still step with the others', () => {
    const sh = [0, 1, 2, 3].map((r) => windowShares(5, 2, 2, r, 4));
    // Training batches of 2, 2, 1 and one validation batch of 2.
    expect(sh.map((s) => Array.from(s.windows))).toEqual([[0, 2, 4, 5], [1, 3, 6], [], []]);
    for (const s of sh) {
      expect(s.train.map((b) => b.n)).toEqual([2, 2, 1]);
      expect(s.val.map((b) => b.n)).toEqual([2]);
    }
    expect(sh[3].train.every((b) => b.count === 0)).toBe(true);
  });

  it('for many shapes: the ranks together hold each batch exactly once, in rank order, and their stores are consistent', () => {
    for (const [nTrain, nVal, B] of [[1, 1, 1], [7, 2, 3], [16, 4, 16], [33, 5, 8], [128, 16, 16], [3, 0, 5]]) {
      for (const W of [1, 2, 3, 4, 5, 8]) {
        const shares = Array.from({ length: W }, (_, r) => windowShares(nTrain, nVal, B, r, W));
        const batches = batchesOf(nTrain, nVal, B);
        batches.forEach(([first, n], bi) => {
          const joined: number[] = [];
          shares.forEach((sh, r) => {
            const b = bi < sh.train.length ? sh.train[bi] : sh.val[bi - sh.train.length];
            expect(b.n).toBe(n);
            const { start, end } = rankShare(n, r, W);
            expect(b.count).toBe(end - start);
            expect(b.count).toBeLessThanOrEqual(largestShare(B, W));
            // The rank's stored windows of this batch are where `local` says.
            const mine = Array.from(sh.windows.subarray(b.local, b.local + b.count));
            expect(mine).toEqual(Array.from({ length: b.count }, (_, i) => first + start + i));
            joined.push(...mine);
          });
          expect(joined).toEqual(Array.from({ length: n }, (_, i) => first + i));
        });
        // Every window stored by exactly one rank; each store holds only the rank's windows.
        const all = shares.flatMap((s) => Array.from(s.windows)).sort((a, b) => a - b);
        expect(all).toEqual(Array.from({ length: nTrain + nVal }, (_, i) => i));
        for (const sh of shares) expect(sh.windows.length).toBe([...sh.train, ...sh.val].reduce((a, b) => a + b.count, 0));
      }
    }
  });

  it('rejects a rank outside the world and a non-positive batch', () => {
    expect(() => windowShares(4, 0, 2, 2, 2)).toThrow(/rank 2 of world size 2/);
    expect(() => windowShares(4, 0, 0, 0, 1)).toThrow(/batch/);
  });
});
