// Shared helpers of the dflash tests: small random targets and drafters on the cpu backend.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Backend, Tensor } from '../src/engine/backend.js';
import type { ModelConfig } from '../src/io/config.js';
import { normalizeConfig } from '../src/io/config.js';
import { Decoder } from '../src/model/decoder.js';
import type { LayerWeights, ModelWeights } from '../src/model/weights.js';
import { writeSafetensors, type TensorData } from '../src/io/safetensors-writer.js';
import { Rng } from '../src/numerics/rng.js';
import type { DrafterConfig } from '../src/dflash/drafter-config.js';

import { randn } from './numeric.js';

export { randn };

export function smallDrafterConfig(over: Partial<DrafterConfig> = {}): DrafterConfig {
  return {
    hiddenSize: 16, intermediateSize: 24, numLayers: 2, numHeads: 4, numKvHeads: 2, headDim: 8, rmsNormEps: 1e-6, ropeTheta: 10000,
    maxPositionEmbeddings: 512, blockSize: 4, maskTokenId: 1, targetLayerIds: [0, 1], numTargetLayers: 3, vocabSize: 20,
    bosTokenId: null, eosTokenIds: [0], ...over,
  };
}

/** A raw Qwen3 config.json object for a tiny target. */
export function tinyTargetRawConfig(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    architectures: ['Qwen3ForCausalLM'], model_type: 'qwen3', hidden_size: 16, intermediate_size: 24, num_hidden_layers: 3,
    num_attention_heads: 4, num_key_value_heads: 2, head_dim: 8, vocab_size: 20, rms_norm_eps: 1e-6, rope_theta: 10000,
    max_position_embeddings: 512, tie_word_embeddings: true, eos_token_id: 0, bos_token_id: 0, dtype: 'float32', ...over,
  };
}

/** Random target weights for a config (tied head), as named safetensors tensors. */
export function randomTargetTensors(cfg: ModelConfig, seed: number): TensorData[] {
  const rng = new Rng(seed);
  const H = cfg.hiddenSize;
  const qW = cfg.numHeads * cfg.headDim;
  const kvW = cfg.numKvHeads * cfg.headDim;
  const t: TensorData[] = [];
  const add = (name: string, shape: number[], data: Float32Array): void => { t.push({ name, dtype: 'F32', shape, data }); };
  const lin = (o: number, i: number): Float32Array => randn(rng, o * i, 1 / Math.sqrt(i));
  const norm = (n: number): Float32Array => Float32Array.from(randn(rng, n, 0.1), (x) => 1 + x);
  add('model.embed_tokens.weight', [cfg.vocabSize, H], randn(rng, cfg.vocabSize * H, 1));
  for (let l = 0; l < cfg.numLayers; l++) {
    const p = `model.layers.${l}`;
    add(`${p}.input_layernorm.weight`, [H], norm(H));
    add(`${p}.post_attention_layernorm.weight`, [H], norm(H));
    add(`${p}.self_attn.q_proj.weight`, [qW, H], lin(qW, H));
    add(`${p}.self_attn.k_proj.weight`, [kvW, H], lin(kvW, H));
    add(`${p}.self_attn.v_proj.weight`, [kvW, H], lin(kvW, H));
    add(`${p}.self_attn.o_proj.weight`, [H, qW], lin(H, qW));
    add(`${p}.self_attn.q_norm.weight`, [cfg.headDim], norm(cfg.headDim));
    add(`${p}.self_attn.k_norm.weight`, [cfg.headDim], norm(cfg.headDim));
    add(`${p}.mlp.gate_proj.weight`, [cfg.intermediateSize, H], lin(cfg.intermediateSize, H));
    add(`${p}.mlp.up_proj.weight`, [cfg.intermediateSize, H], lin(cfg.intermediateSize, H));
    add(`${p}.mlp.down_proj.weight`, [H, cfg.intermediateSize], lin(H, cfg.intermediateSize));
  }
  add('model.norm.weight', [H], norm(H));
  return t;
}

/** Write a tiny random target model directory (config.json + model.safetensors, no tokenizer). */
export function writeTinyTarget(dir: string, seed = 1, over: Record<string, unknown> = {}): ModelConfig {
  mkdirSync(dir, { recursive: true });
  const raw = tinyTargetRawConfig(over);
  const cfg = normalizeConfig(raw, path.join(dir, 'config.json'));
  writeFileSync(path.join(dir, 'config.json'), JSON.stringify(raw));
  writeSafetensors(path.join(dir, 'model.safetensors'), randomTargetTensors(cfg, seed));
  return cfg;
}

/** An in-memory random target decoder. */
export function tinyTargetDecoder(be: Backend, seed = 1, over: Record<string, unknown> = {}): Decoder {
  const cfg = normalizeConfig(tinyTargetRawConfig(over), 'test');
  const byName = new Map(randomTargetTensors(cfg, seed).map((t) => [t.name, be.fromHost(t.data as Float32Array, t.shape, 'f32')]));
  const get = (n: string): Tensor => byName.get(n)!;
  const dense = (n: string, o: number, i: number) => ({ kind: 'dense' as const, weight: get(`${n}.weight`), outFeatures: o, inFeatures: i });
  const H = cfg.hiddenSize;
  const layers: LayerWeights[] = [];
  for (let l = 0; l < cfg.numLayers; l++) {
    const p = `model.layers.${l}`;
    layers.push({
      inputNorm: get(`${p}.input_layernorm.weight`), postNorm: get(`${p}.post_attention_layernorm.weight`),
      qNorm: get(`${p}.self_attn.q_norm.weight`), kNorm: get(`${p}.self_attn.k_norm.weight`),
      q: dense(`${p}.self_attn.q_proj`, cfg.numHeads * cfg.headDim, H), k: dense(`${p}.self_attn.k_proj`, cfg.numKvHeads * cfg.headDim, H),
      v: dense(`${p}.self_attn.v_proj`, cfg.numKvHeads * cfg.headDim, H), o: dense(`${p}.self_attn.o_proj`, H, cfg.numHeads * cfg.headDim),
      gate: dense(`${p}.mlp.gate_proj`, cfg.intermediateSize, H), up: dense(`${p}.mlp.up_proj`, cfg.intermediateSize, H),
      down: dense(`${p}.mlp.down_proj`, H, cfg.intermediateSize),
    });
  }
  const w: ModelWeights = { embed: get('model.embed_tokens.weight'), layers, finalNorm: get('model.norm.weight'), lmHead: get('model.embed_tokens.weight') };
  return new Decoder(be, cfg, w);
}
