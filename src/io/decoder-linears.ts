// The seven linear layers of a decoder layer as config.json implies them: their tensor names (as transformers
// spells them) and shapes. One description for the checkpoint check (io/validate-checkpoint), the loader
// (model/weights) and the quantizer.
import type { ModelConfig } from './config.js';

export const LINEAR_NAMES = {
  q: 'self_attn.q_proj', k: 'self_attn.k_proj', v: 'self_attn.v_proj', o: 'self_attn.o_proj',
  gate: 'mlp.gate_proj', up: 'mlp.up_proj', down: 'mlp.down_proj',
} as const;
export type LinearKey = keyof typeof LINEAR_NAMES;
export const LINEAR_KEYS = Object.keys(LINEAR_NAMES) as LinearKey[];

/** Output features, input features and bias flag of each linear of a layer, from the config. */
export function linearShapes(cfg: ModelConfig): Record<LinearKey, { out: number; in: number; bias: boolean }> {
  const H = cfg.hiddenSize;
  const qW = cfg.numHeads * cfg.headDim;
  const kvW = cfg.numKvHeads * cfg.headDim;
  const I = cfg.intermediateSize;
  return {
    q: { out: qW, in: H, bias: cfg.attentionBias }, k: { out: kvW, in: H, bias: cfg.attentionBias },
    v: { out: kvW, in: H, bias: cfg.attentionBias }, o: { out: H, in: qW, bias: cfg.outputBias },
    gate: { out: I, in: H, bias: cfg.mlpBias }, up: { out: I, in: H, bias: cfg.mlpBias }, down: { out: H, in: I, bias: cfg.mlpBias },
  };
}
