// Which target layers feed the drafter (dflash-spec §2.1). The ids name decoder layers whose outputs F_l are tapped
// (Transformers hidden_states[l + 1]); the last layer is never tapped (its hidden_states entry is after the final norm).
import { roundHalfEven } from '../numerics/rounding.js';

/**
 * build_target_layer_ids of the official code: n = 1 → [⌊L/2⌋]; otherwise round-half-even(1 + i·(L − 4)/(n − 1)),
 * i = 0..n−1, i.e. evenly from layer 1 to layer L − 3. For shallow targets (L < n + 3) the ids repeat.
 */
export function buildTargetLayerIds(numTargetLayers: number, n: number): number[] {
  if (!Number.isInteger(numTargetLayers) || numTargetLayers < 1) throw new RangeError(`target depth must be a positive integer, got ${numTargetLayers}`);
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`number of taps must be a positive integer, got ${n}`);
  if (n === 1) return [Math.floor(numTargetLayers / 2)];
  const ids: number[] = [];
  for (let i = 0; i < n; i++) ids.push(roundHalfEven(1 + (i * (numTargetLayers - 4)) / (n - 1)));
  return ids;
}

export interface AutoLayerIds {
  ids: number[];
  /** Set when the spec formula could not be used (shallow target): says what was picked instead and why. */
  note?: string;
}

/**
 * The automatic choice: the spec formula when it yields n distinct layers inside [0, L − 2]; otherwise (targets
 * shallower than n + 3 layers) min(n, L − 1) distinct layers spread evenly over [0, L − 2], rounded half-even.
 */
export function autoTargetLayerIds(numTargetLayers: number, n = 5): AutoLayerIds {
  const L = numTargetLayers;
  if (L < 2) throw new RangeError(`a target with ${L} layer(s) has no layer below the last one to tap`);
  const formula = buildTargetLayerIds(L, n);
  const distinct = new Set(formula).size === formula.length;
  if (distinct && formula.every((l) => l >= 0 && l <= L - 2)) return { ids: formula };
  const m = Math.min(n, L - 1);
  const last = L - 2;
  const ids = m === 1 ? [Math.floor(last / 2)] : Array.from({ length: m }, (_, i) => roundHalfEven((i * last) / (m - 1)));
  return {
    ids,
    note: `the spec formula gives [${formula.join(', ')}] for a ${L}-layer target (repeated or out-of-range taps); ` +
      `using ${m} distinct layers spread over layers 0..${last} instead: [${ids.join(', ')}]`,
  };
}

/** Parse a tap list "i,j,...": distinct integers in [0, L − 2], ascending order required by the format. */
export function parseTargetLayerIds(spec: string, numTargetLayers: number): number[] {
  const parts = spec.split(',').map((s) => s.trim()).filter((s) => s !== '');
  const ids = parts.map((s) => Number(s));
  if (ids.length === 0 || ids.some((x) => !Number.isInteger(x))) throw new RangeError(`tapped target layers must be "auto" or a list of layer indices like 1,2,3; got "${spec}"`);
  for (const l of ids) {
    if (l < 0 || l > numTargetLayers - 2) {
      throw new RangeError(`tapped target layer ${l} is outside 0..${numTargetLayers - 2} (the target has ${numTargetLayers} layers; the last one cannot be tapped)`);
    }
  }
  for (let i = 1; i < ids.length; i++) if (ids[i] <= ids[i - 1]) throw new RangeError(`tapped target layers must be strictly ascending, got "${spec}"`);
  return ids;
}
