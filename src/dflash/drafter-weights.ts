// The drafter's trainable tensors (dflash-spec §5.3 names, no "model." prefix, no embeddings or LM head), their
// shapes, seeded initialisation (linear N(0, 0.02), norms 1: §2.8) and the name ↔ tensor mapping used by the
// optimizer, the checkpoints and the export.
import type { Backend, Tensor } from '../engine/backend.js';
import { Rng } from '../numerics/rng.js';
import type { DrafterConfig } from './drafter-config.js';

export interface DrafterLayer {
  inputNorm: Tensor; // [H]
  postNorm: Tensor; // [H]
  qNorm: Tensor; // [hd]
  kNorm: Tensor; // [hd]
  q: Tensor; // [heads·hd, H]
  k: Tensor; // [kvHeads·hd, H]
  v: Tensor; // [kvHeads·hd, H]
  o: Tensor; // [H, heads·hd]
  gate: Tensor; // [I, H]
  up: Tensor; // [I, H]
  down: Tensor; // [H, I]
}

/** Trainable drafter tensors; the same structure holds gradients and optimizer moments. */
export interface DrafterWeights {
  fc: Tensor; // [H, n·H]
  hiddenNorm: Tensor; // [H]
  norm: Tensor; // [H]
  layers: DrafterLayer[];
}

/** Frozen parts shared with the target: token embedding and LM head ([V, H] each; the same tensor when tied). */
export interface SharedTargetParts {
  embed: Tensor;
  lmHead: Tensor;
}

const LAYER_FIELDS: readonly [keyof DrafterLayer, string, 'norm' | 'linear'][] = [
  ['inputNorm', 'input_layernorm.weight', 'norm'],
  ['postNorm', 'post_attention_layernorm.weight', 'norm'],
  ['q', 'self_attn.q_proj.weight', 'linear'],
  ['k', 'self_attn.k_proj.weight', 'linear'],
  ['v', 'self_attn.v_proj.weight', 'linear'],
  ['o', 'self_attn.o_proj.weight', 'linear'],
  ['qNorm', 'self_attn.q_norm.weight', 'norm'],
  ['kNorm', 'self_attn.k_norm.weight', 'norm'],
  ['gate', 'mlp.gate_proj.weight', 'linear'],
  ['up', 'mlp.up_proj.weight', 'linear'],
  ['down', 'mlp.down_proj.weight', 'linear'],
];

export interface TensorSpec {
  name: string;
  shape: number[];
  kind: 'norm' | 'linear';
  get(w: DrafterWeights): Tensor;
}

/** Every trainable tensor in export order, with its shape from the config. */
export function drafterTensorSpecs(c: DrafterConfig): TensorSpec[] {
  const H = c.hiddenSize;
  const qW = c.numHeads * c.headDim;
  const kvW = c.numKvHeads * c.headDim;
  const I = c.intermediateSize;
  const shapes: Record<keyof DrafterLayer, number[]> = {
    inputNorm: [H], postNorm: [H], qNorm: [c.headDim], kNorm: [c.headDim],
    q: [qW, H], k: [kvW, H], v: [kvW, H], o: [H, qW], gate: [I, H], up: [I, H], down: [H, I],
  };
  const specs: TensorSpec[] = [
    { name: 'fc.weight', shape: [H, c.targetLayerIds.length * H], kind: 'linear', get: (w) => w.fc },
    { name: 'hidden_norm.weight', shape: [H], kind: 'norm', get: (w) => w.hiddenNorm },
  ];
  for (let l = 0; l < c.numLayers; l++) {
    for (const [field, suffix, kind] of LAYER_FIELDS) {
      specs.push({ name: `layers.${l}.${suffix}`, shape: shapes[field], kind, get: (w) => w.layers[l][field] });
    }
  }
  specs.push({ name: 'norm.weight', shape: [H], kind: 'norm', get: (w) => w.norm });
  return specs;
}

/** Build the structure from one tensor per spec name (make is called in export order). */
export function buildDrafterWeights(c: DrafterConfig, make: (spec: TensorSpec) => Tensor): DrafterWeights {
  const specs = drafterTensorSpecs(c);
  const byName = new Map<string, Tensor>();
  for (const s of specs) byName.set(s.name, make(s));
  const layers: DrafterLayer[] = [];
  for (let l = 0; l < c.numLayers; l++) {
    const layer = {} as Record<keyof DrafterLayer, Tensor>;
    for (const [field, suffix] of LAYER_FIELDS) layer[field] = byName.get(`layers.${l}.${suffix}`)!;
    layers.push(layer);
  }
  return { fc: byName.get('fc.weight')!, hiddenNorm: byName.get('hidden_norm.weight')!, norm: byName.get('norm.weight')!, layers };
}

/** Tensors in export order. */
export function drafterTensors(c: DrafterConfig, w: DrafterWeights): { spec: TensorSpec; tensor: Tensor }[] {
  return drafterTensorSpecs(c).map((spec) => ({ spec, tensor: spec.get(w) }));
}

/** Seeded initialisation: linear weights N(0, std²) in export order, norm weights 1. */
export function initDrafterWeights(be: Backend, c: DrafterConfig, seed: number, std = 0.02): DrafterWeights {
  const rng = new Rng(seed);
  return buildDrafterWeights(c, (s) => {
    const n = s.shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    if (s.kind === 'norm') data.fill(1);
    else for (let i = 0; i < n; i++) data[i] = rng.normal() * std;
    return be.fromHost(data, s.shape, 'f32');
  });
}

/** A zero tensor per trainable tensor (gradient accumulators, Adam moments). */
export function zerosLike(be: Backend, c: DrafterConfig): DrafterWeights {
  return buildDrafterWeights(c, (s) => be.zeros(s.shape, 'f32'));
}

export function freeDrafterWeights(be: Backend, c: DrafterConfig, w: DrafterWeights): void {
  for (const { tensor } of drafterTensors(c, w)) be.free(tensor);
}

/** A new structure with fn applied to every tensor (export order). */
export function mapDrafterWeights(c: DrafterConfig, w: DrafterWeights, fn: (t: Tensor) => Tensor): DrafterWeights {
  return buildDrafterWeights(c, (spec) => fn(spec.get(w)));
}
