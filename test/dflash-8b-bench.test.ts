// bench/dflash-8b.ts rehearsed on the cpu: the same three phases (generate-data decoding, drafter training steps
// warm-started from the target, speculative vs plain decoding) on a tiny random Qwen3 written by
// scripts/synth-checkpoint.ts, so the GPU step `dflash-8b` of scripts/gpu-session.sh runs code that has run. The
// transformers comparison needs the GPU: skipped here, with the reason in the report. Also the FLOP count's
// invariants (what scales with what).
import { describe, expect, it } from 'vitest';
import path from 'node:path';
import { drafterStepFlops, run, type FlopSequence } from '../bench/dflash-8b.js';
import { synthCheckpoint } from '../scripts/synth-checkpoint.js';
import { drafterConfigFor } from '../src/dflash/trainer.js';
import type { ModelConfig } from '../src/io/config.js';
import { scratchDir } from './scratch.js';

type Obj = Record<string, unknown>;

function finitePositive(o: Obj, keys: string[], where: string): void {
  for (const k of keys) {
    const v = o[k];
    expect(typeof v === 'number' && Number.isFinite(v) && v > 0, `${where}.${k} = ${String(v)}`).toBe(true);
  }
}

describe('bench dflash-8b (cpu rehearsal)', () => {
  it('runs every phase at compute dtype bf16 too (what cuda runs by default)', async () => {
    const dir = path.join(scratchDir('dflash-8b-bf16-'), 'tiny');
    await synthCheckpoint({ arch: 'qwen3-tiny', out: dir, layers: 6, threads: 1 });
    const report = await run({
      args: [
        '--target', dir, '--device', 'cpu', '--compute-dtype', 'bf16', '--gemm-size', '64', '--gen-batch', '2', '--gen-prompt-len', '8',
        '--gen-new-tokens', '4', '--train-seq-len', '96', '--train-prompt-len', '16', '--anchors', '8', '--train-batch', '2',
        '--train-steps', '1', '--eval-prompts', '1', '--eval-prompt-len', '8', '--eval-new-tokens', '24',
      ],
      json: true,
      log: () => {},
    });
    expect(report.errors).toEqual([]);
    expect(report.computeDtype).toBe('bf16');
    expect(String((report.train as Obj).note)).toMatch(/bf16/);
    finitePositive(report.train as Obj, ['msPerStep', 'lastLoss'], 'train');
    // Greedy speculative decoding still reproduces plain decoding with bf16 GEMMs on both sides.
    expect((report.decode as Obj).equalOutputs).toBe(1);
  });

  it('reports finite, positive figures for every phase on a tiny synthetic target', async () => {
    const dir = path.join(scratchDir('dflash-8b-'), 'tiny');
    // 6 layers: the 5-layer drafter warm-starts from the last 5, as it does from Qwen3-8B's 36.
    await synthCheckpoint({ arch: 'qwen3-tiny', out: dir, layers: 6, threads: 1 });
    const lines: string[] = [];
    const report = await run({
      args: [
        '--target', dir, '--device', 'cpu', '--gemm-size', '64', '--gen-batch', '3', '--gen-prompt-len', '8', '--gen-new-tokens', '6',
        '--train-seq-len', '96', '--train-prompt-len', '16', '--anchors', '8', '--train-batch', '2', '--train-steps', '2',
        '--eval-prompts', '1', '--eval-prompt-len', '8', '--eval-new-tokens', '40',
      ],
      json: true,
      log: (l) => lines.push(l),
    });
    expect(report.errors).toEqual([]);
    expect(Object.keys(report.phases as Obj)).toEqual(['gemm', 'load', 'generate', 'train', 'eval']);
    for (const name of ['gemm', 'load', 'generate', 'train', 'eval']) {
      expect(lines.some((l) => l.startsWith(`[dflash-8b] ${name}: `) && !l.includes('FAILED') && !l.includes('start at')), name).toBe(true);
    }
    expect((report.hf as Obj).skipped).toMatch(/cpu/);
    finitePositive(report.gemm as Obj, ['tflopsBf16', 'tflopsF32', 'peakTflops'], 'gemm');

    const gen = report.generate as Obj;
    finitePositive(gen.ours as Obj, ['tokens', 'seconds', 'tokensPerSecond'], 'generate.ours');
    expect((gen.ours as Obj).tokens).toBe(3 * 6);
    expect(gen.ratioOursToTransformers).toBeNull();

    const train = report.train as Obj;
    finitePositive(train, ['msPerStep', 'msPerStepMin', 'tflopPerStep', 'effectiveTflops', 'shareOfBf16Peak', 'featureSecondsPerSequence', 'lastLoss'], 'train');
    expect(train.stepsTimed).toBe(2);
    expect(train.drafterLayers).toBe(5);
    finitePositive(train.memory as Obj, ['peakBytes', 'stateBytes'], 'train.memory');

    const dec = report.decode as Obj;
    finitePositive(dec, ['msPerDraft', 'msPerVerify', 'specTokensPerSecond', 'plainTokensPerSecond', 'msPerPlainToken', 'tau', 'verifySteps'], 'decode');
    // Greedy speculative decoding reproduces plain decoding, whatever the drafter proposes.
    expect(dec.equalOutputs).toBe(1);
  }, 60_000);
});

describe('drafterStepFlops', () => {
  const target = {
    hiddenSize: 64, intermediateSize: 160, numHeads: 4, numKvHeads: 2, headDim: 16, rmsNormEps: 1e-6, ropeTheta: 1e6, maxPositionEmbeddings: 4096,
    numLayers: 8, vocabSize: 1000, bosTokenId: null, eosTokenIds: [],
  } as unknown as ModelConfig;
  const seq = (weightedRows: number, keep = 1): FlopSequence => ({ S: 200, anchors: Int32Array.of(40, 90, 150), keep: new Uint8Array(3).fill(keep), weightedRows });

  it('GEMMs grow linearly with the draft depth (plus the fixed fc), the LM head with its weighted rows', () => {
    const f = (layers: number, rows: number) => drafterStepFlops(drafterConfigFor(target, layers, 8, [1, 3, 5], 999), [seq(rows)]);
    const [f1, f2, f3] = [f(1, 10), f(2, 10), f(3, 10)];
    expect(f3.gemm - f2.gemm).toBeCloseTo(f2.gemm - f1.gemm, 6);
    expect(f1.gemm - (f2.gemm - f1.gemm)).toBeGreaterThan(0); // the fc projection, present at any depth
    expect(f(2, 20).lmHead).toBeCloseTo(2 * f(2, 10).lmHead, 6);
    expect(f(2, 20).gemm).toBe(f(2, 10).gemm);
    expect(f1.total).toBeCloseTo(f1.gemm + f1.lmHead + f1.attention, 6);
  });

  it('attention counts only kept blocks, and later anchors see more context', () => {
    const c = drafterConfigFor(target, 2, 8, [1, 3, 5], 999);
    expect(drafterStepFlops(c, [seq(10, 0)]).attention).toBe(0);
    const early = drafterStepFlops(c, [{ ...seq(10), anchors: Int32Array.of(10, 20, 30) }]).attention;
    const late = drafterStepFlops(c, [{ ...seq(10), anchors: Int32Array.of(100, 120, 150) }]).attention;
    expect(late).toBeGreaterThan(early);
    // Two sequences cost twice one.
    expect(drafterStepFlops(c, [seq(10), seq(10)]).total).toBeCloseTo(2 * drafterStepFlops(c, [seq(10)]).total, 6);
  });
});
