// The `paro quantize` job: settings (defaults defined once, every cross-parameter constraint checked before heavy
// work), the run directory (io/run-dir: partial folder, input hashes, fingerprint, resume, lock, manifest, atomic
// commit), the block loop over the compute steps of paroquant/quantize-steps, the checkpoint export and the report.
// Each finished block is saved in the partial directory, so an interrupted run resumes from the last finished block
// (activations are recomputed from the saved blocks: deterministic on the cpu backend). The output checkpoint is
// written block by block into its shards as blocks finish; on resume the shards are written again from the start.
// Data parallel (issue 12, a Collective of W ranks): every rank tokenizes the same windows and holds only its share
// of every batch (paroquant/window-shares); the block optimizer sums gradients and losses over the ranks, so every
// rank ends each block with the same packed weights. Rank 0 alone owns the run directory (lock, partial, manifest,
// the output) and reports through the hooks; the other ranks write nothing and stay quiet.
import * as fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Backend, DType } from '../engine/backend.js';
import { singleRank, type Collective } from '../engine/collective.js';
import { UserError } from '../errors.js';
import { Checkpoint } from '../io/checkpoint.js';
import { loadModelConfig, type ModelConfig } from '../io/config.js';
import { validateCheckpoint } from '../io/validate-checkpoint.js';
import { calibrationWindows, readTextDocuments, tokenizeCorpus } from '../io/datasets.js';
import { MAX_CODE_BITS, PACK_FACTOR, packedLinearTensors, readPackedLinear, type PackedLinear } from '../io/int4-format.js';
import { createManifest, describeInput, inputIdentity, type ManifestInput } from '../io/manifest.js';
import { checkOutputPath, openRunDir, type RunDir } from '../io/run-dir.js';
import { SafetensorsFile } from '../io/safetensors.js';
import { writeSafetensors } from '../io/safetensors-writer.js';
import { DEFAULT_MAX_SHARD_SIZE } from '../io/sharded-writer.js';
import { createScratchFile, freeDiskBytes, type PositionalFile } from '../io/positional-file.js';
import { loadTokenizer } from '../io/tokenizer.js';
import { geometryCache } from '../model/block.js';
import { checkModelDir } from '../model/load.js';
import { ropeInvFreq } from '../model/rope-freq.js';
import { LINEAR_KEYS, LINEAR_NAMES, freeLayerWeights, linearShapes, loadEmbedding, loadLayerWeights, type LinearKey } from '../model/weights.js';
import { createStore, planActivations, storeBytes, type ActivationStore, type Placement } from '../paroquant/activation-store.js';
import { largestShare, windowShares } from '../paroquant/window-shares.js';
import type { BlockData, BlockProgress, EpochLog, OptimizerSettings, StageResult } from '../paroquant/block-optimizer.js';
import {
  advanceQuantizedInputs, blockWorkingBytes, effectiveBlock, embedInto, fpTargets, initialLinears, optimizeBlock, packBlock, type PairCache,
} from '../paroquant/quantize-steps.js';
import { withDefaults } from './defaults.js';
import { describeModelDir } from './model-input.js';
import { QuantizedCheckpointWriter, copyModelFiles, quantizedLayout, writeQuantizedConfig } from './quantize-output.js';
import { broadcastPackedBlock } from './packed-broadcast.js';

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
  /** Where calibration activations live; auto: GPU, then host memory, then disk, as they fit (planActivations). */
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
  if (!['auto', 'device', 'host', 'disk'].includes(s.activations)) throw new UserError(`activations must be auto, device, host or disk, got "${String(s.activations)}"`);
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
  /** Largest output shard in bytes (default DEFAULT_MAX_SHARD_SIZE, 5 GB); one shard is written as model.safetensors. */
  maxShardSize?: number;
  /** Host memory the activation stores may take (default DEFAULT_HOST_MEMORY_FRACTION of the machine's memory). */
  maxHostMemory?: number;
  /** Folder of disk-backed activation stores (default: the partial output folder). */
  activationsDir?: string;
}

/** Default --max-host-memory: this share of os.totalmem() (the rest for the process, the page cache and others). */
export const DEFAULT_HOST_MEMORY_FRACTION = 0.75;

export interface QuantizeHooks {
  onInfo?: (msg: string) => void;
  onWarn?: (msg: string) => void;
  onBlockStart?: (block: number, blocks: number) => void;
  onStep?: (block: number, p: BlockProgress) => void;
  onStageEnd?: (block: number, stage: 1 | 2, r: StageResult) => void;
  /** A block's packed tensors (also for blocks read back on resume), before X′ moves on. */
  onBlockPacked?: (block: number, packed: Record<LinearKey, PackedLinear>) => void;
  /** resumed: the block was read back from an earlier run (only its activations were recomputed). */
  onBlockEnd?: (block: number, seconds: number, resumed: boolean) => void;
  /**
   * Progress of a long phase before the blocks: 'hashing' counts MiB of the model's files hashed (rank 0), 'capture'
   * calibration windows embedded.
   */
  onProgress?: (phase: 'hashing' | 'capture', done: number, total: number) => void;
}

/** Seconds of each part of one block. */
export interface BlockPhases {
  load: number;
  /** FP targets Y from X. */
  targets: number;
  stage1: number;
  stage2: number;
  /** Finalize + pack (or read back on resume). */
  finalize: number;
  /** The block's resume file and its tensors in the output shards. */
  write: number;
  /** X′ through the block as written. */
  propagate: number;
}

export interface BlockReport {
  block: number;
  seconds: number;
  resumed: boolean;
  stage1?: StageResult;
  stage2?: StageResult;
  epochs: EpochLog[];
  /** Seconds of this run's work on the block (a resumed block's are of the earlier run). */
  phases?: BlockPhases;
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
  /** Seconds per phase before and after the blocks: validate, hashInputs, tokenize, capture, blocks, write, total. */
  phases: Record<string, number>;
  /** Where each activation store lived ([FP path X→Y, X′]); empty for rtn. */
  activations: Placement[];
  /**
   * Peak device memory: the allocator's peak of live bytes where the backend exposes it (cuda memStats), else the most
   * in use (Backend.memoryInfo total − free) at the phase boundaries; null without a GPU.
   */
  peakDeviceBytes: number | null;
  /** Peak resident set size of the process (process.resourceUsage().maxRSS). */
  peakHostRssBytes: number;
  /** Batch reads of the disk-backed stores and how many of them the read-ahead had ready; null without disk stores. */
  diskReads: { prefetched: number; reads: number } | null;
  /** Files of the checkpoint: model.safetensors, or the shards and model.safetensors.index.json (rank 0 only). */
  files: string[];
  /** Ranks of the data-parallel run (1: one device). */
  worldSize: number;
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

const since = (t: number): number => (performance.now() - t) / 1000;

/**
 * The quantize job. With a Collective of several ranks every rank calls it with the same job; rank 0 writes the
 * output and calls the hooks, the others return their (unwritten) report.
 */
export async function runQuantizeJob(be: Backend, job: QuantizeJob, hooksIn: QuantizeHooks = {}, comm: Collective = singleRank()): Promise<QuantizeReport> {
  const t0 = performance.now();
  const s = job.settings;
  const lead = comm.rank === 0;
  const hooks: QuantizeHooks = lead ? hooksIn : {};
  const seconds: Record<string, number> = {};
  const inputs: Record<string, string> = { model: job.modelDir };
  if (s.method === 'paro') inputs.calib = job.calibFile;
  let peakDevice: number | null = null;
  const sampleDevice = () => {
    const m = be.memoryInfo?.();
    if (m) peakDevice = Math.max(peakDevice ?? 0, m.totalBytes - m.freeBytes);
  };
  // Cheap checks first: the output path (rank 0's, which writes it), the model's config against the settings.
  if (lead) checkOutputPath({ out: job.outDir, kind: 'dir', inputs, force: job.force });
  checkModelDir(job.modelDir);
  const cfg = loadModelConfig(job.modelDir);
  checkQuantizeSettings(s, cfg, be.name, job.modelDir);
  if (s.method === 'paro' && comm.worldSize > s.batchSize) {
    throw new UserError(`--batch-size ${s.batchSize} is smaller than the ${comm.worldSize} ranks of the run: each rank computes its share of every batch (use at most ${s.batchSize} ranks or a larger --batch-size)`);
  }
  const maxShardSize = job.maxShardSize ?? DEFAULT_MAX_SHARD_SIZE;
  if (!(Number.isInteger(maxShardSize) && maxShardSize > 0)) throw new UserError(`--max-shard-size must be a positive number of bytes, got ${String(maxShardSize)}`);
  const computeDtype = resolveComputeDtype(s.computeDtype, be.name);
  const opt = optimizerSettings(s, computeDtype);
  const T = s.seqLen;
  const nAll = s.samples + s.valSamples;
  // This rank's calibration windows (all of them on one rank) and the most of a batch it computes at once.
  const shares = windowShares(s.samples, s.valSamples, s.batchSize, comm.rank, comm.worldSize);
  const nLocal = shares.windows.length;
  // Two activation stores (not three): the FP path holds X and is overwritten by the block's targets Y batch by batch
  // (X is read only by the FP targets; Y is the next block's X), and X′ is advanced in place.
  const oneStore = storeBytes(nLocal * T, cfg.hiddenSize, computeDtype);
  if (job.activationsDir !== undefined && !(fs.existsSync(job.activationsDir) && fs.statSync(job.activationsDir).isDirectory())) {
    throw new UserError('--activations-dir is not an existing folder', { file: job.activationsDir });
  }
  let placements: Placement[] = [];
  if (s.method === 'paro') {
    const working = blockWorkingBytes(cfg, largestShare(s.batchSize, comm.worldSize), T, computeDtype, s.epochs[1] > 0);
    const maxHost = job.maxHostMemory ?? Math.floor(DEFAULT_HOST_MEMORY_FRACTION * os.totalmem());
    const plan = planActivations(2, oneStore, working, s.activations, {
      freeDeviceBytes: be.memoryInfo?.().freeBytes, maxHostBytes: maxHost, freeDiskBytes: freeDiskBytes(path.resolve(job.activationsDir ?? path.dirname(path.resolve(job.outDir)))),
    });
    if (!plan.ok) {
      throw new UserError(`${plan.reason}; lower --batch-size, --seq-len or --samples, raise --max-host-memory, or use --activations disk (--activations-dir)`);
    }
    placements = plan.placements;
  }
  const ck = Checkpoint.open(job.modelDir);
  let rd: RunDir | null = null;
  let Xf: ActivationStore | null = null; // FP path: inputs X of the current block, then its outputs Y (the targets)
  let Xq: ActivationStore | null = null; // X′: inputs from the quantized prefix
  let out: QuantizedCheckpointWriter | null = null;
  const diskFiles: PositionalFile[] = [];
  try {
    const tVal = performance.now();
    if (!ck.has('model.layers.0.input_layernorm.weight')) {
      throw new UserError('no decoder layers found in the checkpoint (expected model.layers.0.*)', { file: job.modelDir });
    }
    // Names, dtypes and shapes of every tensor against config.json, before anything is hashed or computed.
    validateCheckpoint(ck, cfg);
    const layout = quantizedLayout(ck, cfg, { groupSize: s.groupSize, krot: s.krot });
    seconds.validate = since(tVal);
    // What determines the result: the resume check compares it. Only rank 0 hashes, holds the lock and writes.
    const tHash = performance.now();
    const settings = reportedSettings(s, computeDtype, job.calibFile);
    const manifestInputs: ManifestInput[] = [];
    if (lead) {
      const inputBytes = ck.files().reduce((a, f) => a + fs.statSync(f).size, 0);
      hooks.onInfo?.(`hashing the inputs (${(inputBytes / 1e9).toFixed(2)} GB of weights)`);
      // Progress in MiB: hashing a 140 GB checkpoint takes minutes. The side files (configs, tokenizer) are counted on
      // top of the weights, so the count is capped at the total and completed at the end.
      const totalMiB = Math.max(1, Math.ceil(inputBytes / 2 ** 20));
      let hashed = 0;
      manifestInputs.push(describeModelDir('model', job.modelDir, (n) => {
        hashed += n;
        hooks.onProgress?.('hashing', Math.min(totalMiB - 1, Math.floor(hashed / 2 ** 20)), totalMiB);
      }));
      hooks.onProgress?.('hashing', totalMiB, totalMiB);
      if (s.method === 'paro') manifestInputs.push(describeInput('calib', job.calibFile));
      const fp = { settings, inputs: Object.fromEntries(manifestInputs.map((i) => [i.role, inputIdentity(i)])), backend: be.name };
      rd = openRunDir({ out: job.outDir, kind: 'dir', tool: 'paro', command: 'quantize', inputs, force: job.force, resume: job.resume, fingerprint: fp });
    }
    seconds.hashInputs = since(tHash);
    const run = rd;

    // Calibration activations (not needed by RTN).
    let calibrationTokens = 0;
    const geoFor = geometryCache(T, ropeInvFreq(cfg));
    seconds.tokenize = 0;
    seconds.capture = 0;
    if (s.method === 'paro') {
      const tTok = performance.now();
      const { ids: allIds, tokens } = calibrationIds(job.modelDir, job.calibFile, cfg, s);
      calibrationTokens = tokens;
      // This rank's windows, in its stores' order (every window in order on one rank).
      const ids = comm.worldSize === 1 ? allIds : new Int32Array(nLocal * T);
      if (ids !== allIds) shares.windows.forEach((w, i) => ids.set(allIds.subarray(w * T, (w + 1) * T), i * T));
      seconds.tokenize = since(tTok);
      const tCap = performance.now();
      const where = placements.map((p, i) => `${['X/Y', 'X′'][i]} ${p === 'device' ? 'on the GPU' : p === 'host' ? 'in host memory' : 'on disk'}`).join(', ');
      hooks.onInfo?.(`calibration activations: 2 stores of ${(oneStore / 2 ** 30).toFixed(1)} GiB (${where})`);
      // Rank 0's default is its partial folder; the other ranks have none: beside the output, named by process.
      const diskDir = job.activationsDir ?? run?.partial ?? path.dirname(path.resolve(job.outDir));
      const ownName = job.activationsDir !== undefined || !run;
      const makeStore = (i: number): ActivationStore => {
        const pl = placements[i];
        const file = pl === 'disk'
          ? createScratchFile(path.join(diskDir, ownName ? `paro-activations-${process.pid}-${i}.bin` : `activations-${i}.bin`), oneStore)
          : undefined;
        if (file) diskFiles.push(file);
        return createStore(be, nLocal * T, cfg.hiddenSize, computeDtype, pl, file);
      };
      Xf = makeStore(0);
      Xq = makeStore(1);
      // As stored (bf16 for real checkpoints): half the host and device memory of f32; the rows are cast to the store
      // dtype exactly as before (bf16 → f32 is exact).
      const embed = loadEmbedding(be, ck, cfg, 'native');
      if (be.hasNonFinite(embed)) throw new UserError('tensor model.embed_tokens.weight contains NaN or Inf values; the checkpoint is damaged', { file: job.modelDir });
      sampleDevice();
      embedInto(be, embed, ids, T, s.batchSize, [Xf, Xq], (d, n) => hooks.onProgress?.('capture', d, n));
      be.free(embed);
      seconds.capture = since(tCap);
    }

    let done = 0;
    let blockReports: BlockReport[] = [];
    if (run?.resumed) {
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
    // Blocks rank 0 resumes: the other ranks receive their packed weights from it (broadcastPackedBlock).
    if (comm.worldSize > 1) done = comm.allReduceNumbers(Float64Array.of(lead ? done : 0), 'sum')[0];
    const saveProgress = () => run?.writeProgress({ blocksDone: done, blocks: blockReports } satisfies Progress);
    saveProgress();

    // The output, written as blocks finish (from the start again on resume: the resumed blocks come from their files).
    out = run ? new QuantizedCheckpointWriter(run.partial, ck, layout, maxShardSize) : null;
    const writer = out;
    const tBlocks = performance.now();
    const prefixOf = (l: number) => (k: LinearKey) => `model.layers.${l}.${LINEAR_NAMES[k]}`;
    const pairCache: PairCache = new Map();
    for (let l = 0; l < cfg.numLayers; l++) {
      const tb = performance.now();
      const ph: BlockPhases = { load: 0, targets: 0, stage1: 0, stage2: 0, finalize: 0, write: 0, propagate: 0 };
      let t = performance.now();
      const lap = (k: keyof BlockPhases) => {
        const now = performance.now();
        ph[k] += (now - t) / 1000;
        t = now;
        sampleDevice();
      };
      hooks.onBlockStart?.(l, cfg.numLayers);
      const layer = loadLayerWeights(be, ck, cfg, l, 'f32');
      for (const k of LINEAR_KEYS) {
        if (be.hasNonFinite(layer[k].weight)) {
          throw new UserError(`tensor ${prefixOf(l)(k)}.weight contains NaN or Inf values; the checkpoint is damaged`, { file: job.modelDir });
        }
      }
      lap('load');
      const resumed = l < done;
      // Y overwrites X in place: X is not read again once the block's targets are computed.
      if (Xf) fpTargets(be, cfg, layer, Xf, Xf, nLocal, T, s.batchSize, computeDtype, geoFor);
      lap('targets');
      let packed: Record<LinearKey, PackedLinear>;
      let report: BlockReport;
      if (resumed) {
        const read = run ? readBlock(run.path(blockFileName(l)), prefixOf(l), s.groupSize) : null;
        packed = comm.worldSize > 1 ? broadcastPackedBlock(be, comm, read, layer, s.groupSize, s.krot) : read!;
        report = blockReports[l];
        lap('finalize');
      } else {
        const linears = initialLinears(be, layer, l, s.seed, s.krot, s.groupSize, pairCache);
        report = { block: l, seconds: 0, resumed: false, epochs: [] };
        if (s.method === 'paro' && Xq && Xf) {
          const data: BlockData = { x: Xq, y: Xf, nTrain: s.samples, nVal: s.valSamples, seqLen: T };
          const r = optimizeBlock(be, cfg, layer, linears, data, opt, geoFor, {
            onStep: (p) => hooks.onStep?.(l, p),
            onStageEnd: (stage, sr) => {
              lap(stage === 1 ? 'stage1' : 'stage2');
              hooks.onStageEnd?.(l, stage, sr);
            },
            onWarn: (m) => hooks.onWarn?.(`block ${l}: ${m}`),
          }, comm);
          Object.assign(report, r);
        }
        packed = packBlock(be, layer, linears, opt.grid);
        lap('finalize');
        if (run) writeBlock(run.path(blockFileName(l)), packed, prefixOf(l));
      }
      writer?.writeBlock(l, packed);
      lap('write');
      hooks.onBlockPacked?.(l, packed);
      if (Xq) {
        const eff = effectiveBlock(be, packed);
        advanceQuantizedInputs(be, cfg, layer, eff, Xq, nLocal, T, s.batchSize, geoFor);
        be.free(...Object.values(eff.weights), ...Object.values(eff.biases));
      }
      freeLayerWeights(be, layer);
      lap('propagate');
      if (!resumed) {
        report.seconds = since(tb);
        report.phases = ph;
        blockReports[l] = report;
        done = l + 1;
        saveProgress();
      }
      hooks.onBlockEnd?.(l, since(tb), resumed);
    }
    Xf?.free(); Xq?.free();
    Xf = Xq = null;
    seconds.blocks = since(tBlocks);
    // Rank 0 commits only once every rank got through every block (a rank that failed ends the run before).
    comm.barrier();
    if (!run || !writer) {
      comm.barrier(); // returns once rank 0 has committed the output (a later step may read it)
      seconds.total = since(t0);
      return {
        command: 'quantize', model: job.modelDir, out: job.outDir, method: s.method, backend: be.name, device: be.device,
        blocks: blockReports, calibrationTokens, seconds: seconds.total, phases: seconds, activations: placements,
        peakDeviceBytes: peakDevice, peakHostRssBytes: process.resourceUsage().maxRSS * 1024, diskReads: null, files: [], worldSize: comm.worldSize, settings,
      };
    }

    // The tensors outside the blocks (streamed from the source), the index, config and side files; then into place.
    const tExp = performance.now();
    writer.finish();
    out = null;
    if (writer.fp16Overflows > 0) hooks.onWarn?.(`${writer.fp16Overflows} unquantized values exceed the fp16 range and were written as ±inf`);
    writeQuantizedConfig(run.partial, cfg.raw, { bits: s.bits, groupSize: s.groupSize, krot: s.krot });
    const side = copyModelFiles(job.modelDir, run.partial);
    if (side.skipped.length) hooks.onWarn?.(`not copied (links leading outside the model folder): ${side.skipped.join(', ')}`);
    for (const f of fs.readdirSync(run.partial)) if (f.startsWith('block-')) fs.rmSync(run.path(f));
    seconds.write = since(tExp);
    seconds.total = since(t0);
    const peakHostRssBytes = process.resourceUsage().maxRSS * 1024;
    // Batch reads of disk stores, and how many the read-ahead served (a GPU run checks that it keeps up).
    const diskReads = diskFiles.length ? diskFiles.map((f) => f.stats()).reduce((a, b) => ({ prefetched: a.prefetched + b.prefetched, reads: a.reads + b.reads })) : null;
    // The allocator's own peak of live bytes where the backend exposes it (cuda), else the sampled in-use memory.
    const allocatorPeak = (be as Backend & { memStats?: () => { peakBytes: number } }).memStats?.().peakBytes;
    if (allocatorPeak !== undefined) peakDevice = allocatorPeak;
    const manifest = createManifest({
      tool: 'paro', version: job.toolVersion, command: 'quantize', argv: job.argv, settings, seed: s.seed,
      device: be.device, backend: be.name, inputs: manifestInputs,
      metrics: {
        calibrationTokens, blocks: blockReports, fp16Overflows: writer.fp16Overflows, activations: placements, peakDeviceBytes: peakDevice, peakHostRssBytes,
        worldSize: comm.worldSize,
      },
      seconds,
    });
    run.commit(manifest);
    comm.barrier();
    return {
      command: 'quantize', model: job.modelDir, out: job.outDir, method: s.method, backend: be.name, device: be.device,
      blocks: blockReports, calibrationTokens, seconds: seconds.total, phases: seconds, activations: placements,
      peakDeviceBytes: peakDevice, peakHostRssBytes, diskReads, files: writer.files, worldSize: comm.worldSize, settings,
    };
  } catch (e) {
    Xf?.free(); Xq?.free();
    out?.abort();
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
