// Rotation pair selection (paroquant-spec §3; paper Algorithm A1): per group, a seeded shuffle of all channel pairs,
// then per layer a greedy scan that takes disjoint pairs never used by an earlier layer of the group, padded with
// dummy pairs (θ ≡ 0) of the lowest free channels. The shuffle uses our Rng (CPython parity is not required: pairs
// are stored in the checkpoint).
//
// Speed: the plain greedy rescans all GS(GS−1)/2 candidates per layer, because the last free channels rarely pair up.
// Here the scan stops once few channels are free; from then on the next pick is the lowest shuffled position among
// the unused pairs of free channels, found by enumerating those few pairs. The picks are the same as the plain scan's.

import { Rng } from '../numerics/rng.js';

export interface PairSelectOptions {
  /** Rotation layers K. */
  krot: number;
  /** Channels per group (even; checked by the job with the other settings). */
  groupSize: number;
  /** Maximum real pairs per layer and group (default groupSize/2). */
  pairsPerLayer?: number;
}

export interface PairSelection {
  /** [K, I] group-local channel indices; slot t of group g in layer r = (pairs[r, g·GS+2t], pairs[r, g·GS+2t+1]). */
  pairs: Int32Array;
  /** [K, I/2]: 1 marks a dummy slot, whose angle must stay 0. */
  mask: Uint8Array;
  /** Number of real (non-dummy) pairs over all layers and groups. */
  realPairCount: number;
}

/** All pairs (i, j), 0 ≤ i < j < gs, in lexicographic order, encoded as i·gs + j. */
export function candidatePairs(groupSize: number): Int32Array {
  const out = new Int32Array((groupSize * (groupSize - 1)) / 2);
  let n = 0;
  for (let i = 0; i < groupSize; i++) for (let j = i + 1; j < groupSize; j++) out[n++] = i * groupSize + j;
  return out;
}

/**
 * Greedy layers of one group from its shuffled candidate order (codes i·gs + j). Returns the group's slots
 * layers [K, gs] (local indices) and dummy mask [K, gs/2], and the number of real pairs.
 */
export function selectGroupLayers(
  order: Int32Array, groupSize: number, krot: number, pairsPerLayer: number,
): { layers: Int32Array; mask: Uint8Array; real: number } {
  const gs = groupSize;
  const slots = gs / 2;
  const nCand = order.length;
  const layers = new Int32Array(krot * gs);
  const mask = new Uint8Array(krot * slots);
  const posOf = new Int32Array(gs * gs).fill(-1); // code → shuffled position
  for (let p = 0; p < nCand; p++) posOf[order[p]] = p;
  const usedPos = new Uint8Array(nCand); // taken by an earlier layer of this group
  const busy = new Uint8Array(gs);
  const free = new Int32Array(gs);
  // Switch from scanning to enumeration where their expected costs per pick cross: nFree⁴ ≈ 2·gs².
  const switchAt = Math.ceil(Math.sqrt(Math.SQRT2 * gs));
  let real = 0;

  for (let r = 0; r < krot; r++) {
    busy.fill(0);
    let nFree = gs;
    let count = 0;
    const lo = r * gs;
    const take = (p: number, i: number, j: number): void => {
      layers[lo + 2 * count] = i;
      layers[lo + 2 * count + 1] = j;
      busy[i] = 1;
      busy[j] = 1;
      usedPos[p] = 1;
      nFree -= 2;
      count++;
    };
    // Phase 1: the plain scan, while pairs of free channels are still common.
    let p = 0;
    for (; p < nCand && count < pairsPerLayer && nFree > switchAt; p++) {
      if (usedPos[p]) continue;
      const code = order[p];
      const i = (code / gs) | 0;
      const j = code - i * gs;
      if (busy[i] || busy[j]) continue;
      take(p, i, j);
    }
    // Phase 2: every still-admissible pair lies at a position ≥ p (earlier ones were rejected for good), so the
    // scan's next pick is the lowest position among unused pairs of free channels.
    if (p < nCand) {
      while (count < pairsPerLayer) {
        let nf = 0;
        for (let ch = 0; ch < gs; ch++) if (!busy[ch]) free[nf++] = ch;
        let best = nCand;
        for (let a = 0; a < nf; a++) {
          const rowCode = free[a] * gs;
          for (let b = a + 1; b < nf; b++) {
            const q = posOf[rowCode + free[b]];
            if (q < best && !usedPos[q]) best = q;
          }
        }
        if (best === nCand) break;
        const code = order[best];
        const i = (code / gs) | 0;
        take(best, i, code - i * gs);
      }
    }
    real += count;
    // Padding: the lowest free channels, two by two, in the remaining slots (spec §3 _align_shape).
    let t = count;
    for (let ch = 0; ch < gs && t < slots; ch++) {
      if (busy[ch]) continue;
      let ch2 = ch + 1;
      while (busy[ch2]) ch2++;
      layers[lo + 2 * t] = ch;
      layers[lo + 2 * t + 1] = ch2;
      busy[ch] = 1;
      busy[ch2] = 1;
      mask[r * slots + t] = 1;
      t++;
    }
  }
  return { layers, mask, real };
}

/**
 * Pairs for one linear with inFeatures input channels (spec §3): one Rng(seed) shuffles each group's candidates in
 * group order, then each group gets K greedy layers.
 */
export function selectPairs(inFeatures: number, seed: number, opts: PairSelectOptions): PairSelection {
  const { krot, groupSize: gs } = opts;
  const perLayer = opts.pairsPerLayer ?? gs / 2;
  if (!(Number.isInteger(perLayer) && perLayer >= 0 && perLayer <= gs / 2)) {
    throw new RangeError(`pairsPerLayer must be an integer in [0, ${gs / 2}], got ${perLayer}`);
  }
  const groups = inFeatures / gs;
  const slots = gs / 2;
  const pairs = new Int32Array(krot * inFeatures);
  const mask = new Uint8Array((krot * inFeatures) / 2);
  const rng = new Rng(seed);
  const base = candidatePairs(gs);
  const order = new Int32Array(base.length);
  let realPairCount = 0;
  for (let g = 0; g < groups; g++) {
    order.set(base);
    rng.shuffle(order);
    const sel = selectGroupLayers(order, gs, krot, perLayer);
    realPairCount += sel.real;
    for (let r = 0; r < krot; r++) {
      pairs.set(sel.layers.subarray(r * gs, (r + 1) * gs), r * inFeatures + g * gs);
      mask.set(sel.mask.subarray(r * slots, (r + 1) * slots), (r * inFeatures) / 2 + g * slots);
    }
  }
  return { pairs, mask, realPairCount };
}
