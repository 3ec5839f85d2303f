// Speculative decoding (dflash-spec §4, §8 items 10–11): output equal to plain greedy decoding, τ = 1 for an
// always-wrong drafter and B for an oracle, τ_step ≤ B, draft cache = context only after every step, the τ
// statistics of the official benchmark, and stop tokens.
import { beforeAll, describe, expect, it } from 'vitest';
import { CpuBackend } from '../src/engine/cpu/backend.js';
import type { Backend, Tensor } from '../src/engine/backend.js';
import { Rng } from '../src/numerics/rng.js';
import { Drafter } from '../src/dflash/drafter.js';
import { initDrafterWeights } from '../src/dflash/drafter-weights.js';
import { DFlashProposer, plainGenerate, speculativeGenerate, summarizeAcceptance, type DraftProposer } from '../src/dflash/spec-decode.js';
import type { Decoder } from '../src/model/decoder.js';
import { smallDrafterConfig, tinyTargetDecoder } from './dflash-helpers.js';

let be: Backend;
let target: Decoder;
beforeAll(async () => {
  be = await CpuBackend.create();
  target = tinyTargetDecoder(be, 7);
});

/** Proposes the known greedy continuation (or a wrong token everywhere). */
class ScriptedProposer implements DraftProposer {
  readonly tapLayers: readonly number[] = [];
  constructor(readonly blockSize: number, private readonly full: number[], private readonly wrong: boolean, private readonly V: number) {}
  begin(): void {}
  end(): void {}
  propose(_t: Tensor | null, _anchor: number, start: number): Int32Array {
    const out = new Int32Array(this.blockSize - 1);
    for (let k = 1; k < this.blockSize; k++) {
      const tok = this.full[start + k] ?? 0;
      out[k - 1] = this.wrong ? (tok + 1) % this.V : tok;
    }
    return out;
  }
}

function prompt(seed: number, n: number): Int32Array {
  const rng = new Rng(seed);
  return Int32Array.from({ length: n }, () => 2 + rng.nextInt(18));
}

describe('speculative decoding', () => {
  it('with a (random) DFlash drafter equals plain greedy decoding; cache holds context only after each step', () => {
    const c = smallDrafterConfig({ blockSize: 5, targetLayerIds: [0, 1] });
    const drafter = new Drafter(be, c, initDrafterWeights(be, c, 3, 0.5), { embed: target.weights.embed, lmHead: target.weights.lmHead });
    const inner = new DFlashProposer(drafter);
    const lengths: [number, number][] = [];
    const spy: DraftProposer = {
      blockSize: inner.blockSize, tapLayers: inner.tapLayers,
      begin: (p) => inner.begin(p), end: () => inner.end(),
      propose: (taps, a, start) => {
        const d = inner.propose(taps, a, start);
        lengths.push([inner.cacheLength, start]);
        return d;
      },
    };
    for (const seed of [1, 2, 3]) {
      const ids = prompt(seed, 5 + seed * 3);
      const opts = { maxNewTokens: 40, temperature: 0, stopTokenIds: [] };
      const plain = plainGenerate(target, ids, opts);
      const spec = speculativeGenerate(target, spy, ids, opts);
      expect(spec.outputIds).toEqual(plain.outputIds);
      expect(plain.outputIds.length).toBe(40);
      expect(spec.cacheMismatch).toBe(0);
      for (const x of spec.acceptanceLengths) {
        expect(x).toBeGreaterThanOrEqual(1);
        expect(x).toBeLessThanOrEqual(5);
      }
      // The steps produce every token after the prefill one (plus at most B − 1 beyond the limit).
      const produced = spec.acceptanceLengths.reduce((a, b) => a + b, 0);
      expect(produced).toBeGreaterThanOrEqual(40);
      expect(produced).toBeLessThan(40 + 5);
    }
    for (const [len, start] of lengths) expect(len).toBe(start);
  });

  it('an oracle drafter gets τ = B on every step; an always-wrong one τ = 1', () => {
    const ids = prompt(9, 7);
    const B = 6;
    const maxNew = 60;
    const plain = plainGenerate(target, ids, { maxNewTokens: maxNew + B, temperature: 0, stopTokenIds: [] });
    const full = [...Array.from(ids), ...plain.outputIds];
    const opts = { maxNewTokens: maxNew, temperature: 0, stopTokenIds: [] };
    const oracle = speculativeGenerate(target, new ScriptedProposer(B, full, false, 20), ids, opts);
    expect(oracle.outputIds).toEqual(plain.outputIds.slice(0, maxNew));
    expect(oracle.acceptanceLengths.every((x) => x === B)).toBe(true);
    expect(oracle.acceptanceLengths.length).toBe(Math.ceil((maxNew) / B));
    const wrong = speculativeGenerate(target, new ScriptedProposer(B, full, true, 20), ids, opts);
    expect(wrong.outputIds).toEqual(plain.outputIds.slice(0, maxNew));
    expect(wrong.acceptanceLengths.every((x) => x === 1)).toBe(true);
    expect(summarizeAcceptance([wrong.acceptanceLengths], B).tau).toBe(1);
  });

  it('stops after the first stop token exactly as plain decoding does', () => {
    const ids = prompt(4, 6);
    const free = plainGenerate(target, ids, { maxNewTokens: 40, temperature: 0, stopTokenIds: [] }).outputIds;
    const stop = free[12];
    const opts = { maxNewTokens: 40, temperature: 0, stopTokenIds: [stop] };
    const plain = plainGenerate(target, ids, opts);
    const full = [...Array.from(ids), ...free];
    const spec = speculativeGenerate(target, new ScriptedProposer(4, full, false, 20), ids, opts);
    expect(plain.outputIds).toEqual(free.slice(0, free.indexOf(stop) + 1));
    expect(spec.outputIds).toEqual(plain.outputIds);
  });

  it('at T > 0 the target samples reproducibly and drafts are checked against its samples', () => {
    const c = smallDrafterConfig({ blockSize: 4 });
    const drafter = new Drafter(be, c, initDrafterWeights(be, c, 5, 0.5), { embed: target.weights.embed, lmHead: target.weights.lmHead });
    const ids = prompt(5, 8);
    const opts = { maxNewTokens: 30, temperature: 1, stopTokenIds: [], seed: 17 };
    const a = speculativeGenerate(target, new DFlashProposer(drafter), ids, opts);
    const b = speculativeGenerate(target, new DFlashProposer(drafter), ids, opts);
    expect(a.outputIds).toEqual(b.outputIds);
    expect(a.outputIds.length).toBe(30);
  });

  it('τ is the mean over prompts of per-prompt means; pooled is Σ/steps; histogram shares', () => {
    const s = summarizeAcceptance([[8, 8], [1, 1, 2, 1, 1, 2]], 8);
    expect(s.tau).toBeCloseTo((8 + 8 / 6) / 2, 12);
    expect(s.tauPooled).toBeCloseTo(24 / 8, 12);
    expect(s.steps).toBe(8);
    expect(s.histogram).toEqual([4 / 8, 2 / 8, 0, 0, 0, 0, 0, 2 / 8]);
  });
});
