// `npm run bench -- gpu`: the CUDA backend on the GPU.
// 1. BF16 GEMM 8192³ through Backend.matmul vs a direct cuBLAS call in the same process.
// 2. One epoch of ParoQuant stage 1 on a Qwen3-8B-shaped block (hidden 4096, intermediate 12288, 32/8 heads,
//    head_dim 128, random weights), 128 samples × 2048 tokens, batch 16: effective TFLOP/s against the GEMM peak,
//    and a per-operation profile of one step (where the remaining time goes).
import type { BenchContext } from './report.js';
import { intOption, machine, round, table, flag } from './report.js';
import { loadCudaBackend, type CudaBackend } from '../src/engine/cuda/index.js';
import type { Backend, Tensor } from '../src/engine/backend.js';
import type { ModelConfig } from '../src/io/config.js';
import { BlockOptimizer, DEFAULT_OPTIMIZER, type BlockData } from '../src/paroquant/block-optimizer.js';
import { selectPairs } from '../src/paroquant/pairs.js';
import type { ParoLinear } from '../src/paroquant/transform.js';
import { LINEAR_KEYS, linearShapes, type LinearKey } from '../src/model/weights.js';
import { blockForward, positionsFor, type BlockGeometry } from '../src/model/block.js';
import { ropeInvFreq } from '../src/model/rope-freq.js';
import { ProfiledBackend } from '../src/engine/profile.js';
import { storeOf } from '../src/paroquant/activation-store.js';

const QWEN3_8B_BLOCK: ModelConfig = {
  family: 'qwen3', architecture: 'Qwen3ForCausalLM', hiddenSize: 4096, intermediateSize: 12288, numLayers: 1,
  numHeads: 32, numKvHeads: 8, headDim: 128, vocabSize: 151936, rmsNormEps: 1e-6, ropeTheta: 1e6, ropeScaling: null,
  maxPositionEmbeddings: 40960, attentionBias: false, outputBias: false, mlpBias: false, qkNorm: true,
  tieWordEmbeddings: false, bosTokenId: null, eosTokenIds: [], dtype: 'bfloat16', quantization: null, raw: {},
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

function randn(be: CudaBackend, shape: number[], scale: number, seed: number, dtype: 'f32' | 'bf16'): Tensor {
  const t = be.zeros(shape, dtype);
  be.fillRandom(t, seed); // uniform [−1, 1): std 0.577
  const s = be.scale(t, scale / 0.577);
  be.free(t);
  return s;
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

  // 2. Stage-1 epoch on an 8B-shaped block.
  const cfg = QWEN3_8B_BLOCK;
  const samples = intOption(ctx.args, 'samples', 128);
  const T = intOption(ctx.args, 'seq-len', 2048);
  const batch = intOption(ctx.args, 'batch', 16);
  const H = cfg.hiddenSize;
  const sh = linearShapes(cfg);
  const linears = {} as Record<LinearKey, ParoLinear>;
  const weightsBf16 = {} as Record<LinearKey, Tensor>;
  let seed = 10;
  for (const k of LINEAR_KEYS) {
    const { out, in: I } = sh[k];
    const W = randn(be, [out, I], 0.02, seed++, 'f32');
    const sel = selectPairs(I, 0);
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
  const xAll = randn(be, [(samples + nVal) * T, H], 1, 99, 'bf16');
  // Targets: the FP block on the inputs, batch by batch.
  const yAll = be.zeros([(samples + nVal) * T, H], 'bf16');
  for (let s0 = 0; s0 < samples + nVal; s0 += batch) {
    const xb = be.zeros([batch * T, H], 'bf16');
    be.copyRows(xb, 0, xAll, s0 * T, batch * T);
    const { y } = blockForward(be, cfg, { ...norms, weights: weightsBf16, biases: {} }, xb, geoFor(batch), false);
    be.copyRows(yAll, s0 * T, y, 0, batch * T);
    be.free(xb, y);
  }
  be.free(...Object.values(weightsBf16));
  const data: BlockData = { x: storeOf(be, xAll), y: storeOf(be, yAll), nTrain: samples, nVal, seqLen: T };
  const settings = { ...DEFAULT_OPTIMIZER, computeDtype: 'bf16' as const, epochs: [1, 0] as [number, number], batchSize: batch };
  const stepTimes: number[] = [];
  let last = 0;
  const opt = new BlockOptimizer(be, cfg, { norms, linears }, data, settings, geoFor, () => {
    const now = performance.now();
    stepTimes.push(now - last);
    last = now;
  });
  // Warm-up: one validation pass (allocator, cuBLAS heuristics).
  opt.validate(1);
  be.synchronize();
  const te = performance.now();
  last = te;
  const r = opt.runStage(1);
  be.synchronize();
  const stageMs = performance.now() - te;
  const epochMs = stepTimes.reduce((x, y) => x + y, 0);
  const steps = stepTimes.length;
  const f = stepFlops(cfg, batch * T, T);
  const epochFlops = steps * (f.gemm + f.attention);
  const eff = epochFlops / epochMs / 1e9;
  ctx.log(table([
    ['stage-1 epoch, Qwen3-8B block', 'value'],
    ['samples × tokens', `${samples} × ${T}`], ['steps (batch)', `${steps} (${batch})`],
    ['epoch time (train steps) s', round(epochMs / 1000, 3)], ['ms per step', round(epochMs / steps, 1)],
    ['stage incl. 2 validations s', round(stageMs / 1000, 3)],
    ['FLOPs per epoch (TFLOP)', round(epochFlops / 1e12, 1)], ['effective TFLOP/s', round(eff, 1)],
    ['share of GEMM peak', round(eff / peak, 3)],
  ]));
  report.stage1Epoch = {
    samples, seqLen: T, batch, steps, epochSeconds: epochMs / 1000, msPerStep: epochMs / steps, stageSeconds: stageMs / 1000,
    tflopPerEpoch: epochFlops / 1e12, gemmTflopPerStep: f.gemm / 1e12, attentionTflopPerStep: f.attention / 1e12,
    effectiveTflops: eff, shareOfGemmPeak: eff / peak, valLoss: r.bestValLoss, initialValLoss: r.initialValLoss,
  };

  // 3. Where the time goes: one step under a synchronising profiler.
  if (!flag(ctx.args, 'no-profile')) {
    const prof = new ProfiledBackend(be);
    const small: BlockData = { ...data, nTrain: batch };
    const popt = new BlockOptimizer(prof.backend as Backend, cfg, { norms, linears }, small, { ...settings }, geoFor);
    const tp = performance.now();
    popt.runStage(1);
    const profMs = performance.now() - tp;
    const rows = prof.table().slice(0, 16);
    ctx.log(`profile of one stage-1 pass (1 step + 2 validations), ${round(profMs, 0)} ms with a sync after every op:`);
    ctx.log(table([['op', 'calls', 'ms', 'share'], ...rows.map(([n, c, ms, s]) => [n, c, round(ms, 1), round(s, 3)] as (string | number)[])]));
    report.profile = rows.map(([op, calls, ms, share]) => ({ op, calls, ms, share }));
  }
  report.memory = be.memStats();
  return report;
}
