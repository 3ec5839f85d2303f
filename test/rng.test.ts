import { describe, expect, it } from 'vitest';
import { Rng } from '../src/numerics/rng.js';

// Independent BigInt model of splitmix32 seeding + xoshiro128** (published algorithm, written without Math.imul).
const M32 = (1n << 32n) - 1n;
function refStream(seed: number, count: number): number[] {
  let st = BigInt(seed >>> 0);
  const s: bigint[] = [];
  for (let k = 0; k < 4; k++) {
    st = (st + 0x9e3779b9n) & M32;
    let z = st;
    z = ((z ^ (z >> 16n)) * 0x85ebca6bn) & M32;
    z = ((z ^ (z >> 13n)) * 0xc2b2ae35n) & M32;
    z ^= z >> 16n;
    s.push(z);
  }
  const rotl = (x: bigint, k: bigint): bigint => ((x << k) | (x >> (32n - k))) & M32;
  const out: number[] = [];
  for (let n = 0; n < count; n++) {
    const result = (rotl((s[1] * 5n) & M32, 7n) * 9n) & M32;
    const t = (s[1] << 9n) & M32;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11n);
    out.push(Number(result));
  }
  return out;
}

// Upper critical values of χ² at p = 0.001 (Wilson–Hilferty approximation is enough for these tests).
function chi2Critical(df: number): number {
  const z = 3.090232; // one-sided 0.999 quantile of N(0,1)
  const a = 2 / (9 * df);
  return df * (1 - a + z * Math.sqrt(a)) ** 3;
}

describe('Rng', () => {
  it('matches an independent BigInt model of xoshiro128** seeded by splitmix32', () => {
    for (const seed of [0, 1, 42, 0xffffffff, -7, 2 ** 40 + 3]) {
      const rng = new Rng(seed);
      const got = Array.from({ length: 200 }, () => rng.nextU32());
      expect(got).toEqual(refStream(seed, 200));
    }
  });

  it('is deterministic per seed and differs between seeds', () => {
    const a = new Rng(7);
    const b = new Rng(7);
    const c = new Rng(8);
    const sa = Array.from({ length: 50 }, () => a.nextU32());
    expect(Array.from({ length: 50 }, () => b.nextU32())).toEqual(sa);
    expect(Array.from({ length: 50 }, () => c.nextU32())).not.toEqual(sa);
    const x = new Rng(11).shuffle(Array.from({ length: 100 }, (_, i) => i));
    const y = new Rng(11).shuffle(Array.from({ length: 100 }, (_, i) => i));
    expect(x).toEqual(y);
  });

  it('nextFloat has 24 bits, nextDouble 53 bits, both in [0, 1)', () => {
    const rng = new Rng(3);
    let anyLowBits = false;
    for (let n = 0; n < 10000; n++) {
      const f = rng.nextFloat();
      expect(f).toBeGreaterThanOrEqual(0);
      expect(f).toBeLessThan(1);
      expect(Math.fround(f)).toBe(f);
      expect(Number.isInteger(f * 2 ** 24)).toBe(true);
      const d = rng.nextDouble();
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThan(1);
      if (!Number.isInteger(d * 2 ** 30)) anyLowBits = true;
    }
    expect(anyLowBits).toBe(true);
  });

  it('nextInt is uniform (χ² test) for small bounds', () => {
    const rng = new Rng(2024);
    for (const n of [2, 6, 10, 37, 100]) {
      const counts = new Float64Array(n);
      const draws = 2000 * n;
      for (let k = 0; k < draws; k++) counts[rng.nextInt(n)]++;
      let chi2 = 0;
      for (const c of counts) chi2 += (c - 2000) ** 2 / 2000;
      expect(chi2).toBeLessThan(chi2Critical(n - 1));
    }
  });

  it('nextInt has no modulo bias for bounds near 2^32', () => {
    // With n = 3·2^30, a plain u % n would land in [0, 2^30) half of the time instead of a third.
    const rng = new Rng(5);
    const n = 3 * 2 ** 30;
    let low = 0;
    const draws = 60000;
    for (let k = 0; k < draws; k++) {
      const v = rng.nextInt(n);
      expect(v).toBeLessThan(n);
      if (v < 2 ** 30) low++;
    }
    const sd = Math.sqrt((draws * (1 / 3) * (2 / 3)));
    expect(Math.abs(low - draws / 3)).toBeLessThan(5 * sd);
    expect(new Rng(1).nextInt(2 ** 32)).toBeLessThan(2 ** 32);
    expect(() => rng.nextInt(0)).toThrow();
    expect(() => rng.nextInt(1.5)).toThrow();
  });

  it('normal() has mean 0, variance 1 and Gaussian tails', () => {
    const rng = new Rng(99);
    const n = 200000;
    let s1 = 0;
    let s2 = 0;
    let s4 = 0;
    let beyond2 = 0;
    for (let k = 0; k < n; k++) {
      const z = rng.normal();
      s1 += z;
      s2 += z * z;
      s4 += z ** 4;
      if (Math.abs(z) > 2) beyond2++;
    }
    const mean = s1 / n;
    const variance = s2 / n - mean * mean;
    expect(Math.abs(mean)).toBeLessThan(5 / Math.sqrt(n));
    expect(Math.abs(variance - 1)).toBeLessThan(5 * Math.sqrt(2 / n));
    expect(Math.abs(s4 / n - 3)).toBeLessThan(0.1); // kurtosis of N(0,1)
    const p2 = 0.0455003;
    expect(Math.abs(beyond2 / n - p2)).toBeLessThan(5 * Math.sqrt((p2 * (1 - p2)) / n));
  });

  it('shuffle is a uniform permutation (χ² over all 24 permutations of 4) and works on typed arrays', () => {
    const rng = new Rng(17);
    const counts = new Map<string, number>();
    const trials = 48000;
    for (let k = 0; k < trials; k++) {
      const key = rng.shuffle(new Int32Array([0, 1, 2, 3])).join('');
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    expect(counts.size).toBe(24);
    let chi2 = 0;
    for (const c of counts.values()) chi2 += (c - trials / 24) ** 2 / (trials / 24);
    expect(chi2).toBeLessThan(chi2Critical(23));
  });

  it('sampleWithoutReplacement: sorted, distinct, in range, uniform over subsets', () => {
    const rng = new Rng(31);
    for (const [n, k] of [[10, 0], [10, 10], [1000, 7], [50, 49]] as const) {
      const s = rng.sampleWithoutReplacement(n, k);
      expect(s.length).toBe(k);
      for (let i = 0; i < k; i++) {
        expect(s[i]).toBeGreaterThanOrEqual(0);
        expect(s[i]).toBeLessThan(n);
        if (i > 0) expect(s[i]).toBeGreaterThan(s[i - 1]);
      }
    }
    // All C(6,3) = 20 subsets equally likely.
    const counts = new Map<string, number>();
    const trials = 40000;
    for (let t = 0; t < trials; t++) {
      const key = rng.sampleWithoutReplacement(6, 3).join(',');
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    expect(counts.size).toBe(20);
    let chi2 = 0;
    for (const c of counts.values()) chi2 += (c - trials / 20) ** 2 / (trials / 20);
    expect(chi2).toBeLessThan(chi2Critical(19));
    expect(() => rng.sampleWithoutReplacement(3, 4)).toThrow();
  });
});
