// `dflash eval`: a drafter against its target by real speculative decoding (dflash/evaluate.ts) on a prompt set;
// reads the target, the drafter, the prompts and an optional file of expected outputs, and writes nothing.
import type { Backend } from '../engine/backend.js';
import { loadModel } from '../model/load.js';
import { freeModelWeights } from '../model/weights.js';
import type { RopePrecision } from '../model/rope-freq.js';
import { loadModelConfig } from '../io/config.js';
import { loadTokenizer } from '../io/tokenizer.js';
import { readPrompts } from '../io/datasets.js';
import { readJsonFile } from '../io/text-file.js';
import { UserError } from '../errors.js';
import { Drafter } from '../dflash/drafter.js';
import { loadDrafter, type LoadedDrafter } from '../dflash/load-drafter.js';
import { freeDrafterWeights } from '../dflash/drafter-weights.js';
import { encodePrompt } from '../dflash/prompts.js';
import { evaluateDrafter, type PromptEvalResult, type SpecEvalFigures } from '../dflash/evaluate.js';
import { withDefaults } from './defaults.js';
import { checkComputeDtypeSetting, resolveJobComputeDtype, type ComputeDtypeSetting } from './compute-dtype.js';
import type { ComputeDtype } from '../model/layer-ops.js';

export interface EvalDrafterSettings {
  targetDir: string;
  drafterDir: string;
  promptsFile: string;
  maxNewTokens: number;
  /** Target sampling temperature (0: greedy; drafts stay greedy). */
  temperature: number;
  seed: number;
  ignoreEos: boolean;
  /** Evaluate only the first n prompts. */
  maxPrompts?: number;
  /** Also decode plainly with the target (equality check, speedup). */
  baseline: boolean;
  /** A {"generated_ids": [[...], ...]} file the plain greedy outputs must reproduce. */
  expectFile?: string;
  /** Target weights as stored ('native') or cast to f32 with exact f32 arithmetic (PyTorch's FP32 protocol). */
  weightDtype: 'native' | 'f32';
  /**
   * GEMM precision of the target's and the drafter's linear layers and heads (compute-dtype.ts): auto = bf16 on
   * cuda, f32 on the cpu; weightDtype 'f32' makes auto f32 (and refuses bf16).
   */
  computeDtype: ComputeDtypeSetting;
  chatTemplate: 'auto' | 'never';
  enableThinking?: boolean;
  ropePrecision?: RopePrecision;
}

type Required = 'targetDir' | 'drafterDir' | 'promptsFile';
export type EvalDrafterInput = Pick<EvalDrafterSettings, Required> & Partial<Omit<EvalDrafterSettings, Required>>;

export const DEFAULT_EVAL_DRAFTER_SETTINGS = {
  maxNewTokens: 128,
  temperature: 0,
  seed: 0,
  ignoreEos: false,
  baseline: true,
  weightDtype: 'native',
  computeDtype: 'auto',
  chatTemplate: 'auto',
} as const satisfies Partial<EvalDrafterSettings>;

export interface EvalDrafterHooks {
  /** Prompts done of total, τ over the prompts so far. */
  onPrompt?: (done: number, total: number, runningTau: number) => void;
}

export interface EvalDrafterReport extends Omit<SpecEvalFigures, 'perPrompt'> {
  command: 'dflash eval';
  target: string;
  drafter: string;
  prompts: string;
  device: string;
  backend: string;
  blockSize: number;
  /** The resolved compute dtype of the target and the drafter. */
  computeDtype: ComputeDtype;
  drafterLayers: number;
  targetLayerIds: number[];
  temperature: number;
  maxNewTokens: number;
  promptCount: number;
  seconds: number;
  perPrompt: PromptEvalResult[];
}

export function resolveEvalDrafterSettings(input: EvalDrafterInput): EvalDrafterSettings {
  const s: EvalDrafterSettings = withDefaults(DEFAULT_EVAL_DRAFTER_SETTINGS, input);
  const posInt = (v: number | undefined, flag: string): void => {
    if (v !== undefined && !(Number.isInteger(v) && v > 0)) throw new UserError(`${flag} must be a positive integer, got ${v}`);
  };
  posInt(s.maxNewTokens, '--max-new-tokens');
  posInt(s.maxPrompts, '--max-prompts');
  if (!(Number.isFinite(s.temperature) && s.temperature >= 0)) throw new UserError(`--temperature must be a non-negative number, got ${s.temperature}`);
  if (!(Number.isInteger(s.seed) && s.seed >= 0)) throw new UserError(`--seed must be a non-negative integer, got ${s.seed}`);
  checkComputeDtypeSetting(s.computeDtype);
  if (s.weightDtype === 'f32' && s.computeDtype === 'bf16') throw new UserError('--compute-dtype bf16 contradicts --weight-dtype f32 (exact f32 arithmetic); drop one of them');
  return s;
}

function readExpected(file: string): number[][] {
  const raw = readJsonFile(file, 'the expected outputs');
  const ids = (raw as { generated_ids?: unknown }).generated_ids ?? raw;
  if (!Array.isArray(ids) || ids.some((r) => !Array.isArray(r) || r.some((x) => !Number.isInteger(x)))) {
    throw new UserError('expected {"generated_ids": [[ids...], ...]} or a list of id lists', { file });
  }
  return ids as number[][];
}

export function runEvalDrafter(be: Backend, input: EvalDrafterInput, hooks: EvalDrafterHooks = {}): EvalDrafterReport {
  const t0 = performance.now();
  const s = resolveEvalDrafterSettings(input);
  // The cheap inputs first, so a bad prompt or expected-output file fails before the weights are read.
  const tcfg = loadModelConfig(s.targetDir);
  const tok = loadTokenizer(s.targetDir);
  let prompts = readPrompts(s.promptsFile);
  if (s.maxPrompts !== undefined) prompts = prompts.slice(0, s.maxPrompts);
  const expected = s.expectFile ? readExpected(s.expectFile) : null;
  if (expected && expected.length < prompts.length) throw new UserError(`${expected.length} expected outputs for ${prompts.length} prompts`, { file: s.expectFile });
  const encoding = { chatTemplate: s.chatTemplate, enableThinking: s.enableThinking };
  const ids = prompts.map((p, i) => {
    const e = encodePrompt(tok, p, encoding).ids;
    if (e.length === 0) throw new UserError(`prompt ${i + 1} encodes to no tokens`, { file: s.promptsFile });
    return e;
  });
  // f32: FP32 weights and, on backends with bf16 shortcuts, exact f32 arithmetic.
  // The mode is the backend's, not the job's: it is switched back however the job ends (`paro release` and tests run
  // further jobs on the same backend).
  if (s.weightDtype === 'f32') be.setExactF32?.(true);
  try {
    return evaluateLoaded(be, s, tok, tcfg, ids, prompts.length, expected, hooks, t0);
  } finally {
    if (s.weightDtype === 'f32') be.setExactF32?.(false);
  }
}

/** Loads the target and the drafter, evaluates, and frees both whatever happens. */
function evaluateLoaded(
  be: Backend, s: EvalDrafterSettings, tok: ReturnType<typeof loadTokenizer>, tcfg: ReturnType<typeof loadModelConfig>,
  ids: Int32Array[], promptCount: number, expected: number[][] | null, hooks: EvalDrafterHooks, t0: number,
): EvalDrafterReport {
  const cd: ComputeDtype = s.weightDtype === 'f32' ? 'f32' : resolveJobComputeDtype(s.computeDtype, be.name);
  // At bf16 the float weights are read as bf16 (a bf16 checkpoint as stored; dequantized INT4 weights at half the memory).
  const target = loadModel(be, s.targetDir, { ropePrecision: s.ropePrecision, weightDtype: cd === 'bf16' ? 'bf16' : s.weightDtype });
  // Freed however the job ends: `paro release` runs every stage in one process, on the GPU at real size.
  let loaded: LoadedDrafter | null = null;
  let drafter: Drafter | null = null;
  try {
    target.decoder.setComputeDtype(cd); // before the head is shared with the drafter
    loaded = loadDrafter(be, s.drafterDir, target.cfg);
    drafter = new Drafter(be, loaded.cfg, loaded.weights, { embed: target.decoder.weights.embed, lmHead: target.decoder.weights.lmHead }, s.ropePrecision, cd);
    const eos = tcfg.eosTokenIds.length > 0 ? tcfg.eosTokenIds : tok.eosTokenId !== null ? [tok.eosTokenId] : [];
    const fig = evaluateDrafter(target.decoder, drafter, ids, {
      maxNewTokens: s.maxNewTokens, temperature: s.temperature, seed: s.seed, stopTokenIds: s.ignoreEos ? [] : eos,
      baseline: s.baseline, expected,
    }, hooks.onPrompt);
    // A non-finite τ is not a result: it means no verify step ran (every prompt ended at once).
    if (!Number.isFinite(fig.tau) || !Number.isFinite(fig.tauPooled)) {
      throw new UserError(`τ is not a number: no speculative step was verified on ${promptCount} prompt(s) (every output ended at once; try --ignore-eos or more --max-new-tokens)`, { file: s.promptsFile });
    }
    const { perPrompt, ...figures } = fig;
    return {
      command: 'dflash eval',
      target: s.targetDir,
      drafter: s.drafterDir,
      prompts: s.promptsFile,
      device: be.device,
      backend: be.name,
      blockSize: loaded.cfg.blockSize,
      computeDtype: cd,
      drafterLayers: loaded.cfg.numLayers,
      targetLayerIds: loaded.cfg.targetLayerIds,
      temperature: s.temperature,
      maxNewTokens: s.maxNewTokens,
      promptCount,
      ...figures,
      seconds: (performance.now() - t0) / 1000,
      perPrompt,
    };
  } finally {
    drafter?.dispose();
    if (loaded) freeDrafterWeights(be, loaded.cfg, loaded.weights);
    freeModelWeights(be, target.decoder.weights);
  }
}
