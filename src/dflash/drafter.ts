// The DFlash drafter (dflash-spec §2): context features C = hidden_norm(fc(taps)) injected as extra keys/values
// into every Qwen3-style draft layer; a block [anchor, MASK × (B−1)] is denoised in one pass. Written once against
// the Backend: an inference pass over a block with a context K/V cache, and a training forward over all blocks of a
// sequence (block-sparse 'anchoredBlocks' mask, §2.5) with its backward written out, both assembled from the layer
// ops of src/model/layer-ops.ts. Compute dtype 'bf16' (layer-ops.ts): the GEMMs take bf16 copies of the linear
// weights (DrafterGemmWeights, made once per Drafter or per optimizer step) and write f32.
import type { Backend, Tensor } from '../engine/backend.js';
import { ropeInvFreq, type RopePrecision } from '../model/rope-freq.js';
import { KVCache } from '../model/kvcache.js';
import type { LayerWeights } from '../model/weights.js';
import {
  applyLinear, attendToCache, attentionInputs, attentionOutput, attentionOutputBackward, denseLinear, embedTokens, freeHeads, freeMlp,
  gemmInput, headsBackward, headsForward, layerOutput, linearInputGrad, linearWeightGrad, mlpBackward, mlpForward, withComputeDtype,
  type ComputeDtype, type HeadsSaved, type LayerDims, type MlpSaved,
} from '../model/layer-ops.js';
import type { DrafterConfig } from './drafter-config.js';
import type { DrafterLayer, DrafterWeights, SharedTargetParts } from './drafter-weights.js';
import { buildDrafterWeights } from './drafter-weights.js';
import { concatRows, sliceRows } from './rows.js';
import { blockAttentionBackward, blockAttentionForward, defaultGroupBlocks, freeBlockAttention, type BlockAttentionGeometry, type BlockAttentionSaved } from './block-attention.js';

/** Inverse RoPE frequencies of the drafter (plain 1-D RoPE, rope_theta of the drafter config; §2.4). */
export function drafterInvFreq(c: DrafterConfig, precision: RopePrecision = 'f32'): Float32Array {
  return ropeInvFreq({ ropeTheta: c.ropeTheta, headDim: c.headDim, ropeScaling: null, dtype: 'bfloat16' }, precision);
}

type GemmLayer = Pick<DrafterLayer, 'q' | 'k' | 'v' | 'o' | 'gate' | 'up' | 'down'>;

/** A drafter's linear weights as its GEMMs take them at a compute dtype ('f32': the weights themselves). */
export interface DrafterGemmWeights {
  computeDtype: ComputeDtype;
  fc: Tensor;
  layers: GemmLayer[];
  /** The bf16 copies made for them (freeDrafterGemmWeights frees these; the weights stay the caller's). */
  owned: Tensor[];
}

/** The GEMM weights of w at cd: bf16 copies of the linears not bf16 yet (make them once, not per GEMM). */
export function drafterGemmWeights(be: Backend, w: DrafterWeights, cd: ComputeDtype): DrafterGemmWeights {
  const owned: Tensor[] = [];
  const conv = (t: Tensor): Tensor => {
    const g = gemmInput(be, t, cd);
    if (g !== t) owned.push(g);
    return g;
  };
  const layers = w.layers.map((L) => ({ q: conv(L.q), k: conv(L.k), v: conv(L.v), o: conv(L.o), gate: conv(L.gate), up: conv(L.up), down: conv(L.down) }));
  return { computeDtype: cd, fc: conv(w.fc), layers, owned };
}

export function freeDrafterGemmWeights(be: Backend, g: DrafterGemmWeights): void {
  be.free(...g.owned);
  g.owned.length = 0;
}

/** The drafter's layer sizes with a compute dtype, as the layer ops take them. */
function dimsOf(c: DrafterConfig, cd: ComputeDtype): LayerDims {
  return cd === 'f32' ? c : withComputeDtype(c, cd);
}

/** A drafter layer as the layer ops take it: dense linears (G: its GEMM weights) without biases, Qwen3 q/k norms. */
function layerWeights(L: DrafterLayer, G: GemmLayer): LayerWeights {
  return {
    inputNorm: L.inputNorm, postNorm: L.postNorm, qNorm: L.qNorm, kNorm: L.kNorm,
    q: denseLinear(G.q), k: denseLinear(G.k), v: denseLinear(G.v), o: denseLinear(G.o),
    gate: denseLinear(G.gate), up: denseLinear(G.up), down: denseLinear(G.down),
  };
}

/** C = hidden_norm(fc(F)) for taps F [rows, n·H] (§2.2); g: the GEMM weights (default: w's own, f32). */
export function contextFeatures(
  be: Backend, c: DrafterConfig, w: DrafterWeights, taps: Tensor, g?: DrafterGemmWeights,
): { fcOut: Tensor; ctx: Tensor; rstd: Tensor } {
  const fcOut = applyLinear(be, taps, denseLinear(g ? g.fc : w.fc), g ? g.computeDtype : 'f32');
  const { y, rstd } = be.rmsnorm(fcOut, w.hiddenNorm, c.rmsNormEps);
  return { fcOut, ctx: y, rstd };
}

// ── Inference ───────────────────────────────────────────────────────────────────────────────────────────────────

export class Drafter {
  readonly invFreq: Float32Array;
  private readonly gemm: DrafterGemmWeights;
  /** The LM head as the logits GEMM takes it (shared.lmHead, or a bf16 copy owned here). */
  private readonly head: Tensor;
  private readonly dims: LayerDims;

  /**
   * computeDtype 'bf16' makes bf16 copies of the weights (and of shared.lmHead) that are not bf16 yet, once, here:
   * free them with dispose(). The weights and shared parts stay the caller's.
   */
  constructor(
    readonly be: Backend,
    readonly cfg: DrafterConfig,
    readonly weights: DrafterWeights,
    readonly shared: SharedTargetParts,
    ropePrecision: RopePrecision = 'f32',
    readonly computeDtype: ComputeDtype = 'f32',
  ) {
    this.invFreq = drafterInvFreq(cfg, ropePrecision);
    this.gemm = drafterGemmWeights(be, weights, computeDtype);
    this.head = gemmInput(be, shared.lmHead, computeDtype);
    this.dims = dimsOf(cfg, computeDtype);
  }

  /** Free the copies made for the compute dtype (nothing at 'f32'); the drafter is unusable afterwards. */
  dispose(): void {
    freeDrafterGemmWeights(this.be, this.gemm);
    if (this.head !== this.shared.lmHead) this.be.free(this.head);
  }

  /** An empty context K/V cache for draft() (grows as needed). */
  newCache(capacity: number): KVCache {
    return new KVCache(this.be, this.cfg.numLayers, 1, capacity, this.cfg.numKvHeads * this.cfg.headDim, this.computeDtype);
  }

  /**
   * One draft pass (§4.1). ctxTaps [n, taps·H] are the target features of positions [cache.length, start) (null when
   * n = 0); blockIds (B ids: anchor token then masks) sit at positions start..start+B−1. The context K/V are appended
   * to the cache; the block's are written after them as scratch rows (cache length = start afterwards). Returns the
   * final-normed hidden [B, H].
   */
  draft(cache: KVCache, ctxTaps: Tensor | null, blockIds: Int32Array, start: number): Tensor {
    const { be, cfg, weights: w, gemm: g, dims } = this;
    const cd = this.computeDtype;
    const nCtx = ctxTaps ? ctxTaps.shape[0] : 0;
    const past = cache.length;
    if (past + nCtx !== start) throw new Error(`draft: cache holds ${past} context rows and ${nCtx} new ones, but the block starts at ${start}`);
    const B = blockIds.length;
    cache.reserve(start + B);
    if (ctxTaps && nCtx > 0) {
      const { fcOut, ctx, rstd } = contextFeatures(be, cfg, w, ctxTaps, g);
      be.free(fcOut, rstd);
      const ctxIn = gemmInput(be, ctx, cd); // one cast for every layer's k and v
      const pos = new Int32Array(nCtx);
      for (let i = 0; i < nCtx; i++) pos[i] = past + i;
      for (let l = 0; l < cfg.numLayers; l++) {
        const L = w.layers[l];
        const k = headsForward(be, ctxIn, denseLinear(g.layers[l].k), L.kNorm, pos, this.invFreq, dims);
        const v = applyLinear(be, ctxIn, denseLinear(g.layers[l].v), cd);
        cache.writeAt(l, past, k.y, v, nCtx);
        freeHeads(be, k.saved);
        be.free(k.y, v);
      }
      if (ctxIn !== ctx) be.free(ctxIn);
      be.free(ctx);
    }
    cache.setLength(start);
    const posB = new Int32Array(B);
    for (let i = 0; i < B; i++) posB[i] = start + i;
    let x = embedTokens(be, this.shared.embed, blockIds);
    for (let l = 0; l < cfg.numLayers; l++) {
      const L = layerWeights(w.layers[l], g.layers[l]);
      const { qr, kr, v } = attentionInputs(be, dims, L, x, posB, this.invFreq);
      cache.writeAt(l, start, kr, v, B); // scratch rows after the context
      // The block sees every context key and every key of its own block.
      const attn = attendToCache(be, dims, qr, cache, l, 1, B, start + B, { kind: 'full' });
      be.free(qr, kr, v);
      const x1 = layerOutput(be, dims, L, x, attn);
      be.free(x);
      x = x1;
    }
    const { y: out, rstd } = be.rmsnorm(x, w.norm, cfg.rmsNormEps);
    be.free(x, rstd);
    return out;
  }

  /** Logits of hidden rows [R, H] through the frozen LM head: [R, V], f32 at either compute dtype. */
  logits(hidden: Tensor): Tensor {
    const { be } = this;
    if (this.computeDtype === 'f32') return be.matmul(hidden, this.shared.lmHead, { transB: true });
    const h = gemmInput(be, hidden, this.computeDtype);
    const out = be.matmul(h, this.head, { transB: true, outDtype: 'f32' });
    if (h !== hidden) be.free(h);
    return out;
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
  /** Blocks per attention call (see block-attention.ts); default: the backend's preference (defaultGroupBlocks). */
  groupBlocks?: number;
  /** GEMM precision (default 'f32'); with `gemm` given, that one's. */
  computeDtype?: ComputeDtype;
  /**
   * The GEMM weights of w (drafterGemmWeights), made by the caller once per optimizer step; without them the forward
   * makes its own (freed with the saved set).
   */
  gemm?: DrafterGemmWeights;
}

interface LayerSaved {
  /** h: the normed input as q_proj multiplied it (bf16 at compute dtype 'bf16'). */
  x: Tensor; h: Tensor; r1: Tensor;
  q: HeadsSaved; qr: Tensor;
  /** [C ; h]: context and block rows share k_proj / v_proj / k_norm. */
  kvIn: Tensor; k: HeadsSaved; kr: Tensor; v: Tensor;
  attn: Tensor; att: BlockAttentionSaved;
  mlp: MlpSaved;
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
  /** The weights the GEMMs used (the backward multiplies by the same) and whether they are this set's to free. */
  gemm: DrafterGemmWeights;
  ownsGemm: boolean;
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
  const geo: BlockAttentionGeometry = { S, blockSize: B, anchors: seq.anchors, keep: seq.keep, heads: c.numHeads, kvHeads: c.numKvHeads, headDim: c.headDim };
  const groupBlocks = opts.groupBlocks ?? defaultGroupBlocks(be, B);
  const gemm = opts.gemm ?? drafterGemmWeights(be, w, opts.computeDtype ?? 'f32');
  const cd = gemm.computeDtype;
  const dims = dimsOf(c, cd);

  const { fcOut, ctx, rstd: ctxRstd } = contextFeatures(be, c, w, seq.taps, gemm);
  const ctxIn = gemmInput(be, ctx, cd); // one cast for every layer's [C ; h]
  let x = embedTokens(be, shared.embed, seq.blockIds);
  const layers: LayerSaved[] = [];
  for (let l = 0; l < c.numLayers; l++) {
    const L = layerWeights(w.layers[l], gemm.layers[l]);
    const { y: hNormed, rstd: r1 } = be.rmsnorm(x, L.inputNorm, c.rmsNormEps);
    const h = gemmInput(be, hNormed, cd); // one cast shared by q_proj and [C ; h]
    if (h !== hNormed) be.free(hNormed);
    const q = headsForward(be, h, L.q, L.qNorm, posBlock, invFreq, dims);
    // Context and block keys/values share k_proj / v_proj / k_norm: project [C ; h] at once.
    const kvIn = cd === 'f32' ? concatRows(be, ctxIn, h) : concatRowsKeepDtype(be, ctxIn, h);
    const k = headsForward(be, kvIn, L.k, L.kNorm, posAll, invFreq, dims);
    const v = applyLinear(be, kvIn, L.v, cd);
    const { out: attn, saved: att } = blockAttentionForward(be, q.y, k.y, v, geo, groupBlocks);
    const x1 = attentionOutput(be, L.o, x, attn, cd);
    const { y: x2, saved: mlp } = mlpForward(be, dims, L, x1, true);
    const saved: LayerSaved = { x, h, r1, q: q.saved, qr: q.y, kvIn, k: k.saved, kr: k.y, v, attn, att, mlp: mlp! };
    if (save) layers.push(saved);
    else freeLayerSaved(be, saved);
    x = x2;
  }
  if (ctxIn !== ctx) be.free(ctxIn);
  const { y: out, rstd: finalRstd } = be.rmsnorm(x, w.norm, c.rmsNormEps);
  const ownsGemm = !opts.gemm;
  if (!save) {
    be.free(fcOut, ctx, ctxRstd, x, finalRstd);
    if (ownsGemm) freeDrafterGemmWeights(be, gemm);
    return { out };
  }
  return { out, saved: { S, NB, taps: seq.taps, fcOut, ctx, ctxRstd, layers, xLast: x, finalRstd, posAll, posBlock, geo, gemm, ownsGemm } };
}

/** Rows of a then rows of b in a's dtype (concatRows makes f32). */
function concatRowsKeepDtype(be: Backend, a: Tensor, b: Tensor): Tensor {
  const out = be.zeros([a.shape[0] + b.shape[0], a.shape[1]], a.dtype);
  be.copyRows(out, 0, a, 0, a.shape[0]);
  be.copyRows(out, a.shape[0], b, 0, b.shape[0]);
  return out;
}

/** Backward of trainForward from dOut [N·B, H] to the gradients of every trainable tensor (fresh f32 tensors). */
export function trainBackward(be: Backend, c: DrafterConfig, w: DrafterWeights, invFreq: Float32Array, s: TrainSaved, dOut: Tensor): DrafterWeights {
  const { dx: dxLast, dw: dNorm } = be.rmsnormBackward(dOut, s.xLast, w.norm, s.finalRstd);
  let dy = dxLast;
  const dCtx: Tensor = be.zeros([s.S, c.hiddenSize]);
  const layerGrads: DrafterLayer[] = new Array(c.numLayers);
  const cd = s.gemm.computeDtype;
  // A gradient read by two GEMMs (weight and input gradient) is cast once: t, or its bf16 copy with t freed.
  const gemmOperand = (t: Tensor): Tensor => {
    const g = gemmInput(be, t, cd);
    if (g !== t) be.free(t);
    return g;
  };
  for (let l = c.numLayers - 1; l >= 0; l--) {
    const L = w.layers[l];
    const G = s.gemm.layers[l];
    const a = s.layers[l];
    const mlp = mlpBackward(be, layerWeights(L, G), a.mlp, dy, cd);
    be.free(dy);
    const dx1 = mlp.dx1;
    const { dW: dO, dattn } = attentionOutputBackward(be, G.o, a.attn, dx1, cd);
    const { dq: dqr, dk: dkr, dv: dvAtt } = blockAttentionBackward(be, dattn, a.att, s.geo);
    be.free(dattn);
    // Queries: rope⁻¹, q_norm backward, q_proj.
    const dq = headsBackward(be, dqr, a.q, L.qNorm, s.posBlock, invFreq, c);
    be.free(dqr);
    const dqPre = gemmOperand(dq.dpre);
    const dQ = linearWeightGrad(be, dqPre, a.h, cd);
    const dh = linearInputGrad(be, dqPre, G.q, undefined, cd);
    be.free(dqPre);
    // Keys/values of [C ; h].
    const dk = headsBackward(be, dkr, a.k, L.kNorm, s.posAll, invFreq, c);
    be.free(dkr);
    const dkPre = gemmOperand(dk.dpre);
    const dv = gemmOperand(dvAtt);
    const dK = linearWeightGrad(be, dkPre, a.kvIn, cd);
    const dV = linearWeightGrad(be, dv, a.kvIn, cd);
    const dKvIn = linearInputGrad(be, dkPre, G.k, undefined, cd);
    linearInputGrad(be, dv, G.v, dKvIn, cd);
    be.free(dkPre, dv);
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
    const g = mlp.grads;
    layerGrads[l] = {
      inputNorm: dIn, postNorm: g.postNorm!, qNorm: dq.dnorm!, kNorm: dk.dnorm!, q: dQ, k: dK, v: dV, o: dO,
      gate: g.gate, up: g.up, down: g.down,
    };
  }
  be.free(dy); // gradient w.r.t. the frozen embeddings: not needed
  const { dx: dFcOut, dw: dHiddenNorm } = be.rmsnormBackward(dCtx, s.fcOut, w.hiddenNorm, s.ctxRstd);
  be.free(dCtx);
  const dFc = linearWeightGrad(be, dFcOut, s.taps, cd);
  be.free(dFcOut);
  return buildDrafterWeightsFrom(c, dFc, dHiddenNorm, dNorm, layerGrads);
}

function buildDrafterWeightsFrom(c: DrafterConfig, fc: Tensor, hiddenNorm: Tensor, norm: Tensor, layers: DrafterLayer[]): DrafterWeights {
  const w: DrafterWeights = { fc, hiddenNorm, norm, layers };
  // Same structure as the weights; rebuilt through buildDrafterWeights to keep one source of truth for the fields.
  return buildDrafterWeights(c, (spec) => spec.get(w));
}

/** Free one layer's saved activations (its input x included: each layer's input is the previous layer's output). */
function freeLayerSaved(be: Backend, a: LayerSaved): void {
  freeBlockAttention(be, a.att);
  freeHeads(be, a.q);
  freeHeads(be, a.k);
  be.free(a.x, a.h, a.r1, a.qr, a.kvIn, a.kr, a.v, a.attn);
  freeMlp(be, a.mlp);
}

export function freeTrainSaved(be: Backend, s: TrainSaved): void {
  be.free(s.fcOut, s.ctx, s.ctxRstd, s.xLast, s.finalRstd);
  if (s.ownsGemm) freeDrafterGemmWeights(be, s.gemm);
  for (const a of s.layers) freeLayerSaved(be, a);
}
