// The cpu Collective (engine/cpu/collective.ts) across 3 real processes: all-reduce sum and mean of f32 and bf16
// tensors equal a float64 recomputation here (rank order, then rounded to the tensor's dtype) bit for bit on every
// rank, including a tensor larger than one message; broadcast, allReduceNumbers, and the rank/worldSize it reports.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { roundToBf16InPlace } from '../src/numerics/half.js';
import { rankData, runRanks } from './helpers/dp-procs.js';
import { scratchDir } from './scratch.js';

const W = 3;

function read(dir: string, name: string, rank: number): Float32Array {
  const b = readFileSync(path.join(dir, `${name}.${rank}.f32`));
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
}

/** Σ over ranks in rank order in float64 (mean: / W), rounded to f32 and then to the tensor's dtype. */
function expected(n: number, seed: number, bf16: boolean, mean: boolean): Float32Array {
  const inputs = Array.from({ length: W }, (_, r) => {
    const x = rankData(r, n, seed);
    return bf16 ? roundToBf16InPlace(x) : x;
  });
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let r = 0; r < W; r++) s += inputs[r][i];
    out[i] = mean ? s / W : s;
  }
  return bf16 ? roundToBf16InPlace(out) : out;
}

const sameBits = (a: Float32Array, b: Float32Array): boolean =>
  a.length === b.length && Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;

describe('cpu collective (3 processes)', () => {
  for (const [label, n] of [['small tensors', 1001], ['a tensor of more than one 16 MiB message', (1 << 22) + 4099]] as const) {
    it(`all-reduce sum/mean f32 and bf16, broadcast and allReduceNumbers: ${label}`, async () => {
      const dir = scratchDir('dp-coll-');
      const seed = 7;
      const runs = await runRanks(W, ['collective', dir], 90, () => ({ DP_N: String(n), DP_SEED: String(seed) }));
      for (const r of runs) expect(r.code, r.stderr).toBe(0);
      const cases = { sumF32: [false, false], meanF32: [false, true], sumBf16: [true, false], meanBf16: [true, true] } as const;
      for (const [name, [bf16, mean]] of Object.entries(cases)) {
        const want = expected(n, seed, bf16, mean);
        for (let r = 0; r < W; r++) expect(sameBits(read(dir, name, r), want), `${name} on rank ${r}`).toBe(true);
      }
      // The inputs differ per rank, so the reduction did something; bf16 results are on the bf16 grid.
      expect(sameBits(read(dir, 'sumF32', 0), rankData(0, n, seed))).toBe(false);
      const bf = read(dir, 'sumBf16', 1);
      expect(sameBits(bf, roundToBf16InPlace(bf.slice()))).toBe(true);
      // Broadcast from the last rank: its data everywhere.
      const root = rankData(W - 1, n, seed + 1);
      for (let r = 0; r < W; r++) expect(sameBits(read(dir, 'broadcast', r), root), `broadcast on rank ${r}`).toBe(true);
      for (const r of runs) {
        const o = JSON.parse(r.stdout.trim()) as { rank: number; numbers: number[]; rankSeen: number; worldSeen: number };
        expect(o.rankSeen).toBe(o.rank);
        expect(o.worldSeen).toBe(W);
        // mean over ranks of [r + 0.5, 1e-3·r, −r], summed in rank order in f64
        const want = [0, 1, 2].map((k) => { let s = 0; for (let q = 0; q < W; q++) s += [q + 0.5, 1e-3 * q, -q][k]; return s / W; });
        expect(o.numbers).toEqual(want);
      }
    });
  }
});
