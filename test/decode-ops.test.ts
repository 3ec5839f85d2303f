// The engine operations batched decoding (dflash/batch-decode.ts) is built on, on the cpu backend: scatterRows
// against a host loop (and copyRows' rounding), and attention with the 'causalPerEntry' mask against a float64
// reference and, bit for bit, against one 'causal' call per batch entry (what per-prompt decoding computed),
// including a k/v with spare rows and a call large enough to be split over the worker threads.
import { beforeAll, describe, expect, it } from 'vitest';
import { CpuBackend } from '../src/engine/cpu/backend.js';
import type { AttentionShape, Backend, Tensor } from '../src/engine/backend.js';
import { Rng } from '../src/numerics/rng.js';
import { randn, sameBits } from './numeric.js';

let be: Backend;
beforeAll(async () => {
  be = await CpuBackend.create();
});

describe('scatterRows', () => {
  it('writes row i of src to row rows[i] of dst and leaves the other rows', () => {
    const rng = new Rng(4);
    const R = 50, C = 24;
    const dstHost = randn(rng, R * C);
    const srcHost = randn(rng, 7 * C);
    const rows = Int32Array.of(49, 0, 13, 7, 31, 2, 30);
    const dst = be.fromHost(dstHost, [R, C]);
    be.scatterRows(dst, rows, be.fromHost(srcHost, [7, C]));
    const want = dstHost.slice();
    rows.forEach((r, i) => want.set(srcHost.subarray(i * C, (i + 1) * C), r * C));
    expect(sameBits(be.toHost(dst), want)).toBe(true);
  });

  it('rounds into a bf16 destination as copyRows does', () => {
    const rng = new Rng(5);
    const src = be.fromHost(randn(rng, 3 * 16), [3, 16]);
    const a = be.zeros([10, 16], 'bf16');
    const b = be.zeros([10, 16], 'bf16');
    const rows = Int32Array.of(8, 1, 4);
    be.scatterRows(a, rows, src);
    rows.forEach((r, i) => be.copyRows(b, r, src, i, 1));
    const ha = be.toHost(a);
    expect(sameBits(ha, be.toHost(b))).toBe(true);
    expect(ha.subarray(8 * 16, 9 * 16).some((x) => x !== 0)).toBe(true);
  });

  it('refuses repeated or out-of-range indices and a row count that does not match', () => {
    const dst = be.zeros([4, 2]);
    const src = be.zeros([2, 2]);
    expect(() => be.scatterRows(dst, Int32Array.of(1, 1), src)).toThrow(/repeated/);
    expect(() => be.scatterRows(dst, Int32Array.of(1, 4), src)).toThrow(/outside/);
    expect(() => be.scatterRows(dst, Int32Array.of(1), src)).toThrow(/indices/);
  });
});

/** Rows [b·n, (b+1)·n) of a 2-D tensor as a new tensor. */
function entryRows(t: Tensor, b: number, n: number): Tensor {
  const out = be.zeros([n, t.shape[1]]);
  be.copyRows(out, 0, t, b * n, n);
  return out;
}

describe("attention with the 'causalPerEntry' mask", () => {
  const cases: { label: string; shape: AttentionShape; offsets: number[]; spareRows: number }[] = [
    {
      label: 'one query row per entry (decoding), spare cache slots', offsets: [39, 0, 17, 5], spareRows: 2 * 48,
      shape: { batch: 4, tq: 1, tk: 40, kvStride: 48, heads: 4, kvHeads: 2, headDim: 16 },
    },
    {
      label: 'several query rows, two tiles', offsets: [70, 0, 30], spareRows: 0,
      shape: { batch: 3, tq: 130, tk: 200, heads: 2, kvHeads: 1, headDim: 8 },
    },
    {
      label: 'split over threads', offsets: [496, 3, 250, 100], spareRows: 0,
      shape: { batch: 4, tq: 16, tk: 512, kvStride: 520, heads: 8, kvHeads: 2, headDim: 64 },
    },
  ];
  for (const c of cases) {
    it(`equals one causal call per entry bit for bit and a float64 reference: ${c.label}`, () => {
      const rng = new Rng(c.shape.batch * 1000 + c.shape.tq);
      const { batch, tq, tk, heads, kvHeads, headDim: D } = c.shape;
      const stride = c.shape.kvStride ?? tk;
      const kRows = batch * stride + c.spareRows;
      const qh = randn(rng, batch * tq * heads * D);
      const kh = randn(rng, kRows * kvHeads * D);
      const vh = randn(rng, kRows * kvHeads * D);
      const q = be.fromHost(qh, [batch * tq, heads * D]);
      const k = be.fromHost(kh, [kRows, kvHeads * D]);
      const v = be.fromHost(vh, [kRows, kvHeads * D]);
      const qOffsets = Int32Array.from(c.offsets);
      const got = be.toHost(be.attention(q, k, v, c.shape, { kind: 'causalPerEntry', qOffsets }).out);
      for (let b = 0; b < batch; b++) {
        // Entry b alone: its rows of q and its slot of k/v, keys up to its own last query row.
        const tkb = Math.min(tk, c.offsets[b] + tq);
        const one = { ...c.shape, batch: 1, tk: tkb, kvStride: stride };
        const mask = { kind: 'causal', qOffset: c.offsets[b] } as const;
        const ref = be.attention(entryRows(q, b, tq), entryRows(k, b, stride), entryRows(v, b, stride), one, mask);
        const w = tq * heads * D;
        expect(sameBits(got.subarray(b * w, (b + 1) * w), be.toHost(ref.out))).toBe(true);
      }
      // float64: row i of entry b sees keys j ≤ offsets[b] + i.
      const G = heads / kvHeads;
      let maxErr = 0;
      for (let b = 0; b < batch; b++) {
        for (let i = 0; i < tq; i++) {
          for (let h = 0; h < heads; h++) {
            const g = Math.floor(h / G);
            const qo = (b * tq + i) * heads * D + h * D;
            const e1 = Math.min(tk, c.offsets[b] + i + 1);
            const s = new Float64Array(e1);
            let mx = -Infinity;
            for (let j = 0; j < e1; j++) {
              const ko = (b * stride + j) * kvHeads * D + g * D;
              let dot = 0;
              for (let d = 0; d < D; d++) dot += qh[qo + d] * kh[ko + d];
              s[j] = dot / Math.sqrt(D);
              mx = Math.max(mx, s[j]);
            }
            let sum = 0;
            for (let j = 0; j < e1; j++) { s[j] = Math.exp(s[j] - mx); sum += s[j]; }
            for (let d = 0; d < D; d++) {
              let o = 0;
              for (let j = 0; j < e1; j++) o += s[j] * vh[(b * stride + j) * kvHeads * D + g * D + d];
              maxErr = Math.max(maxErr, Math.abs(o / sum - got[qo + d]));
            }
          }
        }
      }
      expect(maxErr).toBeLessThan(1e-5);
    });
  }

  it('refuses fewer offsets than batch entries', () => {
    const shape: AttentionShape = { batch: 2, tq: 1, tk: 4, heads: 1, kvHeads: 1, headDim: 4 };
    const q = be.zeros([2, 4]);
    const k = be.zeros([8, 4]);
    expect(() => be.attention(q, k, k, shape, { kind: 'causalPerEntry', qOffsets: Int32Array.of(3) })).toThrow(/offsets/);
  });
});
