// `npm run bench -- dflash`: the cost of the DFlash pipeline on the tiny-qwen3 model (the embedded demo copy, so no
// fixtures are needed): regeneration throughput (dflash generate-data), drafter training time per optimizer step with
// the defaults of `train-drafter --block-size 8 --mask-token 1` and the projected time of the run (800 steps),
// and speculative against plain decoding (tokens/s, τ) with the drafter just trained — or, when ../shared/fixtures is
// present, with the official drafter on val-prompts (τ 2.524 by REFERENCE.md).
// Options: --prompts N (prompts regenerated and trained on, default 32), --steps N (timed training steps, 30),
// --eval-prompts N (decoded prompts, 10), --device cpu|cuda|auto (cpu).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createBackend, parseDevice } from '../src/engine/select.js';
import { DEMO_MODEL_DIR, DEFAULT_CALIB_FILE } from '../src/cli/paths.js';
import { readPrompts, readTextDocuments } from '../src/io/datasets.js';
import { runGenerateData } from '../src/jobs/generate-data.js';
import { autoEpochs, runTrainDrafter } from '../src/jobs/train-drafter.js';
import { runEvalDrafter } from '../src/jobs/eval-drafter.js';
import type { StepLog } from '../src/dflash/trainer.js';
import { FIXTURES, HAVE_FIXTURES, intOption, machine, option, round, table, type BenchContext } from './report.js';

/** The run: 400 sequences in batches of 4, --epochs auto. */
const DEFAULT_RUN_STEPS = 100 * autoEpochs(100);

/** Prompts cut like the fixture's (the first 200–600 characters of a document, at a line break; ~220 on average). */
function promptsFrom(docs: readonly string[], n: number): string[] {
  const out: string[] = [];
  for (const d of docs) {
    if (out.length === n) break;
    const cut = d.indexOf('\n', 200);
    if (cut >= 0 && cut < 600) out.push(d.slice(0, cut + 1));
  }
  return out;
}

export async function run(ctx: BenchContext): Promise<Record<string, unknown>> {
  const nPrompts = intOption(ctx.args, 'prompts', 32);
  const steps = intOption(ctx.args, 'steps', 30);
  const nEval = intOption(ctx.args, 'eval-prompts', 10);
  const be = await createBackend(parseDevice(option(ctx.args, 'device') ?? 'cpu'), (m) => ctx.log(`warning: ${m}`));
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'bench-dflash-'));
  try {
    ctx.log(`dflash bench: tiny-qwen3 (embedded copy), ${be.device}`);
    const promptsFile = path.join(tmp, 'prompts.jsonl');
    // The fixture's train-prompts when present (the workload), else prompts cut from the built-in text.
    const prompts = HAVE_FIXTURES
      ? readPrompts(path.join(FIXTURES, 'text', 'train-prompts.jsonl')).slice(0, nPrompts).map((p) => (p.kind === 'text' ? p.prompt : ''))
      : promptsFrom(readTextDocuments(DEFAULT_CALIB_FILE), nPrompts);
    writeFileSync(promptsFile, prompts.map((p) => JSON.stringify({ prompt: p })).join('\n') + '\n');

    // 1. Regeneration (128 tokens per prompt, greedy, no stop), batched KV-cached decoding.
    const dataFile = path.join(tmp, 'data.jsonl');
    const gen = runGenerateData(be, {
      targetDir: DEMO_MODEL_DIR, promptsFile, outFile: dataFile, maxNewTokens: 128, temperature: 0, ignoreEos: true, seed: 0,
      chatTemplate: 'never', force: true,
    });
    ctx.log(`generate-data: ${gen.records} prompts, ${gen.responseTokens} tokens in ${gen.seconds.toFixed(1)} s (${gen.tokensPerSecond.toFixed(0)} tokens/s)`);

    // 2. Training steps with the defaults (2 layers, warm start, lr auto, anchors auto, batch 4); the first step
    // (allocations, thread start-up) is left out of the per-step figure.
    const stepMs: number[] = [];
    let last = performance.now();
    const drafterDir = path.join(tmp, 'drafter');
    const tr = runTrainDrafter(be, {
      targetDir: DEMO_MODEL_DIR, dataFile, outDir: drafterDir, blockSize: 8, epochs: 6, maskToken: '1', force: true, maxSteps: steps,
    }, {
      onStep: (_i: number, _n: number, _s: StepLog) => {
        const now = performance.now();
        stepMs.push(now - last);
        last = now;
      },
      onFeatures: () => { last = performance.now(); },
    });
    const timed = stepMs.slice(1).sort((a, b) => a - b);
    const median = timed[Math.floor(timed.length / 2)];
    const featureSecondsPer400 = (tr.seconds.features / tr.dataStats.records) * 400;
    const projected = (median * DEFAULT_RUN_STEPS) / 1000 + featureSecondsPer400;
    ctx.log(`train-drafter: ${tr.drafter.layers} layers, ${timed.length} timed steps, median ${median.toFixed(0)} ms/step ` +
      `(mean over all ${tr.steps}: ${(tr.seconds.train * 1000 / tr.steps).toFixed(0)}); ` +
      `features ${(tr.seconds.features * 1000 / tr.dataStats.records).toFixed(1)} ms per sequence`);

    // 3. Decoding: speculative (drafter pass + verify) against plain target decoding, greedy, 128 tokens.
    const official = path.join(FIXTURES, 'official', 'tiny-qwen3-dflash-1layer');
    const evalDrafter = HAVE_FIXTURES ? official : drafterDir;
    const evalPrompts = HAVE_FIXTURES ? path.join(FIXTURES, 'text', 'val-prompts.jsonl') : promptsFile;
    const ev = runEvalDrafter(be, {
      targetDir: DEMO_MODEL_DIR, drafterDir: evalDrafter, promptsFile: evalPrompts, maxNewTokens: 128, temperature: 0, seed: 0,
      ignoreEos: true, maxPrompts: nEval, chatTemplate: 'never',
    });
    const specTps = 1 / ev.specTpot;
    const plainTps = ev.baselineTpot === null ? NaN : 1 / ev.baselineTpot;

    ctx.log('');
    ctx.log(table([
      ['figure', 'value'],
      ['generate-data tokens/s', gen.tokensPerSecond.toFixed(0)],
      ['train ms/step (batch 4, median)', median.toFixed(0)],
      [`projected train-drafter, ${DEFAULT_RUN_STEPS} steps + features of 400 sequences`, `${(projected / 60).toFixed(1)} min`],
      [`decode, ${HAVE_FIXTURES ? 'official drafter' : 'bench drafter (τ not meaningful)'}: τ / pooled`, `${ev.tau.toFixed(3)} / ${ev.tauPooled.toFixed(3)}`],
      ['speculative tokens/s', specTps.toFixed(0)],
      ['plain tokens/s (same run)', plainTps.toFixed(0)],
      ['speedup', Number.isFinite(plainTps) ? (specTps / plainTps).toFixed(2) : 'n/a'],
      ['draft / verify seconds', `${ev.draftSeconds.toFixed(2)} / ${ev.verifySeconds.toFixed(2)}`],
    ]));
    return {
      machine: machine(), device: be.device, backend: be.name,
      generate: { prompts: gen.records, tokens: gen.responseTokens, seconds: round(gen.seconds, 3), tokensPerSecond: round(gen.tokensPerSecond, 1) },
      train: {
        layers: tr.drafter.layers, stepsTimed: timed.length, msPerStepMedian: round(median, 1), msPerStepMin: round(timed[0], 1),
        featureMsPerSequence: round((tr.seconds.features * 1000) / tr.dataStats.records, 2), projectedDefaultRunSeconds: round(projected, 1),
      },
      decode: {
        drafter: HAVE_FIXTURES ? 'official tiny-qwen3-dflash-1layer' : 'bench drafter', prompts: ev.promptCount, tau: ev.tau, tauPooled: ev.tauPooled,
        specTokensPerSecond: round(specTps, 1), plainTokensPerSecond: round(plainTps, 1), equalOutputs: ev.equalOutputs,
        draftSeconds: round(ev.draftSeconds, 3), verifySeconds: round(ev.verifySeconds, 3),
      },
    };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
