// native/src/k_gram.cu (Backend.groupGram on CUDA: TF32 mma.sync m16n8k8 tiles, per-chunk partial sums, a reduce
// kernel applying α) compiled with g++ against the host emulation (test/cuda-emu/common.cuh + gram-emu.h: a fiber per
// CUDA thread, the mma and cvt.rna.tf32 emulated with the PTX fragment layout) and run through its host entry
// (test/cuda-emu/gram-main.cc) on random inputs, against a float64 reference written here: out[k][g·gs + i] =
// f32(Σ_o a[o, g·gs + i]·b[o, g·gs + k]), ·α[g·gs + k], /α[g·gs + i]. Shapes with O not a multiple of the 32-row
// tile, several groups, one and several row chunks (the chunking forced small), the 16-byte and the scalar load
// paths (misaligned operands), bf16/f16/f32 inputs, alpha given and omitted; each run twice (bit-identical). Checks
// the fragment layouts, tiling, chunking and scaling, not the device's arithmetic or speed.
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../src/numerics/half.js';
import { Rng } from '../src/numerics/rng.js';
import { scratchDir } from './scratch.js';
import { buildEmulation, hasGpp } from './cuda-emu-build.js';
import { groupGramEmulationSource } from './gram-emu-source.js';

if (!hasGpp) console.log('group-gram-emu.test: g++ not found, the k_gram.cu emulation tests are skipped');

function buildGramEmulation(): string {
  return buildEmulation({
    name: 'gram-emu', generated: { 'k_gram_emu.cc': groupGramEmulationSource() }, sources: ['k_gram_emu.cc', 'gram-main.cc'],
    includes: ['common.cuh', 'gram-emu.h'], asCxx: true, noContract: true,
  });
}

type Dt = 'f32' | 'bf16' | 'f16';
const DT_CODE: Record<Dt, number> = { f32: 0, bf16: 1, f16: 2 };

/** Random values in [-1, 1) stored as dt: the raw bytes for the kernel and the stored values for the reference. */
function operand(rng: Rng, n: number, dt: Dt): { bytes: Uint8Array; values: Float32Array } {
  const x = new Float32Array(n);
  for (let e = 0; e < n; e++) x[e] = 2 * rng.nextFloat() - 1;
  if (dt === 'f32') return { bytes: new Uint8Array(x.buffer), values: x };
  const bits = dt === 'bf16' ? f32ToBf16(x) : f32ToF16(x);
  return { bytes: new Uint8Array(bits.buffer), values: dt === 'bf16' ? bf16ToF32(bits) : f16ToF32(bits) };
}

interface GramCase {
  label: string;
  O: number;
  I: number;
  gs: number;
  adt: Dt;
  bdt: Dt;
  alpha: boolean;
  /** Rows per partial sum (0: the kernel's choice). */
  rows: number;
  /** Elements by which a and b are misaligned (> 0: the scalar-load kernel). */
  shift: number;
  /** Row chunks the run must use. */
  chunks: number;
}

const CASES: GramCase[] = [
  { label: 'gs 32, O 77 (3 tiles, the last part-filled; the chunking\'s own choice: a chunk per tile), 3 groups, bf16 × f32, alpha', O: 77, I: 96, gs: 32, adt: 'bf16', bdt: 'f32', alpha: true, rows: 0, shift: 0, chunks: 3 },
  { label: 'gs 64, O 300 in 5 chunks of 64 rows, 2 groups, bf16 × bf16, no alpha', O: 300, I: 128, gs: 64, adt: 'bf16', bdt: 'bf16', alpha: false, rows: 64, shift: 0, chunks: 5 },
  { label: 'gs 128, O 300 (10 tiles in one chunk: the prefetch), 3 groups, f32 × f32, alpha', O: 300, I: 384, gs: 128, adt: 'f32', bdt: 'f32', alpha: true, rows: 320, shift: 0, chunks: 1 },
  { label: 'gs 128, O 77 in 3 chunks of 32, 2 groups, bf16 × bf16 misaligned (scalar loads), alpha', O: 77, I: 256, gs: 128, adt: 'bf16', bdt: 'bf16', alpha: true, rows: 32, shift: 1, chunks: 3 },
  { label: 'gs 96, O 45 (own chunking: 2), 2 groups, f16 × bf16, no alpha', O: 45, I: 192, gs: 96, adt: 'f16', bdt: 'bf16', alpha: false, rows: 0, shift: 0, chunks: 2 },
  { label: 'gs 32, O 300 in 4 chunks of 96, 2 groups, f32 × bf16 misaligned, alpha', O: 300, I: 64, gs: 32, adt: 'f32', bdt: 'bf16', alpha: true, rows: 96, shift: 3, chunks: 4 },
];

interface EmuResult {
  out1: Float32Array;
  out2: Float32Array;
  rows: number;
  chunks: number;
  vec: boolean;
}

function runEmu(c: GramCase, a: Uint8Array, b: Uint8Array, alpha: Float32Array | null): EmuResult {
  const bin = buildGramEmulation();
  const dir = scratchDir('gram-emu-run-');
  writeFileSync(path.join(dir, 'a.bin'), a);
  writeFileSync(path.join(dir, 'b.bin'), b);
  if (alpha) writeFileSync(path.join(dir, 'alpha.bin'), new Uint8Array(alpha.buffer));
  const args = [dir, c.O, c.I, c.gs, DT_CODE[c.adt], DT_CODE[c.bdt], alpha ? 1 : 0, c.rows, c.shift].map(String);
  // A time limit: a lane that left its warp's barriers would wait for ever.
  const r = spawnSync(bin, args, { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`emulation failed (${r.status ?? r.signal}): ${r.stderr}`);
  const m = /^rowsPerChunk (\d+) chunks (\d+) vec ([01])$/m.exec(r.stdout);
  if (!m) throw new Error(`unexpected output: ${r.stdout}`);
  const read = (name: string) => {
    const buf = readFileSync(path.join(dir, name));
    return new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length));
  };
  return { out1: read('out1.bin'), out2: read('out2.bin'), rows: Number(m[1]), chunks: Number(m[2]), vec: m[3] === '1' };
}

describe.skipIf(!hasGpp)('k_gram.cu (groupGram) under a host emulation vs a float64 reference (needs g++)', () => {
  beforeAll(() => {
    buildGramEmulation();
  }, 300_000);

  for (const [n, c] of CASES.entries()) {
    it(c.label, () => {
      const rng = new Rng(9100 + n);
      const A = operand(rng, c.O * c.I, c.adt);
      const B = operand(rng, c.O * c.I, c.bdt);
      let alpha: Float32Array | null = null;
      if (c.alpha) {
        alpha = new Float32Array(c.I);
        for (let e = 0; e < c.I; e++) alpha[e] = 0.5 + 1.5 * rng.nextFloat();
      }
      const res = runEmu(c, A.bytes, B.bytes, alpha);
      expect(res.chunks).toBe(c.chunks);
      expect(res.vec).toBe(c.shift === 0);
      // Reruns are bit-identical (fixed summation order, no atomics).
      expect(Buffer.from(res.out2.buffer).equals(Buffer.from(res.out1.buffer))).toBe(true);
      // 16-bit inputs are exact in TF32 (exact products, f32 accumulation); f32 inputs are rounded to 10 mantissa bits.
      const tol = c.adt === 'f32' || c.bdt === 'f32' ? 1e-3 : 1e-5;
      const { gs, I, O } = c;
      let worst = 0;
      let errSq = 0;
      let refSq = 0;
      for (let col = 0; col < I; col++) {
        const g0 = col - (col % gs);
        for (let k = 0; k < gs; k++) {
          let s = 0;
          let mag = 0;
          for (let o = 0; o < O; o++) {
            const p = A.values[o * I + col] * B.values[o * I + g0 + k];
            s += p;
            mag += Math.abs(p);
          }
          let ref = Math.fround(s);
          let scale = 1;
          if (alpha) {
            ref = Math.fround(Math.fround(ref * alpha[g0 + k]) / alpha[col]);
            scale = alpha[g0 + k] / alpha[col];
          }
          const got = res.out1[k * I + col];
          expect(Number.isFinite(got), `out[${k}][${col}]`).toBe(true);
          const err = Math.abs(got - ref);
          worst = Math.max(worst, err / (mag * scale));
          errSq += err * err;
          refSq += ref * ref;
        }
      }
      // Per element against Σ|a·b| (sums of random signs come near zero), and over the whole output.
      expect(worst).toBeLessThan(tol);
      expect(Math.sqrt(errSq / refSq)).toBeLessThan(tol);
    }, 180_000);
  }

  it('O = 0 gives zeros; a group size other than 32, 64, 96, 128 is refused', () => {
    const z = runEmu({ label: '', O: 0, I: 64, gs: 32, adt: 'bf16', bdt: 'bf16', alpha: false, rows: 0, shift: 0, chunks: 0 },
      new Uint8Array(0), new Uint8Array(0), null);
    expect(Array.from(z.out1)).toEqual(new Array(32 * 64).fill(0));
    const bin = buildGramEmulation();
    const dir = scratchDir('gram-emu-bad-');
    writeFileSync(path.join(dir, 'a.bin'), new Uint8Array(2 * 48 * 96));
    writeFileSync(path.join(dir, 'b.bin'), new Uint8Array(2 * 48 * 96));
    const r = spawnSync(bin, [dir, '2', '96', '48', '1', '1', '0', '0', '0'], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('groupGram: groupSize must be 32, 64, 96 or 128');
  }, 120_000);
});
