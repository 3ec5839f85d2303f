// RoPE and AdamW (native/src/k_elementwise.cu), RMSNorm forward/backward and SmoothL1 (native/src/k_reduce.cu) run on
// the cpu under the host emulation of test/cuda-emu (g++, one fiber per CUDA thread, emulated shuffles), through
// their host entries, against references written here: float64 formulas (RoPE, RMSNorm, the SmoothL1 loss) or f32
// arithmetic step by step with Math.fround (AdamW, the SmoothL1 gradient; g++ builds with -ffp-contract=off, so these
// agree bit for bit). The point is the indexing: the 8-wide and scalar kernels (which path ran is counted by the
// emulation's accesses), RMSNorm's 8, 16 or 32 lanes per row with part-filled warps, the grid-stride loops (the
// emulated device has one SM, so gridFor caps grids at 16 blocks), in-place RoPE; every operand lies between guard
// bytes and starts as NaN, so out-of-bounds writes and unwritten elements fail. Not checked: the device's own
// arithmetic (sincosf, FMA contraction; scripts/gpu-check compares the CUDA backend with the cpu one on a GPU).
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { bf16BitsToNumber, numberToBf16Bits, roundToBf16InPlace } from '../src/numerics/half.js';
import { Rng } from '../src/numerics/rng.js';
import { scratchDir } from './scratch.js';
import { buildEmulation, emulatedLaunches, hasGpp, kernelSource } from './cuda-emu-build.js';

const F = Math.fround;

type Dt = 'f32' | 'bf16';
const code = (dt: Dt) => (dt === 'bf16' ? 1 : 0);

function buildElementwiseEmulation(): string {
  const generated: Record<string, string> = {};
  for (const name of ['k_elementwise', 'k_reduce']) generated[`${name}_emu.cc`] = emulatedLaunches(kernelSource(`${name}.cu`), `${name}.cu`);
  return buildEmulation({
    name: 'elementwise-emu', generated, sources: ['elementwise-main.cc', 'emu-k_elementwise.cc', 'emu-k_reduce.cc'], noContract: true,
  });
}

interface Launch {
  w8: number;
  w1: number;
  grid: number;
}
interface EmuRun {
  dir: string;
  launches: Record<string, Launch>;
  sum?: number;
}

/** Writes the inputs, runs one op of elementwise-main.cc, parses its report lines. */
function runEmu(op: string, inputs: Record<string, Float32Array | Int32Array>, args: (string | number)[]): EmuRun {
  const bin = buildElementwiseEmulation();
  const dir = scratchDir(`elementwise-emu-${op}-`);
  for (const [name, a] of Object.entries(inputs)) writeFileSync(path.join(dir, name), new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  // A time limit: a lane that left a warp early would leave the emulated barriers waiting for ever.
  const r = spawnSync(bin, [op, dir, ...args.map(String)], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`emulation ${op} failed (${r.status ?? r.signal}): ${r.stderr}`);
  const launches: Record<string, Launch> = {};
  for (const m of r.stdout.matchAll(/^(\w+) w8 (\d+) w1 (\d+) grid (\d+)$/gm)) {
    launches[m[1]] = { w8: Number(m[2]), w1: Number(m[3]), grid: Number(m[4]) };
  }
  const sum = /^sum (\S+)$/m.exec(r.stdout);
  return { dir, launches, sum: sum ? Number(sum[1]) : undefined };
}

function readF32(dir: string, name: string): Float32Array {
  const b = readFileSync(path.join(dir, name));
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length));
}

/** Values of dtype dt: f32 rounding, then bf16 rounding for bf16 storage. */
function stored(a: Float32Array, dt: Dt): Float32Array {
  return dt === 'bf16' ? roundToBf16InPlace(a) : a;
}
const toDt = (x: number, dt: Dt) => (dt === 'bf16' ? bf16BitsToNumber(numberToBf16Bits(x)) : F(x));

/** One unit in the last place of bf16 at |v| (8 significant bits). */
function bf16Ulp(v: number): number {
  const a = Math.abs(v);
  return a < 2 ** -126 ? 2 ** -133 : 2 ** (Math.floor(Math.log2(a)) - 7);
}

function randn(rng: Rng, n: number, scale = 1): Float32Array {
  return Float32Array.from({ length: n }, () => rng.normal() * scale);
}

/** Index and values of the first element outside its bound (tol[i] ≥ |got − ref|), or undefined; NaN fails. */
function firstBad(got: Float32Array, ref: Float64Array, tol: Float64Array): string | undefined {
  if (got.length !== ref.length) return `length ${got.length} ≠ ${ref.length}`;
  for (let i = 0; i < ref.length; i++) {
    if (!(Math.abs(got[i] - ref[i]) <= tol[i])) return `[${i}] got ${got[i]} want ${ref[i]} (tolerance ${tol[i]})`;
  }
  return undefined;
}

describe.skipIf(!hasGpp)('RoPE, RMSNorm, SmoothL1, AdamW kernels under a host emulation (needs g++)', () => {
  // ---- RoPE ----
  interface RopeCase {
    rows: number;
    headDim: number;
    heads: number;
    dt: Dt;
    inverse: boolean;
    inPlace: boolean;
    /** Operands misaligned by this many elements (the scalar kernel for a head_dim the 8-wide one takes). */
    shift: number;
    w: 1 | 8;
  }
  // 700 rows of 8 runs (W = 8) or 500 of 10 (W = 1): more items than the 16 blocks of 256 threads, so threads loop.
  const ropeCases: RopeCase[] = [
    { rows: 700, headDim: 128, heads: 3, dt: 'f32', inverse: false, inPlace: false, shift: 0, w: 8 },
    { rows: 150, headDim: 128, heads: 4, dt: 'bf16', inverse: true, inPlace: true, shift: 0, w: 8 },
    { rows: 61, headDim: 16, heads: 5, dt: 'bf16', inverse: false, inPlace: false, shift: 0, w: 8 },
    { rows: 500, headDim: 20, heads: 5, dt: 'f32', inverse: true, inPlace: true, shift: 0, w: 1 },
    { rows: 77, headDim: 20, heads: 3, dt: 'bf16', inverse: false, inPlace: false, shift: 0, w: 1 },
    { rows: 45, headDim: 128, heads: 2, dt: 'f32', inverse: false, inPlace: false, shift: 1, w: 1 },
  ];
  for (const [k, c] of ropeCases.entries()) {
    const name = `rope head_dim ${c.headDim} ×${c.heads} heads, ${c.rows} rows, ${c.dt}, ${c.inverse ? 'inverse' : 'forward'}, ` +
      `${c.inPlace ? 'in place' : 'out of place'}${c.shift ? ', misaligned' : ''} (W = ${c.w})`;
    it(name, () => {
      const rng = new Rng(7100 + k);
      const width = c.heads * c.headDim;
      const half = c.headDim / 2;
      const x = stored(randn(rng, c.rows * width), c.dt);
      const pos = Int32Array.from({ length: c.rows }, () => rng.nextInt(40001));
      pos[0] = 40000;
      // Qwen3's frequencies (θ = 1e6), as f32.
      const invFreq = Float32Array.from({ length: half }, (_, m) => 1e6 ** (-(2 * m) / c.headDim));
      const run = runEmu('rope', { x, pos, invFreq },
        [code(c.dt), c.rows, width, c.headDim, c.inverse ? 1 : 0, c.inPlace ? 1 : 0, c.shift, 1]);
      // Two loads and two stores of W elements per (row, run of W frequencies, head).
      const accesses = c.rows * c.heads * half * 4;
      expect(run.launches.rope).toEqual({ w8: c.w === 8 ? accesses / 8 : 0, w1: c.w === 1 ? accesses : 0,
        grid: Math.min(16, Math.ceil((c.rows * half) / c.w / 256)) });
      const y = readF32(run.dir, 'y');
      const ref = new Float64Array(x.length);
      const tol = new Float64Array(x.length);
      for (let r = 0; r < c.rows; r++) {
        for (let m = 0; m < half; m++) {
          const phi = F(pos[r] * invFreq[m]);
          const co = Math.cos(phi);
          const si = c.inverse ? -Math.sin(phi) : Math.sin(phi);
          for (let h = 0; h < c.heads; h++) {
            const i = r * width + h * c.headDim + m;
            const a = x[i], b = x[i + half];
            ref[i] = a * co - b * si;
            ref[i + half] = b * co + a * si;
            // f32 arithmetic (sincosf, products, sum) loses ~1e-7 of |a| + |b|; bf16 storage one ulp on top.
            const e = 1e-6 * (Math.abs(a) + Math.abs(b));
            tol[i] = e + (c.dt === 'bf16' ? bf16Ulp(ref[i]) : 0);
            tol[i + half] = e + (c.dt === 'bf16' ? bf16Ulp(ref[i + half]) : 0);
          }
        }
      }
      expect(firstBad(y, ref, tol)).toBeUndefined();
    }, 120_000);
  }

  // ---- RMSNorm forward and backward (dw null) ----
  interface RmsCase {
    rows: number;
    C: number;
    dt: Dt;
    shift: number;
    w: 1 | 8;
    lanes: 8 | 16 | 32;
  }
  // Rows counts leave the last warp (and block) part-filled; C = 40 and 96 leave lanes of each row idle.
  const rmsCases: RmsCase[] = [
    { rows: 1001, C: 64, dt: 'f32', shift: 0, w: 8, lanes: 8 },
    { rows: 9, C: 40, dt: 'bf16', shift: 0, w: 8, lanes: 8 },
    { rows: 333, C: 128, dt: 'bf16', shift: 0, w: 8, lanes: 16 },
    { rows: 9, C: 96, dt: 'f32', shift: 0, w: 8, lanes: 16 },
    { rows: 37, C: 256, dt: 'f32', shift: 0, w: 8, lanes: 32 },
    { rows: 9, C: 4096, dt: 'bf16', shift: 0, w: 8, lanes: 32 },
    { rows: 5, C: 4096, dt: 'f32', shift: 0, w: 8, lanes: 32 },
    { rows: 13, C: 100, dt: 'f32', shift: 0, w: 1, lanes: 32 },
    { rows: 9, C: 128, dt: 'bf16', shift: 1, w: 1, lanes: 32 },
  ];
  for (const [k, c] of rmsCases.entries()) {
    it(`rmsnorm C ${c.C}, ${c.rows} rows, ${c.dt}${c.shift ? ', misaligned' : ''} (W = ${c.w}, ${c.lanes} lanes a row)`, () => {
      const rng = new Rng(7200 + k);
      const { rows, C } = c;
      const x = stored(randn(rng, rows * C), c.dt);
      // Rows of different scales, so that a row mixed up with another shows in rstd.
      for (let r = 0; r < rows; r++) for (let j = 0; j < C; j++) x[r * C + j] *= 0.25 + (r % 7);
      stored(x, c.dt);
      const w = stored(Float32Array.from({ length: C }, () => 0.5 + rng.nextFloat()), c.dt);
      const dy = stored(randn(rng, rows * C), c.dt);
      const eps = 1e-6;
      const run = runEmu('rmsnorm', { x, w, dy }, [code(c.dt), rows, C, eps, c.shift]);
      const steps = (rows * C) / c.w;
      const grid = Math.ceil(rows / (8 * (32 / c.lanes)));
      // Forward: x, then x, w and y per step; backward: dy, w, x twice and dx.
      expect(run.launches.rmsnorm).toEqual({ w8: c.w === 8 ? steps * 4 : 0, w1: c.w === 1 ? steps * 4 : 0, grid });
      expect(run.launches.rmsnormBwd).toEqual({ w8: c.w === 8 ? steps * 7 : 0, w1: c.w === 1 ? steps * 7 : 0, grid });
      const y = readF32(run.dir, 'y');
      const rstd = readF32(run.dir, 'rstd');
      const dx = readF32(run.dir, 'dx');
      const refRstd = new Float64Array(rows);
      const refY = new Float64Array(rows * C), tolY = new Float64Array(rows * C);
      const refDx = new Float64Array(rows * C), tolDx = new Float64Array(rows * C);
      const ulp = (v: number) => (c.dt === 'bf16' ? bf16Ulp(v) : 0);
      for (let r = 0; r < rows; r++) {
        const o = r * C;
        let ss = 0;
        for (let j = 0; j < C; j++) ss += x[o + j] ** 2;
        const rs = 1 / Math.sqrt(ss / C + F(eps));
        refRstd[r] = rs;
        let dot = 0, dotAbs = 0;
        for (let j = 0; j < C; j++) {
          const t = dy[o + j] * w[j] * x[o + j] * rs;
          dot += t;
          dotAbs += Math.abs(t);
        }
        const m = dot / C;
        for (let j = 0; j < C; j++) {
          const i = o + j;
          refY[i] = w[j] * x[i] * rs;
          tolY[i] = 2e-5 * Math.abs(refY[i]) + ulp(refY[i]);
          refDx[i] = rs * (dy[i] * w[j] - x[i] * rs * m);
          // f32 sums lose ~1e-7·√C of Σ|terms|: m's error scaled by x·rstd², products and rstd's own error.
          const scale = rs * (Math.abs(dy[i] * w[j]) + Math.abs(x[i]) * rs * (Math.abs(m) + dotAbs / C));
          tolDx[i] = 3e-5 * scale + ulp(refDx[i]);
        }
      }
      expect(firstBad(rstd, refRstd, refRstd.map((v) => 2e-5 * v))).toBeUndefined();
      expect(firstBad(y, refY, tolY)).toBeUndefined();
      expect(firstBad(dx, refDx, tolDx)).toBeUndefined();
    }, 120_000);
  }

  // ---- SmoothL1 (β = 1): loss = Σ ℓ(pred − target)/n, dpred = ℓ'(d)/n ----
  interface L1Case {
    n: number;
    dt: Dt;
    grad: boolean;
    shift: number;
    w: 1 | 8;
  }
  const l1Cases: L1Case[] = [
    { n: 20000, dt: 'f32', grad: true, shift: 0, w: 8 },
    { n: 20003, dt: 'bf16', grad: true, shift: 0, w: 1 },
    { n: 8000, dt: 'bf16', grad: false, shift: 0, w: 8 },
    { n: 9, dt: 'f32', grad: true, shift: 0, w: 1 },
    { n: 4104, dt: 'f32', grad: true, shift: 1, w: 1 },
  ];
  for (const [k, c] of l1Cases.entries()) {
    it(`smoothL1 n ${c.n}, ${c.dt}, ${c.grad ? 'with' : 'without'} dpred${c.shift ? ', misaligned' : ''} (W = ${c.w})`, () => {
      const rng = new Rng(7300 + k);
      const { n } = c;
      // |d| on both sides of β = 1, some exactly ±1 (the linear branch).
      const pred = stored(randn(rng, n, 1.5), c.dt);
      const target = stored(randn(rng, n, 0.5), c.dt);
      for (let i = 0; i < n; i += 97) {
        pred[i] = 0.75;
        target[i] = i % 2 ? -0.25 : 1.75;
      }
      const run = runEmu('smoothl1', { pred, target }, [code(c.dt), n, c.grad ? 1 : 0, c.shift]);
      const accesses = (n / c.w) * (c.grad ? 3 : 2);
      expect(run.launches.smoothL1).toEqual({ w8: c.w === 8 ? accesses : 0, w1: c.w === 1 ? accesses : 0,
        grid: Math.min(1024, Math.ceil(n / 2048)) });
      const invN = F(1 / n);
      let sum = 0;
      const refG = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        const d = F(pred[i] - target[i]);
        const ad = Math.abs(d);
        sum += ad < 1 ? 0.5 * d * d : ad - 0.5;
        refG[i] = toDt(F((ad < 1 ? d : Math.sign(d)) * invN), c.dt);
      }
      expect(run.sum).toBeDefined();
      expect(Math.abs((run.sum ?? NaN) / n - sum / n)).toBeLessThanOrEqual(1e-12 * (sum / n));
      if (c.grad) expect(firstBad(readF32(run.dir, 'dpred'), refG, new Float64Array(n))).toBeUndefined();
    }, 120_000);
  }

  // ---- AdamW (PyTorch: decoupled decay first) ----
  interface AdamCase {
    n: number;
    pdt: Dt;
    gdt: Dt;
    mdt: Dt;
    shift: number;
    w: 1 | 8;
  }
  // 40000 and 40001 elements: 5000 8-runs or 40001 items over 16 blocks of 256 threads (grid-stride loops).
  const adamCases: AdamCase[] = [
    { n: 40000, pdt: 'f32', gdt: 'f32', mdt: 'f32', shift: 0, w: 8 },
    { n: 40001, pdt: 'f32', gdt: 'f32', mdt: 'f32', shift: 0, w: 1 },
    { n: 2056, pdt: 'bf16', gdt: 'bf16', mdt: 'f32', shift: 0, w: 8 },
    { n: 1003, pdt: 'bf16', gdt: 'f32', mdt: 'bf16', shift: 0, w: 1 },
    { n: 1024, pdt: 'f32', gdt: 'bf16', mdt: 'f32', shift: 1, w: 1 },
  ];
  for (const [k, c] of adamCases.entries()) {
    it(`adamw n ${c.n}, p ${c.pdt}, g ${c.gdt}, m/v ${c.mdt}${c.shift ? ', misaligned' : ''} (W = ${c.w})`, () => {
      const rng = new Rng(7400 + k);
      const { n } = c;
      const p = stored(randn(rng, n, 0.05), c.pdt);
      const g = stored(randn(rng, n, 0.01), c.gdt);
      const m = stored(randn(rng, n, 0.003), c.mdt);
      const v = stored(Float32Array.from({ length: n }, () => 1e-4 * rng.nextFloat() ** 2), c.mdt);
      const lr = 3e-4, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, wd = 0.01, step = 3;
      const stepSize = lr / (1 - beta1 ** step);
      const sqrtBc2 = Math.sqrt(1 - beta2 ** step);
      const run = runEmu('adamw', { p, g, m, v },
        [code(c.pdt), code(c.gdt), code(c.mdt), n, lr, beta1, beta2, eps, wd, stepSize, sqrtBc2, c.shift, 1]);
      // Four loads (g, p, m, v) and three stores (m, v, p) per W elements.
      const accesses = (n / c.w) * 7;
      expect(run.launches.adamw).toEqual({ w8: c.w === 8 ? accesses : 0, w1: c.w === 1 ? accesses : 0,
        grid: Math.min(16, Math.ceil(n / c.w / 256)) });
      // The kernel's f32 arithmetic, operation by operation, on f32 hyperparameters.
      const [lrF, b1, b2, epsF, wdF, ssF, bc2F] = [lr, beta1, beta2, eps, wd, stepSize, sqrtBc2].map(F);
      const refP = new Float64Array(n), refM = new Float64Array(n), refV = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        const pk = F(p[i] * F(1 - F(lrF * wdF)));
        const mi = F(F(b1 * m[i]) + F(F(1 - b1) * g[i]));
        const vi = F(F(v[i] * b2) + F(F(F(1 - b2) * g[i]) * g[i]));
        const denom = F(F(F(Math.sqrt(vi)) / bc2F) + epsF);
        refP[i] = toDt(F(pk - F(ssF * F(mi / denom))), c.pdt);
        refM[i] = toDt(mi, c.mdt);
        refV[i] = toDt(vi, c.mdt);
      }
      const exact = new Float64Array(n);
      expect(firstBad(readF32(run.dir, 'p.out'), refP, exact)).toBeUndefined();
      expect(firstBad(readF32(run.dir, 'm.out'), refM, exact)).toBeUndefined();
      expect(firstBad(readF32(run.dir, 'v.out'), refV, exact)).toBeUndefined();
    }, 120_000);
  }
});
