// Target decoding of many prompts at once for data regeneration: each prompt is prefilled alone (its own KV cache),
// then every decoding step feeds the latest token of all unfinished prompts through the linear layers as one batch
// (rows at different positions, a KV cache per prompt, attention per prompt). Same math as Decoder.layerForward;
// on the cpu the weights are then read once per step for the whole batch instead of once per prompt.
import type { Backend, Tensor } from '../engine/backend.js';
import type { Decoder } from '../model/decoder.js';
import { attendToCache, attentionInputs, embedTokens, layerOutput } from '../model/layer-ops.js';
import type { KVCache } from '../model/kvcache.js';
import { Rng } from '../numerics/rng.js';
import { sliceRows } from './rows.js';
import { chooseToken } from './sampling.js';

export interface BatchGenerateOptions {
  maxNewTokens: number;
  temperature: number;
  stopTokenIds: readonly number[];
  /** Sampling seed per prompt (T > 0). */
  seeds?: readonly number[];
}

interface Running {
  index: number;
  cache: KVCache;
  out: number[];
  rng: Rng | null;
}

/** One decoding step for the rows of `seqs` (one new token each, at position = its cache length): logits [n, V]. */
function raggedStep(target: Decoder, tokens: Int32Array, caches: readonly KVCache[]): Tensor {
  const { be, cfg, weights } = target;
  const dims = target.dims; // layer sizes and compute dtype
  const D = cfg.headDim;
  const n = tokens.length;
  const positions = Int32Array.from(caches, (c) => c.length);
  let x = embedTokens(be, weights.embed, tokens);
  for (let l = 0; l < weights.layers.length; l++) {
    const w = weights.layers[l];
    const { qr, kr, v } = attentionInputs(be, dims, w, x, positions, target.invFreq);
    const attn = be.zeros([n, cfg.numHeads * D]);
    for (let b = 0; b < n; b++) {
      const c = caches[b];
      const kb = sliceRows(be, kr, b, 1);
      const vb = sliceRows(be, v, b, 1);
      c.write(l, kb, vb, 1);
      const qb = sliceRows(be, qr, b, 1);
      const past = c.length;
      const out = attendToCache(be, dims, qb, c, l, 1, 1, past + 1, { kind: 'causal', qOffset: past });
      be.copyRows(attn, b, out, 0, 1);
      be.free(kb, vb, qb, out);
    }
    be.free(qr, kr, v);
    const xNext = layerOutput(be, dims, w, x, attn);
    be.free(x);
    x = xNext;
  }
  for (const c of caches) c.advance(1);
  const { y, rstd } = be.rmsnorm(x, weights.finalNorm, cfg.rmsNormEps);
  be.free(x, rstd);
  const logits = target.logits(y);
  be.free(y);
  return logits;
}

/**
 * Generate for every prompt (greedy at T = 0, else sampling with its seed): up to maxNewTokens tokens, ending after
 * the first stop token. onDone(i, tokens) is called as each prompt finishes. Returns the outputs in prompt order.
 */
export function batchGenerate(
  target: Decoder, prompts: readonly Int32Array[], opts: BatchGenerateOptions, onDone?: (index: number, tokens: number[]) => void,
): number[][] {
  const be: Backend = target.be;
  const V = target.cfg.vocabSize;
  const stops = new Set(opts.stopTokenIds);
  const results: number[][] = new Array(prompts.length);
  const running: Running[] = [];
  const finish = (r: Running): void => {
    r.cache.free();
    results[r.index] = r.out;
    onDone?.(r.index, r.out);
  };
  for (let i = 0; i < prompts.length; i++) {
    const ids = prompts[i];
    if (ids.length === 0) throw new Error(`prompt ${i} is empty`);
    const cache = target.newCache(1, ids.length + opts.maxNewTokens + 1);
    const pre = target.forward(ids, 1, { cache, noLogits: true });
    const last = sliceRows(be, pre.hidden!, ids.length - 1, 1);
    const lg = target.logits(last);
    const rng = opts.temperature > 0 ? new Rng(opts.seeds?.[i] ?? i) : null;
    const first = chooseToken(be.toHost(lg), opts.temperature, rng);
    be.free(pre.hidden, last, lg);
    const r: Running = { index: i, cache, out: [first], rng };
    if (opts.maxNewTokens <= 1 || stops.has(first)) finish(r);
    else running.push(r);
  }
  while (running.length > 0) {
    const tokens = Int32Array.from(running, (r) => r.out[r.out.length - 1]);
    const logits = raggedStep(target, tokens, running.map((r) => r.cache));
    const host = be.toHost(logits);
    be.free(logits);
    for (let b = running.length - 1; b >= 0; b--) {
      const r = running[b];
      const t = chooseToken(host, opts.temperature, r.rng, b * V, V);
      r.out.push(t);
      if (r.out.length >= opts.maxNewTokens || stops.has(t)) {
        finish(r);
        running.splice(b, 1);
      }
    }
  }
  return results;
}
