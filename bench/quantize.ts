// `npm run bench -- quantize`: the cost of `paro quantize` on the tiny-qwen3 fixture. Builds block 0's calibration
// data exactly as the command does (default calibration set, 128 + 16 windows of 512 tokens), runs the block optimizer
// for one epoch of stage 1 and one of stage 2, and reports ms per optimizer step, seconds per block-epoch and the
// projected time of the default run (10 + 10 epochs on every block).
// Options: --samples N (training windows, default 128), --val-samples N (16), --seq-len N (512), --epochs a,b (1,1),
// --device cpu|cuda (cpu), --threads N (cpu threads; default all), --model DIR (the fixture), --calib FILE (the built-in set).
import path from 'node:path';
import { createBackend, parseDevice } from '../src/engine/select.js';
import { Checkpoint } from '../src/io/checkpoint.js';
import { loadModelConfig } from '../src/io/config.js';
import { geometryCache } from '../src/model/block.js';
import { ropeInvFreq } from '../src/model/rope-freq.js';
import { loadEmbedding, loadLayerWeights } from '../src/model/weights.js';
import type { BlockData, BlockProgress } from '../src/paroquant/block-optimizer.js';
import { createStore, storeOf } from '../src/paroquant/activation-store.js';
import { fpTargets, initialLinears, optimizeBlock } from '../src/paroquant/quantize-steps.js';
import { DEFAULT_QUANTIZE_SETTINGS, calibrationIds, optimizerSettings, resolveQuantizeSettings } from '../src/jobs/quantize.js';
import { DEFAULT_CALIB_FILE } from '../src/cli/paths.js';
import { matmulThreads, setMatmulThreads } from '../src/engine/cpu/matmul.js';
import { FIXTURES, HAVE_FIXTURES, intOption, machine, option, round, table, type BenchContext } from './report.js';

const DEFAULT_SAMPLES = DEFAULT_QUANTIZE_SETTINGS.samples;
const DEFAULT_VAL = DEFAULT_QUANTIZE_SETTINGS.valSamples;
const DEFAULT_EPOCHS = DEFAULT_QUANTIZE_SETTINGS.epochs;

interface StageTiming {
  stage: 1 | 2;
  steps: number;
  msPerStep: number;
  cpuMsPerStep: number;
  minMsPerStep: number;
  validationSeconds: number;
  epochSeconds: number;
}

export async function run(ctx: BenchContext): Promise<Record<string, unknown>> {
  const modelDir = option(ctx.args, 'model') ?? path.join(FIXTURES, 'tiny-qwen3');
  if (!option(ctx.args, 'model') && !HAVE_FIXTURES) {
    ctx.log(`skipped: fixtures not found at ${FIXTURES}`);
    return { skipped: `fixtures not found at ${FIXTURES}` };
  }
  const calibFile = option(ctx.args, 'calib') ?? DEFAULT_CALIB_FILE;
  const samples = intOption(ctx.args, 'samples', DEFAULT_SAMPLES);
  const valSamples = intOption(ctx.args, 'val-samples', DEFAULT_VAL);
  const T = intOption(ctx.args, 'seq-len', 512);
  const epochsOpt = option(ctx.args, 'epochs') ?? '1,1';
  const epochs = epochsOpt.split(',').map(Number) as [number, number];
  const be = await createBackend(parseDevice(option(ctx.args, 'device') ?? 'cpu'), ctx.log);
  let threads: number | null = null;
  if (be.name === 'cpu') {
    const t = option(ctx.args, 'threads');
    threads = setMatmulThreads(t === undefined ? matmulThreads().available : intOption(ctx.args, 'threads', 1));
  }
  const qs = resolveQuantizeSettings({ samples, valSamples, seqLen: T, epochs });
  const settings = optimizerSettings(qs, 'f32');
  const batch = settings.batchSize;
  ctx.log(`quantize bench: ${path.basename(modelDir)}, ${samples} + ${valSamples} windows × ${T} tokens, batch ${batch}, epochs ${epochs.join('+')}, ${be.device}${threads ? `, ${threads} thread${threads > 1 ? 's' : ''}` : ''}`);

  // Block 0's calibration data through the command's own steps.
  const cfg = loadModelConfig(modelDir);
  const ck = Checkpoint.open(modelDir);
  const tSetup = performance.now();
  const nAll = samples + valSamples;
  const { ids } = calibrationIds(modelDir, calibFile, cfg, qs);
  const embed = loadEmbedding(be, ck, cfg, 'f32');
  const X = storeOf(be, be.gatherRows(embed, ids));
  be.free(embed);
  const geoFor = geometryCache(T, ropeInvFreq(cfg));
  const layer = loadLayerWeights(be, ck, cfg, 0, 'f32');
  ck.close();
  const setupSeconds = (performance.now() - tSetup) / 1000;

  // The FP block pass over all windows: the command runs it twice per block (targets Y, then X′ through the
  // quantized block).
  const tFp = performance.now();
  const Y = createStore(be, nAll * T, cfg.hiddenSize, 'f32', 'device');
  fpTargets(be, cfg, layer, X, Y, nAll, T, batch, 'f32', geoFor);
  be.synchronize();
  const fpPassSeconds = (performance.now() - tFp) / 1000;
  ctx.log(`FP block pass over ${nAll} windows: ${fpPassSeconds.toFixed(2)} s`);

  const linears = initialLinears(be, layer, 0, qs.seed, qs.krot, qs.groupSize, new Map());
  const data: BlockData = { x: X, y: Y, nTrain: samples, nVal: valSamples, seqLen: T };

  // Wall time and process CPU time (all threads) per step: other load on the machine inflates the first, the
  // second shows the work itself.
  let last = 0;
  let lastCpu = 0;
  const cpuNow = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  };
  const stepMs: Record<1 | 2, number[]> = { 1: [], 2: [] };
  const stepCpuMs: Record<1 | 2, number[]> = { 1: [], 2: [] };
  const onProgress = (p: BlockProgress) => {
    const now = performance.now();
    const cpu = cpuNow();
    if (p.step > 1) {
      stepMs[p.stage].push(now - last);
      stepCpuMs[p.stage].push(cpu - lastCpu);
    }
    last = now;
    lastCpu = cpu;
    if (p.step === p.steps) ctx.log(`  stage ${p.stage} epoch ${p.epoch}/${p.epochs}: ${p.steps} steps, loss ${p.loss.toExponential(3)}`);
  };
  const r = optimizeBlock(be, cfg, layer, linears, data, settings, geoFor, { onStep: onProgress, onWarn: ctx.log });
  const stages: StageTiming[] = [];
  for (const stage of [1, 2] as const) {
    if (epochs[stage - 1] === 0) continue;
    const logs = r.epochs.filter((l) => l.stage === stage);
    const validationSeconds = logs[0].seconds;
    const ms = stepMs[stage];
    const msPerStep = ms.reduce((a, b) => a + b, 0) / Math.max(1, ms.length);
    const epochLogs = logs.slice(1);
    const cpu = stepCpuMs[stage];
    stages.push({
      stage, steps: ms.length, msPerStep, cpuMsPerStep: cpu.reduce((a, b) => a + b, 0) / Math.max(1, cpu.length), minMsPerStep: Math.min(...ms), validationSeconds,
      epochSeconds: epochLogs.reduce((a, l) => a + l.seconds, 0) / Math.max(1, epochLogs.length),
    });
  }

  // Projection for the default run: 8 steps per epoch (128 / 16) plus a validation pass per epoch, 10 + 10 epochs,
  // two FP passes over 144 windows per block, on every block of the model.
  const defaultSteps = Math.ceil(DEFAULT_SAMPLES / batch);
  const fpDefault = fpPassSeconds * (DEFAULT_SAMPLES + DEFAULT_VAL) / nAll;
  const valDefault = (s: StageTiming) => s.validationSeconds * Math.ceil(DEFAULT_VAL / batch) / Math.ceil(valSamples / batch);
  const epochDefault = (s: StageTiming) => (defaultSteps * s.msPerStep) / 1000 + valDefault(s);
  let perBlock = 2 * fpDefault;
  for (const s of stages) perBlock += valDefault(s) + DEFAULT_EPOCHS[s.stage - 1] * epochDefault(s);
  const projectedSeconds = perBlock * cfg.numLayers;

  ctx.log('');
  ctx.log(table([
    ['stage', 'steps timed', 'ms/step', 'min ms/step', 'cpu ms/step', 'validation s', 'epoch s (measured)', 'epoch s (default run)'],
    ...stages.map((s) => [s.stage, s.steps, s.msPerStep.toFixed(0), s.minMsPerStep.toFixed(0), s.cpuMsPerStep.toFixed(0), s.validationSeconds.toFixed(2), s.epochSeconds.toFixed(2), epochDefault(s).toFixed(2)]),
  ]));
  ctx.log('');
  ctx.log(`FP block pass (144 windows): ${fpDefault.toFixed(2)} s; projected default run (${cfg.numLayers} blocks, ${DEFAULT_EPOCHS.join('+')} epochs): ${(projectedSeconds / 60).toFixed(1)} min`);
  return {
    machine: machine(),
    device: be.device,
    backend: be.name,
    threads,
    model: modelDir,
    samples, valSamples, seqLen: T, batchSize: batch, epochs,
    setupSeconds: round(setupSeconds),
    fpPassSeconds: round(fpPassSeconds),
    stages: stages.map((s) => ({
      stage: s.stage, stepsTimed: s.steps, msPerStep: round(s.msPerStep, 1), minMsPerStep: round(s.minMsPerStep, 1), cpuMsPerStep: round(s.cpuMsPerStep, 1),
      validationSeconds: round(s.validationSeconds), epochSeconds: round(s.epochSeconds), defaultEpochSeconds: round(epochDefault(s)),
    })),
    projectedDefaultRunSeconds: round(projectedSeconds, 0),
    projectedDefaultRunMinutes: round(projectedSeconds / 60, 1),
  };
}
