// paro eval --compare: KL(p_fp ‖ p_q) and top-1 agreement against a direct computation from full logits, the
// perplexities equal to plain evaluations of each model, and a model compared with itself.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { createBackend, parseDevice } from '../src/engine/select.js';
import type { Backend } from '../src/engine/backend.js';
import { perplexityWindows, readTextDocuments, tokenizeCorpus } from '../src/io/datasets.js';
import { loadTokenizer } from '../src/io/tokenizer.js';
import { resolveEvalSettings, runEvalJob } from '../src/jobs/eval.js';
import { resolveQuantizeSettings, runQuantizeJob } from '../src/jobs/quantize.js';
import { loadModel } from '../src/model/load.js';
import { scratchDir } from './scratch.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DEMO = path.join(ROOT, 'examples', 'tiny-qwen3');
const DATA = path.join(ROOT, 'calib', 'default.jsonl');
const settings = resolveEvalSettings({ seqLen: 48, maxWindows: 3, batch: 2, startToken: 5000 });

/** KL and argmax agreement from the full logits of both models, in f64, independently of jobs/eval-compare. */
function direct(be: Backend, qDir: string): { kl: number; top1: number } {
  const tok = loadTokenizer(DEMO);
  const fp = loadModel(be, DEMO);
  const q = loadModel(be, qDir);
  const ids = tokenizeCorpus(readTextDocuments(DATA), tok, fp.cfg.eosTokenIds[0]).subarray(settings.startToken);
  const T = settings.seqLen;
  let kl = 0;
  let agree = 0;
  let n = 0;
  for (const s of perplexityWindows(ids.length, T, settings.maxWindows)) {
    const w = ids.slice(s, s + T);
    const lf = be.toHost(fp.decoder.forward(w, 1).logits!);
    const lq = be.toHost(q.decoder.forward(w, 1).logits!);
    const V = lf.length / T;
    for (let t = 0; t < T - 1; t++) {
      const row = (z: Float32Array) => Array.from(z.subarray(t * V, (t + 1) * V), Number);
      const a = row(lf);
      const b = row(lq);
      const lse = (x: number[]) => { const m = Math.max(...x); return m + Math.log(x.reduce((acc, v) => acc + Math.exp(v - m), 0)); };
      const la = lse(a);
      const lb = lse(b);
      kl += a.reduce((acc, v, i) => acc + Math.exp(v - la) * ((v - la) - (b[i] - lb)), 0);
      if (a.indexOf(Math.max(...a)) === b.indexOf(Math.max(...b))) agree++;
      n++;
    }
  }
  return { kl: kl / n, top1: agree / n };
}

describe('paro eval --compare', () => {
  let be: Backend;
  let qDir: string;

  beforeAll(async () => {
    be = await createBackend(parseDevice('cpu'), () => {});
    qDir = path.join(scratchDir('paro-compare-'), 'q');
    await runQuantizeJob(be, {
      modelDir: DEMO, outDir: qDir, calibFile: DATA, settings: resolveQuantizeSettings({ method: 'rtn' }), resume: false, force: false, toolVersion: 'test',
    });
    expect(existsSync(path.join(qDir, 'config.json'))).toBe(true);
  }, 120_000);

  it('gives the KL and top-1 agreement of a direct computation and the plain perplexities', () => {
    const c = runEvalJob(be, { modelDir: qDir, dataFile: DATA, settings, compareDir: DEMO });
    const plainQ = runEvalJob(be, { modelDir: qDir, dataFile: DATA, settings });
    const plainF = runEvalJob(be, { modelDir: DEMO, dataFile: DATA, settings });
    expect(c.compare).toBeDefined();
    const cmp = c.compare!;
    expect(c.ppl).toBe(plainQ.ppl);
    expect(cmp.fpPpl).toBe(plainF.ppl);
    expect(cmp.pplIncrease).toBeCloseTo((plainQ.ppl - plainF.ppl) / plainF.ppl, 12);
    const d = direct(be, qDir);
    expect(cmp.kl).toBeGreaterThan(0);
    expect(cmp.kl).toBeCloseTo(d.kl, 5);
    expect(cmp.top1Agreement).toBeCloseTo(d.top1, 10);
    expect(cmp.top1Agreement).toBeLessThan(1);
    expect(cmp.klMax).toBeGreaterThanOrEqual(cmp.kl);
    expect(c.tokens).toBe(c.windows * (settings.seqLen - 1));
  }, 120_000);

  it('a model against itself: KL 0, agreement 1, no perplexity increase', () => {
    const c = runEvalJob(be, { modelDir: DEMO, dataFile: DATA, settings, compareDir: DEMO });
    expect(c.compare).toMatchObject({ kl: 0, klMax: 0, top1Agreement: 1, pplIncrease: 0 });
  }, 120_000);
});
