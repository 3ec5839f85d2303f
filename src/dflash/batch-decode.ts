// Target decoding of many prompts at once for data regeneration: each prompt is prefilled alone, its K/V copied into
// a slot of one shared cache (model/slot-kvcache.ts); then every decoding step runs the latest token of all
// unfinished prompts as one batch: the linear layers over all rows, the new K/V scattered into each slot at its own
// position, and one attention call whose causal mask has an offset per prompt. A step is a fixed number of backend
// calls per layer whatever the number of prompts (the weights are read once per step for the whole batch), and a
// finished prompt's slot is refilled by the last running one so it costs nothing further. Same math per row as
// Decoder.layerForward with a one-sequence cache: the tokens equal decoding each prompt alone.
import type { AttentionMask, AttentionShape, Backend, Tensor } from '../engine/backend.js';
import type { Decoder } from '../model/decoder.js';
import { attentionInputs, embedTokens, layerOutput } from '../model/layer-ops.js';
import { SlotKVCache } from '../model/slot-kvcache.js';
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
  out: number[];
  rng: Rng | null;
}

/**
 * One decoding step of slots 0..n−1 (n = tokens.length; token b sits at position cache.lengths[b], where its K/V are
 * written): logits [n, V].
 */
function decodeStep(target: Decoder, cache: SlotKVCache, tokens: Int32Array): Tensor {
  const { be, cfg, weights } = target;
  const dims = target.dims; // layer sizes and compute dtype
  const n = tokens.length;
  const positions = cache.lengths.slice(0, n);
  const rows = cache.nextRows(n);
  const shape: AttentionShape = {
    batch: n, tq: 1, tk: Math.max(...positions) + 1, kvStride: cache.capacity,
    heads: cfg.numHeads, kvHeads: cfg.numKvHeads, headDim: cfg.headDim,
  };
  // Row b sees its own slot's keys 0..positions[b] (the row this step writes included).
  const mask: AttentionMask = { kind: 'causalPerEntry', qOffsets: positions };
  let x = embedTokens(be, weights.embed, tokens);
  for (let l = 0; l < weights.layers.length; l++) {
    const w = weights.layers[l];
    const { qr, kr, v } = attentionInputs(be, dims, w, x, positions, target.invFreq);
    cache.write(l, kr, v, rows);
    const { out: attn, lse } = be.attention(qr, cache.k[l], cache.v[l], shape, mask);
    be.free(qr, kr, v, lse);
    const xNext = layerOutput(be, dims, w, x, attn);
    be.free(x);
    x = xNext;
  }
  cache.advance(n);
  const { y, rstd } = be.rmsnorm(x, weights.finalNorm, cfg.rmsNormEps);
  be.free(x, rstd);
  const logits = target.logits(y);
  be.free(y);
  return logits;
}

/**
 * The token of each logits row [n, V]: greedy on the device (argmaxRows: the first maximum, as chooseToken), only the
 * ids coming to the host; sampling on the host with each prompt's generator.
 */
function chooseTokens(be: Backend, logits: Tensor, T: number, rngs: readonly (Rng | null)[]): Int32Array {
  if (T <= 0) return be.argmaxRows(logits);
  const V = logits.shape[1];
  const host = be.toHost(logits);
  return Int32Array.from(rngs, (rng, b) => chooseToken(host, T, rng, b * V, V));
}

/**
 * Generate for every prompt (greedy at T = 0, else sampling with its seed): up to maxNewTokens tokens, ending after
 * the first stop token. onDone(i, tokens) is called as each prompt finishes (those of one step in descending prompt
 * order). Returns the outputs in prompt order.
 */
export function batchGenerate(
  target: Decoder, prompts: readonly Int32Array[], opts: BatchGenerateOptions,
  onDone?: (index: number, tokens: number[]) => void,
): number[][] {
  const be: Backend = target.be;
  const stops = new Set(opts.stopTokenIds);
  const results: number[][] = new Array(prompts.length);
  if (prompts.length === 0) return results;
  prompts.forEach((ids, i) => { if (ids.length === 0) throw new Error(`prompt ${i} is empty`); });
  const finish = (r: Running): void => {
    results[r.index] = r.out;
    onDone?.(r.index, r.out);
  };
  const done = (r: Running): boolean => r.out.length >= opts.maxNewTokens || stops.has(r.out[r.out.length - 1]);
  // A slot holds a prompt and the new tokens fed back (the last chosen token is never fed).
  const capacity = Math.max(...prompts.map((p) => p.length)) + Math.max(1, opts.maxNewTokens);
  const width = target.cfg.numKvHeads * target.cfg.headDim;
  const cache = new SlotKVCache(be, target.weights.layers.length, prompts.length, capacity, width, target.computeDtype);
  try {
    // running[s] decodes in slot s.
    const running: Running[] = [];
    for (let i = 0; i < prompts.length; i++) {
      const ids = prompts[i];
      const pc = target.newCache(1, ids.length);
      const pre = target.forward(ids, 1, { cache: pc, noLogits: true });
      const last = sliceRows(be, pre.hidden!, ids.length - 1, 1);
      const lg = target.logits(last);
      const rng = opts.temperature > 0 ? new Rng(opts.seeds?.[i] ?? i) : null;
      const first = chooseTokens(be, lg, opts.temperature, [rng])[0];
      be.free(pre.hidden, last, lg);
      const r: Running = { index: i, out: [first], rng };
      if (done(r)) finish(r);
      else {
        cache.load(running.length, pc);
        running.push(r);
      }
      pc.free();
    }
    while (running.length > 0) {
      const tokens = Int32Array.from(running, (r) => r.out[r.out.length - 1]);
      const logits = decodeStep(target, cache, tokens);
      const chosen = chooseTokens(be, logits, opts.temperature, running.map((r) => r.rng));
      be.free(logits);
      const finished: number[] = []; // slots, ascending
      running.forEach((r, s) => {
        r.out.push(chosen[s]);
        if (done(r)) finished.push(s);
      });
      for (const s of [...finished].sort((a, b) => running[b].index - running[a].index)) finish(running[s]);
      // Compact from the highest finished slot down: the last slot is then always a running one (or the slot itself).
      for (let k = finished.length - 1; k >= 0; k--) {
        const s = finished[k];
        const lastSlot = running.length - 1;
        cache.move(lastSlot, s);
        running[s] = running[lastSlot];
        running.pop();
      }
    }
  } finally {
    cache.free();
  }
  return results;
}
