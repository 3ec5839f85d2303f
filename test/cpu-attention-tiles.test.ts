// The cpu attention kernels with several query tiles (attention-kernels.ts skips the keys a tile cannot see): forward
// and backward against a dense float64 implementation of the same formulas, for causal, offset-causal, full and
// DFlash masks with GQA.
import { beforeAll, describe, expect, it } from 'vitest';
import { dflashVisible, randn as randnFrom, relErr } from './numeric.js';
import { Rng } from '../src/numerics/rng.js';
import { initMatmul } from '../src/engine/cpu/matmul.js';
import { attentionBackward, attentionForward } from '../src/engine/cpu/attention.js';
import type { AttentionMask, AttentionShape } from '../src/engine/backend.js';

const rng = new Rng(Date.now() & 0xffff);
const randn = (n: number): Float32Array => randnFrom(rng, n);

/**
 * Dense float64 attention and its gradients: per (b, h) P = softmax(scale·Q·Kᵀ) over visible keys,
 * O = P·V, dV = Pᵀ·dO, dS = P ⊙ (dO·Vᵀ − rowsum(dO ⊙ O)), dQ = scale·dS·K, dK = scale·dSᵀ·Q.
 */
function denseReference(
  q: Float32Array, k: Float32Array, v: Float32Array, dout: Float32Array, s: AttentionShape, visible: (b: number, i: number, j: number) => boolean,
): { out: Float64Array; dq: Float64Array; dk: Float64Array; dv: Float64Array } {
  const D = s.headDim;
  const stride = s.kvStride ?? s.tk;
  const qW = s.heads * D;
  const kW = s.kvHeads * D;
  const G = s.heads / s.kvHeads;
  const scale = 1 / Math.sqrt(D);
  const out = new Float64Array(q.length);
  const dq = new Float64Array(q.length);
  const dk = new Float64Array(k.length);
  const dv = new Float64Array(v.length);
  const P = new Float64Array(s.tk);
  for (let b = 0; b < s.batch; b++) {
    for (let h = 0; h < s.heads; h++) {
      const g = Math.floor(h / G);
      for (let i = 0; i < s.tq; i++) {
        const qo = (b * s.tq + i) * qW + h * D;
        let mx = -Infinity;
        for (let j = 0; j < s.tk; j++) {
          if (!visible(b, i, j)) { P[j] = -Infinity; continue; }
          let sc = 0;
          for (let d = 0; d < D; d++) sc += q[qo + d] * k[(b * stride + j) * kW + g * D + d];
          P[j] = sc * scale;
          mx = Math.max(mx, P[j]);
        }
        if (mx === -Infinity) continue; // sees nothing: zero output and gradients
        let sum = 0;
        for (let j = 0; j < s.tk; j++) sum += (P[j] = P[j] === -Infinity ? 0 : Math.exp(P[j] - mx));
        for (let j = 0; j < s.tk; j++) P[j] /= sum;
        for (let j = 0; j < s.tk; j++) for (let d = 0; d < D; d++) out[qo + d] += P[j] * v[(b * stride + j) * kW + g * D + d];
        let di = 0;
        for (let d = 0; d < D; d++) di += dout[qo + d] * out[qo + d];
        for (let j = 0; j < s.tk; j++) {
          if (P[j] === 0) continue;
          const ko = (b * stride + j) * kW + g * D;
          let dp = 0;
          for (let d = 0; d < D; d++) dp += dout[qo + d] * v[ko + d];
          const ds = P[j] * (dp - di) * scale;
          for (let d = 0; d < D; d++) {
            dv[ko + d] += P[j] * dout[qo + d];
            dq[qo + d] += ds * k[ko + d];
            dk[ko + d] += ds * q[qo + d];
          }
        }
      }
    }
  }
  return { out, dq, dk, dv };
}

beforeAll(async () => {
  await initMatmul();
});

describe('tiled attention against dense float64', () => {
  const D = 16;
  const cases: { name: string; shape: AttentionShape; mask: AttentionMask; visible: (b: number, i: number, j: number) => boolean }[] = [
    {
      name: 'causal, 3 query tiles, GQA 3:1', shape: { batch: 2, tq: 290, tk: 290, heads: 3, kvHeads: 1, headDim: D },
      mask: { kind: 'causal', qOffset: 0 }, visible: (_b, i, j) => j <= i,
    },
    {
      name: 'causal with offset and kvStride', shape: { batch: 1, tq: 150, tk: 330, kvStride: 345, heads: 2, kvHeads: 2, headDim: D },
      mask: { kind: 'causal', qOffset: 180 }, visible: (_b, i, j) => j <= 180 + i,
    },
    {
      name: 'full', shape: { batch: 1, tq: 140, tk: 90, heads: 2, kvHeads: 1, headDim: D }, mask: { kind: 'full' }, visible: () => true,
    },
  ];
  {
    const ctxLen = 170;
    const B = 24;
    const nBlocks = 8; // tiles of 128 rows cut through block 5
    const anchors = Int32Array.from({ length: 2 * nBlocks }, (_, i) => (i * 61 + 7) % (ctxLen + 20)); // some past ctxLen
    anchors[3] = 0;
    const keep = Uint8Array.from({ length: 2 * nBlocks }, (_, i) => (i % 5 === 2 ? 0 : 1));
    cases.push({
      name: 'dflash block mask across tiles', shape: { batch: 2, tq: nBlocks * B, tk: ctxLen + nBlocks * B, heads: 4, kvHeads: 2, headDim: D },
      mask: { kind: 'anchoredBlocks', ctxLen, blockSize: B, nBlocks, anchors, keep },
      visible: dflashVisible(ctxLen, B, nBlocks, anchors, keep),
    });
  }
  for (const c of cases) {
    it(`${c.name}: forward and backward match`, () => {
      const s = c.shape;
      const stride = s.kvStride ?? s.tk;
      const q = randn(s.batch * s.tq * s.heads * D);
      const k = randn(s.batch * stride * s.kvHeads * D);
      const v = randn(s.batch * stride * s.kvHeads * D);
      const dout = randn(q.length);
      const ref = denseReference(q, k, v, dout, s, c.visible);
      const { out, lse } = attentionForward(q, k, v, s, c.mask);
      expect(relErr(out, ref.out)).toBeLessThan(1e-5);
      const { dq, dk, dv } = attentionBackward(dout, q, k, v, out, lse, s, c.mask);
      expect(relErr(dq, ref.dq)).toBeLessThan(1e-5);
      expect(relErr(dk, ref.dk)).toBeLessThan(1e-5);
      expect(relErr(dv, ref.dv)).toBeLessThan(1e-5);
      // Rows that see nothing (disabled DFlash blocks) have zero output and an lse of −∞.
      if (c.mask.kind === 'anchoredBlocks') {
        const b = 0;
        const n = 2; // keep[2] = 0
        const i = n * c.mask.blockSize;
        expect(lse[(b * s.heads) * s.tq + i]).toBe(-Infinity);
        expect(Array.from(out.subarray((b * s.tq + i) * s.heads * D, (b * s.tq + i + 1) * s.heads * D)).every((x) => x === 0)).toBe(true);
      }
    });
  }
});
