// Data-parallel ParoQuant (issue 12): which calibration windows each rank stores and computes (window-shares), and
// the rank logic of `paro quantize` with several cpu processes: 2 ranks through the real launcher and cpu Collective
// against one rank in this process (same validation losses per epoch and the same dequantized weights up to the f32
// reduction order; every rank the same losses; only rank 0 writes), and one rank failing on an input only it reads.
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Backend } from '../src/engine/backend.js';
import { rankShare, type Collective } from '../src/engine/collective.js';
import { CpuBackend } from '../src/engine/cpu/backend.js';
import { readPackedLinear } from '../src/io/int4-format.js';
import { SafetensorsFile } from '../src/io/safetensors.js';
import { resolveQuantizeSettings, runQuantizeJob, type QuantizeSettings } from '../src/jobs/quantize.js';
import { LINEAR_KEYS, LINEAR_NAMES } from '../src/model/weights.js';
import { effectiveWeight } from '../src/paroquant/finalize.js';
import { largestShare, windowShares } from '../src/paroquant/window-shares.js';
import { FIXTURES, HAVE_FIXTURES } from './fixtures-path.js';
import { ROOT, runNode, type ProcResult } from './helpers/dp-procs.js';
import type { QuantizeSpec } from './helpers/dp-jobs.js';
import { scratchDir } from './scratch.js';

/** Every batch of the single-rank run: [first window, count], training then validation. */
function batchesOf(nTrain: number, nVal: number, B: number): [number, number][] {
  const out: [number, number][] = [];
  for (let s = 0; s < nTrain; s += B) out.push([s, Math.min(B, nTrain - s)]);
  for (let s = 0; s < nVal; s += B) out.push([nTrain + s, Math.min(B, nVal - s)]);
  return out;
}

describe('windowShares: the windows a rank stores', () => {
  it('one rank holds every window in order, with the single-rank batches', () => {
    const sh = windowShares(10, 3, 4, 0, 1);
    expect(Array.from(sh.windows)).toEqual(Array.from({ length: 13 }, (_, i) => i));
    expect(sh.train).toEqual([{ n: 4, count: 4, local: 0 }, { n: 4, count: 4, local: 4 }, { n: 2, count: 2, local: 8 }]);
    expect(sh.val).toEqual([{ n: 3, count: 3, local: 10 }]);
  });

  it('an uneven last batch: 10 training windows in batches of 4 over 3 ranks', () => {
    // Batches [0,4) [4,8) [8,10): rank 0 takes 2+2+1 (the first n % W ranks take one more), rank 1 1+1+1, rank 2 1+1+0.
    const r0 = windowShares(10, 0, 4, 0, 3);
    const r1 = windowShares(10, 0, 4, 1, 3);
    const r2 = windowShares(10, 0, 4, 2, 3);
    expect(Array.from(r0.windows)).toEqual([0, 1, 4, 5, 8]);
    expect(Array.from(r1.windows)).toEqual([2, 6, 9]);
    expect(Array.from(r2.windows)).toEqual([3, 7]);
    expect(r2.train).toEqual([{ n: 4, count: 1, local: 0 }, { n: 4, count: 1, local: 1 }, { n: 2, count: 0, local: 2 }]);
    expect(r0.train.map((b) => b.local)).toEqual([0, 2, 4]);
  });

  it('more ranks than windows in a batch: the extra ranks hold nothing of it but still step with the others', () => {
    const sh = [0, 1, 2, 3].map((r) => windowShares(5, 2, 2, r, 4));
    // Training batches of 2, 2, 1 and one validation batch of 2.
    expect(sh.map((s) => Array.from(s.windows))).toEqual([[0, 2, 4, 5], [1, 3, 6], [], []]);
    for (const s of sh) {
      expect(s.train.map((b) => b.n)).toEqual([2, 2, 1]);
      expect(s.val.map((b) => b.n)).toEqual([2]);
    }
    expect(sh[3].train.every((b) => b.count === 0)).toBe(true);
  });

  it('for many shapes: the ranks together hold each batch exactly once, in rank order, and their stores are consistent', () => {
    for (const [nTrain, nVal, B] of [[1, 1, 1], [7, 2, 3], [16, 4, 16], [33, 5, 8], [128, 16, 16], [3, 0, 5]]) {
      for (const W of [1, 2, 3, 4, 5, 8]) {
        const shares = Array.from({ length: W }, (_, r) => windowShares(nTrain, nVal, B, r, W));
        const batches = batchesOf(nTrain, nVal, B);
        batches.forEach(([first, n], bi) => {
          const joined: number[] = [];
          shares.forEach((sh, r) => {
            const b = bi < sh.train.length ? sh.train[bi] : sh.val[bi - sh.train.length];
            expect(b.n).toBe(n);
            const { start, end } = rankShare(n, r, W);
            expect(b.count).toBe(end - start);
            expect(b.count).toBeLessThanOrEqual(largestShare(B, W));
            // The rank's stored windows of this batch are where `local` says.
            const mine = Array.from(sh.windows.subarray(b.local, b.local + b.count));
            expect(mine).toEqual(Array.from({ length: b.count }, (_, i) => first + start + i));
            joined.push(...mine);
          });
          expect(joined).toEqual(Array.from({ length: n }, (_, i) => first + i));
        });
        // Every window stored by exactly one rank; each store holds only the rank's windows.
        const all = shares.flatMap((s) => Array.from(s.windows)).sort((a, b) => a - b);
        expect(all).toEqual(Array.from({ length: nTrain + nVal }, (_, i) => i));
        for (const sh of shares) expect(sh.windows.length).toBe([...sh.train, ...sh.val].reduce((a, b) => a + b.count, 0));
      }
    }
  });

  it('rejects a rank outside the world and a non-positive batch', () => {
    expect(() => windowShares(4, 0, 2, 2, 2)).toThrow(/rank 2 of world size 2/);
    expect(() => windowShares(4, 0, 0, 0, 1)).toThrow(/batch/);
  });
});

const MODEL = path.join(FIXTURES, 'tiny-qwen3');
const CALIB = path.join(FIXTURES, 'text/train.jsonl');
const DP_JOBS = path.join(ROOT, 'test', 'helpers', 'dp-jobs.ts');
/**
 * 3 training windows in batches of 2 (the last batch uneven: 1 window, which rank 1 has no share of) and 2 validation
 * windows. eps 1e-2 instead of the paper's 1e-10: with a tiny eps Adam's first steps move every element by ±lr
 * whatever its gradient's size, so a gradient element that is zero up to rounding flips a whole step on the order of
 * the f32 sums (measured with eps 1e-10: val losses 1e-4..1e-2 apart after a few blocks); with eps above the
 * gradients' size the update follows the gradient, and the comparison measures the summed gradients themselves
 * (measured: ≤ 1e-7 apart, while one epoch moves the losses by about 1e-3).
 */
const SETTINGS: Partial<QuantizeSettings> = { samples: 3, valSamples: 2, seqLen: 32, epochs: [1, 1], batchSize: 2, eps: 1e-2 };

interface RankResult { worldSize: number; files: string[]; blocks: { stage: number; epoch: number; valLoss: number; trainLoss: number | null }[][] }

/** `dp-jobs.ts quantize` with --ranks n through the real launcher (not itself a worker). */
function launch(dir: string, spec: QuantizeSpec, ranks: number): Promise<ProcResult> {
  const specFile = path.join(dir, 'spec.json');
  const results = path.join(dir, 'results');
  mkdirSync(results, { recursive: true });
  writeFileSync(specFile, JSON.stringify(spec));
  const env = { ...process.env };
  for (const k of ['RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT']) delete env[k];
  env.PARO_CPU_THREADS = '1'; // one compute thread per worker: the ranks share the machine's cores
  return runNode(DP_JOBS, ['quantize', specFile, results, '--ranks', String(ranks)], env, 50);
}

/** Dense effective weights Ŵ of every quantized linear of an output, as a loader computes them. */
function effectiveWeights(be: Backend, dir: string, layers: number): Map<string, Float32Array> {
  const f = SafetensorsFile.open(path.join(dir, 'model.safetensors'));
  const out = new Map<string, Float32Array>();
  try {
    for (let l = 0; l < layers; l++) {
      for (const k of LINEAR_KEYS) {
        const name = `model.layers.${l}.${LINEAR_NAMES[k]}`;
        const t = effectiveWeight(be, readPackedLinear(f, name, resolveQuantizeSettings(SETTINGS).groupSize));
        out.set(name, be.toHost(t));
        be.free(t);
      }
    }
  } finally {
    f.close();
  }
  return out;
}

describe.skipIf(!HAVE_FIXTURES)('paro quantize on 2 cpu processes (launcher --ranks 2) against one', () => {
  let be: Backend;
  let tmp: string;
  let single: Awaited<ReturnType<typeof runQuantizeJob>>;
  beforeAll(async () => {
    be = await CpuBackend.create();
    tmp = scratchDir('dp-quantize-');
    mkdirSync(path.join(tmp, 'one'));
    single = await runQuantizeJob(be, {
      modelDir: MODEL, outDir: path.join(tmp, 'one', 'out'), calibFile: CALIB, resume: false, force: false, toolVersion: 'test',
      settings: resolveQuantizeSettings(SETTINGS),
    });
  }, 60_000);

  it('the same validation losses per epoch and dequantized weights; every rank the same; only rank 0 writes', async () => {
    const dir = path.join(tmp, 'two');
    mkdirSync(dir);
    const out = path.join(dir, 'out');
    const r = await launch(dir, { input: { modelDir: MODEL, outDir: out, calibFile: CALIB, resume: false, force: false, toolVersion: 'test', settings: SETTINGS } }, 2);
    expect(r.code, r.stderr).toBe(0);
    const ranks = [0, 1].map((k) => JSON.parse(readFileSync(path.join(dir, 'results', `rank-${k}.json`), 'utf8')) as RankResult);
    expect(ranks.map((x) => x.worldSize)).toEqual([2, 2]);
    // Every rank took the same decisions from the same summed losses: bit-equal logs.
    expect(ranks[1].blocks).toEqual(ranks[0].blocks);
    // Against one rank: the f32 sums in another order only.
    const one = single.blocks.map((b) => b.epochs);
    expect(ranks[0].blocks.length).toBe(one.length);
    let worst = 0;
    one.forEach((epochs, l) => {
      expect(ranks[0].blocks[l].map((e) => [e.stage, e.epoch])).toEqual(epochs.map((e) => [e.stage, e.epoch]));
      epochs.forEach((e, i) => {
        worst = Math.max(worst, Math.abs(ranks[0].blocks[l][i].valLoss - e.valLoss) / e.valLoss);
      });
    });
    expect(worst).toBeLessThan(1e-6);
    // Dequantized weights: equal up to a rare code that rounding sends to the neighbouring level.
    const a = effectiveWeights(be, single.out, single.blocks.length);
    const b = effectiveWeights(be, out, single.blocks.length);
    let differ = 0;
    let total = 0;
    for (const [name, wa] of a) {
      const wb = b.get(name)!;
      let scale = 0;
      for (const v of wa) scale = Math.max(scale, Math.abs(v));
      for (let i = 0; i < wa.length; i++) if (Math.abs(wa[i] - wb[i]) > 1e-5 * scale) differ++;
      total += wa.length;
    }
    expect(differ / total).toBeLessThan(1e-3);
    // Only rank 0 wrote: the output as one rank writes it, nothing else beside it; the manifest records 2 ranks.
    expect(readdirSync(out).sort()).toEqual(readdirSync(single.out).sort());
    expect(readdirSync(dir).sort()).toEqual(['out', 'results', 'spec.json']);
    expect(ranks[0].files).toEqual(['model.safetensors']);
    expect(ranks[1].files).toEqual([]);
    const manifest = JSON.parse(readFileSync(path.join(out, 'manifest.json'), 'utf8')) as { metrics: { worldSize: number } };
    expect(manifest.metrics.worldSize).toBe(2);
  }, 60_000);

  it('--resume of a one-rank partial on 2 ranks: rank 0 reads the finished blocks and sends them to rank 1', async () => {
    const dir = path.join(tmp, 'resume');
    mkdirSync(dir);
    const out = path.join(dir, 'out');
    const job = { modelDir: MODEL, outDir: out, calibFile: CALIB, resume: false, force: false, toolVersion: 'test' };
    // One rank, stopped after block 2: the partial holds blocks 0..2.
    const stop = { onBlockEnd: (l: number) => { if (l === 2) throw new Error('interrupted'); } };
    await expect(runQuantizeJob(be, { ...job, settings: resolveQuantizeSettings(SETTINGS) }, stop)).rejects.toThrow(/interrupted/);
    const r = await launch(dir, { input: { ...job, resume: true, settings: SETTINGS } }, 2);
    expect(r.code, r.stderr).toBe(0);
    const ranks = [0, 1].map((k) => JSON.parse(readFileSync(path.join(dir, 'results', `rank-${k}.json`), 'utf8')) as RankResult);
    // Block 3 was optimized on 2 ranks from X′ through the resumed blocks (rank 1's came from rank 0): the single
    // run's losses, the same on both ranks.
    const one = single.blocks.map((b) => b.epochs);
    for (const l of [3]) {
      expect(ranks[1].blocks[l]).toEqual(ranks[0].blocks[l]);
      one[l].forEach((e, i) => expect(Math.abs(ranks[0].blocks[l][i].valLoss - e.valLoss) / e.valLoss).toBeLessThan(1e-6));
    }
    // Blocks 0..2 as the one-rank run wrote them, byte for byte.
    const fa = SafetensorsFile.open(path.join(single.out, 'model.safetensors'));
    const fb = SafetensorsFile.open(path.join(out, 'model.safetensors'));
    try {
      const names = fa.names().filter((n) => /^model\.layers\.[012]\./.test(n));
      expect(names.length).toBeGreaterThan(0);
      for (const n of names) expect(Buffer.compare(fb.readBytes(n), fa.readBytes(n)), n).toBe(0);
    } finally {
      fa.close();
      fb.close();
    }
  }, 60_000);

  it('refuses more ranks than windows in a batch before any work', async () => {
    const notCalled = (): never => { throw new Error('no collective call expected'); };
    const three: Collective = { rank: 0, worldSize: 3, allReduce: notCalled, broadcast: notCalled, allReduceNumbers: notCalled, barrier: notCalled, close: () => {} };
    const out = path.join(tmp, 'three');
    await expect(runQuantizeJob(be, {
      modelDir: MODEL, outDir: out, calibFile: CALIB, resume: false, force: false, toolVersion: 'test', settings: resolveQuantizeSettings(SETTINGS),
    }, {}, three)).rejects.toThrow(/--batch-size 2 is smaller than the 3 ranks/);
    expect(existsSync(out)).toBe(false);
  });

  it('a rank that cannot read its calibration file ends the run with its error; no output is left', async () => {
    const dir = path.join(tmp, 'fail');
    mkdirSync(dir);
    const out = path.join(dir, 'out');
    // A real failure of rank 1 alone: its calibration file does not exist (rank 0 reads the real one).
    const missing = path.join(dir, 'no-such-calib.jsonl');
    const spec: QuantizeSpec = {
      input: { modelDir: MODEL, outDir: out, calibFile: CALIB, resume: false, force: false, toolVersion: 'test', settings: SETTINGS },
      rankInput: { 1: { calibFile: missing } },
    };
    const r = await launch(dir, spec, 2);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/rank 1/);
    expect(r.stderr).toContain('no-such-calib.jsonl');
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(path.join(dir, 'results'))).toEqual([]);
  }, 60_000);
});
