// The drafter (dflash-spec §2, §8 items 4–5): the training forward over all blocks of a sequence equals the
// inference pass with a context cache (train ≡ infer), is sensitive to the strict "< anchor" rule, ignores other
// blocks and disabled blocks, and its backward matches finite differences of the loss for every trainable tensor.
import { beforeAll, describe, expect, it } from 'vitest';
import { CpuBackend } from '../src/engine/cpu/backend.js';
import type { Backend, Tensor } from '../src/engine/backend.js';
import { Rng } from '../src/numerics/rng.js';
import { sliceRows } from '../src/dflash/rows.js';
import { Drafter, drafterInvFreq, trainBackward, trainForward, freeTrainSaved, type TrainSequence } from '../src/dflash/drafter.js';
import { drafterTensors, initDrafterWeights, type DrafterWeights, type SharedTargetParts } from '../src/dflash/drafter-weights.js';
import type { KVCache } from '../src/model/kvcache.js';
import { headLoss } from '../src/dflash/loss.js';
import type { DrafterConfig } from '../src/dflash/drafter-config.js';
import { randn, smallDrafterConfig } from './dflash-helpers.js';

let be: Backend;
beforeAll(async () => {
  be = await CpuBackend.create();
});

/** Drafter weights with non-trivial norms (init sets them to 1, which would hide norm-weight bugs). */
function randomWeights(c: DrafterConfig, seed: number): DrafterWeights {
  const w = initDrafterWeights(be, c, seed, 0.3);
  const rng = new Rng(seed + 99);
  for (const { spec, tensor } of drafterTensors(c, w)) {
    if (spec.kind === 'norm') {
      const d = be.toHost(tensor);
      for (let i = 0; i < d.length; i++) d[i] = 1 + 0.3 * rng.normal();
      const t2 = be.fromHost(d, spec.shape);
      be.copyRows(be.reshape(tensor, [1, d.length]), 0, be.reshape(t2, [1, d.length]), 0, 1);
    }
  }
  return w;
}

function setup(seed: number, over: Partial<DrafterConfig> = {}) {
  const c = smallDrafterConfig(over);
  const rng = new Rng(seed);
  const w = randomWeights(c, seed);
  const shared: SharedTargetParts = {
    embed: be.fromHost(randn(rng, c.vocabSize * c.hiddenSize), [c.vocabSize, c.hiddenSize]),
    lmHead: be.fromHost(randn(rng, c.vocabSize * c.hiddenSize, 0.5), [c.vocabSize, c.hiddenSize]),
  };
  const S = 14;
  const nTaps = c.targetLayerIds.length;
  const taps = be.fromHost(randn(rng, S * nTaps * c.hiddenSize), [S, nTaps * c.hiddenSize]);
  const ids = Int32Array.from({ length: S }, () => 2 + rng.nextInt(c.vocabSize - 2));
  return { c, w, shared, taps, ids, S, rng };
}

function blockIdsFor(ids: Int32Array, anchors: Int32Array, keep: Uint8Array, c: DrafterConfig): Int32Array {
  const B = c.blockSize;
  const out = new Int32Array(anchors.length * B).fill(c.maskTokenId);
  anchors.forEach((a, n) => { if (keep[n]) out[n * B] = ids[a]; });
  return out;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function rows(t: Tensor, r0: number, n: number): Float32Array {
  const cols = t.shape[1];
  return be.toHost(t).slice(r0 * cols, (r0 + n) * cols);
}

describe.each([1, 2, 1000])('drafter train ≡ infer (%i blocks per attention call)', (G) => {
  it('each training block equals an inference pass with context [0, a) (fresh and incremental cache)', () => {
    const { c, w, shared, taps, ids } = setup(1);
    const B = c.blockSize;
    const anchors = Int32Array.from([0, 3, 7, 9, 0]);
    const keep = Uint8Array.from([1, 1, 1, 1, 0]);
    const seq: TrainSequence = { taps, anchors, keep, blockIds: blockIdsFor(ids, anchors, keep, c) };
    const { out } = trainForward(be, c, w, shared, drafterInvFreq(c), seq, false, { groupBlocks: G });
    const drafter = new Drafter(be, c, w, shared);
    const width = taps.shape[1];
    for (let n = 0; n < 4; n++) {
      const a = anchors[n];
      const cache = drafter.newCache(4); // small: forces growth
      const ctx = a > 0 ? sliceRows(be, taps, 0, a) : null;
      const block = new Int32Array(B).fill(c.maskTokenId);
      block[0] = ids[a];
      const h = drafter.draft(cache, ctx, block, a);
      expect(cache.length).toBe(a);
      expect(maxAbsDiff(be.toHost(h), rows(out, n * B, B))).toBeLessThan(1e-5);
      expect(width).toBe(c.targetLayerIds.length * c.hiddenSize);
    }
    // Incremental: the cache filled by earlier steps gives the same block as a fresh one.
    const cache = drafter.newCache(2);
    let prev = 0;
    for (const n of [1, 2, 3]) {
      const a = anchors[n];
      const block = new Int32Array(B).fill(c.maskTokenId);
      block[0] = ids[a];
      const h = drafter.draft(cache, sliceRows(be, taps, prev, a - prev), block, a);
      expect(cache.length).toBe(a);
      expect(maxAbsDiff(be.toHost(h), rows(out, n * B, B))).toBeLessThan(1e-5);
      prev = a;
    }
  });

  it('seeing the anchor position itself (p ≤ a) gives a different block: the strict rule is what makes them equal', () => {
    const { c, w, shared, taps, ids } = setup(2);
    const B = c.blockSize;
    const anchors = Int32Array.from([6]);
    const keep = Uint8Array.from([1]);
    const { out } = trainForward(be, c, w, shared, drafterInvFreq(c), { taps, anchors, keep, blockIds: blockIdsFor(ids, anchors, keep, c) }, false, { groupBlocks: G });
    const drafter = new Drafter(be, c, w, shared);
    const block = new Int32Array(B).fill(c.maskTokenId);
    block[0] = ids[6];
    const strict = drafter.newCache(16);
    const hStrict = drafter.draft(strict, sliceRows(be, taps, 0, 6), block, 6);
    expect(maxAbsDiff(be.toHost(hStrict), rows(out, 0, B))).toBeLessThan(1e-5);
    // With the anchor's own features visible (context [0, a]) at the same block positions, outputs move by O(1).
    const leak2 = drafter.newCache(16);
    leak2.reserve(32);
    const hInclusive = inclusiveDraft(drafter, leak2, taps, block, 6);
    expect(maxAbsDiff(hInclusive, rows(out, 0, B))).toBeGreaterThan(1e-2);
  });

  it('blocks do not see each other, and a disabled block outputs the same whatever the others hold', () => {
    const { c, w, shared, taps, ids, rng } = setup(3);
    const B = c.blockSize;
    const anchors = Int32Array.from([2, 5, 0]);
    const keep = Uint8Array.from([1, 1, 0]);
    const base = trainForward(be, c, w, shared, drafterInvFreq(c), { taps, anchors, keep, blockIds: blockIdsFor(ids, anchors, keep, c) }, false, { groupBlocks: G }).out;
    // Change block 1's anchor token: block 0 and the disabled block must not move.
    const ids2 = ids.slice();
    ids2[5] = (ids[5] + 1 - 2 + (c.vocabSize - 2)) % (c.vocabSize - 2) + 2;
    void rng;
    const moved = trainForward(be, c, w, shared, drafterInvFreq(c), { taps, anchors, keep, blockIds: blockIdsFor(ids2, anchors, keep, c) }, false, { groupBlocks: G }).out;
    expect(maxAbsDiff(rows(base, 0, B), rows(moved, 0, B))).toBe(0);
    expect(maxAbsDiff(rows(base, 2 * B, B), rows(moved, 2 * B, B))).toBe(0);
    expect(maxAbsDiff(rows(base, B, B), rows(moved, B, B))).toBeGreaterThan(1e-3);
    // Changing context features at or after an anchor does not move that block (context strictly before it).
    const t2 = be.toHost(taps);
    const width = taps.shape[1];
    for (let p = 2; p < 14; p++) for (let j = 0; j < width; j++) t2[p * width + j] += 1;
    const taps2 = be.fromHost(t2, taps.shape);
    const moved2 = trainForward(be, c, w, shared, drafterInvFreq(c), { taps: taps2, anchors, keep, blockIds: blockIdsFor(ids, anchors, keep, c) }, false, { groupBlocks: G }).out;
    expect(maxAbsDiff(rows(base, 0, B), rows(moved2, 0, B))).toBe(0);
    expect(maxAbsDiff(rows(base, B, B), rows(moved2, B, B))).toBeGreaterThan(1e-3);
  });
});

/** Inference pass whose context is [0, a] (one row too many) while the block still sits at positions a.. . */
function inclusiveDraft(d: Drafter, cache: KVCache, taps: Tensor, block: Int32Array, a: number): Float32Array {
  // Fill the cache with context rows 0..a via a pass that starts at a + 1, then run the block at a by hand:
  // cache.length is set back so the block K/V rows land after the a + 1 context rows.
  const B = block.length;
  const c = d.cfg;
  d.draft(cache, sliceRows(be, taps, 0, a + 1), new Int32Array(B).fill(c.maskTokenId), a + 1);
  // Now run a block at positions a.. against the a + 1 cached rows: emulate by a custom prefix pass.
  return be.toHost(prefixPassAt(d, cache, block, a));
}

/** Same math as Drafter.draft's block part, with the block placed at position `pos` and all cached rows visible. */
function prefixPassAt(d: Drafter, cache: KVCache, block: Int32Array, pos: number): Tensor {
  const c = d.cfg;
  const B = block.length;
  const ctxLen = cache.length;
  const D = c.headDim;
  const posB = Int32Array.from({ length: B }, (_, i) => pos + i);
  let x = be.gatherRows(d.shared.embed, block);
  for (let l = 0; l < c.numLayers; l++) {
    const L = d.weights.layers[l];
    const h = be.rmsnorm(x, L.inputNorm, c.rmsNormEps).y;
    const hn = (t: Tensor, wn: Tensor) => be.reshape(be.rmsnorm(be.reshape(t, [t.size / D, D]), wn, c.rmsNormEps).y, t.shape);
    const q = be.rope(hn(be.matmul(h, L.q, { transB: true }), L.qNorm), posB, d.invFreq, D);
    const k = be.rope(hn(be.matmul(h, L.k, { transB: true }), L.kNorm), posB, d.invFreq, D);
    const v = be.matmul(h, L.v, { transB: true });
    cache.writeAt(l, ctxLen, k, v, B);
    const { out: attn } = be.attention(q, cache.k[l], cache.v[l], { batch: 1, tq: B, tk: ctxLen + B, kvStride: cache.capacity, heads: c.numHeads, kvHeads: c.numKvHeads, headDim: D }, { kind: 'full' });
    const x1 = be.add(x, be.matmul(attn, L.o, { transB: true }));
    const h2 = be.rmsnorm(x1, L.postNorm, c.rmsNormEps).y;
    const m = be.swiglu(be.matmul(h2, L.gate, { transB: true }), be.matmul(h2, L.up, { transB: true }));
    x = be.add(x1, be.matmul(m, L.down, { transB: true }));
  }
  return be.rmsnorm(x, d.weights.norm, c.rmsNormEps).y;
}

describe.each([1, 1000])('drafter backward (%i blocks per attention call)', (G) => {
  it('matches central finite differences of the weighted loss for every trainable tensor', () => {
    const { c, w, shared, taps, ids, rng } = setup(4, { numLayers: 2 });
    const B = c.blockSize;
    const anchors = Int32Array.from([1, 4, 8, 0]);
    const keep = Uint8Array.from([1, 1, 1, 0]);
    const seq: TrainSequence = { taps, anchors, keep, blockIds: blockIdsFor(ids, anchors, keep, c) };
    const NB = anchors.length * B;
    const labels = Int32Array.from({ length: NB }, () => rng.nextInt(c.vocabSize));
    const weights = Float32Array.from({ length: NB }, (_, r) => (r % B === 0 || !keep[Math.floor(r / B)] ? 0 : 0.2 + rng.nextFloat()));
    const inv = drafterInvFreq(c);
    const lossAt = (): number => {
      const { out } = trainForward(be, c, w, shared, inv, seq, false, { groupBlocks: G });
      return headLoss(be, out, shared.lmHead, labels, weights, 7, false).loss;
    };
    const { out, saved } = trainForward(be, c, w, shared, inv, seq, true, { groupBlocks: G });
    const h = headLoss(be, out, shared.lmHead, labels, weights, 7);
    const grads = trainBackward(be, c, w, inv, saved!, h.dHidden);
    freeTrainSaved(be, saved!);
    const gList = drafterTensors(c, grads);
    for (const [k, { spec, tensor }] of drafterTensors(c, w).entries()) {
      const p = be.toHost(tensor);
      const dir = randn(rng, p.length);
      let dn = 0;
      for (const x of dir) dn += x * x;
      dn = Math.sqrt(dn);
      for (let i = 0; i < dir.length; i++) dir[i] /= dn;
      const g = be.toHost(gList[k].tensor);
      let analytic = 0;
      for (let i = 0; i < p.length; i++) analytic += g[i] * dir[i];
      const eps = 1e-2;
      const set = (s: number) => {
        const q = Float32Array.from(p, (x, i) => x + s * eps * dir[i]);
        const t2 = be.fromHost(q, [1, q.length]);
        be.copyRows(be.reshape(tensor, [1, q.length]), 0, t2, 0, 1);
      };
      set(1);
      const lp = lossAt();
      set(-1);
      const lm = lossAt();
      set(0);
      const numeric = (lp - lm) / (2 * eps);
      const scale = Math.max(Math.abs(numeric), Math.abs(analytic), 1e-3);
      expect(Math.abs(numeric - analytic) / scale, `${spec.name}: analytic ${analytic} numeric ${numeric}`).toBeLessThan(2e-2);
    }
  });
});
