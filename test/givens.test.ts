import { describe, expect, it } from 'vitest';
import {
  givensApply, givensApplyF64, givensBackward, givensBackwardF64, type GivensDirection,
} from '../src/engine/cpu/givens.js';
import { Rng } from '../src/numerics/rng.js';

// ---- independent float64 references (written from the spec formulas, not from the kernel) ----------------------

/** Random disjoint pairs covering every channel of each group in each layer: [K, cols], group-local, i < j. */
function randomPairs(rng: Rng, k: number, cols: number, gs: number): Int32Array {
  const pairs = new Int32Array(k * cols);
  for (let r = 0; r < k; r++) {
    for (let g = 0; g < cols / gs; g++) {
      const perm = rng.shuffle(Int32Array.from({ length: gs }, (_, i) => i));
      for (let t = 0; t < gs / 2; t++) {
        pairs[r * cols + g * gs + 2 * t] = Math.min(perm[2 * t], perm[2 * t + 1]);
        pairs[r * cols + g * gs + 2 * t + 1] = Math.max(perm[2 * t], perm[2 * t + 1]);
      }
    }
  }
  return pairs;
}

function randArray(rng: Rng, n: number, scale = 1): Float64Array {
  return Float64Array.from({ length: n }, () => (rng.nextDouble() * 2 - 1) * scale);
}

/** Dense layer matrix M_r (spec §2.1): M[i,i] = M[j,j] = c, M[j,i] = s, M[i,j] = −s, so v′ = v·M. */
function layerMatrix(pairs: Int32Array, theta: Float64Array, r: number, cols: number, gs: number): Float64Array {
  const m = new Float64Array(cols * cols);
  for (let e = 0; e < cols; e++) m[e * cols + e] = 1;
  for (let slot = 0; slot < cols / 2; slot++) {
    const g = Math.floor((2 * slot) / gs);
    const i = g * gs + pairs[r * cols + 2 * slot];
    const j = g * gs + pairs[r * cols + 2 * slot + 1];
    const c = Math.cos(theta[(r * cols) / 2 + slot]);
    const s = Math.sin(theta[(r * cols) / 2 + slot]);
    m[i * cols + i] = c;
    m[j * cols + j] = c;
    m[j * cols + i] = s;
    m[i * cols + j] = -s;
  }
  return m;
}

function matmul(a: Float64Array, b: Float64Array, n: number, kk: number, m: number): Float64Array {
  const out = new Float64Array(n * m);
  for (let i = 0; i < n; i++) {
    for (let p = 0; p < kk; p++) {
      const av = a[i * kk + p];
      if (av === 0) continue;
      for (let j = 0; j < m; j++) out[i * m + j] += av * b[p * m + j];
    }
  }
  return out;
}

function transpose(a: Float64Array, n: number, m: number): Float64Array {
  const out = new Float64Array(n * m);
  for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) out[j * n + i] = a[i * m + j];
  return out;
}

/** G = M_0·M_1·…·M_{K−1} (layer 0 applied first to a row vector). */
function denseG(pairs: Int32Array, theta: Float64Array, k: number, cols: number, gs: number): Float64Array {
  let g: Float64Array = new Float64Array(cols * cols);
  for (let e = 0; e < cols; e++) g[e * cols + e] = 1;
  for (let r = 0; r < k; r++) g = matmul(g, layerMatrix(pairs, theta, r, cols, gs), cols, cols, cols);
  return g;
}

/** Plain per-row, per-layer loop straight from §2.1/§2.2 (no tables): the finite-difference model. */
function refApply(
  x: Float64Array, rows: number, cols: number, pairs: Int32Array, theta: Float64Array, k: number, gs: number,
  dir: GivensDirection,
): Float64Array {
  const y = Float64Array.from(x);
  for (let n = 0; n < k; n++) {
    const r = dir === 'forward' ? n : k - 1 - n;
    for (let slot = 0; slot < cols / 2; slot++) {
      const g = Math.floor((2 * slot) / gs);
      const i = g * gs + pairs[r * cols + 2 * slot];
      const j = g * gs + pairs[r * cols + 2 * slot + 1];
      const th = (dir === 'forward' ? 1 : -1) * theta[(r * cols) / 2 + slot];
      for (let row = 0; row < rows; row++) {
        const vi = y[row * cols + i];
        const vj = y[row * cols + j];
        y[row * cols + i] = Math.cos(th) * vi + Math.sin(th) * vj;
        y[row * cols + j] = -Math.sin(th) * vi + Math.cos(th) * vj;
      }
    }
  }
  return y;
}

/** Test loss L(y) = Σ w·y + 0.25·Σ y² (so ∂L/∂y = w + y/2). */
function loss(y: Float64Array, w: Float64Array): number {
  let s = 0;
  for (let e = 0; e < y.length; e++) s += w[e] * y[e] + 0.25 * y[e] * y[e];
  return s;
}

function maxRelErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let err = 0;
  let mag = 0;
  for (let e = 0; e < want.length; e++) {
    err = Math.max(err, Math.abs(got[e] - want[e]));
    mag = Math.max(mag, Math.abs(want[e]));
  }
  return err / mag;
}

interface Case { rows: number; cols: number; gs: number; k: number; pairs: Int32Array; theta: Float64Array; x: Float64Array; w: Float64Array }

function makeCase(seed: number, rows: number, cols: number, gs: number, k: number, thetaMax: number): Case {
  const rng = new Rng(seed);
  // Values chosen f32-representable so f32 and f64 kernels see identical inputs.
  const f32 = (a: Float64Array): Float64Array => Float64Array.from(new Float32Array(a));
  return {
    rows, cols, gs, k,
    pairs: randomPairs(rng, k, cols, gs),
    theta: f32(randArray(rng, (k * cols) / 2, thetaMax)),
    x: f32(randArray(rng, rows * cols, 2)),
    w: f32(randArray(rng, rows * cols)),
  };
}

/**
 * Central differences of L(refApply(x; θ)) w.r.t. every θ entry and every x entry. For θ, ε = 1e-5 rather than the
 * spec's 1e-6: truncation stays ~1e-11 relative while round-off (≈ 1e-16·|L|/ε, the larger term) drops tenfold.
 * L is exactly quadratic in x, so the x differences have no truncation error and use ε = 1e-3.
 */
function finiteDiffs(c: Case, dir: GivensDirection): { dtheta: Float64Array; dx: Float64Array } {
  const eps = 1e-5;
  const epsX = 1e-3;
  const f = (x: Float64Array, th: Float64Array): number => loss(refApply(x, c.rows, c.cols, c.pairs, th, c.k, c.gs, dir), c.w);
  const dtheta = new Float64Array(c.theta.length);
  for (let e = 0; e < c.theta.length; e++) {
    const tp = Float64Array.from(c.theta);
    const tm = Float64Array.from(c.theta);
    tp[e] += eps;
    tm[e] -= eps;
    dtheta[e] = (f(c.x, tp) - f(c.x, tm)) / (2 * eps);
  }
  const dx = new Float64Array(c.x.length);
  for (let e = 0; e < c.x.length; e++) {
    const xp = Float64Array.from(c.x);
    const xm = Float64Array.from(c.x);
    xp[e] += epsX;
    xm[e] -= epsX;
    dx[e] = (f(xp, c.theta) - f(xm, c.theta)) / (2 * epsX);
  }
  return { dtheta, dx };
}

function outputGrad(y: ArrayLike<number>, w: Float64Array): Float64Array {
  return Float64Array.from(w, (wv, e) => wv + 0.5 * y[e]);
}

// ---- tests ----------------------------------------------------------------------------------------------------

describe('givensApply (spec §2.1–2.2)', () => {
  const c = makeCase(1, 5, 256, 128, 8, Math.PI);
  const g = denseG(c.pairs, c.theta, c.k, c.cols, c.gs);

  it('forward equals x·G and inverse equals x·Gᵀ (dense float64 reference)', () => {
    const wantF = matmul(c.x, g, c.rows, c.cols, c.cols);
    const wantI = matmul(c.x, transpose(g, c.cols, c.cols), c.rows, c.cols, c.cols);
    expect(maxRelErr(refApply(c.x, c.rows, c.cols, c.pairs, c.theta, c.k, c.gs, 'forward'), wantF)).toBeLessThan(1e-13);
    expect(maxRelErr(givensApplyF64(c.x, c.rows, c.cols, c.pairs, c.theta, c.k, c.gs, 'forward'), wantF)).toBeLessThan(1e-13);
    expect(maxRelErr(givensApplyF64(c.x, c.rows, c.cols, c.pairs, c.theta, c.k, c.gs, 'inverse'), wantI)).toBeLessThan(1e-13);
    const x32 = new Float32Array(c.x);
    const th32 = new Float32Array(c.theta);
    expect(maxRelErr(givensApply(x32, c.rows, c.cols, c.pairs, th32, c.k, c.gs, 'forward'), wantF)).toBeLessThan(2e-6);
    expect(maxRelErr(givensApply(x32, c.rows, c.cols, c.pairs, th32, c.k, c.gs, 'inverse'), wantI)).toBeLessThan(2e-6);
  });

  it('group size 64 and a single layer also match the dense reference', () => {
    const d = makeCase(2, 3, 192, 64, 1, 1);
    const want = matmul(d.x, denseG(d.pairs, d.theta, 1, 192, 64), 3, 192, 192);
    const got = givensApply(new Float32Array(d.x), 3, 192, d.pairs, new Float32Array(d.theta), 1, 64, 'forward');
    expect(maxRelErr(got, want)).toBeLessThan(1e-6);
  });

  it('preserves row norms and inverse∘forward is the identity (f32 ≤ 1e-6, f64 ≤ 1e-12)', () => {
    const x32 = new Float32Array(c.x);
    const th32 = new Float32Array(c.theta);
    const y = givensApply(x32, c.rows, c.cols, c.pairs, th32, c.k, c.gs, 'forward');
    for (let row = 0; row < c.rows; row++) {
      let nx = 0;
      let ny = 0;
      for (let e = 0; e < c.cols; e++) {
        nx += x32[row * c.cols + e] ** 2;
        ny += y[row * c.cols + e] ** 2;
      }
      expect(Math.abs(Math.sqrt(ny) / Math.sqrt(nx) - 1)).toBeLessThan(1e-6);
    }
    const back = givensApply(y, c.rows, c.cols, c.pairs, th32, c.k, c.gs, 'inverse');
    expect(maxRelErr(back, x32)).toBeLessThan(1e-6);
    // F⁻¹(F(v)) with random α > 0 in f64 (spec §11.1).
    const rng = new Rng(9);
    const alpha = Float64Array.from({ length: c.cols }, () => 0.5 + rng.nextDouble());
    const xa = Float64Array.from(c.x, (v, e) => v * alpha[e % c.cols]);
    const u = givensApplyF64(xa, c.rows, c.cols, c.pairs, c.theta, c.k, c.gs, 'forward');
    const v = givensApplyF64(u, c.rows, c.cols, c.pairs, c.theta, c.k, c.gs, 'inverse').map((val, e) => val / alpha[e % c.cols]);
    expect(maxRelErr(v, c.x)).toBeLessThan(1e-12);
  });

  it('forward and inverse are adjoint: ⟨F(v), w⟩ = ⟨v, F⁻¹(w)⟩', () => {
    const fv = givensApplyF64(c.x, c.rows, c.cols, c.pairs, c.theta, c.k, c.gs, 'forward');
    const iw = givensApplyF64(c.w, c.rows, c.cols, c.pairs, c.theta, c.k, c.gs, 'inverse');
    let a = 0;
    let b = 0;
    for (let e = 0; e < c.x.length; e++) {
      a += fv[e] * c.w[e];
      b += c.x[e] * iw[e];
    }
    expect(Math.abs(a - b)).toBeLessThan(1e-12 * Math.abs(a) + 1e-12);
  });

  it('writes in place when out === x', () => {
    const x32 = new Float32Array(c.x);
    const th32 = new Float32Array(c.theta);
    const want = givensApply(x32, c.rows, c.cols, c.pairs, th32, c.k, c.gs, 'forward');
    const res = givensApply(x32, c.rows, c.cols, c.pairs, th32, c.k, c.gs, 'forward', x32);
    expect(res).toBe(x32);
    expect(Array.from(x32)).toEqual(Array.from(want));
  });

  it('rejects bad shapes and out-of-group indices', () => {
    const x = new Float32Array(256);
    const th = new Float32Array(128);
    expect(() => givensApply(x, 1, 256, new Int32Array(255), th, 1, 128, 'forward')).toThrow(RangeError);
    expect(() => givensApply(x, 1, 256, new Int32Array(256), th, 1, 96, 'forward')).toThrow(RangeError);
    const bad = new Int32Array(256);
    bad[3] = 128;
    expect(() => givensApply(x, 1, 256, bad, th, 1, 128, 'forward')).toThrow(/group-local/);
  });
});

describe('inference identity (spec §2.3, §11.2)', () => {
  it('x·Ŵᵀ = ((x ⊙ 1/α)·G)·Q(F(W))ᵀ in float64', () => {
    const rng = new Rng(21);
    const o = 24;
    const cols = 256;
    const gs = 128;
    const k = 8;
    const n = 4;
    const pairs = randomPairs(rng, k, cols, gs);
    const theta = randArray(rng, (k * cols) / 2, 1);
    const alpha = Float64Array.from({ length: cols }, () => 0.5 + rng.nextDouble());
    const w = randArray(rng, o * cols);
    const x = randArray(rng, n * cols);
    // Q: min/max grid of 15 steps per group of 128 (any Q works; this one is realistic).
    const quant = (r: Float64Array): Float64Array => {
      const out = new Float64Array(r.length);
      for (let s = 0; s < r.length; s += gs) {
        const seg = r.subarray(s, s + gs);
        const mn = Math.min(...seg);
        const sc = (Math.max(...seg) - mn) / 15;
        for (let e = 0; e < gs; e++) out[s + e] = Math.round((seg[e] - mn) / sc) * sc + mn;
      }
      return out;
    };
    const fw = givensApplyF64(w.map((v, e) => v * alpha[e % cols]), o, cols, pairs, theta, k, gs, 'forward');
    const qfw = quant(fw);
    const what = givensApplyF64(qfw, o, cols, pairs, theta, k, gs, 'inverse').map((v, e) => v / alpha[e % cols]);
    const lhs = matmul(x, transpose(what, o, cols), n, cols, o);
    const xs = x.map((v, e) => v / alpha[e % cols]);
    const rhs = matmul(matmul(xs, denseG(pairs, theta, k, cols, gs), n, cols, cols), transpose(qfw, o, cols), n, cols, o);
    expect(maxRelErr(lhs, rhs)).toBeLessThan(1e-10);
  });
});

describe('givensBackward (spec §5.1)', () => {
  for (const dir of ['forward', 'inverse'] as const) {
    it(`${dir}: dθ and dx match central finite differences (K = 8, |θ| ≤ 1): f64 ≤ 1e-7, f32 ≤ 1e-5`, () => {
      const c = makeCase(dir === 'forward' ? 3 : 4, 6, 256, 128, 8, 1);
      const fd = finiteDiffs(c, dir);
      // float64 kernel
      const y64 = givensApplyF64(c.x, c.rows, c.cols, c.pairs, c.theta, c.k, c.gs, dir);
      const b64 = givensBackwardF64(outputGrad(y64, c.w), y64, c.rows, c.cols, c.pairs, c.theta, c.k, c.gs, dir);
      expect(maxRelErr(b64.dtheta, fd.dtheta)).toBeLessThan(1e-7);
      expect(maxRelErr(b64.dx, fd.dx)).toBeLessThan(1e-7);
      // float32 kernel (inputs identical: the case's values are f32-representable)
      const th32 = new Float32Array(c.theta);
      const y32 = givensApply(new Float32Array(c.x), c.rows, c.cols, c.pairs, th32, c.k, c.gs, dir);
      const b32 = givensBackward(new Float32Array(outputGrad(y32, c.w)), y32, c.rows, c.cols, c.pairs, th32, c.k, c.gs, dir);
      expect(maxRelErr(b32.dtheta, fd.dtheta)).toBeLessThan(1e-5);
      expect(maxRelErr(b32.dx, fd.dx)).toBeLessThan(1e-5);
    });
  }

  it('accumulates dθ accurately over many rows (4096 rows, f32 kernel vs f64 kernel)', () => {
    const c = makeCase(5, 4096, 128, 128, 8, 1);
    const y64 = givensApplyF64(c.x, c.rows, c.cols, c.pairs, c.theta, c.k, c.gs, 'forward');
    const want = givensBackwardF64(outputGrad(y64, c.w), y64, c.rows, c.cols, c.pairs, c.theta, c.k, c.gs, 'forward');
    const th32 = new Float32Array(c.theta);
    const y32 = givensApply(new Float32Array(c.x), c.rows, c.cols, c.pairs, th32, c.k, c.gs, 'forward');
    const got = givensBackward(new Float32Array(outputGrad(y32, c.w)), y32, c.rows, c.cols, c.pairs, th32, c.k, c.gs, 'forward');
    expect(maxRelErr(got.dtheta, want.dtheta)).toBeLessThan(2e-6);
  });
});
