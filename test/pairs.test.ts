import { describe, expect, it } from 'vitest';
import { candidatePairs, selectGroupLayers, selectPairs } from '../src/paroquant/pairs.js';
import { Rng } from '../src/numerics/rng.js';

/** The plain algorithm of spec §3, transcribed literally (full rescan per layer, sets). */
function naiveGroupLayers(order: Int32Array, gs: number, k: number, n: number): { layers: number[][]; mask: number[][] } {
  const used = new Set<number>();
  const layers: number[][] = [];
  const mask: number[][] = [];
  for (let r = 0; r < k; r++) {
    const busy = new Set<number>();
    const layer: number[] = [];
    for (const code of order) {
      if (layer.length / 2 === n) break;
      const i = Math.floor(code / gs);
      const j = code % gs;
      if (used.has(code) || busy.has(i) || busy.has(j)) continue;
      layer.push(i, j);
      busy.add(i).add(j);
      used.add(code);
    }
    const m = new Array<number>(layer.length / 2).fill(0);
    const freeCh: number[] = [];
    for (let ch = 0; ch < gs; ch++) if (!busy.has(ch)) freeCh.push(ch);
    for (let f = 0; f < freeCh.length; f += 2) {
      layer.push(freeCh[f], freeCh[f + 1]);
      m.push(1);
    }
    layers.push(layer);
    mask.push(m);
  }
  return { layers, mask };
}

/** Spec §11.5 invariants for a whole selection. */
function checkInvariants(pairs: Int32Array, mask: Uint8Array, inFeatures: number, k: number, gs: number, perLayer: number): number {
  let real = 0;
  for (let g = 0; g < inFeatures / gs; g++) {
    const seen = new Set<number>();
    for (let r = 0; r < k; r++) {
      const hit = new Uint8Array(gs);
      let realHere = 0;
      for (let t = 0; t < gs / 2; t++) {
        const i = pairs[r * inFeatures + g * gs + 2 * t];
        const j = pairs[r * inFeatures + g * gs + 2 * t + 1];
        expect(i >= 0 && i < gs && j >= 0 && j < gs).toBe(true);
        hit[i]++;
        hit[j]++;
        if (mask[(r * inFeatures) / 2 + g * (gs / 2) + t] === 0) {
          expect(i).toBeLessThan(j);
          const code = i * gs + j;
          expect(seen.has(code)).toBe(false); // no real pair in two layers of a group
          seen.add(code);
          realHere++;
        }
      }
      expect(Array.from(hit).every((h) => h === 1)).toBe(true); // each channel exactly once
      expect(realHere).toBeLessThanOrEqual(perLayer);
      real += realHere;
    }
  }
  return real;
}

describe('selectPairs (spec §3, §11.5)', () => {
  it('satisfies the invariants for random sizes, K and group sizes 128 and 64', () => {
    const rng = new Rng(77);
    for (let trial = 0; trial < 6; trial++) {
      const gs = trial % 2 === 0 ? 128 : 64;
      const inFeatures = gs * (1 + rng.nextInt(5));
      const k = 1 + rng.nextInt(8);
      const sel = selectPairs(inFeatures, rng.nextInt(1000), { krot: k, groupSize: gs });
      expect(sel.pairs.length).toBe(k * inFeatures);
      expect(sel.mask.length).toBe((k * inFeatures) / 2);
      const real = checkInvariants(sel.pairs, sel.mask, inFeatures, k, gs, gs / 2);
      expect(real).toBe(sel.realPairCount);
      // The greedy scan nearly always completes a layer: 64 or occasionally 63 real pairs of 64 slots.
      expect(real).toBeGreaterThanOrEqual(((gs / 2 - 1) * k * inFeatures) / gs);
    }
  });

  it('honours pairsPerLayer', () => {
    const sel = selectPairs(256, 5, { krot: 8, groupSize: 128, pairsPerLayer: 40 });
    expect(checkInvariants(sel.pairs, sel.mask, 256, 8, 128, 40)).toBe(sel.realPairCount);
    expect(sel.realPairCount).toBe(40 * 8 * 2);
    expect(() => selectPairs(256, 5, { krot: 8, groupSize: 128, pairsPerLayer: 65 })).toThrow(RangeError);
  });

  it('is deterministic per seed, differs between seeds, and differs between groups', () => {
    const a = selectPairs(512, 3, { krot: 8, groupSize: 128 });
    const b = selectPairs(512, 3, { krot: 8, groupSize: 128 });
    const c = selectPairs(512, 4, { krot: 8, groupSize: 128 });
    expect(Array.from(a.pairs)).toEqual(Array.from(b.pairs));
    expect(Array.from(a.mask)).toEqual(Array.from(b.mask));
    expect(Array.from(a.pairs)).not.toEqual(Array.from(c.pairs));
    expect(Array.from(a.pairs.subarray(0, 128))).not.toEqual(Array.from(a.pairs.subarray(128, 256)));
  });

  it('is fast: 14336 input features (112 groups) well under a second', () => {
    selectPairs(1024, 0, { krot: 8, groupSize: 128 }); // warm-up
    const t0 = performance.now();
    const sel = selectPairs(14336, 11, { krot: 8, groupSize: 128 });
    const ms = performance.now() - t0;
    expect(sel.realPairCount).toBeGreaterThan(0);
    expect(ms).toBeLessThan(1000);
  });
});

describe('selectGroupLayers (fast scan) equals the literal greedy algorithm', () => {
  it('on random shuffles, for K = 8, long K (candidates run short) and small pairsPerLayer', () => {
    const rng = new Rng(2026);
    const configs: [number, number, number][] = [
      [128, 8, 64], [128, 8, 64], [128, 8, 64], [64, 8, 32], [16, 12, 8], [8, 9, 4], [128, 3, 20], [32, 40, 16],
    ];
    for (const [gs, k, n] of configs) {
      const order = rng.shuffle(candidatePairs(gs));
      const fast = selectGroupLayers(order, gs, k, n);
      const ref = naiveGroupLayers(order, gs, k, n);
      for (let r = 0; r < k; r++) {
        expect(Array.from(fast.layers.subarray(r * gs, (r + 1) * gs))).toEqual(ref.layers[r]);
        expect(Array.from(fast.mask.subarray((r * gs) / 2, ((r + 1) * gs) / 2))).toEqual(ref.mask[r]);
      }
      expect(fast.real).toBe(ref.mask.flat().filter((m) => m === 0).length);
    }
  });

  it('candidatePairs lists all i < j lexicographically', () => {
    const c = candidatePairs(128);
    expect(c.length).toBe(8128);
    expect(c[0]).toBe(1);
    expect(c[1]).toBe(2);
    expect(c[127]).toBe(128 + 2);
    expect(c[8127]).toBe(126 * 128 + 127);
  });
});
