// Inference forward of a Llama / Qwen2 / Qwen3 decoder: batched prefill, KV-cached decode, hidden-state taps.
// One implementation, driven by the ModelConfig switches (biases, q/k norms, tied head, RoPE scaling), assembled from
// the layer ops (layer-ops.ts). Compute dtype 'f32' (the default) or 'bf16' (setComputeDtype: bf16 GEMMs with f32
// outputs, the linear weights and the head converted to bf16 once).
import type { Backend, Tensor } from '../engine/backend.js';
import type { ModelConfig } from '../io/config.js';
import type { LayerWeights, ModelWeights } from './weights.js';
import { ropeInvFreq, type RopePrecision } from './rope-freq.js';
import { KVCache } from './kvcache.js';
import {
  attendToCache, attentionInputs, causalAttention, embedTokens, gemmInput, layerOutput, withComputeDtype, type ComputeDtype,
  type LayerDims,
} from './layer-ops.js';
import type { Linear } from './weights.js';

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
  private cd: ComputeDtype = 'f32';
  /** The layer sizes with the compute dtype, as the layer ops take them. */
  private layerDims: LayerDims;

  constructor(readonly be: Backend, readonly cfg: ModelConfig, readonly weights: ModelWeights, ropePrecision: RopePrecision = 'f32') {
    this.invFreq = ropeInvFreq(cfg, ropePrecision);
    this.layerDims = cfg;
  }

  get computeDtype(): ComputeDtype {
    return this.cd;
  }

  /** What the layer ops take (layer sizes and the compute dtype): for code that runs the layers itself. */
  get dims(): LayerDims {
    return this.layerDims;
  }

  /**
   * Set the GEMM precision. 'bf16' converts, once and in place, every linear weight and the LM head (with the
   * embedding when tied) that is not bf16 yet: the old tensors are freed and freeModelWeights frees the new ones.
   * Call it before handing weights (embed, lmHead) to anyone else. 'f32' keeps the weights as they are.
   */
  setComputeDtype(cd: ComputeDtype): void {
    this.cd = cd;
    this.layerDims = cd === 'f32' ? this.cfg : withComputeDtype(this.cfg, cd);
    if (cd !== 'bf16') return;
    const { be, weights: w } = this;
    const toBf16 = (lin: Linear): void => {
      if (lin.weight.dtype === 'bf16') return;
      const old = lin.weight;
      lin.weight = be.cast(old, 'bf16');
      be.free(old);
    };
    for (const L of w.layers) for (const lin of [L.q, L.k, L.v, L.o, L.gate, L.up, L.down]) toBf16(lin);
    if (w.lmHead.dtype !== 'bf16') {
      const tied = w.lmHead === w.embed;
      const old = w.lmHead;
      w.lmHead = be.cast(old, 'bf16');
      if (tied) w.embed = w.lmHead; // the embedding rows are read through embedTokens, which returns f32
      be.free(old);
    }
  }

  /** Logits of hidden rows [R, H] through the LM head: [R, V], f32 at either compute dtype. */
  logits(hidden: Tensor): Tensor {
    const { be } = this;
    if (this.cd === 'f32') return be.matmul(hidden, this.weights.lmHead, { transB: true });
    const h = gemmInput(be, hidden, this.cd);
    const out = be.matmul(h, this.weights.lmHead, { transB: true, outDtype: 'f32' });
    if (h !== hidden) be.free(h);
    return out;
  }

  newCache(batch: number, capacity: number): KVCache {
    return new KVCache(this.be, this.weights.layers.length, batch, capacity, this.cfg.numKvHeads * this.cfg.headDim, this.cd);
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
    let x = embedTokens(be, weights.embed, ids);
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
      if (!opts.noLogits) res.logits = this.logits(y);
    }
    be.free(x);
    return res;
  }

  /** One decoder layer: x + attn(norm(x)), then + mlp(norm(·)). */
  layerForward(l: number, w: LayerWeights, x: Tensor, positions: Int32Array, batch: number, seq: number, cache?: KVCache): Tensor {
    const { be } = this;
    const cfg = this.layerDims;
    const { qr, kr, v } = attentionInputs(be, cfg, w, x, positions, this.invFreq);
    let attn: Tensor;
    if (cache) {
      cache.write(l, kr, v, seq);
      const past = cache.length;
      attn = attendToCache(be, cfg, qr, cache, l, batch, seq, past + seq, { kind: 'causal', qOffset: past });
    } else {
      const r = causalAttention(be, cfg, qr, kr, v, batch, seq);
      attn = r.out;
      be.free(r.lse);
    }
    be.free(qr, kr, v);
    return layerOutput(be, cfg, w, x, attn);
  }
}
