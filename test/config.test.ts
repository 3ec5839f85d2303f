import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { scratchDir } from './scratch.js';
import { loadModelConfig, normalizeConfig, type ModelConfig } from '../src/io/config.js';
import { ropeConfigToLegacy, ropeConfigToV5 } from './rope-spelling.js';
import { FIXTURES } from './fixtures-path.js';
import { userError } from './user-error.js';

const haveFixtures = existsSync(FIXTURES);
if (!haveFixtures) console.warn(`config.test: ${FIXTURES} is absent; fixture config tests are skipped`);

type Raw = Record<string, unknown>;
const readRaw = (dir: string): Raw => JSON.parse(readFileSync(join(FIXTURES, dir, 'config.json'), 'utf8')) as Raw;

/** The normalised fields without `raw` (which differs between spellings by construction). */
function fields(c: ModelConfig): Omit<ModelConfig, 'raw'> {
  const { raw: _raw, ...rest } = c;
  return rest;
}

describe.skipIf(!haveFixtures)('fixture configs (values from REFERENCE.md)', () => {
  it('tiny-qwen3', () => {
    const c = loadModelConfig(join(FIXTURES, 'tiny-qwen3'));
    expect(fields(c)).toEqual({
      family: 'qwen3', architecture: 'Qwen3ForCausalLM', hiddenSize: 256, intermediateSize: 768, numLayers: 4,
      numHeads: 4, numKvHeads: 2, headDim: 64, vocabSize: 4096, rmsNormEps: 1e-6, ropeTheta: 10000, ropeScaling: null,
      maxPositionEmbeddings: 4096, attentionBias: false, outputBias: false, mlpBias: false, qkNorm: true,
      tieWordEmbeddings: true, bosTokenId: 0, eosTokenIds: [0], dtype: 'bfloat16', quantization: null,
    });
    expect(c.raw.transformers_version).toBe('5.17.0');
  });

  it('tiny-llama31-f16: Llama-3.1 RoPE scaling, untied head', () => {
    const c = loadModelConfig(join(FIXTURES, 'arch/tiny-llama31-f16'));
    expect(fields(c)).toEqual({
      family: 'llama', architecture: 'LlamaForCausalLM', hiddenSize: 256, intermediateSize: 512, numLayers: 2,
      numHeads: 4, numKvHeads: 2, headDim: 64, vocabSize: 512, rmsNormEps: 1e-5, ropeTheta: 500000,
      ropeScaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 },
      maxPositionEmbeddings: 8192, attentionBias: false, outputBias: false, mlpBias: false, qkNorm: false,
      tieWordEmbeddings: false, bosTokenId: 1, eosTokenIds: [2], dtype: 'float16', quantization: null,
    });
  });

  it('tiny-qwen25-bf16: q/k/v biases without attention_bias in the file, tied, theta 1e6', () => {
    const raw = readRaw('arch/tiny-qwen25-bf16');
    expect(raw.attention_bias).toBeUndefined();
    const c = normalizeConfig(raw, 'tiny-qwen25/config.json');
    expect(fields(c)).toEqual({
      family: 'qwen2', architecture: 'Qwen2ForCausalLM', hiddenSize: 256, intermediateSize: 512, numLayers: 2,
      numHeads: 4, numKvHeads: 2, headDim: 64, vocabSize: 512, rmsNormEps: 1e-6, ropeTheta: 1e6, ropeScaling: null,
      maxPositionEmbeddings: 4096, attentionBias: true, outputBias: false, mlpBias: false, qkNorm: false,
      tieWordEmbeddings: true, bosTokenId: null, eosTokenIds: [], dtype: 'bfloat16', quantization: null,
    });
  });

  it('official ParoQuant checkpoint: quantization_config', () => {
    const c = loadModelConfig(join(FIXTURES, 'official/tiny-qwen3-paroquant'));
    expect(c.quantization).toEqual({ method: 'paroquant', bits: 4, groupSize: 128, krot: 8 });
  });

  it('every fixture rewritten in the transformers 4.x spelling normalises identically', () => {
    for (const dir of ['tiny-qwen3', 'arch/tiny-llama31-f16', 'arch/tiny-qwen25-bf16', 'official/tiny-qwen3-paroquant']) {
      const v5 = readRaw(dir);
      const legacy = ropeConfigToLegacy(v5);
      expect(legacy.rope_parameters).toBeUndefined();
      expect(typeof legacy.rope_theta).toBe('number');
      expect(fields(normalizeConfig(legacy, 'legacy.json'))).toEqual(fields(normalizeConfig(v5, 'v5.json')));
      // And back: the round trip gives the original rope_parameters.
      expect(ropeConfigToV5(legacy).rope_parameters).toEqual(v5.rope_parameters);
    }
    const llamaLegacy = ropeConfigToLegacy(readRaw('arch/tiny-llama31-f16'));
    expect(llamaLegacy.rope_theta).toBe(500000);
    expect(llamaLegacy.rope_scaling).toEqual({
      factor: 8, high_freq_factor: 4, low_freq_factor: 1, original_max_position_embeddings: 8192, rope_type: 'llama3',
    });
    expect(ropeConfigToLegacy(readRaw('tiny-qwen3')).rope_scaling).toBeNull();
  });

  it('loadModelConfig on a folder without config.json names the file', () => {
    const dir = scratchDir('cfg-');
    const e = userError(() => loadModelConfig(dir));
    expect(e.file).toBe(join(dir, 'config.json'));
    writeFileSync(join(dir, 'config.json'), '{"architectures": [');
    expect(userError(() => loadModelConfig(dir)).message).toMatch(/not valid JSON/);
  });
});

// Public configs (numbers as published on the Hugging Face Hub), transformers 4.x spelling.
const LLAMA31_8B: Raw = {
  architectures: ['LlamaForCausalLM'], attention_bias: false, attention_dropout: 0.0, bos_token_id: 128000,
  eos_token_id: [128001, 128008, 128009], hidden_act: 'silu', hidden_size: 4096, initializer_range: 0.02,
  intermediate_size: 14336, max_position_embeddings: 131072, mlp_bias: false, model_type: 'llama',
  num_attention_heads: 32, num_hidden_layers: 32, num_key_value_heads: 8, pretraining_tp: 1, rms_norm_eps: 1e-5,
  rope_scaling: { factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 8192, rope_type: 'llama3' },
  rope_theta: 500000.0, tie_word_embeddings: false, torch_dtype: 'bfloat16', transformers_version: '4.43.0.dev0',
  use_cache: true, vocab_size: 128256,
};
const LLAMA2_7B: Raw = {
  architectures: ['LlamaForCausalLM'], bos_token_id: 1, eos_token_id: 2, hidden_act: 'silu', hidden_size: 4096,
  initializer_range: 0.02, intermediate_size: 11008, max_position_embeddings: 4096, model_type: 'llama',
  num_attention_heads: 32, num_hidden_layers: 32, pretraining_tp: 1, rms_norm_eps: 1e-5, rope_scaling: null,
  tie_word_embeddings: false, torch_dtype: 'float16', transformers_version: '4.31.0.dev0', use_cache: true, vocab_size: 32000,
};
const QWEN25_7B: Raw = {
  architectures: ['Qwen2ForCausalLM'], attention_dropout: 0.0, bos_token_id: 151643, eos_token_id: 151643,
  hidden_act: 'silu', hidden_size: 3584, initializer_range: 0.02, intermediate_size: 18944,
  max_position_embeddings: 131072, max_window_layers: 28, model_type: 'qwen2', num_attention_heads: 28,
  num_hidden_layers: 28, num_key_value_heads: 4, rms_norm_eps: 1e-6, rope_theta: 1000000.0, sliding_window: 131072,
  tie_word_embeddings: false, torch_dtype: 'bfloat16', transformers_version: '4.43.1', use_cache: true,
  use_mrope: false, use_sliding_window: false, vocab_size: 152064,
};
const QWEN3_8B: Raw = {
  architectures: ['Qwen3ForCausalLM'], attention_bias: false, attention_dropout: 0.0, bos_token_id: 151643,
  eos_token_id: 151645, head_dim: 128, hidden_act: 'silu', hidden_size: 4096, initializer_range: 0.02,
  intermediate_size: 12288, max_position_embeddings: 40960, max_window_layers: 36, model_type: 'qwen3',
  num_attention_heads: 32, num_hidden_layers: 36, num_key_value_heads: 8, rms_norm_eps: 1e-6, rope_scaling: null,
  rope_theta: 1000000, sliding_window: null, tie_word_embeddings: false, torch_dtype: 'bfloat16',
  transformers_version: '4.51.0', use_cache: true, use_sliding_window: false, vocab_size: 151936,
};

describe('published model configs', () => {
  it('Llama-3.1-8B-Instruct', () => {
    const c = normalizeConfig(LLAMA31_8B, 'llama31/config.json');
    expect(fields(c)).toEqual({
      family: 'llama', architecture: 'LlamaForCausalLM', hiddenSize: 4096, intermediateSize: 14336, numLayers: 32,
      numHeads: 32, numKvHeads: 8, headDim: 128, vocabSize: 128256, rmsNormEps: 1e-5, ropeTheta: 500000,
      ropeScaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 },
      maxPositionEmbeddings: 131072, attentionBias: false, outputBias: false, mlpBias: false, qkNorm: false,
      tieWordEmbeddings: false, bosTokenId: 128000, eosTokenIds: [128001, 128008, 128009], dtype: 'bfloat16', quantization: null,
    });
    expect(fields(normalizeConfig(ropeConfigToV5(LLAMA31_8B), 'v5.json'))).toEqual(fields(c));
  });

  it('Llama-2-7B: defaults for rope_theta (10000) and num_key_value_heads (= heads)', () => {
    const c = normalizeConfig(LLAMA2_7B, 'llama2/config.json');
    expect([c.ropeTheta, c.ropeScaling, c.numKvHeads, c.headDim, c.eosTokenIds, c.dtype]).toEqual([10000, null, 32, 128, [2], 'float16']);
  });

  it('Qwen2.5-7B: q/k/v bias on, o_proj bias off, head_dim = 3584 / 28', () => {
    const c = normalizeConfig(QWEN25_7B, 'qwen25/config.json');
    expect(fields(c)).toEqual({
      family: 'qwen2', architecture: 'Qwen2ForCausalLM', hiddenSize: 3584, intermediateSize: 18944, numLayers: 28,
      numHeads: 28, numKvHeads: 4, headDim: 128, vocabSize: 152064, rmsNormEps: 1e-6, ropeTheta: 1e6, ropeScaling: null,
      maxPositionEmbeddings: 131072, attentionBias: true, outputBias: false, mlpBias: false, qkNorm: false,
      tieWordEmbeddings: false, bosTokenId: 151643, eosTokenIds: [151643], dtype: 'bfloat16', quantization: null,
    });
    // Qwen2 wires the q/k/v biases regardless of attention_bias.
    expect(normalizeConfig({ ...QWEN25_7B, attention_bias: false }, 'x').attentionBias).toBe(true);
    expect(fields(normalizeConfig(ropeConfigToV5(QWEN25_7B), 'v5.json'))).toEqual(fields(c));
  });

  it('Qwen3-8B', () => {
    const c = normalizeConfig(QWEN3_8B, 'qwen3/config.json');
    expect(fields(c)).toEqual({
      family: 'qwen3', architecture: 'Qwen3ForCausalLM', hiddenSize: 4096, intermediateSize: 12288, numLayers: 36,
      numHeads: 32, numKvHeads: 8, headDim: 128, vocabSize: 151936, rmsNormEps: 1e-6, ropeTheta: 1e6, ropeScaling: null,
      maxPositionEmbeddings: 40960, attentionBias: false, outputBias: false, mlpBias: false, qkNorm: true,
      tieWordEmbeddings: false, bosTokenId: 151643, eosTokenIds: [151645], dtype: 'bfloat16', quantization: null,
    });
    expect(fields(normalizeConfig(ropeConfigToV5(QWEN3_8B), 'v5.json'))).toEqual(fields(c));
  });

  it('Qwen3 head_dim is decoupled from hidden / heads (Qwen3-0.6B: 1024 hidden, 16 heads, head_dim 128)', () => {
    const small: Raw = { ...QWEN3_8B, hidden_size: 1024, num_attention_heads: 16, num_hidden_layers: 28, tie_word_embeddings: true };
    expect(normalizeConfig(small, 'x').headDim).toBe(128);
    // Without head_dim, Qwen3Config's own default (128) applies, not hidden / heads (64).
    const { head_dim: _h, ...noHeadDim } = small;
    expect(normalizeConfig(noHeadDim, 'x').headDim).toBe(128);
    // Llama derives it (Llama-2-13B: 5120 hidden, 40 heads → 128); an explicit head_dim wins.
    expect(normalizeConfig({ ...LLAMA2_7B, hidden_size: 5120, num_attention_heads: 40 }, 'x').headDim).toBe(128);
    expect(normalizeConfig({ ...LLAMA2_7B, head_dim: 64 }, 'x').headDim).toBe(64);
  });

  it('attention_bias and mlp_bias on Llama; attention_bias on Qwen3', () => {
    const l = normalizeConfig({ ...LLAMA31_8B, attention_bias: true, mlp_bias: true }, 'x');
    expect([l.attentionBias, l.outputBias, l.mlpBias]).toEqual([true, true, true]);
    const q = normalizeConfig({ ...QWEN3_8B, attention_bias: true, mlp_bias: true }, 'x');
    expect([q.attentionBias, q.outputBias, q.mlpBias]).toEqual([true, true, false]);
  });

  it('linear RoPE scaling, old "type" key, and detection by model_type alone', () => {
    const c = normalizeConfig({ ...LLAMA2_7B, rope_scaling: { type: 'linear', factor: 4 } }, 'x');
    expect(c.ropeScaling).toEqual({ type: 'linear', factor: 4 });
    expect(normalizeConfig({ ...LLAMA2_7B, rope_scaling: { type: 'default' } }, 'x').ropeScaling).toBeNull();
    const { architectures: _a, ...noArch } = QWEN25_7B;
    const d = normalizeConfig(noArch, 'x');
    expect([d.family, d.architecture]).toEqual(['qwen2', 'Qwen2ForCausalLM']);
  });
});

describe('errors name the file and the problem', () => {
  const F = '/models/m/config.json';
  const cases: [string, Raw, RegExp][] = [
    ['Mistral', { ...LLAMA31_8B, architectures: ['MistralForCausalLM'], model_type: 'mistral' }, /MistralForCausalLM.*LlamaForCausalLM.*Qwen2ForCausalLM.*Qwen3ForCausalLM/],
    ['Qwen3-MoE', { ...QWEN3_8B, architectures: ['Qwen3MoeForCausalLM'], model_type: 'qwen3_moe' }, /unsupported architecture Qwen3MoeForCausalLM/],
    ['Gemma', { ...LLAMA2_7B, architectures: ['GemmaForCausalLM'], model_type: 'gemma' }, /GemmaForCausalLM/],
    ['unknown model_type only', { ...(({ architectures: _a, ...r }) => r)(LLAMA2_7B), model_type: 'phi3' }, /model_type "phi3"/],
    ['arch / model_type mismatch', { ...LLAMA2_7B, model_type: 'qwen2' }, /does not match model_type "qwen2"/],
    ['yarn', { ...QWEN3_8B, rope_scaling: { rope_type: 'yarn', factor: 4, original_max_position_embeddings: 32768 } }, /unsupported RoPE type "yarn"/],
    ['dynamic (v5)', { ...ropeConfigToV5(LLAMA2_7B), rope_parameters: { rope_theta: 1e4, rope_type: 'dynamic', factor: 2 } }, /"dynamic" in rope_parameters/],
    ['longrope', { ...LLAMA2_7B, rope_scaling: { type: 'longrope', short_factor: [1], long_factor: [2] } }, /"longrope"/],
    ['mrope', { ...QWEN25_7B, rope_scaling: { type: 'mrope', mrope_section: [16, 24, 24] } }, /"mrope"/],
    ['llama3 without factor', { ...LLAMA31_8B, rope_scaling: { rope_type: 'llama3', low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 } }, /rope_scaling\.factor/],
    ['heads not a multiple of kv heads', { ...QWEN3_8B, num_key_value_heads: 7 }, /multiple of num_key_value_heads \(7\)/],
    ['zero layers', { ...QWEN3_8B, num_hidden_layers: 0 }, /"num_hidden_layers" must be a positive integer, got 0/],
    ['fractional hidden', { ...QWEN3_8B, hidden_size: 4096.5 }, /"hidden_size" must be a positive integer/],
    ['string heads', { ...QWEN3_8B, num_attention_heads: '32' }, /"num_attention_heads" must be a positive integer, got "32"/],
    ['missing vocab', (({ vocab_size: _v, ...r }) => r)(QWEN3_8B), /"vocab_size" is missing/],
    ['indivisible hidden without head_dim', { ...LLAMA2_7B, hidden_size: 4100 }, /not divisible by num_attention_heads/],
    ['odd head_dim', { ...QWEN3_8B, head_dim: 127 }, /head_dim must be even/],
    ['negative eps', { ...QWEN3_8B, rms_norm_eps: -1 }, /rms_norm_eps/],
    ['bad theta', { ...QWEN3_8B, rope_theta: 0 }, /rope_theta must be a positive number/],
    ['sliding window', { ...QWEN25_7B, use_sliding_window: true }, /use_sliding_window: true is not supported/],
    ['sliding layer type', { ...QWEN3_8B, layer_types: ['full_attention', 'sliding_attention'] }, /layer_types contains "sliding_attention"/],
    ['awq quantization', { ...QWEN3_8B, quantization_config: { quant_method: 'awq', bits: 4, group_size: 128 } }, /unsupported quantization "awq"/],
    ['paroquant without krot', { ...QWEN3_8B, quantization_config: { quant_method: 'paroquant', bits: 4, group_size: 128 } }, /quantization_config\.krot/],
  ];
  it.each(cases)('%s', (_name, raw, pattern) => {
    const e = userError(() => normalizeConfig(raw, F));
    expect(e.file).toBe(F);
    expect(e.message).toMatch(pattern);
    expect(e.oneLine().startsWith(F)).toBe(true);
  });

  it('a non-object config', () => {
    expect(userError(() => normalizeConfig([1, 2], F)).file).toBe(F);
  });
});
