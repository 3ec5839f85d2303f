// `dflash train-drafter` (dflash-spec §3): teacher-forced target taps (computed once and cached when they fit, the
// target being frozen), random anchors on response tokens, the drafter forward/backward over all blocks of each
// sequence, the exp(−(k−1)/γ)-weighted CE (slot 0 excluded, no label shift), AdamW with warmup + cosine and global
// grad-norm clipping at 1.0, periodic checkpoints for --resume, and the export of §5.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Backend, Tensor } from '../engine/backend.js';
import { loadModel } from '../model/load.js';
import type { Decoder } from '../model/decoder.js';
import type { ModelConfig } from '../io/config.js';
import type { ModelWeights } from '../model/weights.js';
import { initDrafterFromTarget } from './init-from-target.js';
import { loadTokenizer, type TextTokenizer } from '../io/tokenizer.js';
import { readPrompts } from '../io/datasets.js';
import { Rng } from '../numerics/rng.js';
import { warmupCosineLr } from '../numerics/schedule.js';
import { UserError } from '../errors.js';
import type { DrafterConfig } from './drafter-config.js';
import { drafterParamCount } from './drafter-config.js';
import { autoTargetLayerIds } from './layer-ids.js';
import { drafterInvFreq, Drafter, freeTrainSaved, trainBackward, trainForward } from './drafter.js';
import { drafterTensors, freeDrafterWeights, initDrafterWeights, mapDrafterWeights, zerosLike, type DrafterWeights, type SharedTargetParts } from './drafter-weights.js';
import { anchorRng, anchorsPerSequence, sampleAnchors, validAnchorPositions } from './anchors.js';
import { blockInputIds, blockLabelsAndWeights, defaultGamma, headLoss } from './loss.js';
import { targetTaps } from './features.js';
import { readTrainingData, type TrainingData } from './training-data.js';
import { checkDrafterAgainstTarget } from './load-drafter.js';
import { exportDrafter, sha256File } from './export.js';
import { checkpointDirFor, hasTrainState, loadTrainState, readStateMeta, saveTrainState, type TrainState } from './train-state.js';
import { encodePrompt, type PromptEncoding } from './prompts.js';
import { DFlashProposer, speculativeGenerate, summarizeAcceptance } from './spec-decode.js';
import { writeCurvePng, writeCurveSvg, writeLogCsv } from './curve-plot.js';

export interface TrainSettings {
  targetDir: string;
  dataFile: string;
  outDir: string;
  /** Draft layers; 'auto' adapts to the target depth (see autoDrafterLayers). */
  layers: number | 'auto';
  blockSize: number;
  /** 'auto' (spec formula, distinct spread layers for shallow targets) or explicit ids. */
  targetLayers: 'auto' | number[];
  /** Taps for --target-layers auto. */
  numTaps: number;
  /** Anchors per sequence; 'auto' = min(512, ⌈longest response / 2⌉) (see autoAnchors). */
  anchors: number | 'auto';
  gamma: number | 'auto';
  /** Epochs; 'auto' = the spec's 6, more for small data sets (see autoEpochs). */
  epochs: number | 'auto';
  /** Peak learning rate; 'auto' scales the spec's 6e-4 with the hidden size (see autoLr). */
  lr: number | 'auto';
  warmup: number;
  weightDecay: number;
  seqLen: number;
  batch: number;
  /** Token id or token string; undefined: picked from the target (see resolveMaskToken). */
  maskToken?: string;
  seed: number;
  /** Optimizer steps between checkpoints (0: only at epoch ends). */
  checkpointEvery: number;
  resume: boolean;
  force: boolean;
  /** Cache target taps in memory when they take at most this many bytes; otherwise recompute them each visit. */
  featureCacheBytes: number;
  /** Evaluate τ by speculative decoding every evalEvery steps (and at the end) on these prompts. */
  evalPrompts?: string;
  evalEvery?: number;
  evalMaxPrompts?: number;
  evalMaxNewTokens?: number;
  evalEncoding?: PromptEncoding;
  /** Stop after this many optimizer steps (the schedule still spans all epochs); for tests and profiling. */
  maxSteps?: number;
  /** 'random' (spec: N(0, 0.02), norms 1) or 'target' (warm start from the target's last layers, init-from-target.ts). */
  init?: 'random' | 'target';
}

export interface StepLog {
  step: number;
  epoch: number;
  loss: number;
  acc: number;
  lr: number;
  gradNorm: number;
}

export interface EvalLog {
  step: number;
  tau: number;
  tauPooled: number;
  steps: number;
  seconds: number;
}

export interface TrainLog {
  steps: StepLog[];
  evals: EvalLog[];
  trainSeconds: number;
}

export interface TrainHooks {
  info?: (msg: string) => void;
  warn?: (msg: string) => void;
  onStep?: (step: number, total: number, s: StepLog) => void;
  onEval?: (e: EvalLog) => void;
  onFeatures?: (done: number, total: number) => void;
}

export interface TrainReport {
  command: 'dflash train-drafter';
  target: string;
  data: string;
  out: string;
  device: string;
  backend: string;
  drafter: {
    layers: number; hiddenSize: number; intermediateSize: number; heads: number; kvHeads: number; headDim: number;
    blockSize: number; targetLayerIds: number[]; maskTokenId: number; ropeTheta: number; params: number;
  };
  notes: string[];
  settings: Record<string, unknown>;
  dataStats: { records: number; samples: number; droppedEmpty: number; droppedShort: number; truncated: number; tokens: number; responseTokens: number };
  steps: number;
  totalSteps: number;
  resumedFromStep: number;
  finalLoss: number;
  finalAcc: number;
  evals: EvalLog[];
  seconds: { total: number; load: number; features: number; train: number; eval: number; export: number };
  featureCache: 'memory' | 'online';
}

/** Draft depth for --layers auto: the spec's 5 for targets of ≥ 20 layers, else about half the target's depth. */
export function autoDrafterLayers(targetLayers: number): number {
  if (targetLayers >= 20) return 5;
  return Math.max(1, Math.min(5, Math.floor(targetLayers / 2)));
}

/**
 * --lr auto: the spec's 6e-4 (tuned for 4096-wide drafters) times √(4096 / hidden), between 1× and 5×: Adam's best
 * rate grows as the width shrinks. On the fixture (hidden 256: 2.4e-3) 6e-4 left the drafter under-trained after its
 * 600 steps (τ 2.94 vs 3.47 at 2e-3, docs/performance.md).
 */
export function autoLr(hiddenSize: number): number {
  return 6e-4 * Math.min(5, Math.max(1, Math.sqrt(4096 / hiddenSize)));
}

/**
 * --epochs auto: the spec's 6 epochs, or as many as make 800 optimizer steps when the data set is small (at most 20).
 * The recipe's 6 epochs assume ~800k samples; on the fixture's 400 sequences 600 steps leave the drafter
 * under-trained (cpu: τ 3.39 after 600 steps, 4.09 after 1000; 800 keeps the cpu run well inside 30 minutes).
 */
export function autoEpochs(stepsPerEpoch: number): number {
  return Math.max(6, Math.min(20, Math.ceil(800 / Math.max(1, stepsPerEpoch))));
}

/**
 * --anchors auto: the spec's 512 for long responses, about one anchor per two response tokens for short ones (on the
 * fixture, 64 for 128-token responses: all 120 valid positions trained no better than 64 at twice the cost).
 */
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

function settingsKey(obj: unknown): string {
  return createHash('sha256').update(JSON.stringify(obj)).digest('hex').slice(0, 32);
}

function drafterConfigFor(t: ModelConfig, s: TrainSettings, layerIds: number[], maskTokenId: number): DrafterConfig {
  return {
    hiddenSize: t.hiddenSize,
    intermediateSize: t.intermediateSize,
    numLayers: s.layers === 'auto' ? autoDrafterLayers(t.numLayers) : s.layers,
    numHeads: t.numHeads,
    numKvHeads: t.numKvHeads,
    headDim: t.headDim,
    rmsNormEps: t.rmsNormEps,
    ropeTheta: t.ropeTheta,
    maxPositionEmbeddings: t.maxPositionEmbeddings,
    blockSize: s.blockSize,
    maskTokenId,
    targetLayerIds: layerIds,
    numTargetLayers: t.numLayers,
    vocabSize: t.vocabSize,
    bosTokenId: t.bosTokenId,
    eosTokenIds: t.eosTokenIds,
  };
}

/** Features of every training sample, cached in memory or recomputed per visit. */
class FeatureSource {
  private cache: Float32Array[] | null = null;
  readonly width: number;

  constructor(private readonly be: Backend, private readonly target: Decoder, private readonly layerIds: number[], private readonly data: TrainingData, cacheBytes: number, onProgress?: (done: number, total: number) => void) {
    this.width = layerIds.length * target.cfg.hiddenSize;
    const bytes = data.tokens * this.width * 4;
    if (bytes <= cacheBytes) {
      this.cache = data.samples.map((s, i) => {
        const t = targetTaps(target, s.ids, layerIds);
        const host = be.toHost(t);
        be.free(t);
        onProgress?.(i + 1, data.samples.length);
        return host;
      });
    }
  }

  get mode(): 'memory' | 'online' {
    return this.cache ? 'memory' : 'online';
  }

  taps(i: number): Tensor {
    const s = this.data.samples[i];
    if (this.cache) return this.be.fromHost(this.cache[i], [s.ids.length, this.width], 'f32');
    return targetTaps(this.target, s.ids, this.layerIds);
  }
}

/** Per-epoch sample order: a seeded permutation (same for a resumed run). */
export function epochOrder(n: number, seed: number, epoch: number): Int32Array {
  const order = Int32Array.from({ length: n }, (_, i) => i);
  return new Rng(((seed * 0x9e3779b1) ^ (epoch * 0x85ebca6b) ^ 0x632be5ab) | 0).shuffle(order);
}

export function runTrainDrafter(be: Backend, s: TrainSettings, hooks: TrainHooks = {}): TrainReport {
  const info = hooks.info ?? (() => {});
  const warn = hooks.warn ?? (() => {});
  const t0 = performance.now();
  validateSettings(s);
  const outAbs = path.resolve(s.outDir);
  if (!s.force && fs.existsSync(outAbs)) throw new UserError('exists; pass --force to overwrite', { file: s.outDir });

  // ── target, tokenizer, drafter configuration ──
  const target = loadModel(be, s.targetDir);
  const tcfg = target.cfg;
  const tok = fs.existsSync(path.join(s.targetDir, 'tokenizer.json')) ? loadTokenizer(s.targetDir) : null;
  const notes: string[] = [];
  let layerIds: number[];
  if (s.targetLayers === 'auto') {
    const auto = autoTargetLayerIds(tcfg.numLayers, s.numTaps);
    layerIds = auto.ids;
    if (auto.note) notes.push(auto.note);
  } else {
    layerIds = s.targetLayers;
    const bad = layerIds.filter((l) => l > tcfg.numLayers - 2);
    if (bad.length > 0) throw new UserError(`--target-layers ${bad.join(',')}: the target has ${tcfg.numLayers} layers and only layers 0..${tcfg.numLayers - 2} can be tapped`);
  }
  const mask = resolveMaskToken(s.maskToken, tok, tcfg.vocabSize);
  const dcfg = drafterConfigFor(tcfg, s, layerIds, mask.id);
  checkDrafterAgainstTarget(dcfg, tcfg, s.targetDir);
  if (s.layers === 'auto') notes.push(`--layers auto: ${dcfg.numLayers} draft layer(s) for a ${tcfg.numLayers}-layer target`);
  notes.push(`mask token: ${mask.how}`);
  if (tcfg.quantization) notes.push(`target is quantized (${tcfg.quantization.method} W${tcfg.quantization.bits}); the drafter learns the quantized target's features`);
  const gamma = s.gamma === 'auto' ? defaultGamma(s.blockSize) : s.gamma;
  const peakLr = s.lr === 'auto' ? autoLr(dcfg.hiddenSize) : s.lr;
  if (s.lr === 'auto') notes.push(`--lr auto: ${peakLr.toPrecision(3)} (6e-4 × √(4096 / hidden ${dcfg.hiddenSize}), between 1× and 5×)`);
  for (const n of notes) info(n);

  // ── data ──
  const data = readTrainingData(s.dataFile, { seqLen: s.seqLen, blockSize: s.blockSize, vocabSize: tcfg.vocabSize, tokenizer: tok });
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
  const dataHash = sha256File(s.dataFile);
  const settingsRecord = {
    target: path.resolve(s.targetDir), targetConfig: tcfg.raw, data: dataHash, drafter: dcfg, gamma,
    anchors, epochs, lr: peakLr, warmup: s.warmup, weightDecay: s.weightDecay, seqLen: s.seqLen, batch: s.batch, seed: s.seed,
    init: s.init ?? 'random',
  };
  const key = settingsKey(settingsRecord);
  const tLoad = performance.now();

  // ── state: fresh or resumed ──
  const ckptDir = checkpointDirFor(s.outDir);
  let state: TrainState;
  let log: TrainLog = { steps: [], evals: [], trainSeconds: 0 };
  let resumedFrom = 0;
  if (hasTrainState(ckptDir)) {
    const meta = readStateMeta<TrainLog>(ckptDir);
    if (!s.resume) {
      if (!s.force) throw new UserError(`an unfinished run left a checkpoint here (step ${meta.step} of ${meta.totalSteps}); pass --resume to continue it or --force to start over`, { file: ckptDir });
      fs.rmSync(ckptDir, { recursive: true, force: true });
      state = freshState(be, dcfg, s.seed, s.init === 'target' ? target.decoder.weights : null);
    } else {
      if (meta.key !== key) throw new UserError('the checkpoint belongs to other settings or data (target, data file, drafter shape or hyper-parameters differ); pass --force to start over', { file: ckptDir });
      state = loadTrainState(be, ckptDir, dcfg, meta.step);
      log = meta.log;
      resumedFrom = meta.step;
      info(`resuming from step ${meta.step} of ${meta.totalSteps}`);
    }
  } else {
    if (s.resume) warn(`--resume: no checkpoint at ${ckptDir}; starting from scratch`);
    state = freshState(be, dcfg, s.seed, s.init === 'target' ? target.decoder.weights : null);
  }

  // ── features ──
  const shared: SharedTargetParts = { embed: target.decoder.weights.embed, lmHead: target.decoder.weights.lmHead };
  const tFeat0 = performance.now();
  const features = new FeatureSource(be, target.decoder, layerIds, data, s.featureCacheBytes, hooks.onFeatures);
  const featureSeconds = (performance.now() - tFeat0) / 1000;
  if (features.mode === 'online') info('target features do not fit the cache limit: recomputing them at every visit');

  // ── evaluation prompts ──
  const evalPrompts = s.evalPrompts ? prepareEval(s, tok) : null;
  const invFreq = drafterInvFreq(dcfg);
  let evalSeconds = 0;
  const runEval = (step: number): void => {
    if (!evalPrompts) return;
    const te = performance.now();
    const drafter = new Drafter(be, dcfg, state.weights, shared);
    const proposer = new DFlashProposer(drafter);
    const accs = evalPrompts.map((ids) => speculativeGenerate(target.decoder, proposer, ids, { maxNewTokens: s.evalMaxNewTokens ?? 128, temperature: 0, stopTokenIds: [] }).acceptanceLengths);
    const sum = summarizeAcceptance(accs, dcfg.blockSize);
    const sec = (performance.now() - te) / 1000;
    evalSeconds += sec;
    const e: EvalLog = { step, tau: sum.tau, tauPooled: sum.tauPooled, steps: sum.steps, seconds: sec };
    log.evals = log.evals.filter((x) => x.step !== step).concat([e]);
    hooks.onEval?.(e);
  };

  // ── training loop ──
  const lastStep = Math.min(totalSteps, s.maxSteps ?? totalSteps);
  const tTrain = performance.now();
  const trainSecondsBefore = log.trainSeconds;
  if (resumedFrom === 0 && evalPrompts && s.evalEvery) runEval(0);
  const saveState = (): void => {
    log.trainSeconds = trainSecondsBefore + (performance.now() - tTrain) / 1000 - evalSeconds;
    saveTrainState(be, ckptDir, dcfg, state, { key, step: state.step, totalSteps, log, savedAt: new Date().toISOString() });
  };
  while (state.step < lastStep) {
    const step = state.step;
    const epoch = Math.floor(step / stepsPerEpoch);
    const order = epochOrder(nSamples, s.seed, epoch);
    const j = step % stepsPerEpoch;
    const batchIdx = Array.from(order.subarray(j * s.batch, Math.min(nSamples, (j + 1) * s.batch)));
    const r = trainStep(be, dcfg, state, shared, invFreq, features, data, batchIdx, { epoch, seed: s.seed, anchors, gamma });
    const lr = warmupCosineLr(peakLr, step, totalSteps, s.warmup);
    for (const { tensor: p, spec } of drafterTensors(dcfg, state.weights)) {
      const g = spec.get(r.grads);
      be.adamw(p, g, spec.get(state.m), spec.get(state.v), { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: s.weightDecay, step: step + 1 });
    }
    freeDrafterWeights(be, dcfg, r.grads);
    state.step = step + 1;
    const entry: StepLog = { step: state.step, epoch: epoch + (j + 1) / stepsPerEpoch, loss: r.loss, acc: r.acc, lr, gradNorm: r.gradNorm };
    log.steps.push(entry);
    hooks.onStep?.(state.step, totalSteps, entry);
    if (!Number.isFinite(r.loss)) throw new UserError(`training diverged at step ${state.step} (loss ${r.loss}); try a lower --lr`);
    const epochEnd = state.step % stepsPerEpoch === 0;
    if (evalPrompts && s.evalEvery && (state.step % s.evalEvery === 0 || state.step === lastStep)) runEval(state.step);
    if (state.step < lastStep && ((s.checkpointEvery > 0 && state.step % s.checkpointEvery === 0) || epochEnd)) saveState();
  }
  log.trainSeconds = trainSecondsBefore + (performance.now() - tTrain) / 1000 - evalSeconds;
  const trainSeconds = log.trainSeconds;

  // ── export ──
  const tExp = performance.now();
  const last = log.steps[log.steps.length - 1];
  const settings = {
    layers: dcfg.numLayers, blockSize: s.blockSize, targetLayerIds: layerIds, anchors, gamma, epochs, lr: peakLr,
    warmup: s.warmup, weightDecay: s.weightDecay, seqLen: s.seqLen, batch: s.batch, maskTokenId: mask.id, seed: s.seed, init: s.init ?? 'random',
  };
  const manifest = {
    tool: 'dflash train-drafter', created: new Date().toISOString(), device: be.device, backend: be.name,
    inputs: {
      target: { dir: path.resolve(s.targetDir), config: sha256File(path.join(s.targetDir, 'config.json')) },
      data: { file: path.resolve(s.dataFile), sha256: dataHash },
    },
    settings, notes,
    figures: { steps: state.step, totalSteps, finalLoss: last?.loss ?? null, finalAcc: last?.acc ?? null, trainSeconds, evals: log.evals },
  };
  exportDrafter(be, s.outDir, dcfg, state.weights, manifest, {
    force: s.force,
    extra: (dir) => {
      writeLogCsv(path.join(dir, 'train-log.csv'), log.steps, log.evals);
      writeCurveSvg(path.join(dir, 'train-curve.svg'), log.steps, log.evals);
      writeCurvePng(path.join(dir, 'train-curve.png'), log.steps, log.evals);
    },
  });
  fs.rmSync(ckptDir, { recursive: true, force: true });
  const exportSeconds = (performance.now() - tExp) / 1000;
  return {
    command: 'dflash train-drafter',
    target: s.targetDir,
    data: s.dataFile,
    out: s.outDir,
    device: be.device,
    backend: be.name,
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
    seconds: {
      total: (performance.now() - t0) / 1000, load: (tLoad - t0) / 1000, features: featureSeconds, train: trainSeconds, eval: evalSeconds, export: exportSeconds,
    },
    featureCache: features.mode,
  };
}

function freshState(be: Backend, c: DrafterConfig, seed: number, from: ModelWeights | null): TrainState {
  const weights = from ? initDrafterFromTarget(be, c, from) : initDrafterWeights(be, c, seed);
  return { weights, m: zerosLike(be, c), v: zerosLike(be, c), step: 0 };
}

function prepareEval(s: TrainSettings, tok: TextTokenizer | null): Int32Array[] {
  if (!tok) throw new UserError('--eval-prompts needs the target tokenizer (tokenizer.json)', { file: s.targetDir });
  let prompts = readPrompts(s.evalPrompts!);
  if (s.evalMaxPrompts) prompts = prompts.slice(0, s.evalMaxPrompts);
  return prompts.map((p) => encodePrompt(tok, p, s.evalEncoding ?? { chatTemplate: 'auto' }).ids);
}

function validateSettings(s: TrainSettings): void {
  const posInt = (v: number, name: string): void => {
    if (!Number.isInteger(v) || v <= 0) throw new UserError(`${name} must be a positive integer, got ${v}`);
  };
  posInt(s.blockSize, '--block-size');
  if (s.blockSize < 2) throw new UserError('--block-size must be at least 2 (an anchor and one drafted token)');
  if (s.layers !== 'auto') posInt(s.layers, '--layers');
  if (s.anchors !== 'auto') posInt(s.anchors, '--anchors');
  if (s.epochs !== 'auto') posInt(s.epochs, '--epochs');
  posInt(s.seqLen, '--seq-len');
  posInt(s.batch, '--batch');
  if (s.seqLen < s.blockSize + 1) throw new UserError(`--seq-len ${s.seqLen} leaves no room for a block of ${s.blockSize}`);
  if (s.lr !== 'auto' && !(s.lr > 0)) throw new UserError(`--lr must be positive, got ${s.lr}`);
  if (!(s.warmup >= 0 && s.warmup < 1)) throw new UserError(`--warmup must be a fraction in [0, 1), got ${s.warmup}`);
  if (s.gamma !== 'auto' && !(s.gamma > 0)) throw new UserError(`--gamma must be positive or auto, got ${s.gamma}`);
}

interface StepResult {
  grads: DrafterWeights;
  loss: number;
  acc: number;
  gradNorm: number;
}

/** One optimizer step's gradient over a micro-batch of sequences (loss normalised by the batch's Σw), clipped to 1. */
export function trainStep(
  be: Backend, c: DrafterConfig, st: TrainState, shared: SharedTargetParts, invFreq: Float32Array, features: { taps(i: number): Tensor },
  data: TrainingData, batchIdx: number[], o: { epoch: number; seed: number; anchors: number; gamma: number; chunkRows?: number },
): StepResult {
  const B = c.blockSize;
  const valid = batchIdx.map((i) => validAnchorPositions(data.samples[i].lossMask, B));
  const N = anchorsPerSequence(valid.map((v) => v.length), o.anchors);
  const seqs = batchIdx.map((i, b) => {
    const smp = data.samples[i];
    const { anchors, keep } = sampleAnchors(valid[b], N, anchorRng(o.seed, o.epoch, i));
    const { labels, weights } = blockLabelsAndWeights(smp.ids, smp.lossMask, anchors, keep, B, o.gamma);
    return { i, anchors, keep, labels, weights, blockIds: blockInputIds(smp.ids, anchors, keep, B, c.maskTokenId) };
  });
  let wSum = 0;
  for (const q of seqs) for (let r = 0; r < q.weights.length; r++) wSum += q.weights[r];
  const norm = 1 / (wSum + 1e-6);
  const chunkRows = o.chunkRows ?? Math.max(16, Math.floor((32 << 20) / c.vocabSize));
  let grads: DrafterWeights | null = null;
  let loss = 0;
  let correct = 0;
  let counted = 0;
  for (const q of seqs) {
    const taps = features.taps(q.i);
    const { out, saved } = trainForward(be, c, st.weights, shared, invFreq, { taps, anchors: q.anchors, keep: q.keep, blockIds: q.blockIds }, true);
    const rowW = new Float32Array(q.weights.length);
    for (let r = 0; r < rowW.length; r++) rowW[r] = q.weights[r] * norm;
    const h = headLoss(be, out, shared.lmHead, q.labels, rowW, chunkRows);
    be.free(out);
    loss += h.loss;
    correct += h.correct;
    counted += h.counted;
    const g = trainBackward(be, c, st.weights, invFreq, saved!, h.dHidden);
    be.free(h.dHidden);
    freeTrainSaved(be, saved!);
    be.free(taps);
    if (!grads) grads = g;
    else {
      for (const { spec } of drafterTensors(c, g)) be.axpy(spec.get(grads), spec.get(g), 1);
      freeDrafterWeights(be, c, g);
    }
  }
  // Global grad-norm clipping at 1.0 (torch clip_grad_norm_: scale by max/(norm + 1e-6) when that is < 1).
  let sq = 0;
  const list = drafterTensors(c, grads!);
  for (const { tensor } of list) sq += be.sumSquares(tensor);
  const gradNorm = Math.sqrt(sq);
  const coef = 1 / (gradNorm + 1e-6);
  let out = grads!;
  if (coef < 1) {
    out = mapDrafterWeights(c, grads!, (t) => be.scale(t, coef));
    freeDrafterWeights(be, c, grads!);
  }
  return { grads: out, loss, acc: counted > 0 ? correct / counted : NaN, gradNorm };
}
