// An optional warm start for the drafter (a quality lever beyond the spec, which trains from scratch): draft layer j
// starts as a copy of target layer L − k + j, the final norm as the target's, and fc selects the deepest tap with
// hidden_norm = the input norm of target layer L − k, so the first draft layer initially sees the context keys and
// values that layer computes in the target. Quantized (ParoQuant) target linears contribute their effective dense
// weight (the runtime transform folded in); targets without q/k norms give norms of 1; biases are dropped (the
// drafter has none).
import type { Backend, Tensor } from '../engine/backend.js';
import { foldRotation } from '../model/layer-ops.js';
import type { Linear, ModelWeights } from '../model/weights.js';
import { UserError } from '../errors.js';
import type { DrafterConfig } from './drafter-config.js';
import { buildDrafterWeights, type DrafterLayer, type DrafterWeights } from './drafter-weights.js';

function f32Copy(be: Backend, t: Tensor, shape: readonly number[]): Tensor {
  return be.reshape(be.cast(t, 'f32'), shape);
}

/** The effective dense weight [out, in] of a target linear (bias excluded). */
export function effectiveWeight(be: Backend, lin: Linear): Tensor {
  if (lin.kind === 'dense') return f32Copy(be, lin.weight, [lin.outFeatures, lin.inFeatures]);
  const wRot = be.cast(lin.weight, 'f32');
  const w = foldRotation(be, wRot, lin.pairs, lin.theta, lin.channelScales, lin.groupSize);
  be.free(wRot);
  return w;
}

function ones(be: Backend, n: number): Tensor {
  return be.fromHost(new Float32Array(n).fill(1), [n], 'f32');
}

export function initDrafterFromTarget(be: Backend, c: DrafterConfig, target: ModelWeights): DrafterWeights {
  const L = target.layers.length;
  const k = c.numLayers;
  if (k > L) throw new UserError(`a warm start from the target needs ${k} target layers to copy, the target has only ${L}`);
  const n = c.targetLayerIds.length;
  const H = c.hiddenSize;
  const fc = new Float32Array(H * n * H);
  for (let i = 0; i < H; i++) fc[i * n * H + (n - 1) * H + i] = 1;
  const layers: DrafterLayer[] = [];
  for (let j = 0; j < k; j++) {
    const t = target.layers[L - k + j];
    layers.push({
      inputNorm: f32Copy(be, t.inputNorm, [H]), postNorm: f32Copy(be, t.postNorm, [H]),
      qNorm: t.qNorm ? f32Copy(be, t.qNorm, [c.headDim]) : ones(be, c.headDim),
      kNorm: t.kNorm ? f32Copy(be, t.kNorm, [c.headDim]) : ones(be, c.headDim),
      q: effectiveWeight(be, t.q), k: effectiveWeight(be, t.k), v: effectiveWeight(be, t.v), o: effectiveWeight(be, t.o),
      gate: effectiveWeight(be, t.gate), up: effectiveWeight(be, t.up), down: effectiveWeight(be, t.down),
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
