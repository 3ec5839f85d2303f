// A decoder checkpoint checked against its config.json before any compute: every tensor the config implies is
// present with a float/int dtype of the right kind and the shape the config implies; tensors the config does not
// explain (extra layers above num_hidden_layers, stray names) are refused. Only headers are read.
//
// Extra layers are an error, not a warning: transformers would load such a checkpoint with a warning and silently run
// fewer layers, and here that would turn into a quantized or evaluated model that is not the one on disk.
import { UserError } from '../errors.js';
import type { Checkpoint } from './checkpoint.js';
import type { ModelConfig } from './config.js';
import { packedLinearLayout } from './int4-format.js';
import { LINEAR_KEYS, LINEAR_NAMES, linearShapes } from './decoder-linears.js';

type Kind = 'float' | 'int';

interface Expected {
  name: string;
  shape: number[];
  kind: Kind;
}

const FLOAT_DTYPES = new Set(['F32', 'F16', 'BF16', 'F64']);
const INT_DTYPES = new Set(['I64', 'I32', 'I16', 'I8', 'U8']);

/** Tensors that checkpoints may carry and the model does not use (transformers ignores them too). */
const IGNORABLE = /(^|\.)rotary_emb\.inv_freq$/;

const fmt = (shape: readonly number[]): string => `[${shape.join(', ')}]`;

/**
 * Checks names, dtypes and shapes of every tensor of ck against cfg; throws one UserError naming the file and the
 * first problem (or the lists of missing and unexpected tensors).
 */
export function validateCheckpoint(ck: Checkpoint, cfg: ModelConfig): void {
  const names = new Set(ck.names());
  const required: Expected[] = [];
  const optional: Expected[] = [];
  const H = cfg.hiddenSize;
  const V = cfg.vocabSize;
  required.push({ name: 'model.embed_tokens.weight', shape: [V, H], kind: 'float' });
  const dims = linearShapes(cfg);
  for (let l = 0; l < cfg.numLayers; l++) {
    const p = `model.layers.${l}`;
    required.push({ name: `${p}.input_layernorm.weight`, shape: [H], kind: 'float' });
    required.push({ name: `${p}.post_attention_layernorm.weight`, shape: [H], kind: 'float' });
    if (cfg.qkNorm) {
      required.push({ name: `${p}.self_attn.q_norm.weight`, shape: [cfg.headDim], kind: 'float' });
      required.push({ name: `${p}.self_attn.k_norm.weight`, shape: [cfg.headDim], kind: 'float' });
    }
    for (const k of LINEAR_KEYS) {
      const d = dims[k];
      const prefix = `${p}.${LINEAR_NAMES[k]}`;
      // The loader uses a bias whenever one is present, so a bias the config does not announce is allowed.
      (d.bias ? required : optional).push({ name: `${prefix}.bias`, shape: [d.out], kind: 'float' });
      if (names.has(`${prefix}.qweight`)) {
        const q = cfg.quantization;
        if (!q) throw new UserError(`tensor ${prefix}.qweight is present but config.json has no quantization_config`, { file: ck.source });
        // Shapes from the one description of the format (io/int4-format); K is whatever theta holds.
        const krot = names.has(`${prefix}.theta`) ? ck.require(`${prefix}.theta`).shape[0] : q.krot;
        for (const t of packedLinearLayout(prefix, { inFeatures: d.in, outFeatures: d.out, groupSize: q.groupSize, krot, bias: false })) {
          // Dtypes by kind only: other writers store pairs as I32/I64 or scales as F32, which load the same.
          required.push({ name: t.name, shape: t.shape, kind: t.dtype.startsWith('I') ? 'int' : 'float' });
        }
      } else {
        required.push({ name: `${prefix}.weight`, shape: [d.out, d.in], kind: 'float' });
      }
    }
  }
  required.push({ name: 'model.norm.weight', shape: [H], kind: 'float' });
  // With tied embeddings transformers ignores a stored lm_head; untied, it is needed.
  (cfg.tieWordEmbeddings ? optional : required).push({ name: 'lm_head.weight', shape: [V, H], kind: 'float' });

  const known = new Set([...required, ...optional].map((e) => e.name));
  const missing = required.filter((e) => !names.has(e.name)).map((e) => e.name);

  // Layers beyond num_hidden_layers: a config that does not describe this checkpoint.
  let topLayer = -1;
  for (const n of names) {
    const m = /^model\.layers\.(\d+)\./.exec(n);
    if (m) topLayer = Math.max(topLayer, Number(m[1]));
  }
  if (topLayer >= cfg.numLayers) {
    throw new UserError(
      `the checkpoint holds ${topLayer + 1} decoder layers (model.layers.0 .. ${topLayer}) but config.json says num_hidden_layers: ${cfg.numLayers}`,
      { file: ck.source },
    );
  }
  const unexpected = [...names].filter((n) => !known.has(n) && !IGNORABLE.test(n));
  if (missing.length > 0 || unexpected.length > 0) {
    const list = (xs: string[]): string => `${xs.slice(0, 6).join(', ')}${xs.length > 6 ? ', ...' : ''}`;
    const parts: string[] = [];
    if (missing.length > 0) parts.push(`missing ${missing.length} tensor(s): ${list(missing)}`);
    if (unexpected.length > 0) parts.push(`unexpected ${unexpected.length} tensor(s): ${list(unexpected)}`);
    throw new UserError(
      `the checkpoint does not match config.json (${cfg.architecture}, ${cfg.numLayers} layers): ${parts.join('; ')}`,
      { file: ck.source },
    );
  }

  for (const e of [...required, ...optional]) {
    if (!names.has(e.name)) continue;
    const info = ck.require(e.name);
    const okDtype = e.kind === 'float' ? FLOAT_DTYPES.has(info.dtype) : INT_DTYPES.has(info.dtype);
    if (!okDtype) {
      throw new UserError(`tensor ${e.name} has dtype ${info.dtype}, expected ${e.kind === 'float' ? 'a float dtype (F32, F16, BF16)' : 'an integer dtype'}`, {
        file: info.file,
      });
    }
    const ok = info.shape.length === e.shape.length && e.shape.every((d, i) => info.shape[i] === d);
    if (!ok) {
      throw new UserError(`tensor ${e.name} has shape [${info.shape.join(', ')}], config.json implies ${fmt(e.shape)}`, { file: info.file });
    }
  }
}
