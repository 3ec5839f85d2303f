// ParoQuant / RTN quantizer on the cpu backend (paroquant-spec §4; REFERENCE.md RTN recipe; §7.1 integer codes).
// r is [rows, cols] row-major; groups are groupSize consecutive columns of one row, flat group index o·G + g.
// Forward values follow PyTorch's fp32 arithmetic op by op (Math.fround where a double would differ): the STE clamps
// compute (clamp(x) − x) + x in f32, which is not always clamp(x) bit for bit. Gradient sums are accumulated in f64.
// Every kernel takes optional output buffers: a fresh 64 MB Float32Array costs ~200 ms of page faults here, more
// than the kernel itself. An output may alias an input of the same shape (each element is read before it is written).

import { roundHalfEven } from '../../numerics/rounding.js';
import { dequantizeCodes, quantizeCodes, zeroPoint } from '../../numerics/int-quant.js';

const F32_1EM5 = Math.fround(1e-5); // PyTorch casts the Python scalar 1e-5 to float for a float32 tensor
const F32_1E5 = 100000;

export interface MinMaxQuantResult {
  /** Fake-quantized r̂ [rows, cols]. */
  rq: Float32Array;
  /** Per flat group [rows·G]: s = max(M − m, 1e-5)/qmax, before the [1e-5, 1e5] clamp of the fake-quant. */
  scale: Float32Array;
  /** Per flat group [rows·G]: the float zero point m/s. */
  zpf: Float32Array;
}

export interface RtnCodes {
  /** Integer codes [rows, cols] in [0, 2^bits − 1]. */
  q: Uint8Array;
  /** Per flat group [rows·G]. */
  scale: Float32Array;
  /** Integer zero points per flat group [rows·G]. */
  zero: Uint8Array;
}

function checkGrid(length: number, rows: number, cols: number, bits: number, groupSize: number): number {
  if (!(Number.isInteger(bits) && bits >= 1 && bits <= 8)) throw new RangeError(`bits must be an integer in [1, 8], got ${bits}`);
  if (!(Number.isInteger(groupSize) && groupSize >= 1) || cols % groupSize !== 0) {
    throw new RangeError(`cols ${cols} is not a multiple of groupSize ${groupSize}`);
  }
  if (length !== rows * cols) throw new RangeError(`tensor has ${length} elements, expected ${rows}·${cols}`);
  return (rows * cols) / groupSize;
}

/** The caller's buffer after a length check, or a new one. */
function outBuffer(buf: Float32Array | undefined, length: number, name: string): Float32Array {
  if (buf === undefined) return new Float32Array(length);
  if (buf.length !== length) throw new RangeError(`${name} has ${buf.length} elements, expected ${length}`);
  return buf;
}

/** Forward value of PyTorch clamp_ste(x, lo, hi) on float32: (clamp(x) − x).detach() + x. */
function clampSteF32(x: number, lo: number, hi: number): number {
  const cl = x < lo ? lo : x > hi ? hi : x;
  return cl === x ? x : Math.fround(Math.fround(cl - x) + x);
}

/** The fake-quant scale: s clamped to [1e-5, 1e5] by an STE clamp (spec §4.1). */
function clampedScale(s: number): number {
  return clampSteF32(s, F32_1EM5, F32_1E5);
}


/** Group min/max init (spec §4.1): s = clamp_ste(M − m, min 1e-5)/qmax, zpf = m/s, all in f32. */
function minMaxGrid(r: Float32Array, start: number, groupSize: number, qmax: number): { s: number; zpf: number } {
  let mx = r[start];
  let mn = mx;
  for (let e = 1; e < groupSize; e++) {
    const v = r[start + e];
    if (v > mx) mx = v;
    if (v < mn) mn = v;
  }
  const range = clampSteF32(Math.fround(mx - mn), F32_1EM5, Infinity);
  const s = Math.fround(range / qmax);
  return { s, zpf: Math.fround(mn / s) };
}

/** r̂ of one group with the given (already clamped) scale sc and integer zero z; writes rq[start..]. */
function fakeQuantGroup(r: Float32Array, rq: Float32Array, start: number, groupSize: number, sc: number, z: number, qmax: number): void {
  for (let e = start; e < start + groupSize; e++) {
    let q = roundHalfEven(Math.fround(r[e] / sc)) + z;
    q = q < 0 ? 0 : q > qmax ? qmax : q;
    rq[e] = (q - z) * sc;
  }
}

/**
 * Σ γ·((q − z) − R/s) over one group: the STE gradient of the group's scale (spec §4.2; passes the scale clamp).
 */
function scaleGradGroup(drq: Float32Array, r: Float32Array, start: number, groupSize: number, sc: number, z: number, qmax: number): number {
  let ds = 0;
  for (let e = start; e < start + groupSize; e++) {
    const x = r[e];
    let q = roundHalfEven(Math.fround(x / sc)) + z;
    q = q < 0 ? 0 : q > qmax ? qmax : q;
    ds += drq[e] * (q - z - x / sc);
  }
  return ds;
}

/** Stage-1 / RTN fake quantization with the grid recomputed from each group's min/max (spec §4.1, §4.3). */
export function fakeQuantMinMax(
  r: Float32Array, rows: number, cols: number, bits: number, groupSize: number, out: Partial<MinMaxQuantResult> = {},
): MinMaxQuantResult {
  const nGroups = checkGrid(r.length, rows, cols, bits, groupSize);
  const qmax = 2 ** bits - 1;
  const rq = outBuffer(out.rq, r.length, 'rq');
  const scale = outBuffer(out.scale, nGroups, 'scale');
  const zpf = outBuffer(out.zpf, nGroups, 'zpf');
  for (let grp = 0; grp < nGroups; grp++) {
    const start = grp * groupSize;
    const { s, zpf: zf } = minMaxGrid(r, start, groupSize, qmax);
    scale[grp] = s;
    zpf[grp] = zf;
    fakeQuantGroup(r, rq, start, groupSize, clampedScale(s), zeroPoint(zf, qmax), qmax);
  }
  return { rq, scale, zpf };
}

/**
 * STE backward of fakeQuantMinMax (spec §4.2–4.3): dr = dr̂ plus, per group, ds = Σ dr̂·((q − z) − R/s) routed
 * through s = (M − m)/qmax: +ds/qmax to the max elements and −ds/qmax to the min elements, shared evenly among ties
 * (PyTorch amax/amin). The zero-point path contributes exactly 0. scale/zpf are the forward's outputs.
 */
export function fakeQuantMinMaxBackward(
  drq: Float32Array, r: Float32Array, scale: Float32Array, zpf: Float32Array, rows: number, cols: number, bits: number,
  groupSize: number, drOut?: Float32Array,
): Float32Array {
  const nGroups = checkGrid(r.length, rows, cols, bits, groupSize);
  if (drq.length !== r.length || scale.length !== nGroups || zpf.length !== nGroups) {
    throw new RangeError('fakeQuantMinMaxBackward: drq, scale or zpf has the wrong length');
  }
  const qmax = 2 ** bits - 1;
  const dr = outBuffer(drOut, r.length, 'dr');
  for (let grp = 0; grp < nGroups; grp++) {
    const start = grp * groupSize;
    const end = start + groupSize;
    const ds = scaleGradGroup(drq, r, start, groupSize, clampedScale(scale[grp]), zeroPoint(zpf[grp], qmax), qmax);
    let mx = r[start];
    let mn = mx;
    for (let e = start + 1; e < end; e++) {
      const v = r[e];
      if (v > mx) mx = v;
      if (v < mn) mn = v;
    }
    let nMax = 0;
    let nMin = 0;
    for (let e = start; e < end; e++) {
      if (r[e] === mx) nMax++;
      if (r[e] === mn) nMin++;
    }
    const gMax = ds / qmax / nMax;
    const gMin = -ds / qmax / nMin;
    for (let e = start; e < end; e++) {
      let d = drq[e];
      if (r[e] === mx) d += gMax;
      if (r[e] === mn) d += gMin;
      dr[e] = d;
    }
  }
  return dr;
}

/** Stage-2 fake quantization with given per-group scale and float zero point (spec §4.1). */
export function fakeQuantParams(
  r: Float32Array, scale: Float32Array, zpf: Float32Array, rows: number, cols: number, bits: number, groupSize: number,
  rqOut?: Float32Array,
): Float32Array {
  const nGroups = checkGrid(r.length, rows, cols, bits, groupSize);
  if (scale.length !== nGroups || zpf.length !== nGroups) throw new RangeError('fakeQuantParams: scale or zpf has the wrong length');
  const qmax = 2 ** bits - 1;
  const rq = outBuffer(rqOut, r.length, 'rq');
  for (let grp = 0; grp < nGroups; grp++) {
    fakeQuantGroup(r, rq, grp * groupSize, groupSize, clampedScale(scale[grp]), zeroPoint(zpf[grp], qmax), qmax);
  }
  return rq;
}

/**
 * STE backward of fakeQuantParams (spec §4.2): dr = dr̂ (also for clipped elements), dscale[grp] = Σ dr̂·((q − z) − R/s).
 * The float zero point's gradient is exactly 0 and is not returned.
 */
export function fakeQuantParamsBackward(
  drq: Float32Array, r: Float32Array, scale: Float32Array, zpf: Float32Array, rows: number, cols: number, bits: number,
  groupSize: number, out: { dr?: Float32Array; dscale?: Float32Array } = {},
): { dr: Float32Array; dscale: Float32Array } {
  const nGroups = checkGrid(r.length, rows, cols, bits, groupSize);
  if (drq.length !== r.length || scale.length !== nGroups || zpf.length !== nGroups) {
    throw new RangeError('fakeQuantParamsBackward: drq, scale or zpf has the wrong length');
  }
  const qmax = 2 ** bits - 1;
  const dscale = outBuffer(out.dscale, nGroups, 'dscale');
  for (let grp = 0; grp < nGroups; grp++) {
    dscale[grp] = scaleGradGroup(drq, r, grp * groupSize, groupSize, clampedScale(scale[grp]), zeroPoint(zpf[grp], qmax), qmax);
  }
  // dr = dr̂ (written last, so out.dr may alias drq or r).
  const dr = outBuffer(out.dr, r.length, 'dr');
  if (dr !== drq) dr.set(drq);
  return { dr, dscale };
}

// Integer codes for export (spec §7.1): the reference quantizer lives in numerics/int-quant (shared with the INT4
// format module); the stored s is NOT clamped there (the fake-quant clamped it; export does not).
export { quantizeCodes };

/**
 * Backend.quantizePacked: the codes of r [rows, cols] (quantizeCodes, the one definition) transposed and packed 8 rows
 * per i32 word: word (i, b) of [cols, rows/8] holds q[b·8 + nibbleOrder[k], i] in nibble k (bits ≤ 4).
 */
export function quantizePacked(
  r: Float32Array, scale: Float32Array, zpf: Float32Array, rows: number, cols: number, bits: number, groupSize: number,
  nibbleOrder: readonly number[],
): Int32Array {
  const { q } = quantizeCodes(r, scale, zpf, rows, cols, bits, groupSize);
  const wordsPerCol = rows / 8;
  const words = new Int32Array(cols * wordsPerCol);
  for (let b = 0; b < wordsPerCol; b++) {
    for (let k = 0; k < 8; k++) {
      const src = (b * 8 + nibbleOrder[k]) * cols;
      const shift = 4 * k;
      // `|` wraps to int32: the two's-complement word of the checkpoint.
      for (let i = 0; i < cols; i++) words[i * wordsPerCol + b] |= q[src + i] << shift;
    }
  }
  return words;
}

/** Backend.dequantizePacked: words [cols, rows/8] unpacked (quantizePacked's layout) and dequantizeCodes. */
export function dequantizePacked(
  words: Int32Array, zeros: Int32Array, scale: Float32Array, rows: number, cols: number, groupSize: number,
  nibbleOrder: readonly number[],
): Float32Array {
  const wordsPerCol = rows / 8;
  const q = new Uint8Array(rows * cols);
  for (let b = 0; b < wordsPerCol; b++) {
    for (let k = 0; k < 8; k++) {
      const dst = (b * 8 + nibbleOrder[k]) * cols;
      const shift = 4 * k;
      for (let i = 0; i < cols; i++) q[dst + i] = (words[i * wordsPerCol + b] >>> shift) & 0xf;
    }
  }
  return dequantizeCodes(q, Uint8Array.from(zeros), scale, rows, cols, groupSize);
}

/**
 * Round-to-nearest baseline (REFERENCE.md recipe; α = 1, θ = 0): per group scale = max(M − m, 1e-5)/qmax (a plain
 * max, no STE), zero = clamp(−round(m/scale), 0, qmax), q = clamp(round(w/scale) + zero, 0, qmax). ŵ = (q − zero)·scale.
 */
export function rtnQuantize(w: Float32Array, rows: number, cols: number, bits: number, groupSize: number): RtnCodes {
  const nGroups = checkGrid(w.length, rows, cols, bits, groupSize);
  const qmax = 2 ** bits - 1;
  const scale = new Float32Array(nGroups);
  const zpf = new Float32Array(nGroups);
  for (let grp = 0; grp < nGroups; grp++) {
    const start = grp * groupSize;
    let mx = w[start];
    let mn = mx;
    for (let e = start + 1; e < start + groupSize; e++) {
      const v = w[e];
      if (v > mx) mx = v;
      if (v < mn) mn = v;
    }
    const range = Math.fround(mx - mn);
    const s = Math.fround((range > F32_1EM5 ? range : F32_1EM5) / qmax);
    scale[grp] = s;
    zpf[grp] = Math.fround(mn / s);
  }
  const { q, zero } = quantizeCodes(w, scale, zpf, rows, cols, bits, groupSize);
  return { q, scale, zero };
}
