// Scaled dot-product attention with GQA on the cpu backend. Per (batch, head) the score matrix S = Q·Kᵀ and the
// products P·V, dS·K, ... run on the fast matmul; masking and softmax are JS loops. Dense per head: this is the
// reference implementation, not a long-context one.
import type { AttentionMask, AttentionShape } from '../backend.js';
import { matmulF32, transpose } from './matmul.js';

/** Visible key intervals of query i: [lo0, hi0) ∪ [lo1, hi1) (empty when hi ≤ lo). */
interface Visibility {
  lo0: number; hi0: number; lo1: number; hi1: number;
}

function visibility(mask: AttentionMask, b: number, i: number, tk: number, out: Visibility): void {
  out.lo1 = 0;
  out.hi1 = 0;
  switch (mask.kind) {
    case 'causal':
      out.lo0 = 0;
      out.hi0 = Math.min(tk, mask.qOffset + i + 1);
      return;
    case 'full':
    case 'prefix':
      out.lo0 = 0;
      out.hi0 = tk;
      return;
    case 'dflash': {
      const n = Math.floor(i / mask.blockSize);
      const idx = b * mask.nBlocks + n;
      if (!mask.keep[idx]) {
        out.lo0 = 0;
        out.hi0 = 0;
        return;
      }
      out.lo0 = 0;
      out.hi0 = Math.min(mask.anchors[idx], mask.ctxLen); // context strictly before the anchor
      out.lo1 = mask.ctxLen + n * mask.blockSize;
      out.hi1 = Math.min(tk, out.lo1 + mask.blockSize);
      return;
    }
  }
}

/** Copy head h (width D) of rows [row0, row0+n) of a [*, stride] matrix into a dense [n, D] array. */
function gatherHead(src: Float32Array, row0: number, n: number, stride: number, h: number, D: number): Float32Array {
  const out = new Float32Array(n * D);
  for (let r = 0; r < n; r++) {
    const s = (row0 + r) * stride + h * D;
    out.set(src.subarray(s, s + D), r * D);
  }
  return out;
}

function scatterHead(dst: Float32Array, src: Float32Array, row0: number, n: number, stride: number, h: number, D: number, accumulate: boolean): void {
  for (let r = 0; r < n; r++) {
    const d = (row0 + r) * stride + h * D;
    if (accumulate) for (let c = 0; c < D; c++) dst[d + c] += src[r * D + c];
    else dst.set(src.subarray(r * D, r * D + D), d);
  }
}

/**
 * Turn raw scores S [tq, tk] into probabilities in place (masked entries 0), writing the log-sum-exp of the
 * scaled scores per row into lse (−inf for a row that sees nothing).
 */
function softmaxMasked(S: Float32Array, tq: number, tk: number, scale: number, mask: AttentionMask, b: number, lse: Float32Array, lseOff: number): void {
  const vis: Visibility = { lo0: 0, hi0: 0, lo1: 0, hi1: 0 };
  for (let i = 0; i < tq; i++) {
    visibility(mask, b, i, tk, vis);
    const o = i * tk;
    let mx = -Infinity;
    for (let j = vis.lo0; j < vis.hi0; j++) if (S[o + j] > mx) mx = S[o + j];
    for (let j = vis.lo1; j < vis.hi1; j++) if (S[o + j] > mx) mx = S[o + j];
    if (mx === -Infinity) {
      S.fill(0, o, o + tk);
      lse[lseOff + i] = -Infinity;
      continue;
    }
    mx *= scale; // scale > 0, so the max of the scaled scores
    // One exp per visible entry: store e^(s·scale − max), then normalise.
    let sum = 0;
    for (let j = vis.lo0; j < vis.hi0; j++) {
      const e = Math.exp(S[o + j] * scale - mx);
      S[o + j] = e;
      sum += e;
    }
    for (let j = vis.lo1; j < vis.hi1; j++) {
      const e = Math.exp(S[o + j] * scale - mx);
      S[o + j] = e;
      sum += e;
    }
    lse[lseOff + i] = mx + Math.log(sum);
    const inv = 1 / sum;
    // Zero the invisible gaps: [0, lo0), [hi0, lo1), [max(hi0, hi1), tk).
    S.fill(0, o, o + vis.lo0);
    if (vis.hi1 > vis.lo1) {
      S.fill(0, o + vis.hi0, o + vis.lo1);
      S.fill(0, o + vis.hi1, o + tk);
    } else {
      S.fill(0, o + vis.hi0, o + tk);
    }
    for (let j = vis.lo0; j < vis.hi0; j++) S[o + j] *= inv;
    for (let j = vis.lo1; j < vis.hi1; j++) S[o + j] *= inv;
  }
}

export function attentionForward(
  q: Float32Array, k: Float32Array, v: Float32Array, shape: AttentionShape, mask: AttentionMask,
): { out: Float32Array; lse: Float32Array } {
  const { batch, tq, tk, heads, kvHeads, headDim: D } = shape;
  const stride = shape.kvStride ?? tk;
  const scale = shape.scale ?? 1 / Math.sqrt(D);
  const qW = heads * D;
  const kW = kvHeads * D;
  const group = heads / kvHeads;
  const out = new Float32Array(batch * tq * qW);
  const lse = new Float32Array(batch * heads * tq);
  for (let b = 0; b < batch; b++) {
    for (let g = 0; g < kvHeads; g++) {
      const Kt = transpose(gatherHead(k, b * stride, tk, kW, g, D), tk, D); // [D, tk]
      const Vg = gatherHead(v, b * stride, tk, kW, g, D); // [tk, D]
      for (let hh = 0; hh < group; hh++) {
        const h = g * group + hh;
        const Qh = gatherHead(q, b * tq, tq, qW, h, D); // [tq, D]
        const S = matmulF32(Qh, Kt, tq, D, tk); // [tq, tk]
        softmaxMasked(S, tq, tk, scale, mask, b, lse, (b * heads + h) * tq);
        const O = matmulF32(S, Vg, tq, tk, D); // [tq, D]
        scatterHead(out, O, b * tq, tq, qW, h, D, false);
      }
    }
  }
  return { out, lse };
}

/**
 * Backward: with P recomputed from the scores and lse, dV = Pᵀ·dO, dP = dO·Vᵀ, dS = P ⊙ (dP − rowsum(dO ⊙ O)),
 * dQ = scale·dS·K, dK = scale·dSᵀ·Q; GQA heads sharing a KV head accumulate into it.
 */
export function attentionBackward(
  dout: Float32Array, q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array, lse: Float32Array,
  shape: AttentionShape, mask: AttentionMask,
): { dq: Float32Array; dk: Float32Array; dv: Float32Array } {
  const { batch, tq, tk, heads, kvHeads, headDim: D } = shape;
  const stride = shape.kvStride ?? tk;
  const scale = shape.scale ?? 1 / Math.sqrt(D);
  const qW = heads * D;
  const kW = kvHeads * D;
  const group = heads / kvHeads;
  const dq = new Float32Array(batch * tq * qW);
  const dk = new Float32Array(batch * stride * kW);
  const dv = new Float32Array(batch * stride * kW);
  const vis: Visibility = { lo0: 0, hi0: 0, lo1: 0, hi1: 0 };
  for (let b = 0; b < batch; b++) {
    for (let g = 0; g < kvHeads; g++) {
      const Kg = gatherHead(k, b * stride, tk, kW, g, D); // [tk, D]
      const Kt = transpose(Kg, tk, D); // [D, tk]
      const Vg = gatherHead(v, b * stride, tk, kW, g, D); // [tk, D]
      const Vt = transpose(Vg, tk, D); // [D, tk]
      const dKg = new Float32Array(tk * D);
      const dVg = new Float32Array(tk * D);
      for (let hh = 0; hh < group; hh++) {
        const h = g * group + hh;
        const Qh = gatherHead(q, b * tq, tq, qW, h, D);
        const dOh = gatherHead(dout, b * tq, tq, qW, h, D);
        const Oh = gatherHead(out, b * tq, tq, qW, h, D);
        const P = matmulF32(Qh, Kt, tq, D, tk); // scores, turned into P below
        const lseOff = (b * heads + h) * tq;
        for (let i = 0; i < tq; i++) {
          visibility(mask, b, i, tk, vis);
          const l = lse[lseOff + i];
          const o = i * tk;
          for (let j = 0; j < tk; j++) {
            const visible = (j >= vis.lo0 && j < vis.hi0) || (j >= vis.lo1 && j < vis.hi1);
            P[o + j] = visible && l !== -Infinity ? Math.exp(P[o + j] * scale - l) : 0;
          }
        }
        const dP = matmulF32(dOh, Vt, tq, D, tk); // [tq, tk]
        for (let i = 0; i < tq; i++) {
          let di = 0;
          for (let c = 0; c < D; c++) di += dOh[i * D + c] * Oh[i * D + c];
          const o = i * tk;
          for (let j = 0; j < tk; j++) dP[o + j] = P[o + j] * (dP[o + j] - di) * scale; // dS·scale
        }
        const Pt = transpose(P, tq, tk); // [tk, tq]
        const dVh = matmulF32(Pt, dOh, tk, tq, D);
        const dQh = matmulF32(dP, Kg, tq, tk, D);
        const dSt = transpose(dP, tq, tk);
        const dKh = matmulF32(dSt, Qh, tk, tq, D);
        for (let e = 0; e < tk * D; e++) {
          dKg[e] += dKh[e];
          dVg[e] += dVh[e];
        }
        scatterHead(dq, dQh, b * tq, tq, qW, h, D, false);
      }
      scatterHead(dk, dKg, b * stride, tk, kW, g, D, true);
      scatterHead(dv, dVg, b * stride, tk, kW, g, D, true);
    }
  }
  return { dq, dk, dv };
}
