// Random anchor positions per training sequence (dflash-spec §3.3, SpecForge _sample_anchor_positions): anchors are
// response tokens that leave room for a full block; N = min(maxAnchors, max_b |valid_b| − 1) per micro-batch; each
// sequence draws min(N, |valid_b|) of its valid positions uniformly without replacement, sorted; the rest of its N
// block slots are disabled (keep 0, anchor 0). Fresh every visit (the caller passes a fresh Rng).
import { Rng } from '../numerics/rng.js';
import { UserError } from '../errors.js';

/** Positions p ∈ [0, S − B] with lossMask[p] = 1. */
export function validAnchorPositions(lossMask: Uint8Array, blockSize: number): Int32Array {
  const S = lossMask.length;
  const out: number[] = [];
  for (let p = 0; p + blockSize <= S; p++) if (lossMask[p]) out.push(p);
  return Int32Array.from(out);
}

/** N for a micro-batch (§3.3); a UserError when no sequence has two valid anchors. */
export function anchorsPerSequence(validCounts: readonly number[], maxAnchors: number): number {
  const maxValid = validCounts.reduce((a, b) => Math.max(a, b), 0);
  const n = Math.min(maxAnchors, maxValid - 1);
  if (n <= 0) {
    throw new UserError(`no sequence of this batch has enough response tokens for a block: need at least 2 response positions p with p + block_size ≤ sequence length, the best has ${maxValid}`);
  }
  return n;
}

export interface AnchorDraw {
  anchors: Int32Array; // [N], sorted ascending over the kept prefix, 0 for disabled slots
  keep: Uint8Array; // [N]
}

/** Draw the anchors of one sequence: min(N, |valid|) distinct valid positions, sorted, then disabled slots. */
export function sampleAnchors(valid: Int32Array, N: number, rng: Rng): AnchorDraw {
  const take = Math.min(N, valid.length);
  const idx = rng.sampleWithoutReplacement(valid.length, take); // sorted indices into valid (valid is ascending)
  const anchors = new Int32Array(N);
  const keep = new Uint8Array(N);
  for (let i = 0; i < take; i++) {
    anchors[i] = valid[idx[i]];
    keep[i] = 1;
  }
  return { anchors, keep };
}

/** A reproducible generator for (seed, epoch, sequence index): resuming at any step redraws the same anchors. */
export function anchorRng(seed: number, epoch: number, seqIndex: number): Rng {
  // Mix the three integers into one 32-bit seed (odd multipliers, xor-shift), so nearby triples decorrelate.
  let h = Math.imul(seed ^ 0x5bd1e995, 0x9e3779b1);
  h = Math.imul(h ^ (epoch + 0x27d4eb2d), 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h ^ (seqIndex + 0x165667b1), 0xc2b2ae35);
  h ^= h >>> 16;
  return new Rng(h);
}
