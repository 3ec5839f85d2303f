// The Gram backward's ops on the cpu backend (groupGram, paroScaleGrad, paroMinMaxGram; notes in backend.ts): each
// against a plain float64 reference written here from the definition (sums over rows in order, rounded once to f32,
// then the f32 steps the definition names), on fresh random inputs of several shapes; the shared shape checks; and a
// property test on a real small ParoQuant linear: the scale gradient from the residual E = Ŵ − W equals the one the
// composition's quantizer backward computes, and the min/max Gram equals the Gram of the min/max path it adds.
import { describe, expect, it } from 'vitest';
import { CpuBackend } from '../src/engine/cpu/backend.js';
import type { QuantGrid, Tensor } from '../src/engine/backend.js';
import { Rng } from '../src/numerics/rng.js';
import { randomPairs } from '../scripts/backend-ops.js';
import { randn } from './numeric.js';

const be = await CpuBackend.create();
const host = (t: Tensor): Float32Array => be.toHost(t);

/** Positive channel scales in [0.5, 1.5). */
function randomAlpha(rng: Rng, n: number): Float32Array {
  return Float32Array.from({ length: n }, () => 0.5 + rng.nextFloat());
}

/** Reference groupGram: out[k][g·gs + i] from the definition, element by element. */
function refGroupGram(a: Float32Array, b: Float32Array, O: number, I: number, gs: number, alpha?: Float32Array): Float32Array {
  const out = new Float32Array(gs * I);
  for (let g = 0; g < I / gs; g++) {
    for (let i = 0; i < gs; i++) {
      for (let k = 0; k < gs; k++) {
        const ci = g * gs + i;
        const ck = g * gs + k;
        let sum = 0;
        for (let o = 0; o < O; o++) sum += a[o * I + ci] * b[o * I + ck];
        let v = Math.fround(sum);
        if (alpha) v = Math.fround(Math.fround(v * alpha[ck]) / alpha[ci]);
        out[k * I + ci] = v;
      }
    }
  }
  return out;
}

/** Reference paroScaleGrad: per flat group Σ dŴ·E in f64, to f32, ÷ the clamped scale in f32. */
function refScaleGrad(dW: Float32Array, E: Float32Array, scale: Float32Array, gs: number): Float32Array {
  const out = new Float32Array(scale.length);
  for (let grp = 0; grp < scale.length; grp++) {
    let sum = 0;
    for (let e = 0; e < gs; e++) sum += dW[grp * gs + e] * E[grp * gs + e];
    const sc = Math.min(Math.max(scale[grp], Math.fround(1e-5)), 1e5);
    out[grp] = Math.fround(Math.fround(sum) / sc);
  }
  return out;
}

/** Is element e of the group's max (side 0) or min (side 1) mask set? */
function maskBit(ext: Int32Array, grp: number, words: number, side: 0 | 1, e: number): boolean {
  const word = ext[grp * 2 * words + side * words + Math.floor(e / 32)];
  return ((word >>> (e % 32)) & 1) === 1;
}

/** The dense min/max path c [O, I] of the definition (zero where no bit is set). */
function refMinMaxC(S: Float32Array, ext: Int32Array, O: number, I: number, gs: number, bits: number): Float32Array {
  const G = I / gs;
  const words = Math.ceil(gs / 32);
  const qmax = 2 ** bits - 1;
  const c = new Float32Array(O * I);
  for (let grp = 0; grp < O * G; grp++) {
    let nMax = 0;
    let nMin = 0;
    for (let e = 0; e < gs; e++) {
      if (maskBit(ext, grp, words, 0, e)) nMax++;
      if (maskBit(ext, grp, words, 1, e)) nMin++;
    }
    const gMax = Math.fround(Math.fround(S[grp] / qmax) / nMax);
    const gMin = Math.fround(Math.fround(-S[grp] / qmax) / nMin);
    for (let e = 0; e < gs; e++) {
      const up = maskBit(ext, grp, words, 0, e) ? gMax : 0;
      const down = maskBit(ext, grp, words, 1, e) ? gMin : 0;
      c[grp * gs + e] = Math.fround(up + down);
    }
  }
  return c;
}

/** Reference paroMinMaxGram: α_k · (Σ_o c[o, i]·W[o, k] in f64, to f32), to f32. */
function refMinMaxGram(c: Float32Array, W: Float32Array, alpha: Float32Array, O: number, I: number, gs: number): Float32Array {
  const out = new Float32Array(gs * I);
  for (let g = 0; g < I / gs; g++) {
    for (let i = 0; i < gs; i++) {
      for (let k = 0; k < gs; k++) {
        let sum = 0;
        for (let o = 0; o < O; o++) sum += c[o * I + g * gs + i] * W[o * I + g * gs + k];
        out[k * I + g * gs + i] = Math.fround(alpha[g * gs + k] * Math.fround(sum));
      }
    }
  }
  return out;
}

/** Max and min masks of every group of R [O, I] (what paroTransform's extremes hold): ties all set. */
function extremesOf(R: Float32Array, O: number, I: number, gs: number): Int32Array {
  const words = Math.ceil(gs / 32);
  const nGroups = (O * I) / gs;
  const ext = new Int32Array(nGroups * 2 * words);
  for (let grp = 0; grp < nGroups; grp++) {
    const vals = R.subarray(grp * gs, (grp + 1) * gs);
    const mx = Math.max(...vals);
    const mn = Math.min(...vals);
    for (let e = 0; e < gs; e++) {
      if (vals[e] === mx) ext[grp * 2 * words + Math.floor(e / 32)] |= 1 << (e % 32);
      if (vals[e] === mn) ext[grp * 2 * words + words + Math.floor(e / 32)] |= 1 << (e % 32);
    }
  }
  return ext;
}

/** Random masks: each group gets 1–3 max bits and 1–3 min bits (ties), sometimes the same element on both sides. */
function randomExtremes(rng: Rng, nGroups: number, gs: number): Int32Array {
  const words = Math.ceil(gs / 32);
  const ext = new Int32Array(nGroups * 2 * words);
  for (let grp = 0; grp < nGroups; grp++) {
    for (const side of [0, 1]) {
      const n = 1 + rng.nextInt(3);
      for (let t = 0; t < n; t++) {
        const e = rng.nextInt(gs);
        ext[grp * 2 * words + side * words + Math.floor(e / 32)] |= 1 << (e % 32);
      }
    }
  }
  return ext;
}

function expectBits(got: Float32Array, want: Float32Array): void {
  expect(got.length).toBe(want.length);
  let bad = -1;
  for (let i = 0; i < got.length && bad < 0; i++) if (!Object.is(got[i], want[i])) bad = i;
  expect(bad < 0 ? 'identical' : `first difference at ${bad}: ${got[bad]} vs ${want[bad]}`).toBe('identical');
}

const SHAPES = [
  { O: 13, gs: 32, G: 4 },
  { O: 21, gs: 64, G: 3 },
  { O: 7, gs: 128, G: 2 },
];

describe('groupGram (cpu)', () => {
  for (const { O, gs, G } of SHAPES) {
    const I = gs * G;
    for (const dtype of ['f32', 'bf16'] as const) {
      it(`O ${O}, gs ${gs}, ${G} groups, ${dtype} inputs, with and without alpha`, () => {
        const rng = new Rng(1000 + O * 7 + gs + (dtype === 'bf16' ? 1 : 0));
        const a32 = be.fromHost(randn(rng, O * I), [O, I]);
        const b32 = be.fromHost(randn(rng, O * I, 0.05), [O, I]);
        const a = dtype === 'f32' ? a32 : be.cast(a32, dtype);
        const b = dtype === 'f32' ? b32 : be.cast(b32, dtype);
        const alpha = be.fromHost(randomAlpha(rng, I), [I]);
        const plain = be.groupGram(a, b, gs);
        const scaled = be.groupGram(a, b, gs, alpha);
        expect(plain.shape).toEqual([gs, I]);
        expect(scaled.dtype).toBe('f32');
        expectBits(host(plain), refGroupGram(host(a), host(b), O, I, gs));
        expectBits(host(scaled), refGroupGram(host(a), host(b), O, I, gs, host(alpha)));
        // Reruns are bit-identical.
        expectBits(host(be.groupGram(a, b, gs, alpha)), host(scaled));
        be.free(a32, b32, a, b, alpha, plain, scaled);
      });
    }
  }

  it('throws with the op name on bad shapes', () => {
    const a = be.zeros([4, 64]);
    expect(() => be.groupGram(a, be.zeros([4, 32]), 32)).toThrow(/^groupGram: shapes/);
    expect(() => be.groupGram(a, be.zeros([4, 64]), 48)).toThrow(/^groupGram: cols 64 is not a multiple of groupSize 48/);
    expect(() => be.groupGram(a, be.zeros([4, 64]), 32, be.zeros([32]))).toThrow(/groupGram/);
  });
});

describe('paroScaleGrad (cpu)', () => {
  for (const { O, gs, G } of SHAPES) {
    const I = gs * G;
    for (const dtype of ['f32', 'bf16'] as const) {
      it(`O ${O}, gs ${gs}, ${G} groups, ${dtype} dŴ and E, scales clamped to [1e-5, 1e5]`, () => {
        const rng = new Rng(2000 + O * 7 + gs + (dtype === 'bf16' ? 1 : 0));
        const nGroups = O * G;
        const dW32 = be.fromHost(randn(rng, O * I, 1e-3), [O, I]);
        const E32 = be.fromHost(randn(rng, O * I, 2e-3), [O, I]);
        const dW = dtype === 'f32' ? dW32 : be.cast(dW32, dtype);
        const E = dtype === 'f32' ? E32 : be.cast(E32, dtype);
        const sc = Float32Array.from({ length: nGroups }, () => 0.001 + 0.01 * rng.nextFloat());
        sc[0] = 1e-7; // below the clamp
        sc[1] = 3e6; // above it
        sc[2] = Math.fround(1e-5);
        const scale = be.fromHost(sc, [nGroups]);
        const S = be.paroScaleGrad(dW, E, scale, { bits: 4, groupSize: gs });
        expect(S.shape).toEqual([nGroups]);
        const want = refScaleGrad(host(dW), host(E), sc, gs);
        expectBits(host(S), want);
        be.free(dW32, E32, dW, E, scale, S);
      });
    }
  }

  it('throws with the op name on bad shapes', () => {
    const grid = { bits: 4, groupSize: 32 };
    const a = be.zeros([4, 64]);
    expect(() => be.paroScaleGrad(a, be.zeros([4, 32]), be.zeros([8]), grid)).toThrow(/^paroScaleGrad: shapes/);
    expect(() => be.paroScaleGrad(a, be.zeros([4, 64]), be.zeros([7]), grid)).toThrow(/^paroScaleGrad: scale needs 8 elements/);
    expect(() => be.paroScaleGrad(a, be.zeros([4, 64]), be.zeros([8]), { bits: 4, groupSize: 48 })).toThrow(/paroScaleGrad/);
  });
});

describe('paroMinMaxGram (cpu)', () => {
  const bits = 4;
  for (const { O, gs, G } of [...SHAPES, { O: 11, gs: 48, G: 3 }]) {
    const I = gs * G;
    it(`O ${O}, gs ${gs}, ${G} groups: ties, both masks on one element, constant groups`, () => {
      const rng = new Rng(3000 + O * 7 + gs);
      const nGroups = O * G;
      const words = Math.ceil(gs / 32);
      const ext = randomExtremes(rng, nGroups, gs);
      // A constant group: every element is both the max and the min.
      for (let e = 0; e < gs; e++) {
        ext[3 * 2 * words + Math.floor(e / 32)] |= 1 << (e % 32);
        ext[3 * 2 * words + words + Math.floor(e / 32)] |= 1 << (e % 32);
      }
      // The group's last element in both masks (with gs 48, bit 15 of the partial last word).
      ext[5 * 2 * words + words - 1] |= 1 << ((gs - 1) % 32);
      ext[5 * 2 * words + 2 * words - 1] |= 1 << ((gs - 1) % 32);
      const S = randn(rng, nGroups, 1e-2);
      const Wh = randn(rng, O * I, 0.02);
      const alpha = randomAlpha(rng, I);
      const tS = be.fromHost(S, [nGroups]);
      const tE = be.fromHost(ext, [nGroups, 2 * words], 'i32');
      const tW = be.fromHost(Wh, [O, I]);
      const tA = be.fromHost(alpha, [I]);
      const out = be.paroMinMaxGram(tS, tE, tW, tA, { bits, groupSize: gs });
      expect(out.shape).toEqual([gs, I]);
      const got = host(out);
      expectBits(got, refMinMaxGram(refMinMaxC(S, ext, O, I, gs, bits), Wh, alpha, O, I, gs));
      // Columns i whose bit no row sets receive nothing: exactly 0 for every k.
      const hit = new Uint8Array(I);
      for (let grp = 0; grp < nGroups; grp++) {
        const g = grp % G;
        for (let e = 0; e < gs; e++) if (maskBit(ext, grp, words, 0, e) || maskBit(ext, grp, words, 1, e)) hit[g * gs + e] = 1;
      }
      let cold = 0;
      for (let col = 0; col < I; col++) {
        if (hit[col]) continue;
        cold++;
        for (let k = 0; k < gs; k++) expect(got[k * I + col]).toBe(0);
      }
      expect(cold).toBeGreaterThan(0);
      be.free(tS, tE, tW, tA, out);
    });
  }

  it('ignores bits past groupSize in a partial last word (gs 48)', () => {
    const rng = new Rng(3100);
    const O = 9, gs = 48, G = 2, I = gs * G, nGroups = O * G, words = 2;
    const ext = randomExtremes(rng, nGroups, gs);
    const noisy = ext.slice();
    for (let grp = 0; grp < nGroups; grp++) {
      noisy[grp * 2 * words + 1] |= 0xffff0000 | 0; // elements 48..63 of the max mask do not exist
      noisy[grp * 2 * words + 3] |= 0x7ff00000 | 0;
    }
    const tS = be.fromHost(randn(rng, nGroups, 1e-2), [nGroups]);
    const tW = be.fromHost(randn(rng, O * I, 0.02), [O, I]);
    const tA = be.fromHost(randomAlpha(rng, I), [I]);
    const grid = { bits: 4, groupSize: gs };
    const clean = be.paroMinMaxGram(tS, be.fromHost(ext, [nGroups, 4], 'i32'), tW, tA, grid);
    const dirty = be.paroMinMaxGram(tS, be.fromHost(noisy, [nGroups, 4], 'i32'), tW, tA, grid);
    expectBits(host(dirty), host(clean));
    expect(host(clean).some((v) => v !== 0)).toBe(true);
  });

  it('throws with the op name on bad shapes and a non-i32 extremes', () => {
    const grid = { bits: 4, groupSize: 32 };
    const W = be.zeros([4, 64]);
    const alpha = be.zeros([64]);
    const ext = be.zeros([8, 2], 'i32');
    expect(() => be.paroMinMaxGram(be.zeros([8]), be.zeros([8, 2]), W, alpha, grid)).toThrow(/^paroMinMaxGram: extremes must be i32/);
    expect(() => be.paroMinMaxGram(be.zeros([8]), be.zeros([8, 3], 'i32'), W, alpha, grid)).toThrow(/^paroMinMaxGram: extremes need 8·2 words/);
    expect(() => be.paroMinMaxGram(be.zeros([7]), ext, W, alpha, grid)).toThrow(/^paroMinMaxGram: S needs 8 elements/);
    expect(() => be.paroMinMaxGram(be.zeros([8]), ext, W, be.zeros([32]), grid)).toThrow(/paroMinMaxGram/);
    expect(() => be.paroMinMaxGram(be.zeros([8]), ext, W, alpha, { bits: 4, groupSize: 48 })).toThrow(/paroMinMaxGram/);
  });
});

describe('the Gram ops on a ParoQuant linear (cpu composition as the reference)', () => {
  const O = 40, I = 128, gs = 64, K = 3, G = I / gs;
  const grid: QuantGrid = { bits: 4, groupSize: gs };
  const rng = new Rng(4242);
  const W = be.fromHost(randn(rng, O * I, 0.02), [O, I]);
  const alpha = be.fromHost(randomAlpha(rng, I), [I]);
  const theta = be.fromHost(Float32Array.from({ length: (K * I) / 2 }, () => (rng.nextFloat() - 0.5) * 1.2), [K, I / 2]);
  const pairs = be.fromHost(randomPairs(K, I, gs, rng), [K, I], 'i32');
  const dWhat = be.fromHost(randn(rng, O * I, 1e-3), [O, I]);
  // The forward as transformForward composes it: R = givens(W ⊙ α), Q = fq(R), U = Gᵀ Q, Ŵ = U ⊘ α.
  const X = be.mulCols(W, alpha);
  const R = be.givens(X, pairs, theta, gs, 'forward');
  const { rq: Q, scale, zpf } = be.fakeQuantMinMax(R, grid);
  const U = be.givens(Q, pairs, theta, gs, 'inverse');
  const What = be.divCols(U, alpha);
  const Wh = host(W);
  const E = be.fromHost(host(What).map((v, j) => Math.fround(v - Wh[j])), [O, I]);
  // The composition's backward up to the quantizer: dU = dŴ ⊘ α, dQ = G dU.
  const dU = be.divCols(dWhat, alpha);
  const { dx: dQ } = be.givensBackward(dU, U, pairs, theta, gs, 'inverse');

  it('paroScaleGrad(dŴ, E, scale) is the quantizer backward\'s ds for every group', () => {
    const { dscale } = be.fakeQuantParamsBackward(dQ, R, scale, zpf, grid);
    const S = host(be.paroScaleGrad(dWhat, E, scale, grid));
    const ds = host(dscale);
    const d = host(dWhat);
    const e = host(E);
    const sc = host(scale);
    expect(S.length).toBe(O * G);
    let conditioned = 0;
    for (let grp = 0; grp < O * G; grp++) {
      // Σ|dŴ·E|/s: the size of the group's terms. Both sides see f32 rounding of Ŵ, R, dQ (~1e-7 of each term), so a
      // group whose terms cancel to 1/600 of that size can only agree to ~1e-4 of its own value.
      let absSum = 0;
      for (let j = grp * gs; j < (grp + 1) * gs; j++) absSum += Math.abs(d[j] * e[j]);
      absSum /= sc[grp];
      const err = Math.abs(S[grp] - ds[grp]);
      expect(err).toBeLessThan(1e-5 * absSum);
      if (Math.abs(ds[grp]) >= 0.01 * absSum) {
        conditioned++;
        expect(err).toBeLessThan(1e-4 * Math.abs(ds[grp]));
      }
    }
    expect(conditioned).toBeGreaterThan(0.9 * O * G);
  });

  it('paroMinMaxGram(S, extremes of R, W, α) is the Gram of fakeQuantMinMaxBackward\'s min/max path', () => {
    const S = be.paroScaleGrad(dWhat, E, scale, grid);
    const extremes = be.fromHost(extremesOf(host(R), O, I, gs), [O * G, 2 * Math.ceil(gs / 32)], 'i32');
    const Cx = host(be.paroMinMaxGram(S, extremes, W, alpha, grid));
    // c = dR − dQ: what the min/max path adds to the quantizer's input gradient (non-zero at the extremes only).
    const dR = host(be.fakeQuantMinMaxBackward(dQ, R, scale, zpf, grid));
    const dq = host(dQ);
    const c = dR.map((v, j) => v - dq[j]);
    const want = refMinMaxGram(c, Wh, host(alpha), O, I, gs);
    let num = 0;
    let den = 0;
    for (let j = 0; j < want.length; j++) {
      num += (Cx[j] - want[j]) ** 2;
      den += want[j] ** 2;
    }
    expect(den).toBeGreaterThan(0);
    expect(Math.sqrt(num / den)).toBeLessThan(1e-3);
  });
});
