// One decoder block, forward with saved activations and backward to the weight gradients, assembled from the layer
// ops (layer-ops.ts), for block-wise optimization (ParoQuant) where the block's linear weights are replaced by effective
// weights Ŵ (dense [out, in] tensors) and only dL/dŴ is needed (the block input is fixed data).
import type { Backend, Tensor } from '../engine/backend.js';
import type { ModelConfig } from '../io/config.js';
import type { LayerWeights, LinearKey } from './weights.js';
import {
  attentionInputs, attentionInputsWeightGrads, attentionOutput, attentionOutputBackward, causalAttention,
  causalAttentionBackward, denseLinear, freeAttentionInputs, freeMlp, mlpBackward, mlpForward, type AttentionInputsSaved,
  type MlpSaved,
} from './layer-ops.js';

/** Non-trained parts of a block (norms, biases) and the effective linear weights to use. */
export interface BlockParams {
  inputNorm: Tensor;
  postNorm: Tensor;
  qNorm?: Tensor;
  kNorm?: Tensor;
  /** Effective weights Ŵ [out, in] per linear. */
  weights: Record<LinearKey, Tensor>;
  biases: Partial<Record<LinearKey, Tensor>>;
}

/** Activations the backward needs (the block input x is referenced in inputs.x, not copied). */
export interface BlockSaved {
  inputs: AttentionInputsSaved;
  qr: Tensor; kr: Tensor; v: Tensor; attn: Tensor; lse: Tensor;
  mlp: MlpSaved;
}

export interface BlockGeometry {
  /** Sequences in the batch; rows of x = nSeq · seqLen. */
  nSeq: number;
  seqLen: number;
  /** Positions of each row (0..seqLen−1 per sequence). */
  positions: Int32Array;
  invFreq: Float32Array;
}

export function positionsFor(nSeq: number, seqLen: number): Int32Array {
  const p = new Int32Array(nSeq * seqLen);
  for (let s = 0; s < nSeq; s++) for (let t = 0; t < seqLen; t++) p[s * seqLen + t] = t;
  return p;
}

/** Geometry of batches of n windows of seqLen tokens, made once per n (positions are the same for every call). */
export function geometryCache(seqLen: number, invFreq: Float32Array): (nSeq: number) => BlockGeometry {
  const cache = new Map<number, BlockGeometry>();
  return (nSeq) => {
    let g = cache.get(nSeq);
    if (!g) cache.set(nSeq, (g = { nSeq, seqLen, positions: positionsFor(nSeq, seqLen), invFreq }));
    return g;
  };
}

/** The block's layer weights as the layer ops take them (dense effective weights and biases). */
function layerWeights(p: BlockParams): LayerWeights {
  const lin = (k: LinearKey) => denseLinear(p.weights[k], p.biases[k]);
  return {
    inputNorm: p.inputNorm, postNorm: p.postNorm, qNorm: p.qNorm, kNorm: p.kNorm,
    q: lin('q'), k: lin('k'), v: lin('v'), o: lin('o'), gate: lin('gate'), up: lin('up'), down: lin('down'),
  };
}

/**
 * Block forward: y = x1 + down(swiglu(gate(h2), up(h2))), x1 = x + o(attn(rope(norm(q(h1))), ...)), h1 = norm(x).
 * With save = true the activations for blockBackward are returned (x is referenced, not copied).
 */
export function blockForward(
  be: Backend, cfg: ModelConfig, p: BlockParams, x: Tensor, geo: BlockGeometry, save: boolean,
): { y: Tensor; saved?: BlockSaved } {
  const w = layerWeights(p);
  const { qr, kr, v, saved: inputs } = attentionInputs(be, cfg, w, x, geo.positions, geo.invFreq, true);
  const { out: attn, lse } = causalAttention(be, cfg, qr, kr, v, geo.nSeq, geo.seqLen);
  const x1 = attentionOutput(be, w.o, x, attn);
  const { y, saved: mlp } = mlpForward(be, cfg, w, x1, true);
  const saved: BlockSaved = { inputs: inputs!, qr, kr, v, attn, lse, mlp: mlp! };
  if (!save) {
    freeSaved(be, saved);
    return { y };
  }
  return { y, saved };
}

/** Free the saved activations (not x, which the caller owns). */
export function freeSaved(be: Backend, s: BlockSaved): void {
  freeAttentionInputs(be, s.inputs);
  be.free(s.qr, s.kr, s.v, s.attn, s.lse);
  freeMlp(be, s.mlp);
}

/**
 * Backward of blockForward from dy to the gradients of the effective weights dŴ [out, in] (f32). The input
 * gradient is not formed: block-wise optimization keeps the block input fixed.
 */
export function blockBackward(
  be: Backend, cfg: ModelConfig, p: BlockParams, s: BlockSaved, dy: Tensor, geo: BlockGeometry,
): Record<LinearKey, Tensor> {
  const w = layerWeights(p);
  const { dx1, grads: mlp } = mlpBackward(be, w, s.mlp, dy, 'f32', false); // the norms are frozen: no norm gradients
  const { dW: dWo, dattn } = attentionOutputBackward(be, p.weights.o, s.attn, dx1);
  be.free(dx1);
  const { dq, dk, dv } = causalAttentionBackward(be, cfg, dattn, s.qr, s.kr, s.v, s.attn, s.lse, geo.nSeq, geo.seqLen);
  be.free(dattn);
  const qkv = attentionInputsWeightGrads(be, cfg, w, s.inputs, dq, dk, dv, geo.positions, geo.invFreq);
  be.free(dq, dk, dv);
  return { q: qkv.q, k: qkv.k, v: qkv.v, o: dWo, gate: mlp.gate, up: mlp.up, down: mlp.down };
}
