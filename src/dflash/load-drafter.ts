// Open a drafter directory (ours, z-lab's, SpecForge's): config.json + safetensors with the dflash-spec §5.3 names,
// checked against the target it will run with (hidden size, vocabulary, mask row, tapped layers).
import type { Backend, Tensor } from '../engine/backend.js';
import type { ModelConfig } from '../io/config.js';
import { Checkpoint } from '../io/checkpoint.js';
import { assertFiniteF32 } from '../io/finite.js';
import { UserError } from '../errors.js';
import { loadDrafterConfig, type DrafterConfig } from './drafter-config.js';
import { buildDrafterWeights, drafterTensorSpecs, type DrafterWeights } from './drafter-weights.js';

/** Errors for a drafter that cannot run with this target (shared by load and train-time checks). */
export function checkDrafterAgainstTarget(c: DrafterConfig, t: ModelConfig, file: string): void {
  if (c.hiddenSize !== t.hiddenSize) {
    throw new UserError(`the drafter's hidden_size ${c.hiddenSize} differs from the target's ${t.hiddenSize}: the drafter shares the target's embedding and LM head, so they must match`, { file });
  }
  if (c.maskTokenId < 0 || c.maskTokenId >= t.vocabSize) {
    throw new UserError(`mask_token_id ${c.maskTokenId} is not a row of the target's embedding table (${t.vocabSize} rows)`, { file });
  }
  if (c.vocabSize !== t.vocabSize) {
    throw new UserError(`the drafter was made for a vocabulary of ${c.vocabSize} tokens, the target has ${t.vocabSize}`, { file });
  }
  if (c.numTargetLayers !== t.numLayers) {
    throw new UserError(`the drafter was trained on a ${c.numTargetLayers}-layer target (num_target_layers), this target has ${t.numLayers} layers`, { file });
  }
  const bad = c.targetLayerIds.filter((l) => l >= t.numLayers);
  if (bad.length > 0) throw new UserError(`target_layer_ids ${JSON.stringify(c.targetLayerIds)} name layers the ${t.numLayers}-layer target does not have`, { file });
}

export interface LoadedDrafter {
  dir: string;
  cfg: DrafterConfig;
  weights: DrafterWeights;
  /** Storage dtype(s) of the checkpoint's tensors, e.g. ["BF16"]. */
  dtypes: string[];
}

/** Load a drafter as f32 tensors. With target, its compatibility is checked first. */
export function loadDrafter(be: Backend, dir: string, target?: ModelConfig): LoadedDrafter {
  const cfg = loadDrafterConfig(dir);
  if (target) checkDrafterAgainstTarget(cfg, target, dir);
  const ck = Checkpoint.open(dir);
  try {
    const names = new Set(ck.names());
    // Some exports keep the "model." prefix of a training wrapper; accept it when every tensor has it.
    const prefix = [...names].every((n) => n.startsWith('model.')) ? 'model.' : '';
    const specs = drafterTensorSpecs(cfg);
    const expected = new Set(specs.map((s) => prefix + s.name));
    const missing = specs.filter((s) => !names.has(prefix + s.name)).map((s) => prefix + s.name);
    // Embeddings / LM head / rotary buffers are tolerated (ignored): the drafter uses the target's.
    const ignorable = /(^|\.)(embed_tokens\.weight|lm_head\.weight|rotary_emb\.inv_freq)$/;
    const unexpected = [...names].filter((n) => !expected.has(n) && !ignorable.test(n));
    if (missing.length > 0 || unexpected.length > 0) {
      const parts: string[] = [];
      if (missing.length > 0) parts.push(`missing ${missing.length} tensor(s): ${missing.slice(0, 6).join(', ')}${missing.length > 6 ? ', ...' : ''}`);
      if (unexpected.length > 0) parts.push(`unexpected ${unexpected.length} tensor(s): ${unexpected.slice(0, 6).join(', ')}${unexpected.length > 6 ? ', ...' : ''}`);
      throw new UserError(`the drafter checkpoint does not match its config.json (${cfg.numLayers} layers, ${cfg.targetLayerIds.length} taps): ${parts.join('; ')}`, { file: ck.source });
    }
    const dtypes = new Set<string>();
    // A tensor refused half way (shape, NaN) must not strand the ones already on the backend (GPU memory in a release).
    const uploaded: Tensor[] = [];
    let weights: DrafterWeights;
    try {
      weights = buildDrafterWeights(cfg, (s) => {
        const info = ck.require(prefix + s.name);
        if (info.shape.length !== s.shape.length || info.shape.some((d, i) => d !== s.shape[i])) {
          let why = '';
          if (s.name === 'fc.weight' && info.shape.length === 2) {
            why = info.shape[0] !== s.shape[0]
              ? ` (its output width ${info.shape[0]} is the drafter's hidden size; config.json says ${s.shape[0]})`
              : ` (its input width must be len(target_layer_ids)·hidden_size = ${cfg.targetLayerIds.length}·${cfg.hiddenSize})`;
          }
          throw new UserError(`tensor ${prefix + s.name} has shape [${info.shape.join(', ')}], expected [${s.shape.join(', ')}] from config.json${why}`, { file: ck.source });
        }
        dtypes.add(info.dtype);
        const data = ck.readF32(prefix + s.name);
        // A NaN or Inf weight would run and give τ 1 (every draft rejected) instead of an error.
        assertFiniteF32(data, prefix + s.name, ck.source);
        const t = be.fromHost(data, s.shape, 'f32');
        uploaded.push(t);
        return t;
      });
    } catch (e) {
      be.free(...uploaded);
      throw e;
    }
    return { dir, cfg, weights, dtypes: [...dtypes] };
  } finally {
    ck.close();
  }
}
