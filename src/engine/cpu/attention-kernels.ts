// Worker kernel file: createAttentionKernels goes to the cpu worker threads as source text (toString(),
// thread-pool.ts), so it stays closure- and import-free: nothing from outside its own body but
// parameters and JS built-ins.
// Scaled dot-product attention with GQA on the cpu backend, as the Backend interface defines it (backend.ts).
// The work is cut into units (batch entry b, KV head g); the heads of a GQA group are stacked so that each GEMM
// packs a K/V operand once for all of them, and queries go in tiles of QT rows so that only the keys a tile can see
// are multiplied: with a causal mask about 5/8 of the dense work, with the anchored-blocks mask the context prefix up to the
// tile's last anchor plus its own blocks. Masking and softmax are JS loops on the tile's score block.
//
// The forward reproduces the dense per-head computation bit for bit (a row's softmax and its P·V sum over the same
// keys in the same order; skipped keys only contributed exact zeros). The backward sums dK, dV over tiles and heads in
// another order than a dense per-head version would: equal up to float rounding.
//
// createAttentionKernels is self-contained (no references outside its body) so that worker threads can run its
// source text (thread-pool.ts); it is given the GEMM to use.
import type { AttentionMask, AttentionShape } from '../backend.js';
import type { MatView } from './wasm-gemm.js';

export type GemmFn = (M: number, K: number, N: number, a: MatView, b: MatView, c: MatView, beta: 0 | 1, alpha: number) => void;

/**
 * The mask as plain numbers and typed arrays (transferable to a worker). kind: 0 causal (qOffsets[b] per batch entry
 * when given, else qOffset for all: 'causalPerEntry' and 'causal'), 1 full, 2 anchoredBlocks.
 */
export interface MaskSpec {
  kind: 0 | 1 | 2;
  qOffset: number;
  qOffsets: Int32Array | null;
  ctxLen: number;
  blockSize: number;
  nBlocks: number;
  anchors: Int32Array | null;
  keep: Uint8Array | null;
}

/** Geometry of a call (AttentionShape with the defaults resolved). */
export interface AttentionDims {
  batch: number;
  tq: number;
  tk: number;
  stride: number;
  heads: number;
  kvHeads: number;
  D: number;
  scale: number;
}

export interface AttentionArrays {
  q: Float32Array; // [batch·tq, heads·D]
  k: Float32Array; // [batch·stride, kvHeads·D]
  v: Float32Array;
  out: Float32Array; // [batch·tq, heads·D]
  lse: Float32Array; // [batch, heads, tq]
  dout?: Float32Array; // backward only
  dq?: Float32Array; // [batch·tq, heads·D], written
  dk?: Float32Array; // [batch·stride, kvHeads·D], accumulated (start from zeros)
  dv?: Float32Array;
}

export interface AttentionKernels {
  /** Forward of units u0..u1−1 (unit = b·kvHeads + g): writes out and lse of their heads. */
  forward(d: AttentionDims, m: MaskSpec, x: AttentionArrays, u0: number, u1: number): void;
  /** Backward of units u0..u1−1: writes dq of their heads, adds into dk and dv of their KV head. */
  backward(d: AttentionDims, m: MaskSpec, x: AttentionArrays, u0: number, u1: number): void;
}

export function maskSpec(mask: AttentionMask): MaskSpec {
  switch (mask.kind) {
    case 'causal':
      return { kind: 0, qOffset: mask.qOffset, qOffsets: null, ctxLen: 0, blockSize: 0, nBlocks: 0, anchors: null, keep: null };
    case 'causalPerEntry':
      return { kind: 0, qOffset: 0, qOffsets: mask.qOffsets, ctxLen: 0, blockSize: 0, nBlocks: 0, anchors: null, keep: null };
    case 'full':
      return { kind: 1, qOffset: 0, qOffsets: null, ctxLen: 0, blockSize: 0, nBlocks: 0, anchors: null, keep: null };
    case 'anchoredBlocks':
      return { kind: 2, qOffset: 0, qOffsets: null, ctxLen: mask.ctxLen, blockSize: mask.blockSize, nBlocks: mask.nBlocks, anchors: mask.anchors, keep: mask.keep };
  }
}

export function attentionDims(shape: AttentionShape): AttentionDims {
  return {
    batch: shape.batch, tq: shape.tq, tk: shape.tk, stride: shape.kvStride ?? shape.tk, heads: shape.heads,
    kvHeads: shape.kvHeads, D: shape.headDim, scale: shape.scale ?? 1 / Math.sqrt(shape.headDim),
  };
}

export function createAttentionKernels(gemm: GemmFn): AttentionKernels {
  const QT = 128; // query rows per tile
  // Scratch, grown on demand and reused across calls.
  let S: Float32Array = new Float32Array(0); // scores / probabilities of a tile
  let dP: Float32Array = new Float32Array(0); // backward: dP, then dS
  let Qs: Float32Array = new Float32Array(0); // stacked query rows of the group's heads (also dO in the backward)
  let Os: Float32Array = new Float32Array(0);
  let Ds: Float32Array = new Float32Array(0); // backward: rowsum(dO ⊙ O) per stacked row
  let vis = new Int32Array(0); // per tile row: compact visible ranges lo0, hi0, lo1, hi1
  const seg = new Int32Array(4); // tile key segments: [s0, e0) and [s1, e1) (e1 = s1 when unused)

  function grow(a: Float32Array, n: number): Float32Array {
    return a.length >= n ? a : new Float32Array(Math.max(n, Math.ceil(a.length * 1.5)));
  }

  /** Keys visible to query i of batch entry b: [lo0, hi0) ∪ [lo1, hi1), written to vis[4r..4r+3] (absolute). */
  function rowVisibility(m: MaskSpec, b: number, i: number, tk: number, r: number): void {
    const o = 4 * r;
    vis[o + 2] = 0;
    vis[o + 3] = 0;
    if (m.kind === 0) {
      vis[o] = 0;
      vis[o + 1] = Math.min(tk, (m.qOffsets ? m.qOffsets[b] : m.qOffset) + i + 1);
    } else if (m.kind === 1) {
      vis[o] = 0;
      vis[o + 1] = tk;
    } else {
      const n = Math.floor(i / m.blockSize);
      const idx = b * m.nBlocks + n;
      if (!m.keep![idx]) {
        vis[o] = 0;
        vis[o + 1] = 0;
        return;
      }
      vis[o] = 0;
      vis[o + 1] = Math.min(m.anchors![idx], m.ctxLen); // context strictly before the anchor
      vis[o + 2] = m.ctxLen + n * m.blockSize;
      vis[o + 3] = Math.min(tk, vis[o + 2] + m.blockSize);
    }
  }

  /**
   * Visibility of tile rows i0..i0+rows−1: per row ranges in compact key columns (vis), and the tile's key
   * segments (seg); returns the number of compact columns nk.
   */
  function tileVisibility(m: MaskSpec, b: number, i0: number, rows: number, tk: number): number {
    if (vis.length < 4 * rows) vis = new Int32Array(4 * QT);
    let a0 = tk, b0 = 0, a1 = tk, b1 = 0;
    for (let r = 0; r < rows; r++) {
      rowVisibility(m, b, i0 + r, tk, r);
      const o = 4 * r;
      if (vis[o + 1] > vis[o]) {
        if (vis[o] < a0) a0 = vis[o];
        if (vis[o + 1] > b0) b0 = vis[o + 1];
      }
      if (vis[o + 3] > vis[o + 2]) {
        if (vis[o + 2] < a1) a1 = vis[o + 2];
        if (vis[o + 3] > b1) b1 = vis[o + 3];
      }
    }
    if (b0 <= a0) { a0 = 0; b0 = 0; }
    if (b1 <= a1) { a1 = 0; b1 = 0; }
    if (b0 === 0 && b1 > 0) { a0 = a1; b0 = b1; a1 = 0; b1 = 0; }
    else if (b1 > 0 && a1 <= b0) { b0 = Math.max(b0, b1); a0 = Math.min(a0, a1); a1 = 0; b1 = 0; } // overlapping: one segment
    seg[0] = a0; seg[1] = b0; seg[2] = a1; seg[3] = b1;
    const w0 = b0 - a0;
    // Absolute key index → compact column.
    for (let r = 0; r < rows; r++) {
      const o = 4 * r;
      for (let t = 0; t < 4; t += 2) {
        const lo = vis[o + t];
        const hi = vis[o + t + 1];
        if (hi <= lo) { vis[o + t] = 0; vis[o + t + 1] = 0; continue; }
        if (lo >= a0 && hi <= b0) { vis[o + t] = lo - a0; vis[o + t + 1] = hi - a0; }
        else { vis[o + t] = w0 + lo - a1; vis[o + t + 1] = w0 + hi - a1; }
      }
    }
    return w0 + (b1 - a1);
  }

  /** dst[(hh·rows + r)·D + c] = src[(row0 + r)·width + (h0 + hh)·D + c]: the tile rows of G heads, stacked. */
  function gatherHeads(dst: Float32Array, src: Float32Array, row0: number, rows: number, width: number, h0: number, G: number, D: number): void {
    for (let hh = 0; hh < G; hh++) {
      for (let r = 0; r < rows; r++) {
        const s = (row0 + r) * width + (h0 + hh) * D;
        dst.set(src.subarray(s, s + D), (hh * rows + r) * D);
      }
    }
  }

  function scatterHeads(dst: Float32Array, src: Float32Array, row0: number, rows: number, width: number, h0: number, G: number, D: number): void {
    for (let hh = 0; hh < G; hh++) {
      for (let r = 0; r < rows; r++) {
        const s = (hh * rows + r) * D;
        dst.set(src.subarray(s, s + D), (row0 + r) * width + (h0 + hh) * D);
      }
    }
  }

  /** A view of rows [lo, ...) of head g of a [*, kW] K or V matrix of batch entry b (trans: as its transpose). */
  function kvView(data: Float32Array, b: number, stride: number, lo: number, kW: number, g: number, D: number, trans: boolean): MatView {
    return { data, offset: (b * stride + lo) * kW + g * D, ld: kW, trans };
  }

  function forward(d: AttentionDims, m: MaskSpec, x: AttentionArrays, u0: number, u1: number): void {
    const { tq, tk, stride, heads, kvHeads, D, scale } = d;
    const G = heads / kvHeads;
    const qW = heads * D;
    const kW = kvHeads * D;
    for (let u = u0; u < u1; u++) {
      const b = Math.floor(u / kvHeads);
      const g = u - b * kvHeads;
      for (let i0 = 0; i0 < tq; i0 += QT) {
        const rows = Math.min(QT, tq - i0);
        const R = G * rows;
        const nk = tileVisibility(m, b, i0, rows, tk);
        Qs = grow(Qs, R * D);
        Os = grow(Os, R * D);
        S = grow(S, R * nk);
        gatherHeads(Qs, x.q, b * tq + i0, rows, qW, g * G, G, D);
        // S = Q·Kᵀ over the tile's key segments.
        const w0 = seg[1] - seg[0];
        const w1 = seg[3] - seg[2];
        const Qv: MatView = { data: Qs, offset: 0, ld: D, trans: false };
        if (w0 > 0) gemm(R, D, w0, Qv, kvView(x.k, b, stride, seg[0], kW, g, D, true), { data: S, offset: 0, ld: nk, trans: false }, 0, 1);
        if (w1 > 0) gemm(R, D, w1, Qv, kvView(x.k, b, stride, seg[2], kW, g, D, true), { data: S, offset: w0, ld: nk, trans: false }, 0, 1);
        // Softmax of the visible entries of each row, in place; invisible entries 0.
        for (let hh = 0; hh < G; hh++) {
          const lseOff = (b * heads + g * G + hh) * tq + i0;
          for (let r = 0; r < rows; r++) {
            const o = (hh * rows + r) * nk;
            const lo0 = vis[4 * r], hi0 = vis[4 * r + 1], lo1 = vis[4 * r + 2], hi1 = vis[4 * r + 3];
            let mx = -Infinity;
            for (let j = lo0; j < hi0; j++) if (S[o + j] > mx) mx = S[o + j];
            for (let j = lo1; j < hi1; j++) if (S[o + j] > mx) mx = S[o + j];
            if (mx === -Infinity) {
              // No visible entry above −Inf: a fully masked row (0), unless NaN scores hid from the max (then NaN).
              let nan = false;
              for (let j = lo0; j < hi0; j++) if (S[o + j] !== S[o + j]) nan = true;
              for (let j = lo1; j < hi1; j++) if (S[o + j] !== S[o + j]) nan = true;
              if (!nan) {
                S.fill(0, o, o + nk);
                x.lse[lseOff + r] = -Infinity;
                continue;
              }
              mx = NaN;
            }
            mx *= scale; // scale > 0, so the max of the scaled scores
            let sum = 0;
            for (let j = lo0; j < hi0; j++) {
              const e = Math.exp(S[o + j] * scale - mx);
              S[o + j] = e;
              sum += e;
            }
            for (let j = lo1; j < hi1; j++) {
              const e = Math.exp(S[o + j] * scale - mx);
              S[o + j] = e;
              sum += e;
            }
            x.lse[lseOff + r] = mx + Math.log(sum);
            const inv = 1 / sum;
            S.fill(0, o, o + lo0);
            if (hi1 > lo1) {
              S.fill(0, o + hi0, o + lo1);
              S.fill(0, o + hi1, o + nk);
            } else {
              S.fill(0, o + hi0, o + nk);
            }
            for (let j = lo0; j < hi0; j++) S[o + j] *= inv;
            for (let j = lo1; j < hi1; j++) S[o + j] *= inv;
          }
        }
        // O = P·V over the same segments.
        const Ov: MatView = { data: Os, offset: 0, ld: D, trans: false };
        if (nk === 0) Os.fill(0, 0, R * D);
        if (w0 > 0) gemm(R, w0, D, { data: S, offset: 0, ld: nk, trans: false }, kvView(x.v, b, stride, seg[0], kW, g, D, false), Ov, 0, 1);
        if (w1 > 0) gemm(R, w1, D, { data: S, offset: w0, ld: nk, trans: false }, kvView(x.v, b, stride, seg[2], kW, g, D, false), Ov, w0 > 0 ? 1 : 0, 1);
        scatterHeads(x.out, Os, b * tq + i0, rows, qW, g * G, G, D);
      }
    }
  }

  /**
   * Backward per tile, on transposed scores (keys as rows) so that the large operands enter the GEMMs untransposed:
   * Sᵀ = K·Qᵀ, Pᵀ = exp(Sᵀ·scale − lse), dPᵀ = V·dOᵀ, dSᵀ = Pᵀ ⊙ (dPᵀ − rowsum(dO ⊙ O))·scale,
   * dV += Pᵀ·dO, dK += dSᵀ·Q, dQ = dS·K.
   */
  function backward(d: AttentionDims, m: MaskSpec, x: AttentionArrays, u0: number, u1: number): void {
    const { tq, tk, stride, heads, kvHeads, D, scale } = d;
    const G = heads / kvHeads;
    const qW = heads * D;
    const kW = kvHeads * D;
    const dout = x.dout!;
    const dq = x.dq!;
    for (let u = u0; u < u1; u++) {
      const b = Math.floor(u / kvHeads);
      const g = u - b * kvHeads;
      for (let i0 = 0; i0 < tq; i0 += QT) {
        const rows = Math.min(QT, tq - i0);
        const R = G * rows; // stacked columns of the transposed blocks
        const nk = tileVisibility(m, b, i0, rows, tk);
        Qs = grow(Qs, R * D);
        Os = grow(Os, R * D);
        Ds = grow(Ds, R);
        S = grow(S, nk * R);
        dP = grow(dP, nk * R);
        const w0 = seg[1] - seg[0];
        const w1 = seg[3] - seg[2];
        if (nk === 0) {
          for (let hh = 0; hh < G; hh++) {
            for (let r = 0; r < rows; r++) dq.fill(0, (b * tq + i0 + r) * qW + (g * G + hh) * D, (b * tq + i0 + r) * qW + (g * G + hh + 1) * D);
          }
          continue;
        }
        // Ds[c] = Σ dO·O of stacked row c (f64 sum).
        for (let hh = 0; hh < G; hh++) {
          for (let r = 0; r < rows; r++) {
            const o = (b * tq + i0 + r) * qW + (g * G + hh) * D;
            let s = 0;
            for (let c = 0; c < D; c++) s += dout[o + c] * x.out[o + c];
            Ds[hh * rows + r] = s;
          }
        }
        gatherHeads(Qs, x.q, b * tq + i0, rows, qW, g * G, G, D);
        gatherHeads(Os, dout, b * tq + i0, rows, qW, g * G, G, D); // Os holds dO here
        const Qt: MatView = { data: Qs, offset: 0, ld: D, trans: true }; // [D, R]
        const dOt: MatView = { data: Os, offset: 0, ld: D, trans: true };
        // Sᵀ and dPᵀ [nk, R], one segment of key rows at a time.
        if (w0 > 0) {
          gemm(w0, D, R, kvView(x.k, b, stride, seg[0], kW, g, D, false), Qt, { data: S, offset: 0, ld: R, trans: false }, 0, 1);
          gemm(w0, D, R, kvView(x.v, b, stride, seg[0], kW, g, D, false), dOt, { data: dP, offset: 0, ld: R, trans: false }, 0, 1);
        }
        if (w1 > 0) {
          gemm(w1, D, R, kvView(x.k, b, stride, seg[2], kW, g, D, false), Qt, { data: S, offset: w0 * R, ld: R, trans: false }, 0, 1);
          gemm(w1, D, R, kvView(x.v, b, stride, seg[2], kW, g, D, false), dOt, { data: dP, offset: w0 * R, ld: R, trans: false }, 0, 1);
        }
        // Pᵀ and dSᵀ, elementwise: column c = hh·rows + r is query i0 + r of head g·G + hh.
        for (let j = 0; j < nk; j++) {
          const o = j * R;
          for (let hh = 0; hh < G; hh++) {
            const lseOff = (b * heads + g * G + hh) * tq + i0;
            for (let r = 0; r < rows; r++) {
              const c = hh * rows + r;
              const l = x.lse[lseOff + r];
              const visible = (j >= vis[4 * r] && j < vis[4 * r + 1]) || (j >= vis[4 * r + 2] && j < vis[4 * r + 3]);
              const p = visible && l !== -Infinity ? Math.exp(S[o + c] * scale - l) : 0;
              S[o + c] = p;
              dP[o + c] = p * (dP[o + c] - Ds[c]) * scale;
            }
          }
        }
        const Qv: MatView = { data: Qs, offset: 0, ld: D, trans: false };
        const dOv: MatView = { data: Os, offset: 0, ld: D, trans: false };
        // dV += Pᵀ·dO and dK += dSᵀ·Q per segment.
        if (w0 > 0) {
          gemm(w0, R, D, { data: S, offset: 0, ld: R, trans: false }, dOv, kvView(x.dv!, b, stride, seg[0], kW, g, D, false), 1, 1);
          gemm(w0, R, D, { data: dP, offset: 0, ld: R, trans: false }, Qv, kvView(x.dk!, b, stride, seg[0], kW, g, D, false), 1, 1);
        }
        if (w1 > 0) {
          gemm(w1, R, D, { data: S, offset: w0 * R, ld: R, trans: false }, dOv, kvView(x.dv!, b, stride, seg[2], kW, g, D, false), 1, 1);
          gemm(w1, R, D, { data: dP, offset: w0 * R, ld: R, trans: false }, Qv, kvView(x.dk!, b, stride, seg[2], kW, g, D, false), 1, 1);
        }
        // dQ [R, D] = dS·K: dS is the transpose of the dSᵀ block.
        const dQv: MatView = { data: Qs, offset: 0, ld: D, trans: false }; // Q no longer needed
        if (w0 > 0) gemm(R, w0, D, { data: dP, offset: 0, ld: R, trans: true }, kvView(x.k, b, stride, seg[0], kW, g, D, false), dQv, 0, 1);
        if (w1 > 0) gemm(R, w1, D, { data: dP, offset: w0 * R, ld: R, trans: true }, kvView(x.k, b, stride, seg[2], kW, g, D, false), dQv, w0 > 0 ? 1 : 0, 1);
        scatterHeads(dq, Qs, b * tq + i0, rows, qW, g * G, G, D);
      }
    }
  }

  return { forward, backward };
}

