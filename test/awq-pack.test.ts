import { existsSync, openSync, readSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { relErr } from './numeric.js';
import { dequantizeAwq, packAwq, packAwqTransposed, unpackAwq } from '../src/io/awq.js';
import { givensApply } from '../src/engine/cpu/givens.js';
import { Rng } from '../src/numerics/rng.js';
import { FIXTURES } from './fixtures-path.js';

const ORDER = [0, 2, 4, 6, 1, 3, 5, 7];
const INV = [0, 4, 1, 5, 2, 6, 3, 7];

/** Spec §7.2 by arithmetic instead of bit operations: Σ e[ORDER[k]]·16^k, then two's-complement wrap. */
function refWord(e: ArrayLike<number>): number {
  let v = 0;
  for (let k = 0; k < 8; k++) v += e[ORDER[k]] * 16 ** k;
  return v >= 2 ** 31 ? v - 2 ** 32 : v;
}
function refNibble(word: number, m: number): number {
  const u = word < 0 ? word + 2 ** 32 : word;
  return Math.floor(u / 16 ** INV[m]) % 16;
}

describe('AWQ packing (spec §7.2, §11.7)', () => {
  it('packs [0..7] to 0x75316420 and e7 ≥ 8 to a negative word', () => {
    expect(packAwq(Uint8Array.from([0, 1, 2, 3, 4, 5, 6, 7]), 1, 8)[0]).toBe(0x75316420);
    const neg = packAwq(Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 8]), 1, 8)[0];
    expect(neg).toBe(-2147483648);
    const all = packAwq(Uint8Array.from([15, 15, 15, 15, 15, 15, 15, 15]), 1, 8)[0];
    expect(all).toBe(-1);
  });

  it('round-trips random codes with all 16 values and matches the arithmetic reference', () => {
    const rng = new Rng(1);
    const rows = 37;
    const cols = 64;
    const q = Uint8Array.from({ length: rows * cols }, () => rng.nextInt(16));
    expect(new Set(q).size).toBe(16);
    const words = packAwq(q, rows, cols);
    expect(words.length).toBe((rows * cols) / 8);
    let negatives = 0;
    for (let w = 0; w < words.length; w++) {
      expect(words[w]).toBe(refWord(q.subarray(w * 8, w * 8 + 8)));
      for (let m = 0; m < 8; m++) expect(refNibble(words[w], m)).toBe(q[w * 8 + m]);
      if (words[w] < 0) {
        negatives++;
        expect(q[w * 8 + 7]).toBeGreaterThanOrEqual(8);
      } else {
        expect(q[w * 8 + 7]).toBeLessThan(8);
      }
    }
    expect(negatives).toBeGreaterThan(0);
    expect(Array.from(unpackAwq(words, rows, cols))).toEqual(Array.from(q));
  });

  it('packAwqTransposed packs qᵀ: [O, I] codes → [I, O/8] words', () => {
    const rng = new Rng(2);
    const o = 16;
    const i = 24;
    const q = Uint8Array.from({ length: o * i }, () => rng.nextInt(16));
    const words = packAwqTransposed(q, o, i);
    expect(words.length).toBe((i * o) / 8);
    for (let ii = 0; ii < i; ii++) {
      for (let oo = 0; oo < o; oo++) expect(refNibble(words[ii * (o / 8) + (oo >> 3)], oo & 7)).toBe(q[oo * i + ii]);
    }
  });

  it('rejects shapes that are not multiples of 8 and codes above 15', () => {
    expect(() => packAwq(new Uint8Array(12), 1, 12)).toThrow(RangeError);
    expect(() => packAwq(Uint8Array.from([16, 0, 0, 0, 0, 0, 0, 0]), 1, 8)).toThrow(RangeError);
    expect(() => unpackAwq(new Int32Array(3), 2, 8)).toThrow(RangeError);
  });

  it('dequantizeAwq gives W_rot[o, i] = (q[i, o] − z[g(i), o])·scales[g(i), o] ([O, I] row-major)', () => {
    const rng = new Rng(3);
    const inF = 256;
    const outF = 24;
    const gs = 128;
    const groups = inF / gs;
    const qT = Uint8Array.from({ length: inF * outF }, () => rng.nextInt(16)); // [I, O]
    const zT = Uint8Array.from({ length: groups * outF }, () => rng.nextInt(16)); // [G, O]
    const scales = Float32Array.from({ length: groups * outF }, () => Math.fround(0.001 + rng.nextDouble() * 0.01));
    const qweight = packAwq(qT, inF, outF);
    const qzeros = packAwq(zT, groups, outF);
    expect(qweight.length).toBe(inF * (outF / 8));
    expect(qzeros.length).toBe(groups * (outF / 8));
    const w = dequantizeAwq(qweight, qzeros, scales, inF, outF, gs);
    expect(w.length).toBe(outF * inF);
    for (let o = 0; o < outF; o++) {
      for (let i = 0; i < inF; i++) {
        const g = Math.floor(i / gs);
        const q = refNibble(qweight[i * (outF / 8) + Math.floor(o / 8)], o % 8);
        const z = refNibble(qzeros[g * (outF / 8) + Math.floor(o / 8)], o % 8);
        expect(w[o * inF + i]).toBe(Math.fround((q - z) * scales[g * outF + o]));
      }
    }
  });
});

// ---- the official checkpoint: our unpacking + dequantization + inverse rotation must reconstruct the original ----

const OFFICIAL = join(FIXTURES, 'official/tiny-qwen3-paroquant/model.safetensors');
const ORIGINAL = join(FIXTURES, 'tiny-qwen3/model.safetensors');
const haveFixtures = existsSync(OFFICIAL) && existsSync(ORIGINAL);
if (!haveFixtures) console.log(`awq-pack.test: skipping checkpoint tests, ${OFFICIAL} or ${ORIGINAL} is absent`);

interface TensorInfo { dtype: string; shape: number[]; data_offsets: [number, number] }

/** Minimal safetensors access: 8-byte little-endian header length, JSON header, raw little-endian data. */
function openSafetensors(path: string): (name: string) => { info: TensorInfo; bytes: Buffer } {
  const fd = openSync(path, 'r');
  const lenBuf = Buffer.alloc(8);
  readSync(fd, lenBuf, 0, 8, 0);
  const headerLen = Number(lenBuf.readBigUInt64LE(0));
  const header = Buffer.alloc(headerLen);
  readSync(fd, header, 0, headerLen, 8);
  const meta = JSON.parse(header.toString('utf8')) as Record<string, TensorInfo>;
  const bytes = (name: string): { info: TensorInfo; bytes: Buffer } => {
    const info = meta[name];
    if (!info) throw new Error(`${name} not in ${path}`);
    const [a, b] = info.data_offsets;
    const buf = Buffer.alloc(b - a);
    readSync(fd, buf, 0, b - a, 8 + headerLen + a);
    return { info, bytes: buf };
  };
  process.on('exit', () => closeSync(fd));
  return bytes;
}

function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

function toFloat(t: { info: TensorInfo; bytes: Buffer }): Float32Array {
  const n = t.bytes.length / 2;
  const bits = new Uint32Array(n);
  const out = new Float32Array(bits.buffer);
  for (let e = 0; e < n; e++) {
    const u = t.bytes.readUInt16LE(2 * e);
    if (t.info.dtype === 'BF16') bits[e] = u << 16; // bf16 is the top half of an f32
    else out[e] = f16ToF32(u);
  }
  return out;
}


describe.skipIf(!haveFixtures)('official tiny-qwen3-paroquant checkpoint', () => {
  const linears = ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.down_proj'];

  it('codes and zeros unpack in range; pairs cover each group once per layer; unpacking, dequantization and the inverse rotation reconstruct the FP weights', () => {
    const q = openSafetensors(OFFICIAL);
    const fp = openSafetensors(ORIGINAL);
    for (const lin of linears) {
      const p = `model.layers.1.${lin}`;
      const qw = q(`${p}.qweight`);
      const [inF, words] = qw.info.shape;
      const outF = words * 8;
      const gs = 128;
      const qweight = new Int32Array(qw.bytes.buffer.slice(qw.bytes.byteOffset, qw.bytes.byteOffset + qw.bytes.length));
      const qzb = q(`${p}.qzeros`).bytes;
      const qzeros = new Int32Array(qzb.buffer.slice(qzb.byteOffset, qzb.byteOffset + qzb.length));
      expect(q(`${p}.qzeros`).info.shape).toEqual([inF / gs, outF / 8]);
      expect(q(`${p}.scales`).info.shape).toEqual([inF / gs, outF]);
      const zeros = unpackAwq(qzeros, inF / gs, outF);
      expect(zeros.every((z) => z <= 15)).toBe(true);
      const codes = unpackAwq(qweight, inF, outF);
      expect(new Set(codes).size).toBe(16); // the full 4-bit range is in use
      expect(Array.from(packAwq(codes, inF, outF))).toEqual(Array.from(qweight)); // bit-exact repack
      const scales = toFloat(q(`${p}.scales`));
      const theta = toFloat(q(`${p}.theta`));
      const pb = q(`${p}.pairs`).bytes;
      const pairs = Int32Array.from(new Int16Array(pb.buffer.slice(pb.byteOffset, pb.byteOffset + pb.length)));
      const channelScales = toFloat(q(`${p}.channel_scales`));
      const k = 8;
      for (let r = 0; r < k; r++) {
        for (let g = 0; g < inF / gs; g++) {
          const seen = new Set(pairs.subarray(r * inF + g * gs, r * inF + (g + 1) * gs));
          expect(seen.size).toBe(gs);
          expect(Math.max(...seen)).toBe(gs - 1);
        }
      }
      // W ≈ F⁻¹(W_rot) ⊙ channel_scales: the inverse layers (K−1..0, −θ), then × (1/α) per input channel.
      const wRot = dequantizeAwq(qweight, qzeros, scales, inF, outF, gs);
      const back = givensApply(wRot, outF, inF, pairs, theta, k, gs, 'inverse');
      for (let e = 0; e < back.length; e++) back[e] *= channelScales[e % inF];
      const orig = toFloat(fp(`${p}.weight`));
      const err = relErr(back, orig);
      // Wrong conventions for comparison: sequential nibbles, forward instead of inverse rotation, α instead of 1/α.
      const seqCodes = new Uint8Array(codes.length);
      for (let e = 0; e < codes.length; e++) seqCodes[e] = (qweight[e >> 3] >>> (4 * (e & 7))) & 15;
      const wSeq = dequantizeAwq(packAwq(seqCodes, inF, outF), qzeros, scales, inF, outF, gs);
      const seq = givensApply(wSeq, outF, inF, pairs, theta, k, gs, 'inverse').map((v, e) => v * channelScales[e % inF]);
      const fwd = givensApply(wRot, outF, inF, pairs, theta, k, gs, 'forward').map((v, e) => v * channelScales[e % inF]);
      const invAlpha = givensApply(wRot, outF, inF, pairs, theta, k, gs, 'inverse').map((v, e) => v / channelScales[e % inF]);
      console.log(`${lin}: rel err ${err.toFixed(4)}; sequential nibbles ${relErr(seq, orig).toFixed(3)}, forward rotation ${relErr(fwd, orig).toFixed(3)}, ×α ${relErr(invAlpha, orig).toFixed(3)}`);
      expect(err).toBeLessThan(0.15);
      expect(relErr(seq, orig)).toBeGreaterThan(3 * err);
      expect(relErr(fwd, orig)).toBeGreaterThan(3 * err);
      expect(relErr(invAlpha, orig)).toBeGreaterThan(1.5 * err);
    }
  });
});
