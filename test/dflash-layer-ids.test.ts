// Tapped target layers (dflash-spec §2.1, §8 item 1) and drafter configs (§2.8, §5.2).
import { describe, expect, it } from 'vitest';
import { autoTargetLayerIds, buildTargetLayerIds, parseTargetLayerIds } from '../src/dflash/layer-ids.js';
import { drafterConfigJson, drafterParamCount, parseDrafterConfig } from '../src/dflash/drafter-config.js';
import { smallDrafterConfig } from './dflash-helpers.js';

describe('build_target_layer_ids', () => {
  it('reproduces the spec table, including the half-even cases', () => {
    const table: [number, number[]][] = [
      [28, [1, 7, 13, 19, 25]], [32, [1, 8, 15, 22, 29]], [36, [1, 9, 17, 25, 33]], [40, [1, 10, 19, 28, 37]],
      [48, [1, 12, 23, 34, 45]], [64, [1, 16, 31, 46, 61]], [94, [1, 24, 46, 68, 91]], [30, [1, 8, 14, 20, 27]],
    ];
    for (const [L, ids] of table) expect(buildTargetLayerIds(L, 5), `L=${L}`).toEqual(ids);
  });

  it('matches an independent float64 evaluation with exact tie detection for many depths and tap counts', () => {
    for (let L = 4; L <= 130; L++) {
      for (let n = 2; n <= 8; n++) {
        const want = Array.from({ length: n }, (_, i) => {
          // Exact rational: (n−1 + i·(L−4)) / (n−1); ties when 2·remainder = denominator.
          const num = n - 1 + i * (L - 4);
          const den = n - 1;
          const q = Math.floor(num / den);
          const r = num - q * den;
          if (2 * r < den) return q;
          if (2 * r > den) return q + 1;
          return q % 2 === 0 ? q : q + 1;
        });
        expect(buildTargetLayerIds(L, n)).toEqual(want);
      }
    }
  });

  it('n = 1 gives the middle layer', () => {
    expect(buildTargetLayerIds(36, 1)).toEqual([18]);
    expect(buildTargetLayerIds(7, 1)).toEqual([3]);
  });

  it('auto keeps the formula for deep targets and spreads distinct layers over shallow ones, saying so', () => {
    expect(autoTargetLayerIds(36)).toEqual({ ids: [1, 9, 17, 25, 33] });
    const four = autoTargetLayerIds(4);
    expect(four.ids).toEqual([0, 1, 2]); // the official tiny-qwen3 drafter's taps
    expect(four.note).toMatch(/distinct/);
    expect(autoTargetLayerIds(6).ids).toEqual([0, 1, 2, 3, 4]);
    expect(autoTargetLayerIds(2).ids).toEqual([0]);
    for (let L = 2; L < 40; L++) {
      const { ids } = autoTargetLayerIds(L);
      expect(new Set(ids).size).toBe(ids.length);
      expect(Math.max(...ids)).toBeLessThanOrEqual(L - 2);
    }
  });

  it('parses explicit lists and refuses the last layer, unsorted or repeated ids', () => {
    expect(parseTargetLayerIds('0, 2,3', 6)).toEqual([0, 2, 3]);
    expect(() => parseTargetLayerIds('1,5', 6)).toThrow(/outside/);
    expect(() => parseTargetLayerIds('2,1', 6)).toThrow(/ascending/);
    expect(() => parseTargetLayerIds('x', 6)).toThrow(/auto/);
  });
});

describe('drafter config', () => {
  it('the Qwen3-8B drafter has 1,048,626,432 parameters', () => {
    const c = smallDrafterConfig({
      hiddenSize: 4096, intermediateSize: 12288, numLayers: 5, numHeads: 32, numKvHeads: 8, headDim: 128,
      targetLayerIds: [1, 9, 17, 25, 33], numTargetLayers: 36, vocabSize: 151936,
    });
    expect(drafterParamCount(c)).toBe(1048626432);
  });

  it('writes every field of §5.2 and reads it back; reads dflash_config-only and top-level-only spellings', () => {
    const c = smallDrafterConfig({ blockSize: 16, maskTokenId: 7, targetLayerIds: [0, 1], numTargetLayers: 3 });
    const j = drafterConfigJson(c);
    for (const k of ['block_size', 'num_target_layers', 'rope_theta', 'head_dim', 'max_position_embeddings', 'hidden_size', 'intermediate_size',
      'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads', 'rms_norm_eps', 'layer_types', 'vocab_size', 'dtype']) {
      expect(j, k).toHaveProperty(k);
    }
    expect(j.architectures).toEqual(['DFlashDraftModel']);
    expect(j.model_type).toBe('qwen3');
    expect(j.rope_scaling).toBeNull();
    expect(j.dflash_config).toEqual({ block_size: 16, mask_token_id: 7, target_layer_ids: [0, 1], num_target_layers: 3 });
    expect(j).not.toHaveProperty('is_causal');
    expect(parseDrafterConfig(j, 'x')).toEqual(c);
    const { block_size: _b, ...noTop } = j;
    expect(parseDrafterConfig(noTop, 'x').blockSize).toBe(16);
    const { dflash_config: _d, ...flat } = j;
    expect(() => parseDrafterConfig(flat, 'x')).toThrow(/mask_token_id/);
    expect(parseDrafterConfig({ ...flat, mask_token_id: 7, target_layer_ids: [0, 1] }, 'x')).toEqual(c);
    expect(() => parseDrafterConfig({ ...j, architectures: ['Qwen3ForCausalLM'] }, 'x')).toThrow(/not a DFlash drafter/);
  });
});
