// Token choice from a logits row: greedy (argmax, first maximum on ties as torch.argmax) or sampling from
// softmax(logits / T) with a seeded generator.
import { Rng } from '../numerics/rng.js';

export function argmax(row: Float32Array, offset = 0, V = row.length - offset): number {
  let best = 0;
  let bv = row[offset];
  for (let v = 1; v < V; v++) if (row[offset + v] > bv) { bv = row[offset + v]; best = v; }
  return best;
}

/** Sample from softmax(row[offset..offset+V) / T) (T > 0) by inverse CDF over a 53-bit uniform. */
export function sampleTemperature(row: Float32Array, T: number, rng: Rng, offset = 0, V = row.length - offset): number {
  let mx = -Infinity;
  for (let v = 0; v < V; v++) if (row[offset + v] > mx) mx = row[offset + v];
  const p = new Float64Array(V);
  let sum = 0;
  for (let v = 0; v < V; v++) {
    p[v] = Math.exp((row[offset + v] - mx) / T);
    sum += p[v];
  }
  let u = rng.nextDouble() * sum;
  for (let v = 0; v < V; v++) {
    u -= p[v];
    if (u < 0) return v;
  }
  // Rounding left u ≥ 0 after the last term: return the last token with non-zero probability.
  for (let v = V - 1; v >= 0; v--) if (p[v] > 0) return v;
  return 0;
}

/** Greedy at T = 0, else sampling. */
export function chooseToken(row: Float32Array, T: number, rng: Rng | null, offset = 0, V = row.length - offset): number {
  if (T <= 0) return argmax(row, offset, V);
  if (!rng) throw new Error('sampling at T > 0 needs a random generator');
  return sampleTemperature(row, T, rng, offset, V);
}
