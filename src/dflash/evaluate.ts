// `dflash eval`: speculative decoding of a prompt set with a drafter against plain target decoding; τ as the
// official benchmark defines it (mean over prompts of each prompt's mean acceptance length, bonus counted) and
// pooled over all steps, the acceptance histogram, timings, and output equality at T = 0.
import { readFileSync } from 'node:fs';
import type { Backend } from '../engine/backend.js';
import { loadModel } from '../model/load.js';
import type { RopePrecision } from '../model/rope-freq.js';
import { loadTokenizer } from '../io/tokenizer.js';
import { readPrompts } from '../io/datasets.js';
import { UserError } from '../errors.js';
import { Drafter } from './drafter.js';
import { loadDrafter } from './load-drafter.js';
import { encodePrompt, type PromptEncoding } from './prompts.js';
import { DFlashProposer, plainGenerate, speculativeGenerate, summarizeAcceptance } from './spec-decode.js';

export interface DflashEvalSettings {
  targetDir: string;
  drafterDir: string;
  promptsFile: string;
  maxNewTokens: number;
  temperature: number;
  seed: number;
  ignoreEos: boolean;
  /** Evaluate only the first n prompts. */
  maxPrompts?: number;
  encoding: PromptEncoding;
  /** Skip the target-only decoding (no equality check, no speedup). */
  skipBaseline?: boolean;
  /** A {"generated_ids": [[...], ...]} file the plain greedy outputs must reproduce. */
  expectFile?: string;
  ropePrecision?: RopePrecision;
  /** Target weights as stored ('native', default) or cast to f32 (FP32 GEMMs on the GPU). */
  weightDtype?: 'native' | 'f32';
}

export interface PromptEvalResult {
  index: number;
  promptTokens: number;
  outputTokens: number;
  steps: number;
  tau: number;
  equal: boolean | null;
  matchesExpected: boolean | null;
}

export interface DflashEvalReport {
  command: 'dflash eval';
  target: string;
  drafter: string;
  prompts: string;
  device: string;
  backend: string;
  blockSize: number;
  drafterLayers: number;
  targetLayerIds: number[];
  temperature: number;
  maxNewTokens: number;
  promptCount: number;
  /** Mean over prompts of each prompt's mean τ_step (official benchmark.py). */
  tau: number;
  /** All accepted tokens (incl. bonus) / all verify steps. */
  tauPooled: number;
  verifySteps: number;
  /** Share of steps accepting 1..B tokens. */
  histogram: number[];
  /** Prompts whose speculative output equals plain decoding (T = 0 only; null otherwise or without baseline). */
  equalOutputs: number | null;
  /** Prompts whose plain greedy output equals --expect (null without it). */
  expectedMatches: number | null;
  draftSeconds: number;
  verifySeconds: number;
  specDecodeSeconds: number;
  baselineDecodeSeconds: number | null;
  /** Decode time per output token, speculative and plain, and their ratio (prefill excluded). */
  specTpot: number;
  baselineTpot: number | null;
  speedup: number | null;
  seconds: number;
  perPrompt: PromptEvalResult[];
}

function readExpected(file: string): number[][] {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UserError(`cannot read the expected outputs: ${(e as Error).message}`, { file, cause: e });
  }
  const ids = (raw as { generated_ids?: unknown }).generated_ids ?? raw;
  if (!Array.isArray(ids) || ids.some((r) => !Array.isArray(r))) throw new UserError('expected {"generated_ids": [[ids...], ...]} or a list of id lists', { file });
  return ids as number[][];
}

function sameIds(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

export function runDflashEval(be: Backend, s: DflashEvalSettings, onPrompt?: (done: number, total: number, runningTau: number) => void): DflashEvalReport {
  const t0 = performance.now();
  // --weight-dtype f32: FP32 weights and, on backends with bf16 shortcuts, exact f32 arithmetic (PyTorch's FP32 protocol).
  if (s.weightDtype === 'f32') be.setExactF32?.(true);
  const target = loadModel(be, s.targetDir, { ropePrecision: s.ropePrecision, weightDtype: s.weightDtype ?? 'native' });
  const drafterFiles = loadDrafter(be, s.drafterDir, target.cfg);
  const drafter = new Drafter(be, drafterFiles.cfg, drafterFiles.weights, { embed: target.decoder.weights.embed, lmHead: target.decoder.weights.lmHead }, s.ropePrecision);
  const tok = loadTokenizer(s.targetDir);
  let prompts = readPrompts(s.promptsFile);
  if (s.maxPrompts !== undefined) prompts = prompts.slice(0, s.maxPrompts);
  const expected = s.expectFile ? readExpected(s.expectFile) : null;
  if (expected && expected.length < prompts.length) throw new UserError(`${expected.length} expected outputs for ${prompts.length} prompts`, { file: s.expectFile });
  const eos = target.cfg.eosTokenIds.length > 0 ? target.cfg.eosTokenIds : tok.eosTokenId !== null ? [tok.eosTokenId] : [];
  const opts = { maxNewTokens: s.maxNewTokens, temperature: s.temperature, stopTokenIds: s.ignoreEos ? [] : eos };
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
  prompts.forEach((p, i) => {
    const { ids } = encodePrompt(tok, p, s.encoding);
    if (ids.length === 0) throw new UserError(`prompt ${i + 1} encodes to no tokens`, { file: s.promptsFile });
    const seed = s.seed + i;
    const spec = speculativeGenerate(target.decoder, proposer, ids, { ...opts, seed });
    if (spec.cacheMismatch !== 0) throw new Error(`internal: draft cache length differed from the block start by ${spec.cacheMismatch}`);
    let equal: boolean | null = null;
    let matchesExpected: boolean | null = null;
    if (!s.skipBaseline) {
      const plain = plainGenerate(target.decoder, ids, { ...opts, seed });
      baseDecode += plain.decodeSeconds;
      baseTokens += plain.outputIds.length;
      if (s.temperature === 0) equal = sameIds(plain.outputIds, spec.outputIds);
      if (expected) matchesExpected = sameIds(plain.outputIds, expected[i].slice(0, s.maxNewTokens));
    } else if (expected) {
      matchesExpected = sameIds(spec.outputIds, expected[i].slice(0, s.maxNewTokens));
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
  const sum = summarizeAcceptance(accs, drafterFiles.cfg.blockSize);
  const count = (f: (r: PromptEvalResult) => boolean | null): number | null =>
    perPrompt.some((r) => f(r) !== null) ? perPrompt.filter((r) => f(r) === true).length : null;
  const specTpot = specDecode / Math.max(1, specTokens);
  const baselineTpot = s.skipBaseline ? null : baseDecode / Math.max(1, baseTokens);
  return {
    command: 'dflash eval',
    target: s.targetDir,
    drafter: s.drafterDir,
    prompts: s.promptsFile,
    device: be.device,
    backend: be.name,
    blockSize: drafterFiles.cfg.blockSize,
    drafterLayers: drafterFiles.cfg.numLayers,
    targetLayerIds: drafterFiles.cfg.targetLayerIds,
    temperature: s.temperature,
    maxNewTokens: s.maxNewTokens,
    promptCount: prompts.length,
    tau: sum.tau,
    tauPooled: sum.tauPooled,
    verifySteps: sum.steps,
    histogram: sum.histogram,
    equalOutputs: count((r) => r.equal),
    expectedMatches: count((r) => r.matchesExpected),
    draftSeconds,
    verifySeconds,
    specDecodeSeconds: specDecode,
    baselineDecodeSeconds: s.skipBaseline ? null : baseDecode,
    specTpot,
    baselineTpot,
    speedup: baselineTpot !== null ? baselineTpot / specTpot : null,
    seconds: (performance.now() - t0) / 1000,
    perPrompt,
  };
}
