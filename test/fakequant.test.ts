import { describe, expect, it } from 'vitest';
import {
  fakeQuantMinMax, fakeQuantMinMaxBackward, fakeQuantParams, fakeQuantParamsBackward, quantizeCodes, rtnQuantize,
} from '../src/engine/cpu/fakequant.js';
import { Rng } from '../src/numerics/rng.js';

// Independent half-even rounding for the references (floor-based, not the magic-number trick of the source).
function rne(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}
const clamp = (x: number, lo: number, hi: number): number => Math.min(Math.max(x, lo), hi);

function randGroups(seed: number, n: number, scale = 0.05): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: n }, () => rng.normal() * scale);
}

describe('fake quantization forward (spec §4.1)', () => {
  it('hand-computed 2-bit group with ties: round half to even, never half up', () => {
    // [-1, 0.5, 1.5, 2]: M − m = 3, s = 1, zpf = −1, z = 1; R/s rounds to [-1, 0, 2, 2] (0.5 → 0, 1.5 → 2).
    const r = new Float32Array([-1, 0.5, 1.5, 2]);
    const { rq, scale, zpf } = fakeQuantMinMax(r, 1, 4, 2, 4);
    expect(Array.from(scale)).toEqual([1]);
    expect(Array.from(zpf)).toEqual([-1]);
    expect(Array.from(rq)).toEqual([-1, 0, 2, 2]);
    const codes = rtnQuantize(r, 1, 4, 2, 4);
    expect(Array.from(codes.q)).toEqual([0, 1, 3, 3]);
    expect(Array.from(codes.zero)).toEqual([1]);
  });

  it('hand-computed 3-bit group: negative ties and clipping at the top of the grid', () => {
    // [-3.5, -1.5, 0.5, 3.5]: range 7, s = 1, zpf = −3.5 → round = −4, z = 4; R/s → [-4, -2, 0, 4] (ties to even);
    // q = [0, 2, 4, 8 → 7]; r̂ = (q − 4)·1 = [-4, -2, 0, 3].
    const r = new Float32Array([-3.5, -1.5, 0.5, 3.5]);
    const { rq, scale, zpf } = fakeQuantMinMax(r, 1, 4, 3, 4);
    expect(scale[0]).toBe(1);
    expect(zpf[0]).toBe(-3.5);
    expect(Array.from(rq)).toEqual([-4, -2, 0, 3]);
    const codes = rtnQuantize(r, 1, 4, 3, 4);
    expect(Array.from(codes.q)).toEqual([0, 2, 4, 7]);
    expect(codes.zero[0]).toBe(4);
  });

  it('matches an f32 step-by-step reference on random data (4 bits, group 128) and rtn codes agree', () => {
    const rows = 16;
    const cols = 512;
    const r = randGroups(1, rows * cols);
    const { rq, scale, zpf } = fakeQuantMinMax(r, rows, cols, 4, 128);
    const codes = rtnQuantize(r, rows, cols, 4, 128);
    const f = Math.fround;
    for (let grp = 0; grp < (rows * cols) / 128; grp++) {
      const seg = r.subarray(grp * 128, (grp + 1) * 128);
      let mx = -Infinity;
      let mn = Infinity;
      for (const v of seg) {
        mx = Math.max(mx, v);
        mn = Math.min(mn, v);
      }
      const s = f(f(mx - mn) / 15); // range ≫ 1e-5: no clamp involved
      expect(scale[grp]).toBe(s);
      expect(zpf[grp]).toBe(f(mn / s));
      expect(codes.scale[grp]).toBe(s);
      const z = clamp(-rne(f(mn / s)), 0, 15);
      expect(codes.zero[grp]).toBe(z);
      for (let e = 0; e < 128; e++) {
        const q = clamp(rne(f(seg[e] / s)) + z, 0, 15);
        expect(codes.q[grp * 128 + e]).toBe(q);
        expect(rq[grp * 128 + e]).toBe(f((q - z) * s));
        // min/max grid: nothing clips, so the error is at most half a step
        expect(Math.abs(rq[grp * 128 + e] - seg[e])).toBeLessThanOrEqual(s / 2 + 1e-7);
      }
    }
  });

  it('fakeQuantParams with the min/max grid reproduces fakeQuantMinMax; outputs may alias the input', () => {
    const r = randGroups(2, 8 * 256);
    const a = fakeQuantMinMax(r, 8, 256, 4, 128);
    const b = fakeQuantParams(r, a.scale, a.zpf, 8, 256, 4, 128);
    expect(Array.from(b)).toEqual(Array.from(a.rq));
    const inPlace = Float32Array.from(r);
    const c = fakeQuantMinMax(inPlace, 8, 256, 4, 128, { rq: inPlace });
    expect(c.rq).toBe(inPlace);
    expect(Array.from(inPlace)).toEqual(Array.from(a.rq));
  });

  it('the 1e-5 floor: constant groups get s = 1e-5/qmax, then the fake-quant clamps s up to 1e-5', () => {
    const r = new Float32Array(8);
    r.fill(0, 0, 4);
    r.fill(0.3, 4, 8);
    const { rq, scale, zpf } = fakeQuantMinMax(r, 1, 8, 4, 4);
    const sFloor = Math.fround(Math.fround(1e-5) / 15);
    expect(scale[0]).toBe(sFloor);
    expect(scale[1]).toBe(sFloor);
    expect(zpf[0]).toBe(0);
    expect(Array.from(rq.subarray(0, 4))).toEqual([0, 0, 0, 0]);
    // Constant 0.3: zpf = 0.3/s ≫ 15 so z = 0; R/1e-5 = 30000 clips to q = 15: r̂ = 15·1e-5 (the reference's behaviour).
    for (let e = 4; e < 8; e++) expect(rq[e]).toBeCloseTo(15e-5, 10);
    // Export codes do not clamp s (spec §7.1): same codes here, since both clip to 15.
    const codes = quantizeCodes(r, scale, zpf, 1, 8, 4, 4);
    expect(Array.from(codes.q)).toEqual([0, 0, 0, 0, 15, 15, 15, 15]);
  });

  it('rejects bad shapes', () => {
    expect(() => fakeQuantMinMax(new Float32Array(100), 1, 100, 4, 128)).toThrow(RangeError);
    expect(() => fakeQuantMinMax(new Float32Array(128), 1, 128, 9, 128)).toThrow(RangeError);
    expect(() => fakeQuantParams(new Float32Array(256), new Float32Array(1), new Float32Array(2), 1, 256, 4, 128)).toThrow(RangeError);
  });
});

// ---- STE gradients against the surrogate (round/clamp replaced by identity plus the constant offset at the base) ----

/** Surrogate r̂ of one group in f64 with the constants frozen at the base point (spec §4.2, §11.4). */
interface Frozen { sc0: number; s0: number; z0: number; zpf0: number; k: Float64Array }
function freeze(r: Float32Array, s0: number, zpf0: number, qmax: number): Frozen {
  const sc0 = clamp(s0, 1e-5, 1e5);
  const z0 = clamp(-rne(zpf0), 0, qmax);
  const k = new Float64Array(r.length);
  for (let e = 0; e < r.length; e++) {
    const u = r[e] / sc0;
    const xi = rne(Math.fround(u));
    k[e] = xi - u + (clamp(xi + z0, 0, qmax) - (xi + z0)); // round offset + clamp offset
  }
  return { sc0, s0, z0, zpf0, k };
}
function surrogate(r: Float64Array, s: number, zpf: number, fr: Frozen): Float64Array {
  const sc = s + (fr.sc0 - fr.s0); // clamp_ste(s)
  const z = -zpf + (fr.z0 + fr.zpf0); // clamp_ste(−round_ste(zpf))
  return r.map((v, e) => (v / sc + fr.k[e] + z - z) * sc);
}
/** L(r̂) = Σ w·r̂ + ½Σ r̂² and its gradient w + r̂. */
const lossOf = (rq: ArrayLike<number>, w: Float64Array): number => {
  let s = 0;
  for (let e = 0; e < w.length; e++) s += w[e] * rq[e] + 0.5 * rq[e] * rq[e];
  return s;
};

describe('fakeQuantParamsBackward (stage 2 STE)', () => {
  it('dr and dscale match finite differences of the surrogate; the zero point gets exactly 0', () => {
    const gs = 64;
    const rng = new Rng(8);
    const r = randGroups(3, 3 * gs);
    const w = Float64Array.from({ length: r.length }, () => rng.normal());
    const base = fakeQuantMinMax(r, 1, r.length, 4, gs);
    // Group 0: natural grid. Group 1: scale shrunk so values clip. Group 2: scale below the 1e-5 floor (clamped).
    const scale = Float32Array.from([base.scale[0], base.scale[1] * 0.6, 4e-6]);
    const zpf = Float32Array.from([base.zpf[0], base.zpf[1] * 0.8, -3.2]);
    const rq = fakeQuantParams(r, scale, zpf, 1, r.length, 4, gs);
    const drq = Float32Array.from(rq, (v, e) => w[e] + v);
    const { dr, dscale } = fakeQuantParamsBackward(drq, r, scale, zpf, 1, r.length, 4, gs);
    expect(Array.from(dr)).toEqual(Array.from(drq));
    const eps = 1e-7;
    for (let g = 0; g < 3; g++) {
      const seg = r.subarray(g * gs, (g + 1) * gs);
      const fr = freeze(seg, scale[g], zpf[g], 15);
      const rs = Float64Array.from(seg);
      const wg = w.subarray(g * gs, (g + 1) * gs);
      // The surrogate reproduces the forward at the base point.
      const at0 = surrogate(rs, scale[g], zpf[g], fr);
      for (let e = 0; e < gs; e++) expect(at0[e]).toBeCloseTo(rq[g * gs + e], 6);
      const fdS = (lossOf(surrogate(rs, scale[g] + eps, zpf[g], fr), wg) - lossOf(surrogate(rs, scale[g] - eps, zpf[g], fr), wg)) / (2 * eps);
      expect(Math.abs(dscale[g] - fdS)).toBeLessThan(1e-4 * Math.abs(fdS) + 1e-6);
      const fdZ = (lossOf(surrogate(rs, scale[g], zpf[g] + 1e-3, fr), wg) - lossOf(surrogate(rs, scale[g], zpf[g] - 1e-3, fr), wg)) / 2e-3;
      expect(Math.abs(fdZ)).toBeLessThan(1e-9);
      for (let e = 0; e < gs; e += 7) {
        const rp = Float64Array.from(rs);
        const rm = Float64Array.from(rs);
        rp[e] += 1e-6;
        rm[e] -= 1e-6;
        const fdR = (lossOf(surrogate(rp, scale[g], zpf[g], fr), wg) - lossOf(surrogate(rm, scale[g], zpf[g], fr), wg)) / 2e-6;
        expect(dr[g * gs + e]).toBeCloseTo(fdR, 5);
      }
    }
    // The clipped group really clips and the clamped group really is below the floor: the test covers both STE paths.
    expect(freeze(r.subarray(gs, 2 * gs), scale[1], zpf[1], 15).k.some((v) => Math.abs(v) > 0.5)).toBe(true);
    expect(scale[2]).toBeLessThan(1e-5);
  });
});

describe('fakeQuantMinMaxBackward (stage 1 STE through min/max)', () => {
  it('matches finite differences of the surrogate with s = (max − min)/qmax', () => {
    const gs = 32;
    const rows = 3;
    const r = randGroups(4, rows * gs);
    const rng = new Rng(10);
    const w = Float64Array.from({ length: r.length }, () => rng.normal());
    const { rq, scale, zpf } = fakeQuantMinMax(r, rows, gs, 4, gs);
    const drq = Float32Array.from(rq, (v, e) => w[e] + v);
    const dr = fakeQuantMinMaxBackward(drq, r, scale, zpf, rows, gs, 4, gs);
    for (let g = 0; g < rows; g++) {
      const seg = r.subarray(g * gs, (g + 1) * gs);
      const fr = freeze(seg, scale[g], zpf[g], 15);
      const wg = w.subarray(g * gs, (g + 1) * gs);
      const f = (x: Float64Array): number => {
        const s = (Math.max(...x) - Math.min(...x)) / 15; // range ≫ 1e-5: the floor's STE offset is 0
        return lossOf(surrogate(x, s, zpf[g], fr), wg);
      };
      for (let e = 0; e < gs; e++) {
        const xp = Float64Array.from(seg);
        const xm = Float64Array.from(seg);
        xp[e] += 1e-7;
        xm[e] -= 1e-7;
        const fd = (f(xp) - f(xm)) / 2e-7;
        expect(Math.abs(dr[g * gs + e] - fd)).toBeLessThan(2e-5 * (1 + Math.abs(fd)));
      }
      // The max and min elements carry an extra term; the others get exactly dr̂.
      let nDiff = 0;
      for (let e = 0; e < gs; e++) if (dr[g * gs + e] !== drq[g * gs + e]) nDiff++;
      expect(nDiff).toBe(2);
    }
  });

  it('ties share the min/max gradient evenly; a constant group gets dr = dr̂', () => {
    // bits 2 (qmax 3), group of 8 with two maxima (2) and three minima (−1).
    const r = new Float32Array([2, -1, 0.3, -1, 2, 1.1, -1, 0.7]);
    const rng = new Rng(12);
    const drq = Float32Array.from({ length: 8 }, () => rng.normal());
    const { scale, zpf } = fakeQuantMinMax(r, 1, 8, 2, 8);
    expect(scale[0]).toBe(1);
    const dr = fakeQuantMinMaxBackward(drq, r, scale, zpf, 1, 8, 2, 8);
    const z = clamp(-rne(zpf[0]), 0, 3);
    let ds = 0;
    for (let e = 0; e < 8; e++) ds += drq[e] * (clamp(rne(r[e]) + z, 0, 3) - z - r[e]);
    for (let e = 0; e < 8; e++) {
      const extra = r[e] === 2 ? ds / 3 / 2 : r[e] === -1 ? -ds / 3 / 3 : 0;
      expect(dr[e]).toBeCloseTo(drq[e] + extra, 6);
    }
    const flat = new Float32Array(4).fill(0.25);
    const fq = fakeQuantMinMax(flat, 1, 4, 4, 4);
    const d2 = fakeQuantMinMaxBackward(Float32Array.from([1, 2, 3, 4]), flat, fq.scale, fq.zpf, 1, 4, 4, 4);
    expect(Array.from(d2)).toEqual([1, 2, 3, 4]);
  });
});
