// Export (dflash-spec §5, §8 item 12): names, shapes, BF16, no embeddings / LM head / "model." prefix, the config
// fields; a load-back that reproduces the in-memory drafter's logits; clear errors for drafters that do not fit the
// target.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CpuBackend } from '../src/engine/cpu/backend.js';
import type { Backend } from '../src/engine/backend.js';
import { Rng } from '../src/numerics/rng.js';
import { roundToBf16InPlace } from '../src/numerics/half.js';
import { normalizeConfig } from '../src/io/config.js';
import { SafetensorsFile } from '../src/io/safetensors.js';
import { Drafter } from '../src/dflash/drafter.js';
import { drafterTensorSpecs, initDrafterWeights, mapDrafterWeights } from '../src/dflash/drafter-weights.js';
import { writeDrafterFiles } from '../src/jobs/train-drafter.js';
import { loadDrafter } from '../src/dflash/load-drafter.js';
import { drafterConfigJson } from '../src/dflash/drafter-config.js';
import { randn, smallDrafterConfig, tinyTargetRawConfig } from './dflash-helpers.js';

let be: Backend;
let tmp: string;
beforeAll(async () => {
  be = await CpuBackend.create();
  tmp = mkdtempSync(path.join(os.tmpdir(), 'dflash-export-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const targetCfg = () => normalizeConfig(tinyTargetRawConfig(), 'target');

/** A fresh directory tmp/name holding the drafter's files. */
function exportTo(name: string, c: Parameters<typeof writeDrafterFiles>[2], w: Parameters<typeof writeDrafterFiles>[3]): string {
  const dir = path.join(tmp, name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir);
  writeDrafterFiles(be, dir, c, w);
  return dir;
}

function logitsOf(d: Drafter, taps: Float32Array, S: number, block: Int32Array): Float32Array {
  const cache = d.newCache(8);
  const h = d.draft(cache, be.fromHost(taps, [S, d.cfg.targetLayerIds.length * d.cfg.hiddenSize]), block, S);
  return be.toHost(d.logits(h));
}

describe('drafter export', () => {
  it('writes BF16 tensors with the spec names and shapes and config.json', () => {
    const c = smallDrafterConfig({ numLayers: 2 });
    const w = initDrafterWeights(be, c, 1);
    const out = exportTo('drafter', c, w);
    expect(readdirSync(out).sort()).toEqual(['config.json', 'model.safetensors']);
    const st = SafetensorsFile.open(path.join(out, 'model.safetensors'));
    const names = st.names().sort();
    const want = drafterTensorSpecs(c).map((s) => s.name).sort();
    expect(names).toEqual(want);
    expect(names).toContain('layers.1.self_attn.q_norm.weight');
    expect(names.some((n) => n.startsWith('model.') || /embed|lm_head/.test(n))).toBe(false);
    for (const s of drafterTensorSpecs(c)) {
      expect(st.info(s.name).dtype).toBe('BF16');
      expect(st.info(s.name).shape).toEqual(s.shape);
    }
    expect(st.info('fc.weight').shape).toEqual([16, 32]);
    expect(st.metadata).toEqual({ format: 'pt' });
    st.close();
    const cfg = JSON.parse(readFileSync(path.join(out, 'config.json'), 'utf8'));
    expect(cfg).toEqual(drafterConfigJson(c));
  });

  it('loads back into a drafter whose logits equal the in-memory drafter with BF16-rounded weights', () => {
    const c = smallDrafterConfig({ numLayers: 2, targetLayerIds: [0, 1], numTargetLayers: 3 });
    const w = initDrafterWeights(be, c, 2, 0.3);
    const dir = exportTo('roundtrip', c, w);
    const rng = new Rng(3);
    const shared = { embed: be.fromHost(randn(rng, 20 * 16), [20, 16]), lmHead: be.fromHost(randn(rng, 20 * 16), [20, 16]) };
    const loaded = loadDrafter(be, dir, targetCfg());
    expect(loaded.cfg).toEqual(c);
    expect(loaded.dtypes).toEqual(['BF16']);
    const rounded = mapDrafterWeights(c, w, (t) => be.fromHost(roundToBf16InPlace(be.toHost(t)), t.shape));
    const S = 9;
    const taps = randn(rng, S * 32);
    const block = Int32Array.from([5, 1, 1, 1]);
    const a = logitsOf(new Drafter(be, loaded.cfg, loaded.weights, shared), taps, S, block);
    const b = logitsOf(new Drafter(be, c, rounded, shared), taps, S, block);
    expect(Array.from(a)).toEqual(Array.from(b));
    const exact = logitsOf(new Drafter(be, c, w, shared), taps, S, block);
    let md = 0;
    for (let i = 0; i < a.length; i++) md = Math.max(md, Math.abs(a[i] - exact[i]));
    expect(md).toBeGreaterThan(0); // BF16 rounding is real...
    expect(md).toBeLessThan(0.1); // ...and small
  });

  it('refuses drafters that do not fit the target, naming the problem, and checkpoints with missing tensors', () => {
    const t = targetCfg();
    const write = (name: string, over: Parameters<typeof smallDrafterConfig>[0]) => {
      const c = smallDrafterConfig(over);
      return exportTo(name, c, initDrafterWeights(be, c, 1));
    };
    expect(() => loadDrafter(be, write('wide', { hiddenSize: 24, numHeads: 4, headDim: 8 }), t)).toThrow(/hidden_size 24 differs from the target's 16/);
    expect(() => loadDrafter(be, write('mask', { maskTokenId: 20 }), t)).toThrow(/mask_token_id 20 is not a row/);
    expect(() => loadDrafter(be, write('deep', { numTargetLayers: 36, targetLayerIds: [1, 9] }), t)).toThrow(/36-layer target/);
    const dir = write('broken', {});
    const cfg = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8'));
    writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...cfg, num_hidden_layers: 3, layer_types: ['full_attention', 'full_attention', 'full_attention'] }));
    expect(() => loadDrafter(be, dir, t)).toThrow(/missing 11 tensor\(s\): layers\.2\./);
    expect(existsSync(path.join(tmp, 'nope'))).toBe(false);
    expect(() => loadDrafter(be, path.join(tmp, 'nope'), t)).toThrow(/does not exist/);
  });

  it('writeDrafterFiles rounds to BF16 with round-to-nearest-even', () => {
    const c = smallDrafterConfig({ numLayers: 1 });
    const w = initDrafterWeights(be, c, 4);
    const dir = mkdtempSync(path.join(tmp, 'raw-'));
    writeDrafterFiles(be, dir, c, w);
    const st = SafetensorsFile.open(path.join(dir, 'model.safetensors'));
    const got = st.readF32('fc.weight');
    const want = roundToBf16InPlace(be.toHost(w.fc));
    expect(Array.from(got)).toEqual(Array.from(want));
    st.close();
  });

  it('refuses a drafter whose weights are not finite, naming the tensor', () => {
    const c = smallDrafterConfig({ numLayers: 1 });
    const w = initDrafterWeights(be, c, 5);
    const bad = mapDrafterWeights(c, w, (t) => t);
    const host = be.toHost(w.layers[0].down);
    host[3] = Number.NaN;
    bad.layers[0].down = be.fromHost(host, w.layers[0].down.shape);
    const dir = exportTo('nan', c, bad);
    expect(() => loadDrafter(be, dir, targetCfg())).toThrow(/layers\.0\.mlp\.down_proj\.weight.*(NaN|non-finite)/);
  });
});
