// The decoder forward reproduces PyTorch (REFERENCE.md and arch/reference.json): tiny-qwen3 (BF16, q/k norms,
// tied head), tiny-llama31-f16 (F16, llama3 RoPE scaling, untied head), tiny-qwen25-bf16 (biases, tied), each
// config also in the older rope_theta + rope_scaling spelling; plus an F16 copy of tiny-qwen3 written by our writer,
// and KV-cached decoding against prefill.
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CpuBackend } from '../src/engine/cpu/backend.js';
import type { Backend } from '../src/engine/backend.js';
import { loadModel } from '../src/model/load.js';
import { loadTokenizer } from '../src/io/tokenizer.js';
import { ropeConfigToLegacy } from './rope-spelling.js';
import { Checkpoint } from '../src/io/checkpoint.js';
import { writeSafetensors } from '../src/io/safetensors-writer.js';
import { f32ToF16 } from '../src/numerics/half.js';
import { FIXTURES as FIX } from './fixtures-path.js';

const have = existsSync(FIX);
if (!have) console.warn(`skipping forward reference tests: fixtures not found at ${FIX}`);

const PROBE = 'def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n';
const PROBE_IDS = [326, 285, 473, 264, 1149, 1424, 9, 79, 318, 268, 341, 290, 812, 400, 27, 265, 369, 290, 268, 369, 285, 473, 264, 1149, 1424, 9, 79, 348, 333, 10, 398, 285, 473, 264, 1149, 1424, 9, 79, 348, 400, 10, 200];
const PROBE_ARGMAX = [561, 9, 264, 84, 1424, 306, 71, 13, 268, 435, 290, 450, 343, 27, 265, 624, 333, 268, 341, 290, 473, 264, 1149, 1424, 9, 79, 10, 290, 10, 789, 285, 473, 264, 1149, 1424, 9, 79, 10, 333, 10, 398, 200];
const LAST_LOGITS = [11.76941, -8.76475, -2.49454, 0.59534, 6.85934, 0.93026, 1.14213, 1.00548];
const LSE = [8.37161, 9.50113, 10.28777, 9.39021, 10.74111];
const NORMS = [
  [1.04776, 0.87138, 1.33673, 1.29692], [7.78096, 9.25307, 9.43263, 8.60879], [17.80962, 14.90402, 13.78910, 11.34257],
  [40.13496, 23.47873, 17.94230, 17.83671], [28.10871, 28.22388, 28.34068, 28.48347],
];

function rowNorm(x: Float32Array, row: number, width: number): number {
  let s = 0;
  for (let c = 0; c < width; c++) s += x[row * width + c] ** 2;
  return Math.sqrt(s);
}
function lse(x: Float32Array, row: number, V: number): number {
  let m = -Infinity;
  for (let v = 0; v < V; v++) m = Math.max(m, x[row * V + v]);
  let s = 0;
  for (let v = 0; v < V; v++) s += Math.exp(x[row * V + v] - m);
  return m + Math.log(s);
}
function expectClose(got: number, want: number, rel = 1e-4) {
  expect(Math.abs(got - want)).toBeLessThanOrEqual(rel * Math.max(1, Math.abs(want)));
}

/** Copy a model directory to a temp dir with its config rewritten in the transformers-4 spelling. */
function legacyCopy(dir: string, tmp: string): string {
  const out = path.join(tmp, path.basename(dir) + '-legacy');
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out);
  for (const f of ['model.safetensors', 'tokenizer.json', 'tokenizer_config.json']) if (existsSync(path.join(dir, f))) copyFileSync(path.join(dir, f), path.join(out, f));
  const raw = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8'));
  writeFileSync(path.join(out, 'config.json'), JSON.stringify(ropeConfigToLegacy(raw)));
  return out;
}

describe.skipIf(!have)('forward reproduces PyTorch', () => {
  let be: Backend;
  let tmp: string;
  beforeAll(async () => {
    be = await CpuBackend.create();
    tmp = mkdtempSync(path.join(os.tmpdir(), 'paro-fwd-'));
  });
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  function checkTinyQwen3(dir: string) {
    const tok = loadTokenizer(path.join(FIX, 'tiny-qwen3'));
    const ids = tok.encode(PROBE, { addSpecialTokens: false });
    expect(ids).toEqual(PROBE_IDS);
    const m = loadModel(be, dir);
    const r = m.decoder.forward(Int32Array.from(ids), 1, { tapEmbeddings: true, tapLayers: [0, 1, 2] });
    const logits = be.toHost(r.logits!);
    const V = m.cfg.vocabSize;
    expect(Array.from(be.argmaxRows(r.logits!))).toEqual(PROBE_ARGMAX);
    const last = ids.length - 1;
    LAST_LOGITS.forEach((v, i) => expectClose(logits[last * V + i], v));
    LSE.forEach((v, p) => expectClose(lse(logits, p, V), v));
    const H = m.cfg.hiddenSize;
    const states = [be.toHost(r.embeddings!), be.toHost(r.taps.get(0)!), be.toHost(r.taps.get(1)!), be.toHost(r.taps.get(2)!), be.toHost(r.hidden!)];
    states.forEach((s, k) => NORMS[k].forEach((v, p) => expectClose(rowNorm(s, p, H), v)));
  }

  it('tiny-qwen3 (BF16, rope_parameters): ids, argmax, logits, lse and hidden norms', () => {
    checkTinyQwen3(path.join(FIX, 'tiny-qwen3'));
  });

  it('tiny-qwen3 with the legacy rope_theta spelling', () => {
    checkTinyQwen3(legacyCopy(path.join(FIX, 'tiny-qwen3'), tmp));
  });

  it('tiny-qwen3 converted to F16 by our writer stays within F16 rounding of the reference', () => {
    const src = path.join(FIX, 'tiny-qwen3');
    const out = path.join(tmp, 'tiny-qwen3-f16');
    mkdirSync(out, { recursive: true });
    const ck = Checkpoint.open(src);
    writeSafetensors(path.join(out, 'model.safetensors'), ck.names().map((n) => ({
      name: n, dtype: 'F16' as const, shape: ck.info(n).shape, data: f32ToF16(ck.readF32(n)),
    })), { format: 'pt' });
    ck.close();
    const raw = JSON.parse(readFileSync(path.join(src, 'config.json'), 'utf8'));
    writeFileSync(path.join(out, 'config.json'), JSON.stringify({ ...raw, dtype: 'float16' }));
    const m = loadModel(be, out);
    const r = m.decoder.forward(Int32Array.from(PROBE_IDS), 1);
    const logits = be.toHost(r.logits!);
    const V = m.cfg.vocabSize;
    // bf16 → f16 is exact for these small weights except for tiny values; the logits move only slightly.
    LAST_LOGITS.forEach((v, i) => expect(Math.abs(logits[(PROBE_IDS.length - 1) * V + i] - v)).toBeLessThan(2e-2));
    const am = be.argmaxRows(r.logits!);
    const agree = PROBE_ARGMAX.filter((a, i) => am[i] === a).length;
    expect(agree).toBeGreaterThanOrEqual(PROBE_ARGMAX.length - 1);
  });

  it('KV-cached decoding gives the logits of the full prefill', () => {
    const m = loadModel(be, path.join(FIX, 'tiny-qwen3'));
    const full = be.toHost(m.decoder.forward(Int32Array.from(PROBE_IDS), 1).logits!);
    const V = m.cfg.vocabSize;
    const cache = m.decoder.newCache(1, 8); // small capacity: forces growth
    const split = [0, 17, 18, 30, 31, 42];
    for (let s = 0; s + 1 < split.length; s++) {
      const part = Int32Array.from(PROBE_IDS.slice(split[s], split[s + 1]));
      const lg = be.toHost(m.decoder.forward(part, 1, { cache }).logits!);
      for (let t = 0; t < part.length; t++) {
        const row = split[s] + t;
        let maxDiff = 0;
        for (let v = 0; v < V; v++) maxDiff = Math.max(maxDiff, Math.abs(lg[t * V + v] - full[row * V + v]));
        expect(maxDiff).toBeLessThan(1e-3);
      }
    }
    expect(cache.length).toBe(PROBE_IDS.length);
    // Crop and re-decode the tail: same logits again.
    cache.crop(30);
    const lg = be.toHost(m.decoder.forward(Int32Array.from(PROBE_IDS.slice(30, 42)), 1, { cache }).logits!);
    let maxDiff = 0;
    for (let v = 0; v < V; v++) maxDiff = Math.max(maxDiff, Math.abs(lg[11 * V + v] - full[41 * V + v]));
    expect(maxDiff).toBeLessThan(1e-3);
  });

  const ref = have ? JSON.parse(readFileSync(path.join(FIX, 'arch/reference.json'), 'utf8')) : {};
  for (const name of ['tiny-llama31-f16', 'tiny-qwen25-bf16']) {
    for (const legacy of [false, true]) {
      it(`${name}${legacy ? ' (legacy rope spelling)' : ''} matches arch/reference.json`, () => {
        const r = ref[name] as { ids: number[]; argmax: number[]; logits_pos0_first8: number[]; logits_last_first8: number[]; logsumexp: number[]; hidden_norms_pos_last: number[] };
        let dir = path.join(FIX, 'arch', name);
        if (legacy) dir = legacyCopy(dir, tmp);
        // These references come from models instantiated in their storage dtype and upcast (inv_freq rounded).
        const m = loadModel(be, dir, { ropePrecision: 'storage' });
        const out = m.decoder.forward(Int32Array.from(r.ids), 1, { tapEmbeddings: true, tapLayers: [0] });
        const logits = be.toHost(out.logits!);
        const V = m.cfg.vocabSize;
        const H = m.cfg.hiddenSize;
        const last = r.ids.length - 1;
        expect(Array.from(be.argmaxRows(out.logits!))).toEqual(r.argmax);
        r.logits_pos0_first8.forEach((v, i) => expectClose(logits[i], v));
        r.logits_last_first8.forEach((v, i) => expectClose(logits[last * V + i], v));
        r.logsumexp.forEach((v, p) => expectClose(lse(logits, p, V), v));
        const norms = [rowNorm(be.toHost(out.embeddings!), last, H), rowNorm(be.toHost(out.taps.get(0)!), last, H), rowNorm(be.toHost(out.hidden!), last, H)];
        norms.forEach((v, k) => expectClose(v, r.hidden_norms_pos_last[k]));
      });
    }
  }
});
