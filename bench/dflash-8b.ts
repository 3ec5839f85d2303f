// DFlash at real size (issue 10 item 6): speed and memory of the three DFlash commands on a Qwen3-8B-shaped target
// with random weights (scripts/synth-checkpoint.ts --arch qwen3-8b; the gpu-session step `dflash-8b` reads /tmp/q8).
// Every phase runs the real code of the command, on token ids instead of text (random weights: outputs mean nothing):
// 1. generate-data: batchGenerate (dflash/batch-decode.ts, what `dflash generate-data` decodes with) on --gen-batch
//    prompts of --gen-prompt-len random ids × --gen-new-tokens, greedy, no stop token; tokens/s. In the same run,
//    before our target is loaded, transformers' model.generate on the same checkpoint, prompts, batch and lengths in
//    bf16 (scripts/hf-generate-bench.py, a child process under a hard time limit; skipped on the cpu) and the ratio.
// 2. train-drafter: a drafter of --drafter-layers at the target's width, warm-started from the target (init-from-
//    target, the command's default), features from the target's tapped layers (FeatureSource: the real target run on
//    each sequence), --train-batch sequences of --train-seq-len tokens per optimizer step (trainer.optimizerStep);
//    ms per step after a warm-up step, useful FLOPs per step (drafterStepFlops below) against the BF16 GEMM peak
//    measured first in this process (Backend.matmul, as bench/gpu.ts), peak device memory.
// 3. eval: evaluateDrafter (what `dflash eval` runs) with the drafter just trained on --eval-prompts prompts: draft
//    and verify time per speculative step, speculative and plain (target-only) tokens/s at batch 1.
// Progress and one result line per phase go to stderr (a killed run keeps them in the log); the JSON report to
// stdout with --json. A phase that fails is recorded in `errors` and the next one runs; past --budget seconds the
// remaining phases are skipped.
// Options (defaults: the issue's sizes): --target DIR (required) --device cuda|cpu (cuda) --gemm-size 8192
//   --gen-batch 32 --gen-prompt-len 128 --gen-new-tokens 128 --drafter-layers 5 --block-size 16 --train-seq-len 3072
//   --train-prompt-len 256 --anchors 512 --train-batch 4 --train-steps 2 (timed, after one warm-up step)
//   --eval-prompts 2 --eval-prompt-len 128 --eval-new-tokens 128 --budget 220 --python python3 ($PYTHON)
//   --hf-script scripts/hf-generate-bench.py --hf-timeout 120 --no-hf --hf-on-cpu (run the child on a cpu rehearsal too)
//   --compute-dtype f32|bf16 (default: bf16 on cuda, f32 on the cpu, as the commands' auto)
//   --profile: one more training step under a synchronising per-op profiler (src/engine/profile.ts), table in the report
//   node .gpu/bench-dflash-8b.mjs --target /tmp/q8 --json            (GPU machine, after synth-8b)
//   npx tsx bench/dflash-8b.ts --target DIR --device cpu [small sizes] (cpu rehearsal: test/dflash-8b-bench.test.ts)
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Backend, Tensor } from '../src/engine/backend.js';
import { createBackend, parseDevice } from '../src/engine/select.js';
import type { CudaBackend } from '../src/engine/cuda/backend.js';
import { loadModel, type LoadedModel } from '../src/model/load.js';
import { freeModelWeights } from '../src/model/weights.js';
import { loadModelConfig } from '../src/io/config.js';
import { Rng } from '../src/numerics/rng.js';
import { batchGenerate } from '../src/dflash/batch-decode.js';
import { autoTargetLayerIds } from '../src/dflash/layer-ids.js';
import { drafterParamCount, type DrafterConfig } from '../src/dflash/drafter-config.js';
import { Drafter, drafterInvFreq } from '../src/dflash/drafter.js';
import { freeDrafterWeights, type DrafterWeights, type SharedTargetParts } from '../src/dflash/drafter-weights.js';
import { anchorRng, anchorsPerSequence, sampleAnchors, validAnchorPositions } from '../src/dflash/anchors.js';
import { blockLabelsAndWeights, defaultGamma } from '../src/dflash/loss.js';
import { drafterConfigFor, FeatureSource, initTrainState, optimizerStep, stepBatch } from '../src/dflash/trainer.js';
import { freeTrainState, type TrainState } from '../src/dflash/train-state.js';
import type { TrainingData } from '../src/dflash/training-data.js';
import { evaluateDrafter } from '../src/dflash/evaluate.js';
import { autoLr } from '../src/jobs/train-drafter.js';
import { intOption, machine, option, flag, round, type BenchContext } from './report.js';
import type { ComputeDtype } from '../src/model/layer-ops.js';
import { ProfiledBackend } from '../src/engine/profile.js';

/** One training sequence as the FLOP count sees it: context rows, its blocks and the LM-head rows with weight > 0. */
export interface FlopSequence {
  S: number;
  anchors: Int32Array;
  keep: Uint8Array;
  weightedRows: number;
}

/**
 * Useful FLOPs of one optimizer step of the drafter (trainer.trainStep + AdamW), summed over the step's sequences.
 * Per sequence, with S context rows, N blocks of B rows (NB = N·B query rows, disabled blocks included: they go
 * through the GEMMs), width H, intermediate I, q width h·D, k/v width hk·D, n taps, V vocabulary, R LM-head rows:
 *  - forward GEMMs of each draft layer: q_proj and o_proj on NB rows (2·NB·H·hD each), k_proj and v_proj on the
 *    S + NB rows of [context ; block] (2·(S + NB)·H·hkD each), gate/up/down on NB rows (2·NB·H·I each);
 *    backward = the weight gradients (same as forward) + the input gradients (same again: every layer's dX is
 *    computed, including the context's through k/v, which fc needs) → 3× forward;
 *  - fc: 2·S·nH·H forward + the same for its weight gradient (the taps are data: no input gradient);
 *  - LM head (frozen, shared with the target): logits 2·R·H·V + their input gradient 2·R·H·V, on the R rows with
 *    loss weight > 0 only (headLoss skips the others);
 *  - attention, causal-free but sparse: a query row of kept block n sees the a_n context keys before its anchor and
 *    the B keys of its own block: QKᵀ and PV 4·D FLOPs per (row, key, head); backward counted 2.5× forward (as
 *    bench/gpu.ts counts attention), i.e. 3.5× forward in all.
 * Norms, RoPE, SwiGLU, the cross-entropy and AdamW are memory-bound and not counted.
 */
export function drafterStepFlops(c: DrafterConfig, seqs: readonly FlopSequence[]): { gemm: number; lmHead: number; attention: number; total: number } {
  const H = c.hiddenSize;
  const qW = c.numHeads * c.headDim;
  const kvW = c.numKvHeads * c.headDim;
  const nH = c.targetLayerIds.length * H;
  const B = c.blockSize;
  let gemm = 0;
  let lmHead = 0;
  let attention = 0;
  for (const s of seqs) {
    const NB = s.anchors.length * B;
    const layerFwd = 2 * NB * H * qW + 2 * 2 * (s.S + NB) * H * kvW + 2 * NB * qW * H + 3 * 2 * NB * H * c.intermediateSize;
    gemm += c.numLayers * 3 * layerFwd + 2 * (2 * s.S * nH * H);
    lmHead += 2 * (2 * s.weightedRows * H * c.vocabSize);
    let pairs = 0;
    for (let n = 0; n < s.anchors.length; n++) if (s.keep[n]) pairs += B * (s.anchors[n] + B);
    attention += 3.5 * 4 * c.headDim * c.numHeads * pairs;
  }
  return { gemm, lmHead, attention, total: gemm + lmHead + attention };
}

/** The sequences of optimizer step `step` exactly as trainer.trainStep draws them (same anchors, same weights). */
function stepSequences(data: TrainingData, c: DrafterConfig, step: number, batch: number, seed: number, maxAnchors: number, gamma: number): FlopSequence[] {
  const B = c.blockSize;
  const { epoch, batchIdx } = stepBatch(step, data.samples.length, batch, seed);
  const valid = batchIdx.map((i) => validAnchorPositions(data.samples[i].lossMask, B));
  const N = anchorsPerSequence(valid.map((v) => v.length), maxAnchors);
  return batchIdx.map((i, b) => {
    const smp = data.samples[i];
    const { anchors, keep } = sampleAnchors(valid[b], N, anchorRng(seed, epoch, i));
    const { weights } = blockLabelsAndWeights(smp.ids, smp.lossMask, anchors, keep, B, gamma);
    return { S: smp.ids.length, anchors, keep, weightedRows: weights.reduce((a, w) => a + (w > 0 ? 1 : 0), 0) };
  });
}

/** x to `digits` significant digits (rates and shares span 1e-4 on a cpu rehearsal to 1e3 on a GPU). */
function sig(x: number, digits = 4): number {
  return Number.isFinite(x) && x !== 0 ? Number(x.toPrecision(digits)) : x;
}

/** The target failed to load: nothing after it can run. */
class NoTarget extends Error {}

type BenchBackend = Backend & Partial<Pick<CudaBackend, 'fillRandom' | 'memStats' | 'emptyCache' | 'benchCublasBf16'>>;

function randomIds(n: number, vocab: number, rng: Rng): Int32Array {
  return Int32Array.from({ length: n }, () => rng.nextInt(vocab));
}

/** A [n, n] matrix of uniform values in [−1, 1) in the given dtype (device-side fill where the backend has one). */
function randomMatrix(be: BenchBackend, n: number, dtype: 'bf16' | 'f32', seed: number): Tensor {
  if (be.fillRandom) {
    const t = be.zeros([n, n], dtype);
    be.fillRandom(t, seed);
    return t;
  }
  const rng = new Rng(seed);
  return be.fromHost(Float32Array.from({ length: n * n }, () => 2 * rng.nextFloat() - 1), [n, n], dtype);
}

/** Mean ms of Backend.matmul on [n, n] × [n, n] in dtype, after warm-up calls. */
function gemmMs(be: BenchBackend, n: number, dtype: 'bf16' | 'f32', iters: number): number {
  const a = randomMatrix(be, n, dtype, 1);
  const b = randomMatrix(be, n, dtype, 2);
  for (let i = 0; i < 2; i++) be.free(be.matmul(a, b));
  be.synchronize();
  const t0 = performance.now();
  for (let i = 0; i < iters; i++) be.free(be.matmul(a, b));
  be.synchronize();
  const ms = (performance.now() - t0) / iters;
  be.free(a, b);
  return ms;
}

/** Device memory as the allocator counts it (cuda), else the process's peak resident set (cpu: tensors are host memory). */
function memory(be: BenchBackend): { source: 'allocator' | 'host rss'; liveBytes: number; peakBytes: number; totalBytes: number } {
  if (be.memStats) {
    const m = be.memStats();
    return { source: 'allocator', liveBytes: m.liveBytes, peakBytes: m.peakBytes, totalBytes: m.totalBytes };
  }
  return { source: 'host rss', liveBytes: process.memoryUsage().rss, peakBytes: process.resourceUsage().maxRSS * 1024, totalBytes: os.totalmem() };
}

/** Longest common prefix of two token lists. */
function commonPrefix(a: readonly number[], b: readonly number[]): number {
  let k = 0;
  while (k < a.length && k < b.length && a[k] === b[k]) k++;
  return k;
}

interface HfResult {
  ok: boolean;
  error?: string;
  tokensPerSecond?: number;
  seconds?: number;
  generated?: number[][];
  [key: string]: unknown;
}

/**
 * transformers' generate in a child process (scripts/hf-generate-bench.py) on the same prompts, killed after
 * timeoutS seconds. Its stderr lines are relayed to the log; its last stdout line is its JSON result.
 */
function runHfGenerate(ctx: BenchContext, o: { python: string; script: string; target: string; promptsFile: string; newTokens: number; timeoutS: number }): HfResult {
  const r = spawnSync(o.python, [o.script, '--model', o.target, '--prompts', o.promptsFile, '--new-tokens', String(o.newTokens)], {
    encoding: 'utf8', timeout: o.timeoutS * 1000, killSignal: 'SIGKILL', maxBuffer: 256 << 20,
  });
  for (const l of (r.stderr ?? '').split('\n').filter((x) => x.trim() !== '').slice(-40)) ctx.log(`  ${l}`);
  if (r.error && (r.error as NodeJS.ErrnoException).code === 'ENOENT') return { ok: false, error: `${o.python} not found` };
  if (r.error && (r.error as NodeJS.ErrnoException).code === 'ETIMEDOUT') return { ok: false, error: `killed after the ${o.timeoutS} s limit` };
  const last = (r.stdout ?? '').trim().split('\n').pop() ?? '';
  try {
    const j = JSON.parse(last) as HfResult;
    if (typeof j.ok !== 'boolean') throw new Error('no "ok" field');
    return j;
  } catch {
    return { ok: false, error: `exit status ${r.status ?? r.signal}, no JSON result${r.error ? ` (${r.error.message})` : ''}` };
  }
}

export async function run(ctx: BenchContext): Promise<Record<string, unknown>> {
  const a = ctx.args;
  const target = option(a, 'target');
  if (!target) throw new Error('--target DIR is required (a checkpoint of scripts/synth-checkpoint.ts, e.g. /tmp/q8)');
  const o = {
    gemmSize: intOption(a, 'gemm-size', 8192),
    genBatch: intOption(a, 'gen-batch', 32),
    genPromptLen: intOption(a, 'gen-prompt-len', 128),
    genNewTokens: intOption(a, 'gen-new-tokens', 128),
    drafterLayers: intOption(a, 'drafter-layers', 5),
    blockSize: intOption(a, 'block-size', 16),
    seqLen: intOption(a, 'train-seq-len', 3072),
    promptLen: intOption(a, 'train-prompt-len', 256),
    anchors: intOption(a, 'anchors', 512),
    trainBatch: intOption(a, 'train-batch', 4),
    trainSteps: intOption(a, 'train-steps', 2),
    evalPrompts: intOption(a, 'eval-prompts', 2),
    evalPromptLen: intOption(a, 'eval-prompt-len', 128),
    evalNewTokens: intOption(a, 'eval-new-tokens', 128),
    hfTimeout: intOption(a, 'hf-timeout', 120),
    budget: intOption(a, 'budget', 220),
  };
  const python = option(a, 'python') ?? process.env.PYTHON ?? 'python3';
  const hfScript = option(a, 'hf-script') ?? path.join('scripts', 'hf-generate-bench.py');
  const t0 = performance.now();
  const elapsed = () => (performance.now() - t0) / 1000;
  const be = (await createBackend(parseDevice(option(a, 'device') ?? 'cuda'), (m) => ctx.log(`warning: ${m}`))) as BenchBackend;
  const onGpu = be.name === 'cuda';
  // What the commands' --compute-dtype auto chooses: bf16 GEMMs (f32 outputs) on the GPU, f32 on the cpu.
  const cdOpt = option(a, 'compute-dtype');
  if (cdOpt !== undefined && cdOpt !== 'f32' && cdOpt !== 'bf16') throw new Error(`--compute-dtype must be f32 or bf16, got ${cdOpt}`);
  const computeDtype: ComputeDtype = cdOpt ?? (onGpu ? 'bf16' : 'f32');
  const report: Record<string, unknown> = { machine: machine(), device: be.device, backend: be.name, target: path.resolve(target), computeDtype, settings: o };
  const phases: Record<string, number> = {};
  const errors: { phase: string; error: string }[] = [];
  /**
   * Runs one phase: times it, logs its result line (shown: false for a result that is not a report, like the model),
   * records a failure and goes on (later phases may still run).
   */
  const phase = async <T>(name: string, fn: () => T | Promise<T>, shown = true): Promise<T | undefined> => {
    const p0 = performance.now();
    ctx.log(`[dflash-8b] ${name}: start at ${elapsed().toFixed(1)} s`);
    try {
      const r = await fn();
      phases[name] = round((performance.now() - p0) / 1000, 2);
      ctx.log(`[dflash-8b] ${name}: ${phases[name]} s${shown && r !== undefined ? ` ${JSON.stringify(r)}` : ''}`);
      return r;
    } catch (e) {
      phases[name] = round((performance.now() - p0) / 1000, 2);
      const msg = e instanceof Error ? e.message : String(e);
      errors.push({ phase: name, error: msg });
      ctx.log(`[dflash-8b] ${name}: FAILED after ${phases[name]} s: ${e instanceof Error ? e.stack ?? msg : msg}`);
      be.emptyCache?.();
      return undefined;
    }
  };
  const overBudget = (name: string): boolean => {
    if (elapsed() < o.budget) return false;
    errors.push({ phase: name, error: `skipped: ${elapsed().toFixed(0)} s spent of the --budget ${o.budget} s` });
    ctx.log(`[dflash-8b] ${name}: skipped (over the ${o.budget} s budget)`);
    return true;
  };
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'bench-dflash-8b-'));
  let model: LoadedModel | null = null;
  // What the phases hand on (properties, so the closures' assignments are seen): the training state while it trains,
  // then the trained drafter (its moments freed) for the evaluation.
  const held: { state?: { cfg: DrafterConfig; st: TrainState }; drafter?: { cfg: DrafterConfig; weights: DrafterWeights; shared: SharedTargetParts } } = {};
  try {
    // 0. The GEMM peak every share is taken against (bf16, as bench/gpu.ts), and the f32 rate the drafter runs at.
    const gemm = await phase('gemm', () => {
      const n = o.gemmSize;
      const iters = onGpu ? 20 : 2;
      const msBf16 = gemmMs(be, n, 'bf16', iters);
      const msF32 = gemmMs(be, n, 'f32', onGpu ? 5 : 2);
      const msCublas = be.benchCublasBf16 ? be.benchCublasBf16(n, n, n, iters) : null;
      const fl = 2 * n ** 3;
      const r = {
        size: n, msBf16: round(msBf16, 3), tflopsBf16: sig(fl / msBf16 / 1e9), msF32: round(msF32, 3), tflopsF32: sig(fl / msF32 / 1e9),
        tflopsCublasBf16: msCublas === null ? null : sig(fl / msCublas / 1e9),
        peakTflops: sig(Math.max(fl / msBf16, msCublas === null ? 0 : fl / msCublas) / 1e9),
      };
      be.emptyCache?.();
      return r;
    });
    report.gemm = gemm ?? null;
    const peakTflops = gemm?.peakTflops ?? NaN;

    // The generate-data prompts, shared with transformers (same ids).
    const tcfg = loadModelConfig(target);
    const rng = new Rng(1234);
    const genPrompts = Array.from({ length: o.genBatch }, () => randomIds(o.genPromptLen, tcfg.vocabSize, rng));
    const promptsFile = path.join(tmp, 'prompts.json');
    writeFileSync(promptsFile, JSON.stringify({ prompts: genPrompts.map((p) => Array.from(p)) }));

    // 1a. transformers on the same GPU, before our target takes its memory.
    let hf: HfResult | null = null;
    // --hf-on-cpu: the child process runs anyway (a rehearsal of this path with stand-in torch/transformers modules).
    if (!onGpu && !flag(a, 'hf-on-cpu')) report.hf = { skipped: 'cpu rehearsal: transformers runs on the GPU only (bf16 generate)' };
    else if (flag(a, 'no-hf')) report.hf = { skipped: '--no-hf' };
    else {
      hf = (await phase('hf-generate', () => {
        const r = runHfGenerate(ctx, { python, script: hfScript, target, promptsFile, newTokens: o.genNewTokens, timeoutS: o.hfTimeout });
        const { generated: _g, ...shown } = r;
        ctx.log(`  transformers: ${JSON.stringify(shown)}`);
        return r;
      }, false)) ?? null;
      if (hf) {
        const { generated: _g, ...rest } = hf;
        report.hf = rest;
      }
    }

    // 1b. Our target, loaded as every dflash command loads it.
    model = (await phase('load', () => loadModel(be, target, computeDtype === 'bf16' ? { weightDtype: 'bf16' } : {}), false)) ?? null;
    if (!model) throw new NoTarget(); // recorded by the phase: the report goes out with what ran
    model.decoder.setComputeDtype(computeDtype);
    const decoder = model.decoder;
    report.targetShape = {
      layers: tcfg.numLayers, hidden: tcfg.hiddenSize, intermediate: tcfg.intermediateSize, heads: tcfg.numHeads, kvHeads: tcfg.numKvHeads,
      vocab: tcfg.vocabSize, memoryAfterLoad: memory(be),
    };

    // 1c. Batched KV-cached generation (greedy, no stop token), after a short warm-up (allocator, cuBLAS heuristics).
    if (!overBudget('generate')) {
      report.generate = (await phase('generate', () => {
        batchGenerate(decoder, genPrompts.slice(0, 2), { maxNewTokens: 4, temperature: 0, stopTokenIds: [] });
        be.synchronize();
        const tg = performance.now();
        const outs = batchGenerate(decoder, genPrompts, { maxNewTokens: o.genNewTokens, temperature: 0, stopTokenIds: [] });
        be.synchronize();
        const seconds = (performance.now() - tg) / 1000;
        const tokens = outs.reduce((s, x) => s + x.length, 0);
        const ours = { batch: o.genBatch, promptLen: o.genPromptLen, newTokens: o.genNewTokens, tokens, seconds: round(seconds, 3), tokensPerSecond: round(tokens / seconds, 1) };
        const hfTps = hf?.ok && typeof hf.tokensPerSecond === 'number' ? hf.tokensPerSecond : null;
        let agreement: Record<string, number> | null = null;
        if (hf?.ok && Array.isArray(hf.generated) && hf.generated.length === outs.length) {
          const gen = hf.generated;
          // Random weights make near-ties common and bf16 (theirs) vs f32 activations (ours) split on them: a sanity figure only.
          agreement = {
            firstToken: outs.filter((x, i) => x[0] === gen[i][0]).length / outs.length,
            meanCommonPrefix: round(outs.reduce((s, x, i) => s + commonPrefix(x, gen[i]), 0) / outs.length, 2),
          };
        }
        return { ours, transformersTokensPerSecond: hfTps, ratioOursToTransformers: hfTps ? sig(ours.tokensPerSecond / hfTps) : null, agreement };
      })) ?? null;
    }

    // 2. Drafter training steps at the target's width, warm-started from the target.
    if (!overBudget('train')) {
      report.train = (await phase('train', () => {
        const layerIds = autoTargetLayerIds(tcfg.numLayers, 5).ids;
        // The last embedding row as the mask token: an existing row (resolveMaskToken's rule needs a tokenizer).
        const c = drafterConfigFor(tcfg, o.drafterLayers, o.blockSize, layerIds, tcfg.vocabSize - 1);
        const srng = new Rng(99);
        const samples = Array.from({ length: o.trainBatch }, (_, i) => {
          const lossMask = new Uint8Array(o.seqLen);
          lossMask.fill(1, o.promptLen);
          return { ids: randomIds(o.seqLen, tcfg.vocabSize, srng), lossMask, line: i + 1 };
        });
        const d: TrainingData = {
          samples, records: samples.length, droppedShort: 0, droppedEmpty: 0, truncated: 0,
          tokens: samples.length * o.seqLen, responseTokens: samples.length * (o.seqLen - o.promptLen),
        };
        const memBefore = memory(be);
        // The warm start first: should the features or a step fail, the evaluation still has this drafter to time.
        const st = initTrainState(be, c, 0, decoder.weights);
        held.state = { cfg: c, st };
        const tf = performance.now();
        const features = new FeatureSource(be, decoder, layerIds, d, Number.MAX_SAFE_INTEGER);
        be.synchronize();
        const featureSeconds = (performance.now() - tf) / 1000;
        const shared: SharedTargetParts = { embed: decoder.weights.embed, lmHead: decoder.weights.lmHead };
        const invFreq = drafterInvFreq(c);
        const gamma = defaultGamma(o.blockSize);
        const lr = autoLr(c.hiddenSize);
        const seed = 0;
        const stepMs: number[] = [];
        let flops = 0;
        let lastLoss = NaN;
        for (let s = 0; s <= o.trainSteps; s++) { // step 0 warms up (allocations, cuBLAS heuristics) and is not timed
          const { epoch, batchIdx } = stepBatch(st.step, d.samples.length, o.trainBatch, seed);
          const seqs = stepSequences(d, c, st.step, o.trainBatch, seed, o.anchors, gamma);
          be.synchronize();
          const ts = performance.now();
          const r = optimizerStep(be, c, st, shared, invFreq, features, d, batchIdx, { epoch, seed, anchors: o.anchors, gamma, lr, weightDecay: 0, computeDtype });
          be.synchronize();
          const ms = performance.now() - ts;
          lastLoss = r.loss;
          ctx.log(`  step ${s}${s === 0 ? ' (warm-up)' : ''}: ${ms.toFixed(0)} ms, loss ${r.loss.toFixed(3)}`);
          if (s > 0) {
            stepMs.push(ms);
            flops += drafterStepFlops(c, seqs).total;
          }
        }
        // --profile: one more step with a sync after every op (where the step's time goes; not a speed figure).
        let profile: { op: string; calls: number; ms: number; share: number }[] | undefined;
        if (flag(a, 'profile')) {
          const prof = new ProfiledBackend(be);
          const { epoch, batchIdx } = stepBatch(st.step, d.samples.length, o.trainBatch, seed);
          const tp = performance.now();
          optimizerStep(prof.backend, c, st, shared, invFreq, features, d, batchIdx, { epoch, seed, anchors: o.anchors, gamma, lr, weightDecay: 0, computeDtype });
          ctx.log(`  profiled step (sync after every op): ${(performance.now() - tp).toFixed(0)} ms`);
          profile = prof.table().slice(0, 24).map(([op, calls, ms, share]) => ({ op, calls, ms: round(ms, 1), share: round(share, 3) }));
          for (const r of profile) ctx.log(`    ${r.op.padEnd(48)} ${String(r.calls).padStart(6)} ${r.ms.toFixed(1).padStart(9)} ms ${(100 * r.share).toFixed(1).padStart(5)} %`);
        }
        const msPerStep = stepMs.reduce((x, y) => x + y, 0) / stepMs.length;
        const perStep = drafterStepFlops(c, stepSequences(d, c, 1, o.trainBatch, seed, o.anchors, gamma));
        const tflops = flops / stepMs.reduce((x, y) => x + y, 0) / 1e9;
        const memAfter = memory(be);
        // The moments are not needed by the evaluation: give their memory back now.
        freeDrafterWeights(be, c, st.m);
        freeDrafterWeights(be, c, st.v);
        held.state = undefined;
        held.drafter = { cfg: c, weights: st.weights, shared };
        be.emptyCache?.();
        return {
          drafterLayers: c.numLayers, hidden: c.hiddenSize, blockSize: c.blockSize, targetLayerIds: layerIds, params: drafterParamCount(c),
          seqLen: o.seqLen, promptLen: o.promptLen, anchors: o.anchors, batch: o.trainBatch, init: 'target', features: `target taps (${features.mode})`,
          featureSecondsPerSequence: round(featureSeconds / d.samples.length, 3), stepsTimed: stepMs.length,
          msPerStep: round(msPerStep, 1), msPerStepMin: round(Math.min(...stepMs), 1),
          tflopPerStep: sig(perStep.total / 1e12), tflopBreakdown: { gemm: sig(perStep.gemm / 1e12), lmHead: sig(perStep.lmHead / 1e12), attention: sig(perStep.attention / 1e12) },
          effectiveTflops: sig(tflops), shareOfBf16Peak: sig(tflops / peakTflops),
          shareOfF32Gemm: gemm ? sig(tflops / gemm.tflopsF32) : null,
          lastLoss: round(lastLoss, 4),
          profile,
          // peakBytes is the process's peak so far; this phase set it when it exceeds peakBeforeBytes (then peakBytes −
          // liveBeforeBytes is the training's own working set: drafter state, activations, features, the f32 LM head).
          memory: {
            source: memBefore.source, liveBeforeBytes: memBefore.liveBytes, peakBeforeBytes: memBefore.peakBytes, peakBytes: memAfter.peakBytes,
            trainingBytes: memAfter.peakBytes - memBefore.liveBytes, stateBytes: 16 * drafterParamCount(c),
          },
          note: computeDtype === 'bf16'
            ? 'drafter master weights, activations and gradients f32; GEMMs bf16 × bf16 → f32 (weights cast once per step); the peak is the process peak, target weights included'
            : 'drafter weights, activations and gradients are f32 (GEMMs in f32, no TF32); the peak is the process peak, target weights included',
        };
      })) ?? null;
    }

    // 3. Speculative decoding with the drafter just trained, against plain target decoding, batch 1.
    // The trained drafter, or the warm-started one of a training phase that failed after its initialisation.
    const trained = held.drafter ?? (held.state && model
      ? { cfg: held.state.cfg, weights: held.state.st.weights, shared: { embed: model.decoder.weights.embed, lmHead: model.decoder.weights.lmHead } }
      : undefined);
    if (trained && !overBudget('eval')) {
      report.decode = (await phase('eval', () => {
        const drafter = new Drafter(be, trained.cfg, trained.weights, trained.shared, 'f32', computeDtype);
        const erng = new Rng(4321);
        const prompts = Array.from({ length: o.evalPrompts }, () => randomIds(o.evalPromptLen, tcfg.vocabSize, erng));
        const opts = { temperature: 0, seed: 0, stopTokenIds: [], baseline: true, expected: null };
        let ev: ReturnType<typeof evaluateDrafter>;
        try {
          evaluateDrafter(decoder, drafter, prompts.slice(0, 1), { ...opts, maxNewTokens: 2 * o.blockSize }); // warm-up
          ev = evaluateDrafter(decoder, drafter, prompts, { ...opts, maxNewTokens: o.evalNewTokens });
        } finally {
          drafter.dispose(); // the bf16 copies of its weights
        }
        const steps = Math.max(1, ev.verifySteps);
        return {
          prompts: o.evalPrompts, promptLen: o.evalPromptLen, newTokens: o.evalNewTokens, tau: round(ev.tau, 3), verifySteps: ev.verifySteps,
          msPerDraft: round((ev.draftSeconds * 1000) / steps, 2), msPerVerify: round((ev.verifySeconds * 1000) / steps, 2),
          specTokensPerSecond: round(1 / ev.specTpot, 1), plainTokensPerSecond: ev.baselineTpot ? round(1 / ev.baselineTpot, 1) : null,
          msPerPlainToken: ev.baselineTpot ? round(ev.baselineTpot * 1000, 2) : null, speedup: ev.speedup === null ? null : round(ev.speedup, 3),
          equalOutputs: ev.equalOutputs,
          note: 'random drafter: acceptance is about one token per step; the per-step draft and verify times are the figures',
        };
      })) ?? null;
    }
  } catch (e) {
    if (!(e instanceof NoTarget)) throw e;
  } finally {
    if (held.state) freeTrainState(be, held.state.cfg, held.state.st);
    if (held.drafter) freeDrafterWeights(be, held.drafter.cfg, held.drafter.weights);
    if (model) freeModelWeights(be, model.decoder.weights);
    rmSync(tmp, { recursive: true, force: true });
  }
  report.memory = memory(be);
  report.phases = phases;
  report.seconds = round(elapsed(), 1);
  report.errors = errors;
  return report;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const json = args.includes('--json');
  const report = await run({ args: args.filter((x) => x !== '--json'), json, log: (l) => process.stderr.write(l + '\n') });
  if (json) process.stdout.write(JSON.stringify({ bench: 'dflash-8b', ...report }, null, 1) + '\n');
}

// Run as a program (tsx, or the bundled .gpu/bench-dflash-8b.mjs), not when imported by a test.
if (process.argv[1] && /(bench-dflash-8b\.mjs|dflash-8b\.ts)$/.test(process.argv[1])) {
  main().then(() => process.exit(0), (e: unknown) => {
    process.stderr.write(`bench dflash-8b: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
    process.exit(1);
  });
}
