// Target hidden-state taps (dflash-spec §1, §3.2): F_l = output of target decoder layer l (Transformers
// hidden_states[l + 1]), concatenated in target_layer_ids order into [S, n·H]. The target is frozen: taps are data.
import type { Backend, Tensor } from '../engine/backend.js';
import type { Decoder, ForwardResult } from '../model/decoder.js';

/** Concatenate the taps of a forward result in ids order ([rows, n·H]) and free the per-layer taps. */
export function concatTaps(be: Backend, res: ForwardResult, layerIds: readonly number[]): Tensor {
  const parts = layerIds.map((l) => {
    const t = res.taps.get(l);
    if (!t) throw new Error(`target forward returned no tap for layer ${l}`);
    return t;
  });
  const out = parts.length === 1 ? be.copy(parts[0]) : be.concatCols(parts);
  for (const t of new Set(res.taps.values())) be.free(t);
  res.taps.clear();
  return out;
}

/** Teacher-forced taps of one sequence: [S, n·H]. Only the layers up to the deepest tap are run. */
export function targetTaps(target: Decoder, ids: Int32Array, layerIds: readonly number[]): Tensor {
  const deepest = Math.max(...layerIds);
  const res = target.forward(ids, 1, { tapLayers: layerIds, skipHead: true, layerLimit: deepest + 1 });
  return concatTaps(target.be, res, layerIds);
}
