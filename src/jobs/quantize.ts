// The `paro quantize` job: settings (defaults defined once, every cross-parameter constraint checked before heavy
// work), the run directory (io/run-dir: partial folder, input hashes, fingerprint, resume, lock, manifest, atomic
// commit), the block loop over the compute steps of paroquant/quantize-steps, the checkpoint export and the report.
// Each finished block is saved in the partial directory, so an interrupted run resumes from the last finished block
// (activations are recomputed from the saved blocks: deterministic on the cpu backend).
import * as fs from 'node:fs';
import path from 'node:path';
import type { Backend, DType } from '../engine/backend.js';
import { UserError } from '../errors.js';
import { Checkpoint } from '../io/checkpoint.js';
import { loadModelConfig, type ModelConfig } from '../io/config.js';
import { validateCheckpoint } from '../io/validate-checkpoint.js';
import { calibrationWindows, readTextDocuments, tokenizeCorpus } from '../io/datasets.js';
import { fingerprint } from '../io/hash.js';
import { MAX_CODE_BITS, PACK_FACTOR, packedLinearTensors, readPackedLinear, type PackedLinear } from '../io/int4-format.js';
import { createManifest, describeInput, inputIdentity, type ManifestInput } from '../io/manifest.js';
import { checkOutputPath, openRunDir, type RunDir } from '../io/run-dir.js';
import { SafetensorsFile } from '../io/safetensors.js';
import { writeSafetensors } from '../io/safetensors-writer.js';
import { loadTokenizer } from '../io/tokenizer.js';
import { geometryCache } from '../model/block.js';
import { checkModelDir } from '../model/load.js';
import { ropeInvFreq } from '../model/rope-freq.js';
import { LINEAR_KEYS, LINEAR_NAMES, freeLayerWeights, linearShapes, loadEmbedding, loadLayerWeights, type LinearKey } from '../model/weights.js';
import { chooseActivationPlacement, createStore, dtypeBytes, type ActivationStore, type Placement } from '../paroquant/activation-store.js';
import type { BlockData, BlockProgress, EpochLog, OptimizerSettings, StageResult } from '../paroquant/block-optimizer.js';
import {
  advanceQuantizedInputs, blockWorkingBytes, effectiveBlock, embedInto, fpTargets, initialLinears, optimizeBlock, packBlock, type PairCache,
} from '../paroquant/quantize-steps.js';
import { withDefaults } from './defaults.js';
import { describeModelDir } from './model-input.js';
import { copyModelFiles, writeQuantizedCheckpoint, writeQuantizedConfig } from './quantize-output.js';

export type QuantMethod = 'paro' | 'rtn';

/** Everything that decides the result of a quantization (besides the inputs and the backend). */
export interface QuantizeSettings {
  method: QuantMethod;
  bits: number;
  groupSize: number;
  /** Givens rotation layers per linear. */
  krot: number;
  samples: number;
  valSamples: number;
  seqLen: number;
  /** Draw the calibration windows from a permutation seeded by `seed` instead of taking the first ones. */
  shuffle: boolean;
  /** Base seed: rotation pairs of block l use seed + l. */
  seed: number;
  /** Epochs of stage 1 (angles, channel scales) and stage 2 (weights, quantizer). */
  epochs: [number, number];
  batchSize: number;
  /** Dtype of block activations and GEMMs during optimization; auto: bf16 on cuda, f32 on cpu. */
  computeDtype: 'auto' | 'f32' | 'bf16';
  /** Where calibration activations live; auto: on the device when they fit. */
  activations: Placement | 'auto';
  /** AdamW learning rates and constants of the paper (spec §6). */
  lrAngle: number;
  lrChannelScale: number;
  lrWeight: number;
  lrQuantizer: number;
  weightDecay: number;
  betas: [number, number];
  eps: number;
}

export const DEFAULT_QUANTIZE_SETTINGS: Readonly<QuantizeSettings> = Object.freeze({
  method: 'paro',
  bits: 4,
  groupSize: 128,
  krot: 8,
  samples: 128,
  valSamples: 16,
  seqLen: 512,
  shuffle: false,
  seed: 0,
  epochs: [10, 10] as [number, number],
  batchSize: 16,
  computeDtype: 'auto',
  activations: 'auto',
  lrAngle: 0.05,
  lrChannelScale: 0.05,
  lrWeight: 1e-5,
  lrQuantizer: 1e-6,
  weightDecay: 0.01,
  betas: [0.9, 0.95] as [number, number],
  eps: 1e-10,
});

/** `--demo`: small settings so the demo finishes in a minute or two on a laptop cpu (explicit flags still win). */
export const DEMO_QUANTIZE_SETTINGS: Readonly<Partial<QuantizeSettings>> = Object.freeze({ samples: 32, valSamples: 8, epochs: [4, 2] as [number, number] });

/** The packer stores codes as AutoAWQ nibbles. */
export const SUPPORTED_BITS: readonly number[] = [2, 3, 4];
/** Rotation layers the format and the optimizer take; the official CUDA runtime kernels exist for 1 and 8. */
export const KROT_RANGE = { min: 1, max: 64 } as const;
/** Largest group the backend's Givens rotation kernel handles (cuda: one thread block per group, native/src/k_paro.cu). */
export const MAX_GROUP_SIZE: Readonly<Record<string, number>> = { cuda: 1024 };

const isPosInt = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n > 0;
const isNonNegInt = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n >= 0;

/** Defaults under the given values (undefined fields take the default); each value's own range is checked. */
export function resolveQuantizeSettings(partial: Partial<QuantizeSettings> = {}): QuantizeSettings {
  const s: QuantizeSettings = withDefaults(DEFAULT_QUANTIZE_SETTINGS, partial);
  if (s.method !== 'paro' && s.method !== 'rtn') throw new UserError(`method must be paro or rtn, got "${String(s.method)}"`);
  for (const k of ['bits', 'groupSize', 'krot', 'samples', 'valSamples', 'seqLen', 'batchSize'] as const) {
    if (!isPosInt(s[k])) throw new UserError(`${k} must be a positive integer, got ${String(s[k])}`);
  }
  if (!isNonNegInt(s.seed)) throw new UserError(`seed must be a non-negative integer, got ${String(s.seed)}`);
  if (!Array.isArray(s.epochs) || s.epochs.length !== 2 || !s.epochs.every(isNonNegInt)) {
    throw new UserError(`epochs must be two non-negative integers, got ${JSON.stringify(s.epochs)}`);
  }
  if (!['auto', 'f32', 'bf16'].includes(s.computeDtype)) throw new UserError(`compute dtype must be auto, f32 or bf16, got "${String(s.computeDtype)}"`);
  if (!['auto', 'device', 'host'].includes(s.activations)) throw new UserError(`activations must be auto, device or host, got "${String(s.activations)}"`);
  return s;
}

/** compute dtype 'auto' on a backend: bf16 (tensor cores) on cuda, f32 on the cpu. */
export function resolveComputeDtype(v: QuantizeSettings['computeDtype'], backend: string): DType {
  return v === 'auto' ? (backend === 'cuda' ? 'bf16' : 'f32') : v;
}

/**
 * Every cross-parameter constraint, before any heavy work: bits the packer holds, K in range, the group size even,
 * dividing every in_features and within the backend's limit, out_features packable, the model not yet quantized and
 * having decoder layers. `file` is what the errors name (the model directory).
 */
export function checkQuantizeSettings(s: QuantizeSettings, cfg: ModelConfig, backend: string, file?: string): void {
  if (!SUPPORTED_BITS.includes(s.bits)) {
    throw new UserError(`--bits ${s.bits} is not supported: the packed format stores codes of at most ${MAX_CODE_BITS} bits (use ${SUPPORTED_BITS.join(', ')})`);
  }
  if (s.krot < KROT_RANGE.min || s.krot > KROT_RANGE.max) {
    throw new UserError(`--krot must be in [${KROT_RANGE.min}, ${KROT_RANGE.max}], got ${s.krot} (for no rotations at all use --method rtn)`);
  }
  if (s.groupSize < 2 || s.groupSize % 2 !== 0) throw new UserError(`--group-size must be even (rotations pair channels within a group), got ${s.groupSize}`);
  const limit = MAX_GROUP_SIZE[backend];
  if (limit !== undefined && s.groupSize > limit) throw new UserError(`--group-size ${s.groupSize} exceeds the ${backend} backend's limit of ${limit}`);
  if (s.method === 'paro' && s.batchSize > s.samples) {
    throw new UserError(`--batch-size ${s.batchSize} is larger than --samples ${s.samples}`);
  }
  if (cfg.numLayers < 1) throw new UserError('the model has no decoder layers (num_hidden_layers is 0)', { file });
  if (cfg.quantization) throw new UserError('the model is already quantized (config.json has quantization_config)', { file });
  const shapes = linearShapes(cfg);
  for (const k of LINEAR_KEYS) {
    const sh = shapes[k];
    if (sh.in % s.groupSize !== 0) {
      throw new UserError(`${LINEAR_NAMES[k]} has in_features ${sh.in}, not a multiple of the group size ${s.groupSize} (try --group-size 64 or 32)`, { file });
    }
    if (sh.out % PACK_FACTOR !== 0) throw new UserError(`${LINEAR_NAMES[k]} has out_features ${sh.out}, not a multiple of ${PACK_FACTOR} (AWQ packing)`, { file });
  }
}

/** The block optimizer's settings from the job's. */
export function optimizerSettings(s: QuantizeSettings, computeDtype: DType): OptimizerSettings {
  return {
    grid: { bits: s.bits, groupSize: s.groupSize }, computeDtype, epochs: s.epochs, batchSize: s.batchSize,
    lrAngle: s.lrAngle, lrChannelScale: s.lrChannelScale, lrWeight: s.lrWeight, lrQuantizer: s.lrQuantizer,
    weightDecay: s.weightDecay, betas: s.betas, eps: s.eps,
  };
}

export interface QuantizeJob {
  modelDir: string;
  outDir: string;
  /** Calibration text (read by method paro only). */
  calibFile: string;
  settings: QuantizeSettings;
  resume: boolean;
  force: boolean;
  /** Written to manifest.json. */
  toolVersion: string;
  argv?: string[];
}

export interface QuantizeHooks {
  onInfo?: (msg: string) => void;
  onWarn?: (msg: string) => void;
  onBlockStart?: (block: number, blocks: number) => void;
  onStep?: (block: number, p: BlockProgress) => void;
  onStageEnd?: (block: number, stage: 1 | 2, r: StageResult) => void;
  /** A block's packed tensors (also for blocks read back on resume), before X′ moves on. */
  onBlockPacked?: (block: number, packed: Record<LinearKey, PackedLinear>) => void;
  onBlockEnd?: (block: number, seconds: number) => void;
}

export interface BlockReport {
  block: number;
  seconds: number;
  resumed: boolean;
  stage1?: StageResult;
  stage2?: StageResult;
  epochs: EpochLog[];
}

export interface QuantizeReport {
  command: 'quantize';
  model: string;
  out: string;
  method: QuantMethod;
  backend: string;
  device: string;
  blocks: BlockReport[];
  calibrationTokens: number;
  seconds: number;
  /** Resolved settings (compute dtype resolved for the backend). */
  settings: Record<string, unknown>;
}

interface Progress {
  blocksDone: number;
  blocks: BlockReport[];
}

function blockFileName(l: number): string {
  return `block-${String(l).padStart(4, '0')}.safetensors`;
}

function writeBlock(file: string, packed: Record<LinearKey, PackedLinear>, prefixOf: (k: LinearKey) => string): void {
  const tensors = LINEAR_KEYS.flatMap((k) => packedLinearTensors(prefixOf(k), packed[k]));
  const tmp = file + '.tmp';
  writeSafetensors(tmp, tensors, { format: 'pt' });
  fs.renameSync(tmp, file);
}

function readBlock(file: string, prefixOf: (k: LinearKey) => string, groupSize: number): Record<LinearKey, PackedLinear> {
  const f = SafetensorsFile.open(file);
  try {
    const out = {} as Record<LinearKey, PackedLinear>;
    for (const k of LINEAR_KEYS) out[k] = readPackedLinear(f, prefixOf(k), groupSize);
    return out;
  } finally {
    f.close();
  }
}

/** The settings as reported (manifest, --json) and fingerprinted. */
function reportedSettings(s: QuantizeSettings, computeDtype: DType, calibFile: string): Record<string, unknown> {
  return {
    method: s.method, bits: s.bits, groupSize: s.groupSize, krot: s.krot, seed: s.seed,
    samples: s.samples, valSamples: s.valSamples, seqLen: s.seqLen, shuffleSeed: s.shuffle ? s.seed : null,
    epochs: s.epochs, batchSize: s.batchSize, computeDtype,
    lr: { angle: s.lrAngle, channelScale: s.lrChannelScale, weight: s.lrWeight, quantizer: s.lrQuantizer },
    weightDecay: s.weightDecay, betas: s.betas, eps: s.eps,
    calibFile: s.method === 'paro' ? path.basename(calibFile) : null,
  };
}

/** Calibration token ids [(samples + valSamples)·seqLen] of the windows (train then validation), and the corpus size. */
export function calibrationIds(modelDir: string, calibFile: string, cfg: ModelConfig, s: QuantizeSettings): { ids: Int32Array; tokens: number } {
  const job = { modelDir, calibFile };
  const T = s.seqLen;
  const nAll = s.samples + s.valSamples;
  const tok = loadTokenizer(job.modelDir);
  const docs = readTextDocuments(job.calibFile);
  const eos = cfg.eosTokenIds[0] ?? tok.eosTokenId;
  if (eos === null || eos === undefined) throw new UserError('cannot tell the end-of-text token: config.json has no eos_token_id', { file: job.modelDir });
  // Only as many tokens as the windows need (all of them when sampling windows at random).
  const shuffleSeed = s.shuffle ? s.seed : undefined;
  const tokens = tokenizeCorpus(docs, tok, eos, shuffleSeed === undefined ? { maxTokens: nAll * T } : {});
  let windows;
  try {
    windows = calibrationWindows(tokens, T, s.samples, s.valSamples, { shuffleSeed });
  } catch (e) {
    if (e instanceof UserError) throw new UserError(e.message, { file: job.calibFile });
    throw e;
  }
  const ids = new Int32Array(nAll * T);
  [...windows.train, ...windows.val].forEach((w, i) => ids.set(w, i * T));
  return { ids, tokens: tokens.length };
}

export async function runQuantizeJob(be: Backend, job: QuantizeJob, hooks: QuantizeHooks = {}): Promise<QuantizeReport> {
  const t0 = performance.now();
  const s = job.settings;
  const seconds: Record<string, number> = {};
  const inputs: Record<string, string> = { model: job.modelDir };
  if (s.method === 'paro') inputs.calib = job.calibFile;
  // Cheap checks first: the output path, the model's config against the settings.
  checkOutputPath({ out: job.outDir, kind: 'dir', inputs, force: job.force });
  checkModelDir(job.modelDir);
  const cfg = loadModelConfig(job.modelDir);
  checkQuantizeSettings(s, cfg, be.name, job.modelDir);
  const computeDtype = resolveComputeDtype(s.computeDtype, be.name);
  const opt = optimizerSettings(s, computeDtype);
  const ck = Checkpoint.open(job.modelDir);
  let rd: RunDir | null = null;
  let X: ActivationStore | null = null; // FP inputs of the current block
  let Xq: ActivationStore | null = null; // inputs from the quantized prefix
  let Y: ActivationStore | null = null; // FP outputs of the current block (the targets)
  try {
    if (!ck.has('model.layers.0.input_layernorm.weight')) {
      throw new UserError('no decoder layers found in the checkpoint (expected model.layers.0.*)', { file: job.modelDir });
    }
    // Names, dtypes and shapes of every tensor against config.json, before anything is hashed or computed.
    validateCheckpoint(ck, cfg);
    // What determines the result: the resume check compares it.
    const tHash = performance.now();
    const manifestInputs: ManifestInput[] = [describeModelDir('model', job.modelDir)];
    if (s.method === 'paro') manifestInputs.push(describeInput('calib', job.calibFile));
    seconds.hashInputs = (performance.now() - tHash) / 1000;
    const settings = reportedSettings(s, computeDtype, job.calibFile);
    const fp = { settings, inputs: Object.fromEntries(manifestInputs.map((i) => [i.role, inputIdentity(i)])), backend: be.name };
    rd = openRunDir({ out: job.outDir, kind: 'dir', tool: 'paro', command: 'quantize', inputs, force: job.force, resume: job.resume, fingerprint: fp });
    const run = rd;

    // Calibration activations (not needed by RTN).
    const tCal = performance.now();
    let calibrationTokens = 0;
    const T = s.seqLen;
    const nAll = s.samples + s.valSamples;
    const geoFor = geometryCache(T, ropeInvFreq(cfg));
    if (s.method === 'paro') {
      const { ids, tokens } = calibrationIds(job.modelDir, job.calibFile, cfg, s);
      calibrationTokens = tokens;
      const embed = loadEmbedding(be, ck, cfg, 'f32');
      if (be.hasNonFinite(embed)) throw new UserError('tensor model.embed_tokens.weight contains NaN or Inf values; the checkpoint is damaged', { file: job.modelDir });
      // Placement: on the device when X, X′, Y and one block's working set fit, else streamed from host memory.
      const storeBytes = nAll * T * cfg.hiddenSize * dtypeBytes(computeDtype);
      const working = blockWorkingBytes(cfg, s.batchSize, T, computeDtype);
      const { placement, fits, freeBytes } = chooseActivationPlacement(be, storeBytes, working, s.activations);
      if (!fits) {
        throw new UserError(
          `one decoder block needs about ${(working / 2 ** 30).toFixed(1)} GiB of device memory for optimization, ` +
            `but only ${((freeBytes ?? 0) / 2 ** 30).toFixed(1)} GiB are free; lower --batch-size or --seq-len, or use a larger GPU`,
        );
      }
      if (placement === 'host') hooks.onInfo?.(`calibration activations (${(3 * storeBytes / 2 ** 30).toFixed(1)} GiB) stream from host memory`);
      X = createStore(be, nAll * T, cfg.hiddenSize, computeDtype, placement);
      Xq = createStore(be, nAll * T, cfg.hiddenSize, computeDtype, placement);
      Y = createStore(be, nAll * T, cfg.hiddenSize, computeDtype, placement);
      embedInto(be, embed, ids, T, s.batchSize, [X, Xq]);
      be.free(embed);
    }
    seconds.calibration = (performance.now() - tCal) / 1000;

    let done = 0;
    let blockReports: BlockReport[] = [];
    if (run.resumed) {
      const prog = run.readProgress<Progress>();
      if (prog && (!isNonNegInt(prog.blocksDone) || !Array.isArray(prog.blocks) || prog.blocksDone > cfg.numLayers)) {
        throw new UserError('is corrupt (blocksDone/blocks); pass --force to discard the partial run and start over', { file: run.path('progress.json') });
      }
      done = prog?.blocksDone ?? 0;
      blockReports = (prog?.blocks ?? []).slice(0, done).map((b) => ({ ...b, resumed: true }));
      hooks.onInfo?.(`resuming after ${done} of ${cfg.numLayers} finished blocks`);
    } else if (job.resume) {
      hooks.onInfo?.('nothing to resume; starting from the first block');
    }
    const saveProgress = () => run.writeProgress({ blocksDone: done, blocks: blockReports } satisfies Progress);
    saveProgress();

    const tBlocks = performance.now();
    const prefixOf = (l: number) => (k: LinearKey) => `model.layers.${l}.${LINEAR_NAMES[k]}`;
    const packedAll = new Map<string, PackedLinear>();
    const pairCache: PairCache = new Map();
    for (let l = 0; l < cfg.numLayers; l++) {
      const tb = performance.now();
      hooks.onBlockStart?.(l, cfg.numLayers);
      const layer = loadLayerWeights(be, ck, cfg, l, 'f32');
      for (const k of LINEAR_KEYS) {
        if (be.hasNonFinite(layer[k].weight)) {
          throw new UserError(`tensor ${prefixOf(l)(k)}.weight contains NaN or Inf values; the checkpoint is damaged`, { file: job.modelDir });
        }
      }
      const resumed = l < done;
      if (X && Y) fpTargets(be, cfg, layer, X, Y, nAll, T, s.batchSize, computeDtype, geoFor);
      let packed: Record<LinearKey, PackedLinear>;
      let report: BlockReport;
      if (resumed) {
        packed = readBlock(run.path(blockFileName(l)), prefixOf(l), s.groupSize);
        report = blockReports[l];
      } else {
        const linears = initialLinears(be, layer, l, s.seed, s.krot, s.groupSize, pairCache);
        report = { block: l, seconds: 0, resumed: false, epochs: [] };
        if (s.method === 'paro' && Xq && Y) {
          const data: BlockData = { x: Xq, y: Y, nTrain: s.samples, nVal: s.valSamples, seqLen: T };
          const r = optimizeBlock(be, cfg, layer, linears, data, opt, geoFor, {
            onStep: (p) => hooks.onStep?.(l, p),
            onStageEnd: (stage, sr) => hooks.onStageEnd?.(l, stage, sr),
            onWarn: (m) => hooks.onWarn?.(`block ${l}: ${m}`),
          });
          Object.assign(report, r);
        }
        packed = packBlock(be, layer, linears, opt.grid);
        writeBlock(run.path(blockFileName(l)), packed, prefixOf(l));
      }
      for (const k of LINEAR_KEYS) packedAll.set(prefixOf(l)(k), packed[k]);
      hooks.onBlockPacked?.(l, packed);
      if (Xq) {
        const eff = effectiveBlock(be, packed);
        advanceQuantizedInputs(be, cfg, layer, eff, Xq, nAll, T, s.batchSize, geoFor);
        be.free(...Object.values(eff.weights), ...Object.values(eff.biases));
      }
      if (X && Y) [X, Y] = [Y, X]; // the targets become the next block's FP inputs
      freeLayerWeights(be, layer);
      if (!resumed) {
        report.seconds = (performance.now() - tb) / 1000;
        blockReports[l] = report;
        done = l + 1;
        saveProgress();
      }
      hooks.onBlockEnd?.(l, (performance.now() - tb) / 1000);
    }
    X?.free(); Xq?.free(); Y?.free();
    X = Xq = Y = null;
    seconds.blocks = (performance.now() - tBlocks) / 1000;

    // Assemble the checkpoint in the partial directory, then move it into place.
    const tExp = performance.now();
    const exp = writeQuantizedCheckpoint(run.partial, ck, packedAll);
    if (exp.fp16Overflows > 0) hooks.onWarn?.(`${exp.fp16Overflows} unquantized values exceed the fp16 range and were written as ±inf`);
    writeQuantizedConfig(run.partial, cfg.raw, { bits: s.bits, groupSize: s.groupSize, krot: s.krot });
    const side = copyModelFiles(job.modelDir, run.partial);
    if (side.skipped.length) hooks.onWarn?.(`not copied (links leading outside the model folder): ${side.skipped.join(', ')}`);
    for (const f of fs.readdirSync(run.partial)) if (f.startsWith('block-')) fs.rmSync(run.path(f));
    seconds.export = (performance.now() - tExp) / 1000;
    seconds.total = (performance.now() - t0) / 1000;
    const manifest = createManifest({
      tool: 'paro', version: job.toolVersion, command: 'quantize', argv: job.argv, settings, seed: s.seed,
      device: be.device, backend: be.name, inputs: manifestInputs,
      metrics: { calibrationTokens, blocks: blockReports, fp16Overflows: exp.fp16Overflows },
      seconds,
    });
    run.commit(manifest);
    return {
      command: 'quantize', model: job.modelDir, out: job.outDir, method: s.method, backend: be.name, device: be.device,
      blocks: blockReports, calibrationTokens, seconds: seconds.total, settings,
    };
  } catch (e) {
    X?.free(); Xq?.free(); Y?.free();
    // Bad input found mid-run: leave nothing behind (unless an earlier run's blocks were resumed). Other failures
    // (a crash, Ctrl-C, out of memory) keep the partial output for --resume.
    if (rd) {
      if (e instanceof UserError && !rd.resumed) rd.discard();
      else rd.release();
    }
    throw e;
  } finally {
    ck.close();
  }
}
