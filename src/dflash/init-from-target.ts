// An optional warm start for the drafter (a quality lever beyond the spec, which trains from scratch): draft layer j
// starts as a copy of target layer L − k + j, the final norm as the target's, and fc selects the deepest tap with
// hidden_norm = the input norm of target layer L − k, so the first draft layer initially sees the context keys and
// values that layer computes in the target. Needs dense target layers of the drafter's sizes.
import type { Backend, Tensor } from '../engine/backend.js';
import type { ModelWeights } from '../model/weights.js';
import { UserError } from '../errors.js';
import type { DrafterConfig } from './drafter-config.js';
import { buildDrafterWeights, drafterTensorSpecs, type DrafterLayer, type DrafterWeights } from './drafter-weights.js';

function f32Copy(be: Backend, t: Tensor, shape: readonly number[]): Tensor {
  const c = be.cast(t, 'f32');
  return be.reshape(c, shape);
}

export function initDrafterFromTarget(be: Backend, c: DrafterConfig, target: ModelWeights): DrafterWeights {
  const L = target.layers.length;
  const k = c.numLayers;
  if (k > L) throw new UserError(`--init target: ${k} draft layers but the target has only ${L}`);
  const specs = drafterTensorSpecs(c);
  const shapeOf = new Map(specs.map((s) => [s.name, s.shape]));
  const n = c.targetLayerIds.length;
  const H = c.hiddenSize;
  const fc = new Float32Array(H * n * H);
  for (let i = 0; i < H; i++) fc[i * n * H + (n - 1) * H + i] = 1;
  const layers: DrafterLayer[] = [];
  for (let j = 0; j < k; j++) {
    const t = target.layers[L - k + j];
    if (!t.qNorm || !t.kNorm) throw new UserError('--init target needs a target with q/k norms (Qwen3)');
    const lin = (name: keyof DrafterLayer, l: typeof t.q): Tensor => {
      if (l.kind !== 'dense') throw new UserError('--init target needs dense target layers (not a quantized checkpoint)');
      return f32Copy(be, l.weight, shapeOf.get(`layers.${j}.${suffix[name]}`)!);
    };
    layers.push({
      inputNorm: f32Copy(be, t.inputNorm, [H]), postNorm: f32Copy(be, t.postNorm, [H]),
      qNorm: f32Copy(be, t.qNorm, [c.headDim]), kNorm: f32Copy(be, t.kNorm, [c.headDim]),
      q: lin('q', t.q), k: lin('k', t.k), v: lin('v', t.v), o: lin('o', t.o), gate: lin('gate', t.gate), up: lin('up', t.up), down: lin('down', t.down),
    });
  }
  const w: DrafterWeights = {
    fc: be.fromHost(fc, [H, n * H], 'f32'),
    hiddenNorm: f32Copy(be, target.layers[L - k].inputNorm, [H]),
    norm: f32Copy(be, target.finalNorm, [H]),
    layers,
  };
  return buildDrafterWeights(c, (s) => s.get(w));
}

const suffix: Record<keyof DrafterLayer, string> = {
  inputNorm: 'input_layernorm.weight', postNorm: 'post_attention_layernorm.weight', qNorm: 'self_attn.q_norm.weight',
  kNorm: 'self_attn.k_norm.weight', q: 'self_attn.q_proj.weight', k: 'self_attn.k_proj.weight', v: 'self_attn.v_proj.weight',
  o: 'self_attn.o_proj.weight', gate: 'mlp.gate_proj.weight', up: 'mlp.up_proj.weight', down: 'mlp.down_proj.weight',
};
