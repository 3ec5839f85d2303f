// The fused ParoQuant transform (Backend.paroTransform / paroTransformBackward, native/src/k_paro_fused.cu) written
// out per (row, group) in TypeScript, in the structure of the CUDA kernels: the forward of one row's group with every
// layer's state kept (forward layers X_0..X_K, inverse layers Y_0..Y_K), then the backward walking those states
// (inverse layers, STE quantizer with the min/max path, forward layers, α terms). It is checked against the cpu
// backend's composition (src/paroquant/transform.ts), which proves the derivation the kernels copy, and it stands in
// for the fused ops on a wrapped cpu backend to check transform.ts's fused path (masking, saved state, dtypes).
// rd = Math.fround emulates the kernels' f32 states; rd = identity is the float64 reference.
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Backend, DType, QuantGrid, Tensor } from '../src/engine/backend.js';
import { CpuBackend } from '../src/engine/cpu/backend.js';
import { Rng } from '../src/numerics/rng.js';
import { roundHalfEven } from '../src/numerics/rounding.js';
import { freeTransformSaved, transformBackward, transformForward, type ParoLinear } from '../src/paroquant/transform.js';
import { scratchDir } from './scratch.js';
import { randomPairs } from '../scripts/backend-ops.js';
import { buildEmulation, floatSmemEmulation, hasGpp } from './cuda-emu-build.js';

type Round = (x: number) => number;
const F32: Round = Math.fround;
const F64: Round = (x) => x;
const F32_1EM5 = Math.fround(1e-5);

interface Problem {
  O: number;
  I: number;
  K: number;
  grid: QuantGrid;
  W: Float32Array; // [O, I]
  alpha: Float32Array; // [I]
  pairs: Int32Array; // [K, I]
  theta: Float32Array; // [K, I/2]
  /** Stage 2 quantizer parameters [O·G]. */
  scale: Float32Array;
  zpf: Float32Array;
}

/** The K layers' tables of group g: cos, sin (rounded by rd), pair indices. */
function tables(p: Problem, g: number, rd: Round): { c: Float64Array; s: Float64Array; pi: Int32Array; pj: Int32Array } {
  const gs = p.grid.groupSize;
  const P = gs / 2;
  const c = new Float64Array(p.K * P);
  const s = new Float64Array(p.K * P);
  const pi = new Int32Array(p.K * P);
  const pj = new Int32Array(p.K * P);
  for (let l = 0; l < p.K; l++) {
    for (let t = 0; t < P; t++) {
      const th = p.theta[l * (p.I / 2) + g * P + t];
      c[l * P + t] = rd(Math.cos(th));
      s[l * P + t] = rd(Math.sin(th));
      pi[l * P + t] = p.pairs[l * p.I + g * gs + 2 * t];
      pj[l * P + t] = p.pairs[l * p.I + g * gs + 2 * t + 1];
    }
  }
  return { c, s, pi, pj };
}

const clamp = (x: number, lo: number, hi: number) => (x < lo ? lo : x > hi ? hi : x);
const zeroPoint = (zpf: number, qmax: number) => clamp(-roundHalfEven(zpf), 0, qmax);
const quantLevel = (r: number, sc: number, z: number, qmax: number, rd: Round) => clamp(roundHalfEven(rd(r / sc)) + z, 0, qmax);

/** One (row, group) forward with every state kept: X[0..K] forward layers (X[K] = R), Y[0..K] inverse (Y[0] = Q(R), Y[K] = U). */
interface GroupForward {
  X: Float64Array[];
  Y: Float64Array[];
  /** Grid of the fake quantizer: the raw scale s (before the [1e-5, 1e5] clamp) and zpf. */
  s: number;
  zf: number;
}

function groupForward(p: Problem, o: number, g: number, tb: ReturnType<typeof tables>, stage: 1 | 2, rd: Round): GroupForward {
  const gs = p.grid.groupSize;
  const P = gs / 2;
  const qmax = 2 ** p.grid.bits - 1;
  const base = o * p.I + g * gs;
  const X = [Float64Array.from({ length: gs }, (_, e) => rd(p.W[base + e] * p.alpha[g * gs + e]))];
  for (let l = 0; l < p.K; l++) {
    const v = Float64Array.from(X[l]);
    for (let t = 0; t < P; t++) {
      const e = l * P + t;
      const a = v[tb.pi[e]], b = v[tb.pj[e]];
      v[tb.pi[e]] = rd(tb.c[e] * a + tb.s[e] * b);
      v[tb.pj[e]] = rd(tb.c[e] * b - tb.s[e] * a);
    }
    X.push(v);
  }
  const R = X[p.K];
  let s: number, zf: number;
  if (stage === 1) {
    let mx = -Infinity, mn = Infinity;
    for (const v of R) {
      mx = Math.max(mx, v);
      mn = Math.min(mn, v);
    }
    s = rd(Math.max(rd(mx - mn), F32_1EM5) / qmax);
    zf = rd(mn / s);
  } else {
    s = p.scale[o * (p.I / gs) + g];
    zf = p.zpf[o * (p.I / gs) + g];
  }
  const sc = clamp(s, F32_1EM5, 1e5);
  const z = zeroPoint(zf, qmax);
  const Y = [Float64Array.from(R, (r) => rd((quantLevel(r, sc, z, qmax, rd) - z) * sc))];
  for (let k = 0; k < p.K; k++) {
    const l = p.K - 1 - k; // the inverse applies layer K−1 first, with −θ
    const v = Float64Array.from(Y[k]);
    for (let t = 0; t < P; t++) {
      const e = l * P + t;
      const a = v[tb.pi[e]], b = v[tb.pj[e]];
      v[tb.pi[e]] = rd(tb.c[e] * a - tb.s[e] * b);
      v[tb.pj[e]] = rd(tb.c[e] * b + tb.s[e] * a);
    }
    Y.push(v);
  }
  return { X, Y, s, zf };
}

/** paroTransform: Ŵ [O, I] and (stage 1) the min/max grid per flat group. */
function refForward(p: Problem, stage: 1 | 2, rd: Round): { What: Float64Array; scale: Float64Array; zpf: Float64Array } {
  const gs = p.grid.groupSize;
  const G = p.I / gs;
  const What = new Float64Array(p.O * p.I);
  const scale = new Float64Array(p.O * G);
  const zpf = new Float64Array(p.O * G);
  for (let g = 0; g < G; g++) {
    const tb = tables(p, g, rd);
    for (let o = 0; o < p.O; o++) {
      const f = groupForward(p, o, g, tb, stage, rd);
      const U = f.Y[p.K];
      for (let e = 0; e < gs; e++) What[o * p.I + g * gs + e] = rd(U[e] / p.alpha[g * gs + e]);
      scale[o * G + g] = f.s;
      zpf[o * G + g] = f.zf;
    }
  }
  return { What, scale, zpf };
}

interface RefGrads {
  dtheta: Float64Array; // [K, I/2], unmasked
  dalpha: Float64Array; // [I]
  dW: Float64Array; // [O, I]
  dscale: Float64Array; // [O·G]
}

/** paroTransformBackward: the forward recomputed per (row, group), then transformBackward's chain on its states. */
function refBackward(p: Problem, dWhat: Float32Array, stage: 1 | 2, rd: Round): RefGrads {
  const gs = p.grid.groupSize;
  const P = gs / 2;
  const G = p.I / gs;
  const qmax = 2 ** p.grid.bits - 1;
  const dtheta = new Float64Array((p.K * p.I) / 2);
  const a1 = new Float64Array(p.I); // Σ_o W·d(W⊙α)
  const a2 = new Float64Array(p.I); // Σ_o U·dŴ
  const dW = new Float64Array(p.O * p.I);
  const dscale = new Float64Array(p.O * G);
  for (let g = 0; g < G; g++) {
    const tb = tables(p, g, rd);
    for (let o = 0; o < p.O; o++) {
      const f = groupForward(p, o, g, tb, stage, rd);
      const base = o * p.I + g * gs;
      const U = f.Y[p.K];
      // Ŵ = U ⊘ α: dU = dŴ ⊘ α; the −Σ U·dŴ/α² term of dα.
      const gam = Float64Array.from({ length: gs }, (_, e) => rd(dWhat[base + e] / p.alpha[g * gs + e]));
      for (let e = 0; e < gs; e++) a2[g * gs + e] += U[e] * dWhat[base + e];
      // Inverse layers, from the last applied (layer 0, output Y[K]) back: applied angle −θ_l.
      for (let l = 0; l < p.K; l++) {
        const u = f.Y[p.K - l];
        for (let t = 0; t < P; t++) {
          const e = l * P + t;
          const i = tb.pi[e], j = tb.pj[e];
          const c = tb.c[e], sn = -tb.s[e];
          const gi = gam[i], gj = gam[j];
          dtheta[l * (p.I / 2) + g * P + t] -= gi * u[j] - gj * u[i];
          gam[i] = rd(c * gi - sn * gj);
          gam[j] = rd(sn * gi + c * gj);
        }
      }
      // STE fake quantizer: dR = dQ, plus the scale path (stage 1 through the group's max/min, ties shared; stage 2 dscale).
      const R = f.X[p.K];
      const sc = clamp(f.s, F32_1EM5, 1e5);
      const z = zeroPoint(f.zf, qmax);
      let S = 0;
      for (let e = 0; e < gs; e++) S += gam[e] * ((quantLevel(R[e], sc, z, qmax, rd) - z) - R[e] / sc);
      if (stage === 1) {
        let mx = -Infinity, mn = Infinity;
        for (const v of R) {
          mx = Math.max(mx, v);
          mn = Math.min(mn, v);
        }
        let nMax = 0, nMin = 0;
        for (const v of R) {
          if (v === mx) nMax++;
          if (v === mn) nMin++;
        }
        for (let e = 0; e < gs; e++) {
          if (R[e] === mx) gam[e] = rd(gam[e] + S / qmax / nMax);
          if (R[e] === mn) gam[e] = rd(gam[e] - S / qmax / nMin);
        }
      } else {
        dscale[o * G + g] = S;
      }
      // Forward layers, K−1 down to 0 (output X[l+1]), angle +θ_l.
      for (let l = p.K - 1; l >= 0; l--) {
        const u = f.X[l + 1];
        for (let t = 0; t < P; t++) {
          const e = l * P + t;
          const i = tb.pi[e], j = tb.pj[e];
          const c = tb.c[e], s = tb.s[e];
          const gi = gam[i], gj = gam[j];
          dtheta[l * (p.I / 2) + g * P + t] += gi * u[j] - gj * u[i];
          gam[i] = rd(c * gi - s * gj);
          gam[j] = rd(s * gi + c * gj);
        }
      }
      // W ⊙ α: dα += W·d(W⊙α); dW = d(W⊙α)·α.
      for (let e = 0; e < gs; e++) {
        a1[g * gs + e] += p.W[base + e] * gam[e];
        dW[base + e] = rd(gam[e] * p.alpha[g * gs + e]);
      }
    }
  }
  const dalpha = Float64Array.from(a1, (v, i) => v - a2[i] / p.alpha[i] / p.alpha[i]);
  return { dtheta, dalpha, dW, dscale };
}

// ---- problems ----
/**
 * A problem with random W, α, θ; group 0's angles are 0 and its rows hold exact ties for the max and the min (R = W⊙α
 * there with α = 1 on group 0), so the tie sharing of the min/max path is exercised.
 */
function problem(seed: number, O: number, I: number, K: number, gs: number): Problem {
  const rng = new Rng(seed);
  const W = Float32Array.from({ length: O * I }, () => rng.normal() * 0.02);
  const alpha = Float32Array.from({ length: I }, (_, i) => (i < gs ? 1 : 0.5 + rng.nextFloat()));
  const theta = Float32Array.from({ length: (K * I) / 2 }, (_, k) => ((k % (I / 2)) < gs / 2 ? 0 : (rng.nextFloat() - 0.5) * 1.2));
  for (let o = 0; o < O; o++) {
    // Group 0: two equal maxima and three equal minima per row.
    const b = o * I;
    W[b + 3] = W[b + 17] = 0.09;
    W[b + 5] = W[b + 40] = W[b + gs - 1] = -0.08;
  }
  const G = I / gs;
  const scale = Float32Array.from({ length: O * G }, () => 0.004 + 0.004 * rng.nextFloat());
  const zpf = Float32Array.from({ length: O * G }, () => -9 + 3 * rng.nextFloat());
  return { O, I, K, grid: { bits: 4, groupSize: gs }, W, alpha, pairs: randomPairs(K, I, gs, rng), theta, scale, zpf };
}

function relFro(ref: ArrayLike<number>, got: ArrayLike<number>): number {
  let num = 0, den = 0;
  for (let i = 0; i < ref.length; i++) {
    num += (got[i] - ref[i]) ** 2;
    den += ref[i] ** 2;
  }
  return Math.sqrt(num / Math.max(den, 1e-300));
}

/** Dummy-slot mask of transform.ts (1 real, 0 dummy): here every third slot is called a dummy. */
function keepMask(K: number, I: number): Float32Array {
  return Float32Array.from({ length: (K * I) / 2 }, (_, k) => (k % 3 === 2 ? 0 : 1));
}

function linearOn(be: Backend, p: Problem): ParoLinear {
  return {
    outFeatures: p.O, inFeatures: p.I, W: be.fromHost(p.W, [p.O, p.I]), alpha: be.fromHost(p.alpha, [p.I]),
    theta: be.fromHost(p.theta, [p.K, p.I / 2]), pairs: be.fromHost(p.pairs, [p.K, p.I], 'i32'),
    thetaKeep: be.fromHost(keepMask(p.K, p.I), [(p.K * p.I) / 2]), krot: p.K,
    scale: be.fromHost(p.scale, [p.scale.length]), zpf: be.fromHost(p.zpf, [p.zpf.length]),
  };
}

/** The composition on the cpu backend: Ŵ (and the stage-1 grid) and the gradients transformBackward returns. */
function composition(be: Backend, p: Problem, stage: 1 | 2, dWhat: Float32Array) {
  const lin = linearOn(be, p);
  const { What, saved } = transformForward(be, lin, p.grid, stage, true);
  const out = {
    What: be.toHost(What), scale: be.toHost(saved!.scale), zpf: be.toHost(saved!.zpf),
    grads: {} as Record<string, Float32Array>,
  };
  const dW = be.fromHost(dWhat, [p.O, p.I]);
  const g = transformBackward(be, lin, p.grid, saved!, dW);
  freeTransformSaved(be, saved!);
  for (const [k, t] of Object.entries(g)) if (t) out.grads[k] = be.toHost(t as Tensor);
  return out;
}

const CASES: { name: string; O: number; I: number; K: number; gs: number }[] = [
  { name: 'K8 g128', O: 6, I: 256, K: 8, gs: 128 },
  { name: 'K1 g128', O: 5, I: 256, K: 1, gs: 128 },
  { name: 'K8 g64', O: 4, I: 192, K: 8, gs: 64 },
];

describe('fused ParoQuant transform, per-(row, group) reference vs the cpu composition', async () => {
  const cpu = await CpuBackend.create();
  for (const c of CASES) {
    for (const stage of [1, 2] as const) {
      it(`${c.name} stage ${stage}: forward (f32 states: bit for bit) and backward`, () => {
        const p = problem(1000 + c.K + c.gs + stage, c.O, c.I, c.K, c.gs);
        const rng = new Rng(7 + stage);
        const dWhat = Float32Array.from({ length: p.O * p.I }, () => rng.normal());
        const comp = composition(cpu, p, stage, dWhat);
        const f32 = refForward(p, stage, F32);
        // The f32-state emulation is the cpu composition's arithmetic step for step.
        expect(Array.from(Float32Array.from(f32.What))).toEqual(Array.from(comp.What));
        if (stage === 1) {
          expect(Array.from(Float32Array.from(f32.scale))).toEqual(Array.from(comp.scale));
          expect(Array.from(Float32Array.from(f32.zpf))).toEqual(Array.from(comp.zpf));
        }
        const f64 = refForward(p, stage, F64);
        expect(relFro(f64.What, comp.What)).toBeLessThan(1e-5);
        for (const [rd, tol] of [[F32, 2e-5], [F64, 2e-5]] as const) {
          const r = refBackward(p, dWhat, stage, rd);
          if (stage === 1) {
            const keep = keepMask(p.K, p.I);
            const masked = r.dtheta.map((v, k) => v * keep[k]);
            expect(relFro(comp.grads.dtheta, masked)).toBeLessThan(tol);
            expect(relFro(comp.grads.dalpha, r.dalpha)).toBeLessThan(tol);
            expect(comp.grads.dW).toBeUndefined();
          } else {
            expect(relFro(comp.grads.dW, r.dW)).toBeLessThan(tol);
            expect(relFro(comp.grads.dscale, r.dscale)).toBeLessThan(tol);
            expect(comp.grads.dtheta).toBeUndefined();
          }
        }
      });
    }
  }

  it('the min/max path is exercised: group 0 has tied maxima and minima in every row', () => {
    const p = problem(5, 3, 256, 8, 128);
    for (let o = 0; o < p.O; o++) {
      const f = groupForward(p, o, 0, tables(p, 0, F32), 1, F32);
      const R = f.X[p.K];
      const mx = Math.max(...R), mn = Math.min(...R);
      expect(R.filter((v) => v === mx).length).toBe(2);
      expect(R.filter((v) => v === mn).length).toBe(3);
    }
  });
});

/**
 * The cpu backend with the fused ops supplied by the reference (f32 states): transform.ts's fused path against its
 * composition path. `fusedCalls` counts the calls; `refuse` makes the ops decline (return undefined).
 */
function withFusedOps(cpu: Backend, opts: { refuse?: boolean } = {}): { be: Backend; calls: { fwd: number; bwd: number } } {
  const calls = { fwd: 0, bwd: 0 };
  const toProblem = (W: Tensor, alpha: Tensor, pairs: Tensor, theta: Tensor, grid: QuantGrid, scale?: Tensor, zpf?: Tensor): Problem => {
    const [O, I] = W.shape;
    const K = pairs.shape[0];
    const G = I / grid.groupSize;
    return {
      O, I, K, grid, W: cpu.toHost(W), alpha: cpu.toHost(alpha), pairs: cpu.toHostInt(pairs), theta: cpu.toHost(theta),
      scale: scale ? cpu.toHost(scale) : new Float32Array(O * G), zpf: zpf ? cpu.toHost(zpf) : new Float32Array(O * G),
    };
  };
  const ext: Pick<Backend, 'paroTransform' | 'paroTransformBackward'> = {
    paroTransform(W, alpha, pairs, theta, grid, params, outDtype: DType) {
      if (opts.refuse) return undefined;
      calls.fwd++;
      const p = toProblem(W, alpha, pairs, theta, grid, params?.scale, params?.zpf);
      const r = refForward(p, params ? 2 : 1, F32);
      const What = cpu.fromHost(Float32Array.from(r.What), [p.O, p.I], outDtype);
      if (params) return { What };
      return { What, scale: cpu.fromHost(Float32Array.from(r.scale), [r.scale.length]), zpf: cpu.fromHost(Float32Array.from(r.zpf), [r.zpf.length]) };
    },
    paroTransformBackward(dWhat, W, alpha, pairs, theta, grid, scale, zpf, stage) {
      if (opts.refuse) return undefined;
      calls.bwd++;
      const p = toProblem(W, alpha, pairs, theta, grid, scale, zpf);
      const r = refBackward(p, cpu.toHost(dWhat), stage, F32);
      if (stage === 2) return { dW: cpu.fromHost(Float32Array.from(r.dW), [p.O, p.I]), dscale: cpu.fromHost(Float32Array.from(r.dscale), [r.dscale.length]) };
      return { dtheta: cpu.fromHost(Float32Array.from(r.dtheta), [p.K, p.I / 2]), dalpha: cpu.fromHost(Float32Array.from(r.dalpha), [p.I]) };
    },
  };
  const be = new Proxy(cpu, {
    get(target, key) {
      if (key === 'paroTransform' || key === 'paroTransformBackward') return ext[key];
      const v: unknown = Reflect.get(target, key, target);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
  return { be, calls };
}

describe('transform.ts with a backend that has the fused ops', async () => {
  const cpu = await CpuBackend.create();
  for (const stage of [1, 2] as const) {
    it(`stage ${stage}: the fused path gives the composition's Ŵ and gradients (dθ masked), Ŵ in the dtype asked for`, () => {
      const p = problem(77 + stage, 4, 256, 8, 128);
      const rng = new Rng(3);
      const dWhat = Float32Array.from({ length: p.O * p.I }, () => rng.normal());
      const comp = composition(cpu, p, stage, dWhat);
      const { be, calls } = withFusedOps(cpu);
      const lin = linearOn(be, p);
      const { What, saved } = transformForward(be, lin, p.grid, stage, true, 'bf16');
      expect(calls.fwd).toBe(1);
      expect(What.dtype).toBe('bf16');
      expect(saved!.fused).toBe(true);
      expect(saved!.R).toBeUndefined();
      const compBf16 = cpu.toHost(cpu.fromHost(comp.What, [p.O, p.I], 'bf16'));
      expect(Array.from(be.toHost(What))).toEqual(Array.from(compBf16));
      const g = transformBackward(be, lin, p.grid, saved!, be.fromHost(dWhat, [p.O, p.I]));
      freeTransformSaved(be, saved!);
      expect(calls.bwd).toBe(1);
      if (stage === 1) {
        const dtheta = be.toHost(g.dtheta!);
        expect(g.dtheta!.shape).toEqual([p.K, p.I / 2]);
        const keep = keepMask(p.K, p.I);
        expect(dtheta.every((v, k) => keep[k] === 1 || v === 0)).toBe(true);
        expect(relFro(comp.grads.dtheta, dtheta)).toBeLessThan(2e-5);
        expect(relFro(comp.grads.dalpha, be.toHost(g.dalpha!))).toBeLessThan(2e-5);
        expect(g.dW).toBeUndefined();
      } else {
        expect(relFro(comp.grads.dW, be.toHost(g.dW!))).toBeLessThan(2e-5);
        expect(relFro(comp.grads.dscale, be.toHost(g.dscale!))).toBeLessThan(2e-5);
        expect(g.dtheta).toBeUndefined();
      }
    });
  }

  it('falls back to the composition where the fused op declines, and casts Ŵ to the dtype asked for', () => {
    const p = problem(9, 3, 256, 4, 128);
    const { be, calls } = withFusedOps(cpu, { refuse: true });
    const lin = linearOn(be, p);
    const { What, saved } = transformForward(be, lin, p.grid, 1, true, 'bf16');
    expect(saved!.fused).toBe(false);
    expect(saved!.R).toBeDefined();
    expect(What.dtype).toBe('bf16');
    const comp = composition(cpu, p, 1, new Float32Array(p.O * p.I));
    expect(Array.from(be.toHost(What))).toEqual(Array.from(cpu.toHost(cpu.fromHost(comp.What, [p.O, p.I], 'bf16'))));
    freeTransformSaved(be, saved!);
    expect(calls.fwd + calls.bwd).toBe(0);
  });
});

// ---- the CUDA source itself, run on the cpu ----
// native/src/k_paro_fused.cu compiled with g++ against test/cuda-emu/common.cuh (one fiber per CUDA thread,
// barriers for __syncthreads/__syncwarp, emulated shuffles; shared memory filled with NaN patterns first): its
// outputs against the cpu composition. This checks the kernels' indexing, shared-memory layout, warp/lane split,
// chunked reduction and launch geometry, not the device's own arithmetic (sincosf, FMA contraction) or its limits.


/**
 * The emulation binary (built once per test run): the fused kernels (fused-main.cc) and, in their own translation unit,
 * k_paro.cu's unfused kernels (paro-composition.cc), whose composition the program runs too.
 */
function buildFusedEmulation(): string {
  return buildEmulation({
    name: 'paro-fused-emu',
    generated: { 'k_paro_fused_emu.cc': floatSmemEmulation('k_paro_fused.cu'), 'k_paro_emu.cc': floatSmemEmulation('k_paro.cu') },
    sources: ['fused-main.cc', 'paro-composition.cc'],
  });
}

/** The fused kernels' outputs (fused.<name>) and the emulated composition's (comp.<name>). */
function runEmulation(p: Problem, stage: 1 | 2, dWhat: Float32Array, outDtype: 'f32' | 'bf16'): {
  fused: Record<string, Float32Array>; comp: Record<string, Float32Array>;
} {
  const bin = buildFusedEmulation();
  const dir = scratchDir('paro-fused-run-');
  const files: Record<string, Float32Array | Int32Array> = { W: p.W, alpha: p.alpha, pairs: p.pairs, theta: p.theta, scale: p.scale, zpf: p.zpf, dWhat };
  for (const [n, a] of Object.entries(files)) writeFileSync(path.join(dir, n), new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  const r = spawnSync(bin, [dir, p.O, p.I, p.K, p.grid.groupSize, stage, outDtype === 'bf16' ? 1 : 0].map(String), { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`emulation failed (${r.status}): ${r.stderr}`);
  const read = (name: string) => {
    const b = readFileSync(path.join(dir, name));
    return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length));
  };
  const fused: Record<string, Float32Array> = {};
  const comp: Record<string, Float32Array> = {};
  for (const n of stage === 1 ? ['What', 'scale', 'zpf', 'dtheta', 'dalpha'] : ['What', 'dW', 'dscale']) fused[n] = read(`out.${n}`);
  for (const n of stage === 1 ? ['What', 'scale', 'zpf'] : ['What', 'dW', 'dscale']) comp[n] = read(`comp.${n}`);
  return { fused, comp };
}

/** bf16 values (as f32) more than one bf16 ulp apart. */
function beyondOneUlp(a: Float32Array, b: Float32Array): number {
  const order = (x: number) => {
    const u = new Uint32Array(Float32Array.of(x).buffer)[0] >>> 16;
    return u & 0x8000 ? -(u & 0x7fff) : u;
  };
  let n = 0;
  for (let i = 0; i < a.length; i++) if (Math.abs(order(a[i]) - order(b[i])) > 1) n++;
  return n;
}

/** Elements where a and b differ (bit patterns, so NaN = NaN and 0 ≠ −0). */
function differing(a: Float32Array, b: Float32Array): number {
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length), ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  let n = 0;
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) n++;
  return n;
}

describe.skipIf(!hasGpp)('k_paro_fused.cu under a host emulation vs the cpu composition (needs g++)', async () => {
  const cpu = await CpuBackend.create();
  // Row counts that leave a ragged last strip (32 rows per warp) and partial blocks; O 300 (g128) and 600 (g16) give
  // warps two strips in turn (the forward's prefetch, the backward's per-warp sums) and the stage-1 sums two row
  // chunks; groups of 128 down to 2 (Givens tables padded to 32 slots per layer; 48: a column block part full), K 1
  // to 8.
  const cases: { O: number; I: number; K: number; gs: number; stage: 1 | 2; out: 'f32' | 'bf16' }[] = [
    { O: 300, I: 128, K: 8, gs: 128, stage: 1, out: 'bf16' },
    { O: 300, I: 128, K: 4, gs: 128, stage: 2, out: 'f32' },
    { O: 70, I: 256, K: 8, gs: 128, stage: 2, out: 'f32' },
    { O: 33, I: 256, K: 1, gs: 128, stage: 1, out: 'f32' },
    { O: 41, I: 192, K: 3, gs: 64, stage: 1, out: 'f32' },
    { O: 41, I: 192, K: 1, gs: 32, stage: 2, out: 'bf16' },
    { O: 37, I: 64, K: 8, gs: 16, stage: 1, out: 'f32' },
    { O: 45, I: 48, K: 8, gs: 8, stage: 2, out: 'f32' },
    { O: 45, I: 48, K: 8, gs: 8, stage: 1, out: 'bf16' },
    { O: 600, I: 32, K: 2, gs: 16, stage: 1, out: 'f32' },
    { O: 40, I: 96, K: 2, gs: 48, stage: 1, out: 'f32' },
    { O: 35, I: 8, K: 2, gs: 2, stage: 2, out: 'f32' },
  ];
  for (const c of cases) {
    it(`O${c.O} I${c.I} K${c.K} g${c.gs} stage ${c.stage}, Ŵ ${c.out}`, () => {
      const p = problem(300 + c.O + c.K + c.stage, c.O, c.I, c.K, c.gs);
      const rng = new Rng(11);
      const dWhat = Float32Array.from({ length: p.O * p.I }, () => rng.normal());
      const comp = composition(cpu, p, c.stage, dWhat);
      const { fused: emu, comp: unfused } = runEmulation(p, c.stage, dWhat, c.out);
      // Ŵ, the stage-1 grid, dW and dscale: bit for bit the emulated composition of k_paro.cu's kernels (same
      // arithmetic; the host has no FMA contraction, so the device's contraction is gpu-check's to compare).
      for (const n of Object.keys(unfused)) expect(differing(unfused[n], emu[n]), n).toBe(0);
      // Against the cpu backend's composition (f64 rotations rounded once, its own cos/sin): close, and dθ/dα, sums
      // over rows in another order, within gpu-check's tolerances.
      if (c.out === 'bf16') {
        const compBf16 = cpu.toHost(cpu.fromHost(comp.What, [p.O, p.I], 'bf16'));
        expect(beyondOneUlp(compBf16, emu.What)).toBe(0);
      } else {
        expect(relFro(comp.What, emu.What)).toBeLessThan(1e-6);
      }
      if (c.stage === 1) {
        expect(relFro(comp.scale, emu.scale)).toBeLessThan(1e-6);
        expect(relFro(comp.zpf, emu.zpf)).toBeLessThan(1e-6);
        const keep = keepMask(p.K, p.I);
        expect(relFro(comp.grads.dtheta, emu.dtheta.map((v, k) => v * keep[k]))).toBeLessThan(2e-5);
        expect(relFro(comp.grads.dalpha, emu.dalpha)).toBeLessThan(2e-5);
      } else {
        expect(relFro(comp.grads.dW, emu.dW)).toBeLessThan(2e-5);
        expect(relFro(comp.grads.dscale, emu.dscale)).toBeLessThan(2e-5);
      }
    }, 120_000);
  }
});
