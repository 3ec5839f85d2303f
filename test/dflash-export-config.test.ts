// The exported drafter config loads as docs/dflash.md says: SGLang and vLLM pick their built-in DFlash classes from
// `architectures` and read the §5.2 fields; no `auto_map` points Transformers at remote code we do not ship.
import { describe, expect, it } from 'vitest';
import { drafterConfigJson } from '../src/dflash/drafter-config.js';
import { smallDrafterConfig } from './dflash-helpers.js';

describe('exported drafter config.json', () => {
  const c = smallDrafterConfig({ numLayers: 2, targetLayerIds: [0, 1], numTargetLayers: 3, blockSize: 8 });
  const json = drafterConfigJson(c);

  it('names the class the runtimes register and ships no remote-code pointer', () => {
    expect(json.architectures).toEqual(['DFlashDraftModel']);
    expect(json).not.toHaveProperty('auto_map');
    expect(json.model_type).toBe('qwen3');
  });

  it('carries the block size and taps where each reader looks (dflash-spec §5.2)', () => {
    expect(json.block_size).toBe(8);
    expect(json.dflash_config).toEqual({ block_size: 8, mask_token_id: c.maskTokenId, target_layer_ids: [0, 1], num_target_layers: 3 });
    expect(json.num_target_layers).toBe(3);
    for (const k of ['rope_theta', 'head_dim', 'max_position_embeddings', 'hidden_size', 'num_hidden_layers']) expect(json).toHaveProperty(k);
  });
});
