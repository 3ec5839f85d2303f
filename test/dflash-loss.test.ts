// Anchors, labels and loss weights (dflash-spec §3.3, §3.5; §8 items 6–7), and the chunked head loss against a
// float64 recomputation.
import { beforeAll, describe, expect, it } from 'vitest';
import { CpuBackend } from '../src/engine/cpu/backend.js';
import type { Backend } from '../src/engine/backend.js';
import { Rng } from '../src/numerics/rng.js';
import { anchorRng, anchorsPerSequence, sampleAnchors, validAnchorPositions } from '../src/dflash/anchors.js';
import { blockInputIds, blockLabelsAndWeights, decayWeights, defaultGamma, headChunkRows, headLoss } from '../src/dflash/loss.js';
import { randn } from './dflash-helpers.js';

let be: Backend;
beforeAll(async () => {
  be = await CpuBackend.create();
});

describe('anchors', () => {
  it('valid positions are response tokens with room for a full block', () => {
    const mask = Uint8Array.from([0, 0, 1, 1, 1, 0, 1, 1, 1, 1]);
    expect(Array.from(validAnchorPositions(mask, 4))).toEqual([2, 3, 4, 6]);
    expect(Array.from(validAnchorPositions(mask, 11))).toEqual([]);
  });

  it('N = min(max anchors, max valid − 1), and an error when no sequence has two valid anchors', () => {
    expect(anchorsPerSequence([10, 30, 7], 512)).toBe(29);
    expect(anchorsPerSequence([10, 30, 7], 16)).toBe(16);
    expect(() => anchorsPerSequence([1, 0], 512)).toThrow(/enough response tokens/);
  });

  it('draws distinct sorted valid anchors, disables the rest, and redraws on every visit', () => {
    const rng = new Rng(5);
    const mask = new Uint8Array(200);
    for (let p = 40; p < 200; p++) if (rng.nextFloat() < 0.7) mask[p] = 1;
    const valid = validAnchorPositions(mask, 16);
    const d = sampleAnchors(valid, 64, anchorRng(3, 0, 7));
    const kept = Array.from(d.anchors).filter((_, i) => d.keep[i]);
    expect(kept.length).toBe(Math.min(64, valid.length));
    expect(new Set(kept).size).toBe(kept.length);
    for (let i = 1; i < kept.length; i++) expect(kept[i]).toBeGreaterThan(kept[i - 1]);
    for (const a of kept) {
      expect(mask[a]).toBe(1);
      expect(a).toBeLessThanOrEqual(200 - 16);
    }
    const few = sampleAnchors(Int32Array.from([5, 9]), 4, anchorRng(3, 0, 7));
    expect(Array.from(few.keep)).toEqual([1, 1, 0, 0]);
    expect(Array.from(few.anchors)).toEqual([5, 9, 0, 0]);
    // Another epoch (visit) gives another draw; the same (seed, epoch, sample) the same one.
    const again = sampleAnchors(valid, 64, anchorRng(3, 0, 7));
    const next = sampleAnchors(valid, 64, anchorRng(3, 1, 7));
    expect(Array.from(again.anchors)).toEqual(Array.from(d.anchors));
    expect(Array.from(next.anchors)).not.toEqual(Array.from(d.anchors));
  });

  it('is uniform over the valid positions (chi-square over many draws)', () => {
    const valid = Int32Array.from({ length: 20 }, (_, i) => 3 * i);
    const counts = new Map<number, number>();
    const draws = 4000;
    for (let t = 0; t < draws; t++) {
      const d = sampleAnchors(valid, 5, anchorRng(11, t, 0));
      for (let i = 0; i < 5; i++) counts.set(d.anchors[i], (counts.get(d.anchors[i]) ?? 0) + 1);
    }
    const expected = (draws * 5) / 20;
    let chi = 0;
    for (const p of valid) chi += ((counts.get(p) ?? 0) - expected) ** 2 / expected;
    expect(chi).toBeLessThan(43.8); // 19 degrees of freedom, p = 0.001
  });
});

describe('labels and weights', () => {
  it('γ = 7 decay weights are the published values; γ defaults 7 / 5 / 4', () => {
    const w = decayWeights(16, 7);
    const want = [0, 1.0, 0.8669, 0.7515, 0.6514, 0.5647, 0.4895, 0.4244, 0.3679, 0.3189, 0.2765, 0.2397, 0.2077, 0.1801, 0.1561, 0.1353];
    want.forEach((x, k) => expect(w[k]).toBeCloseTo(x, 4));
    expect([defaultGamma(16), defaultGamma(10), defaultGamma(8)]).toEqual([7, 5, 4]);
  });

  it('slot k is labelled with input_ids[a + k] (no shift); slot 0, masked, out-of-range and disabled slots weigh 0', () => {
    const ids = Int32Array.from([10, 11, 12, 13, 14, 15, 16, 17, 18]);
    const mask = Uint8Array.from([0, 0, 1, 1, 1, 0, 1, 1, 1]);
    const anchors = Int32Array.from([2, 6, 0]);
    const keep = Uint8Array.from([1, 1, 0]);
    const B = 4;
    const { labels, weights } = blockLabelsAndWeights(ids, mask, anchors, keep, B, 4);
    const e = (k: number) => Math.exp(-(k - 1) / 4);
    expect(Array.from(labels)).toEqual([-1, 13, 14, -1, -1, 17, 18, -1, -1, -1, -1, -1]);
    const want = [0, e(1), e(2), 0, 0, e(1), e(2), 0, 0, 0, 0, 0];
    want.forEach((x, i) => expect(weights[i]).toBeCloseTo(x, 6));
    expect(Array.from(blockInputIds(ids, anchors, keep, B, 99))).toEqual([12, 99, 99, 99, 16, 99, 99, 99, 99, 99, 99, 99]);
  });

  it('the chunked head loss equals Σ w·CE / (Σ w + 1e-6) computed by hand in float64, with its gradient', () => {
    const rng = new Rng(2);
    const R = 23;
    const H = 6;
    const V = 11;
    const hid = randn(rng, R * H);
    const head = randn(rng, V * H);
    const labels = Int32Array.from({ length: R }, () => rng.nextInt(V));
    const w = Float32Array.from({ length: R }, (_, r) => (r % 5 === 0 ? 0 : rng.nextFloat()));
    let wsum = 0;
    for (const x of w) wsum += x;
    const rowW = Float32Array.from(w, (x) => x / (wsum + 1e-6));
    const r = headLoss(be, be.fromHost(hid, [R, H]), be.fromHost(head, [V, H]), labels, rowW, 4);
    let want = 0;
    const dWant = new Float64Array(R * H);
    for (let i = 0; i < R; i++) {
      const z = new Float64Array(V);
      for (let v = 0; v < V; v++) for (let c = 0; c < H; c++) z[v] += hid[i * H + c] * head[v * H + c];
      const mx = Math.max(...z);
      let s = 0;
      for (const x of z) s += Math.exp(x - mx);
      const lse = mx + Math.log(s);
      want += (w[i] * (lse - z[labels[i]])) / (wsum + 1e-6);
      for (let v = 0; v < V; v++) {
        const g = rowW[i] * (Math.exp(z[v] - lse) - (v === labels[i] ? 1 : 0));
        for (let c = 0; c < H; c++) dWant[i * H + c] += g * head[v * H + c];
      }
    }
    expect(r.loss).toBeCloseTo(want, 5);
    const d = be.toHost(r.dHidden);
    for (let i = 0; i < d.length; i++) expect(d[i]).toBeCloseTo(dWant[i], 5);
    expect(r.counted).toBe(w.filter((x) => x > 0).length);
  });

  it('head chunks: 32 M logits on a host-memory backend, up to 1/8 of free device memory (≤ 2^28 logits) on a device', () => {
    const V = 151936;
    expect(headChunkRows(be, V)).toBe(Math.floor((32 << 20) / V)); // 220 rows: the cpu default
    expect(headChunkRows(be, 7)).toBe(Math.floor((32 << 20) / 7));
    const withMemory = (freeBytes: number): Backend => Object.assign(Object.create(be) as Backend, { memoryInfo: () => ({ freeBytes, totalBytes: 80e9 }) });
    expect(headChunkRows(withMemory(60e9), V)).toBe(Math.floor(2 ** 28 / V)); // capped: 1766 rows, 1 GiB of logits
    expect(headChunkRows(withMemory(8e9), V)).toBe(Math.floor(8e9 / 64 / V)); // logits + gradient in 1/8 of 8 GB
    expect(headChunkRows(withMemory(1e6), V)).toBe(Math.floor((32 << 20) / V)); // never below the host figure
  });
});
