// Speculative-decoding evaluation (dflash-spec §4): each prompt decoded with the drafter and (optionally) plainly by
// the target; τ as the official benchmark defines it (mean over prompts of each prompt's mean acceptance length,
// bonus counted) and pooled over all steps, the acceptance histogram, timings, and output equality at T = 0.
import type { Decoder } from '../model/decoder.js';
import type { Drafter } from './drafter.js';
import { DFlashProposer, plainGenerate, speculativeGenerate, summarizeAcceptance } from './spec-decode.js';

export interface PromptEvalResult {
  index: number;
  promptTokens: number;
  outputTokens: number;
  steps: number;
  tau: number;
  equal: boolean | null;
  matchesExpected: boolean | null;
}

export interface SpecEvalOptions {
  maxNewTokens: number;
  /** Target sampling temperature (0: greedy); prompt i samples with seed + i. */
  temperature: number;
  seed: number;
  stopTokenIds: number[];
  /** Also decode plainly with the target (equality check at T = 0, speedup). */
  baseline: boolean;
  /** Token ids the plain greedy outputs must reproduce, one list per prompt (null: none). */
  expected: readonly (readonly number[])[] | null;
}

export interface SpecEvalFigures {
  /** Mean over prompts of each prompt's mean τ_step (official benchmark.py); NaN when no step was verified. */
  tau: number;
  /** All accepted tokens (incl. bonus) / all verify steps. */
  tauPooled: number;
  verifySteps: number;
  /** Share of steps accepting 1..B tokens. */
  histogram: number[];
  /** Prompts whose speculative output equals plain decoding (T = 0 only; null otherwise or without baseline). */
  equalOutputs: number | null;
  /** Prompts whose plain greedy output equals the expected ids (null without them). */
  expectedMatches: number | null;
  draftSeconds: number;
  verifySeconds: number;
  specDecodeSeconds: number;
  baselineDecodeSeconds: number | null;
  /** Decode time per output token, speculative and plain, and their ratio (prefill excluded). */
  specTpot: number;
  baselineTpot: number | null;
  speedup: number | null;
  perPrompt: PromptEvalResult[];
}

function sameIds(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Decode every prompt speculatively (and plainly unless opts.baseline is off); onPrompt gets the running τ. */
export function evaluateDrafter(
  target: Decoder, drafter: Drafter, prompts: readonly Int32Array[], o: SpecEvalOptions,
  onPrompt?: (done: number, total: number, runningTau: number) => void,
): SpecEvalFigures {
  const opts = { maxNewTokens: o.maxNewTokens, temperature: o.temperature, stopTokenIds: o.stopTokenIds };
  const proposer = new DFlashProposer(drafter);
  const perPrompt: PromptEvalResult[] = [];
  const accs: number[][] = [];
  let draftSeconds = 0;
  let verifySeconds = 0;
  let specDecode = 0;
  let baseDecode = 0;
  let specTokens = 0;
  let baseTokens = 0;
  let tauSum = 0;
  let tauCount = 0;
  prompts.forEach((ids, i) => {
    const seed = o.seed + i;
    const spec = speculativeGenerate(target, proposer, ids, { ...opts, seed });
    if (spec.cacheMismatch !== 0) throw new Error(`internal: draft cache length differed from the block start by ${spec.cacheMismatch}`);
    let equal: boolean | null = null;
    let matchesExpected: boolean | null = null;
    if (o.baseline) {
      const plain = plainGenerate(target, ids, { ...opts, seed });
      baseDecode += plain.decodeSeconds;
      baseTokens += plain.outputIds.length;
      if (o.temperature === 0) equal = sameIds(plain.outputIds, spec.outputIds);
      if (o.expected) matchesExpected = sameIds(plain.outputIds, o.expected[i].slice(0, o.maxNewTokens));
    } else if (o.expected) {
      matchesExpected = sameIds(spec.outputIds, o.expected[i].slice(0, o.maxNewTokens));
    }
    draftSeconds += spec.draftSeconds;
    verifySeconds += spec.verifySeconds;
    specDecode += spec.decodeSeconds;
    specTokens += spec.outputIds.length;
    accs.push(spec.acceptanceLengths);
    const n = spec.acceptanceLengths.length;
    const tau = n > 0 ? spec.acceptanceLengths.reduce((a, b) => a + b, 0) / n : NaN;
    perPrompt.push({ index: i, promptTokens: ids.length, outputTokens: spec.outputIds.length, steps: n, tau, equal, matchesExpected });
    if (n > 0) {
      tauSum += tau;
      tauCount++;
    }
    onPrompt?.(i + 1, prompts.length, tauSum / Math.max(1, tauCount)); // running τ over the prompts so far
  });
  const sum = summarizeAcceptance(accs, drafter.cfg.blockSize);
  const count = (f: (r: PromptEvalResult) => boolean | null): number | null =>
    perPrompt.some((r) => f(r) !== null) ? perPrompt.filter((r) => f(r) === true).length : null;
  const specTpot = specDecode / Math.max(1, specTokens);
  const baselineTpot = o.baseline ? baseDecode / Math.max(1, baseTokens) : null;
  return {
    tau: sum.tau,
    tauPooled: sum.tauPooled,
    verifySteps: sum.steps,
    histogram: sum.histogram,
    equalOutputs: count((r) => r.equal),
    expectedMatches: count((r) => r.matchesExpected),
    draftSeconds,
    verifySeconds,
    specDecodeSeconds: specDecode,
    baselineDecodeSeconds: o.baseline ? baseDecode : null,
    specTpot,
    baselineTpot,
    speedup: baselineTpot !== null ? baselineTpot / specTpot : null,
    perPrompt,
  };
}

/** τ of greedy speculative decoding on token-id prompts (the evaluation during training). */
export function tauOnPrompts(target: Decoder, drafter: Drafter, prompts: readonly Int32Array[], maxNewTokens: number): { tau: number; tauPooled: number; steps: number } {
  const proposer = new DFlashProposer(drafter);
  const accs = prompts.map((ids) => speculativeGenerate(target, proposer, ids, { maxNewTokens, temperature: 0, stopTokenIds: [] }).acceptanceLengths);
  const sum = summarizeAcceptance(accs, drafter.cfg.blockSize);
  return { tau: sum.tau, tauPooled: sum.tauPooled, steps: sum.steps };
}
