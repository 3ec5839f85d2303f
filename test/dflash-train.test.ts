// The trainer end to end on a tiny random target (dflash-spec §3, §8 items 8–9): it learns, keeps the frozen
// embedding / LM head bit-identical, follows warmup + cosine, clips the global grad norm to 1, resumes an
// interrupted run to the same result, and refuses bad input with clear errors and no partial output.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CpuBackend } from '../src/engine/cpu/backend.js';
import type { Backend } from '../src/engine/backend.js';
import { Rng } from '../src/numerics/rng.js';
import { warmupCosineLr } from '../src/numerics/schedule.js';
import { trainStep } from '../src/dflash/trainer.js';
import { autoEpochs, autoLr, partialDirFor, readTrainingData, runTrainDrafter, type TrainDrafterInput } from '../src/jobs/train-drafter.js';
import { drafterTensors, initDrafterWeights, zerosLike } from '../src/dflash/drafter-weights.js';
import { drafterInvFreq } from '../src/dflash/drafter.js';
import { targetTaps } from '../src/dflash/features.js';
import { loadDrafter } from '../src/dflash/load-drafter.js';
import { smallDrafterConfig, tinyTargetDecoder, writeTinyTarget } from './dflash-helpers.js';

let be: Backend;
let tmp: string;
let targetDir: string;
let dataFile: string;

/** Prompt of random tokens, response a shifted counting pattern (learnable from the anchor token alone). */
function records(n: number, seed: number): string {
  const rng = new Rng(seed);
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const prompt = Array.from({ length: 4 + rng.nextInt(4) }, () => 2 + rng.nextInt(18));
    const start = rng.nextInt(18);
    const response = Array.from({ length: 24 + rng.nextInt(8) }, (_, k) => 2 + ((start + k) % 18));
    lines.push(JSON.stringify({ prompt_ids: prompt, response_ids: response }));
  }
  return lines.join('\n') + '\n';
}

function settings(out: string, over: Partial<TrainDrafterInput> = {}): TrainDrafterInput {
  return {
    targetDir, dataFile, outDir: out, layers: 1, blockSize: 4, anchors: 8, epochs: 2, lr: 3e-3, warmup: 0.1, seqLen: 64, batch: 3,
    maskToken: '1', seed: 3, init: 'random', featureCacheMb: 1024, ...over,
  };
}

beforeAll(async () => {
  be = await CpuBackend.create();
  tmp = mkdtempSync(path.join(os.tmpdir(), 'dflash-train-'));
  targetDir = path.join(tmp, 'target');
  writeTinyTarget(targetDir, 5);
  dataFile = path.join(tmp, 'data.jsonl');
  writeFileSync(dataFile, records(12, 1));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('train-drafter', () => {
  it('learns, exports a loadable drafter, logs the warmup + cosine schedule', () => {
    const out = path.join(tmp, 'd1');
    const r = runTrainDrafter(be, settings(out, { epochs: 10 }));
    expect(r.steps).toBe(40);
    expect(r.drafter.targetLayerIds).toEqual([0, 1]); // 3-layer target: distinct layers 0..L−2
    expect(r.notes.join(' ')).toMatch(/distinct/);
    const csv = readFileSync(path.join(out, 'train-log.csv'), 'utf8').trim().split('\n').slice(1).map((l) => l.split(',').map(Number));
    const first = csv.slice(0, 4).reduce((a, x) => a + x[1], 0) / 4;
    const last = csv.slice(-4).reduce((a, x) => a + x[1], 0) / 4;
    expect(last).toBeLessThan(0.7 * first);
    csv.forEach((row, e) => expect(row[3]).toBeCloseTo(warmupCosineLr(3e-3, e, 40, 0.1), 12));
    expect(csv[0][3]).toBeCloseTo(3e-3 / 4, 12);
    expect(Math.max(...csv.map((x) => x[3]))).toBeCloseTo(3e-3, 12);
    expect(existsSync(path.join(out, 'train-curve.png'))).toBe(true);
    expect(readFileSync(path.join(out, 'train-curve.png')).subarray(1, 4).toString()).toBe('PNG');
    const d = loadDrafter(be, out);
    expect(d.cfg.blockSize).toBe(4);
    expect(d.cfg.maskTokenId).toBe(1);
    expect(existsSync(partialDirFor(out))).toBe(false);
  });

  it('--lr auto scales 6e-4 by √(4096 / hidden) within [1×, 5×]; --epochs auto reaches 800 steps within 6..20 epochs; --init target trains from the target\'s last layers', () => {
    expect(autoLr(4096)).toBeCloseTo(6e-4, 15);
    expect(autoLr(256)).toBeCloseTo(2.4e-3, 15);
    expect(autoLr(8192)).toBeCloseTo(6e-4, 15);
    expect([autoEpochs(100), autoEpochs(200_000), autoEpochs(134), autoEpochs(4)]).toEqual([8, 6, 6, 20]);
    const out = path.join(tmp, 'd-auto');
    const r = runTrainDrafter(be, settings(out, { epochs: 'auto', lr: 'auto', init: 'target' }));
    expect(r.totalSteps).toBe(80); // 12 records, batch 3: 4 steps per epoch → 20 epochs (the cap)
    expect(r.notes.join(' ')).toMatch(/--epochs auto: 20/);
    const want = autoLr(r.drafter.hiddenSize);
    expect(r.notes.join(' ')).toMatch(/--lr auto/);
    const csv = readFileSync(path.join(out, 'train-log.csv'), 'utf8').trim().split('\n').slice(1).map((l) => l.split(',').map(Number));
    expect(Math.max(...csv.map((x) => x[3]))).toBeCloseTo(want, 12);
    const manifest = JSON.parse(readFileSync(path.join(out, 'manifest.json'), 'utf8')) as { settings: { lr: number; init: string } };
    expect(manifest.settings).toMatchObject({ lr: want, init: 'target' });
  });

  it('keeps the embedding and LM head bit-identical and clips the global gradient norm to 1', () => {
    const target = tinyTargetDecoder(be, 5);
    const c = smallDrafterConfig({ numLayers: 1, targetLayerIds: [0, 1], numTargetLayers: 3, blockSize: 4 });
    const data = readTrainingData(dataFile, { seqLen: 64, blockSize: 4, vocabSize: 20, tokenizer: null });
    const shared = { embed: target.weights.embed, lmHead: target.weights.lmHead };
    const before = be.toHost(shared.embed);
    const st = { weights: initDrafterWeights(be, c, 1), m: zerosLike(be, c), v: zerosLike(be, c), step: 0 };
    const features = { taps: (i: number) => targetTaps(target, data.samples[i].ids, [0, 1]) };
    for (let step = 0; step < 3; step++) {
      const r = trainStep(be, c, st, shared, drafterInvFreq(c), features, data, [0, 1, 2], { epoch: step, seed: 1, anchors: 8, gamma: 4 });
      let sq = 0;
      for (const { tensor } of drafterTensors(c, r.grads)) sq += be.sumSquares(tensor);
      expect(r.gradNorm).toBeGreaterThan(1); // random init: clipping is active
      expect(Math.sqrt(sq)).toBeLessThanOrEqual(1 + 1e-5);
      for (const { spec, tensor } of drafterTensors(c, st.weights)) {
        be.adamw(tensor, spec.get(r.grads), spec.get(st.m), spec.get(st.v), { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, step: step + 1 });
      }
    }
    const after = be.toHost(shared.embed);
    expect(Buffer.from(after.buffer).equals(Buffer.from(before.buffer))).toBe(true);
    expect(shared.lmHead).toBe(shared.embed); // tied target: one frozen tensor
  });

  it('an interrupted run resumed with --resume ends bit-identical to an uninterrupted one', () => {
    const full = path.join(tmp, 'full');
    runTrainDrafter(be, settings(full, { epochs: 3 }));
    const cut = path.join(tmp, 'cut');
    expect(() => runTrainDrafter(be, settings(cut, { epochs: 3, checkpointEvery: 2 }), {
      onStep: (step) => { if (step === 5) throw new Error('simulated crash'); },
    })).toThrow(/simulated crash/);
    expect(existsSync(cut)).toBe(false);
    expect(existsSync(partialDirFor(cut))).toBe(true);
    expect(() => runTrainDrafter(be, settings(cut, { epochs: 3 }))).toThrow(/--resume/);
    expect(existsSync(path.join(partialDirFor(cut), 'progress.json'))).toBe(true); // refused, not deleted
    expect(() => runTrainDrafter(be, settings(cut, { epochs: 3, lr: 1e-3, resume: true }))).toThrow(/differs: settings\.lr/);
    // What a kill in the middle of the next checkpoint would leave: a half-written file and a complete one that
    // progress.json does not name yet. Both go; the run resumes from the checkpoint progress.json names.
    const partial = partialDirFor(cut);
    writeFileSync(path.join(partial, 'state-6.safetensors.tmp-4242'), 'half');
    writeFileSync(path.join(partial, 'state-6.safetensors'), 'whole but unnamed');
    let resumedAt = -1;
    const r = runTrainDrafter(be, settings(cut, { epochs: 3, resume: true }), {
      onStep: (step) => {
        if (resumedAt < 0) resumedAt = step;
        expect(readdirSync(partial).filter((n) => n.startsWith('state-6'))).toEqual([]);
      },
    });
    expect(resumedAt).toBe(5);
    expect(r.resumedFromStep).toBe(4);
    const a = readFileSync(path.join(full, 'model.safetensors'));
    const b = readFileSync(path.join(cut, 'model.safetensors'));
    expect(a.equals(b)).toBe(true);
  });

  it('measures τ on evaluation prompts at step 0, every evalEvery steps (default 50) and at the last step', () => {
    // A target with a tokenizer (the prompts are text): the example model.
    const demo = fileURLToPath(new URL('../examples/tiny-qwen3', import.meta.url));
    const prompts = path.join(tmp, 'eval-prompts.jsonl');
    writeFileSync(prompts, JSON.stringify({ prompt: 'def add(a, b):' }) + '\n');
    const base = { targetDir: demo, init: 'random' as const, evalPrompts: prompts, evalMaxNewTokens: 6 };
    const seen: number[] = [];
    const r = runTrainDrafter(be, settings(path.join(tmp, 'eval-3'), { ...base, evalEvery: 3, maxSteps: 4 }), { onEval: (e) => seen.push(e.step) });
    expect(r.evals.map((e) => e.step)).toEqual([0, 3, 4]);
    expect(seen).toEqual([0, 3, 4]);
    for (const e of r.evals) expect(e.tau).toBeGreaterThanOrEqual(1);
    const d = runTrainDrafter(be, settings(path.join(tmp, 'eval-default'), { ...base, maxSteps: 2 }));
    expect(d.evals.map((e) => e.step)).toEqual([0, 2]);
  });

  it('refuses bad input with clear errors and writes nothing', () => {
    const bad = (name: string, content: string) => {
      const f = path.join(tmp, name);
      writeFileSync(f, content);
      return f;
    };
    const cases: [Partial<TrainDrafterInput>, RegExp][] = [
      [{ dataFile: bad('empty-resp.jsonl', '{"prompt_ids":[3,4,5],"response_ids":[]}\n{"input_ids":[3,4],"loss_mask":[0,0]}\n') }, /no usable training sample: none of its 2 record\(s\) has a response token/],
      [{ dataFile: bad('short.jsonl', '{"prompt_ids":[3,4,5],"response_ids":[6,7,8]}\n') }, /fewer than 2·block_size = 8 response tokens/],
      [{ maskToken: '20' }, /--mask-token 20 is not a row of the target's embedding table/],
      [{ dataFile: bad('oov.jsonl', '{"prompt_ids":[3,4,5],"response_ids":[6,7,99]}\n') }, /99 is not a token id of the target/],
      [{ targetLayers: [0, 2] }, /only layers 0\.\.1 can be tapped/],
      // The job itself sees which evaluation settings were given (their defaults apply only with prompts).
      [{ evalEvery: 5 }, /^--eval-every needs --eval-prompts$/],
      [{ evalMaxPrompts: 2 }, /^--eval-max-prompts needs --eval-prompts$/],
      [{ evalMaxNewTokens: 16 }, /^--eval-max-new-tokens needs --eval-prompts$/],
    ];
    for (const [over, msg] of cases) {
      const out = path.join(tmp, 'bad-out');
      expect(() => runTrainDrafter(be, settings(out, over))).toThrow(msg);
      expect(existsSync(out)).toBe(false);
      expect(existsSync(partialDirFor(out))).toBe(false);
    }
  });

  it('checks the output before any heavy work: a path under a file, an input, a folder not ours, a locked output', () => {
    let featuresRan = false;
    const hooks = { onFeatures: () => { featuresRan = true; } };
    const aFile = path.join(tmp, 'a-file');
    writeFileSync(aFile, '');
    expect(() => runTrainDrafter(be, settings(path.join(aFile, 'x')), hooks)).toThrow(/a-file is not a directory/);
    expect(() => runTrainDrafter(be, settings(targetDir, { force: true }), hooks)).toThrow(/target input/);
    expect(() => runTrainDrafter(be, settings(path.join(targetDir, 'drafter'), { force: true }), hooks)).toThrow(/lies inside the target input/);
    const mine = path.join(tmp, 'mine');
    mkdirSync(mine);
    writeFileSync(path.join(mine, 'notes.txt'), 'keep me');
    expect(() => runTrainDrafter(be, settings(mine, { force: true }), hooks)).toThrow(/not written by this tool/);
    expect(readFileSync(path.join(mine, 'notes.txt'), 'utf8')).toBe('keep me');
    const locked = path.join(tmp, 'locked');
    writeFileSync(`${locked}.lock`, JSON.stringify({ pid: process.ppid, host: os.hostname() }));
    expect(() => runTrainDrafter(be, settings(locked), hooks)).toThrow(/another run/);
    expect(existsSync(partialDirFor(locked))).toBe(false);
    expect(featuresRan).toBe(false);
  });

  it('cleans what a kill during a checkpoint write left, replaces only its own output with --force, writes one manifest', () => {
    const out = path.join(tmp, 'clean');
    const leftovers = [path.join(tmp, `.clean.checkpoint.tmp-123-abcdef`), path.join(tmp, `.clean.checkpoint.old-123-abcdef`)];
    for (const d of leftovers) {
      mkdirSync(d);
      writeFileSync(path.join(d, 'state.safetensors'), 'x');
    }
    // An older version's checkpoint folder cannot be resumed: refused and kept, removed with --force.
    const legacy = `${out}.checkpoint`;
    mkdirSync(legacy);
    writeFileSync(path.join(legacy, 'state.json'), '{"step": 3}\n');
    expect(() => runTrainDrafter(be, settings(out, { epochs: 1 }))).toThrow(/older version.*--force/);
    expect(existsSync(path.join(legacy, 'state.json'))).toBe(true);
    const r = runTrainDrafter(be, settings(out, { epochs: 1, force: true }));
    expect(existsSync(legacy)).toBe(false);
    for (const d of leftovers) expect(existsSync(d)).toBe(false);
    expect(readdirSync(out).sort()).toEqual(['config.json', 'manifest.json', 'model.safetensors', 'train-curve.png', 'train-curve.svg', 'train-log.csv']);
    const m = JSON.parse(readFileSync(path.join(out, 'manifest.json'), 'utf8'));
    expect(m).toMatchObject({ schema: 'paro-dflash/manifest@1', tool: 'dflash', command: 'train-drafter', seed: 3, metrics: { steps: r.steps } });
    expect(m.inputs.map((i: { role: string }) => i.role)).toEqual(['target', 'data']);
    expect(m.outputs.map((o: { name: string }) => o.name)).toContain('model.safetensors');
    expect(existsSync(partialDirFor(out))).toBe(false);
    expect(existsSync(`${out}.lock`)).toBe(false);
    expect(() => runTrainDrafter(be, settings(out, { epochs: 1 }))).toThrow(/exists; pass --force/);
    runTrainDrafter(be, settings(out, { epochs: 1, force: true }));
    expect(existsSync(path.join(out, 'manifest.json'))).toBe(true);
  });

  it('a non-finite loss is an error naming the step, and leaves no output', () => {
    const out = path.join(tmp, 'nan');
    expect(() => runTrainDrafter(be, settings(out, { lr: 1e38, warmup: 0 }))).toThrow(/training diverged at step \d+ \(loss (NaN|-?Infinity)\)/);
    expect(existsSync(out)).toBe(false);
    expect(existsSync(partialDirFor(out))).toBe(false);
  });
});
