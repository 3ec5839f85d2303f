// The pieces of a decoder layer, one forward/backward pair each, written once against the Backend. The target decoder
// (decoder.ts), the ParoQuant block (block.ts) and the DFlash drafter (inference and training) are assembled from
// them. A forward with `save` returns what its backward needs; the backward returns fresh f32 gradients.
// Compute dtype (LayerDims.computeDtype, or the `cd` argument where no dims are taken): 'f32' multiplies the
// activations as they are (today's numerics); 'bf16' casts each GEMM input to bf16 once (q/k/v share one cast of the
// normed input, gate/up another), multiplies by bf16 weights (the caller converts them once, never per GEMM) and gets
// f32 back (MatmulOptions.outDtype), so the residual stream, norms, softmax and every gradient stay f32.
//
//   layer:  h1 = rmsnorm(x) → q, k, v = heads(h1) → attn → x1 = x + o(attn) → y = x1 + down(swiglu(gate, up)(rmsnorm(x1)))
import type { AttentionMask, AttentionShape, Backend, MatmulOptions, Tensor } from '../engine/backend.js';
import type { KVCache } from './kvcache.js';
import type { LayerWeights, Linear } from './weights.js';

/** The sizes every piece needs (a ModelConfig or a DrafterConfig). */
export interface LayerDims {
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  rmsNormEps: number;
  /** GEMM precision of the linear layers; absent = 'f32'. */
  computeDtype?: ComputeDtype;
}

/** The precision of the linear layers' GEMMs (see the top of this file). */
export type ComputeDtype = 'f32' | 'bf16';

/** The layer sizes of d with a compute dtype (a new object: d itself is not changed). */
export function withComputeDtype(d: LayerDims, computeDtype: ComputeDtype): LayerDims {
  return { numHeads: d.numHeads, numKvHeads: d.numKvHeads, headDim: d.headDim, rmsNormEps: d.rmsNormEps, computeDtype };
}

function dtypeOf(d: LayerDims): ComputeDtype {
  return d.computeDtype ?? 'f32';
}

/** t as a GEMM operand at compute dtype cd: t itself ('f32', or already bf16) or a bf16 copy the caller frees. */
export function gemmInput(be: Backend, t: Tensor, cd: ComputeDtype): Tensor {
  return cd === 'bf16' && t.dtype !== 'bf16' ? be.cast(t, 'bf16') : t;
}

/** gemmInput that consumes t: a bf16 copy replaces (frees) it. */
function toGemmInput(be: Backend, t: Tensor, cd: ComputeDtype): Tensor {
  const g = gemmInput(be, t, cd);
  if (g !== t) be.free(t);
  return g;
}

/** Matmul options of a GEMM at compute dtype cd ('bf16': f32 output of bf16 operands). */
function gemmOptions(cd: ComputeDtype, o: MatmulOptions): MatmulOptions {
  return cd === 'bf16' && !o.accumulate ? { ...o, outDtype: 'f32' } : o;
}

/**
 * The shared GEMM input of several linears reading the same x (q/k/v, gate/up): a bf16 copy made once when they
 * are all dense; x itself otherwise (a rotated linear casts after its own transform, which stays in f32).
 */
function sharedGemmInput(be: Backend, x: Tensor, lins: readonly Linear[], cd: ComputeDtype): Tensor {
  return lins.every((l) => l.kind === 'dense') ? gemmInput(be, x, cd) : x;
}

// ── Linear ──────────────────────────────────────────────────────────────────────────────────────────────────────

/** A dense linear layer over an [out, in] tensor (the ParoQuant block's effective weights, the drafter's weights). */
export function denseLinear(weight: Tensor, bias?: Tensor): Linear {
  return { kind: 'dense', weight, bias, outFeatures: weight.shape[0], inFeatures: weight.shape[1] };
}

/** y = x·Wᵀ + b, with the ParoQuant runtime transform (x ⊙ channel_scales, then K Givens layers) when present. */
export function applyLinear(be: Backend, x: Tensor, lin: Linear, cd: ComputeDtype = 'f32'): Tensor {
  let input = x;
  if (lin.kind === 'rotated') {
    const scaled = be.mulCols(x, lin.channelScales);
    input = be.givens(scaled, lin.pairs, lin.theta, lin.groupSize, 'forward');
    be.free(scaled);
  }
  const a = gemmInput(be, input, cd);
  const y = be.matmul(a, lin.weight, gemmOptions(cd, { transB: true }));
  if (a !== input) be.free(a);
  if (input !== x) be.free(input);
  if (!lin.bias) return y;
  const yb = be.add(y, lin.bias);
  be.free(y);
  return yb;
}

/**
 * dW = dyᵀ·x of a dense linear y = x·Wᵀ: [out, in], f32 at either compute dtype. With 'bf16', operands not yet bf16
 * are cast here (callers cast a dy used twice once, with gemmInput).
 */
export function linearWeightGrad(be: Backend, dy: Tensor, x: Tensor, cd: ComputeDtype = 'f32'): Tensor {
  const a = gemmInput(be, dy, cd);
  const b = gemmInput(be, x, cd);
  const dW = be.matmul(a, b, gemmOptions(cd, { transA: true }));
  if (a !== dy) be.free(a);
  if (b !== x) be.free(b);
  return dW;
}

/**
 * dx = dy·W of a dense linear; with `into` (f32), added to that tensor (one GEMM with β = 1) and returned. With
 * 'bf16', W must already be bf16 (the caller's converted weights) and dy is cast here unless it is bf16.
 */
export function linearInputGrad(be: Backend, dy: Tensor, w: Tensor, into?: Tensor, cd: ComputeDtype = 'f32'): Tensor {
  const a = gemmInput(be, dy, cd);
  const dx = into ? be.matmul(a, w, { accumulate: into }) : be.matmul(a, w, gemmOptions(cd, {}));
  if (a !== dy) be.free(a);
  return dx;
}

/**
 * The dense weight W_eff [out, in] of a ParoQuant linear, rotation and channel scales folded in:
 * x·W_effᵀ = givens(x ⊙ cs)·W_rotᵀ, so each row of W_rot goes through the inverse rotation, then columns scale by cs.
 */
export function foldRotation(
  be: Backend, wRot: Tensor, pairs: Tensor, theta: Tensor, channelScales: Tensor, groupSize: number,
): Tensor {
  const u = be.givens(wRot, pairs, theta, groupSize, 'inverse');
  const w = be.mulCols(u, channelScales);
  be.free(u);
  return w;
}

// ── Embedding ───────────────────────────────────────────────────────────────────────────────────────────────────

/** Rows of the token embedding table as f32 activations [ids, H] (the table is frozen: there is no backward). */
export function embedTokens(be: Backend, table: Tensor, ids: Int32Array): Tensor {
  const x = be.gatherRows(table, ids);
  if (x.dtype === 'f32') return x;
  const x32 = be.cast(x, 'f32');
  be.free(x);
  return x32;
}

// ── Head norm (Qwen3 q_norm / k_norm) ───────────────────────────────────────────────────────────────────────────

/** Per-head RMSNorm over headDim of a [rows, heads·D] tensor: y (same shape) and rstd [rows·heads]. */
export function headNormForward(be: Backend, x: Tensor, w: Tensor, D: number, eps: number): { y: Tensor; rstd: Tensor } {
  const [rows, width] = x.shape;
  const { y, rstd } = be.rmsnorm(be.reshape(x, [(rows * width) / D, D]), w, eps);
  return { y: be.reshape(y, [rows, width]), rstd };
}

/** dx and, with weightGrad (default), the norm weight's gradient dw. */
export function headNormBackward(
  be: Backend, dy: Tensor, x: Tensor, w: Tensor, rstd: Tensor, D: number, weightGrad = true,
): { dx: Tensor; dw?: Tensor } {
  const [rows, width] = x.shape;
  const flat = [(rows * width) / D, D];
  const dyf = be.reshape(dy, flat);
  const xf = be.reshape(x, flat);
  if (!weightGrad) return { dx: be.reshape(be.rmsnormBackward(dyf, xf, w, rstd, false).dx, [rows, width]) };
  const { dx, dw } = be.rmsnormBackward(dyf, xf, w, rstd);
  return { dx: be.reshape(dx, [rows, width]), dw };
}

// ── Attention heads: projection → head norm (when present) → RoPE ───────────────────────────────────────────────

export interface HeadsSaved {
  /** The projection's output (the head norm's input). */
  pre: Tensor;
  /** Head norm statistics (absent without a head norm). */
  rstd?: Tensor;
}

/** q or k heads of x: rope(headNorm(x·Wᵀ + b)) at the given positions. */
export function headsForward(
  be: Backend, x: Tensor, lin: Linear, norm: Tensor | undefined, positions: Int32Array, invFreq: Float32Array, d: LayerDims,
): { y: Tensor; saved: HeadsSaved } {
  const pre = applyLinear(be, x, lin, dtypeOf(d));
  if (!norm) return { y: be.rope(pre, positions, invFreq, d.headDim), saved: { pre } };
  const n = headNormForward(be, pre, norm, d.headDim, d.rmsNormEps);
  const y = be.rope(n.y, positions, invFreq, d.headDim);
  be.free(n.y);
  return { y, saved: { pre, rstd: n.rstd } };
}

/**
 * From the gradient of the roped heads to the gradient of the projection output and, with normGrad (default), of the
 * head norm weight.
 */
export function headsBackward(
  be: Backend, dy: Tensor, s: HeadsSaved, norm: Tensor | undefined, positions: Int32Array, invFreq: Float32Array, d: LayerDims,
  normGrad = true,
): { dpre: Tensor; dnorm?: Tensor } {
  const dn = be.rope(dy, positions, invFreq, d.headDim, true);
  if (!norm || !s.rstd) return { dpre: dn };
  const { dx, dw } = headNormBackward(be, dn, s.pre, norm, s.rstd, d.headDim, normGrad);
  be.free(dn);
  return { dpre: dx, dnorm: dw };
}

export function freeHeads(be: Backend, s: HeadsSaved): void {
  be.free(s.pre, s.rstd);
}

// ── Attention inputs: input RMSNorm, q/k/v heads ────────────────────────────────────────────────────────────────

export type AttentionInputWeights = Pick<LayerWeights, 'inputNorm' | 'q' | 'k' | 'v' | 'qNorm' | 'kNorm'>;

export interface AttentionInputsSaved {
  /** The layer input (referenced, not copied: the caller owns it). */
  x: Tensor;
  /** The normed input as the projections multiplied it (bf16 at compute dtype 'bf16' with dense q/k/v). */
  h: Tensor; rstd: Tensor;
  q: HeadsSaved; k: HeadsSaved;
}

/** The q/k head norms apply when the layer has both (Qwen3). */
function headNorms(w: AttentionInputWeights): { qNorm?: Tensor; kNorm?: Tensor } {
  return w.qNorm && w.kNorm ? { qNorm: w.qNorm, kNorm: w.kNorm } : {};
}

/**
 * Input RMSNorm, q/k/v projections, per-head q/k norms, RoPE at the given absolute positions: q [rows, heads·D],
 * k and v [rows, kvHeads·D].
 */
export function attentionInputs(
  be: Backend, d: LayerDims, w: AttentionInputWeights, x: Tensor, positions: Int32Array, invFreq: Float32Array, save = false,
): { qr: Tensor; kr: Tensor; v: Tensor; saved?: AttentionInputsSaved } {
  const { qNorm, kNorm } = headNorms(w);
  const cd = dtypeOf(d);
  const { y: hNormed, rstd } = be.rmsnorm(x, w.inputNorm, d.rmsNormEps);
  // One bf16 cast shared by q, k and v (only their weight gradients read h again: rmsnorm's backward reads x).
  const h = sharedGemmInput(be, hNormed, [w.q, w.k, w.v], cd);
  if (h !== hNormed) be.free(hNormed);
  const q = headsForward(be, h, w.q, qNorm, positions, invFreq, d);
  const k = headsForward(be, h, w.k, kNorm, positions, invFreq, d);
  const v = applyLinear(be, h, w.v, cd);
  if (save) return { qr: q.y, kr: k.y, v, saved: { x, h, rstd, q: q.saved, k: k.saved } };
  freeHeads(be, q.saved);
  freeHeads(be, k.saved);
  be.free(h, rstd);
  return { qr: q.y, kr: k.y, v };
}

/**
 * Backward of attentionInputs (dense q/k/v) from the gradients of qr, kr, v to the projection weight gradients.
 * The input gradient is not formed (the ParoQuant block keeps its input fixed); head-norm weight gradients are not
 * formed either (the block's norms are frozen).
 */
export function attentionInputsWeightGrads(
  be: Backend, d: LayerDims, w: AttentionInputWeights, s: AttentionInputsSaved, dqr: Tensor, dkr: Tensor, dv: Tensor,
  positions: Int32Array, invFreq: Float32Array,
): { q: Tensor; k: Tensor; v: Tensor } {
  const { qNorm, kNorm } = headNorms(w);
  const cd = dtypeOf(d);
  const dq = headsBackward(be, dqr, s.q, qNorm, positions, invFreq, d, false);
  const dk = headsBackward(be, dkr, s.k, kNorm, positions, invFreq, d, false);
  const grads = { q: linearWeightGrad(be, dq.dpre, s.h, cd), k: linearWeightGrad(be, dk.dpre, s.h, cd), v: linearWeightGrad(be, dv, s.h, cd) };
  be.free(dq.dpre, dk.dpre);
  return grads;
}

export function freeAttentionInputs(be: Backend, s: AttentionInputsSaved): void {
  freeHeads(be, s.q);
  freeHeads(be, s.k);
  be.free(s.h, s.rstd);
}

// ── Attention ───────────────────────────────────────────────────────────────────────────────────────────────────

/** Shape of causal self-attention over nSeq sequences of seqLen rows each. */
function causalShape(d: LayerDims, nSeq: number, seqLen: number): AttentionShape {
  return { batch: nSeq, tq: seqLen, tk: seqLen, heads: d.numHeads, kvHeads: d.numKvHeads, headDim: d.headDim };
}

const CAUSAL: AttentionMask = { kind: 'causal', qOffset: 0 };

/** Causal self-attention of nSeq sequences of seqLen rows (no cache): the output and, for the backward, lse. */
export function causalAttention(
  be: Backend, d: LayerDims, q: Tensor, k: Tensor, v: Tensor, nSeq: number, seqLen: number,
): { out: Tensor; lse: Tensor } {
  return be.attention(q, k, v, causalShape(d, nSeq, seqLen), CAUSAL);
}

export function causalAttentionBackward(
  be: Backend, d: LayerDims, dout: Tensor, q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, nSeq: number, seqLen: number,
): { dq: Tensor; dk: Tensor; dv: Tensor } {
  return be.attentionBackward(dout, q, k, v, out, lse, causalShape(d, nSeq, seqLen), CAUSAL);
}

/**
 * Attention of q (batch entries of tq rows each) against the first tk positions of layer l of a KV cache (inference:
 * no backward). Returns the output [batch·tq, heads·D].
 */
export function attendToCache(
  be: Backend, d: LayerDims, q: Tensor, cache: KVCache, l: number, batch: number, tq: number, tk: number, mask: AttentionMask,
): Tensor {
  const shape: AttentionShape = { batch, tq, tk, kvStride: cache.capacity, heads: d.numHeads, kvHeads: d.numKvHeads, headDim: d.headDim };
  const { out, lse } = be.attention(q, cache.k[l], cache.v[l], shape, mask);
  be.free(lse);
  return out;
}

// ── Attention output: x1 = x + attn·Woᵀ (+ b) ───────────────────────────────────────────────────────────────────

/** The residual stream after attention. attn stays the caller's. */
export function attentionOutput(be: Backend, o: Linear, x: Tensor, attn: Tensor, cd: ComputeDtype = 'f32'): Tensor {
  const y = applyLinear(be, attn, o, cd);
  const x1 = be.add(x, y);
  be.free(y);
  return x1;
}

/** Backward of attentionOutput (dense o): dWo and dattn. dx1 flows on unchanged to x (the residual). */
export function attentionOutputBackward(
  be: Backend, o: Tensor, attn: Tensor, dx1: Tensor, cd: ComputeDtype = 'f32',
): { dW: Tensor; dattn: Tensor } {
  const dy = gemmInput(be, dx1, cd); // one cast for both GEMMs
  const r = { dW: linearWeightGrad(be, dy, attn, cd), dattn: linearInputGrad(be, dy, o, undefined, cd) };
  if (dy !== dx1) be.free(dy);
  return r;
}

// ── MLP: y = x1 + down(silu(gate(h2)) ⊙ up(h2)), h2 = rmsnorm(x1) ───────────────────────────────────────────────

export type MlpWeights = Pick<LayerWeights, 'postNorm' | 'gate' | 'up' | 'down'>;

export interface MlpSaved {
  /** The MLP input (referenced; see mlpForward). */
  x1: Tensor;
  /** h2 and m as the GEMMs multiplied them (bf16 at compute dtype 'bf16' with dense linears). */
  h2: Tensor; rstd: Tensor;
  g: Tensor; u: Tensor; m: Tensor;
}

/** Post-attention RMSNorm, SwiGLU MLP and residual. With save, x1 is kept in the saved set (free it with freeMlp). */
export function mlpForward(be: Backend, d: LayerDims, w: MlpWeights, x1: Tensor, save = false): { y: Tensor; saved?: MlpSaved } {
  const cd = dtypeOf(d);
  const { y: h2Normed, rstd } = be.rmsnorm(x1, w.postNorm, d.rmsNormEps);
  const h2 = sharedGemmInput(be, h2Normed, [w.gate, w.up], cd); // one cast shared by gate and up
  if (h2 !== h2Normed) be.free(h2Normed);
  const g = applyLinear(be, h2, w.gate, cd);
  const u = applyLinear(be, h2, w.up, cd);
  const mAct = be.swiglu(g, u);
  const m = sharedGemmInput(be, mAct, [w.down], cd);
  if (m !== mAct) be.free(mAct);
  const dn = applyLinear(be, m, w.down, cd);
  const y = be.add(x1, dn);
  be.free(dn);
  if (save) return { y, saved: { x1, h2, rstd, g, u, m } };
  be.free(h2, rstd, g, u, m);
  return { y };
}

/**
 * Backward of mlpForward (dense weights) from dy: the gradient w.r.t. x1 (residual included) and the weight
 * gradients (the post-norm weight's only with normGrad, the default). dy stays the caller's.
 */
export function mlpBackward(
  be: Backend, w: MlpWeights, s: MlpSaved, dy: Tensor, cd: ComputeDtype = 'f32', normGrad = true,
): { dx1: Tensor; grads: { postNorm?: Tensor; gate: Tensor; up: Tensor; down: Tensor } } {
  const dyIn = gemmInput(be, dy, cd); // dy stays the caller's (the residual below adds it)
  const down = linearWeightGrad(be, dyIn, s.m, cd);
  const dm = linearInputGrad(be, dyIn, w.down.weight, undefined, cd);
  if (dyIn !== dy) be.free(dyIn);
  const sw = be.swigluBackward(dm, s.g, s.u);
  be.free(dm);
  const dgate = toGemmInput(be, sw.dgate, cd);
  const dup = toGemmInput(be, sw.dup, cd);
  const gate = linearWeightGrad(be, dgate, s.h2, cd);
  const up = linearWeightGrad(be, dup, s.h2, cd);
  const dh2 = linearInputGrad(be, dgate, w.gate.weight, undefined, cd);
  linearInputGrad(be, dup, w.up.weight, dh2, cd);
  be.free(dgate, dup);
  const { dx: dx1n, dw: postNorm } = normGrad
    ? be.rmsnormBackward(dh2, s.x1, w.postNorm, s.rstd)
    : { ...be.rmsnormBackward(dh2, s.x1, w.postNorm, s.rstd, false), dw: undefined };
  be.free(dh2);
  const dx1 = be.add(dy, dx1n);
  be.free(dx1n);
  return { dx1, grads: { postNorm, gate, up, down } };
}

/** Free an MLP's saved activations, x1 included. */
export function freeMlp(be: Backend, s: MlpSaved): void {
  be.free(s.x1, s.h2, s.rstd, s.g, s.u, s.m);
}

/** The rest of a decoder layer once attention is computed: x + o(attn), then the MLP. Frees attn; x stays the caller's. */
export function layerOutput(be: Backend, d: LayerDims, w: LayerWeights, x: Tensor, attn: Tensor): Tensor {
  const x1 = attentionOutput(be, w.o, x, attn, dtypeOf(d));
  be.free(attn);
  const { y } = mlpForward(be, d, w, x1);
  be.free(x1);
  return y;
}
