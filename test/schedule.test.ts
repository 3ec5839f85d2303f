import { describe, expect, it } from 'vitest';
import { paroCosineLr, warmupCosineLr, warmupSteps } from '../src/numerics/schedule.js';

describe('paroCosineLr (paroquant-spec §6.5)', () => {
  const lr = 0.05;
  const T = 4;
  // Hand-computed: η(t) = lr/20 + (lr − lr/20)·(1 + cos(πt/4))/2 = 0.0025 + 0.0475·(1 + cos(πt/4))/2.
  //   η(0) = 0.05, η(1) = 0.0025 + 0.0475·0.853553 = 0.0430438, η(2) = 0.02625, η(3) = 0.0094562, η(≥4) = 0.0025.
  it('steps 1 and 2 use lr, step n uses η(n − 2)', () => {
    expect(paroCosineLr(lr, 1, T)).toBe(0.05);
    expect(paroCosineLr(lr, 2, T)).toBeCloseTo(0.05, 15);
    expect(paroCosineLr(lr, 3, T)).toBeCloseTo(0.0430438, 7);
    expect(paroCosineLr(lr, 4, T)).toBeCloseTo(0.02625, 15);
    expect(paroCosineLr(lr, 5, T)).toBeCloseTo(0.0094562, 7);
    // The stage has T steps: the last one (n = T) uses η(T − 2); the floor lr/20 is reached only beyond.
    expect(paroCosineLr(lr, T, T)).toBeGreaterThan(lr / 20);
    expect(paroCosineLr(lr, T + 2, T)).toBe(lr / 20);
    expect(paroCosineLr(lr, T + 50, T)).toBe(lr / 20);
  });

  it('matches the recurrence of a scheduler advanced after each step (1280 steps, the 10-epoch preset)', () => {
    const total = 1280;
    let current = lr; // optimizer's initial lr
    let schedStep = -1;
    for (let n = 1; n <= total; n++) {
      expect(paroCosineLr(lr, n, total)).toBe(current);
      schedStep++;
      const end = lr / 20;
      current = schedStep >= total ? end : end + ((lr - end) * (1 + Math.cos((Math.PI * schedStep) / total))) / 2;
    }
  });

  it('is monotonically non-increasing', () => {
    let prev = Infinity;
    for (let n = 1; n <= 700; n++) {
      const v = paroCosineLr(1e-5, n, 640);
      expect(v).toBeLessThanOrEqual(prev);
      prev = v;
    }
  });
});

describe('warmupCosineLr (dflash-spec §3.6)', () => {
  it('warmup length is floor(fraction·T), like int() in SpecForge', () => {
    expect(warmupSteps(100, 0.04)).toBe(4);
    expect(warmupSteps(99, 0.04)).toBe(3); // 3.96 → 3
    expect(warmupSteps(24, 0.04)).toBe(0);
    expect(warmupSteps(1000, 0.04)).toBe(40);
  });

  it('hand-computed values for T = 100, W = 4', () => {
    const lr = 6e-4;
    // Warmup: lr·(e+1)/4 for e = 0..3.
    expect(warmupCosineLr(lr, 0, 100, 0.04)).toBeCloseTo(1.5e-4, 18);
    expect(warmupCosineLr(lr, 1, 100, 0.04)).toBeCloseTo(3.0e-4, 18);
    expect(warmupCosineLr(lr, 3, 100, 0.04)).toBeCloseTo(6.0e-4, 18);
    // Cosine over T − W = 96 steps: e = 4 → lr; e = 52 → lr/2; e = 28 → lr·(1 + cos(π/4))/2 = 5.12132e-4.
    expect(warmupCosineLr(lr, 4, 100, 0.04)).toBeCloseTo(6.0e-4, 18);
    expect(warmupCosineLr(lr, 52, 100, 0.04)).toBeCloseTo(3.0e-4, 15);
    expect(warmupCosineLr(lr, 28, 100, 0.04)).toBeCloseTo(5.1213203e-4, 11);
    // Last optimizer step (e = 99) is tiny but positive; the value after it (e = 100) is 0.
    const last = warmupCosineLr(lr, 99, 100, 0.04);
    expect(last).toBeGreaterThan(0);
    expect(last).toBeCloseTo((lr * (1 + Math.cos((Math.PI * 95) / 96))) / 2, 18);
    expect(warmupCosineLr(lr, 100, 100, 0.04)).toBe(0);
  });

  it('spec §11.9: first lr is lr/W, reaches lr at the end of warmup, decays to 0; W = 0 means plain cosine', () => {
    const T = 5000;
    const W = warmupSteps(T, 0.04);
    expect(W).toBe(200);
    expect(warmupCosineLr(6e-4, 0, T, 0.04)).toBeCloseTo(6e-4 / W, 18);
    expect(warmupCosineLr(6e-4, W - 1, T, 0.04)).toBe(6e-4);
    expect(warmupCosineLr(6e-4, T - 1, T, 0.04)).toBeLessThan(1e-9);
    expect(warmupCosineLr(1, 0, 10, 0.04)).toBe(1);
    expect(warmupCosineLr(1, 5, 10, 0.04)).toBeCloseTo(0.5, 15);
  });
});
