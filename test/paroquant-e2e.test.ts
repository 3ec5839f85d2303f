// paro quantize end to end on the fixture with small settings: the written checkpoint (format of spec §7), the same
// model as the in-memory fake-quantized one (perplexity agrees to 1e-4), resume after an interruption gives
// byte-identical output, RTN writes the same format with θ = 0 and channel_scales = 1, and bad input is rejected
// with no output left behind.
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CpuBackend } from '../src/engine/cpu/backend.js';
import type { Backend } from '../src/engine/backend.js';
import { resolveQuantizeSettings, runQuantizeJob, type QuantizeHooks, type QuantizeJob, type QuantizeSettings } from '../src/jobs/quantize.js';
import { effectiveBlock } from '../src/paroquant/quantize-steps.js';
import { fakeQuantDecoder } from './fake-quant-model.js';
import { loadModel } from '../src/model/load.js';
import { perplexity } from '../src/model/perplexity.js';
import { loadTokenizer } from '../src/io/tokenizer.js';
import { perplexityWindows, readTextDocuments, tokenizeCorpus } from '../src/io/datasets.js';
import { SafetensorsFile } from '../src/io/safetensors.js';
import { writeSafetensors } from '../src/io/safetensors-writer.js';
import { Checkpoint } from '../src/io/checkpoint.js';
import { UserError } from '../src/errors.js';
import { f16ToF32 } from '../src/numerics/half.js';
import { FIXTURES, HAVE_FIXTURES } from './fixtures-path.js';

const MODEL = path.join(FIXTURES, 'tiny-qwen3');
const TRAIN = path.join(FIXTURES, 'text/train.jsonl');
const VAL = path.join(FIXTURES, 'text/val.jsonl');

/** A job on the fixture with small settings; `over` changes settings, `job` the rest. */
function settings(out: string, over: Partial<QuantizeSettings> = {}, job: Partial<QuantizeJob> = {}): QuantizeJob {
  return {
    modelDir: MODEL, outDir: out, calibFile: TRAIN, resume: false, force: false, toolVersion: 'test',
    settings: resolveQuantizeSettings({ samples: 4, seqLen: 64, valSamples: 2, epochs: [2, 1], batchSize: 2, ...over }),
    ...job,
  };
}
const quantize = runQuantizeJob;

describe.skipIf(!HAVE_FIXTURES)('paro quantize on tiny-qwen3', () => {
  let be: Backend;
  let tmp: string;
  let valTokens: Int32Array;
  beforeAll(async () => {
    be = await CpuBackend.create();
    tmp = mkdtempSync(path.join(os.tmpdir(), 'paro-q-'));
    const tok = loadTokenizer(MODEL);
    valTokens = tokenizeCorpus(readTextDocuments(VAL).slice(0, 40), tok, 0, { maxTokens: 20 * 129 });
  });
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it('writes the checkpoint format, and the written model equals the in-memory fake-quantized one', async () => {
    const out = path.join(tmp, 'q');
    const warnings: string[] = [];
    const effective: ReturnType<typeof effectiveBlock>[] = [];
    const r = await quantize(be, settings(out), { onBlockPacked: (_l, packed) => effective.push(effectiveBlock(be, packed)), onWarn: (m) => warnings.push(m) });
    expect(warnings).toEqual([]);
    expect(r.blocks).toHaveLength(4);
    for (const b of r.blocks) {
      // The untrained state is a candidate: the selected state is never worse than it.
      expect(b.stage1!.bestValLoss).toBeLessThanOrEqual(b.stage1!.initialValLoss);
      expect(b.stage2!.bestValLoss).toBeLessThanOrEqual(b.stage2!.initialValLoss);
      const logged = b.epochs.filter((e) => e.stage === 1).map((e) => e.valLoss);
      expect(b.stage1!.bestValLoss).toBe(Math.min(...logged));
    }
    expect(readdirSync(out).sort()).toEqual(['config.json', 'generation_config.json', 'manifest.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
    expect(existsSync(out + '.partial')).toBe(false);
    const cfg = JSON.parse(readFileSync(path.join(out, 'config.json'), 'utf8'));
    expect(cfg.quantization_config).toEqual({ quant_method: 'paroquant', bits: 4, group_size: 128, krot: 8 });
    const st = SafetensorsFile.open(path.join(out, 'model.safetensors'));
    expect(st.metadata).toEqual({ format: 'pt' });
    const p = 'model.layers.2.mlp.down_proj';
    expect(st.info(`${p}.qweight`)).toMatchObject({ dtype: 'I32', shape: [768, 32] });
    expect(st.info(`${p}.qzeros`)).toMatchObject({ dtype: 'I32', shape: [6, 32] });
    expect(st.info(`${p}.scales`)).toMatchObject({ dtype: 'F16', shape: [6, 256] });
    expect(st.info(`${p}.theta`)).toMatchObject({ dtype: 'F16', shape: [8, 384] });
    expect(st.info(`${p}.pairs`)).toMatchObject({ dtype: 'I16', shape: [8, 768] });
    expect(st.info(`${p}.channel_scales`)).toMatchObject({ dtype: 'F16', shape: [1, 768] });
    expect(st.has(`${p}.weight`)).toBe(false);
    expect(st.info('model.embed_tokens.weight').dtype).toBe('F16');
    expect(st.info('model.norm.weight').dtype).toBe('F16');
    expect(st.has('lm_head.weight')).toBe(false);
    // Training moved the transform where it helped validation (block 0 improves at these settings).
    const theta = f16ToF32(st.readRaw16('model.layers.0.self_attn.q_proj.theta'));
    expect(theta.some((t) => t !== 0)).toBe(true);
    st.close();
    const manifest = JSON.parse(readFileSync(path.join(out, 'manifest.json'), 'utf8'));
    expect(manifest.settings.epochs).toEqual([2, 1]);
    expect(manifest.schema).toBe('paro-dflash/manifest@1');
    const modelInput = manifest.inputs.find((i: { role: string }) => i.role === 'model');
    expect(modelInput.files.map((f: { name: string }) => f.name)).toContain('model.safetensors');
    expect(manifest.inputs.find((i: { role: string }) => i.role === 'calib').sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(manifest.outputs.map((f: { name: string }) => f.name)).toEqual(['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
    expect(manifest.metrics.blocks).toHaveLength(4);
    // Stage-2 epochs log the stage-2 learning rates, not the angle rate.
    const ep2 = manifest.metrics.blocks[0].epochs.find((e: { stage: number; epoch: number }) => e.stage === 2 && e.epoch === 1);
    expect(Object.keys(ep2.lr).sort()).toEqual(['quantizer', 'weight']);
    expect(ep2.lr.weight).toBeLessThanOrEqual(1e-5);
    expect(ep2.lr.weight).toBeGreaterThan(0);

    // Perplexity: in-memory fake-quant model vs the checkpoint through the runtime path (x ⊙ cs, rotations, INT4).
    const starts = perplexityWindows(valTokens.length, 128, 16);
    const inMemory = perplexity(fakeQuantDecoder(be, MODEL, effective), valTokens, { seqLen: 128, starts });
    const written = perplexity(loadModel(be, out).decoder, valTokens, { seqLen: 128, starts });
    expect(Math.abs(inMemory.ppl - written.ppl) / written.ppl).toBeLessThan(1e-4);
    const fp = perplexity(loadModel(be, MODEL).decoder, valTokens, { seqLen: 128, starts });
    expect(written.ppl).toBeGreaterThan(fp.ppl * 0.99); // quantization costs something
    expect(written.ppl).toBeLessThan(fp.ppl * 1.2); // but not much
  });

  it('resumes an interrupted run with byte-identical output', async () => {
    const a = path.join(tmp, 'full');
    const b = path.join(tmp, 'resumed');
    await quantize(be, settings(a, { epochs: [1, 1] }));
    // An interruption (anything but bad input) after two blocks keeps the partial output and releases the lock.
    const interrupt: QuantizeHooks = { onBlockEnd: (l) => { if (l === 1) throw new Error('interrupted after block 1'); } };
    await expect(quantize(be, settings(b, { epochs: [1, 1] }), interrupt)).rejects.toThrow(/interrupted/);
    expect(existsSync(b)).toBe(false);
    expect(existsSync(b + '.partial')).toBe(true);
    expect(existsSync(b + '.lock')).toBe(false);
    // Without --resume the partial is refused, never silently deleted; with other settings it is foreign.
    await expect(quantize(be, settings(b, { epochs: [1, 1] }))).rejects.toThrow(/pass --resume to continue it or --force to discard it/);
    await expect(quantize(be, settings(b, { epochs: [1, 2] }, { resume: true }))).rejects.toThrow(/other inputs or settings \(differs: settings\.epochs/);
    expect(readdirSync(b + '.partial')).toContain('block-0001.safetensors');
    const infos: string[] = [];
    await quantize(be, settings(b, { epochs: [1, 1] }, { resume: true }), { onInfo: (m) => infos.push(m) });
    expect(infos.join('\n')).toMatch(/resuming after 2 of 4/);
    for (const f of ['model.safetensors', 'config.json', 'tokenizer.json']) {
      expect(Buffer.compare(readFileSync(path.join(a, f)), readFileSync(path.join(b, f)))).toBe(0);
    }
    const ma = JSON.parse(readFileSync(path.join(a, 'manifest.json'), 'utf8'));
    const mb = JSON.parse(readFileSync(path.join(b, 'manifest.json'), 'utf8'));
    expect(mb.settings).toEqual(ma.settings);
    expect(mb.inputs).toEqual(ma.inputs);
    type M = { metrics: { blocks: { epochs: { valLoss: number }[] }[] } };
    const losses = (m: M) => m.metrics.blocks.map((x) => x.epochs.map((e) => e.valLoss));
    expect(losses(mb as M)).toEqual(losses(ma as M));
  });

  it('activations streamed from host memory give the same checkpoint as device-resident ones', async () => {
    const a = path.join(tmp, 'dev');
    const b = path.join(tmp, 'host');
    await quantize(be, settings(a, { epochs: [1, 1], activations: 'device' }));
    await quantize(be, settings(b, { epochs: [1, 1], activations: 'host' }));
    expect(Buffer.compare(readFileSync(path.join(a, 'model.safetensors')), readFileSync(path.join(b, 'model.safetensors')))).toBe(0);
  });

  it('--method rtn writes the same tensors with θ = 0 and channel_scales = 1', async () => {
    const out = path.join(tmp, 'rtn');
    await quantize(be, settings(out, { method: 'rtn' }));
    const st = SafetensorsFile.open(path.join(out, 'model.safetensors'));
    const p = 'model.layers.0.self_attn.q_proj';
    expect(f16ToF32(st.readRaw16(`${p}.theta`)).every((t) => t === 0)).toBe(true);
    expect(f16ToF32(st.readRaw16(`${p}.channel_scales`)).every((c) => c === 1)).toBe(true);
    st.close();
    // RTN of REFERENCE.md: codes from the per-group min/max of W.
    const ck = Checkpoint.open(MODEL);
    const w = ck.readF32(`${p}.weight`);
    ck.close();
    const m = loadModel(be, out);
    const lin = m.decoder.weights.layers[0].q;
    const wq = be.toHost(lin.weight); // dequantized (q − z)·s, θ = 0 so W_rot = Ŵ
    let maxErr = 0;
    for (let g = 0; g < w.length / 128; g++) {
      let mn = Infinity;
      let mx = -Infinity;
      for (let e = g * 128; e < g * 128 + 128; e++) { mn = Math.min(mn, w[e]); mx = Math.max(mx, w[e]); }
      const s = Math.max(mx - mn, 1e-5) / 15;
      for (let e = g * 128; e < g * 128 + 128; e++) maxErr = Math.max(maxErr, Math.abs(wq[e] - w[e]) / s);
    }
    expect(maxErr).toBeLessThanOrEqual(0.5 + 1e-2); // every weight within half a quantization step
  });

  it('rejects bad input with a clear error and leaves no output', async () => {
    const expectUserError = async (s: QuantizeJob, re: RegExp) => {
      const err = await quantize(be, s).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UserError);
      expect((err as UserError).oneLine()).toMatch(re);
      expect(existsSync(s.outDir)).toBe(false);
      expect(existsSync(s.outDir + '.partial')).toBe(false);
      expect(existsSync(s.outDir + '.lock')).toBe(false);
    };
    await expectUserError(settings(path.join(tmp, 'b1'), { groupSize: 96 }), /in_features 256, not a multiple of the group size 96/);
    const short = path.join(tmp, 'short.jsonl');
    writeFileSync(short, JSON.stringify({ text: 'def f():\n    return 1\n' }) + '\n');
    await expectUserError(settings(path.join(tmp, 'b2'), {}, { calibFile: short }), /short\.jsonl: the calibration text has \d+ tokens; one sample needs 64/);
    const exists = path.join(tmp, 'exists');
    mkdirSync(exists);
    const err = await quantize(be, settings(exists)).catch((e: unknown) => e);
    expect((err as UserError).oneLine()).toMatch(/exists; pass --force/);
    // A model with no decoder layers: in the config, or in the checkpoint.
    const noLayers = path.join(tmp, 'nolayers');
    mkdirSync(noLayers);
    for (const f of ['model.safetensors', 'tokenizer.json', 'tokenizer_config.json']) copyFileSync(path.join(MODEL, f), path.join(noLayers, f));
    const raw = JSON.parse(readFileSync(path.join(MODEL, 'config.json'), 'utf8'));
    writeFileSync(path.join(noLayers, 'config.json'), JSON.stringify({ ...raw, num_hidden_layers: 0, layer_types: [] }));
    await expectUserError(settings(path.join(tmp, 'b3'), {}, { modelDir: noLayers }), /config\.json: .*num_hidden_layers.* must be a positive integer, got 0/);
    const noLayerTensors = path.join(tmp, 'nolayertensors');
    mkdirSync(noLayerTensors);
    for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) copyFileSync(path.join(MODEL, f), path.join(noLayerTensors, f));
    const src = Checkpoint.open(MODEL);
    writeSafetensors(path.join(noLayerTensors, 'model.safetensors'), src.names().filter((n) => !n.startsWith('model.layers.')).map((n) => (
      { name: n, dtype: 'BF16' as const, shape: src.info(n).shape, data: src.readRaw16(n) })));
    src.close();
    await expectUserError(settings(path.join(tmp, 'b3b'), {}, { modelDir: noLayerTensors }), /no decoder layers found in the checkpoint/);
    // NaN in a weight.
    const nan = path.join(tmp, 'nan');
    mkdirSync(nan);
    for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) copyFileSync(path.join(MODEL, f), path.join(nan, f));
    const ck = Checkpoint.open(MODEL);
    writeSafetensors(path.join(nan, 'model.safetensors'), ck.names().map((n) => {
      const raw16 = ck.readRaw16(n).slice();
      if (n === 'model.layers.1.mlp.up_proj.weight') raw16[5] = 0x7fc0; // bf16 NaN
      return { name: n, dtype: 'BF16' as const, shape: ck.info(n).shape, data: raw16 };
    }));
    ck.close();
    await expectUserError(settings(path.join(tmp, 'b4'), {}, { modelDir: nan }), /model\.layers\.1\.mlp\.up_proj\.weight (contains|holds) NaN/);
  });

  it('a diverging loss restores the best state with a warning and still writes a valid model', async () => {
    const out = path.join(tmp, 'diverge');
    const warnings: string[] = [];
    // An infinite channel-scale learning rate makes α non-finite after the first step: the loss turns NaN.
    await quantize(be, settings(out, { epochs: [3, 0], lrChannelScale: Infinity }), { onWarn: (m) => warnings.push(m) });
    expect(warnings.some((w) => /restoring the best state/.test(w))).toBe(true);
    const m = loadModel(be, out);
    const starts = perplexityWindows(valTokens.length, 128, 4);
    const r = perplexity(m.decoder, valTokens, { seqLen: 128, starts });
    expect(Number.isFinite(r.ppl)).toBe(true);
  });
});
