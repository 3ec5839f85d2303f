// The drafter's configuration (dflash-spec §2, §5.2): Qwen3-style layer sizes plus the DFlash fields, read from any
// spelling the official code, SpecForge or SGLang write, and written back with every field readers look for.
import { join } from 'node:path';
import { normalizeConfig, type ModelConfig } from '../io/config.js';
import { readJsonFile } from '../io/text-file.js';
import { UserError } from '../errors.js';

export interface DrafterConfig {
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  maxPositionEmbeddings: number;
  /** B: block slots (anchor + B − 1 masked). */
  blockSize: number;
  /** Embedding row used for masked slots (an existing row of the target's table). */
  maskTokenId: number;
  /** Tapped target layers, in fc column order. */
  targetLayerIds: number[];
  numTargetLayers: number;
  /** The target's vocabulary size (rows of the shared embedding / LM head). */
  vocabSize: number;
  bosTokenId: number | null;
  eosTokenIds: number[];
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Normalise a drafter config.json (z-lab / SpecForge / SGLang spellings). */
export function parseDrafterConfig(raw: unknown, file: string): DrafterConfig {
  if (!isObject(raw)) throw new UserError('config.json must hold a JSON object', { file });
  const fail = (msg: string): never => {
    throw new UserError(msg, { file });
  };
  const archs = raw.architectures;
  if (Array.isArray(archs) && archs.length > 0 && !archs.some((a) => typeof a === 'string' && a.startsWith('DFlash'))) {
    fail(`not a DFlash drafter: architectures is ${JSON.stringify(archs)} (expected ["DFlashDraftModel"])`);
  }
  // The layer sizes are those of a Qwen3 decoder config; reuse its normalisation.
  const base: ModelConfig = normalizeConfig({ ...raw, architectures: ['Qwen3ForCausalLM'], model_type: 'qwen3' }, file);
  const dc: Json = isObject(raw.dflash_config) ? raw.dflash_config : {};
  // The official code reads dflash_config first, then the top level.
  const pick = (key: string): unknown => (dc[key] !== undefined && dc[key] !== null ? dc[key] : raw[key]);
  const int = (key: string, min: number, fallback?: number): number => {
    const v = pick(key);
    if (v === undefined || v === null) {
      if (fallback !== undefined) return fallback;
      return fail(`"${key}" is missing (top level or dflash_config); a DFlash drafter config needs it`);
    }
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) fail(`"${key}" must be an integer ≥ ${min}, got ${JSON.stringify(v)}`);
    return v as number;
  };
  const blockSize = int('block_size', 2, 16);
  const maskTokenId = int('mask_token_id', 0);
  const ids = pick('target_layer_ids');
  if (!Array.isArray(ids) || ids.length === 0 || ids.some((x) => typeof x !== 'number' || !Number.isInteger(x) || x < 0)) {
    fail(`"dflash_config.target_layer_ids" must be a non-empty list of layer indices, got ${JSON.stringify(ids)}`);
  }
  const targetLayerIds = ids as number[];
  const numTargetLayers = int('num_target_layers', 1, Math.max(...targetLayerIds) + 2);
  if (Math.max(...targetLayerIds) >= numTargetLayers) {
    fail(`target_layer_ids ${JSON.stringify(targetLayerIds)} reach past num_target_layers ${numTargetLayers}`);
  }
  if (base.ropeScaling !== null) fail('the drafter uses plain RoPE; rope_scaling must be null');
  if (raw.is_causal === true || dc.causal === true) fail('causal (DFlash2-style) drafters are not supported; classic DFlash attends bidirectionally within a block');
  return {
    hiddenSize: base.hiddenSize,
    intermediateSize: base.intermediateSize,
    numLayers: base.numLayers,
    numHeads: base.numHeads,
    numKvHeads: base.numKvHeads,
    headDim: base.headDim,
    rmsNormEps: base.rmsNormEps,
    ropeTheta: base.ropeTheta,
    maxPositionEmbeddings: base.maxPositionEmbeddings,
    blockSize,
    maskTokenId,
    targetLayerIds,
    numTargetLayers,
    vocabSize: base.vocabSize,
    bosTokenId: base.bosTokenId,
    eosTokenIds: base.eosTokenIds,
  };
}

export function loadDrafterConfig(dir: string): DrafterConfig {
  const file = join(dir, 'config.json');
  return parseDrafterConfig(readJsonFile(file, 'the drafter config'), file);
}

/**
 * config.json for an exported drafter: every field of dflash-spec §5.2, in the z-lab layout — except `auto_map`. That
 * key points Transformers at remote code (`dflash.py`) shipped beside the weights; we ship none (z-lab's file is theirs
 * to distribute, and a pointer to a missing file breaks `trust_remote_code` loading). SGLang and vLLM pick their
 * built-in DFlash classes from `architectures`; Transformers users load it through the z-lab/dflash package.
 */
export function drafterConfigJson(c: DrafterConfig): Json {
  const eos = c.eosTokenIds.length === 0 ? null : c.eosTokenIds.length === 1 ? c.eosTokenIds[0] : c.eosTokenIds;
  return {
    architectures: ['DFlashDraftModel'],
    model_type: 'qwen3',
    block_size: c.blockSize,
    dflash_config: {
      block_size: c.blockSize,
      mask_token_id: c.maskTokenId,
      target_layer_ids: [...c.targetLayerIds],
      num_target_layers: c.numTargetLayers,
    },
    num_target_layers: c.numTargetLayers,
    hidden_size: c.hiddenSize,
    intermediate_size: c.intermediateSize,
    num_hidden_layers: c.numLayers,
    num_attention_heads: c.numHeads,
    num_key_value_heads: c.numKvHeads,
    head_dim: c.headDim,
    hidden_act: 'silu',
    rms_norm_eps: c.rmsNormEps,
    rope_theta: c.ropeTheta,
    rope_scaling: null,
    rope_parameters: { rope_theta: c.ropeTheta, rope_type: 'default' },
    max_position_embeddings: c.maxPositionEmbeddings,
    layer_types: Array.from({ length: c.numLayers }, () => 'full_attention'),
    max_window_layers: c.numLayers,
    sliding_window: null,
    use_sliding_window: false,
    attention_bias: false,
    attention_dropout: 0.0,
    tie_word_embeddings: false,
    vocab_size: c.vocabSize,
    bos_token_id: c.bosTokenId,
    eos_token_id: eos,
    dtype: 'bfloat16',
    torch_dtype: 'bfloat16',
    initializer_range: 0.02,
    use_cache: true,
  };
}

/** Trainable parameter count (fc, hidden_norm, layers, final norm), dflash-spec §2.8. */
export function drafterParamCount(c: DrafterConfig): number {
  const H = c.hiddenSize;
  const qW = c.numHeads * c.headDim;
  const kvW = c.numKvHeads * c.headDim;
  const perLayer = H * qW + 2 * H * kvW + qW * H + 3 * H * c.intermediateSize + 2 * H + 2 * c.headDim;
  return c.numLayers * perLayer + H * c.targetLayerIds.length * H + 2 * H;
}
