// Inference forward of a Llama / Qwen2 / Qwen3 decoder: batched prefill, KV-cached decode, hidden-state taps.
// One implementation, driven by the ModelConfig switches (biases, q/k norms, tied head, RoPE scaling), assembled from
// the layer ops (layer-ops.ts).
import type { Backend, Tensor } from '../engine/backend.js';
import type { ModelConfig } from '../io/config.js';
import type { LayerWeights, ModelWeights } from './weights.js';
import { ropeInvFreq, type RopePrecision } from './rope-freq.js';
import { KVCache } from './kvcache.js';
import { attendToCache, attentionInputs, causalAttention, embedTokens, layerOutput } from './layer-ops.js';

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
      if (!opts.noLogits) res.logits = be.matmul(y, weights.lmHead, { transB: true });
    }
    be.free(x);
    return res;
  }

  /** One decoder layer: x + attn(norm(x)), then + mlp(norm(·)). */
  layerForward(l: number, w: LayerWeights, x: Tensor, positions: Int32Array, batch: number, seq: number, cache?: KVCache): Tensor {
    const { be, cfg } = this;
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
