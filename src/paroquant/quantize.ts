// `paro quantize` end to end (spec §6.1): calibration windows → embeddings → per decoder block: FP targets Y,
// stage 1 + stage 2 on X′ (inputs from the already-quantized prefix), finalize + pack, X′ through the quantized block
// → checkpoint. Each finished block is saved in the partial output directory, so an interrupted run resumes from the
// last finished block (activations are recomputed from the saved blocks: deterministic on the cpu backend).
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Backend, DType, Tensor } from '../engine/backend.js';
import { UserError } from '../errors.js';
import { Checkpoint } from '../io/checkpoint.js';
import { loadModelConfig, type ModelConfig } from '../io/config.js';
import { calibrationWindows, readTextDocuments, tokenizeCorpus } from '../io/datasets.js';
import { SafetensorsFile } from '../io/safetensors.js';
import { writeSafetensors } from '../io/safetensors-writer.js';
import { loadTokenizer } from '../io/tokenizer.js';
import { blockForward, geometryCache, type BlockGeometry, type BlockParams } from '../model/block.js';
import { checkModelDir } from '../model/load.js';
import { ropeInvFreq } from '../model/rope-freq.js';
import {
  LINEAR_KEYS, LINEAR_NAMES, freeLayerWeights, linearShapes, loadEmbedding, loadLayerWeights, type LayerWeights, type LinearKey,
} from '../model/weights.js';
import { chooseActivationPlacement, createStore, dtypeBytes, type ActivationStore, type Placement } from './activation-store.js';
import { BlockOptimizer, DEFAULT_OPTIMIZER, type BlockData, type BlockProgress, type EpochLog, type OptimizerSettings, type StageResult } from './block-optimizer.js';
import { copyModelFiles, writeQuantizedCheckpoint, writeQuantizedConfig } from './export.js';
import { biasTensor, effectiveWeight, packLinear, type PackedLinear } from './finalize.js';
import { selectPairs } from './pairs.js';
import type { ParoLinear } from './transform.js';

export type QuantMethod = 'paro' | 'rtn';

export interface QuantizeSettings {
  modelDir: string;
  outDir: string;
  calibFile: string;
  samples: number;
  seqLen: number;
  valSamples: number;
  shuffleSeed?: number;
  method: QuantMethod;
  seed: number;
  krot: number;
  optimizer: OptimizerSettings;
  resume: boolean;
  force: boolean;
  /** Written to manifest.json. */
  toolVersion: string;
  /** Where calibration activations live (default auto: device when they fit). */
  activations?: Placement | 'auto';
}

export interface QuantizeHooks {
  onInfo?: (msg: string) => void;
  onWarn?: (msg: string) => void;
  onBlockStart?: (block: number, blocks: number) => void;
  onStep?: (block: number, p: BlockProgress) => void;
  onStageEnd?: (block: number, stage: 1 | 2, r: StageResult) => void;
  onBlockEnd?: (block: number, seconds: number) => void;
  /** Keep the effective (fake-quantized) weights of every block, for comparing with the written checkpoint. */
  keepEffectiveWeights?: boolean;
  /** Testing aid: throw after this many newly finished blocks, as an interruption would. */
  interruptAfterBlocks?: number;
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
  settings: Record<string, unknown>;
  /** Effective weights Ŵ per block and linear, when hooks.keepEffectiveWeights. */
  effective?: { weights: Record<LinearKey, Tensor>; biases: Partial<Record<LinearKey, Tensor>> }[];
}

const PARTIAL_SUFFIX = '.partial';
const PROGRESS_FILE = 'progress.json';

function blockFile(dir: string, l: number): string {
  return path.join(dir, `block-${String(l).padStart(4, '0')}.safetensors`);
}

async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  await new Promise<void>((resolve, reject) => {
    createReadStream(file).on('data', (d) => h.update(d)).on('end', () => resolve()).on('error', reject);
  });
  return h.digest('hex');
}

/** Checks before any work: shapes the format can hold, decoder layers present. */
export function validateForQuantization(cfg: ModelConfig, ck: Checkpoint, groupSize: number, dir: string): void {
  if (cfg.numLayers < 1) throw new UserError('the model has no decoder layers (num_hidden_layers is 0)', { file: dir });
  if (!ck.has('model.layers.0.input_layernorm.weight')) {
    throw new UserError('no decoder layers found in the checkpoint (expected model.layers.0.*)', { file: dir });
  }
  if (cfg.quantization) throw new UserError('the model is already quantized (config.json has quantization_config)', { file: dir });
  const shapes = linearShapes(cfg);
  for (const k of LINEAR_KEYS) {
    const s = shapes[k];
    if (s.in % groupSize !== 0) {
      throw new UserError(`${LINEAR_NAMES[k]} has in_features ${s.in}, not a multiple of the group size ${groupSize} (try --group-size 64 or 32)`, { file: dir });
    }
    if (s.out % 8 !== 0) throw new UserError(`${LINEAR_NAMES[k]} has out_features ${s.out}, not a multiple of 8 (AWQ packing)`, { file: dir });
  }
}

/** Read a finished block back from the partial directory. */
function readBlock(file: string, prefixOf: (k: LinearKey) => string, krot: number, groupSize: number): Record<LinearKey, PackedLinear> {
  const f = SafetensorsFile.open(file);
  try {
    const out = {} as Record<LinearKey, PackedLinear>;
    for (const k of LINEAR_KEYS) {
      const p = prefixOf(k);
      const [I, O8] = f.info(`${p}.qweight`).shape;
      out[k] = {
        inFeatures: I, outFeatures: O8 * 8, krot, groupSize,
        qweight: f.readI32(`${p}.qweight`), qzeros: f.readI32(`${p}.qzeros`), scales: f.readRaw16(`${p}.scales`),
        theta: f.readRaw16(`${p}.theta`), pairs: Int16Array.from(f.readI32(`${p}.pairs`)),
        channelScales: f.readRaw16(`${p}.channel_scales`), bias: f.has(`${p}.bias`) ? f.readRaw16(`${p}.bias`) : undefined,
      };
    }
    return out;
  } finally {
    f.close();
  }
}

function writeBlock(file: string, packed: Record<LinearKey, PackedLinear>, prefixOf: (k: LinearKey) => string): void {
  const tensors = [];
  for (const k of LINEAR_KEYS) {
    const p = packed[k];
    const pre = prefixOf(k);
    const I = p.inFeatures;
    const O = p.outFeatures;
    const G = I / p.groupSize;
    tensors.push(
      { name: `${pre}.qweight`, dtype: 'I32' as const, shape: [I, O / 8], data: p.qweight },
      { name: `${pre}.qzeros`, dtype: 'I32' as const, shape: [G, O / 8], data: p.qzeros },
      { name: `${pre}.scales`, dtype: 'F16' as const, shape: [G, O], data: p.scales },
      { name: `${pre}.theta`, dtype: 'F16' as const, shape: [p.krot, I / 2], data: p.theta },
      { name: `${pre}.pairs`, dtype: 'I16' as const, shape: [p.krot, I], data: p.pairs },
      { name: `${pre}.channel_scales`, dtype: 'F16' as const, shape: [1, I], data: p.channelScales },
    );
    if (p.bias) tensors.push({ name: `${pre}.bias`, dtype: 'F16' as const, shape: [O], data: p.bias });
  }
  const tmp = file + '.tmp';
  writeSafetensors(tmp, tensors, { format: 'pt' });
  renameSync(tmp, file);
}

/** Run a block (dense weights) over all samples of the store x in batches, writing the outputs into y. */
function runBlock(
  be: Backend, cfg: ModelConfig, p: BlockParams, x: ActivationStore, y: ActivationStore, nSamples: number, seqLen: number, batch: number,
  geoFor: (n: number) => BlockGeometry,
): void {
  for (let s0 = 0; s0 < nSamples; s0 += batch) {
    const n = Math.min(batch, nSamples - s0);
    const xb = x.read(s0 * seqLen, n * seqLen);
    const { y: yb } = blockForward(be, cfg, p, xb, geoFor(n), false);
    y.write(s0 * seqLen, yb);
    be.free(xb, yb);
  }
}

/** The FP block with its weights in the compute dtype (copies when a cast is needed; free with freeCastWeights). */
function fpParams(be: Backend, layer: LayerWeights, dtype: DType): BlockParams {
  const weights = {} as Record<LinearKey, Tensor>;
  const biases: Partial<Record<LinearKey, Tensor>> = {};
  for (const k of LINEAR_KEYS) {
    weights[k] = layer[k].weight.dtype === dtype ? layer[k].weight : be.cast(layer[k].weight, dtype);
    if (layer[k].bias) biases[k] = layer[k].bias;
  }
  return { inputNorm: layer.inputNorm, postNorm: layer.postNorm, qNorm: layer.qNorm, kNorm: layer.kNorm, weights, biases };
}

function freeCastWeights(be: Backend, p: BlockParams, layer: LayerWeights): void {
  for (const k of LINEAR_KEYS) if (p.weights[k] !== layer[k].weight) be.free(p.weights[k]);
}

export async function quantize(be: Backend, s: QuantizeSettings, hooks: QuantizeHooks = {}): Promise<QuantizeReport> {
  const t0 = performance.now();
  const grid = s.optimizer.grid;
  checkModelDir(s.modelDir);
  const cfg = loadModelConfig(s.modelDir);
  const ck = Checkpoint.open(s.modelDir);
  try {
    validateForQuantization(cfg, ck, grid.groupSize, s.modelDir);
    if (existsSync(s.outDir) && !s.force) throw new UserError('output exists; pass --force to overwrite', { file: s.outDir });
    const partial = s.outDir.replace(/[\\/]+$/, '') + PARTIAL_SUFFIX;

    // What determines the result: the resume check compares it.
    const inputHashes: Record<string, string> = {};
    for (const f of readdirSync(s.modelDir).filter((n) => n.endsWith('.safetensors') || n === 'config.json').sort()) {
      inputHashes[f] = await sha256File(path.join(s.modelDir, f));
    }
    if (s.method === 'paro') inputHashes['calibration'] = await sha256File(s.calibFile);
    const settings = {
      method: s.method, bits: grid.bits, groupSize: grid.groupSize, krot: s.krot, seed: s.seed,
      samples: s.samples, valSamples: s.valSamples, seqLen: s.seqLen, shuffleSeed: s.shuffleSeed ?? null,
      epochs: s.optimizer.epochs, batchSize: s.optimizer.batchSize, computeDtype: s.optimizer.computeDtype, angleGradient: s.optimizer.angleGradient,
      lr: { angle: s.optimizer.lrAngle, channelScale: s.optimizer.lrChannelScale, weight: s.optimizer.lrWeight, quantizer: s.optimizer.lrQuantizer },
      weightDecay: s.optimizer.weightDecay, betas: s.optimizer.betas, eps: s.optimizer.eps,
      calibFile: s.method === 'paro' ? path.basename(s.calibFile) : null,
    };
    const fingerprint = createHash('sha256').update(JSON.stringify({ settings, inputHashes, backend: be.name })).digest('hex');

    // Calibration activations (not needed by RTN).
    let calibrationTokens = 0;
    let placement: Placement = 'device';
    let X: ActivationStore | null = null; // FP inputs of the current block
    let Xq: ActivationStore | null = null; // inputs from the quantized prefix
    let Y: ActivationStore | null = null; // FP outputs of the current block (the targets)
    const T = s.seqLen;
    const nAll = s.samples + s.valSamples;
    const invFreq = ropeInvFreq(cfg);
    const geoFor = geometryCache(T, invFreq);
    if (s.method === 'paro') {
      const tok = loadTokenizer(s.modelDir);
      const docs = readTextDocuments(s.calibFile);
      const eos = cfg.eosTokenIds[0] ?? tok.eosTokenId;
      if (eos === null || eos === undefined) throw new UserError('cannot tell the end-of-text token: config.json has no eos_token_id', { file: s.modelDir });
      // Only as many tokens as the windows need (all of them when sampling windows at random).
      const tokens = tokenizeCorpus(docs, tok, eos, s.shuffleSeed === undefined ? { maxTokens: nAll * T } : {});
      let windows;
      try {
        windows = calibrationWindows(tokens, T, s.samples, s.valSamples, { shuffleSeed: s.shuffleSeed });
      } catch (e) {
        if (e instanceof UserError) throw new UserError(e.message, { file: s.calibFile });
        throw e;
      }
      calibrationTokens = tokens.length;
      const ids = new Int32Array(nAll * T);
      [...windows.train, ...windows.val].forEach((w, i) => ids.set(w, i * T));
      const embed = loadEmbedding(be, ck, cfg, 'f32');
      if (be.hasNonFinite(embed)) throw new UserError('tensor model.embed_tokens.weight contains NaN or Inf values; the checkpoint is damaged', { file: s.modelDir });
      // Placement: on the device when X, X′, Y and one block's working set fit, else streamed from host memory.
      const H = cfg.hiddenSize;
      const dt = s.optimizer.computeDtype;
      const storeBytes = nAll * T * H * dtypeBytes(dt);
      const sh = linearShapes(cfg);
      const params = LINEAR_KEYS.reduce((a, k) => a + sh[k].out * sh[k].in, 0);
      const working = 48 * params + 2 * (10 * H + 3 * cfg.intermediateSize) * s.optimizer.batchSize * T * Math.max(4, dtypeBytes(dt));
      placement = chooseActivationPlacement(be, storeBytes, working, s.activations ?? 'auto');
      if (placement === 'host') hooks.onInfo?.(`calibration activations (${(3 * storeBytes / 2 ** 30).toFixed(1)} GiB) stream from host memory`);
      X = createStore(be, nAll * T, H, dt, placement);
      Xq = createStore(be, nAll * T, H, dt, placement);
      Y = createStore(be, nAll * T, H, dt, placement);
      for (let s0 = 0; s0 < nAll; s0 += s.optimizer.batchSize) {
        const n = Math.min(s.optimizer.batchSize, nAll - s0);
        const e32 = be.gatherRows(embed, ids.subarray(s0 * T, (s0 + n) * T));
        const e = be.cast(e32, dt);
        X.write(s0 * T, e);
        Xq.write(s0 * T, e);
        be.free(e32, e);
      }
      be.free(embed);
    }

    let createdPartial = false;
    let done = 0;
    let blockReports: BlockReport[] = [];
    const progressPath = path.join(partial, PROGRESS_FILE);
    if (s.resume && existsSync(progressPath)) {
      const prog = JSON.parse(readFileSync(progressPath, 'utf8')) as { fingerprint: string; blocksDone: number; blocks: BlockReport[] };
      if (prog.fingerprint !== fingerprint) {
        throw new UserError('the interrupted run in this directory used other inputs or settings; rerun without --resume to start over', { file: partial });
      }
      done = prog.blocksDone;
      blockReports = prog.blocks.map((b) => ({ ...b, resumed: true }));
      hooks.onInfo?.(`resuming after ${done} of ${cfg.numLayers} finished blocks`);
    } else {
      if (s.resume) hooks.onInfo?.('nothing to resume; starting from the first block');
      rmSync(partial, { recursive: true, force: true });
      mkdirSync(partial, { recursive: true });
      createdPartial = true;
    }
    try {
      const saveProgress = () => {
        writeFileSync(progressPath + '.tmp', JSON.stringify({ fingerprint, blocksDone: done, blocks: blockReports }, null, 1));
        renameSync(progressPath + '.tmp', progressPath);
      };
      saveProgress();

      const prefixOf = (l: number) => (k: LinearKey) => `model.layers.${l}.${LINEAR_NAMES[k]}`;
      const packedAll = new Map<string, PackedLinear>();
      const effective: QuantizeReport['effective'] = hooks.keepEffectiveWeights ? [] : undefined;

      const pairCache = new Map<string, { pairs: Int32Array; keep: Float32Array }>();
      let newlyDone = 0;
      for (let l = 0; l < cfg.numLayers; l++) {
        const tb = performance.now();
        hooks.onBlockStart?.(l, cfg.numLayers);
        const layer = loadLayerWeights(be, ck, cfg, l, 'f32');
        for (const k of LINEAR_KEYS) {
          if (be.hasNonFinite(layer[k].weight)) {
            throw new UserError(`tensor ${prefixOf(l)(k)}.weight contains NaN or Inf values; the checkpoint is damaged`, { file: s.modelDir });
          }
        }
        let packed: Record<LinearKey, PackedLinear>;
        let report: BlockReport;
        const resumed = l < done;
        if (X && Y) {
          const fp = fpParams(be, layer, s.optimizer.computeDtype);
          runBlock(be, cfg, fp, X, Y, nAll, T, s.optimizer.batchSize, geoFor);
          freeCastWeights(be, fp, layer);
        }
        if (resumed) {
          packed = readBlock(blockFile(partial, l), prefixOf(l), s.krot, grid.groupSize);
          report = blockReports[l];
        } else {
          const linears = {} as Record<LinearKey, ParoLinear>;
          for (const k of LINEAR_KEYS) {
            const lw = layer[k];
            const I = lw.inFeatures;
            // Spec §3: a linear of block l uses seed base + l; linears with equal in_features share the pairs.
            let pc = pairCache.get(`${l}:${I}`);
            if (!pc) {
              const sel = selectPairs(I, s.seed + l, { krot: s.krot, groupSize: grid.groupSize });
              pc = { pairs: sel.pairs, keep: Float32Array.from(sel.mask, (m) => 1 - m) };
              pairCache.set(`${l}:${I}`, pc);
            }
            linears[k] = {
              outFeatures: lw.outFeatures, inFeatures: I, W: lw.weight, bias: lw.bias,
              alpha: be.fromHost(new Float32Array(I).fill(1), [I]),
              theta: be.zeros([s.krot, I / 2]),
              pairs: be.fromHost(pc.pairs, [s.krot, I], 'i32'),
              thetaKeep: be.fromHost(pc.keep, [pc.keep.length]),
              krot: s.krot,
            };
          }
          report = { block: l, seconds: 0, resumed: false, epochs: [] };
          if (s.method === 'paro' && X && Xq && Y) {
            const data: BlockData = { x: Xq, y: Y, nTrain: s.samples, nVal: s.valSamples, seqLen: T };
            const norms = { inputNorm: layer.inputNorm, postNorm: layer.postNorm, qNorm: layer.qNorm, kNorm: layer.kNorm };
            const opt = new BlockOptimizer(be, cfg, { norms, linears }, data, s.optimizer, geoFor,
              (p) => hooks.onStep?.(l, p), (m) => hooks.onWarn?.(`block ${l}: ${m}`));
            if (s.optimizer.epochs[0] > 0) {
              report.stage1 = opt.runStage(1);
              hooks.onStageEnd?.(l, 1, report.stage1);
            }
            if (s.optimizer.epochs[1] > 0) {
              report.stage2 = opt.runStage(2);
              hooks.onStageEnd?.(l, 2, report.stage2);
            }
            report.epochs = opt.log;
          }
          packed = {} as Record<LinearKey, PackedLinear>;
          for (const k of LINEAR_KEYS) {
            packed[k] = packLinear(be, linears[k], grid);
            const lin = linears[k];
            be.free(lin.alpha, lin.theta, lin.pairs, lin.thetaKeep, lin.scale, lin.zpf);
            if (lin.W !== layer[k].weight) be.free(lin.W);
          }
          writeBlock(blockFile(partial, l), packed, prefixOf(l));
        }
        for (const k of LINEAR_KEYS) packedAll.set(prefixOf(l)(k), packed[k]);
        // X′ through the block as written: effective weights from the packed tensors.
        if (Xq || effective) {
          const weights = {} as Record<LinearKey, Tensor>;
          const biases: Partial<Record<LinearKey, Tensor>> = {};
          for (const k of LINEAR_KEYS) {
            weights[k] = effectiveWeight(be, packed[k]);
            const b = biasTensor(be, packed[k]);
            if (b) biases[k] = b;
          }
          if (Xq) {
            // The block as written: norms in fp16 too (spec §6.7: X′ comes from the fp16 block).
            const h = (t?: Tensor) => (t ? be.cast(t, 'f16') : undefined);
            const p: BlockParams = { inputNorm: h(layer.inputNorm)!, postNorm: h(layer.postNorm)!, qNorm: h(layer.qNorm), kNorm: h(layer.kNorm), weights, biases };
            // In place: each batch is read before its rows are overwritten.
            runBlock(be, cfg, p, Xq, Xq, nAll, T, s.optimizer.batchSize, geoFor);
            be.free(p.inputNorm, p.postNorm, p.qNorm, p.kNorm);
          }
          if (effective) effective.push({ weights, biases });
          else be.free(...Object.values(weights), ...Object.values(biases));
        }
        if (X && Y) [X, Y] = [Y, X]; // the targets become the next block's FP inputs
        freeLayerWeights(be, layer);
        if (!resumed) {
          report.seconds = (performance.now() - tb) / 1000;
          blockReports[l] = report;
          done = l + 1;
          saveProgress();
          newlyDone++;
        }
        hooks.onBlockEnd?.(l, (performance.now() - tb) / 1000);
        if (hooks.interruptAfterBlocks !== undefined && newlyDone >= hooks.interruptAfterBlocks && l + 1 < cfg.numLayers) {
          X?.free(); Xq?.free(); Y?.free();
          throw new Error(`interrupted after block ${l} (test hook)`);
        }
      }
      X?.free(); Xq?.free(); Y?.free();

      // Assemble the checkpoint in the partial directory, then move it into place.
      const exp = writeQuantizedCheckpoint(partial, ck, packedAll);
      if (exp.fp16Overflows > 0) hooks.onWarn?.(`${exp.fp16Overflows} unquantized values exceed the fp16 range and were written as ±inf`);
      writeQuantizedConfig(partial, cfg.raw, { bits: grid.bits, groupSize: grid.groupSize, krot: s.krot });
      copyModelFiles(s.modelDir, partial);
      const seconds = (performance.now() - t0) / 1000;
      const manifest = {
        tool: 'paro quantize', toolVersion: s.toolVersion,
        inputs: { model: path.resolve(s.modelDir), sha256: inputHashes },
        settings, backend: be.name, device: be.device,
        blocks: blockReports, wallSeconds: seconds,
      };
      writeFileSync(path.join(partial, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
      for (const f of readdirSync(partial)) if (f.startsWith('block-') || f === PROGRESS_FILE) rmSync(path.join(partial, f));
      if (existsSync(s.outDir)) {
        if (!s.force) throw new UserError('output exists; pass --force to overwrite', { file: s.outDir });
        const old = `${s.outDir}.old-${process.pid}`;
        renameSync(s.outDir, old);
        renameSync(partial, s.outDir);
        rmSync(old, { recursive: true, force: true });
      } else {
        renameSync(partial, s.outDir);
      }
      return {
        command: 'quantize', model: s.modelDir, out: s.outDir, method: s.method, backend: be.name, device: be.device,
        blocks: blockReports, calibrationTokens, seconds, settings, effective,
      };
    } catch (e) {
      // Bad input found mid-run: leave nothing behind. Other failures keep the partial output for --resume.
      if (e instanceof UserError && createdPartial) rmSync(partial, { recursive: true, force: true });
      throw e;
    }
  } finally {
    ck.close();
  }
}

export { DEFAULT_OPTIMIZER };
