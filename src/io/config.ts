// Hugging Face config.json normalisation: the many historical spellings of Llama / Qwen2 / Qwen3 configs become one
// ModelConfig that the model code is driven by.

import { join } from 'node:path';
import { UserError } from '../errors.js';
import { readSideFile } from './input-file.js';

export type ModelFamily = 'llama' | 'qwen2' | 'qwen3';

export type RopeScaling =
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositionEmbeddings: number }
  | { type: 'linear'; factor: number };

export interface QuantizationConfig {
  method: 'paroquant';
  bits: number;
  groupSize: number;
  krot: number;
}

export interface ModelConfig {
  family: ModelFamily;
  /** architectures[0] as written, e.g. "Qwen3ForCausalLM". */
  architecture: string;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: RopeScaling | null;
  maxPositionEmbeddings: number;
  /** q/k/v projections carry biases (Qwen2, or attention_bias: true). */
  attentionBias: boolean;
  /** o_proj carries a bias (attention_bias: true on Llama). */
  outputBias: boolean;
  mlpBias: boolean;
  /** Per-head RMSNorm on queries and keys before RoPE (Qwen3). */
  qkNorm: boolean;
  tieWordEmbeddings: boolean;
  bosTokenId: number | null;
  eosTokenIds: number[];
  /** Storage dtype the config declares (dtype / torch_dtype), informative only. */
  dtype: string | null;
  quantization: QuantizationConfig | null;
  /** The parsed config.json, for writing derived configs. */
  raw: Record<string, unknown>;
}

// ── Implementation ────────────────────────────────────────────────────────────────────────────────────────────────
// Defaults follow transformers (4.x and 5.x agree on these): tie_word_embeddings false for all three families,
// rope_theta 10000, rms_norm_eps 1e-6, num_key_value_heads = num_attention_heads, Qwen3 head_dim 128 when absent
// (Qwen3Config's own default), otherwise head_dim = hidden_size / num_attention_heads.


type Json = Record<string, unknown>;

interface FamilyInfo {
  family: ModelFamily;
  architecture: string;
  modelType: string;
  defaultMaxPositions: number;
}

const FAMILIES: readonly FamilyInfo[] = [
  { family: 'llama', architecture: 'LlamaForCausalLM', modelType: 'llama', defaultMaxPositions: 2048 },
  { family: 'qwen2', architecture: 'Qwen2ForCausalLM', modelType: 'qwen2', defaultMaxPositions: 32768 },
  { family: 'qwen3', architecture: 'Qwen3ForCausalLM', modelType: 'qwen3', defaultMaxPositions: 32768 },
];

const SUPPORTED_LIST = FAMILIES.map((f) => `${f.architecture} (model_type "${f.modelType}")`).join(', ');

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Reads `<dir>/config.json` and normalises it. */
export function loadModelConfig(dir: string): ModelConfig {
  const file = join(dir, 'config.json');
  const text = readSideFile(file, 'the model config', 16 * 2 ** 20);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new UserError(`config.json is not valid JSON: ${(e as Error).message}`, { file, cause: e });
  }
  return normalizeConfig(raw, file);
}

/** One ModelConfig from any supported spelling of a Llama / Qwen2 / Qwen3 config.json. */
export function normalizeConfig(raw: unknown, file: string): ModelConfig {
  if (!isObject(raw)) throw new UserError('config.json must hold a JSON object', { file });
  const fail = (msg: string): never => {
    throw new UserError(msg, { file });
  };
  const info = detectFamily(raw, file);

  const posInt = (key: string, fallback?: number): number => {
    const v = raw[key];
    if (v === undefined || v === null) {
      if (fallback !== undefined) return fallback;
      return fail(`"${key}" is missing; ${info.architecture} configs need it`);
    }
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) fail(`"${key}" must be a positive integer, got ${JSON.stringify(v)}`);
    return v as number;
  };
  const posNum = (v: unknown, what: string): number => {
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) fail(`${what} must be a positive number, got ${JSON.stringify(v)}`);
    return v as number;
  };
  const bool = (key: string, fallback: boolean): boolean => {
    const v = raw[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'boolean') fail(`"${key}" must be true or false, got ${JSON.stringify(v)}`);
    return v as boolean;
  };
  const tokenId = (key: string): number[] => {
    const v = raw[key];
    if (v === undefined || v === null) return [];
    const list = Array.isArray(v) ? v : [v];
    for (const id of list) {
      if (typeof id !== 'number' || !Number.isInteger(id) || id < 0) fail(`"${key}" must be a token id or a list of them, got ${JSON.stringify(v)}`);
    }
    return list as number[];
  };

  const hiddenSize = posInt('hidden_size');
  const intermediateSize = posInt('intermediate_size');
  const numLayers = posInt('num_hidden_layers');
  const numHeads = posInt('num_attention_heads');
  const numKvHeads = posInt('num_key_value_heads', numHeads);
  const vocabSize = posInt('vocab_size');
  if (numHeads % numKvHeads !== 0) {
    fail(`num_attention_heads (${numHeads}) must be a multiple of num_key_value_heads (${numKvHeads})`);
  }
  let headDim: number;
  if (raw.head_dim !== undefined && raw.head_dim !== null) headDim = posInt('head_dim');
  else if (info.family === 'qwen3') headDim = 128;
  else {
    if (hiddenSize % numHeads !== 0) {
      fail(`hidden_size (${hiddenSize}) is not divisible by num_attention_heads (${numHeads}) and no head_dim is given`);
    }
    headDim = hiddenSize / numHeads;
  }
  // RoPE rotates pairs of channels, so every head needs an even width.
  if (headDim % 2 !== 0) fail(`head_dim must be even for rotary embeddings, got ${headDim}`);

  // Sliding-window layers (Qwen2/Qwen3 `use_sliding_window`, or `layer_types`) attend differently; not modelled here.
  const layerTypes = Array.isArray(raw.layer_types) ? raw.layer_types : [];
  const otherLayer = layerTypes.find((t) => t !== 'full_attention');
  if (otherLayer !== undefined) fail(`layer_types contains ${JSON.stringify(otherLayer)}; only "full_attention" layers are supported`);
  if (raw.use_sliding_window === true) fail('use_sliding_window: true is not supported (sliding-window attention)');

  const rmsNormEps = posNum(raw.rms_norm_eps ?? 1e-6, '"rms_norm_eps"');
  const maxPositionEmbeddings = posInt('max_position_embeddings', info.defaultMaxPositions);
  const { ropeTheta, ropeScaling } = readRope(raw, file);

  // Bias switches as each family's modeling code wires them.
  const attentionBiasFlag = bool('attention_bias', false);
  const attentionBias = info.family === 'qwen2' ? true : attentionBiasFlag;
  const outputBias = info.family === 'qwen2' ? false : attentionBiasFlag;
  const mlpBias = info.family === 'llama' ? bool('mlp_bias', false) : false;

  const bos = tokenId('bos_token_id');
  if (bos.length > 1) fail(`"bos_token_id" must be a single token id, got ${JSON.stringify(raw.bos_token_id)}`);

  const dtypeRaw = raw.dtype ?? raw.torch_dtype ?? null;
  if (dtypeRaw !== null && typeof dtypeRaw !== 'string') fail(`"dtype" must be a string, got ${JSON.stringify(dtypeRaw)}`);

  return {
    family: info.family,
    architecture: info.architecture,
    hiddenSize,
    intermediateSize,
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    vocabSize,
    rmsNormEps,
    ropeTheta,
    ropeScaling,
    maxPositionEmbeddings,
    attentionBias,
    outputBias,
    mlpBias,
    qkNorm: info.family === 'qwen3',
    tieWordEmbeddings: bool('tie_word_embeddings', false),
    bosTokenId: bos.length === 1 ? bos[0] : null,
    eosTokenIds: tokenId('eos_token_id'),
    dtype: dtypeRaw as string | null,
    quantization: readQuantization(raw.quantization_config, file),
    raw,
  };
}

function detectFamily(raw: Json, file: string): FamilyInfo {
  const archs = raw.architectures;
  const modelType = typeof raw.model_type === 'string' ? raw.model_type : undefined;
  let arch: string | undefined;
  if (Array.isArray(archs) && archs.length > 0) {
    if (typeof archs[0] !== 'string') throw new UserError(`"architectures" must list strings, got ${JSON.stringify(archs)}`, { file });
    arch = archs[0];
  } else if (archs !== undefined && archs !== null) {
    throw new UserError(`"architectures" must be a non-empty list, got ${JSON.stringify(archs)}`, { file });
  }
  if (arch === undefined && modelType === undefined) {
    throw new UserError(`config names neither "architectures" nor "model_type"; supported: ${SUPPORTED_LIST}`, { file });
  }
  const info = arch !== undefined ? FAMILIES.find((f) => f.architecture === arch) : FAMILIES.find((f) => f.modelType === modelType);
  if (!info) {
    const what = arch !== undefined ? `architecture ${arch}` : `model_type "${modelType}"`;
    throw new UserError(`unsupported ${what}; supported: ${SUPPORTED_LIST}`, { file });
  }
  if (modelType !== undefined && modelType !== info.modelType) {
    throw new UserError(
      `architecture ${info.architecture} does not match model_type "${modelType}" (expected "${info.modelType}"); supported: ${SUPPORTED_LIST}`,
      { file },
    );
  }
  return info;
}

/** RoPE settings from rope_parameters (transformers 5) or rope_theta + rope_scaling (4.x). */
function readRope(raw: Json, file: string): { ropeTheta: number; ropeScaling: RopeScaling | null } {
  const fail = (msg: string): never => {
    throw new UserError(msg, { file });
  };
  let params: Json | null = null;
  let where: string;
  let theta: unknown = raw.rope_theta;
  if (raw.rope_parameters !== undefined && raw.rope_parameters !== null) {
    if (!isObject(raw.rope_parameters)) fail(`"rope_parameters" must be an object, got ${JSON.stringify(raw.rope_parameters)}`);
    params = raw.rope_parameters as Json;
    where = 'rope_parameters';
    if (params.rope_theta !== undefined && params.rope_theta !== null) theta = params.rope_theta;
  } else {
    where = 'rope_scaling';
    if (raw.rope_scaling !== undefined && raw.rope_scaling !== null) {
      if (!isObject(raw.rope_scaling)) fail(`"rope_scaling" must be an object or null, got ${JSON.stringify(raw.rope_scaling)}`);
      params = raw.rope_scaling as Json;
    }
  }
  if (theta === undefined || theta === null) theta = 10000;
  if (typeof theta !== 'number' || !Number.isFinite(theta) || theta <= 0) fail(`rope_theta must be a positive number, got ${JSON.stringify(theta)}`);
  const ropeTheta = theta as number;
  if (params === null) return { ropeTheta, ropeScaling: null };

  const type = params.rope_type ?? params.type ?? 'default';
  const num = (key: string): number => {
    const v = params![key];
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
      fail(`${where}.${key} must be a positive number for rope_type "${String(type)}", got ${JSON.stringify(v)}`);
    }
    return v as number;
  };
  switch (type) {
    case 'default':
      return { ropeTheta, ropeScaling: null };
    case 'linear':
      return { ropeTheta, ropeScaling: { type: 'linear', factor: num('factor') } };
    case 'llama3': {
      const lowFreqFactor = num('low_freq_factor');
      const highFreqFactor = num('high_freq_factor');
      // The llama3 formula divides by (high − low); equal factors leave it undefined.
      if (highFreqFactor <= lowFreqFactor) {
        fail(`${where}.high_freq_factor (${highFreqFactor}) must exceed low_freq_factor (${lowFreqFactor})`);
      }
      const original = num('original_max_position_embeddings');
      if (!Number.isInteger(original)) fail(`${where}.original_max_position_embeddings must be an integer, got ${original}`);
      return {
        ropeTheta,
        ropeScaling: { type: 'llama3', factor: num('factor'), lowFreqFactor, highFreqFactor, originalMaxPositionEmbeddings: original },
      };
    }
    default:
      return fail(`unsupported RoPE type ${JSON.stringify(type)} in ${where}; supported: "default", "linear", "llama3"`);
  }
}

function readQuantization(q: unknown, file: string): QuantizationConfig | null {
  if (q === undefined || q === null) return null;
  const fail = (msg: string): never => {
    throw new UserError(msg, { file });
  };
  if (!isObject(q)) return fail(`"quantization_config" must be an object, got ${JSON.stringify(q)}`);
  if (q.quant_method !== 'paroquant') {
    return fail(`unsupported quantization ${JSON.stringify(q.quant_method)} in quantization_config; supported: "paroquant"`);
  }
  const int = (key: string): number => {
    const v = q[key];
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) fail(`quantization_config.${key} must be a positive integer, got ${JSON.stringify(v)}`);
    return v as number;
  };
  return { method: 'paroquant', bits: int('bits'), groupSize: int('group_size'), krot: int('krot') };
}
