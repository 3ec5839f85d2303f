// Speculative decoding with a block drafter (dflash-spec §4.1, z-lab dflash/model.py @ 44947fb): prefill the target
// (taps kept), then per step draft B − 1 tokens in one drafter pass, verify the block with one target pass, accept
// the longest prefix of drafts matching the target's choices plus the target's bonus token. At T = 0 the output is
// the target's greedy decoding; at T > 0 drafts stay greedy and the target samples (the 44947fb rule, lossless).
import type { Backend, Tensor } from '../engine/backend.js';
import type { Decoder } from '../model/decoder.js';
import { Rng } from '../numerics/rng.js';
import { concatTaps } from './features.js';
import type { Drafter } from './drafter.js';
import { sliceRows } from './rows.js';
import type { KVCache } from '../model/kvcache.js';
import { chooseToken } from './sampling.js';

/** Anything that proposes the B − 1 tokens after an anchor. */
export interface DraftProposer {
  readonly blockSize: number;
  /** Target layers whose taps the proposer consumes ([] for none). */
  readonly tapLayers: readonly number[];
  /** A new prompt begins (reset caches). */
  begin(promptLength: number): void;
  /**
   * Drafts for the block whose slot 0 (token anchorToken) sits at position start. newTaps [n, taps·H] are the
   * target features of the positions since the previous call (the prompt on the first call), or null.
   */
  propose(newTaps: Tensor | null, anchorToken: number, start: number): Int32Array;
  end(): void;
}

/** The DFlash drafter as a proposer: greedy drafts from one pass over [anchor, MASK × (B − 1)]. */
export class DFlashProposer implements DraftProposer {
  readonly blockSize: number;
  readonly tapLayers: readonly number[];
  private cache: KVCache | null = null;

  constructor(readonly drafter: Drafter) {
    this.blockSize = drafter.cfg.blockSize;
    this.tapLayers = drafter.cfg.targetLayerIds;
  }

  begin(promptLength: number): void {
    this.cache?.free();
    this.cache = this.drafter.newCache(promptLength + 4 * this.drafter.cfg.blockSize + 64);
  }

  /** Context rows in the draft cache (dflash-spec §8 item 11: equals start after every step). */
  get cacheLength(): number {
    return this.cache?.length ?? 0;
  }

  propose(newTaps: Tensor | null, anchorToken: number, start: number): Int32Array {
    if (!this.cache) throw new Error('DFlashProposer.propose before begin');
    const { be, cfg } = this.drafter;
    const B = cfg.blockSize;
    const ids = new Int32Array(B).fill(cfg.maskTokenId);
    ids[0] = anchorToken;
    const hidden = this.drafter.draft(this.cache, newTaps, ids, start);
    const rows = sliceRows(be, hidden, 1, B - 1);
    const logits = this.drafter.logits(rows);
    const drafts = be.argmaxRows(logits);
    be.free(hidden, rows, logits);
    return drafts;
  }

  end(): void {
    this.cache?.free();
    this.cache = null;
  }
}

export interface GenerateOptions {
  maxNewTokens: number;
  /** 0 = greedy. */
  temperature: number;
  /** Stop after a step that produced one of these (the output ends at the first of them); [] = never stop. */
  stopTokenIds: readonly number[];
  /** Seed of the target's sampling at T > 0. */
  seed?: number;
}

export interface SpecDecodeResult {
  /** Generated tokens (without the prompt), at most maxNewTokens, cut after the first stop token. */
  outputIds: number[];
  /** τ_step of every verification step: accepted drafts + 1 (bonus). */
  acceptanceLengths: number[];
  prefillSeconds: number;
  draftSeconds: number;
  verifySeconds: number;
  decodeSeconds: number;
  /** Draft cache length after each step minus the step's new start (0 when the cache keeps context only). */
  cacheMismatch: number;
}

function lastRowLogits(be: Backend, target: Decoder, hidden: Tensor): Float32Array {
  const rows = hidden.shape[0];
  const last = sliceRows(be, hidden, rows - 1, 1);
  const logits = target.logits(last);
  const out = be.toHost(logits);
  be.free(last, logits);
  return out;
}

function firstStop(ids: readonly number[], from: number, stops: ReadonlySet<number>): number {
  for (let i = from; i < ids.length; i++) if (stops.has(ids[i])) return i;
  return -1;
}

/** One prompt through speculative decoding. */
export function speculativeGenerate(target: Decoder, proposer: DraftProposer, promptIds: Int32Array, opts: GenerateOptions): SpecDecodeResult {
  const be = target.be;
  const B = proposer.blockSize;
  const P = promptIds.length;
  if (P === 0) throw new Error('speculative decoding needs a non-empty prompt');
  const maxLength = P + opts.maxNewTokens;
  const stops = new Set(opts.stopTokenIds);
  const rng = opts.temperature > 0 ? new Rng(opts.seed ?? 0) : null;
  const taps = proposer.tapLayers;
  const cache = target.newCache(1, maxLength + B + 1);
  const V = target.cfg.vocabSize;

  let t = performance.now();
  const pre = target.forward(promptIds, 1, { cache, tapLayers: taps, noLogits: true });
  const first = chooseToken(lastRowLogits(be, target, pre.hidden!), opts.temperature, rng);
  be.free(pre.hidden);
  let newTaps: Tensor | null = taps.length > 0 ? concatTaps(be, pre, taps) : null;
  const prefillSeconds = (performance.now() - t) / 1000;
  const out: number[] = Array.from(promptIds);
  out.push(first);
  proposer.begin(P);
  const acc: number[] = [];
  let draftSeconds = 0;
  let verifySeconds = 0;
  let cacheMismatch = 0;
  let start = P;
  const tDecode = performance.now();
  try {
    let stopped = stops.size > 0 && stops.has(first);
    while (start < maxLength && !stopped) {
      t = performance.now();
      const drafts = proposer.propose(newTaps, out[start], start);
      draftSeconds += (performance.now() - t) / 1000;
      if (newTaps) be.free(newTaps);
      newTaps = null;
      if ((proposer as Partial<DFlashProposer>).cacheLength !== undefined) cacheMismatch = Math.max(cacheMismatch, Math.abs((proposer as DFlashProposer).cacheLength - start));
      const block = new Int32Array(B);
      block[0] = out[start];
      block.set(drafts.subarray(0, B - 1), 1);
      t = performance.now();
      const res = target.forward(block, 1, { cache, tapLayers: taps });
      const logits = be.toHost(res.logits!);
      be.free(res.logits, res.hidden);
      const post = new Int32Array(B);
      for (let k = 0; k < B; k++) post[k] = chooseToken(logits, opts.temperature, rng, k * V, V);
      verifySeconds += (performance.now() - t) / 1000;
      let a = 0;
      while (a < B - 1 && block[a + 1] === post[a]) a++;
      for (let k = 0; k <= a; k++) out[start + k] = block[k];
      out[start + a + 1] = post[a];
      acc.push(a + 1);
      start += a + 1;
      cache.crop(start);
      if (taps.length > 0) {
        const all = concatTaps(be, res, taps);
        newTaps = sliceRows(be, all, 0, a + 1);
        be.free(all);
      } else {
        for (const tp of res.taps.values()) be.free(tp);
      }
      if (stops.size > 0 && firstStop(out, P, stops) >= 0) stopped = true;
    }
  } finally {
    if (newTaps) be.free(newTaps);
    proposer.end();
    cache.free();
  }
  const decodeSeconds = (performance.now() - tDecode) / 1000;
  let gen = out.slice(P, maxLength);
  const s = stops.size > 0 ? firstStop(gen, 0, stops) : -1;
  if (s >= 0) gen = gen.slice(0, s + 1);
  return { outputIds: gen, acceptanceLengths: acc, prefillSeconds, draftSeconds, verifySeconds, decodeSeconds, cacheMismatch };
}

export interface PlainResult {
  outputIds: number[];
  prefillSeconds: number;
  decodeSeconds: number;
}

/** Target-only KV-cached decoding (the block_size = 1 baseline): maxNewTokens tokens or up to the first stop. */
export function plainGenerate(target: Decoder, promptIds: Int32Array, opts: GenerateOptions): PlainResult {
  const be = target.be;
  const P = promptIds.length;
  if (P === 0) throw new Error('decoding needs a non-empty prompt');
  const stops = new Set(opts.stopTokenIds);
  const rng = opts.temperature > 0 ? new Rng(opts.seed ?? 0) : null;
  const cache = target.newCache(1, P + opts.maxNewTokens + 1);
  try {
    let t = performance.now();
    const pre = target.forward(promptIds, 1, { cache, noLogits: true });
    let next = chooseToken(lastRowLogits(be, target, pre.hidden!), opts.temperature, rng);
    be.free(pre.hidden);
    const prefillSeconds = (performance.now() - t) / 1000;
    t = performance.now();
    const gen = [next];
    while (gen.length < opts.maxNewTokens && !stops.has(next)) {
      const res = target.forward(Int32Array.of(next), 1, { cache });
      next = chooseToken(be.toHost(res.logits!), opts.temperature, rng);
      be.free(res.logits, res.hidden);
      gen.push(next);
    }
    return { outputIds: gen, prefillSeconds, decodeSeconds: (performance.now() - t) / 1000 };
  } finally {
    cache.free();
  }
}

export interface AcceptanceSummary {
  /** Mean over prompts of each prompt's mean τ_step (official benchmark.py). */
  tau: number;
  /** Σ τ_step / number of steps over all prompts. */
  tauPooled: number;
  steps: number;
  /** Share of steps with τ_step = 1..B (index k − 1). */
  histogram: number[];
}

export function summarizeAcceptance(perPrompt: readonly (readonly number[])[], blockSize: number): AcceptanceSummary {
  const withSteps = perPrompt.filter((a) => a.length > 0);
  let total = 0;
  let steps = 0;
  const counts = new Array<number>(blockSize).fill(0);
  let meanSum = 0;
  for (const a of withSteps) {
    let s = 0;
    for (const x of a) {
      s += x;
      counts[x - 1]++;
    }
    meanSum += s / a.length;
    total += s;
    steps += a.length;
  }
  return {
    tau: withSteps.length > 0 ? meanSum / withSteps.length : NaN,
    tauPooled: steps > 0 ? total / steps : NaN,
    steps,
    histogram: counts.map((c) => (steps > 0 ? c / steps : 0)),
  };
}
