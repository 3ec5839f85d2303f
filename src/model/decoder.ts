// Inference forward of a Llama / Qwen2 / Qwen3 decoder: batched prefill, KV-cached decode, hidden-state taps.
// One implementation, driven by the ModelConfig switches (biases, q/k norms, tied head, RoPE scaling).
import type { Backend, Tensor } from '../engine/backend.js';
import type { ModelConfig } from '../io/config.js';
import type { LayerWeights, Linear, ModelWeights } from './weights.js';
import { ropeInvFreq, type RopePrecision } from './rope-freq.js';
import { KVCache } from './kvcache.js';

/** y = x·Wᵀ + b, with the ParoQuant runtime transform (x ⊙ channel_scales, then K Givens layers) when present. */
export function applyLinear(be: Backend, x: Tensor, lin: Linear): Tensor {
  let input = x;
  if (lin.kind === 'rotated') {
    const scaled = be.mulCols(x, lin.channelScales);
    input = be.givens(scaled, lin.pairs, lin.theta, lin.groupSize, 'forward');
    be.free(scaled);
  }
  const y = be.matmul(input, lin.weight, { transB: true });
  if (input !== x) be.free(input);
  if (!lin.bias) return y;
  const yb = be.add(y, lin.bias);
  be.free(y);
  return yb;
}

/** Per-head RMSNorm over headDim of a [rows, heads·headDim] tensor. */
export function headNorm(be: Backend, x: Tensor, w: Tensor, headDim: number, eps: number): Tensor {
  const rows = x.shape[0];
  const width = x.shape[1];
  const flat = be.reshape(x, [(rows * width) / headDim, headDim]);
  const { y, rstd } = be.rmsnorm(flat, w, eps);
  be.free(rstd);
  const out = be.reshape(y, [rows, width]);
  return out;
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

/**
 * The rest of a decoder layer once attention is computed: x + o_proj(attn), then + down(swiglu(gate, up)) of its
 * post-attention norm. Frees attn; x stays the caller's.
 */
export function layerOutput(be: Backend, cfg: ModelConfig, w: LayerWeights, x: Tensor, attn: Tensor): Tensor {
  const o = applyLinear(be, attn, w.o);
  be.free(attn);
  const x1 = be.add(x, o);
  be.free(o);
  const { y: h2, rstd: r2 } = be.rmsnorm(x1, w.postNorm, cfg.rmsNormEps);
  be.free(r2);
  const g = applyLinear(be, h2, w.gate);
  const u = applyLinear(be, h2, w.up);
  be.free(h2);
  const a = be.swiglu(g, u);
  be.free(g, u);
  const d = applyLinear(be, a, w.down);
  be.free(a);
  const x2 = be.add(x1, d);
  be.free(x1, d);
  return x2;
}

/**
 * The attention inputs of one layer: input RMSNorm, q/k/v projections, Qwen3's per-head q/k norms, RoPE at the given
 * absolute positions. q [rows, heads·D], k and v [rows, kvHeads·D].
 */
export function attentionInputs(
  be: Backend, cfg: ModelConfig, w: LayerWeights, x: Tensor, positions: Int32Array, invFreq: Float32Array,
): { qr: Tensor; kr: Tensor; v: Tensor } {
  const D = cfg.headDim;
  const { y: h, rstd } = be.rmsnorm(x, w.inputNorm, cfg.rmsNormEps);
  be.free(rstd);
  let q = applyLinear(be, h, w.q);
  let k = applyLinear(be, h, w.k);
  const v = applyLinear(be, h, w.v);
  be.free(h);
  if (w.qNorm && w.kNorm) {
    const qn = headNorm(be, q, w.qNorm, D, cfg.rmsNormEps);
    const kn = headNorm(be, k, w.kNorm, D, cfg.rmsNormEps);
    be.free(q, k);
    q = qn;
    k = kn;
  }
  const qr = be.rope(q, positions, invFreq, D);
  const kr = be.rope(k, positions, invFreq, D);
  be.free(q, k);
  return { qr, kr, v };
}

export interface ForwardOptions {
  /** Causal KV cache; positions continue from its current length (prefill on an empty cache, or decode). */
  cache?: KVCache;
  /** Decoder layers whose outputs (residual stream after layer l) are returned as taps. */
  tapLayers?: readonly number[];
  /** Return the input embeddings as well (hidden_states[0] in transformers terms). */
  tapEmbeddings?: boolean;
  /** Skip the final norm + LM head (only taps wanted). */
  skipHead?: boolean;
  /** Return the final-normed hidden state but no logits (the caller applies the head in chunks). */
  noLogits?: boolean;
  /** Run only the first n layers. */
  layerLimit?: number;
}

export interface ForwardResult {
  /** [batch·seq, vocab], unless skipHead. */
  logits?: Tensor;
  /** Final-normed hidden state [batch·seq, H], unless skipHead. */
  hidden?: Tensor;
  taps: Map<number, Tensor>;
  embeddings?: Tensor;
}

export class Decoder {
  readonly invFreq: Float32Array;

  constructor(readonly be: Backend, readonly cfg: ModelConfig, readonly weights: ModelWeights, ropePrecision: RopePrecision = 'f32') {
    this.invFreq = ropeInvFreq(cfg, ropePrecision);
  }

  newCache(batch: number, capacity: number): KVCache {
    return new KVCache(this.be, this.weights.layers.length, batch, capacity, this.cfg.numKvHeads * this.cfg.headDim);
  }

  /**
   * Forward over ids [batch·seq] (batch sequences of equal length seq). Without a cache, sequence b's token t is
   * at position t; with a cache, positions continue from cache.length (shared by all batch entries).
   */
  forward(ids: Int32Array, batch: number, opts: ForwardOptions = {}): ForwardResult {
    const { be, cfg, weights } = this;
    const seq = ids.length / batch;
    if (!Number.isInteger(seq)) throw new Error(`forward: ${ids.length} ids do not split into ${batch} sequences`);
    const past = opts.cache ? opts.cache.length : 0;
    const positions = new Int32Array(ids.length);
    for (let b = 0; b < batch; b++) for (let t = 0; t < seq; t++) positions[b * seq + t] = past + t;
    let x = be.gatherRows(weights.embed, ids);
    if (x.dtype !== 'f32') {
      const x32 = be.cast(x, 'f32');
      be.free(x);
      x = x32;
    }
    const res: ForwardResult = { taps: new Map() };
    if (opts.tapEmbeddings) res.embeddings = be.copy(x);
    const nLayers = Math.min(weights.layers.length, opts.layerLimit ?? weights.layers.length);
    const taps = new Set(opts.tapLayers ?? []);
    for (let l = 0; l < nLayers; l++) {
      const xn = this.layerForward(l, weights.layers[l], x, positions, batch, seq, opts.cache);
      be.free(x);
      x = xn;
      if (taps.has(l)) res.taps.set(l, be.copy(x));
    }
    if (opts.cache) opts.cache.advance(seq);
    if (!opts.skipHead) {
      const { y, rstd } = be.rmsnorm(x, weights.finalNorm, cfg.rmsNormEps);
      be.free(rstd);
      res.hidden = y;
      if (!opts.noLogits) res.logits = be.matmul(y, weights.lmHead, { transB: true });
    }
    be.free(x);
    return res;
  }

  /** One decoder layer: x + attn(norm(x)), then + mlp(norm(·)). */
  layerForward(l: number, w: LayerWeights, x: Tensor, positions: Int32Array, batch: number, seq: number, cache?: KVCache): Tensor {
    const { be, cfg } = this;
    const D = cfg.headDim;
    const { qr, kr, v } = attentionInputs(be, cfg, w, x, positions, this.invFreq);
    let attn: Tensor;
    const shape = { batch, tq: seq, heads: cfg.numHeads, kvHeads: cfg.numKvHeads, headDim: D };
    if (cache) {
      cache.write(l, kr, v, seq);
      const past = cache.length;
      const r = be.attention(qr, cache.k[l], cache.v[l], { ...shape, tk: past + seq, kvStride: cache.capacity }, { kind: 'causal', qOffset: past });
      attn = r.out;
      be.free(r.lse);
    } else {
      const r = be.attention(qr, kr, v, { ...shape, tk: seq }, { kind: 'causal', qOffset: 0 });
      attn = r.out;
      be.free(r.lse);
    }
    be.free(qr, kr, v);
    return layerOutput(be, cfg, w, x, attn);
  }
}
