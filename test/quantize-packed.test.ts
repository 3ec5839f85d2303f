// Backend.quantizePacked (the export's codes, packed where the weights live) against the host path it replaced:
// numerics/int-quant quantizeCodes + io/awq packAwqTransposed, word for word, on random grids with exact .5 ties and
// extreme values; and packLinear (finalize) against that host path written out here, tensor for tensor, so a
// checkpoint written through the op is byte-identical to the one the host path wrote.
import { beforeAll, describe, expect, it } from 'vitest';
import type { Backend, QuantGrid } from '../src/engine/backend.js';
import { CpuBackend } from '../src/engine/cpu/backend.js';
import { AWQ_ORDER, dequantizeAwq, packAwq, packAwqTransposed } from '../src/io/awq.js';
import { quantizeCodes } from '../src/numerics/int-quant.js';
import { f16ToF32, f32ToF16, roundToF16InPlace } from '../src/numerics/half.js';
import { Rng } from '../src/numerics/rng.js';
import { effectiveWeight, packLinear, type PackedLinear } from '../src/paroquant/finalize.js';
import { foldRotation } from '../src/model/layer-ops.js';
import type { ParoLinear } from '../src/paroquant/transform.js';

let be: Backend;
beforeAll(async () => {
  be = await CpuBackend.create();
});

/** r [O, I], f16-valued scale and zpf per group: ties (power-of-two scales, r = (k + ½)·s), zeros, ±Inf, NaN, s = 0. */
function inputs(rng: Rng, O: number, I: number, gs: number): { r: Float32Array; scale: Float32Array; zpf: Float32Array } {
  const nG = (O * I) / gs;
  const r = new Float32Array(O * I);
  const scale = new Float32Array(nG);
  const zpf = new Float32Array(nG);
  for (let grp = 0; grp < nG; grp++) {
    const tie = grp % 3 === 0;
    scale[grp] = grp % 17 === 5 ? [0, -0.01, NaN, 2 ** -24][grp % 4] : tie ? 2 ** -(3 + rng.nextInt(6)) : 0.001 + 0.02 * rng.nextFloat();
    zpf[grp] = grp % 13 === 4 ? [NaN, 65504, -65504][grp % 3] : tie ? -(rng.nextInt(16) + 0.5) : -16 * rng.nextFloat();
    for (let e = grp * gs; e < (grp + 1) * gs; e++) {
      r[e] = tie ? (rng.nextInt(40) - 20 + 0.5) * scale[grp] : rng.normal() * 6 * scale[grp];
      if (rng.nextInt(50) === 0) r[e] = [0, -0, Infinity, -Infinity, NaN, 3e38][rng.nextInt(6)];
    }
  }
  roundToF16InPlace(scale);
  roundToF16InPlace(zpf);
  return { r, scale, zpf };
}

describe('Backend.quantizePacked', () => {
  it('equals quantizeCodes + packAwqTransposed word for word (ties, extremes, 3 and 4 bits)', () => {
    const rng = new Rng(77);
    for (const [O, I, gs, bits] of [[64, 256, 128, 4], [32, 192, 64, 3], [8, 128, 128, 4]] as const) {
      const { r, scale, zpf } = inputs(rng, O, I, gs);
      const want = packAwqTransposed(quantizeCodes(r, scale, zpf, O, I, bits, gs).q, O, I);
      const t = [be.fromHost(r, [O, I]), be.fromHost(scale, [scale.length]), be.fromHost(zpf, [zpf.length])];
      const words = be.quantizePacked(t[0], t[1], t[2], { bits, groupSize: gs }, AWQ_ORDER);
      expect(words.shape).toEqual([I, O / 8]);
      expect(words.dtype).toBe('i32');
      expect(Array.from(be.toHostInt(words))).toEqual(Array.from(want));
      // The inputs reached the clamps and the ties: not every code is one value.
      const q = quantizeCodes(r, scale, zpf, O, I, bits, gs).q;
      expect(new Set(q).size).toBe(2 ** bits);
      be.free(words, ...t);
    }
  });

  it('rejects what cannot be packed', () => {
    const r = be.zeros([12, 128]);
    const s = be.zeros([12]);
    expect(() => be.quantizePacked(r, s, s, { bits: 4, groupSize: 128 }, AWQ_ORDER)).toThrow(/12 rows is not a multiple of 8/);
    const r8 = be.zeros([8, 128]);
    const s8 = be.zeros([8]);
    expect(() => be.quantizePacked(r8, s8, s8, { bits: 5, groupSize: 128 }, AWQ_ORDER)).toThrow(/4-bit nibbles/);
    expect(() => be.quantizePacked(r8, s8, s8, { bits: 4, groupSize: 128 }, [0, 1, 2, 3, 4, 5, 6, 6])).toThrow(/permutation/);
    be.free(r, s, r8, s8);
  });
});

/** The host path packLinear had before quantizePacked: everything weight-sized copied out and done here. */
function hostPackLinear(lin: ParoLinear, grid: QuantGrid): PackedLinear {
  const O = lin.outFeatures, I = lin.inFeatures, gs = grid.groupSize, G = I / gs;
  const W = roundToF16InPlace(be.toHost(lin.W));
  const theta = roundToF16InPlace(be.toHost(lin.theta));
  const alpha = be.toHost(lin.alpha);
  const csBits = f32ToF16(Float32Array.from(alpha, (a) => 1 / a));
  const alphaEff = Float32Array.from(f16ToF32(csBits), (c) => 1 / c);
  const Ws = be.mulCols(be.fromHost(W, [O, I]), be.fromHost(alphaEff, [I]));
  const R = be.givens(Ws, lin.pairs, be.fromHost(theta, lin.theta.shape), gs, 'forward');
  const g = lin.scale && lin.zpf ? { scale: lin.scale, zpf: lin.zpf } : be.fakeQuantMinMax(R, grid);
  const scaleBits = f32ToF16(be.toHost(g.scale));
  const zpf16 = roundToF16InPlace(be.toHost(g.zpf));
  const { q, zero } = quantizeCodes(be.toHost(R), f16ToF32(scaleBits), zpf16, O, I, grid.bits, gs);
  const zT = new Uint8Array(G * O);
  const sT = new Uint16Array(G * O);
  for (let o = 0; o < O; o++) for (let gg = 0; gg < G; gg++) {
    zT[gg * O + o] = zero[o * G + gg];
    sT[gg * O + o] = scaleBits[o * G + gg];
  }
  return {
    outFeatures: O, inFeatures: I, krot: lin.krot, groupSize: gs, qweight: packAwqTransposed(q, O, I), qzeros: packAwq(zT, G, O),
    scales: sT, theta: f32ToF16(theta), pairs: Int16Array.from(be.toHostInt(lin.pairs)), channelScales: csBits,
    bias: lin.bias ? f32ToF16(be.toHost(lin.bias)) : undefined,
  };
}

function randomLinear(rng: Rng, O: number, I: number, K: number, gs: number, stage2: boolean): ParoLinear {
  const pairs = new Int32Array(K * I);
  for (let l = 0; l < K; l++) {
    for (let g0 = 0; g0 < I; g0 += gs) {
      const perm = Array.from({ length: gs }, (_, i) => i);
      rng.shuffle(perm);
      pairs.set(perm, l * I + g0);
    }
  }
  const randn = (n: number, s: number) => Float32Array.from({ length: n }, () => rng.normal() * s);
  const nG = (O * I) / gs;
  return {
    outFeatures: O, inFeatures: I, krot: K,
    W: be.fromHost(randn(O * I, 0.05), [O, I]),
    bias: be.fromHost(randn(O, 0.1), [O]),
    alpha: be.fromHost(Float32Array.from({ length: I }, () => 0.5 + rng.nextFloat()), [I]),
    theta: be.fromHost(randn((K * I) / 2, 0.3), [K, I / 2]),
    pairs: be.fromHost(pairs, [K, I], 'i32'),
    thetaKeep: be.fromHost(new Float32Array((K * I) / 2).fill(1), [(K * I) / 2]),
    scale: stage2 ? be.fromHost(Float32Array.from({ length: nG }, () => 0.004 + 0.01 * rng.nextFloat()), [nG]) : undefined,
    zpf: stage2 ? be.fromHost(Float32Array.from({ length: nG }, () => -2 - 12 * rng.nextFloat()), [nG]) : undefined,
  };
}

/** f32 values as bit patterns (NaN as one pattern), so ±0 and every last bit count. */
function bits(x: Float32Array): number[] {
  const u = new Uint32Array(x.buffer, x.byteOffset, x.length);
  return Array.from(u, (v, k) => (Number.isNaN(x[k]) ? 0x7fc00000 : v));
}

describe('Backend.dequantizePacked', () => {
  it('equals dequantizeAwq bit for bit (all nibbles, scales 0, −0, ±Inf, NaN, subnormal, negative)', () => {
    const rng = new Rng(78);
    const O = 40, I = 256, gs = 64, G = I / gs;
    const qweight = Int32Array.from({ length: (I * O) / 8 }, () => rng.nextInt(2 ** 32) | 0);
    const zerosGO = Uint8Array.from({ length: G * O }, () => rng.nextInt(16));
    const specials = [0, -0, Infinity, -Infinity, NaN, 2 ** -24, -0.0123];
    const scalesGO = roundToF16InPlace(Float32Array.from({ length: G * O }, (_, k) => (k % 7 === 3 ? specials[k % specials.length] : 0.001 + 0.02 * rng.nextFloat())));
    const want = dequantizeAwq(qweight, packAwq(zerosGO, G, O), scalesGO, I, O, gs);
    const zeros = new Int32Array(O * G);
    const scale = new Float32Array(O * G);
    for (let g = 0; g < G; g++) for (let o = 0; o < O; o++) {
      zeros[o * G + g] = zerosGO[g * O + o];
      scale[o * G + g] = scalesGO[g * O + o];
    }
    const t = [be.fromHost(qweight, [I, O / 8], 'i32'), be.fromHost(zeros, [O * G], 'i32'), be.fromHost(scale, [O * G])];
    const w = be.dequantizePacked(t[0], t[1], t[2], gs, AWQ_ORDER);
    expect(w.shape).toEqual([O, I]);
    expect(bits(be.toHost(w))).toEqual(bits(want));
    be.free(w, ...t);
  });
});

describe('packLinear through quantizePacked', () => {
  for (const stage2 of [false, true]) {
    it(`writes the host path's tensors bit for bit (${stage2 ? 'stage-2 grid' : 'min/max grid'})`, () => {
      const rng = new Rng(stage2 ? 5 : 6);
      const lin = randomLinear(rng, 48, 256, 8, 128, stage2);
      const grid = { bits: 4, groupSize: 128 };
      const got = packLinear(be, lin, grid);
      const want = hostPackLinear(lin, grid);
      expect(got).toEqual(want);
      // The effective weight through dequantizePacked equals the host dequantization folded the same way.
      const w = be.toHost(effectiveWeight(be, got));
      const rot = dequantizeAwq(want.qweight, want.qzeros, f16ToF32(want.scales), want.inFeatures, want.outFeatures, want.groupSize);
      const ref = foldRotation(be, be.fromHost(rot, [48, 256]), be.fromHost(Int32Array.from(want.pairs), [8, 256], 'i32'),
        be.fromHost(f16ToF32(want.theta), [8, 128]), be.fromHost(f16ToF32(want.channelScales), [256]), 128);
      expect(bits(w)).toEqual(bits(be.toHost(ref)));
    });
  }
});

describe('model loading dequantizes AWQ tensors on the backend', () => {
  it('dequantizeAwqOnBackend equals the host reference dequantizeAwq bit for bit', async () => {
    const { dequantizeAwqOnBackend } = await import('../src/model/weights.js');
    const rng = new Rng((Date.now() & 0xffff) + 11);
    for (const [O, I, gs] of [[16, 64, 32], [40, 256, 128], [8, 128, 64]] as const) {
      const G = I / gs;
      const codes = Uint8Array.from({ length: I * O }, () => rng.nextInt(16));
      const zeroCodes = Uint8Array.from({ length: G * O }, () => rng.nextInt(16));
      const qweight = packAwq(codes, I, O);
      const qzeros = packAwq(zeroCodes, G, O);
      const scales = f16ToF32(f32ToF16(Float32Array.from({ length: G * O }, () => 0.001 + 0.05 * rng.nextFloat())));
      const want = dequantizeAwq(qweight, qzeros, scales, I, O, gs);
      const t = dequantizeAwqOnBackend(be, qweight, qzeros, scales, I, O, gs);
      expect(t.shape).toEqual([O, I]);
      const got = be.toHost(t);
      be.free(t);
      expect(Buffer.from(got.buffer).equals(Buffer.from(want.buffer)), `[${O}, ${I}] g${gs}`).toBe(true);
    }
    expect(() => dequantizeAwqOnBackend(be, new Int32Array(8), new Int32Array(1), new Float32Array(8), 64, 8, 48)).toThrow(RangeError);
  });
});
