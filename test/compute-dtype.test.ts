// Compute dtype 'bf16' (model/layer-ops.ts) on the cpu: a bf16 linear (forward and both gradients) equals an f64
// recomputation of the bf16-rounded operands within f32 accumulation error; the tiny model's perplexity (paro eval
// --compute-dtype bf16) and a drafter's training losses stay close to f32; 'f32' leaves results unchanged.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { CpuBackend } from '../src/engine/cpu/backend.js';
import type { Backend, Tensor } from '../src/engine/backend.js';
import { Rng } from '../src/numerics/rng.js';
import { applyLinear, denseLinear, linearInputGrad, linearWeightGrad, type ComputeDtype } from '../src/model/layer-ops.js';
import { resolveEvalSettings, runEvalJob } from '../src/jobs/eval.js';
import { resolveJobComputeDtype } from '../src/jobs/compute-dtype.js';
import { loadModel } from '../src/model/load.js';
import { Drafter, drafterGemmWeights, drafterInvFreq, freeDrafterGemmWeights, freeTrainSaved, trainBackward, trainForward, type TrainSequence } from '../src/dflash/drafter.js';
import { drafterTensors, freeDrafterWeights, initDrafterWeights, zerosLike, type SharedTargetParts } from '../src/dflash/drafter-weights.js';
import { headLoss } from '../src/dflash/loss.js';
import { runGenerateData } from '../src/jobs/generate-data.js';
import { runTrainDrafter } from '../src/jobs/train-drafter.js';
import { runEvalDrafter } from '../src/jobs/eval-drafter.js';
import { DEMO_MODEL } from './fixtures-path.js';
import { scratchDir } from './scratch.js';
import { randn, smallDrafterConfig } from './dflash-helpers.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DATA = path.join(ROOT, 'calib', 'default.jsonl');

let be: Backend;
beforeAll(async () => {
  be = await CpuBackend.create();
});

/** x rounded to the nearest bf16, ties to even (written here from the format, not taken from src/numerics). */
function bf16(x: Float32Array): Float64Array {
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  return Float64Array.from(x, (v) => {
    f[0] = v;
    const lower = u[0] & 0xffff;
    let upper = u[0] >>> 16;
    if (lower > 0x8000 || (lower === 0x8000 && (upper & 1) === 1)) upper += 1;
    u[0] = upper << 16;
    return f[0];
  });
}

/**
 * |got − ref| against the f32 accumulation bound of a K-term dot product: K·2⁻²⁴·Σ|aᵢbᵢ| (plus the final rounding).
 * Returns the largest ratio error / bound over all entries (≤ 1 passes).
 */
function worstRatio(got: Float32Array, ref: Float64Array, absSum: Float64Array, K: number): number {
  let worst = 0;
  for (let i = 0; i < got.length; i++) {
    const bound = (K + 1) * 2 ** -24 * absSum[i] + 1e-30;
    worst = Math.max(worst, Math.abs(got[i] - ref[i]) / bound);
  }
  return worst;
}

/** C = op(A)·op(B) in f64 with Σ|products|: A [M, K] (or Aᵀ), B [N, K] (transB) or [K, N]. */
function gemm64(a: Float64Array, b: Float64Array, M: number, K: number, N: number, o: { transA?: boolean; transB?: boolean }): { c: Float64Array; abs: Float64Array } {
  const c = new Float64Array(M * N);
  const abs = new Float64Array(M * N);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0;
      let t = 0;
      for (let k = 0; k < K; k++) {
        const av = o.transA ? a[k * M + i] : a[i * K + k];
        const bv = o.transB ? b[j * K + k] : b[k * N + j];
        s += av * bv;
        t += Math.abs(av * bv);
      }
      c[i * N + j] = s;
      abs[i * N + j] = t;
    }
  }
  return { c, abs };
}

describe('bf16 linear on the cpu', () => {
  const M = 7;
  const K = 96;
  const N = 5;
  const rng = new Rng(11);
  const x = randn(rng, M * K);
  const w = randn(rng, N * K, 0.2);
  const dy = randn(rng, M * N);

  it('y = x·Wᵀ equals the f64 product of the bf16-rounded operands, f32 out; f32 mode does not round', () => {
    const X = be.fromHost(x, [M, K]);
    const W16 = be.cast(be.fromHost(w, [N, K]), 'bf16');
    const y = applyLinear(be, X, denseLinear(W16), 'bf16');
    expect(y.dtype).toBe('f32');
    const ref = gemm64(bf16(x), bf16(w), M, K, N, { transB: true });
    expect(worstRatio(be.toHost(y), ref.c, ref.abs, K)).toBeLessThanOrEqual(1);
    // The same weights at 'f32' multiply the unrounded x: far from the rounded reference (the test can fail).
    const y32 = applyLinear(be, X, denseLinear(W16), 'f32');
    expect(worstRatio(be.toHost(y32), ref.c, ref.abs, K)).toBeGreaterThan(4);
    be.free(X, W16, y, y32);
  });

  it('dW = dyᵀ·x and dx = dy·W equal the f64 products of the bf16-rounded operands', () => {
    const X = be.fromHost(x, [M, K]);
    const DY = be.fromHost(dy, [M, N]);
    const W16 = be.cast(be.fromHost(w, [N, K]), 'bf16');
    const dW = linearWeightGrad(be, DY, X, 'bf16');
    const refW = gemm64(bf16(dy), bf16(x), N, M, K, { transA: true });
    expect(dW.dtype).toBe('f32');
    expect(worstRatio(be.toHost(dW), refW.c, refW.abs, M)).toBeLessThanOrEqual(1);
    const dx = linearInputGrad(be, DY, W16, undefined, 'bf16');
    const refX = gemm64(bf16(dy), bf16(w), M, N, K, {});
    expect(worstRatio(be.toHost(dx), refX.c, refX.abs, N)).toBeLessThanOrEqual(1);
    // Accumulating into an f32 tensor adds the same product.
    const into = be.fromHost(new Float32Array(M * K).fill(0.5), [M, K]);
    linearInputGrad(be, DY, W16, into, 'bf16');
    const acc = be.toHost(into);
    const dxh = be.toHost(dx);
    for (let i = 0; i < acc.length; i++) expect(Math.abs(acc[i] - 0.5 - dxh[i])).toBeLessThanOrEqual(1e-6 * (1 + Math.abs(dxh[i])));
    be.free(X, DY, W16, dW, dx, into);
  });

  it('matmul outDtype: f32 or the operands\' dtype, never with accumulate', () => {
    const A = be.cast(be.fromHost(x, [M, K]), 'bf16');
    const B = be.cast(be.fromHost(w, [N, K]), 'bf16');
    const C = be.matmul(A, B, { transB: true, outDtype: 'f32' });
    expect(C.dtype).toBe('f32');
    const A32 = be.fromHost(x, [M, K]);
    expect(() => be.matmul(A32, B, { transB: true, outDtype: 'bf16' })).toThrow(/outDtype/);
    expect(() => be.matmul(A, B, { transB: true, outDtype: 'f32', accumulate: C })).toThrow(/outDtype or accumulate/);
    be.free(A, B, C, A32);
  });
});

describe('jobs: --compute-dtype', () => {
  it('auto is bf16 on cuda and f32 on the cpu', () => {
    expect(resolveJobComputeDtype('auto', 'cuda')).toBe('bf16');
    expect(resolveJobComputeDtype('auto', 'cpu')).toBe('f32');
    expect(resolveJobComputeDtype('bf16', 'cpu')).toBe('bf16');
    expect(() => resolveEvalSettings({ computeDtype: 'f16' as never })).toThrow(/compute dtype/);
  });

  it('paro eval of the tiny model: bf16 perplexity within 0.5 % of f32 (and not equal to it); auto on the cpu is f32', () => {
    const base = { seqLen: 64, maxWindows: 6, batch: 3, startToken: 2000 };
    const f32 = runEvalJob(be, { modelDir: DEMO_MODEL, dataFile: DATA, settings: resolveEvalSettings({ ...base, computeDtype: 'f32' }) });
    const auto = runEvalJob(be, { modelDir: DEMO_MODEL, dataFile: DATA, settings: resolveEvalSettings(base) });
    const b16 = runEvalJob(be, { modelDir: DEMO_MODEL, dataFile: DATA, settings: resolveEvalSettings({ ...base, computeDtype: 'bf16' }) });
    expect(f32.computeDtype).toBe('f32');
    expect(auto.computeDtype).toBe('f32');
    expect(auto.ppl).toBe(f32.ppl);
    expect(b16.computeDtype).toBe('bf16');
    expect(b16.ppl).not.toBe(f32.ppl);
    expect(Math.abs(b16.ppl - f32.ppl) / f32.ppl).toBeLessThan(0.005);
  }, 120_000);

  it('Decoder.setComputeDtype("bf16") converts the linear weights and the head once; logits stay f32', () => {
    const m = loadModel(be, DEMO_MODEL);
    m.decoder.setComputeDtype('bf16');
    const L = m.decoder.weights.layers[0];
    for (const lin of [L.q, L.k, L.v, L.o, L.gate, L.up, L.down]) expect(lin.weight.dtype).toBe('bf16');
    expect(m.decoder.weights.lmHead.dtype).toBe('bf16');
    expect(L.inputNorm.dtype).toBe('f32');
    const r = m.decoder.forward(Int32Array.from([1, 2, 3, 4]), 1);
    expect(r.logits!.dtype).toBe('f32');
    be.free(r.logits, r.hidden);
  });
});

describe('drafter at compute dtype bf16 (cpu)', () => {
  const c = smallDrafterConfig({ hiddenSize: 32, intermediateSize: 48, numHeads: 4, numKvHeads: 2, headDim: 8, vocabSize: 40 });
  const S = 24;

  function data(seed: number) {
    const rng = new Rng(seed);
    const shared: SharedTargetParts = {
      embed: be.fromHost(randn(rng, c.vocabSize * c.hiddenSize), [c.vocabSize, c.hiddenSize]),
      lmHead: be.fromHost(randn(rng, c.vocabSize * c.hiddenSize, 0.5), [c.vocabSize, c.hiddenSize]),
    };
    const nTaps = c.targetLayerIds.length;
    const taps = be.fromHost(randn(rng, S * nTaps * c.hiddenSize), [S, nTaps * c.hiddenSize]);
    const ids = Int32Array.from({ length: S }, () => 2 + rng.nextInt(c.vocabSize - 2));
    const anchors = Int32Array.from([0, 5, 9, 14, 18]);
    const keep = Uint8Array.from([1, 1, 1, 1, 1]);
    const B = c.blockSize;
    const blockIds = new Int32Array(anchors.length * B).fill(c.maskTokenId);
    const labels = new Int32Array(anchors.length * B).fill(-1);
    const rowW = new Float32Array(anchors.length * B);
    anchors.forEach((a, n) => {
      blockIds[n * B] = ids[a];
      for (let k = 1; k < B; k++) if (a + k < S) { labels[n * B + k] = ids[a + k]; rowW[n * B + k] = 1; }
    });
    const sum = rowW.reduce((s, v) => s + v, 0);
    for (let i = 0; i < rowW.length; i++) rowW[i] /= sum;
    const seq: TrainSequence = { taps, anchors, keep, blockIds };
    return { shared, seq, labels, rowW };
  }

  /** Losses of `steps` AdamW steps from the same start at compute dtype cd (bf16 GEMM weights made once per step). */
  function train(cd: ComputeDtype, steps: number): number[] {
    const { shared, seq, labels, rowW } = data(5);
    const w = initDrafterWeights(be, c, 3, 0.5);
    const m = zerosLike(be, c);
    const v = zerosLike(be, c);
    const inv = drafterInvFreq(c);
    const losses: number[] = [];
    for (let step = 1; step <= steps; step++) {
      const gemm = drafterGemmWeights(be, w, cd);
      const { out, saved } = trainForward(be, c, w, shared, inv, seq, true, { gemm, groupBlocks: 2 });
      const h = headLoss(be, out, shared.lmHead, labels, rowW, 8, true, cd);
      losses.push(h.loss);
      const g = trainBackward(be, c, w, inv, saved!, h.dHidden);
      freeTrainSaved(be, saved!);
      freeDrafterGemmWeights(be, gemm);
      be.free(out, h.dHidden);
      for (const { tensor, spec } of drafterTensors(c, w)) {
        be.adamw(tensor, spec.get(g), spec.get(m), spec.get(v), { lr: 3e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, step });
      }
      freeDrafterWeights(be, c, g);
    }
    for (const t of [w, m, v]) freeDrafterWeights(be, c, t);
    be.free(shared.embed, shared.lmHead, seq.taps);
    return losses;
  }

  it('training losses over 6 steps stay within 2 % of f32 and fall as they do', () => {
    const l32 = train('f32', 6);
    const l16 = train('bf16', 6);
    expect(l32[5]).toBeLessThan(l32[0]);
    expect(l16[5]).toBeLessThan(l16[0]);
    for (let i = 0; i < l32.length; i++) expect(Math.abs(l16[i] - l32[i]) / l32[i]).toBeLessThan(0.02);
    expect(l16[0]).not.toBe(l32[0]);
  });

  it('gradients at bf16 point the same way as at f32 (cosine > 0.995 per tensor)', () => {
    const { shared, seq, labels, rowW } = data(8);
    const w = initDrafterWeights(be, c, 4, 0.5);
    const inv = drafterInvFreq(c);
    const grads = (['f32', 'bf16'] as const).map((cd) => {
      const { out, saved } = trainForward(be, c, w, shared, inv, seq, true, { computeDtype: cd, groupBlocks: 1000 });
      const h = headLoss(be, out, shared.lmHead, labels, rowW, 64, true, cd);
      const g = trainBackward(be, c, w, inv, saved!, h.dHidden);
      freeTrainSaved(be, saved!);
      be.free(out, h.dHidden);
      return g;
    });
    for (const { spec } of drafterTensors(c, grads[0])) {
      const a = be.toHost(spec.get(grads[0]));
      const b = be.toHost(spec.get(grads[1]));
      let ab = 0, aa = 0, bb = 0;
      for (let i = 0; i < a.length; i++) { ab += a[i] * b[i]; aa += a[i] * a[i]; bb += b[i] * b[i]; }
      expect(ab / Math.sqrt(aa * bb + 1e-300)).toBeGreaterThan(0.995);
    }
    for (const g of grads) freeDrafterWeights(be, c, g);
    freeDrafterWeights(be, c, w);
  });

  it('inference draft at bf16: f32 logits within 3 % (relative RMS) of the f32 draft', () => {
    const { shared, seq } = data(9);
    const w = initDrafterWeights(be, c, 6, 0.5);
    const run = (cd: ComputeDtype): Float32Array => {
      const d = new Drafter(be, c, w, shared, 'f32', cd);
      const cache = d.newCache(32);
      const ids = new Int32Array(c.blockSize).fill(c.maskTokenId);
      ids[0] = 3;
      const ctx = be.fromHost(be.toHost(seq.taps).subarray(0, 10 * seq.taps.shape[1]), [10, seq.taps.shape[1]]);
      const hidden = d.draft(cache, ctx, ids, 10);
      const logits: Tensor = d.logits(hidden);
      expect(logits.dtype).toBe('f32');
      const out = be.toHost(logits);
      be.free(ctx, hidden, logits);
      cache.free();
      d.dispose();
      return out;
    };
    const a = run('f32');
    const b = run('bf16');
    let num = 0, den = 0;
    for (let i = 0; i < a.length; i++) { num += (a[i] - b[i]) ** 2; den += a[i] ** 2; }
    expect(Math.sqrt(num / den)).toBeLessThan(0.03);
    expect(Math.sqrt(num / den)).toBeGreaterThan(0);
    freeDrafterWeights(be, c, w);
  });
});

describe('dflash jobs at --compute-dtype bf16 (cpu)', () => {
  it('generate-data and train-drafter run at bf16, report it, and stay close to f32', () => {
    const dir = scratchDir('compute-dtype-jobs');
    const prompts = path.join(dir, 'prompts.jsonl');
    writeFileSync(prompts, ['def add(a, b):', 'import os\n', 'class Foo:\n    def', 'x = [1, 2'].map((t) => JSON.stringify({ text: t })).join('\n') + '\n');
    const gen = (cd: 'f32' | 'bf16') => runGenerateData(be, {
      targetDir: DEMO_MODEL, promptsFile: prompts, outFile: path.join(dir, `data-${cd}.jsonl`), maxNewTokens: 24, ignoreEos: true, computeDtype: cd,
    });
    const g32 = gen('f32');
    const g16 = gen('bf16');
    expect(g32.computeDtype).toBe('f32');
    expect(g16.computeDtype).toBe('bf16');
    expect(g16.responseTokens).toBe(g32.responseTokens);
    // Training on the f32 data at both compute dtypes: the same schedule, losses within 2 %.
    const train = (cd: 'f32' | 'bf16') => runTrainDrafter(be, {
      targetDir: DEMO_MODEL, dataFile: path.join(dir, 'data-f32.jsonl'), outDir: path.join(dir, `drafter-${cd}`), layers: 1, blockSize: 4,
      anchors: 8, epochs: 3, lr: 3e-3, seqLen: 64, batch: 2, seed: 1, init: 'target', computeDtype: cd,
    });
    const t32 = train('f32');
    const t16 = train('bf16');
    expect(t16.computeDtype).toBe('bf16');
    expect(t16.steps).toBe(t32.steps);
    expect(Number.isFinite(t16.finalLoss)).toBe(true);
    expect(t16.finalLoss).not.toBe(t32.finalLoss);
    expect(Math.abs(t16.finalLoss - t32.finalLoss) / t32.finalLoss).toBeLessThan(0.02);
    const manifest = JSON.parse(readFileSync(path.join(dir, 'drafter-bf16', 'manifest.json'), 'utf8')) as { settings: { computeDtype?: string } };
    expect(manifest.settings.computeDtype).toBe('bf16');
    // dflash eval at bf16 (bf16 KV caches too): speculative decoding still equals plain decoding at T = 0.
    const ev = runEvalDrafter(be, {
      targetDir: DEMO_MODEL, drafterDir: path.join(dir, 'drafter-bf16'), promptsFile: prompts, maxNewTokens: 24, ignoreEos: true, computeDtype: 'bf16',
    });
    expect(ev.computeDtype).toBe('bf16');
    expect(ev.equalOutputs).toBe(ev.promptCount);
    expect(() => runEvalDrafter(be, {
      targetDir: DEMO_MODEL, drafterDir: path.join(dir, 'drafter-bf16'), promptsFile: prompts, computeDtype: 'bf16', weightDtype: 'f32',
    })).toThrow(/contradicts/);
  }, 300_000);
});
