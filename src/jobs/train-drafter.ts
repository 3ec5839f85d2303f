// `dflash train-drafter`: settings (defaults once, every check before heavy work), the target, data and auto choices,
// the run directory `<out>.partial/` (fingerprint, lock, checkpoints for --resume), the step loop with its τ
// evaluations and checkpoints, the export of the drafter (config.json + BF16 model.safetensors, dflash-spec §5) with
// its training log, curves and manifest, and the report. The computation itself is in dflash/trainer.ts.
// Data parallel (issue 12, a Collective of W ranks): every rank reads the data and steps through the same batches,
// computing its share of each (trainStep sums the gradients over the ranks); rank 0 alone owns the run directory,
// checkpoints, evaluates τ, exports and reports; the other ranks start from rank 0's state and write nothing.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Backend } from '../engine/backend.js';
import { singleRank, type Collective } from '../engine/collective.js';
import { loadModel, type LoadedModel } from '../model/load.js';
import { freeModelWeights } from '../model/weights.js';
import { loadModelConfig, type ModelConfig } from '../io/config.js';
import { loadTokenizer, type TextTokenizer } from '../io/tokenizer.js';
import { dataRecords, readPrompts } from '../io/datasets.js';
import { SafetensorsFile } from '../io/safetensors.js';
import { writeSafetensors } from '../io/safetensors-writer.js';
import { createManifest, describeInput, inputIdentity } from '../io/manifest.js';
import { checkOutputPath, openRunDir, PARTIAL_SUFFIX, type RunDir } from '../io/run-dir.js';
import { warmupCosineLr } from '../numerics/schedule.js';
import { UserError } from '../errors.js';
import { drafterParamCount, type DrafterConfig } from '../dflash/drafter-config.js';
import { autoTargetLayerIds } from '../dflash/layer-ids.js';
import { Drafter, drafterInvFreq } from '../dflash/drafter.js';
import { drafterTensors, type DrafterWeights, type SharedTargetParts } from '../dflash/drafter-weights.js';
import { defaultGamma } from '../dflash/loss.js';
import { parseTrainingData, type TrainingData, type TrainingDataOptions } from '../dflash/training-data.js';
import { checkDrafterAgainstTarget } from '../dflash/load-drafter.js';
import { drafterExport } from '../dflash/export.js';
import { freeTrainState, trainStateFromTensors, trainStateTensors, type TrainState } from '../dflash/train-state.js';
import { encodePrompt, type PromptEncoding } from '../dflash/prompts.js';
import { tauOnPrompts } from '../dflash/evaluate.js';
import { curvePng, curveSvg, logCsv } from '../dflash/curve-plot.js';
import {
  drafterConfigFor, FeatureSource, initTrainState, optimizerStep, stepBatch, type EvalLog, type StepLog, type TrainLog,
} from '../dflash/trainer.js';
import { describeModelDir } from './model-input.js';
import { withDefaults, type RunInfo } from './defaults.js';
import { checkComputeDtypeSetting, resolveJobComputeDtype, type ComputeDtypeSetting } from './compute-dtype.js';
import type { ComputeDtype } from '../model/layer-ops.js';

export interface TrainDrafterSettings {
  targetDir: string;
  /** GEMM precision of the target and the drafter (compute-dtype.ts): auto = bf16 on cuda, f32 on the cpu. */
  computeDtype: ComputeDtypeSetting;
  dataFile: string;
  outDir: string;
  /** Draft layers; 'auto' adapts to the target depth (autoDrafterLayers). */
  layers: number | 'auto';
  /** B: anchor + B − 1 drafted tokens. */
  blockSize: number;
  /** 'auto' (spec formula, distinct spread layers for shallow targets) or explicit ids. */
  targetLayers: 'auto' | number[];
  /** Taps for targetLayers 'auto'. */
  numTaps: number;
  /** Anchors per sequence; 'auto' = min(512, ⌈longest response / 2⌉) (autoAnchors). */
  anchors: number | 'auto';
  /** Loss decay γ; 'auto' = 7/5/4 for B = 16/10/8. */
  gamma: number | 'auto';
  /** Epochs; 'auto' = the spec's 6, more for small data sets (autoEpochs). */
  epochs: number | 'auto';
  /** Peak learning rate; 'auto' scales the spec's 6e-4 with the hidden size (autoLr). */
  lr: number | 'auto';
  /** Linear warmup as a fraction of all steps, then cosine to 0. */
  warmup: number;
  weightDecay: number;
  /** Sequences are cut to this many tokens. */
  seqLen: number;
  /** Sequences per optimizer step. */
  batch: number;
  /** Token id or token string; undefined: picked from the target (resolveMaskToken). */
  maskToken?: string;
  seed: number;
  /** 'target': warm start from the target's last layers; 'random': N(0, 0.02) as the reference trainer. */
  init: 'random' | 'target';
  /** Optimizer steps between checkpoints (0: at epoch ends only). */
  checkpointEvery: number;
  /** Continue the checkpoint of an interrupted run with the same fingerprint. */
  resume: boolean;
  /** Replace an existing output (ours) and discard an unfinished run. */
  force: boolean;
  /** Keep the frozen target features in memory up to this size, else recompute them per visit. */
  featureCacheMb: number;
  /** Measure τ by speculative decoding on these prompts every evalEvery steps (and at the end). */
  evalPrompts?: string;
  /** The three below only with evalPrompts (else refused); undefined: DEFAULT_TRAIN_EVAL, all prompts. */
  evalEvery?: number;
  evalMaxPrompts?: number;
  evalMaxNewTokens?: number;
  /** How text records of the data and the evaluation prompts are encoded (chat template or raw text, thinking flag). */
  evalEncoding: PromptEncoding;
  /** Stop after this many optimizer steps (the schedule still spans all epochs). */
  maxSteps?: number;
}

type Required = 'targetDir' | 'dataFile' | 'outDir';
export type TrainDrafterInput = Pick<TrainDrafterSettings, Required> & Partial<Omit<TrainDrafterSettings, Required>>;

export const DEFAULT_TRAIN_DRAFTER_SETTINGS = {
  layers: 'auto',
  blockSize: 16,
  targetLayers: 'auto',
  numTaps: 5,
  anchors: 'auto',
  gamma: 'auto',
  epochs: 'auto',
  lr: 'auto',
  warmup: 0.04,
  weightDecay: 0,
  seqLen: 3072,
  batch: 4,
  seed: 0,
  init: 'target',
  checkpointEvery: 0,
  resume: false,
  force: false,
  featureCacheMb: 8192,
  computeDtype: 'auto',
  evalEncoding: { chatTemplate: 'auto' },
} as const satisfies Partial<TrainDrafterSettings>;

/** τ evaluation during training, when evaluation prompts are given. */
export const DEFAULT_TRAIN_EVAL = {
  evalEvery: 50,
  evalMaxNewTokens: 128,
} as const satisfies Partial<TrainDrafterSettings>;

export interface TrainDrafterHooks {
  info?: (msg: string) => void;
  warn?: (msg: string) => void;
  onFeatures?: (done: number, total: number) => void;
  onStep?: (step: number, total: number, s: StepLog) => void;
  onEval?: (e: EvalLog) => void;
}

/** The settings a drafter was trained with, as resolved (auto values replaced). */
export interface ResolvedTrainSettings {
  layers: number; blockSize: number; targetLayerIds: number[]; anchors: number; gamma: number; epochs: number; lr: number;
  warmup: number; weightDecay: number; seqLen: number; batch: number; maskTokenId: number; seed: number; init: 'random' | 'target';
}

export interface TrainDrafterReport {
  command: 'dflash train-drafter';
  target: string;
  data: string;
  out: string;
  device: string;
  backend: string;
  /** The resolved compute dtype of the target and the drafter. */
  computeDtype: ComputeDtype;
  drafter: {
    layers: number; hiddenSize: number; intermediateSize: number; heads: number; kvHeads: number; headDim: number;
    blockSize: number; targetLayerIds: number[]; maskTokenId: number; ropeTheta: number; params: number;
  };
  notes: string[];
  settings: ResolvedTrainSettings;
  dataStats: { records: number; samples: number; droppedEmpty: number; droppedShort: number; truncated: number; tokens: number; responseTokens: number };
  steps: number;
  totalSteps: number;
  resumedFromStep: number;
  finalLoss: number;
  finalAcc: number;
  evals: EvalLog[];
  seconds: { total: number; load: number; features: number; train: number; eval: number; export: number };
  featureCache: 'memory' | 'online';
  /** Ranks of the data-parallel run (1: one device). */
  worldSize: number;
}

/** Draft depth for --layers auto: the spec's 5 for targets of ≥ 20 layers, else about half the target's depth. */
export function autoDrafterLayers(targetLayers: number): number {
  if (targetLayers >= 20) return 5;
  return Math.max(1, Math.min(5, Math.floor(targetLayers / 2)));
}

/**
 * --lr auto: the spec's 6e-4 (tuned for 4096-wide drafters) times √(4096 / hidden), between 1× and 5×: Adam's best
 * rate grows as the width shrinks (docs/performance.md has the measurements behind it).
 */
export function autoLr(hiddenSize: number): number {
  return 6e-4 * Math.min(5, Math.max(1, Math.sqrt(4096 / hiddenSize)));
}

/**
 * --epochs auto: the spec's 6 epochs, or as many as make 800 optimizer steps when the data set is small (at most 20):
 * the recipe's 6 epochs assume ~800k samples and leave a drafter trained on a few hundred sequences under-trained.
 */
export function autoEpochs(stepsPerEpoch: number): number {
  return Math.max(6, Math.min(20, Math.ceil(800 / Math.max(1, stepsPerEpoch))));
}

/** --anchors auto: the spec's 512 for long responses, about one anchor per two response tokens for short ones. */
export function autoAnchors(longestResponse: number): number {
  return Math.min(512, Math.max(16, Math.ceil(longestResponse / 2)));
}

/**
 * The mask token: an explicit id or token string, else the first embedding row beyond the tokenizer's vocabulary (an
 * existing untrained row, Qwen3's <|MASK|> rule), else a mask-like special token of the tokenizer.
 */
export function resolveMaskToken(spec: string | undefined, tok: TextTokenizer | null, vocabSize: number): { id: number; how: string } {
  const check = (id: number, what: string): { id: number; how: string } => {
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
      throw new UserError(`--mask-token ${what} is not a row of the target's embedding table (rows 0..${vocabSize - 1}); pick an existing unused row, the table cannot be resized (dflash-spec §2.7)`);
    }
    return { id, how: what };
  };
  if (spec !== undefined) {
    if (/^\d+$/.test(spec.trim())) return check(Number(spec.trim()), spec.trim());
    if (!tok) throw new UserError(`--mask-token "${spec}" is a token string, but the target has no tokenizer.json to look it up`);
    const id = tok.tokenId(spec);
    if (id === undefined) throw new UserError(`--mask-token "${spec}" is not a token of the target's tokenizer`);
    return check(id, `"${spec}" (id ${id})`);
  }
  if (tok && tok.vocabSize < vocabSize) return { id: tok.vocabSize, how: `row ${tok.vocabSize}, the first embedding row no token maps to` };
  for (const name of ['<|MASK|>', '<|mask|>', '<mask>', '[MASK]']) {
    const id = tok?.tokenId(name);
    if (id !== undefined && id < vocabSize) return { id, how: `the tokenizer's ${name} (id ${id})` };
  }
  throw new UserError('cannot pick a mask token: the embedding table has no row beyond the tokenizer and no mask token exists; pass --mask-token <id|string> naming an unused row');
}

/** Defaults filled in and every check that needs no file; throws a UserError naming the option. */
export function resolveTrainDrafterSettings(input: TrainDrafterInput): TrainDrafterSettings {
  const s: TrainDrafterSettings = withDefaults(DEFAULT_TRAIN_DRAFTER_SETTINGS, input);
  const posInt = (v: number | undefined, flag: string): void => {
    if (v !== undefined && !(Number.isInteger(v) && v > 0)) throw new UserError(`${flag} must be a positive integer, got ${v}`);
  };
  const orAuto = <T>(v: T | 'auto'): T | undefined => (v === 'auto' ? undefined : v);
  posInt(s.blockSize, '--block-size');
  posInt(orAuto(s.layers), '--layers');
  posInt(orAuto(s.anchors), '--anchors');
  posInt(orAuto(s.epochs), '--epochs');
  posInt(s.seqLen, '--seq-len');
  posInt(s.batch, '--batch');
  posInt(s.numTaps, 'the number of taps');
  if (s.evalPrompts === undefined) {
    const given = ([['evalEvery', '--eval-every'], ['evalMaxPrompts', '--eval-max-prompts'], ['evalMaxNewTokens', '--eval-max-new-tokens']] as const)
      .find(([k]) => s[k] !== undefined);
    if (given) throw new UserError(`${given[1]} needs --eval-prompts`);
  }
  posInt(s.evalEvery, '--eval-every');
  posInt(s.evalMaxPrompts, '--eval-max-prompts');
  posInt(s.evalMaxNewTokens, '--eval-max-new-tokens');
  posInt(s.maxSteps, '--max-steps');
  if (s.blockSize < 2) throw new UserError('--block-size must be at least 2 (an anchor and one drafted token)');
  // A sample needs 2·B response tokens (dropped otherwise), so a shorter --seq-len leaves no sample at all.
  if (s.seqLen < 2 * s.blockSize) {
    throw new UserError(`--block-size ${s.blockSize} needs --seq-len of at least 2·${s.blockSize} = ${2 * s.blockSize} (a training sample holds 2·B response tokens), got --seq-len ${s.seqLen}`);
  }
  const lr = orAuto(s.lr);
  if (lr !== undefined && !(Number.isFinite(lr) && lr > 0)) throw new UserError(`--lr must be a positive number or auto, got ${lr}`);
  const gamma = orAuto(s.gamma);
  if (gamma !== undefined && !(Number.isFinite(gamma) && gamma > 0)) throw new UserError(`--gamma must be a positive number or auto, got ${gamma}`);
  if (!(s.warmup >= 0 && s.warmup < 1)) throw new UserError(`--warmup is a fraction of the steps in [0, 1), got ${s.warmup}`);
  if (!(Number.isFinite(s.weightDecay) && s.weightDecay >= 0)) throw new UserError(`--weight-decay must be a non-negative number, got ${s.weightDecay}`);
  if (!(Number.isInteger(s.seed) && s.seed >= 0)) throw new UserError(`--seed must be a non-negative integer, got ${s.seed}`);
  if (!(Number.isInteger(s.checkpointEvery) && s.checkpointEvery >= 0)) throw new UserError(`--checkpoint-every must be a non-negative integer, got ${s.checkpointEvery}`);
  if (!(Number.isFinite(s.featureCacheMb) && s.featureCacheMb >= 0)) throw new UserError(`--feature-cache-mb must be a non-negative number, got ${s.featureCacheMb}`);
  checkComputeDtypeSetting(s.computeDtype);
  if (s.init !== 'random' && s.init !== 'target') throw new UserError(`--init must be random or target, got ${String(s.init)}`);
  if (s.targetLayers !== 'auto') {
    const ids = s.targetLayers;
    if (ids.length === 0 || ids.some((l) => !Number.isInteger(l) || l < 0)) throw new UserError(`--target-layers must be auto or layer indices, got ${ids.join(',')}`);
    for (let i = 1; i < ids.length; i++) if (ids[i] <= ids[i - 1]) throw new UserError(`--target-layers must be strictly ascending, got ${ids.join(',')}`);
  }
  return s;
}

/** The checks against the target's configuration (no weights read). */
function checkAgainstTarget(s: TrainDrafterSettings, t: ModelConfig): void {
  if (t.numLayers < 2) throw new UserError(`the target has ${t.numLayers} layer(s); a drafter needs a layer below the last one to tap`, { file: s.targetDir });
  if (s.targetLayers !== 'auto') {
    const bad = s.targetLayers.filter((l) => l > t.numLayers - 2);
    if (bad.length > 0) throw new UserError(`--target-layers ${bad.join(',')}: the target has ${t.numLayers} layers and only layers 0..${t.numLayers - 2} can be tapped`);
  }
  if (s.init === 'target' && s.layers !== 'auto' && s.layers > t.numLayers) {
    throw new UserError(`--layers ${s.layers} with --init target: the target has only ${t.numLayers} layers to start the draft layers from (use fewer layers or --init random)`);
  }
}

/** Training records of a data file (.jsonl, .jsonl.gz or .parquet), cut and filtered for the trainer. */
export function readTrainingData(file: string, opts: TrainingDataOptions): TrainingData {
  return parseTrainingData(dataRecords(file, 'training data', TRAINING_DATA_HINT), file, opts);
}

const TRAINING_DATA_HINT = '.jsonl, .jsonl.gz or .parquet (generate-data records, {"input_ids", "loss_mask"}, {"prompt", "response"}, ' +
  '{"text"}, {"messages": [...]} or {"conversations": [...]})';

/** What progress.json of the run directory holds: the checkpoint file and where the run stood. */
interface TrainProgress {
  step: number;
  totalSteps: number;
  stateFile: string;
  log: TrainLog;
  savedAt: string;
}

const STATE_PREFIX = 'state-';

/** Where a run starts: its state on the backend, the log so far and the step it resumes from (0: fresh). */
interface StartingState {
  state: TrainState;
  log: TrainLog;
  resumedFrom: number;
}

/** Save the state as a new file, then point progress.json at it, then remove older ones: a kill at any point leaves a
 * progress.json naming a complete file. */
function saveCheckpoint(be: Backend, rd: RunDir, c: DrafterConfig, st: TrainState, p: Omit<TrainProgress, 'stateFile' | 'savedAt'>): void {
  const name = `${STATE_PREFIX}${st.step}.safetensors`;
  const tmp = rd.path(`${name}.tmp-${process.pid}`);
  writeSafetensors(tmp, trainStateTensors(be, c, st));
  fs.renameSync(tmp, rd.path(name));
  rd.writeProgress({ ...p, stateFile: name, savedAt: new Date().toISOString() } satisfies TrainProgress);
  removeStateFiles(rd, name);
}

/** Remove checkpoint files other than keep (all with keep null). */
function removeStateFiles(rd: RunDir, keep: string | null): void {
  for (const n of fs.readdirSync(rd.partial)) {
    if (n.startsWith(STATE_PREFIX) && n !== keep) fs.rmSync(rd.path(n), { force: true });
  }
}

function loadCheckpoint(be: Backend, rd: RunDir, c: DrafterConfig, p: TrainProgress): TrainState {
  const file = rd.path(path.basename(p.stateFile));
  if (!Number.isInteger(p.step) || p.step < 0 || !fs.existsSync(file)) {
    throw new UserError('names a checkpoint that is missing or unreadable; pass --force to start over', { file: rd.path('progress.json') });
  }
  const sf = SafetensorsFile.open(file);
  try {
    return trainStateFromTensors(be, c, (name) => (sf.has(name) ? { shape: sf.info(name).shape, read: () => sf.readF32(name) } : undefined), p.step, file);
  } finally {
    sf.close();
  }
}

/** The τ evaluation during training: encoded prompts, steps between evaluations, tokens per prompt. */
interface EvalPlan {
  prompts: Int32Array[];
  every: number;
  maxNewTokens: number;
}

function planEvaluation(s: TrainDrafterSettings, tok: TextTokenizer | null): EvalPlan | null {
  if (!s.evalPrompts) return null;
  if (!tok) throw new UserError('--eval-prompts needs the target tokenizer (tokenizer.json)', { file: s.targetDir });
  let prompts = readPrompts(s.evalPrompts);
  if (s.evalMaxPrompts) prompts = prompts.slice(0, s.evalMaxPrompts);
  const encoded = prompts.map((p, i) => {
    const ids = encodePrompt(tok, p, s.evalEncoding).ids;
    if (ids.length === 0) throw new UserError(`prompt ${i + 1} encodes to no tokens`, { file: s.evalPrompts });
    return ids;
  });
  return {
    prompts: encoded, every: s.evalEvery ?? DEFAULT_TRAIN_EVAL.evalEvery, maxNewTokens: s.evalMaxNewTokens ?? DEFAULT_TRAIN_EVAL.evalMaxNewTokens,
  };
}

/**
 * `<out>.checkpoint/`: where versions before the run directory kept an interrupted run's state. It cannot be resumed
 * by this version: refused (kept) unless --force, which removes it; a folder of that name holding other files is left alone.
 */
function refuseLegacyCheckpoint(s: TrainDrafterSettings): void {
  const dir = path.resolve(s.outDir) + '.checkpoint';
  if (!fs.existsSync(dir)) return;
  const ours = fs.statSync(dir).isDirectory() && fs.readdirSync(dir).every((n) => /^state\.(json|safetensors)$/.test(n));
  if (!ours) return; // someone else's folder: not ours to judge or remove
  if (!s.force) throw new UserError('an interrupted run of an older version left this checkpoint, which this version cannot resume; pass --force to delete it and start over', { file: dir });
  fs.rmSync(dir, { recursive: true, force: true });
}

/** Where an unfinished run of this output keeps its checkpoints. */
export function partialDirFor(outDir: string): string {
  return path.resolve(outDir) + PARTIAL_SUFFIX;
}

/**
 * The train-drafter job. With a Collective of several ranks every rank calls it with the same input; rank 0 writes
 * and calls the hooks, the others return their (unwritten) report.
 */
export function runTrainDrafter(
  be: Backend, input: TrainDrafterInput, hooksIn: TrainDrafterHooks = {}, run: RunInfo = {}, comm: Collective = singleRank(),
): TrainDrafterReport {
  const lead = comm.rank === 0;
  const hooks: TrainDrafterHooks = lead ? hooksIn : {};
  const info = hooks.info ?? (() => {});
  const warn = hooks.warn ?? (() => {});
  const t0 = performance.now();
  const s = resolveTrainDrafterSettings(input);
  if (comm.worldSize > s.batch) {
    throw new UserError(`--batch ${s.batch} is smaller than the ${comm.worldSize} ranks of the run: each rank trains on its share of every batch (use at most ${s.batch} ranks or a larger --batch)`);
  }
  const inputs: Record<string, string> = { target: s.targetDir, data: s.dataFile, ...(s.evalPrompts ? { 'evaluation prompts': s.evalPrompts } : {}) };
  // The output path before anything is read: a bad --out fails at once (rank 0's: it writes the output).
  if (lead) {
    checkOutputPath({ out: s.outDir, kind: 'dir', inputs, force: s.force });
    refuseLegacyCheckpoint(s);
  }

  // ── target configuration, tokenizer, drafter configuration ──
  const tcfg = loadModelConfig(s.targetDir);
  checkAgainstTarget(s, tcfg);
  const tok = fs.existsSync(path.join(s.targetDir, 'tokenizer.json')) ? loadTokenizer(s.targetDir) : null;
  const notes: string[] = [];
  let layerIds: number[];
  if (s.targetLayers === 'auto') {
    const auto = autoTargetLayerIds(tcfg.numLayers, s.numTaps);
    layerIds = auto.ids;
    if (auto.note) notes.push(auto.note);
  } else {
    layerIds = s.targetLayers;
  }
  const mask = resolveMaskToken(s.maskToken, tok, tcfg.vocabSize);
  const numLayers = s.layers === 'auto' ? autoDrafterLayers(tcfg.numLayers) : s.layers;
  const dcfg = drafterConfigFor(tcfg, numLayers, s.blockSize, layerIds, mask.id);
  checkDrafterAgainstTarget(dcfg, tcfg, s.targetDir);
  if (s.layers === 'auto') notes.push(`--layers auto: ${dcfg.numLayers} draft layer(s) for a ${tcfg.numLayers}-layer target`);
  notes.push(`mask token: ${mask.how}`);
  if (tcfg.quantization) notes.push(`target is quantized (${tcfg.quantization.method} W${tcfg.quantization.bits}); the drafter learns the quantized target's features`);
  const gamma = s.gamma === 'auto' ? defaultGamma(s.blockSize) : s.gamma;
  const peakLr = s.lr === 'auto' ? autoLr(dcfg.hiddenSize) : s.lr;
  if (s.lr === 'auto') notes.push(`--lr auto: ${peakLr.toPrecision(3)} (6e-4 × √(4096 / hidden ${dcfg.hiddenSize}), between 1× and 5×)`);
  for (const n of notes) info(n);

  // ── data, evaluation prompts ──
  const data = readTrainingData(s.dataFile, { seqLen: s.seqLen, blockSize: s.blockSize, vocabSize: tcfg.vocabSize, tokenizer: tok, encoding: s.evalEncoding });
  if (data.droppedEmpty + data.droppedShort > 0) {
    warn(`${data.droppedEmpty + data.droppedShort} of ${data.records} records dropped (${data.droppedEmpty} without response tokens, ${data.droppedShort} with fewer than ${2 * s.blockSize})`);
  }
  const nSamples = data.samples.length;
  let longestResponse = 0;
  for (const smp of data.samples) longestResponse = Math.max(longestResponse, smp.lossMask.reduce((a, b) => a + b, 0));
  const anchors = s.anchors === 'auto' ? autoAnchors(longestResponse) : s.anchors;
  if (s.anchors === 'auto') {
    notes.push(`--anchors auto: ${anchors} per sequence (longest response ${longestResponse} tokens)`);
    info(notes[notes.length - 1]);
  }
  const stepsPerEpoch = Math.ceil(nSamples / s.batch);
  const epochs = s.epochs === 'auto' ? autoEpochs(stepsPerEpoch) : s.epochs;
  if (s.epochs === 'auto') {
    notes.push(`--epochs auto: ${epochs} (${stepsPerEpoch} steps per epoch; at least 6, up to 800 steps for small data sets)`);
    info(notes[notes.length - 1]);
  }
  const totalSteps = stepsPerEpoch * epochs;
  const evalPlan = planEvaluation(s, tok);
  const settings: ResolvedTrainSettings = {
    layers: dcfg.numLayers, blockSize: s.blockSize, targetLayerIds: layerIds, anchors, gamma, epochs, lr: peakLr,
    warmup: s.warmup, weightDecay: s.weightDecay, seqLen: s.seqLen, batch: s.batch, maskTokenId: mask.id, seed: s.seed, init: s.init,
  };

  // ── run directory (rank 0): a matching unfinished run is resumed with --resume, any other is refused ──
  const manifestInputs = lead ? [describeModelDir('target', s.targetDir), describeInput('data', s.dataFile)] : [];
  // The compute dtype changes the training: a checkpoint of another one is not resumed (f32, the earlier numerics, adds no key).
  const computeDtype = resolveJobComputeDtype(s.computeDtype, be.name);
  const fingerprint = {
    inputs: Object.fromEntries(manifestInputs.map((i) => [i.role, inputIdentity(i)])),
    settings: { ...settings, drafter: dcfg, encoding: s.evalEncoding, ...(computeDtype === 'f32' ? {} : { computeDtype }) },
  };
  const rd = lead ? openRunDir({ out: s.outDir, kind: 'dir', tool: 'dflash', command: 'train-drafter', inputs, force: s.force, resume: s.resume, fingerprint }) : null;
  if (!rd) return trainInRunDir();
  try {
    return trainInRunDir();
  } catch (e) {
    // A run with a checkpoint stays resumable; one that failed before its first checkpoint leaves nothing behind.
    let hasCheckpoint = true;
    try {
      hasCheckpoint = rd.readProgress<TrainProgress>() !== undefined;
    } catch {
      // unreadable progress: keep the partial for the user to look at
    }
    if (hasCheckpoint) rd.release();
    else rd.discard();
    throw e;
  }

  function trainInRunDir(): TrainDrafterReport {
    const tLoad = performance.now();
    // At bf16 the float weights are read as bf16 (a bf16 checkpoint as stored; dequantized INT4 weights at half the memory).
    const target = loadModel(be, s.targetDir, computeDtype === 'bf16' ? { weightDtype: 'bf16' } : {});
    // Freed however the run ends: `paro release` runs every stage in one process, on the GPU at real size.
    try {
      target.decoder.setComputeDtype(computeDtype); // before the warm start and the drafter read its weights
      const start = startingState(target);
      if (comm.worldSize > 1) shareStart(start);
      try {
        return trainFrom(target, start, tLoad);
      } finally {
        freeTrainState(be, dcfg, start.state);
      }
    } finally {
      freeModelWeights(be, target.decoder.weights);
    }
  }

  /** Rank 0's state on every rank: its step, weights and AdamW moments (the log stays with rank 0, which writes it). */
  function shareStart(start: StartingState): void {
    const step = comm.allReduceNumbers(Float64Array.of(lead ? start.state.step : 0), 'sum')[0];
    for (const w of [start.state.weights, start.state.m, start.state.v]) {
      for (const { tensor } of drafterTensors(dcfg, w)) comm.broadcast(tensor, 0);
    }
    start.state.step = step;
    start.resumedFrom = step;
  }

  /** The checkpoint of the run being resumed with its log, or a fresh state (ranks other than 0: always fresh). */
  function startingState(target: LoadedModel): StartingState {
    const progress = rd?.resumed ? rd.readProgress<TrainProgress>() : undefined;
    if (rd && progress) {
      const state = loadCheckpoint(be, rd, dcfg, progress);
      removeStateFiles(rd, path.basename(progress.stateFile)); // orphans of a kill mid-save
      info(`resuming from step ${progress.step} of ${progress.totalSteps}`);
      return { state, log: progress.log, resumedFrom: progress.step };
    }
    if (rd && s.resume) warn(`--resume: no checkpoint to resume at ${rd.partial}; starting from scratch`);
    if (rd) removeStateFiles(rd, null);
    const state = initTrainState(be, dcfg, s.seed, s.init === 'target' ? target.decoder.weights : null);
    return { state, log: { steps: [], evals: [], trainSeconds: 0 }, resumedFrom: 0 };
  }

  function trainFrom(target: LoadedModel, start: StartingState, tLoad: number): TrainDrafterReport {
    const { state, log, resumedFrom } = start;

    // ── features ──
    const shared: SharedTargetParts = { embed: target.decoder.weights.embed, lmHead: target.decoder.weights.lmHead };
    const tFeat0 = performance.now();
    const features = new FeatureSource(be, target.decoder, layerIds, data, s.featureCacheMb * 2 ** 20, hooks.onFeatures, comm);
    const featureSeconds = (performance.now() - tFeat0) / 1000;
    if (features.mode === 'online') info('target features do not fit the cache limit: recomputing them at every visit');

    // ── τ evaluations ──
    let evalSeconds = 0;
    const runEval = (step: number): void => {
      if (!evalPlan || !lead) return; // rank 0 alone: the others wait for it at the next step's sums
      const te = performance.now();
      const drafter = new Drafter(be, dcfg, state.weights, shared, 'f32', computeDtype);
      const t = tauOnPrompts(target.decoder, drafter, evalPlan.prompts, evalPlan.maxNewTokens);
      drafter.dispose();
      if (!Number.isFinite(t.tau) || !Number.isFinite(t.tauPooled)) {
        throw new UserError(`τ evaluation at step ${step} gave ${t.tau} (no verify step on ${evalPlan.prompts.length} prompt(s)); raise --eval-max-new-tokens`, { file: s.evalPrompts });
      }
      const sec = (performance.now() - te) / 1000;
      evalSeconds += sec;
      const e: EvalLog = { step, tau: t.tau, tauPooled: t.tauPooled, steps: t.steps, seconds: sec };
      log.evals = log.evals.filter((x) => x.step !== step).concat([e]);
      hooks.onEval?.(e);
    };

    // ── training loop ──
    const invFreq = drafterInvFreq(dcfg);
    const lastStep = Math.min(totalSteps, s.maxSteps ?? totalSteps);
    const tTrain = performance.now();
    const trainSecondsBefore = log.trainSeconds;
    if (resumedFrom === 0 && evalPlan) runEval(0);
    while (state.step < lastStep) {
      const step = state.step;
      const { epoch, j, batchIdx } = stepBatch(step, nSamples, s.batch, s.seed);
      const lr = warmupCosineLr(peakLr, step, totalSteps, s.warmup);
      const r = optimizerStep(be, dcfg, state, shared, invFreq, features, data, batchIdx, { epoch, seed: s.seed, anchors, gamma, lr, weightDecay: s.weightDecay, computeDtype }, comm);
      const entry: StepLog = { step: state.step, epoch: epoch + (j + 1) / stepsPerEpoch, loss: r.loss, acc: r.acc, lr, gradNorm: r.gradNorm };
      log.steps.push(entry);
      hooks.onStep?.(state.step, totalSteps, entry);
      if (!Number.isFinite(r.loss)) throw new UserError(`training diverged at step ${state.step} (loss ${r.loss}); try a lower --lr`);
      const epochEnd = state.step % stepsPerEpoch === 0;
      if (evalPlan && (state.step % evalPlan.every === 0 || state.step === lastStep)) runEval(state.step);
      if (rd && state.step < lastStep && ((s.checkpointEvery > 0 && state.step % s.checkpointEvery === 0) || epochEnd)) {
        log.trainSeconds = trainSecondsBefore + (performance.now() - tTrain) / 1000 - evalSeconds;
        saveCheckpoint(be, rd, dcfg, state, { step: state.step, totalSteps, log });
      }
    }
    log.trainSeconds = trainSecondsBefore + (performance.now() - tTrain) / 1000 - evalSeconds;
    const trainSeconds = log.trainSeconds;

    // ── export into the run directory, then commit (rank 0, once every rank got through every step) ──
    comm.barrier();
    const tExp = performance.now();
    const last = log.steps[log.steps.length - 1];
    if (rd) {
      writeDrafterFiles(be, rd.partial, dcfg, state.weights);
      fs.writeFileSync(rd.path('train-log.csv'), logCsv(log.steps, log.evals));
      fs.writeFileSync(rd.path('train-curve.svg'), curveSvg(log.steps, log.evals));
      fs.writeFileSync(rd.path('train-curve.png'), curvePng(log.steps, log.evals));
    }
    const exportSeconds = (performance.now() - tExp) / 1000;
    const seconds = {
      total: (performance.now() - t0) / 1000, load: (tLoad - t0) / 1000, features: featureSeconds, train: trainSeconds, eval: evalSeconds, export: exportSeconds,
    };
    if (rd) {
      removeStateFiles(rd, null);
      rd.commit(createManifest({
        tool: 'dflash', version: run.toolVersion ?? 'unknown', command: 'train-drafter', argv: run.argv,
        settings: { ...settings, notes, computeDtype }, seed: s.seed, device: be.device, backend: be.name, inputs: manifestInputs,
        metrics: {
          steps: state.step, totalSteps, resumedFromStep: resumedFrom, finalLoss: last?.loss ?? null, finalAcc: last?.acc ?? null, evals: log.evals,
          featureCache: features.mode, worldSize: comm.worldSize,
        },
        seconds,
      }));
    }
    comm.barrier(); // every rank returns once rank 0 has committed the output (a later step may read it)
    return {
      command: 'dflash train-drafter',
      target: s.targetDir,
      data: s.dataFile,
      out: s.outDir,
      device: be.device,
      backend: be.name,
      computeDtype,
      drafter: {
        layers: dcfg.numLayers, hiddenSize: dcfg.hiddenSize, intermediateSize: dcfg.intermediateSize, heads: dcfg.numHeads, kvHeads: dcfg.numKvHeads,
        headDim: dcfg.headDim, blockSize: dcfg.blockSize, targetLayerIds: layerIds, maskTokenId: mask.id, ropeTheta: dcfg.ropeTheta, params: drafterParamCount(dcfg),
      },
      notes,
      settings,
      dataStats: {
        records: data.records, samples: nSamples, droppedEmpty: data.droppedEmpty, droppedShort: data.droppedShort, truncated: data.truncated,
        tokens: data.tokens, responseTokens: data.responseTokens,
      },
      steps: state.step,
      totalSteps,
      resumedFromStep: resumedFrom,
      finalLoss: last?.loss ?? NaN,
      finalAcc: last?.acc ?? NaN,
      evals: log.evals,
      seconds,
      featureCache: features.mode,
      worldSize: comm.worldSize,
    };
  }
}

/** config.json + model.safetensors of a drafter (dflash-spec §5) into an existing directory. */
export function writeDrafterFiles(be: Backend, dir: string, c: DrafterConfig, w: DrafterWeights): void {
  const exp = drafterExport(be, c, w);
  writeSafetensors(path.join(dir, 'model.safetensors'), exp.tensors, exp.metadata);
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(exp.config, null, 2) + '\n');
}
