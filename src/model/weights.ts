// Loading a decoder checkpoint (dense, or ParoQuant INT4) into backend tensors, with tensor names mapped as
// transformers does and clear errors for missing tensors.
import type { Backend, DType, Tensor } from '../engine/backend.js';
import type { ModelConfig } from '../io/config.js';
import type { Checkpoint } from '../io/checkpoint.js';
import { AWQ_ORDER } from '../io/awq.js';
import { packedLinearLayout, unpackAwq } from '../io/int4-format.js';
import { validateCheckpoint } from '../io/validate-checkpoint.js';
import { LINEAR_KEYS, LINEAR_NAMES } from '../io/decoder-linears.js';
import { UserError } from '../errors.js';

/** A linear layer y = x·Wᵀ + b, dense or with a ParoQuant input transform. */
export type Linear =
  | { kind: 'dense'; weight: Tensor /* [out, in] */; bias?: Tensor; outFeatures: number; inFeatures: number }
  | {
    /** ParoQuant: y = givens(x ⊙ channelScales)·W_rotᵀ + b, W_rot the dequantized rotated weight. */
    kind: 'rotated';
    weight: Tensor; // [out, in], dequantized (q − z)·s
    bias?: Tensor;
    channelScales: Tensor; // [in] = 1/α
    theta: Tensor; // f32 [K, in/2]
    pairs: Tensor; // i32 [K, in]
    groupSize: number;
    outFeatures: number;
    inFeatures: number;
  };

export interface LayerWeights {
  inputNorm: Tensor;
  postNorm: Tensor;
  qNorm?: Tensor;
  kNorm?: Tensor;
  q: Linear; k: Linear; v: Linear; o: Linear;
  gate: Linear; up: Linear; down: Linear;
}

export interface ModelWeights {
  embed: Tensor; // [V, H]
  layers: LayerWeights[];
  finalNorm: Tensor;
  lmHead: Tensor; // [V, H]; the same tensor as embed when tied
}

export interface LoadOptions {
  /** Storage dtype for float weights: 'native' keeps bf16/f16 as stored (default), or force f32/bf16. */
  weightDtype?: 'native' | DType;
  /** Only load layers in [0, layerLimit) (e.g. a target that only feeds taps). */
  layerLimit?: number;
}

// The layer's linears as the config implies them (io/decoder-linears), also offered here to the model's users.
export { LINEAR_KEYS, LINEAR_NAMES, linearShapes, type LinearKey } from '../io/decoder-linears.js';

/** Read one float tensor onto the backend, keeping 16-bit storage bit-exact where possible. */
export function loadFloat(be: Backend, ck: Checkpoint, name: string, dtype: 'native' | DType = 'native', shape?: readonly number[]): Tensor {
  const info = ck.require(name);
  const shp = shape ?? info.shape;
  if ((info.dtype === 'BF16' || info.dtype === 'F16') && (dtype === 'native' || dtype === info.dtype.toLowerCase())) {
    return be.fromBits(ck.readRaw16(name), shp, info.dtype === 'BF16' ? 'bf16' : 'f16');
  }
  if ((info.dtype === 'BF16' || info.dtype === 'F16') && dtype === 'f32') {
    // Widening is exact: upload the 16-bit storage and widen where the tensor lives (half the bytes, no host pass).
    const t16 = be.fromBits(ck.readRaw16(name), shp, info.dtype === 'BF16' ? 'bf16' : 'f16');
    const t = be.cast(t16, 'f32');
    be.free(t16);
    return t;
  }
  if (!['F32', 'F64', 'F16', 'BF16'].includes(info.dtype)) {
    throw new UserError(`tensor ${name} has dtype ${info.dtype}, expected a float dtype`, { file: ck.dir });
  }
  const target: DType = dtype === 'native' ? 'f32' : dtype;
  return be.fromHost(ck.readF32(name), shp, target);
}

export function expectShape(ck: Checkpoint, name: string, shape: readonly number[]): void {
  const got = ck.require(name).shape;
  if (got.length !== shape.length || got.some((d, i) => d !== shape[i])) {
    throw new UserError(`tensor ${name} has shape [${got.join(', ')}], expected [${shape.join(', ')}] from config.json`, { file: ck.dir });
  }
}

/**
 * W_rot [O, I] (f32) of AutoAWQ tensors — qweight i32 [I, O/8], qzeros i32 [I/gs, O/8], scales [I/gs, O] — dequantized
 * on the backend (W_rot[o, i] = (q − z)·s, io/awq.ts dequantizeAwq bit for bit): only the packed words travel and no
 * f32 copy of the weight is made on the host (JS dequantization took 100 s of a 6 GB Qwen3-8B checkpoint's load).
 */
export function dequantizeAwqOnBackend(
  be: Backend, qweight: Int32Array, qzeros: Int32Array, scalesGO: Float32Array, inF: number, outF: number, gs: number,
): Tensor {
  const G = inF / gs;
  if (!Number.isInteger(G) || qweight.length * 8 !== inF * outF || qzeros.length * 8 !== G * outF || scalesGO.length !== G * outF) {
    throw new RangeError(`AWQ tensors do not fit [${outF}, ${inF}] in groups of ${gs}`);
  }
  // qzeros/scales [G, O] → per flat group o·G + g (the backend's grid order).
  const zerosGO = unpackAwq(qzeros, G, outF);
  const zeros = new Int32Array(outF * G);
  const scale = new Float32Array(outF * G);
  for (let g = 0; g < G; g++) for (let o = 0; o < outF; o++) {
    zeros[o * G + g] = zerosGO[g * outF + o];
    scale[o * G + g] = scalesGO[g * outF + o];
  }
  const tWords = be.fromHost(qweight, [inF, outF / 8], 'i32');
  const tZeros = be.fromHost(zeros, [outF * G], 'i32');
  const tScale = be.fromHost(scale, [outF * G]);
  const w = be.dequantizePacked(tWords, tZeros, tScale, gs, AWQ_ORDER);
  be.free(tWords, tZeros, tScale);
  return w;
}

function loadLinear(
  be: Backend, ck: Checkpoint, cfg: ModelConfig, prefix: string, outF: number, inF: number, hasBias: boolean, dtype: 'native' | DType,
): Linear {
  const bias = hasBias || ck.has(`${prefix}.bias`) ? loadFloat(be, ck, `${prefix}.bias`, dtype === 'native' ? 'f32' : dtype) : undefined;
  if (ck.has(`${prefix}.qweight`)) {
    const q = cfg.quantization;
    if (!q) throw new UserError(`${prefix}.qweight present but config.json has no quantization_config`, { file: ck.dir });
    const gs = q.groupSize;
    // Shapes from the one description of the format (io/int4-format); K is whatever theta holds.
    const K = ck.require(`${prefix}.theta`).shape[0];
    for (const t of packedLinearLayout(prefix, { inFeatures: inF, outFeatures: outF, groupSize: gs, krot: K, bias: false })) expectShape(ck, t.name, t.shape);
    const w = dequantizeAwqOnBackend(be, ck.readI32(`${prefix}.qweight`), ck.readI32(`${prefix}.qzeros`), ck.readF32(`${prefix}.scales`), inF, outF, gs);
    const weight = dtype === 'native' || dtype === 'f32' ? w : be.cast(w, dtype);
    if (weight !== w) be.free(w);
    const pairs = ck.readI32(`${prefix}.pairs`);
    for (let i = 0; i < pairs.length; i++) {
      if (pairs[i] < 0 || pairs[i] >= gs) throw new UserError(`${prefix}.pairs holds index ${pairs[i]} outside the group [0, ${gs})`, { file: ck.dir });
    }
    return {
      kind: 'rotated',
      weight,
      bias,
      channelScales: be.fromHost(ck.readF32(`${prefix}.channel_scales`), [inF], 'f32'),
      theta: be.fromHost(ck.readF32(`${prefix}.theta`), [K, inF / 2], 'f32'),
      pairs: be.fromHost(pairs, [K, inF], 'i32'),
      groupSize: gs,
      outFeatures: outF,
      inFeatures: inF,
    };
  }
  expectShape(ck, `${prefix}.weight`, [outF, inF]);
  return { kind: 'dense', weight: loadFloat(be, ck, `${prefix}.weight`, dtype), bias, outFeatures: outF, inFeatures: inF };
}

/** One decoder layer's weights (norms, linears dense or ParoQuant). */
export function loadLayerWeights(be: Backend, ck: Checkpoint, cfg: ModelConfig, l: number, dt: 'native' | DType = 'native'): LayerWeights {
  const H = cfg.hiddenSize;
  const qW = cfg.numHeads * cfg.headDim;
  const kvW = cfg.numKvHeads * cfg.headDim;
  const p = `model.layers.${l}`;
  const lw: LayerWeights = {
    inputNorm: loadFloat(be, ck, `${p}.input_layernorm.weight`, 'f32', [H]),
    postNorm: loadFloat(be, ck, `${p}.post_attention_layernorm.weight`, 'f32', [H]),
    q: loadLinear(be, ck, cfg, `${p}.${LINEAR_NAMES.q}`, qW, H, cfg.attentionBias, dt),
    k: loadLinear(be, ck, cfg, `${p}.${LINEAR_NAMES.k}`, kvW, H, cfg.attentionBias, dt),
    v: loadLinear(be, ck, cfg, `${p}.${LINEAR_NAMES.v}`, kvW, H, cfg.attentionBias, dt),
    o: loadLinear(be, ck, cfg, `${p}.${LINEAR_NAMES.o}`, H, qW, cfg.outputBias, dt),
    gate: loadLinear(be, ck, cfg, `${p}.${LINEAR_NAMES.gate}`, cfg.intermediateSize, H, cfg.mlpBias, dt),
    up: loadLinear(be, ck, cfg, `${p}.${LINEAR_NAMES.up}`, cfg.intermediateSize, H, cfg.mlpBias, dt),
    down: loadLinear(be, ck, cfg, `${p}.${LINEAR_NAMES.down}`, H, cfg.intermediateSize, cfg.mlpBias, dt),
  };
  if (cfg.qkNorm) {
    lw.qNorm = loadFloat(be, ck, `${p}.self_attn.q_norm.weight`, 'f32', [cfg.headDim]);
    lw.kNorm = loadFloat(be, ck, `${p}.self_attn.k_norm.weight`, 'f32', [cfg.headDim]);
  }
  return lw;
}

export function loadEmbedding(be: Backend, ck: Checkpoint, cfg: ModelConfig, dt: 'native' | DType = 'native'): Tensor {
  expectShape(ck, 'model.embed_tokens.weight', [cfg.vocabSize, cfg.hiddenSize]);
  return loadFloat(be, ck, 'model.embed_tokens.weight', dt);
}

export function loadModelWeights(be: Backend, ck: Checkpoint, cfg: ModelConfig, opts: LoadOptions = {}): ModelWeights {
  // Names, dtypes and shapes against config.json before anything is read.
  validateCheckpoint(ck, cfg);
  const dt = opts.weightDtype ?? 'native';
  const H = cfg.hiddenSize;
  const embed = loadEmbedding(be, ck, cfg, dt);
  const nLayers = Math.min(cfg.numLayers, opts.layerLimit ?? cfg.numLayers);
  const layers: LayerWeights[] = [];
  for (let l = 0; l < nLayers; l++) layers.push(loadLayerWeights(be, ck, cfg, l, dt));
  const finalNorm = loadFloat(be, ck, 'model.norm.weight', 'f32', [H]);
  let lmHead = embed;
  if (!cfg.tieWordEmbeddings) {
    if (!ck.has('lm_head.weight')) {
      throw new UserError('missing tensor lm_head.weight (config.json says tie_word_embeddings: false)', { file: ck.dir });
    }
    expectShape(ck, 'lm_head.weight', [cfg.vocabSize, H]);
    lmHead = loadFloat(be, ck, 'lm_head.weight', dt);
  }
  return { embed, layers, finalNorm, lmHead };
}

export function freeLinear(be: Backend, lin: Linear): void {
  be.free(lin.weight, lin.bias);
  if (lin.kind === 'rotated') be.free(lin.channelScales, lin.theta, lin.pairs);
}

export function freeLayerWeights(be: Backend, l: LayerWeights): void {
  be.free(l.inputNorm, l.postNorm, l.qNorm, l.kNorm);
  for (const k of LINEAR_KEYS) freeLinear(be, l[k]);
}

export function freeModelWeights(be: Backend, w: ModelWeights): void {
  for (const l of w.layers) freeLayerWeights(be, l);
  be.free(w.finalNorm);
  if (w.lmHead !== w.embed) be.free(w.lmHead);
  be.free(w.embed);
}
