import { describe, expect, it } from 'vitest';
import { adamwStep, clipGradNorm, smoothL1 } from '../src/engine/cpu/optim.js';
import { Rng } from '../src/numerics/rng.js';

const hyper = { lr: 0.05, beta1: 0.9, beta2: 0.95, eps: 1e-10, weightDecay: 0.01 };

describe('adamwStep (spec §6.4)', () => {
  it('spec §11.8: p = 1, g = 0.5, lr 0.05, wd 0.01 → 0.9495 after one step', () => {
    const p = new Float32Array([1]);
    const m = new Float32Array(1);
    const v = new Float32Array(1);
    adamwStep(p, new Float32Array([0.5]), m, v, { ...hyper, step: 1 });
    expect(p[0]).toBeCloseTo(0.9495, 6);
    expect(m[0]).toBeCloseTo(0.05, 7);
    expect(v[0]).toBeCloseTo(0.0125, 7);
  });

  it('three hand-computed steps with changing gradients (including a zero gradient)', () => {
    // Hand computation (lr 0.05, wd 0.01, β 0.9/0.95, ε 1e-10), p0 = 1:
    // step 1, g = 0.5:  p = 0.9995 − 0.05·(0.05/0.1)/(sqrt(0.0125/0.05)) = 0.9995 − 0.05 = 0.9495
    // step 2, g = −0.2: m = 0.045 − 0.02 = 0.025, v = 0.011875 + 0.002 = 0.013875
    //   m̂ = 0.025/0.19 = 0.131578947, v̂ = 0.013875/0.0975 = 0.142307692, sqrt = 0.377236918
    //   p = 0.9495·0.9995 − 0.05·0.131578947/0.377236918 = 0.94902525 − 0.017439829 = 0.931585421
    // step 3, g = 0:    m = 0.0225, v = 0.01318125; m̂ = 0.0225/0.271 = 0.083025830,
    //   v̂ = 0.01318125/0.142625 = 0.092418931, sqrt = 0.304004820
    //   p = 0.931585421·0.9995 − 0.05·0.083025830/0.304004820 = 0.931119628 − 0.013655348 = 0.917464280
    const p = new Float32Array([1]);
    const m = new Float32Array(1);
    const v = new Float32Array(1);
    const expected = [0.9495, 0.931585421, 0.917464280];
    [0.5, -0.2, 0].forEach((g, n) => {
      adamwStep(p, new Float32Array([g]), m, v, { ...hyper, step: n + 1 });
      expect(p[0]).toBeCloseTo(expected[n], 6);
    });
  });

  it('matches a float64 transcription of torch.optim.AdamW on a random vector over 20 steps', () => {
    const rng = new Rng(4);
    const n = 257;
    const p = Float32Array.from({ length: n }, () => rng.normal());
    const p64 = Float64Array.from(p);
    const m = new Float32Array(n);
    const v = new Float32Array(n);
    const m64 = new Float64Array(n);
    const v64 = new Float64Array(n);
    const h = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1 };
    for (let t = 1; t <= 20; t++) {
      const g = Float32Array.from({ length: n }, () => rng.normal() * 0.1);
      adamwStep(p, g, m, v, { ...h, step: t });
      for (let i = 0; i < n; i++) {
        p64[i] *= 1 - h.lr * h.weightDecay;
        m64[i] = h.beta1 * m64[i] + (1 - h.beta1) * g[i];
        v64[i] = h.beta2 * v64[i] + (1 - h.beta2) * g[i] * g[i];
        const mHat = m64[i] / (1 - h.beta1 ** t);
        const vHat = v64[i] / (1 - h.beta2 ** t);
        p64[i] -= (h.lr * mHat) / (Math.sqrt(vHat) + h.eps);
      }
    }
    for (let i = 0; i < n; i++) expect(Math.abs(p[i] - p64[i])).toBeLessThan(2e-6);
  });

  it('rejects a 0-based step and mismatched lengths', () => {
    const a = new Float32Array(2);
    expect(() => adamwStep(a, a, a, a, { ...hyper, step: 0 })).toThrow(RangeError);
    expect(() => adamwStep(a, new Float32Array(3), a, a, { ...hyper, step: 1 })).toThrow(RangeError);
  });
});

describe('smoothL1 (spec §6.2)', () => {
  it('ℓ(0.5) = 0.125, ℓ(2) = 1.5, mean over elements', () => {
    expect(smoothL1(new Float32Array([0.5]), new Float32Array([0]), false).loss).toBe(0.125);
    expect(smoothL1(new Float32Array([2]), new Float32Array([0]), false).loss).toBe(1.5);
    const r = smoothL1(new Float32Array([0.5, 2, -3, 1]), new Float32Array([0, 0, 0, 0]), true);
    expect(r.loss).toBeCloseTo((0.125 + 1.5 + 2.5 + 0.5) / 4, 12);
    expect(Array.from(r.dpred!)).toEqual([0.125, 0.25, -0.25, 0.25]);
  });

  it('gradient matches central finite differences', () => {
    const rng = new Rng(6);
    const n = 200;
    const pred = Float32Array.from({ length: n }, () => rng.normal() * 1.5);
    const target = Float32Array.from({ length: n }, () => rng.normal());
    const { dpred } = smoothL1(pred, target, true);
    const f = (x: Float64Array): number => {
      let s = 0;
      for (let i = 0; i < n; i++) {
        const d = x[i] - target[i];
        s += Math.abs(d) < 1 ? 0.5 * d * d : Math.abs(d) - 0.5;
      }
      return s / n;
    };
    for (let i = 0; i < n; i++) {
      const xp = Float64Array.from(pred);
      const xm = Float64Array.from(pred);
      xp[i] += 1e-6;
      xm[i] -= 1e-6;
      expect(dpred![i]).toBeCloseTo((f(xp) - f(xm)) / 2e-6, 7);
    }
  });
});

describe('clipGradNorm', () => {
  it('returns the total norm and scales by maxNorm/(norm + 1e-6) only when that is below 1', () => {
    const a = new Float32Array([3, 0]);
    const b = new Float32Array([0, 4]);
    expect(clipGradNorm([a, b], 1)).toBeCloseTo(5, 12);
    const coef = 1 / (5 + 1e-6);
    expect(a[0]).toBeCloseTo(3 * coef, 7);
    expect(b[1]).toBeCloseTo(4 * coef, 7);
    const c = new Float32Array([0.3, 0.4]);
    expect(clipGradNorm([c], 1)).toBeCloseTo(0.5, 7);
    expect(Array.from(c)).toEqual([Math.fround(0.3), Math.fround(0.4)]);
    const d = new Float32Array([NaN, 1]);
    expect(clipGradNorm([d], 1)).toBeNaN();
  });
});
