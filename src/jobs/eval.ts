// The `paro eval` job: perplexity of a model directory (FP or ParoQuant INT4) on a text file (REFERENCE.md protocol).
// Settings defined once here; progress reaches the CLI through a hook.
import type { Backend } from '../engine/backend.js';
import { UserError } from '../errors.js';
import { withDefaults } from './defaults.js';
import { perplexityWindows, readTextDocuments, tokenizeCorpus } from '../io/datasets.js';
import { loadTokenizer } from '../io/tokenizer.js';
import { loadModel } from '../model/load.js';
import { perplexity } from '../model/perplexity.js';
import { freeModelWeights } from '../model/weights.js';
import { compareWindows } from './eval-compare.js';
import { checkComputeDtypeSetting, resolveJobComputeDtype, type ComputeDtypeSetting } from './compute-dtype.js';
import type { ComputeDtype } from '../model/layer-ops.js';

export interface EvalSettings {
  /** Tokens per window. */
  seqLen: number;
  /** At most this many windows. */
  maxWindows: number;
  /** Windows per forward pass. */
  batch: number;
  /** Skip this many leading tokens of the data (e.g. text already used for calibration). */
  startToken: number;
  /** GEMM precision of the linear layers and the head (compute-dtype.ts): auto = bf16 on cuda, f32 on the cpu. */
  computeDtype: ComputeDtypeSetting;
}

export const DEFAULT_EVAL_SETTINGS: Readonly<EvalSettings> = Object.freeze({ seqLen: 512, maxWindows: 400, batch: 4, startToken: 0, computeDtype: 'auto' });
/** `--demo`: fewer windows (explicit flags still win). */
export const DEMO_EVAL_SETTINGS: Readonly<Partial<EvalSettings>> = Object.freeze({ maxWindows: 32 });

export function resolveEvalSettings(partial: Partial<EvalSettings> = {}): EvalSettings {
  const s: EvalSettings = withDefaults(DEFAULT_EVAL_SETTINGS, partial);
  for (const k of ['seqLen', 'maxWindows', 'batch'] as const) {
    if (!(Number.isInteger(s[k]) && s[k] > 0)) throw new UserError(`${k} must be a positive integer, got ${String(s[k])}`);
  }
  if (!(Number.isInteger(s.startToken) && s.startToken >= 0)) throw new UserError(`startToken must be a non-negative integer, got ${String(s.startToken)}`);
  if (s.seqLen < 2) throw new UserError(`--seq-len must be at least 2 (one prediction per window), got ${s.seqLen}`);
  checkComputeDtypeSetting(s.computeDtype);
  return s;
}

export interface EvalJob {
  modelDir: string;
  dataFile: string;
  settings: EvalSettings;
  /** An FP reference model (the original of a quantized modelDir): adds KL and top-1 agreement on the same windows. */
  compareDir?: string;
}

export interface EvalHooks {
  /** Called once with the window count, then after each batch with the windows done. */
  onStart?: (windows: number) => void;
  onProgress?: (done: number, windows: number) => void;
  onEnd?: () => void;
}

export interface EvalReport {
  command: 'eval';
  model: string;
  data: string;
  device: string;
  backend: string;
  ppl: number;
  meanNll: number;
  windows: number;
  seqLen: number;
  /** Tokens in the tokenized data file (after startToken). */
  dataTokens: number;
  /** Next-token predictions scored (windows × (seqLen − 1)). */
  tokens: number;
  quantized: boolean;
  /** The resolved compute dtype the model ran at. */
  computeDtype: ComputeDtype;
  seconds: number;
  tokensPerSecond: number;
  /** With compareDir: the FP reference on the same windows. */
  compare?: EvalComparison;
}

export interface EvalComparison {
  fpModel: string;
  fpPpl: number;
  fpMeanNll: number;
  /** (ppl − fpPpl) / fpPpl. */
  pplIncrease: number;
  /** Mean per-prediction KL(p_fp ‖ p_model), nats. */
  kl: number;
  klMax: number;
  /** Share of predictions whose argmax equals the FP model's (0..1). */
  top1Agreement: number;
}

export function runEvalJob(be: Backend, job: EvalJob, hooks: EvalHooks = {}): EvalReport {
  const t0 = performance.now();
  const s = job.settings;
  if (job.compareDir !== undefined) return compareJob(be, job, job.compareDir, t0, hooks);
  const model = loadAt(be, job.modelDir, resolveJobComputeDtype(s.computeDtype, be.name));
  try {
    return evaluate(be, job, model, t0, hooks);
  } finally {
    freeModelWeights(be, model.decoder.weights); // the demo evaluates two models in one process
  }
}

/**
 * A model ready to run at compute dtype cd. At 'bf16' the float weights are read as bf16 (a bf16 checkpoint as
 * stored; the dequantized INT4 weights at half the memory of f32); norms and rotation parameters stay f32.
 */
function loadAt(be: Backend, dir: string, cd: ComputeDtype): ReturnType<typeof loadModel> {
  const model = loadModel(be, dir, cd === 'bf16' ? { weightDtype: 'bf16' } : {});
  model.decoder.setComputeDtype(cd);
  return model;
}

/** The evaluation windows of the data for a model: the tokens and the window starts. */
function windowsOf(job: EvalJob, eosTokenIds: number[]): { tokens: Int32Array; starts: number[] } {
  const s = job.settings;
  const tok = loadTokenizer(job.modelDir);
  const docs = readTextDocuments(job.dataFile);
  const eos = eosTokenIds[0] ?? tok.eosTokenId;
  if (eos === null || eos === undefined) throw new UserError('cannot tell the end-of-text token: config.json has no eos_token_id', { file: job.modelDir });
  const tokens = tokenizeCorpus(docs, tok, eos).subarray(s.startToken);
  const starts = perplexityWindows(tokens.length, s.seqLen, s.maxWindows);
  if (starts.length === 0) {
    throw new UserError(`too little text for one window: ${tokens.length} tokens, need more than ${s.seqLen + 1}`, { file: job.dataFile });
  }
  return { tokens, starts };
}

function compareJob(be: Backend, job: EvalJob, fpDir: string, t0: number, hooks: EvalHooks): EvalReport {
  const s = job.settings;
  const cd = resolveJobComputeDtype(s.computeDtype, be.name);
  const model = loadAt(be, job.modelDir, cd);
  let fp: ReturnType<typeof loadModel> | null = null;
  try {
    const { tokens, starts } = windowsOf(job, model.cfg.eosTokenIds);
    fp = loadAt(be, fpDir, cd);
    hooks.onStart?.(starts.length);
    const tEval = performance.now();
    const r = compareWindows(model.decoder, fp.decoder, tokens, {
      seqLen: s.seqLen, starts, batch: s.batch, model: job.modelDir, fpModel: fpDir,
      onProgress: (done) => hooks.onProgress?.(done, starts.length),
    });
    hooks.onEnd?.();
    const evalSeconds = (performance.now() - tEval) / 1000;
    return {
      ...reportOf(be, job, model, r, tokens.length, t0, (2 * r.windows * s.seqLen) / evalSeconds),
      compare: {
        fpModel: fpDir, fpPpl: r.fpPpl, fpMeanNll: r.fpMeanNll, pplIncrease: (r.ppl - r.fpPpl) / r.fpPpl,
        kl: r.kl, klMax: r.klMax, top1Agreement: r.top1Agreement,
      },
    };
  } finally {
    freeModelWeights(be, model.decoder.weights);
    if (fp) freeModelWeights(be, fp.decoder.weights);
  }
}

function evaluate(be: Backend, job: EvalJob, model: ReturnType<typeof loadModel>, t0: number, hooks: EvalHooks): EvalReport {
  const s = job.settings;
  const { tokens, starts } = windowsOf(job, model.cfg.eosTokenIds);
  hooks.onStart?.(starts.length);
  const tEval = performance.now();
  const r = perplexity(model.decoder, tokens, {
    seqLen: s.seqLen, starts, batch: s.batch,
    onProgress: (done) => hooks.onProgress?.(done, starts.length),
  });
  hooks.onEnd?.();
  // A non-finite perplexity is a damaged model, never a result.
  if (!Number.isFinite(r.ppl)) throw new UserError(`the perplexity is ${r.ppl} (the model produces non-finite values; are its weights damaged?)`, { file: job.modelDir });
  const evalSeconds = (performance.now() - tEval) / 1000;
  return reportOf(be, job, model, r, tokens.length, t0, (r.windows * s.seqLen) / evalSeconds);
}

/** The report of an evaluated model (without the comparison); seconds run from t0 to now. */
function reportOf(
  be: Backend, job: EvalJob, model: ReturnType<typeof loadModel>, r: { ppl: number; meanNll: number; windows: number; tokens: number },
  dataTokens: number, t0: number, tokensPerSecond: number,
): EvalReport {
  return {
    command: 'eval', model: job.modelDir, data: job.dataFile, device: be.device, backend: be.name,
    ppl: r.ppl, meanNll: r.meanNll, windows: r.windows, seqLen: job.settings.seqLen, dataTokens, tokens: r.tokens,
    quantized: model.cfg.quantization !== null,
    computeDtype: model.decoder.computeDtype,
    seconds: (performance.now() - t0) / 1000,
    tokensPerSecond,
  };
}
