// The Gram backward's CUDA side run on the cpu (needs g++): native/src/k_paro_fused.cu's forward with its residual
// outputs (E = Ŵ − W, the stage-1 max/min masks) and native/src/k_paro_resid.cu's paroScaleGrad / paroMinMaxGram
// (dense rows α·c handed to k_gram.cu's groupGramK, whose TF32 mma test/cuda-emu/gram-emu.h emulates), compiled
// against test/cuda-emu/common.cuh (one fiber per CUDA thread, barriers for __syncthreads/__syncwarp, emulated
// shuffles) and driven by test/cuda-emu/resid-main.cc. The forward's residual is checked against the emulated
// composition of k_paro.cu's unfused kernels (its R and its unrounded Ŵ), the two reductions against float64
// references written here. This checks indexing, masks, launch geometry and sum order, not the device's arithmetic.
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { roundToBf16InPlace } from '../src/numerics/half.js';
import { roundHalfEven } from '../src/numerics/rounding.js';
import { Rng } from '../src/numerics/rng.js';
import { randomPairs } from '../scripts/backend-ops.js';
import { scratchDir } from './scratch.js';
import { buildEmulation, floatSmemEmulation, hasGpp } from './cuda-emu-build.js';
import { groupGramEmulationUnit } from './gram-emu-source.js';

if (!hasGpp) console.warn('paro-resid-emu: g++ not found, the host emulation of the residual kernels is skipped');

type Dt = 'f32' | 'bf16';
const DT: Record<Dt, number> = { f32: 0, bf16: 1 };

function buildResidEmulation(): string {
  const generated: Record<string, string> = {};
  for (const f of ['k_paro_fused', 'k_paro_resid', 'k_paro']) generated[`${f}_emu.cc`] = floatSmemEmulation(`${f}.cu`);
  generated['k_gram_emu.cc'] = groupGramEmulationUnit();
  return buildEmulation({ name: 'paro-resid-emu', generated, sources: ['resid-main.cc', 'paro-composition.cc', 'k_gram_emu.cc'] });
}

/** Runs the emulation in a fresh folder holding `files`; returns a reader of its outputs and its stdout. */
function runEmulation(args: (string | number)[], files: Record<string, Float32Array | Int32Array>) {
  const bin = buildResidEmulation();
  const dir = scratchDir('paro-resid-run-');
  for (const [n, a] of Object.entries(files)) writeFileSync(path.join(dir, n), new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  const r = spawnSync(bin, [String(args[0]), dir, ...args.slice(1).map(String)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`emulation failed (${r.status}): ${r.stderr}`);
  const bytes = (name: string) => {
    const b = readFileSync(path.join(dir, name));
    return b.buffer.slice(b.byteOffset, b.byteOffset + b.length);
  };
  return { f32: (name: string) => new Float32Array(bytes(name)), i32: (name: string) => new Int32Array(bytes(name)), stdout: r.stdout };
}

/** Elements whose bit patterns differ (NaN = NaN, 0 ≠ −0). */
function differing(a: Float32Array | Int32Array, b: Float32Array | Int32Array): number {
  expect(a.length).toBe(b.length);
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length), ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  let n = 0;
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) n++;
  return n;
}

/** Values as stored in dt, read back as f32. */
function stored(x: Float32Array, dt: Dt): Float32Array {
  const y = Float32Array.from(x);
  return dt === 'bf16' ? roundToBf16InPlace(y) : y;
}

// ---- (a) the forward with its residual ----

interface FwdCase { O: number; I: number; K: number; gs: number; stage: 1 | 2; out: Dt; resid: Dt }

/**
 * W, α, θ at random; group 0 has θ = 0 and α = 1, so R = W there, and its rows hold two equal maxima and three equal
 * minima; row 1 is all zeros (every element of each of its groups is both the max and the min).
 */
function fwdInputs(c: FwdCase, seed: number): Record<string, Float32Array | Int32Array> {
  const rng = new Rng(seed);
  const { O, I, K, gs } = c;
  const W = Float32Array.from({ length: O * I }, () => rng.normal() * 0.02);
  const alpha = Float32Array.from({ length: I }, (_, i) => (i < gs ? 1 : 0.5 + rng.nextFloat()));
  const theta = Float32Array.from({ length: (K * I) / 2 }, (_, k) => (k % (I / 2) < gs / 2 ? 0 : (rng.nextFloat() - 0.5) * 1.2));
  for (let o = 0; o < O; o++) {
    const b = o * I;
    W[b + 3] = W[b + gs - 2] = 0.2;
    W[b + 5] = W[b + 7] = W[b + gs - 1] = -0.2;
  }
  W.fill(0, I, 2 * I);
  const nG = (O * I) / gs;
  const scale = Float32Array.from({ length: nG }, () => 0.004 + 0.004 * rng.nextFloat());
  const zpf = Float32Array.from({ length: nG }, () => -9 + 3 * rng.nextFloat());
  return { W, alpha, pairs: randomPairs(K, I, gs, rng), theta, scale, zpf };
}

/** The max/min masks of each flat group of R as paroTransform's extremes lay them out. */
function refExtremes(R: Float32Array, gs: number): Int32Array {
  const words = Math.ceil(gs / 32);
  const nG = R.length / gs;
  const ext = new Int32Array(nG * 2 * words);
  for (let grp = 0; grp < nG; grp++) {
    const row = R.subarray(grp * gs, (grp + 1) * gs);
    let mx = -Infinity, mn = Infinity;
    for (const v of row) {
      mx = Math.max(mx, v);
      mn = Math.min(mn, v);
    }
    for (let e = 0; e < gs; e++) {
      const w = grp * 2 * words + (e >> 5);
      if (row[e] === mx) ext[w] |= 1 << (e & 31);
      if (row[e] === mn) ext[w + words] |= 1 << (e & 31);
    }
  }
  return ext;
}

/** The group sizes paroMinMaxGram takes (groupGram's). */
const GRAM_GROUP_SIZES = [32, 64, 96, 128];

const popcount = (v: number) => {
  let n = 0;
  for (let x = v >>> 0; x; x &= x - 1) n++;
  return n;
};

/**
 * What the residual outputs stand in for (stage 1): paroScaleGrad(dŴ, E, grid scale) against the quantizer backward's
 * S = Σ dQ·((q − z) − R/s) from the emulated composition (dQ = G·(dŴ ⊘ α)), and, for the group sizes it takes,
 * paroMinMaxGram(S, masks, W, α) against Σ_o c[o, i]·X[o, k] (X = W ⊙ α) with c from that S, both in float64. E in
 * bf16 carries its rounding (2⁻⁹); the Gram product its TF32 rounding of α·c and W (2⁻¹¹ each).
 */
function checkGramPieces(c: FwdCase, inputs: Record<string, Float32Array | Int32Array>, out: ReturnType<typeof runEmulation>): void {
  const { O, I, gs } = c;
  const G = I / gs, qmax = 15;
  const W = inputs.W as Float32Array, alpha = inputs.alpha as Float32Array;
  const R = out.f32('comp.R'), dQ = out.f32('comp.dQ'), scale = out.f32('comp.scale'), zpf = out.f32('comp.zpf');
  const ext = refExtremes(R, gs);
  const words = Math.ceil(gs / 32);
  const bit = (grp: number, side: number, i: number) => (ext[grp * 2 * words + side * words + (i >> 5)] >>> (i & 31)) & 1;
  const S = out.f32('out.S');
  const tol = c.resid === 'f32' ? 1e-5 : 5e-3;
  const withGram = GRAM_GROUP_SIZES.includes(gs);
  const ref = new Float64Array(gs * I), bound = new Float64Array(gs * I);
  for (let grp = 0; grp < O * G; grp++) {
    const sc = clampScale(scale[grp]);
    const z = Math.min(Math.max(-roundHalfEven(zpf[grp]), 0), qmax);
    let sum = 0, abs = 0;
    for (let e = grp * gs; e < (grp + 1) * gs; e++) {
      const q = Math.min(Math.max(roundHalfEven(Math.fround(R[e] / sc)) + z, 0), qmax);
      const t = dQ[e] * ((q - z) - R[e] / sc);
      sum += t;
      abs += Math.abs(t);
    }
    expect(Math.abs(S[grp] - sum), `S of group ${grp}`).toBeLessThanOrEqual(tol * abs + 1e-30);
    if (!withGram) continue;
    const o = Math.floor(grp / G), g = grp % G;
    let nMax = 0, nMin = 0;
    for (let i = 0; i < gs; i++) {
      nMax += bit(grp, 0, i);
      nMin += bit(grp, 1, i);
    }
    for (let i = 0; i < gs; i++) {
      const mx = bit(grp, 0, i), mn = bit(grp, 1, i);
      if (!mx && !mn) continue;
      const cv = (mx ? sum / qmax / nMax : 0) - (mn ? sum / qmax / nMin : 0);
      const ca = (mx ? abs / qmax / nMax : 0) + (mn ? abs / qmax / nMin : 0);
      for (let k = 0; k < gs; k++) {
        const x = W[o * I + g * gs + k] * alpha[g * gs + k];
        ref[k * I + g * gs + i] += cv * x;
        bound[k * I + g * gs + i] += Math.abs(ca * x);
      }
    }
  }
  if (!withGram) return;
  const gram = out.f32('out.gram');
  let bad = 0;
  for (let t = 0; t < gram.length; t++) if (!(Math.abs(gram[t] - ref[t]) <= (tol + 2e-3) * bound[t] + 1e-30)) bad++;
  expect(bad).toBe(0);
  expect(gram.some((v) => v !== 0)).toBe(true);
}

describe.skipIf(!hasGpp)('paroTransform with its residual outputs under the host emulation (needs g++)', () => {
  // A ragged last strip (O not a multiple of 32), groups of 128, 64, 48 (a part-full second word) and 16 (< 32); the
  // Gram pieces: paroMinMaxGram at g128 only (groupGram's sizes), paroScaleGrad at every stage-1 case.
  const cases: FwdCase[] = [
    { O: 70, I: 256, K: 8, gs: 128, stage: 1, out: 'bf16', resid: 'bf16' },
    { O: 40, I: 96, K: 2, gs: 48, stage: 1, out: 'f32', resid: 'f32' },
    { O: 37, I: 128, K: 4, gs: 64, stage: 2, out: 'bf16', resid: 'bf16' },
    { O: 33, I: 64, K: 3, gs: 16, stage: 1, out: 'f32', resid: 'bf16' },
  ];
  for (const c of cases) {
    it(`O${c.O} I${c.I} K${c.K} g${c.gs} stage ${c.stage}, Ŵ ${c.out}, E ${c.resid}`, () => {
      const inputs = fwdInputs(c, 40 + c.gs + c.stage);
      const drng = new Rng(5);
      inputs.dWhat = Float32Array.from({ length: c.O * c.I }, () => drng.normal());
      const out = runEmulation(['fwd', c.O, c.I, c.K, c.gs, c.stage, DT[c.out], DT[c.resid]], inputs);
      // Ŵ (and the grid) as without the residual, bit for bit; reruns identical.
      const What = out.f32('plain.What');
      expect(differing(What, out.f32('out.What'))).toBe(0);
      expect(differing(What, out.f32('out2.What'))).toBe(0);
      if (c.stage === 1) expect(differing(out.f32('plain.scale'), out.f32('out.scale'))).toBe(0);
      // E = Ŵ − W from the composition's unrounded Ŵ (whose rounding to the output dtype is the stored Ŵ).
      const W = inputs.W as Float32Array;
      const Whatf = out.f32('comp.Whatf');
      expect(differing(stored(Whatf, c.out), What)).toBe(0);
      const Eref = stored(Float32Array.from(Whatf, (v, k) => v - W[k]), c.resid);
      const E = out.f32('out.E');
      expect(differing(Eref, E)).toBe(0);
      expect(differing(E, out.f32('out2.E'))).toBe(0);
      expect(E.some((v) => v !== 0)).toBe(true);
      if (c.stage === 2) return;
      // The masks: those of the composition's R, every word written; ties set every tied bit.
      const words = Math.ceil(c.gs / 32);
      const ext = out.i32('out.ext');
      const ref = refExtremes(out.f32('comp.R'), c.gs);
      expect(differing(ref, ext)).toBe(0);
      expect(differing(ext, out.i32('out2.ext'))).toBe(0);
      const G = c.I / c.gs;
      const counts = (grp: number, side: 0 | 1) => {
        let n = 0;
        for (let w = 0; w < words; w++) n += popcount(ext[grp * 2 * words + side * words + w]);
        return n;
      };
      for (let o = 0; o < c.O; o++) {
        if (o === 1) continue;
        expect([counts(o * G, 0), counts(o * G, 1)]).toEqual([2, 3]); // group 0: R = W, the planted ties
      }
      for (let g = 0; g < G; g++) expect([counts(G + g, 0), counts(G + g, 1)]).toEqual([c.gs, c.gs]); // the zero row
      checkGramPieces(c, inputs, out);
    }, 60_000);
  }
});

// ---- (b) paroScaleGrad and paroMinMaxGram ----

const F32_1EM5 = Math.fround(1e-5);
const clampScale = (s: number) => Math.min(Math.max(s, F32_1EM5), 1e5);

interface SgradCase { nG: number; gs: number; d: Dt; e: Dt }

describe.skipIf(!hasGpp)('paroScaleGrad under the host emulation (needs g++)', () => {
  // Lanes per group 16 (g128), 8 (g64, g48: six chunks), 2 (g16), 32 (g256; g512: two chunks per lane); g20 is not a
  // multiple of 8 (scalar path only).
  const cases: SgradCase[] = [
    { nG: 300, gs: 128, d: 'bf16', e: 'bf16' },
    { nG: 75, gs: 64, d: 'f32', e: 'f32' },
    { nG: 41, gs: 48, d: 'f32', e: 'bf16' },
    { nG: 67, gs: 16, d: 'bf16', e: 'f32' },
    { nG: 9, gs: 256, d: 'bf16', e: 'bf16' },
    { nG: 5, gs: 512, d: 'f32', e: 'bf16' },
    { nG: 13, gs: 20, d: 'f32', e: 'f32' },
  ];
  for (const c of cases) {
    it(`${c.nG} groups of ${c.gs}, dŴ ${c.d}, E ${c.e}: the f64 reference, the same bits on the 16-byte and scalar paths`, () => {
      const rng = new Rng(c.gs * 7 + c.nG);
      const n = c.nG * c.gs;
      const dWhat = stored(Float32Array.from({ length: n }, () => rng.normal()), c.d);
      const E = stored(Float32Array.from({ length: n }, () => rng.normal() * 1e-3), c.e);
      // Scales inside and outside the clamp [1e-5, 1e5].
      const scale = Float32Array.from({ length: c.nG }, (_, k) => (k % 7 === 3 ? 1e-7 : k % 7 === 5 ? 3e5 : 0.002 + 0.01 * rng.nextFloat()));
      E.fill(0, 0, c.gs); // a group with no residual: S = 0
      const files = { dWhat, E, scale };
      const aligned = runEmulation(['sgrad', c.nG, c.gs, DT[c.d], DT[c.e], 0], files);
      const shifted = runEmulation(['sgrad', c.nG, c.gs, DT[c.d], DT[c.e], 1], files);
      const S = aligned.f32('out.S');
      for (let grp = 0; grp < c.nG; grp++) {
        let sum = 0, abs = 0;
        for (let e = grp * c.gs; e < (grp + 1) * c.gs; e++) {
          sum += dWhat[e] * E[e];
          abs += Math.abs(dWhat[e] * E[e]);
        }
        const sc = clampScale(scale[grp]);
        expect(Math.abs(S[grp] - sum / sc), `group ${grp}`).toBeLessThanOrEqual((4e-6 * abs) / sc + 1e-30);
      }
      expect(S[0]).toBe(0);
      expect(differing(S, aligned.f32('out2.S'))).toBe(0);
      expect(differing(S, shifted.f32('out.S'))).toBe(0);
      // Which path ran: 16-byte loads where gs % 8 = 0 and the views are aligned, element loads otherwise.
      const [, a8, a1] = /access8 (\d+) access1 (\d+)/.exec(aligned.stdout)!.map(Number);
      const [, s8] = /access8 (\d+) access1 (\d+)/.exec(shifted.stdout)!.map(Number);
      if (c.gs % 8 === 0) expect([a8 > 0, a1]).toEqual([true, 0]);
      else expect(a8).toBe(0);
      expect(s8).toBe(0);
    }, 60_000);
  }
});

interface GramCase { O: number; I: number; gs: number; bits: number; w: Dt; junk?: boolean }

/**
 * Masks per flat group: mostly one max and one min, some ties (2–3 bits per side), some constant groups (every bit on
 * both sides), some groups whose max and min share a bit; junk: bits past gs in the last word, which must be ignored.
 */
function randomMasks(rng: Rng, nG: number, gs: number, junk: boolean): Int32Array {
  const words = Math.ceil(gs / 32);
  const ext = new Int32Array(nG * 2 * words);
  const set = (grp: number, side: number, e: number) => (ext[grp * 2 * words + side * words + (e >> 5)] |= 1 << (e & 31));
  for (let grp = 0; grp < nG; grp++) {
    const kind = rng.nextInt(10);
    if (kind === 0) {
      for (let e = 0; e < gs; e++) {
        set(grp, 0, e);
        set(grp, 1, e);
      }
    } else {
      const ties = kind <= 3 ? 2 + rng.nextInt(2) : 1;
      for (let t = 0; t < ties; t++) {
        set(grp, 0, rng.nextInt(gs));
        set(grp, 1, rng.nextInt(gs));
      }
      if (kind === 4) {
        const e = rng.nextInt(gs);
        set(grp, 0, e);
        set(grp, 1, e);
      }
    }
    if (junk && gs % 32 !== 0) {
      for (const side of [0, 1]) ext[grp * 2 * words + side * words + words - 1] |= -1 << gs % 32;
    }
  }
  return ext;
}

/** cvt.rna.tf32.f32 (test/cuda-emu/gram-emu.h's tf32Bits): 10 mantissa bits kept, ties away from zero. */
function tf32(x: number): number {
  const u = new Uint32Array(new Float32Array([x]).buffer);
  if ((u[0] & 0x7f800000) !== 0x7f800000) u[0] = (u[0] + 0x1000) & 0xffffe000;
  return new Float32Array(u.buffer)[0];
}

/**
 * paroMinMaxGram as the CUDA op computes it, in float64: c formed in f32 as the spec orders it, the dense row
 * c' = f32(c·α_i), then Σ_o tf32(c')·tf32(W_k) (groupGram's tensor-core products), ·α_k/α_i; also the sum of the
 * terms' magnitudes per output (the error scale of the f32 accumulation).
 */
function refGram(S: Float32Array, ext: Int32Array, W: Float32Array, alpha: Float32Array, O: number, I: number, gs: number, qmax: number) {
  const words = Math.ceil(gs / 32);
  const G = I / gs;
  const sum = new Float64Array(gs * I), abs = new Float64Array(gs * I);
  const bit = (grp: number, side: number, i: number) => (ext[grp * 2 * words + side * words + (i >> 5)] >>> (i & 31)) & 1;
  for (let o = 0; o < O; o++) {
    for (let g = 0; g < G; g++) {
      const grp = o * G + g;
      let nMax = 0, nMin = 0;
      for (let i = 0; i < gs; i++) {
        nMax += bit(grp, 0, i);
        nMin += bit(grp, 1, i);
      }
      const gMax = Math.fround(Math.fround(S[grp] / qmax) / nMax);
      const gMin = Math.fround(Math.fround(-S[grp] / qmax) / nMin);
      for (let i = 0; i < gs; i++) {
        const mx = bit(grp, 0, i), mn = bit(grp, 1, i);
        if (!mx && !mn) continue;
        const c = tf32(Math.fround(Math.fround((mx ? gMax : 0) + (mn ? gMin : 0)) * alpha[g * gs + i]));
        for (let k = 0; k < gs; k++) {
          const t = c * tf32(W[o * I + g * gs + k]);
          sum[k * I + g * gs + i] += t;
          abs[k * I + g * gs + i] += Math.abs(t);
        }
      }
    }
  }
  const out = new Float64Array(gs * I);
  for (let t = 0; t < out.length; t++) {
    const c = t % I, k = Math.floor(t / I);
    const r = alpha[c - (c % gs) + k] / alpha[c];
    out[t] = sum[t] * r;
    abs[t] *= r;
  }
  return { out, abs };
}

describe.skipIf(!hasGpp)('paroMinMaxGram under the host emulation (needs g++)', () => {
  // Every group size it takes; O 300 and 70: several row chunks of groupGram, O 45, 70, 33: no multiple of its 32-row
  // tile; f32 W rounded to TF32 by the kernel, bf16 W exact.
  const cases: GramCase[] = [
    { O: 300, I: 256, gs: 128, bits: 4, w: 'f32' },
    { O: 70, I: 384, gs: 128, bits: 4, w: 'bf16' },
    { O: 45, I: 192, gs: 96, bits: 3, w: 'f32' },
    { O: 33, I: 128, gs: 64, bits: 2, w: 'bf16' },
    { O: 90, I: 64, gs: 32, bits: 4, w: 'f32' },
  ];
  for (const c of cases) {
    it(`O${c.O} I${c.I} g${c.gs} bits ${c.bits}, W ${c.w}`, () => {
      const rng = new Rng(c.O * 3 + c.gs);
      const nG = (c.O * c.I) / c.gs;
      const qmax = 2 ** c.bits - 1;
      const S = Float32Array.from({ length: nG }, () => rng.normal());
      const W = stored(Float32Array.from({ length: c.O * c.I }, () => rng.normal() * 0.02), c.w);
      const alpha = Float32Array.from({ length: c.I }, () => 0.5 + rng.nextFloat());
      const ext = randomMasks(rng, nG, c.gs, false);
      const out = runEmulation(['gram', c.O, c.I, c.gs, qmax, DT[c.w]], { S, ext, W, alpha });
      const got = out.f32('out.gram');
      const ref = refGram(S, ext, W, alpha, c.O, c.I, c.gs, qmax);
      // 1e-5: the f32 accumulation of the mma and the two roundings of ·α_k, /α_i; the TF32 rounding (≈ 1e-3) is in
      // the reference, so a missing or misplaced one fails.
      let bad = 0;
      for (let t = 0; t < got.length; t++) if (!(Math.abs(got[t] - ref.out[t]) <= 1e-5 * ref.abs[t] + 1e-30)) bad++;
      expect(bad).toBe(0);
      expect(got.some((v) => v !== 0)).toBe(true);
      expect(differing(got, out.f32('out2.gram'))).toBe(0);
    }, 60_000);
  }

  it('refuses a group size groupGram does not take', () => {
    const [O, I, gs] = [8, 96, 48];
    const nG = (O * I) / gs;
    const files = { S: new Float32Array(nG), ext: new Int32Array(nG * 4), W: new Float32Array(O * I), alpha: new Float32Array(I).fill(1) };
    expect(() => runEmulation(['gram', O, I, gs, 15, DT.f32], files)).toThrow(/paroMinMaxGram: groupSize must be 32, 64, 96 or 128/);
  }, 60_000);
});

describe.skipIf(!hasGpp)('paroMinMaxGram\'s dense rows under the host emulation (needs g++)', () => {
  // paroMinMaxGram runs groupGram on these rows: c'[o, g·gs + i] = α·c with c in the spec's f32 order, held bit for
  // bit against the same f32 expressions. paroMinMaxRowsK takes any gs up to 128: g48 (bits past gs in the last
  // word ignored) and g16 too.
  const cases: GramCase[] = [
    { O: 45, I: 256, gs: 128, bits: 4, w: 'f32' },
    { O: 33, I: 96, gs: 48, bits: 3, w: 'f32', junk: true },
    { O: 20, I: 64, gs: 16, bits: 2, w: 'f32' },
  ];
  for (const c of cases) {
    it(`O${c.O} I${c.I} g${c.gs} bits ${c.bits}${c.junk ? ', bits past gs set' : ''}: c' bit for bit`, () => {
      const rng = new Rng(c.O * 7 + c.gs);
      const nG = (c.O * c.I) / c.gs;
      const qmax = 2 ** c.bits - 1;
      const words = Math.ceil(c.gs / 32);
      const G = c.I / c.gs;
      const S = Float32Array.from({ length: nG }, () => rng.normal());
      const alpha = Float32Array.from({ length: c.I }, () => 0.5 + rng.nextFloat());
      const ext = randomMasks(rng, nG, c.gs, c.junk ?? false);
      const got = runEmulation(['rows', c.O, c.I, c.gs, qmax], { S, ext, alpha }).f32('out.rows');
      const bit = (grp: number, side: number, i: number) => (ext[grp * 2 * words + side * words + (i >> 5)] >>> (i & 31)) & 1;
      let bad = 0, nonZero = 0;
      for (let grp = 0; grp < nG; grp++) {
        let nMax = 0, nMin = 0;
        for (let i = 0; i < c.gs; i++) {
          nMax += bit(grp, 0, i);
          nMin += bit(grp, 1, i);
        }
        const gMax = Math.fround(Math.fround(S[grp] / qmax) / nMax);
        const gMin = Math.fround(Math.fround(-S[grp] / qmax) / nMin);
        for (let i = 0; i < c.gs; i++) {
          const v = Math.fround((bit(grp, 0, i) ? gMax : 0) + (bit(grp, 1, i) ? gMin : 0));
          const want = Math.fround(v * alpha[(grp % G) * c.gs + i]);
          if (!Object.is(got[grp * c.gs + i], want) && !(want === 0 && got[grp * c.gs + i] === 0)) bad++;
          if (want !== 0) nonZero++;
        }
      }
      expect(bad).toBe(0);
      expect(nonZero).toBeGreaterThan(nG);
    }, 60_000);
  }
});
