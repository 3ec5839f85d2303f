// The Gram backward of the ParoQuant transform (src/paroquant/transform-gram.ts) against the composition's backward
// (src/paroquant/transform.ts, the cpu backend walking every row through the Givens layers). The cpu backend has no
// fused forward, so a wrapper supplies Backend.paroTransform with its residual outputs (E = Ŵ − W, the max/min masks of
// R) from the composition's own ops; the Gram ops (groupGram, paroScaleGrad, paroMinMaxGram) are the cpu backend's.
import { describe, expect, it } from 'vitest';
import type { Backend, QuantGrid, Tensor } from '../src/engine/backend.js';
import { CpuBackend } from '../src/engine/cpu/backend.js';
import { extremeWords } from '../src/engine/shape-checks.js';
import { Rng } from '../src/numerics/rng.js';
import { freeTransformSaved, transformBackward, transformForward, type ParoLinear } from '../src/paroquant/transform.js';
import { hasGramBackward } from '../src/paroquant/transform-gram.js';
import { randomPairs } from '../scripts/backend-ops.js';

/** Max/min masks of each flat group of R [O, I] (paroTransform's `extremes` layout). */
function extremesOf(R: Float32Array, nGroups: number, gs: number): Int32Array {
  const words = extremeWords(gs);
  const out = new Int32Array(nGroups * 2 * words);
  for (let grp = 0; grp < nGroups; grp++) {
    let mx = -Infinity;
    let mn = Infinity;
    for (let e = 0; e < gs; e++) {
      mx = Math.max(mx, R[grp * gs + e]);
      mn = Math.min(mn, R[grp * gs + e]);
    }
    for (let e = 0; e < gs; e++) {
      const bit = 1 << (e % 32);
      if (R[grp * gs + e] === mx) out[grp * 2 * words + (e >> 5)] |= bit;
      if (R[grp * gs + e] === mn) out[grp * 2 * words + words + (e >> 5)] |= bit;
    }
  }
  return out;
}

/** The cpu backend with a paroTransform made of its own ops that also returns the residual; counts Gram op calls. */
function withResidualForward(cpu: CpuBackend): { be: Backend; calls: { gram: number } } {
  const calls = { gram: 0 };
  const ext: Partial<Backend> = {
    paroResidualDtype: 'f32',
    paroTransform(W, alpha, pairs, theta, grid, params, outDtype, residual) {
      const gs = grid.groupSize;
      const Ws = cpu.mulCols(W, alpha);
      const R = cpu.givens(Ws, pairs, theta, gs, 'forward');
      let rq: Tensor;
      let scale: Tensor | undefined;
      let zpf: Tensor | undefined;
      if (params) rq = cpu.fakeQuantParams(R, params.scale, params.zpf, grid);
      else ({ rq, scale, zpf } = cpu.fakeQuantMinMax(R, grid));
      const U = cpu.givens(rq, pairs, theta, gs, 'inverse');
      const What32 = cpu.divCols(U, alpha);
      let E: Tensor | undefined;
      let extremes: Tensor | undefined;
      if (residual) {
        E = cpu.copy(What32);
        cpu.axpy(E, W, -1);
        if (!params) extremes = cpu.fromHost(extremesOf(cpu.toHost(R), R.size / gs, gs), [R.size / gs, 2 * extremeWords(gs)], 'i32');
      }
      const What = cpu.cast(What32, outDtype);
      cpu.free(Ws, R, rq, U, What32);
      return { What, scale, zpf, E, extremes };
    },
    groupGram(a, b, gs, alpha) {
      calls.gram++;
      return cpu.groupGram!(a, b, gs, alpha);
    },
  };
  const be = new Proxy(cpu, {
    get(target, key) {
      if (typeof key === 'string' && key in ext) return ext[key as keyof Backend];
      const v: unknown = Reflect.get(target, key, target);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  }) as Backend;
  return { be, calls };
}

interface Case {
  O: number;
  I: number;
  K: number;
  gs: number;
  seed: number;
  /** Rows of W set to zero (a constant group: every element is both the max and the min). */
  zeroRows?: number[];
}

function linear(be: Backend, c: Case, stage: 1 | 2): ParoLinear {
  const rng = new Rng(c.seed);
  const W = Float32Array.from({ length: c.O * c.I }, () => rng.normal() * 0.05);
  for (const r of c.zeroRows ?? []) W.fill(0, r * c.I, (r + 1) * c.I);
  const alpha = Float32Array.from({ length: c.I }, () => Math.exp(rng.normal() * 0.2));
  const theta = Float32Array.from({ length: (c.K * c.I) / 2 }, () => rng.normal() * 0.3);
  const keep = Float32Array.from({ length: (c.K * c.I) / 2 }, () => (rng.nextFloat() < 0.9 ? 1 : 0));
  for (let k = 0; k < keep.length; k++) if (keep[k] === 0) theta[k] = 0;
  const lin: ParoLinear = {
    outFeatures: c.O, inFeatures: c.I, W: be.fromHost(W, [c.O, c.I]), alpha: be.fromHost(alpha, [c.I]),
    theta: be.fromHost(theta, [c.K, c.I / 2]), pairs: be.fromHost(randomPairs(c.K, c.I, c.gs, rng), [c.K, c.I], 'i32'),
    thetaKeep: be.fromHost(keep, [keep.length]), krot: c.K,
  };
  if (stage === 2) {
    const nGroups = (c.O * c.I) / c.gs;
    lin.scale = be.fromHost(Float32Array.from({ length: nGroups }, () => 0.01 + 0.01 * rng.nextFloat()), [nGroups]);
    lin.zpf = be.fromHost(Float32Array.from({ length: nGroups }, () => -7.5 + rng.normal()), [nGroups]);
  }
  return lin;
}

/** ‖a − b‖ / ‖a‖ in float64. */
function relFro(a: Float32Array, b: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let k = 0; k < a.length; k++) {
    num += (a[k] - b[k]) ** 2;
    den += a[k] ** 2;
  }
  return Math.sqrt(num / den);
}

function gradsOf(be: Backend, lin: ParoLinear, grid: QuantGrid, stage: 1 | 2, dWhat: Float32Array, dtype: 'f32' | 'bf16') {
  const { What, saved } = transformForward(be, lin, grid, stage, true, dtype);
  const d = be.fromHost(dWhat, [lin.outFeatures, lin.inFeatures], dtype);
  const g = transformBackward(be, lin, grid, saved!, d);
  const out = {
    What: be.toHost(What), E: saved!.E, fused: saved!.fused,
    dtheta: g.dtheta && be.toHost(g.dtheta), dalpha: g.dalpha && be.toHost(g.dalpha), dW: g.dW && be.toHost(g.dW),
    dscale: g.dscale && be.toHost(g.dscale),
  };
  freeTransformSaved(be, saved!);
  be.free(What, d, g.dtheta, g.dalpha, g.dW, g.dscale);
  return out;
}

describe('the Gram backward of the transform vs the composition (cpu)', async () => {
  const cpu = await CpuBackend.create();
  const cases: Case[] = [
    { O: 77, I: 256, K: 8, gs: 128, seed: 1 },
    { O: 40, I: 192, K: 3, gs: 64, seed: 2, zeroRows: [3, 17] },
    { O: 33, I: 96, K: 2, gs: 32, seed: 3, zeroRows: [0] },
  ];
  it('runs only where the backend asks for the residual and has the ops', () => {
    expect(hasGramBackward(cpu)).toBe(false);
    expect(hasGramBackward(withResidualForward(cpu).be)).toBe(true);
  });
  for (const c of cases) {
    for (const stage of [1, 2] as const) {
      it(`stage ${stage}, O ${c.O} I ${c.I} K ${c.K} gs ${c.gs}: gradients equal the composition's`, () => {
        const grid = { bits: 4, groupSize: c.gs };
        const rng = new Rng(100 + c.seed);
        const dWhat = Float32Array.from({ length: c.O * c.I }, () => rng.normal());
        const ref = gradsOf(cpu, linear(cpu, c, stage), grid, stage, dWhat, 'f32');
        const { be, calls } = withResidualForward(cpu);
        const got = gradsOf(be, linear(be, c, stage), grid, stage, dWhat, 'f32');
        expect(got.fused).toBe(true);
        expect(got.E).toBeDefined();
        expect(Array.from(got.What)).toEqual(Array.from(ref.What));
        if (stage === 1) {
          expect(calls.gram).toBe(2);
          expect(relFro(ref.dtheta!, got.dtheta!)).toBeLessThan(1e-5);
          expect(relFro(ref.dalpha!, got.dalpha!)).toBeLessThan(1e-5);
          // Dummy slots stay exactly 0 and the masks of both paths agree.
          for (let k = 0; k < ref.dtheta!.length; k++) if (ref.dtheta![k] === 0) expect(Math.abs(got.dtheta![k])).toBe(0);
        } else {
          expect(calls.gram).toBe(0);
          expect(relFro(ref.dW!, got.dW!)).toBeLessThan(1e-6);
          expect(relFro(ref.dscale!, got.dscale!)).toBeLessThan(1e-5);
        }
      });
    }
  }

  it('stage 1 with bf16 Ŵ and dŴ (the cuda compute dtype): the same gradients as the composition given those values', () => {
    const c = cases[0];
    const grid = { bits: 4, groupSize: c.gs };
    const rng = new Rng(7);
    const dWhat = Float32Array.from({ length: c.O * c.I }, () => rng.normal());
    const ref = gradsOf(cpu, linear(cpu, c, 1), grid, 1, dWhat, 'bf16');
    const got = gradsOf(withResidualForward(cpu).be, linear(cpu, c, 1), grid, 1, dWhat, 'bf16');
    expect(relFro(ref.dtheta!, got.dtheta!)).toBeLessThan(1e-5);
    expect(relFro(ref.dalpha!, got.dalpha!)).toBeLessThan(1e-5);
  });

  it('takeDWhat: stage 2 hands dŴ itself back as dW (no copy); stage 1 gives the same gradients as without it', () => {
    const c = cases[0];
    const grid = { bits: 4, groupSize: c.gs };
    const rng = new Rng(11);
    const dWhat = Float32Array.from({ length: c.O * c.I }, () => rng.normal());
    const { be } = withResidualForward(cpu);
    for (const stage of [1, 2] as const) {
      const lin = linear(be, c, stage);
      const run = (take: boolean) => {
        const { What, saved } = transformForward(be, lin, grid, stage, true, 'f32');
        const d = be.fromHost(dWhat, [c.O, c.I]);
        const g = transformBackward(be, lin, grid, saved!, d, { takeDWhat: take });
        freeTransformSaved(be, saved!);
        be.free(What);
        return { d, g };
      };
      const a = run(false);
      const b = run(true);
      if (stage === 2) {
        expect(b.g.dW).toBe(b.d);
        expect(a.g.dW).not.toBe(a.d);
        expect(Array.from(be.toHost(b.g.dW!))).toEqual(Array.from(be.toHost(a.g.dW!)));
        expect(Array.from(be.toHost(b.g.dscale!))).toEqual(Array.from(be.toHost(a.g.dscale!)));
      } else {
        expect(Array.from(be.toHost(b.g.dtheta!))).toEqual(Array.from(be.toHost(a.g.dtheta!)));
        expect(Array.from(be.toHost(b.g.dalpha!))).toEqual(Array.from(be.toHost(a.g.dalpha!)));
      }
      be.free(a.d, a.g.dtheta, a.g.dalpha, a.g.dW, a.g.dscale, b.g.dtheta, b.g.dalpha, b.g.dW, b.g.dscale);
    }
  });

  it('the min/max path matters: dropping the masks changes dθ and dα (so the test above sees it)', () => {
    const c = cases[1];
    const grid = { bits: 4, groupSize: c.gs };
    const rng = new Rng(9);
    const dWhat = Float32Array.from({ length: c.O * c.I }, () => rng.normal());
    const ref = gradsOf(cpu, linear(cpu, c, 1), grid, 1, dWhat, 'f32');
    const { be } = withResidualForward(cpu);
    const noMasks = new Proxy(be, {
      get(target, key) {
        if (key === 'paroMinMaxGram') {
          return (S: Tensor, ex: Tensor, W: Tensor, a: Tensor, g: QuantGrid) => {
            const zero = cpu.zeros(ex.shape, 'i32');
            const r = cpu.paroMinMaxGram!(S, zero, W, a, g);
            cpu.free(zero);
            return r;
          };
        }
        return Reflect.get(target, key, target) as unknown;
      },
    }) as Backend;
    const got = gradsOf(noMasks, linear(noMasks, c, 1), grid, 1, dWhat, 'f32');
    expect(relFro(ref.dtheta!, got.dtheta!)).toBeGreaterThan(1e-3);
    expect(relFro(ref.dalpha!, got.dalpha!)).toBeGreaterThan(1e-3);
  });
});
