// transformBackward takes dŴ in any float dtype: the block hands it the GEMMs' bf16 weight gradients without a cast
// pass. On the composition path (the cpu backend) a bf16 dŴ must give exactly what the same values in f32 give, and
// the caller's tensor must survive the call (transformBackward frees only what it made).
import { describe, expect, it } from 'vitest';
import { CpuBackend } from '../src/engine/cpu/backend.js';
import { Rng } from '../src/numerics/rng.js';
import { freeTransformSaved, transformBackward, transformForward, type ParoLinear } from '../src/paroquant/transform.js';
import type { Backend, Tensor } from '../src/engine/backend.js';
import { randomPairs } from '../scripts/backend-ops.js';

const O = 8, I = 256, K = 4, GS = 128;
const grid = { bits: 4, groupSize: GS };

function randomLinear(be: Backend, rng: Rng): ParoLinear {
  const G = I / GS;
  const keep = new Float32Array((K * I) / 2).fill(1);
  return {
    outFeatures: O, inFeatures: I, krot: K,
    W: be.fromHost(Float32Array.from({ length: O * I }, () => rng.normal() * 0.02), [O, I]),
    alpha: be.fromHost(Float32Array.from({ length: I }, () => 0.5 + rng.nextFloat()), [I]),
    theta: be.fromHost(Float32Array.from({ length: (K * I) / 2 }, () => (rng.nextFloat() - 0.5) * 1.2), [K, I / 2]),
    pairs: be.fromHost(randomPairs(K, I, GS, rng), [K, I], 'i32'),
    thetaKeep: be.fromHost(keep, [keep.length]),
    scale: be.fromHost(Float32Array.from({ length: O * G }, () => 0.004 + 0.004 * rng.nextFloat()), [O * G]),
    zpf: be.fromHost(Float32Array.from({ length: O * G }, () => -9 + 3 * rng.nextFloat()), [O * G]),
  };
}

function grads(be: Backend, lin: ParoLinear, stage: 1 | 2, dWhat: Tensor): Record<string, number[]> {
  const { saved } = transformForward(be, lin, grid, stage, true);
  const g = transformBackward(be, lin, grid, saved!, dWhat);
  freeTransformSaved(be, saved!);
  const out: Record<string, number[]> = {};
  for (const [k, t] of Object.entries(g)) if (t) out[k] = Array.from(be.toHost(t as Tensor));
  return out;
}

describe('transformBackward with a bf16 dŴ (composition path)', async () => {
  const cpu = await CpuBackend.create();
  for (const stage of [1, 2] as const) {
    it(`stage ${stage}: the same gradients as the f32 dŴ of equal values, and the caller's dŴ left alive`, () => {
      const rng = new Rng(100 + stage);
      const lin = randomLinear(cpu, rng);
      const d = Float32Array.from({ length: O * I }, () => rng.normal());
      const dB = cpu.fromHost(d, [O, I], 'bf16');
      const dF = cpu.fromHost(cpu.toHost(dB), [O, I], 'f32');
      const a = grads(cpu, lin, stage, dF);
      const b = grads(cpu, lin, stage, dB);
      expect(Object.keys(b).sort()).toEqual(stage === 1 ? ['dalpha', 'dtheta'] : ['dW', 'dscale']);
      for (const k of Object.keys(a)) expect(b[k]).toEqual(a[k]);
      // Nonzero gradients: the comparison is not between two empty results.
      expect(b[Object.keys(b)[0]].some((v) => v !== 0)).toBe(true);
      expect(Array.from(cpu.toHost(dB))).toEqual(Array.from(cpu.toHost(dF)));
    });
  }
});
