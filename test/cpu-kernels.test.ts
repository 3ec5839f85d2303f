// cpu backend kernels against independent float64 references: forward by direct recomputation, backward by
// central finite differences of the float64 reference of a random linear functional L = Σ f(x)·c.
import { beforeAll, describe, expect, it } from 'vitest';
import { dflashVisible, randn as randnFrom, relErr } from './numeric.js';
import { Rng } from '../src/numerics/rng.js';
import { initMatmul, matmulF32 } from '../src/engine/cpu/matmul.js';
import { rmsnormBackward, rmsnormForward } from '../src/engine/cpu/norm.js';
import { ropeApply } from '../src/engine/cpu/rope.js';
import { attentionBackward, attentionForward } from '../src/engine/cpu/attention.js';
import { swigluBackward, swigluForward } from '../src/engine/cpu/activations.js';
import { crossEntropyRows } from '../src/engine/cpu/crossentropy.js';
import type { AttentionMask, AttentionShape } from '../src/engine/backend.js';

const rng = new Rng(Date.now() & 0xffff); // fresh inputs each run
const randn = (n: number, s = 1): Float32Array => randnFrom(rng, n, s);
/** Central-difference gradient of a float64 scalar function at x. */
function fdGrad(f: (x: Float64Array) => number, x: Float64Array, eps = 1e-6): Float64Array {
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const old = x[i];
    x[i] = old + eps;
    const fp = f(x);
    x[i] = old - eps;
    const fm = f(x);
    x[i] = old;
    g[i] = (fp - fm) / (2 * eps);
  }
  return g;
}
function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

beforeAll(async () => {
  await initMatmul();
});

describe('matmul', () => {
  it.each([
    [3, 5, 4, false, false], [64, 96, 80, false, false], [64, 96, 80, true, false], [70, 33, 129, false, true], [40, 50, 60, true, true],
  ])('M=%i K=%i N=%i transA=%s transB=%s matches float64', (M, K, N, tA, tB) => {
    const a = randn(M * K);
    const b = randn(K * N);
    const c = matmulF32(a, b, M, K, N, tA, tB);
    const ref = new Float64Array(M * N);
    for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += (tA ? a[k * M + i] : a[i * K + k]) * (tB ? b[j * K + k] : b[k * N + j]);
      ref[i * N + j] = s;
    }
    expect(relErr(c, ref)).toBeLessThan(1e-5);
  });
});

describe('rmsnorm', () => {
  const rows = 5;
  const C = 24;
  const eps = 1e-6;
  const ref = (x: Float64Array, w: Float64Array) => {
    const y = new Float64Array(rows * C);
    for (let r = 0; r < rows; r++) {
      let ss = 0;
      for (let c = 0; c < C; c++) ss += x[r * C + c] ** 2;
      const s = 1 / Math.sqrt(ss / C + eps);
      for (let c = 0; c < C; c++) y[r * C + c] = w[c] * x[r * C + c] * s;
    }
    return y;
  };
  it('forward and backward match float64 and finite differences', () => {
    const x = randn(rows * C);
    const w = randn(C);
    const cvec = randn(rows * C);
    const { y, rstd } = rmsnormForward(x, w, rows, C, eps);
    expect(relErr(y, ref(Float64Array.from(x), Float64Array.from(w)))).toBeLessThan(1e-6);
    const { dx, dw } = rmsnormBackward(cvec, x, w, rstd, rows, C);
    const w64 = Float64Array.from(w);
    const gx = fdGrad((xx) => dot(ref(xx, w64), cvec), Float64Array.from(x));
    const x64 = Float64Array.from(x);
    const gw = fdGrad((ww) => dot(ref(x64, ww), cvec), Float64Array.from(w));
    expect(relErr(dx, gx)).toBeLessThan(1e-5);
    expect(relErr(dw, gw)).toBeLessThan(1e-5);
  });
});

describe('rope', () => {
  it('matches the rotate-half formula in float64, and inverse undoes forward', () => {
    const rows = 7;
    const D = 16;
    const heads = 3;
    const x = randn(rows * heads * D);
    const pos = Int32Array.from({ length: rows }, (_, i) => i * 37 + 3);
    const inv = Float32Array.from({ length: D / 2 }, (_, m) => 1 / Math.pow(10000, (2 * m) / D));
    const y = ropeApply(x, rows, heads * D, pos, inv, D, false);
    const ref = new Float64Array(y.length);
    for (let r = 0; r < rows; r++) for (let h = 0; h < heads; h++) for (let m = 0; m < D / 2; m++) {
      const phi = pos[r] * inv[m];
      const o = r * heads * D + h * D;
      ref[o + m] = x[o + m] * Math.cos(phi) - x[o + m + D / 2] * Math.sin(phi);
      ref[o + m + D / 2] = x[o + m + D / 2] * Math.cos(phi) + x[o + m] * Math.sin(phi);
    }
    expect(relErr(y, ref)).toBeLessThan(1e-5);
    const back = ropeApply(y, rows, heads * D, pos, inv, D, true);
    expect(relErr(back, x)).toBeLessThan(1e-6);
  });
});

/** Float64 attention reference with an explicit visibility predicate. */
function attnRef(q: Float64Array, k: Float64Array, v: Float64Array, s: AttentionShape, visible: (b: number, i: number, j: number) => boolean): Float64Array {
  const { batch, tq, tk, heads, kvHeads, headDim: D } = s;
  const stride = s.kvStride ?? tk;
  const scale = 1 / Math.sqrt(D);
  const out = new Float64Array(batch * tq * heads * D);
  for (let b = 0; b < batch; b++) for (let h = 0; h < heads; h++) {
    const g = Math.floor((h * kvHeads) / heads);
    for (let i = 0; i < tq; i++) {
      const sc: number[] = [];
      const js: number[] = [];
      for (let j = 0; j < tk; j++) {
        if (!visible(b, i, j)) continue;
        let d = 0;
        for (let c = 0; c < D; c++) d += q[(b * tq + i) * heads * D + h * D + c] * k[(b * stride + j) * kvHeads * D + g * D + c];
        sc.push(d * scale);
        js.push(j);
      }
      if (!js.length) continue;
      const mx = Math.max(...sc);
      const e = sc.map((x) => Math.exp(x - mx));
      const z = e.reduce((a, c) => a + c, 0);
      for (let c = 0; c < D; c++) {
        let acc = 0;
        for (let t = 0; t < js.length; t++) acc += (e[t] / z) * v[(b * stride + js[t]) * kvHeads * D + g * D + c];
        out[(b * tq + i) * heads * D + h * D + c] = acc;
      }
    }
  }
  return out;
}

describe('attention', () => {
  const D = 8;
  const cases: { name: string; shape: AttentionShape; mask: AttentionMask; visible: (b: number, i: number, j: number) => boolean }[] = [];
  cases.push({
    name: 'causal GQA', shape: { batch: 2, tq: 9, tk: 9, heads: 4, kvHeads: 2, headDim: D }, mask: { kind: 'causal', qOffset: 0 },
    visible: (_b, i, j) => j <= i,
  });
  cases.push({
    name: 'causal decode with kvStride', shape: { batch: 2, tq: 3, tk: 8, kvStride: 11, heads: 2, kvHeads: 1, headDim: D }, mask: { kind: 'causal', qOffset: 5 },
    visible: (_b, i, j) => j <= 5 + i,
  });
  cases.push({
    name: 'full', shape: { batch: 1, tq: 5, tk: 7, heads: 2, kvHeads: 2, headDim: D }, mask: { kind: 'full' }, visible: () => true,
  });
  {
    const ctxLen = 10;
    const B = 3;
    const nBlocks = 3;
    const anchors = Int32Array.from([2, 5, 9, 0, 7, 4]);
    const keep = Uint8Array.from([1, 1, 1, 1, 0, 1]);
    cases.push({
      name: 'dflash block mask', shape: { batch: 2, tq: nBlocks * B, tk: ctxLen + nBlocks * B, heads: 2, kvHeads: 1, headDim: D },
      mask: { kind: 'anchoredBlocks', ctxLen, blockSize: B, nBlocks, anchors, keep },
      visible: dflashVisible(ctxLen, B, nBlocks, anchors, keep),
    });
  }
  for (const c of cases) {
    it(`${c.name}: forward matches float64, backward matches finite differences`, () => {
      const s = c.shape;
      const stride = s.kvStride ?? s.tk;
      const q = randn(s.batch * s.tq * s.heads * D);
      const k = randn(s.batch * stride * s.kvHeads * D);
      const v = randn(s.batch * stride * s.kvHeads * D);
      const { out, lse } = attentionForward(q, k, v, s, c.mask);
      const q64 = Float64Array.from(q);
      const k64 = Float64Array.from(k);
      const v64 = Float64Array.from(v);
      expect(relErr(out, attnRef(q64, k64, v64, s, c.visible))).toBeLessThan(1e-5);
      const cvec = randn(out.length);
      const { dq, dk, dv } = attentionBackward(cvec, q, k, v, out, lse, s, c.mask);
      const gq = fdGrad((x) => dot(attnRef(x, k64, v64, s, c.visible), cvec), Float64Array.from(q));
      const gk = fdGrad((x) => dot(attnRef(q64, x, v64, s, c.visible), cvec), Float64Array.from(k));
      const gv = fdGrad((x) => dot(attnRef(q64, k64, x, s, c.visible), cvec), Float64Array.from(v));
      expect(relErr(dq, gq)).toBeLessThan(1e-4);
      expect(relErr(dk, gk)).toBeLessThan(1e-4);
      expect(relErr(dv, gv)).toBeLessThan(1e-4);
    });
  }
});

describe('swiglu and cross-entropy', () => {
  it('swiglu backward matches finite differences', () => {
    const n = 50;
    const g = randn(n, 2);
    const u = randn(n);
    const cvec = randn(n);
    const f = (gg: Float64Array, uu: Float64Array) => {
      let s = 0;
      for (let i = 0; i < n; i++) s += (gg[i] / (1 + Math.exp(-gg[i]))) * uu[i] * cvec[i];
      return s;
    };
    const h = swigluForward(g, u);
    expect(h[3]).toBeCloseTo((g[3] / (1 + Math.exp(-g[3]))) * u[3], 5);
    const { dgate, dup } = swigluBackward(cvec, g, u);
    const u64 = Float64Array.from(u);
    const g64 = Float64Array.from(g);
    expect(relErr(dgate, fdGrad((x) => f(x, u64), Float64Array.from(g)))).toBeLessThan(1e-5);
    expect(relErr(dup, fdGrad((x) => f(g64, x), Float64Array.from(u)))).toBeLessThan(1e-5);
  });

  it('cross-entropy loss, lse and weighted gradient match float64', () => {
    const rows = 4;
    const V = 13;
    const z = randn(rows * V, 3);
    const labels = Int32Array.from([3, -1, 12, 0]);
    const w = Float32Array.from([0.5, 1, 2, 0]);
    const { loss, lse, dlogits } = crossEntropyRows(z, rows, V, labels, w);
    const f = (x: Float64Array) => {
      let s = 0;
      for (let r = 0; r < rows; r++) {
        if (labels[r] < 0) continue;
        let m = -Infinity;
        for (let v = 0; v < V; v++) m = Math.max(m, x[r * V + v]);
        let e = 0;
        for (let v = 0; v < V; v++) e += Math.exp(x[r * V + v] - m);
        s += w[r] * (m + Math.log(e) - x[r * V + labels[r]]);
      }
      return s;
    };
    expect(relErr(dlogits!, fdGrad(f, Float64Array.from(z)))).toBeLessThan(1e-5);
    expect(loss[1]).toBe(0);
    let m = -Infinity;
    for (let v = 0; v < V; v++) m = Math.max(m, z[2 * V + v]);
    let e = 0;
    for (let v = 0; v < V; v++) e += Math.exp(z[2 * V + v] - m);
    expect(lse[2]).toBeCloseTo(m + Math.log(e), 5);
    expect(loss[2]).toBeCloseTo(m + Math.log(e) - z[2 * V + 12], 5);
  });
});

describe('CpuBackend.fill', () => {
  it('stores the value rounded to the tensor dtype (nearest-even), like a device bf16/f16 buffer', async () => {
    const { CpuBackend } = await import('../src/engine/cpu/backend.js');
    const be = await CpuBackend.create();
    const v = 1 + rng.nextDouble(); // in [1, 2): bf16 spacing 2^-7, f16 spacing 2^-10
    const nearest = (x: number, step: number): number => {
      const q = x / step;
      const f = Math.floor(q);
      const r = q - f === 0.5 ? (f % 2 === 0 ? f : f + 1) : Math.round(q);
      return r * step;
    };
    for (const [dtype, step] of [['bf16', 2 ** -7], ['f16', 2 ** -10]] as const) {
      const t = be.zeros([3], dtype);
      be.fill(t, v);
      for (const x of be.toHost(t)) expect(x).toBe(nearest(v, step));
    }
    const f = be.zeros([2], 'f32');
    be.fill(f, v);
    expect(be.toHost(f)[0]).toBe(Math.fround(v));
  });
});
