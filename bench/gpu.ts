// `npm run bench -- gpu`: the CUDA backend on the GPU.
// 1. BF16 GEMM 8192³ through Backend.matmul vs a direct cuBLAS call in the same process (the peak every share below
//    is taken against).
// 2. One epoch of ParoQuant stage 1 and one of stage 2 on a Qwen3-8B-shaped block (hidden 4096, intermediate 12288,
//    32/8 heads, head_dim 128, random weights) at the paper's 2048 windows × 2048 tokens, batch 16: effective
//    TFLOP/s and share of the GEMM peak per stage, and the projection of a whole 36-block 10 + 10 run. The 2048
//    windows are cycled through a smaller resident activation set (--resident, default 128 training + 16 validation
//    windows): the step's compute does not depend on which window it reads, and the real stores (2048 × 2048 ×
//    4096 × 2 B = 34 GB each) do not all fit one H100.
// 3. A per-operation profile of one step of each stage (where the time goes).
// 4. The same stage-1 epoch on one Llama-3.1-70B-shaped block (hidden 8192, intermediate 28672, 64/8 heads):
//    --windows-70b steps timed (default 512) and scaled to 2048 windows (steps are alike), and the 80-block projection.
//    --no-70b skips it.
// 5. The fused ParoQuant transform (Backend.paroTransform/paroTransformBackward) against the composition of the
//    unfused ops, both in this run: forward + backward of each of the block's 7 linears per stage (ms, effective GB/s
//    of the fused kernels' own traffic), and block steps of both stages with each path (--fused-steps, default 6
//    steps, the first dropped). --fused-transform-only runs 1 and 5 only; --no-fused skips 5. The fused ops are on
//    by default (faster since their Givens-v2-layout rewrite); PARO_FUSED_TRANSFORM=0 turns them off for the whole run
//    (sections 2–4 then time the composition). Section 5 switches them itself, and also times the Gram backward
//    (src/paroquant/transform-gram.ts), the cuda default.
// 2b. The epochs of section 2 again with the previous default of one piece, the same-run baseline of the figures:
//    --baseline attention-v2 (default: the mma.sync attention forward instead of the wgmma one, PARO_ATTN_KERNEL=v2),
//    recompute (the transform backward that recomputes each row instead of the Gram backward) or none
//    (--no-baseline-epoch too).
import type { BenchContext } from './report.js';
import { intOption, machine, option, round, table, flag } from './report.js';
import { loadCudaBackend, type CudaBackend } from '../src/engine/cuda/index.js';
import type { Backend, QuantGrid, Tensor } from '../src/engine/backend.js';
import type { ModelConfig } from '../src/io/config.js';
import { BlockOptimizer, type BlockData, type BlockUnderOptimization, type OptimizerSettings } from '../src/paroquant/block-optimizer.js';
import { selectPairs } from '../src/paroquant/pairs.js';
import { DEFAULT_QUANTIZE_SETTINGS, optimizerSettings } from '../src/jobs/quantize.js';
import { freeTransformSaved, transformBackward, transformForward, type ParoLinear } from '../src/paroquant/transform.js';
import { LINEAR_KEYS, linearShapes, type LinearKey } from '../src/model/weights.js';
import { blockForward, positionsFor, type BlockGeometry } from '../src/model/block.js';
import { withEnv } from '../scripts/backend-ops.js';
import { ropeInvFreq } from '../src/model/rope-freq.js';
import { ProfiledBackend } from '../src/engine/profile.js';
import { storeOf, type ActivationStore } from '../src/paroquant/activation-store.js';

const QWEN3_8B_BLOCK: ModelConfig = {
  family: 'qwen3', architecture: 'Qwen3ForCausalLM', hiddenSize: 4096, intermediateSize: 12288, numLayers: 1,
  numHeads: 32, numKvHeads: 8, headDim: 128, vocabSize: 151936, rmsNormEps: 1e-6, ropeTheta: 1e6, ropeScaling: null,
  maxPositionEmbeddings: 40960, attentionBias: false, outputBias: false, mlpBias: false, qkNorm: true,
  tieWordEmbeddings: false, bosTokenId: null, eosTokenIds: [], dtype: 'bfloat16', quantization: null, raw: {},
};

const LLAMA31_70B_BLOCK: ModelConfig = {
  ...QWEN3_8B_BLOCK, family: 'llama', architecture: 'LlamaForCausalLM', hiddenSize: 8192, intermediateSize: 28672, numHeads: 64,
  numKvHeads: 8, headDim: 128, vocabSize: 128256, rmsNormEps: 1e-5, ropeTheta: 500000,
  ropeScaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 },
  maxPositionEmbeddings: 131072, qkNorm: false,
};

/** Useful FLOPs of one stage-1 step on nTok tokens (seq T): GEMMs fwd + bwd (dW for all, dX where needed) + attention. */
export function stepFlops(cfg: ModelConfig, nTok: number, T: number): { gemm: number; attention: number } {
  const sh = linearShapes(cfg);
  let fwd = 0;
  let bwd = 0;
  for (const k of LINEAR_KEYS) {
    const p = sh[k].out * sh[k].in;
    fwd += 2 * nTok * p;
    bwd += 2 * nTok * p; // dW
    if (k !== 'q' && k !== 'k' && k !== 'v') bwd += 2 * nTok * p; // dX (the block input needs none)
  }
  // Causal attention: QKᵀ and PV over half the T×T pairs; backward ≈ 2.5× forward.
  const seqs = nTok / T;
  const attnFwd = seqs * cfg.numHeads * 2 * 2 * T * T * cfg.headDim / 2;
  return { gemm: fwd + bwd, attention: attnFwd * 3.5 };
}

/** What the benches need beyond the Backend interface (the cuda backend has it; a cpu stand-in can for dry runs). */
export type BenchBackend = Backend & Pick<CudaBackend, 'fillRandom' | 'memStats' | 'emptyCache'>;
/**
 * A bench backend whose transform paths can be switched (the cuda backend): fusedTransform off runs the composition;
 * on, paroResidualDtype set runs the Gram backward (transform-gram.ts), unset the fused backward that recomputes.
 */
export type FusedSwitchBackend = BenchBackend & Pick<CudaBackend, 'fusedTransform' | 'paroResidualDtype'>;

/** The transform's three paths: the composition of the unfused ops, the fused backward that recomputes, the Gram backward. */
export type TransformPath = 'composition' | 'recompute' | 'gram';
const PATHS: readonly TransformPath[] = ['composition', 'recompute', 'gram'];

/** Switch be to a path (the Gram backward with a bf16 residual, the cuda default). */
export function setPath(be: Pick<CudaBackend, 'fusedTransform' | 'paroResidualDtype'>, path: TransformPath): void {
  be.fusedTransform = path !== 'composition';
  be.paroResidualDtype = path === 'gram' ? 'bf16' : undefined;
}

function randn(be: BenchBackend, shape: number[], scale: number, seed: number, dtype: 'f32' | 'bf16'): Tensor {
  const t = be.zeros(shape, dtype);
  be.fillRandom(t, seed); // uniform [−1, 1): std 0.577
  const s = be.scale(t, scale / 0.577);
  be.free(t);
  return s;
}

/**
 * A store of `windows` training windows (then the validation ones) backed by a resident set of `trainResident`
 * training windows (then the validation ones): training window w reads resident window w mod trainResident.
 */
class CycledStore implements ActivationStore {
  readonly rows: number;
  readonly cols: number;
  readonly dtype: ActivationStore['dtype'];
  readonly placement: ActivationStore['placement'];
  constructor(private readonly inner: ActivationStore, private readonly T: number, private readonly windows: number, private readonly trainResident: number) {
    this.cols = inner.cols;
    this.dtype = inner.dtype;
    this.placement = inner.placement;
    this.rows = inner.rows + (windows - trainResident) * T;
  }

  private map(r0: number): number {
    const w = r0 / this.T;
    if (!Number.isInteger(w)) throw new Error('cycled store: reads must start at a window boundary');
    return (w < this.windows ? w % this.trainResident : this.trainResident + (w - this.windows)) * this.T;
  }

  read(r0: number, n: number): Tensor {
    return this.inner.read(this.map(r0), n);
  }

  write(): void {
    throw new Error('cycled store is read-only');
  }

  free(): void {
    this.inner.free();
  }
}

interface StageTiming {
  stage: 1 | 2;
  steps: number;
  msPerStep: number;
  /** Training steps of one epoch (the first step's delta, which holds the stage's initial validation, replaced by the mean of the others). */
  epochSeconds: number;
  /** runStage wall time: epoch + validations + stage set-up. */
  stageSeconds: number;
  tflopPerEpoch: number;
  effectiveTflops: number;
  shareOfGemmPeak: number;
}

export interface BlockBench {
  cfg: ModelConfig;
  windows: number;
  T: number;
  batch: number;
  stages: StageTiming[];
  /** One forward of the FP block on `batch` windows (Y targets, X′ propagation, validation), ms. */
  msForwardBatch: number;
  data: BlockData;
  norms: BlockUnderOptimization['norms'];
  linears: Record<LinearKey, ParoLinear>;
  geoFor: (n: number) => BlockGeometry;
  settings: OptimizerSettings;
  peakDeviceBytes: number;
}

/** Random block, resident activations and targets; times one epoch of each stage in `stages`. */
export function benchBlock(be: BenchBackend, cfg: ModelConfig, o: { windows: number; trainResident: number; T: number; batch: number; stages: (1 | 2)[]; peak: number; seed: number }): BlockBench {
  const { T, batch } = o;
  const H = cfg.hiddenSize;
  const sh = linearShapes(cfg);
  const linears = {} as Record<LinearKey, ParoLinear>;
  const weightsBf16 = {} as Record<LinearKey, Tensor>;
  let seed = o.seed;
  for (const k of LINEAR_KEYS) {
    const { out, in: I } = sh[k];
    const W = randn(be, [out, I], 0.02, seed++, 'f32');
    const sel = selectPairs(I, 0, { krot: 8, groupSize: DEFAULT_QUANTIZE_SETTINGS.groupSize });
    linears[k] = {
      outFeatures: out, inFeatures: I, W, alpha: be.fromHost(new Float32Array(I).fill(1), [I]), theta: be.zeros([8, I / 2]),
      pairs: be.fromHost(sel.pairs, [8, I], 'i32'), thetaKeep: be.fromHost(Float32Array.from(sel.mask, (m) => 1 - m), [sel.mask.length]), krot: 8,
    };
    weightsBf16[k] = be.cast(W, 'bf16');
  }
  const ones = (n: number) => be.fromHost(new Float32Array(n).fill(1), [n]);
  const norms = { inputNorm: ones(H), postNorm: ones(H), qNorm: ones(cfg.headDim), kNorm: ones(cfg.headDim) };
  const invFreq = ropeInvFreq(cfg);
  const geoFor = (n: number): BlockGeometry => ({ nSeq: n, seqLen: T, positions: positionsFor(n, T), invFreq });
  const nVal = batch;
  const resident = o.trainResident + nVal;
  const xAll = randn(be, [resident * T, H], 1, 99, 'bf16');
  // Targets: the FP block on the inputs, batch by batch (timed: the forward pass every target/propagation/validation costs).
  const yAll = be.zeros([resident * T, H], 'bf16');
  let fwdMs = 0;
  let fwdBatches = 0;
  for (let s0 = 0; s0 < resident; s0 += batch) {
    const xb = be.zeros([batch * T, H], 'bf16');
    be.copyRows(xb, 0, xAll, s0 * T, batch * T);
    be.synchronize();
    const tf = performance.now();
    const { y } = blockForward(be, cfg, { ...norms, weights: weightsBf16, biases: {} }, xb, geoFor(batch), false);
    be.synchronize();
    if (s0 > 0) { // the first pass warms the allocator and cuBLAS heuristics
      fwdMs += performance.now() - tf;
      fwdBatches++;
    }
    be.copyRows(yAll, s0 * T, y, 0, batch * T);
    be.free(xb, y);
  }
  be.free(...Object.values(weightsBf16));
  const data: BlockData = {
    x: new CycledStore(storeOf(be, xAll), T, o.windows, o.trainResident), y: new CycledStore(storeOf(be, yAll), T, o.windows, o.trainResident),
    nTrain: o.windows, nVal, seqLen: T,
  };
  const settings: OptimizerSettings = { ...optimizerSettings(DEFAULT_QUANTIZE_SETTINGS, 'bf16'), epochs: [1, 1], batchSize: batch };
  let stepTimes: number[] = [];
  let last = 0;
  const opt = new BlockOptimizer(be, cfg, { norms, linears }, data, settings, geoFor, () => {
    const now = performance.now();
    stepTimes.push(now - last);
    last = now;
  });
  opt.validate(1); // warm-up
  be.synchronize();
  const f = stepFlops(cfg, batch * T, T);
  const stages: StageTiming[] = [];
  for (const stage of o.stages) {
    stepTimes = [];
    const t0 = performance.now();
    last = t0;
    opt.runStage(stage);
    be.synchronize();
    const stageMs = performance.now() - t0;
    const steps = stepTimes.length;
    const rest = stepTimes.slice(1);
    const epochMs = steps > 1 ? (rest.reduce((a, b) => a + b, 0) / rest.length) * steps : stepTimes[0];
    const epochFlops = steps * (f.gemm + f.attention);
    const eff = epochFlops / epochMs / 1e9;
    stages.push({ stage, steps, msPerStep: epochMs / steps, epochSeconds: epochMs / 1000, stageSeconds: stageMs / 1000, tflopPerEpoch: epochFlops / 1e12, effectiveTflops: eff, shareOfGemmPeak: eff / o.peak });
  }
  return { cfg, windows: o.windows, T, batch, stages, msForwardBatch: fwdMs / Math.max(1, fwdBatches), data, norms, linears, geoFor, settings, peakDeviceBytes: be.memStats().peakBytes };
}

export function freeBlock(be: BenchBackend, b: BlockBench): void {
  b.data.x.free();
  b.data.y.free();
  be.free(...Object.values(b.norms).filter((t): t is Tensor => t !== undefined));
  for (const k of LINEAR_KEYS) {
    const l = b.linears[k];
    be.free(l.W, l.alpha, l.theta, l.pairs, l.thetaKeep, ...[l.scale, l.zpf].filter((t): t is Tensor => t !== undefined));
  }
  be.emptyCache();
}

/**
 * Whole-model time at 10 + 10 epochs from one block's measured epochs: per block, the epochs, Y targets on FP inputs
 * and X′ propagation through the quantized block (one forward over all windows each) and 11 validations per stage
 * over `valWindows`. Capture through the embedding, packing and writing are left out (seconds, not hours).
 */
export function project(b: BlockBench, layers: number, epochs: [number, number], valWindows: number, scaleSteps = 1): Record<string, number> {
  const e1 = (b.stages.find((s) => s.stage === 1)?.epochSeconds ?? 0) * scaleSteps;
  const e2 = (b.stages.find((s) => s.stage === 2)?.epochSeconds ?? e1 / scaleSteps) * scaleSteps;
  const fwd = b.msForwardBatch / 1000;
  const batchesAll = b.windows * scaleSteps / b.batch;
  const perBlock = epochs[0] * e1 + epochs[1] * e2 + 2 * batchesAll * fwd + (epochs[0] + epochs[1] + 2) * (valWindows / b.batch) * fwd;
  return { layers, stage1EpochSeconds: e1, stage2EpochSeconds: e2, secondsPerBlock: perBlock, hours: (layers * perBlock) / 3600 };
}

/** Mean ms of fn over `reps` calls after two warm-up calls (one synchronise per batch). */
function meanMs(be: Backend, fn: () => void, reps: number): number {
  fn();
  fn();
  be.synchronize();
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) fn();
  be.synchronize();
  return (performance.now() - t0) / reps;
}

/** Bytes the fused kernels must move for one linear's forward + backward: W f32 in, Ŵ bf16 out; dŴ and W f32 in, stage 2 dW f32 out. */
function fusedBytes(O: number, I: number, stage: 1 | 2): number {
  return O * I * (4 + 2 + 4 + 4 + (stage === 2 ? 4 : 0));
}

export interface FusedLinearTiming {
  linear: LinearKey;
  O: number;
  I: number;
  stage: 1 | 2;
  msComposition: number;
  /** The fused backward that recomputes the transform per row. */
  msFused: number;
  /** The Gram backward. */
  msGram: number;
  gbpsFused: number;
  gbpsComposition: number;
}

/**
 * Forward (Ŵ in bf16) + backward of each linear of a cfg-shaped block through transform.ts, with the fused ops off
 * (the composition) and on, per stage; random W (std 0.02), α in [0.5, 1.5), θ in [−0.3, 0.3), the stage-2 grid from
 * the min/max of the initial transform.
 */
export function benchFusedTransform(be: FusedSwitchBackend, cfg: ModelConfig, reps: number): FusedLinearTiming[] {
  const sh = linearShapes(cfg);
  const grid: QuantGrid = { bits: DEFAULT_QUANTIZE_SETTINGS.bits, groupSize: DEFAULT_QUANTIZE_SETTINGS.groupSize };
  const K = 8;
  const orig = { fused: be.fusedTransform, residual: be.paroResidualDtype };
  const out: FusedLinearTiming[] = [];
  let seed = 500;
  try {
    for (const k of LINEAR_KEYS) {
      const { out: O, in: I } = sh[k];
      const sel = selectPairs(I, 0, { krot: K, groupSize: grid.groupSize });
      const alpha = Float32Array.from({ length: I }, (_, i) => 0.5 + ((i * 2654435761) % 1000) / 1000);
      const theta = Float32Array.from({ length: (K * I) / 2 }, (_, i) => (sel.mask[i] ? 0 : 0.3 * Math.sin(i * 0.7)));
      const lin: ParoLinear = {
        outFeatures: O, inFeatures: I, W: randn(be, [O, I], 0.02, seed++, 'f32'), alpha: be.fromHost(alpha, [I]),
        theta: be.fromHost(theta, [K, I / 2]), pairs: be.fromHost(sel.pairs, [K, I], 'i32'),
        thetaKeep: be.fromHost(Float32Array.from(sel.mask, (m) => 1 - m), [sel.mask.length]), krot: K,
      };
      const dWhat = randn(be, [O, I], 1e-3, seed++, 'f32');
      be.fusedTransform = false;
      const init = transformForward(be, lin, grid, 1, true, 'bf16');
      lin.scale = init.saved!.scale;
      lin.zpf = init.saved!.zpf;
      be.free(init.What, init.saved!.R, init.saved!.U);
      for (const stage of [1, 2] as const) {
        const cycle = () => {
          const { What, saved } = transformForward(be, lin, grid, stage, true, 'bf16');
          const g = transformBackward(be, lin, grid, saved!, dWhat);
          freeTransformSaved(be, saved!);
          be.free(What, g.dtheta, g.dalpha, g.dW, g.dscale);
        };
        const ms: Record<TransformPath, number> = { composition: 0, recompute: 0, gram: 0 };
        for (const path of PATHS) {
          setPath(be, path);
          ms[path] = meanMs(be, cycle, reps);
        }
        const bytes = fusedBytes(O, I, stage);
        out.push({ linear: k, O, I, stage, msComposition: ms.composition, msFused: ms.recompute, msGram: ms.gram,
          gbpsFused: bytes / ms.recompute / 1e6, gbpsComposition: bytes / ms.composition / 1e6 });
      }
      be.free(lin.W, lin.alpha, lin.theta, lin.pairs, lin.thetaKeep, lin.scale, lin.zpf, dWhat);
    }
  } finally {
    be.fusedTransform = orig.fused;
    be.paroResidualDtype = orig.residual;
  }
  return out;
}

export interface FusedStepTiming {
  stage: 1 | 2;
  msPerStepComposition: number;
  msPerStepFused: number;
  msPerStepGram: number;
}

/** ms per block step (the first step, which holds the stage's initial validation, dropped) on each transform path. */
export function compareFusedSteps(be: FusedSwitchBackend, b: BlockBench, steps: number): FusedStepTiming[] {
  const orig = { fused: be.fusedTransform, residual: be.paroResidualDtype };
  const out: FusedStepTiming[] = [];
  try {
    for (const stage of [1, 2] as const) {
      const ms: Record<TransformPath, number> = { composition: 0, recompute: 0, gram: 0 };
      for (const path of PATHS) {
        setPath(be, path);
        const times: number[] = [];
        let last = 0;
        const data: BlockData = { ...b.data, nTrain: b.batch * steps };
        const opt = new BlockOptimizer(be, b.cfg, { norms: b.norms, linears: b.linears }, data, { ...b.settings, epochs: [1, 1] }, b.geoFor, () => {
          const now = performance.now();
          times.push(now - last);
          last = now;
        });
        be.synchronize();
        last = performance.now();
        opt.runStage(stage);
        be.synchronize();
        const rest = times.slice(1);
        ms[path] = rest.length ? rest.reduce((x, y) => x + y, 0) / rest.length : times[0];
      }
      out.push({ stage, msPerStepComposition: ms.composition, msPerStepFused: ms.recompute, msPerStepGram: ms.gram });
    }
  } finally {
    be.fusedTransform = orig.fused;
    be.paroResidualDtype = orig.residual;
  }
  return out;
}

function logFused(ctx: BenchContext, lin: FusedLinearTiming[], steps: FusedStepTiming[] | null): void {
  const rows: (string | number)[][] = [['linear O×I', 'stage', 'composition ms', 'recompute ms', 'gram ms', 'gram / recompute', 'recompute GB/s']];
  for (const r of lin) {
    rows.push([`${r.linear} ${r.O}×${r.I}`, r.stage, round(r.msComposition, 3), round(r.msFused, 3), round(r.msGram, 3), round(r.msFused / r.msGram, 2), round(r.gbpsFused, 0)]);
  }
  for (const stage of [1, 2] as const) {
    const s = lin.filter((r) => r.stage === stage);
    const sum = (f: (r: FusedLinearTiming) => number) => s.reduce((a, r) => a + f(r), 0);
    const c = sum((r) => r.msComposition), f = sum((r) => r.msFused), g = sum((r) => r.msGram);
    rows.push([`block (7 linears)`, stage, round(c, 3), round(f, 3), round(g, 3), round(f / g, 2), '']);
  }
  ctx.log('transform forward (Ŵ in bf16) + backward per linear, same run: the composition of the unfused ops, the fused backward that recomputes each row, the Gram backward (speed-up column: recompute ms / gram ms):');
  ctx.log(table(rows));
  if (steps) {
    ctx.log(table([['block step, ms', 'composition', 'recompute', 'gram', 'gram speed-up vs recompute'],
      ...steps.map((s) => [`stage ${s.stage}`, round(s.msPerStepComposition, 1), round(s.msPerStepFused, 1), round(s.msPerStepGram, 1), round(s.msPerStepFused / s.msPerStepGram, 3)])]));
  }
}

export async function run(ctx: BenchContext): Promise<Record<string, unknown>> {
  const be = loadCudaBackend(0);
  const report: Record<string, unknown> = { machine: machine(), device: be.device };

  // 1. GEMM.
  const N = 8192;
  const a = randn(be, [N, N], 1, 1, 'bf16');
  const b = randn(be, [N, N], 1, 2, 'bf16');
  for (let i = 0; i < 3; i++) be.free(be.matmul(a, b));
  be.synchronize();
  const iters = 20;
  const t0 = performance.now();
  for (let i = 0; i < iters; i++) be.free(be.matmul(a, b));
  be.synchronize();
  const msBackend = (performance.now() - t0) / iters;
  const msCublas = be.benchCublasBf16(N, N, N, iters);
  const flops = 2 * N ** 3;
  const tBackend = flops / msBackend / 1e9;
  const tCublas = flops / msCublas / 1e9;
  be.free(a, b);
  ctx.log(table([['GEMM 8192³ bf16', 'ms', 'TFLOP/s'], ['Backend.matmul', round(msBackend, 3), round(tBackend, 1)], ['direct cuBLAS', round(msCublas, 3), round(tCublas, 1)]]));
  ctx.log(`Backend / cuBLAS: ${round(tBackend / tCublas, 3)}`);
  report.gemm = { msBackend, msCublas, tflopsBackend: tBackend, tflopsCublas: tCublas, ratio: tBackend / tCublas };
  const peak = Math.max(tBackend, tCublas);
  const fusedSteps = intOption(ctx.args, 'fused-steps', 6);
  const wantFused = !flag(ctx.args, 'no-fused');
  if (flag(ctx.args, 'fused-transform-only')) {
    const lin = benchFusedTransform(be, QWEN3_8B_BLOCK, 10);
    const T0 = intOption(ctx.args, 'seq-len', 2048);
    const batch0 = intOption(ctx.args, 'batch', 16);
    const bq = benchBlock(be, QWEN3_8B_BLOCK, { windows: batch0 * fusedSteps, trainResident: batch0 * Math.min(fusedSteps, 2), T: T0, batch: batch0, stages: [], peak, seed: 10 });
    const steps = compareFusedSteps(be, bq, fusedSteps);
    freeBlock(be, bq);
    logFused(ctx, lin, steps);
    report.fusedTransform = { linears: lin, steps, seqLen: T0, batch: batch0 };
    report.memory = be.memStats();
    return report;
  }

  // 2. Stage-1 and stage-2 epochs on an 8B-shaped block at the paper's calibration size.
  const T = intOption(ctx.args, 'seq-len', 2048);
  const batch = intOption(ctx.args, 'batch', 16);
  const windows = intOption(ctx.args, 'windows', 2048);
  const trainResident = Math.min(windows, intOption(ctx.args, 'resident', 128));
  const valWindows = intOption(ctx.args, 'val-windows', 64);
  const logBlock = (title: string, r: BlockBench, resident: number, scale = 1) => {
    ctx.log(table([
      [title, ...r.stages.map((s) => `stage ${s.stage}`)],
      ['windows × tokens (resident)', ...r.stages.map(() => `${r.windows * scale} × ${r.T} (${resident})`)],
      ['steps (batch)', ...r.stages.map((s) => `${s.steps * scale} (${r.batch})`)],
      ['ms per step', ...r.stages.map((s) => round(s.msPerStep, 1))],
      ['epoch s', ...r.stages.map((s) => round(s.epochSeconds * scale, 2))],
      ['TFLOP per epoch', ...r.stages.map((s) => round(s.tflopPerEpoch * scale, 1))],
      ['effective TFLOP/s', ...r.stages.map((s) => round(s.effectiveTflops, 1))],
      ['share of GEMM peak', ...r.stages.map((s) => round(s.shareOfGemmPeak, 3))],
    ]));
  };
  const b8 = benchBlock(be, QWEN3_8B_BLOCK, { windows, trainResident, T, batch, stages: [1, 2], peak, seed: 10 });
  logBlock('Qwen3-8B block, one epoch', b8, trainResident);
  const p8 = project(b8, 36, [10, 10], valWindows);
  ctx.log(`forward of one batch: ${round(b8.msForwardBatch, 1)} ms; projected 36 blocks × (10 + 10 epochs, ${valWindows} validation windows): ${round(p8.secondsPerBlock, 1)} s per block, ${round(p8.hours, 3)} GPU-hours`);
  report.qwen3_8b = {
    windows, seqLen: T, batch, trainResident, stages: b8.stages, msForwardBatch: b8.msForwardBatch, peakDeviceBytes: b8.peakDeviceBytes,
    projection: p8,
  };
  // Kept under its old name: the first run's figures (128 × 2048) are compared with it.
  report.stage1Epoch = b8.stages[0];

  // 5 (on the block of 2). The fused transform against the composition, same run.
  if (wantFused) {
    const steps = compareFusedSteps(be, b8, fusedSteps);
    const lin = benchFusedTransform(be, QWEN3_8B_BLOCK, 10);
    logFused(ctx, lin, steps);
    report.fusedTransform = { linears: lin, steps, seqLen: T, batch };
  }

  // 3. Where the time goes: one step of each stage under a synchronising profiler (stage 2 after stage 1: its
  // quantizers start from the grid of the transform stage 1 left).
  if (!flag(ctx.args, 'no-profile')) {
    const small: BlockData = { ...b8.data, nTrain: batch };
    const profile: { stage: number; op: string; calls: number; ms: number; share: number }[] = [];
    report.profile = profile;
    for (const stage of [1, 2] as const) {
      const prof = new ProfiledBackend(be);
      const popt = new BlockOptimizer(prof.backend as Backend, b8.cfg, { norms: b8.norms, linears: b8.linears }, small,
        { ...b8.settings, epochs: stage === 1 ? [1, 0] : [0, 1] }, b8.geoFor);
      const tp = performance.now();
      popt.runStage(stage);
      const profMs = performance.now() - tp;
      const rows = prof.table().slice(0, 28);
      ctx.log(`profile of one stage-${stage} pass (1 step + 2 validations), ${round(profMs, 0)} ms with a sync after every op:`);
      ctx.log(table([['op', 'calls', 'ms', 'share'], ...rows.map(([n, c, ms, s]) => [n, c, round(ms, 1), round(s, 3)] as (string | number)[])]));
      profile.push(...rows.map(([op, calls, ms, share]) => ({ stage, op, calls, ms, share })));
    }
  }
  freeBlock(be, b8);

  // 2b. The same epochs with one piece as it was before (see the header): the same-run baseline.
  const baseline = flag(ctx.args, 'no-baseline-epoch') ? 'none' : option(ctx.args, 'baseline') ?? 'attention-v2';
  if (!['attention-v2', 'recompute', 'none'].includes(baseline)) throw new Error(`--baseline must be attention-v2, recompute or none, got "${baseline}"`);
  const baselineEpochs = () => {
    const bb = benchBlock(be, QWEN3_8B_BLOCK, { windows, trainResident, T, batch, stages: [1, 2], peak, seed: 10 });
    logBlock(`Qwen3-8B block, one epoch, baseline ${baseline} (same run)`, bb, trainResident);
    const pb = project(bb, 36, [10, 10], valWindows);
    ctx.log(`projected with baseline ${baseline}: ${round(pb.hours, 3)} GPU-hours; defaults: ${round(p8.hours, 3)}`);
    report.qwen3_8b_baseline = { baseline, stages: bb.stages, projection: pb };
    freeBlock(be, bb);
  };
  if (baseline === 'attention-v2') withEnv('PARO_ATTN_KERNEL', 'v2', baselineEpochs);
  if (baseline === 'recompute' && be.paroResidualDtype !== undefined && be.fusedTransform) {
    const residual = be.paroResidualDtype;
    be.paroResidualDtype = undefined;
    try {
      baselineEpochs();
    } finally {
      be.paroResidualDtype = residual;
    }
  }

  // 4. One Llama-3.1-70B-shaped block, stage 1.
  if (!flag(ctx.args, 'no-70b')) {
    const w70 = Math.min(windows, intOption(ctx.args, 'windows-70b', 512));
    const r70 = Math.min(w70, intOption(ctx.args, 'resident-70b', 64));
    const b70 = benchBlock(be, LLAMA31_70B_BLOCK, { windows: w70, trainResident: r70, T, batch, stages: [1], peak, seed: 40 });
    const scale = windows / w70;
    logBlock(`Llama-3.1-70B block (${w70} windows timed, × ${scale})`, b70, r70, scale);
    const p70 = project(b70, 80, [10, 10], valWindows, scale);
    ctx.log(`forward of one batch: ${round(b70.msForwardBatch, 1)} ms; projected 80 blocks × (10 + 10 epochs, stage 2 taken as long as stage 1): ${round(p70.hours, 2)} GPU-hours`);
    report.llama31_70b = {
      windowsTimed: w70, windows, seqLen: T, batch, trainResident: r70, stages: b70.stages.map((s) => ({ ...s, epochSeconds: s.epochSeconds * scale, steps: s.steps * scale, tflopPerEpoch: s.tflopPerEpoch * scale })),
      msForwardBatch: b70.msForwardBatch, peakDeviceBytes: b70.peakDeviceBytes, projection: p70,
    };
    freeBlock(be, b70);
  }
  report.memory = be.memStats();
  return report;
}
