// The DFlash drafter (dflash-spec §2): context features C = hidden_norm(fc(taps)) injected as extra keys/values
// into every Qwen3-style draft layer; a block [anchor, MASK × (B−1)] is denoised in one pass. Written once against
// the Backend: an inference pass over a block with a context K/V cache, and a training forward over all blocks of a
// sequence (block-sparse 'dflash' mask, §2.5) with its backward written out, as src/model/block.ts does.
import type { AttentionMask, AttentionShape, Backend, Tensor } from '../engine/backend.js';
import { ropeInvFreq, type RopePrecision } from '../model/rope-freq.js';
import type { DrafterConfig } from './drafter-config.js';
import type { DrafterLayer, DrafterWeights, SharedTargetParts } from './drafter-weights.js';
import { buildDrafterWeights } from './drafter-weights.js';
import type { DraftCache } from './draft-cache.js';
import { concatRows, sliceRows } from './rows.js';
import { blockAttentionBackward, blockAttentionForward, defaultGroupBlocks, freeBlockAttention, type BlockAttentionGeometry, type BlockAttentionSaved } from './block-attention.js';

/** Inverse RoPE frequencies of the drafter (plain 1-D RoPE, rope_theta of the drafter config; §2.4). */
export function drafterInvFreq(c: DrafterConfig, precision: RopePrecision = 'f32'): Float32Array {
  return ropeInvFreq({ ropeTheta: c.ropeTheta, headDim: c.headDim, ropeScaling: null, dtype: 'bfloat16' }, precision);
}

function linear(be: Backend, x: Tensor, w: Tensor): Tensor {
  return be.matmul(x, w, { transB: true });
}

/** Per-head RMSNorm of [rows, heads·D]: y (same shape) and rstd [rows·heads]. */
function headNormFwd(be: Backend, x: Tensor, w: Tensor, D: number, eps: number): { y: Tensor; rstd: Tensor } {
  const [rows, width] = x.shape;
  const { y, rstd } = be.rmsnorm(be.reshape(x, [(rows * width) / D, D]), w, eps);
  return { y: be.reshape(y, [rows, width]), rstd };
}

function headNormBwd(be: Backend, dy: Tensor, x: Tensor, w: Tensor, rstd: Tensor, D: number): { dx: Tensor; dw: Tensor } {
  const [rows, width] = x.shape;
  const flat = [(rows * width) / D, D];
  const { dx, dw } = be.rmsnormBackward(be.reshape(dy, flat), be.reshape(x, flat), w, rstd);
  return { dx: be.reshape(dx, [rows, width]), dw };
}

export { concatRows, sliceRows };

function embedRows(be: Backend, embed: Tensor, ids: Int32Array): Tensor {
  const x = be.gatherRows(embed, ids);
  if (x.dtype === 'f32') return x;
  const x32 = be.cast(x, 'f32');
  be.free(x);
  return x32;
}

/** C = hidden_norm(fc(F)) for taps F [rows, n·H] (§2.2). */
export function contextFeatures(be: Backend, c: DrafterConfig, w: DrafterWeights, taps: Tensor): { fcOut: Tensor; ctx: Tensor; rstd: Tensor } {
  const fcOut = linear(be, taps, w.fc);
  const { y, rstd } = be.rmsnorm(fcOut, w.hiddenNorm, c.rmsNormEps);
  return { fcOut, ctx: y, rstd };
}

// ── Inference ───────────────────────────────────────────────────────────────────────────────────────────────────

export class Drafter {
  readonly invFreq: Float32Array;

  constructor(
    readonly be: Backend,
    readonly cfg: DrafterConfig,
    readonly weights: DrafterWeights,
    readonly shared: SharedTargetParts,
    ropePrecision: RopePrecision = 'f32',
  ) {
    this.invFreq = drafterInvFreq(cfg, ropePrecision);
  }

  /**
   * One draft pass (§4.1). ctxTaps [n, taps·H] are the target features of positions [cache.length, start) (null when
   * n = 0); blockIds (B ids: anchor token then masks) sit at positions start..start+B−1. The context K/V are appended
   * to the cache; the block's are discarded (cache length = start afterwards). Returns the final-normed hidden [B, H].
   */
  draft(cache: DraftCache, ctxTaps: Tensor | null, blockIds: Int32Array, start: number): Tensor {
    const { be, cfg, weights: w } = this;
    const D = cfg.headDim;
    const eps = cfg.rmsNormEps;
    const nCtx = ctxTaps ? ctxTaps.shape[0] : 0;
    const past = cache.length;
    if (past + nCtx !== start) throw new Error(`draft: cache holds ${past} context rows and ${nCtx} new ones, but the block starts at ${start}`);
    const B = blockIds.length;
    cache.reserve(start + B);
    if (ctxTaps && nCtx > 0) {
      const { fcOut, ctx, rstd } = contextFeatures(be, cfg, w, ctxTaps);
      be.free(fcOut, rstd);
      const pos = new Int32Array(nCtx);
      for (let i = 0; i < nCtx; i++) pos[i] = past + i;
      for (let l = 0; l < cfg.numLayers; l++) {
        const L = w.layers[l];
        const k0 = linear(be, ctx, L.k);
        const kn = headNormFwd(be, k0, L.kNorm, D, eps);
        const kr = be.rope(kn.y, pos, this.invFreq, D);
        const v = linear(be, ctx, L.v);
        cache.writeAt(l, past, kr, v, nCtx);
        be.free(k0, kn.y, kn.rstd, kr, v);
      }
      be.free(ctx);
    }
    cache.setLength(start);
    const posB = new Int32Array(B);
    for (let i = 0; i < B; i++) posB[i] = start + i;
    let x = embedRows(be, this.shared.embed, blockIds);
    const shape: AttentionShape = { batch: 1, tq: B, tk: start + B, kvStride: cache.capacity, heads: cfg.numHeads, kvHeads: cfg.numKvHeads, headDim: D };
    const mask: AttentionMask = { kind: 'prefix', ctxLen: start };
    for (let l = 0; l < cfg.numLayers; l++) {
      const L = w.layers[l];
      const { y: h, rstd: r1 } = be.rmsnorm(x, L.inputNorm, eps);
      const q0 = linear(be, h, L.q);
      const qn = headNormFwd(be, q0, L.qNorm, D, eps);
      const qr = be.rope(qn.y, posB, this.invFreq, D);
      const k0 = linear(be, h, L.k);
      const kn = headNormFwd(be, k0, L.kNorm, D, eps);
      const kr = be.rope(kn.y, posB, this.invFreq, D);
      const v = linear(be, h, L.v);
      cache.writeAt(l, start, kr, v, B); // scratch rows after the context
      const { out: attn, lse } = be.attention(qr, cache.k[l], cache.v[l], shape, mask);
      be.free(h, r1, q0, qn.y, qn.rstd, qr, k0, kn.y, kn.rstd, kr, v, lse);
      const x1 = this.residualMlp(L, x, attn);
      be.free(x, attn);
      x = x1;
    }
    const { y: out, rstd } = be.rmsnorm(x, w.norm, eps);
    be.free(x, rstd);
    return out;
  }

  /** x + o(attn), then + mlp(norm(·)). */
  private residualMlp(L: DrafterLayer, x: Tensor, attn: Tensor): Tensor {
    const be = this.be;
    const o = linear(be, attn, L.o);
    const x1 = be.add(x, o);
    const { y: h2, rstd } = be.rmsnorm(x1, L.postNorm, this.cfg.rmsNormEps);
    const g = linear(be, h2, L.gate);
    const u = linear(be, h2, L.up);
    const m = be.swiglu(g, u);
    const d = linear(be, m, L.down);
    const x2 = be.add(x1, d);
    be.free(o, x1, h2, rstd, g, u, m, d);
    return x2;
  }

  /** Logits of hidden rows [R, H] through the frozen LM head: [R, V]. */
  logits(hidden: Tensor): Tensor {
    return this.be.matmul(hidden, this.shared.lmHead, { transB: true });
  }
}

// ── Training ────────────────────────────────────────────────────────────────────────────────────────────────────

/** One training sequence laid out for the drafter (§3.3–3.4). */
export interface TrainSequence {
  /** Target taps F [S, n·H] (teacher-forced, frozen). */
  taps: Tensor;
  /** Anchor position of each of the N blocks (0 for disabled blocks) and whether the block is kept. */
  anchors: Int32Array;
  keep: Uint8Array;
  /** Block token ids [N·B]: slot 0 = input_ids[a_n] (mask for disabled blocks), slots 1.. = mask. */
  blockIds: Int32Array;
}

export interface TrainForwardOptions {
  /** Blocks per attention call (see block-attention.ts); default: grouped on the cpu, one call elsewhere. */
  groupBlocks?: number;
}

interface LayerSaved {
  x: Tensor; h: Tensor; r1: Tensor;
  q0: Tensor; qRstd: Tensor; qr: Tensor;
  kvIn: Tensor; k0: Tensor; kRstd: Tensor; kr: Tensor; v: Tensor;
  attn: Tensor; att: BlockAttentionSaved;
  x1: Tensor; h2: Tensor; r2: Tensor; g: Tensor; u: Tensor; m: Tensor;
}

export interface TrainSaved {
  S: number; NB: number;
  taps: Tensor; fcOut: Tensor; ctx: Tensor; ctxRstd: Tensor;
  layers: LayerSaved[];
  xLast: Tensor; finalRstd: Tensor;
  /** Positions of the key rows [S + N·B]: context 0..S−1, then a_n + k. */
  posAll: Int32Array;
  posBlock: Int32Array;
  geo: BlockAttentionGeometry;
}

/**
 * Training forward over all N blocks of one sequence: queries = the N·B block rows, keys = [C (S rows) ; blocks],
 * visibility per §2.5 (context p < a_n strictly, own block only, disabled blocks nothing). Returns the final-normed
 * hidden [N·B, H] and, with save, what trainBackward needs.
 */
export function trainForward(
  be: Backend, c: DrafterConfig, w: DrafterWeights, shared: SharedTargetParts, invFreq: Float32Array, seq: TrainSequence, save: boolean,
  opts: TrainForwardOptions = {},
): { out: Tensor; saved?: TrainSaved } {
  const D = c.headDim;
  const eps = c.rmsNormEps;
  const B = c.blockSize;
  const S = seq.taps.shape[0];
  const N = seq.anchors.length;
  const NB = N * B;
  if (seq.blockIds.length !== NB) throw new Error(`trainForward: ${seq.blockIds.length} block ids for ${N} blocks of ${B}`);
  const posBlock = new Int32Array(NB);
  for (let n = 0; n < N; n++) for (let k = 0; k < B; k++) posBlock[n * B + k] = seq.anchors[n] + k;
  const posAll = new Int32Array(S + NB);
  for (let p = 0; p < S; p++) posAll[p] = p;
  posAll.set(posBlock, S);
  const geo: BlockAttentionGeometry = { S, blockSize: B, anchors: seq.anchors, keep: seq.keep, heads: c.numHeads, kvHeads: c.numKvHeads, headDim: D };
  const groupBlocks = opts.groupBlocks ?? defaultGroupBlocks(be, B);

  const { fcOut, ctx, rstd: ctxRstd } = contextFeatures(be, c, w, seq.taps);
  let x = embedRows(be, shared.embed, seq.blockIds);
  const layers: LayerSaved[] = [];
  for (let l = 0; l < c.numLayers; l++) {
    const L = w.layers[l];
    const { y: h, rstd: r1 } = be.rmsnorm(x, L.inputNorm, eps);
    const q0 = linear(be, h, L.q);
    const qn = headNormFwd(be, q0, L.qNorm, D, eps);
    const qr = be.rope(qn.y, posBlock, invFreq, D);
    be.free(qn.y);
    // Context and block keys/values share k_proj / v_proj / k_norm: project [C ; h] at once.
    const kvIn = concatRows(be, ctx, h);
    const k0 = linear(be, kvIn, L.k);
    const kn = headNormFwd(be, k0, L.kNorm, D, eps);
    const kr = be.rope(kn.y, posAll, invFreq, D);
    be.free(kn.y);
    const v = linear(be, kvIn, L.v);
    const { out: attn, saved: att } = blockAttentionForward(be, qr, kr, v, geo, groupBlocks);
    const o = linear(be, attn, L.o);
    const x1 = be.add(x, o);
    be.free(o);
    const { y: h2, rstd: r2 } = be.rmsnorm(x1, L.postNorm, eps);
    const g = linear(be, h2, L.gate);
    const u = linear(be, h2, L.up);
    const m = be.swiglu(g, u);
    const d = linear(be, m, L.down);
    const x2 = be.add(x1, d);
    be.free(d);
    if (save) {
      layers.push({ x, h, r1, q0, qRstd: qn.rstd, qr, kvIn, k0, kRstd: kn.rstd, kr, v, attn, att, x1, h2, r2, g, u, m });
    } else {
      freeBlockAttention(be, att);
      be.free(x, h, r1, q0, qn.rstd, qr, kvIn, k0, kn.rstd, kr, v, attn, x1, h2, r2, g, u, m);
    }
    x = x2;
  }
  const { y: out, rstd: finalRstd } = be.rmsnorm(x, w.norm, eps);
  if (!save) {
    be.free(fcOut, ctx, ctxRstd, x, finalRstd);
    return { out };
  }
  return { out, saved: { S, NB, taps: seq.taps, fcOut, ctx, ctxRstd, layers, xLast: x, finalRstd, posAll, posBlock, geo } };
}

/** Backward of trainForward from dOut [N·B, H] to the gradients of every trainable tensor (fresh f32 tensors). */
export function trainBackward(be: Backend, c: DrafterConfig, w: DrafterWeights, invFreq: Float32Array, s: TrainSaved, dOut: Tensor): DrafterWeights {
  const D = c.headDim;
  const { dx: dxLast, dw: dNorm } = be.rmsnormBackward(dOut, s.xLast, w.norm, s.finalRstd);
  let dy = dxLast;
  let dCtx: Tensor = be.zeros([s.S, c.hiddenSize]);
  const layerGrads: DrafterLayer[] = new Array(c.numLayers);
  for (let l = c.numLayers - 1; l >= 0; l--) {
    const L = w.layers[l];
    const a = s.layers[l];
    // MLP: x2 = x1 + m·Wdᵀ.
    const dDown = be.matmul(dy, a.m, { transA: true });
    const dm = be.matmul(dy, L.down);
    const { dgate, dup } = be.swigluBackward(dm, a.g, a.u);
    be.free(dm);
    const dGate = be.matmul(dgate, a.h2, { transA: true });
    const dUp = be.matmul(dup, a.h2, { transA: true });
    const dh2 = be.matmul(dgate, L.gate);
    be.matmul(dup, L.up, { accumulate: dh2 });
    be.free(dgate, dup);
    const { dx: dx1n, dw: dPost } = be.rmsnormBackward(dh2, a.x1, L.postNorm, a.r2);
    be.free(dh2);
    const dx1 = be.add(dy, dx1n);
    be.free(dx1n, dy);
    // Attention: x1 = x + attn·Woᵀ.
    const dO = be.matmul(dx1, a.attn, { transA: true });
    const dattn = be.matmul(dx1, L.o);
    const { dq: dqr, dk: dkr, dv } = blockAttentionBackward(be, dattn, a.att, s.geo);
    be.free(dattn);
    // Queries: rope⁻¹, q_norm backward, q_proj.
    const dqn = be.rope(dqr, s.posBlock, invFreq, D, true);
    const { dx: dq0, dw: dQNorm } = headNormBwd(be, dqn, a.q0, L.qNorm, a.qRstd, D);
    be.free(dqr, dqn);
    const dQ = be.matmul(dq0, a.h, { transA: true });
    const dh = be.matmul(dq0, L.q);
    be.free(dq0);
    // Keys/values of [C ; h].
    const dkn = be.rope(dkr, s.posAll, invFreq, D, true);
    const { dx: dk0, dw: dKNorm } = headNormBwd(be, dkn, a.k0, L.kNorm, a.kRstd, D);
    be.free(dkr, dkn);
    const dK = be.matmul(dk0, a.kvIn, { transA: true });
    const dV = be.matmul(dv, a.kvIn, { transA: true });
    const dKvIn = be.matmul(dk0, L.k);
    be.matmul(dv, L.v, { accumulate: dKvIn });
    be.free(dk0, dv);
    const dCtxPart = sliceRows(be, dKvIn, 0, s.S);
    be.axpy(dCtx, dCtxPart, 1);
    const dhPart = sliceRows(be, dKvIn, s.S, s.NB);
    be.axpy(dh, dhPart, 1);
    be.free(dCtxPart, dhPart, dKvIn);
    // Input norm and residual.
    const { dx: dxn, dw: dIn } = be.rmsnormBackward(dh, a.x, L.inputNorm, a.r1);
    be.free(dh);
    dy = be.add(dx1, dxn);
    be.free(dx1, dxn);
    layerGrads[l] = { inputNorm: dIn, postNorm: dPost, qNorm: dQNorm, kNorm: dKNorm, q: dQ, k: dK, v: dV, o: dO, gate: dGate, up: dUp, down: dDown };
  }
  be.free(dy); // gradient w.r.t. the frozen embeddings: not needed
  const { dx: dFcOut, dw: dHiddenNorm } = be.rmsnormBackward(dCtx, s.fcOut, w.hiddenNorm, s.ctxRstd);
  be.free(dCtx);
  const dFc = be.matmul(dFcOut, s.taps, { transA: true });
  be.free(dFcOut);
  return buildDrafterWeightsFrom(c, dFc, dHiddenNorm, dNorm, layerGrads);
}

function buildDrafterWeightsFrom(c: DrafterConfig, fc: Tensor, hiddenNorm: Tensor, norm: Tensor, layers: DrafterLayer[]): DrafterWeights {
  const w: DrafterWeights = { fc, hiddenNorm, norm, layers };
  // Same structure as the weights; rebuilt through buildDrafterWeights to keep one source of truth for the fields.
  return buildDrafterWeights(c, (spec) => spec.get(w));
}

export function freeTrainSaved(be: Backend, s: TrainSaved): void {
  be.free(s.fcOut, s.ctx, s.ctxRstd, s.xLast, s.finalRstd);
  for (const a of s.layers) {
    freeBlockAttention(be, a.att);
    be.free(a.x, a.h, a.r1, a.q0, a.qRstd, a.qr, a.kvIn, a.k0, a.kRstd, a.kr, a.v, a.attn, a.x1, a.h2, a.r2, a.g, a.u, a.m);
  }
}
