// Training attention of the drafter (dflash-spec §2.5, §3.4): queries = the N·B block rows, keys = [context (S rows) ;
// blocks (N·B rows)], block n sees context p < a_n and its own block. Either one 'anchoredBlocks'-masked call over all
// blocks (what a GPU kernel skipping masked tiles wants) or, for a kernel that prefers short calls (the cpu one), groups of G
// consecutive blocks, each against only the context rows it can see ([0, max anchor of the group)) and its own
// blocks' rows — the same result with about N·B·(ā + G·B) instead of N·B·(S + N·B) score entries.
import type { AttentionMask, AttentionShape, Backend, Tensor } from '../engine/backend.js';
import { sliceRows } from './rows.js';

export interface BlockAttentionGeometry {
  S: number;
  blockSize: number;
  anchors: Int32Array;
  keep: Uint8Array;
  heads: number;
  kvHeads: number;
  headDim: number;
}

interface Group {
  n0: number;
  n1: number;
  /** Context rows visible to the group (its largest kept anchor). */
  ctxLen: number;
  q: Tensor; k: Tensor; v: Tensor; out: Tensor; lse: Tensor;
  shape: AttentionShape;
  mask: AttentionMask;
}

export interface BlockAttentionSaved {
  /** One call over all blocks: q, k, v are the caller's tensors (not owned here). */
  whole?: { q: Tensor; k: Tensor; v: Tensor; out: Tensor; lse: Tensor; shape: AttentionShape; mask: AttentionMask };
  groups?: Group[];
}

function wholeCall(g: BlockAttentionGeometry): { shape: AttentionShape; mask: AttentionMask } {
  const N = g.anchors.length;
  const NB = N * g.blockSize;
  return {
    shape: { batch: 1, tq: NB, tk: g.S + NB, heads: g.heads, kvHeads: g.kvHeads, headDim: g.headDim },
    mask: { kind: 'anchoredBlocks', ctxLen: g.S, blockSize: g.blockSize, nBlocks: N, anchors: g.anchors, keep: g.keep },
  };
}

/**
 * q [N·B, heads·D]; k, v [S + N·B, kvHeads·D] (context rows first). groupBlocks ≥ N makes one call. Returns the
 * attention output [N·B, heads·D] (owned by the caller) and what the backward needs (free with freeBlockAttention).
 */
export function blockAttentionForward(
  be: Backend, q: Tensor, k: Tensor, v: Tensor, g: BlockAttentionGeometry, groupBlocks: number,
): { out: Tensor; saved: BlockAttentionSaved } {
  const N = g.anchors.length;
  const B = g.blockSize;
  if (groupBlocks >= N) {
    const { shape, mask } = wholeCall(g);
    const { out, lse } = be.attention(q, k, v, shape, mask);
    return { out, saved: { whole: { q, k, v, out, lse, shape, mask } } };
  }
  const out = be.zeros([N * B, g.heads * g.headDim]);
  const groups: Group[] = [];
  for (let n0 = 0; n0 < N; n0 += groupBlocks) {
    const n1 = Math.min(N, n0 + groupBlocks);
    const nb = n1 - n0;
    let ctxLen = 0;
    for (let n = n0; n < n1; n++) if (g.keep[n]) ctxLen = Math.max(ctxLen, Math.min(g.anchors[n], g.S));
    const kg = be.zeros([ctxLen + nb * B, k.shape[1]]);
    const vg = be.zeros([ctxLen + nb * B, v.shape[1]]);
    if (ctxLen > 0) {
      be.copyRows(kg, 0, k, 0, ctxLen);
      be.copyRows(vg, 0, v, 0, ctxLen);
    }
    be.copyRows(kg, ctxLen, k, g.S + n0 * B, nb * B);
    be.copyRows(vg, ctxLen, v, g.S + n0 * B, nb * B);
    const qg = sliceRows(be, q, n0 * B, nb * B);
    const shape: AttentionShape = { batch: 1, tq: nb * B, tk: ctxLen + nb * B, heads: g.heads, kvHeads: g.kvHeads, headDim: g.headDim };
    const mask: AttentionMask = { kind: 'anchoredBlocks', ctxLen, blockSize: B, nBlocks: nb, anchors: g.anchors.subarray(n0, n1), keep: g.keep.subarray(n0, n1) };
    const r = be.attention(qg, kg, vg, shape, mask);
    be.copyRows(out, n0 * B, r.out, 0, nb * B);
    groups.push({ n0, n1, ctxLen, q: qg, k: kg, v: vg, out: r.out, lse: r.lse, shape, mask });
  }
  return { out, saved: { groups } };
}

/** Gradients w.r.t. q [N·B], k and v [S + N·B] (fresh tensors). */
export function blockAttentionBackward(
  be: Backend, dout: Tensor, s: BlockAttentionSaved, g: BlockAttentionGeometry,
): { dq: Tensor; dk: Tensor; dv: Tensor } {
  if (s.whole) {
    const w = s.whole;
    return be.attentionBackward(dout, w.q, w.k, w.v, w.out, w.lse, w.shape, w.mask);
  }
  const B = g.blockSize;
  const NB = g.anchors.length * B;
  const qW = g.heads * g.headDim;
  const kW = g.kvHeads * g.headDim;
  const dq = be.zeros([NB, qW]);
  const dk = be.zeros([g.S + NB, kW]);
  const dv = be.zeros([g.S + NB, kW]);
  const dkCtx = be.zeros([g.S, kW]);
  const dvCtx = be.zeros([g.S, kW]);
  for (const grp of s.groups!) {
    const nb = grp.n1 - grp.n0;
    const doutG = sliceRows(be, dout, grp.n0 * B, nb * B);
    const r = be.attentionBackward(doutG, grp.q, grp.k, grp.v, grp.out, grp.lse, grp.shape, grp.mask);
    be.copyRows(dq, grp.n0 * B, r.dq, 0, nb * B);
    be.copyRows(dk, g.S + grp.n0 * B, r.dk, grp.ctxLen, nb * B);
    be.copyRows(dv, g.S + grp.n0 * B, r.dv, grp.ctxLen, nb * B);
    if (grp.ctxLen > 0) {
      // Context rows are shared by all groups: accumulate (pad the group's rows to S and add).
      const padK = be.zeros([g.S, kW]);
      const padV = be.zeros([g.S, kW]);
      be.copyRows(padK, 0, r.dk, 0, grp.ctxLen);
      be.copyRows(padV, 0, r.dv, 0, grp.ctxLen);
      be.axpy(dkCtx, padK, 1);
      be.axpy(dvCtx, padV, 1);
      be.free(padK, padV);
    }
    be.free(doutG, r.dq, r.dk, r.dv);
  }
  be.copyRows(dk, 0, dkCtx, 0, g.S);
  be.copyRows(dv, 0, dvCtx, 0, g.S);
  be.free(dkCtx, dvCtx);
  return { dq, dk, dv };
}

export function freeBlockAttention(be: Backend, s: BlockAttentionSaved): void {
  if (s.whole) be.free(s.whole.lse); // q, k, v, out belong to the caller
  for (const grp of s.groups ?? []) be.free(grp.q, grp.k, grp.v, grp.out, grp.lse);
}

/** Blocks per attention call: groups of about the backend's preferred query rows, or all at once if it states none. */
export function defaultGroupBlocks(be: Backend, blockSize: number): number {
  const rows = be.anchoredBlocksRowsPerCall;
  return rows === undefined ? Number.MAX_SAFE_INTEGER : Math.max(1, Math.round(rows / blockSize));
}
