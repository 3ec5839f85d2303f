// bf16 / f16 <-> f32 conversions by bit operations, round-to-nearest-even, NaN kept (quiet).
// Bulk functions work on Uint32Array views of the f32 buffers: no DataView, no per-element allocation.

// ---------------------------------------------------------------------------------------------------------------
// bf16: the upper 16 bits of an f32.

/** bf16 bits -> f32: u32 = u16 << 16 (exact). */
export function bf16ToF32(src: Uint16Array, dst?: Float32Array): Float32Array {
  const n = src.length;
  const out = dst ?? new Float32Array(n);
  checkLength(out.length, n);
  const u32 = u32View(out);
  for (let i = 0; i < n; i++) u32[i] = src[i] << 16;
  return out;
}

/** f32 -> bf16 bits, round-to-nearest-even; overflow goes to ±inf naturally; NaN stays a quiet NaN (sign kept). */
export function f32ToBf16(src: Float32Array, dst?: Uint16Array): Uint16Array {
  const n = src.length;
  const out = dst ?? new Uint16Array(n);
  checkLength(out.length, n);
  const u32 = u32View(src);
  for (let i = 0; i < n; i++) out[i] = bf16Round(u32[i]);
  return out;
}

/** Rounds each f32 to the nearest bf16 value (RNE) and stores it back as f32. */
export function roundToBf16InPlace(x: Float32Array): Float32Array {
  const u32 = u32View(x);
  const n = x.length;
  for (let i = 0; i < n; i++) u32[i] = bf16Round(u32[i]) << 16;
  return x;
}

export function bf16BitsToNumber(bits: number): number {
  scalarU32[0] = (bits & 0xffff) << 16;
  return scalarF32[0];
}

/** number -> bf16 bits. The number is first rounded to f32 (as storing it in a Float32Array would). */
export function numberToBf16Bits(x: number): number {
  scalarF32[0] = x;
  return bf16Round(scalarU32[0]);
}

// u: f32 bits (unsigned). Returns bf16 bits.
function bf16Round(u: number): number {
  // NaN: truncate and force the quiet bit, so a NaN whose payload sits in the low 16 bits stays NaN.
  if ((u & 0x7fffffff) > 0x7f800000) return (u >>> 16) | 0x0040;
  return (u + 0x7fff + ((u >>> 16) & 1)) >>> 16;
}

// ---------------------------------------------------------------------------------------------------------------
// f16: 1 sign, 5 exponent (bias 15), 10 mantissa bits.

let f16Table: Uint32Array | null = null;

// f16 bits -> f32 bits for all 65,536 patterns, built on first use (256 KB).
function f16ToF32Table(): Uint32Array {
  if (f16Table) return f16Table;
  const t = new Uint32Array(65536);
  for (let h = 0; h < 65536; h++) t[h] = f16BitsToF32Bits(h);
  f16Table = t;
  return t;
}

function f16BitsToF32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0x1f) return (sign | 0x7f800000 | (m << 13)) >>> 0; // inf, or NaN with its payload (quiet bit included)
  if (e !== 0) return (sign | ((e + 112) << 23) | (m << 13)) >>> 0; // rebias 15 -> 127
  if (m === 0) return sign >>> 0;
  // Subnormal m·2^-24: normalise so the leading mantissa bit becomes the implicit one.
  let shift = 0;
  let mm = m;
  while ((mm & 0x400) === 0) {
    mm <<= 1;
    shift++;
  }
  return (sign | ((113 - shift) << 23) | ((mm & 0x3ff) << 13)) >>> 0;
}

/** f16 bits -> f32 (exact), through a lookup table. */
export function f16ToF32(src: Uint16Array, dst?: Float32Array): Float32Array {
  const n = src.length;
  const out = dst ?? new Float32Array(n);
  checkLength(out.length, n);
  const u32 = u32View(out);
  const t = f16ToF32Table();
  for (let i = 0; i < n; i++) u32[i] = t[src[i]];
  return out;
}

/** f32 -> f16 bits, round-to-nearest-even, with subnormals, overflow to ±inf and NaN kept (quiet). */
export function f32ToF16(src: Float32Array, dst?: Uint16Array): Uint16Array {
  const n = src.length;
  const out = dst ?? new Uint16Array(n);
  checkLength(out.length, n);
  const u32 = u32View(src);
  for (let i = 0; i < n; i++) out[i] = f16Round(u32[i]);
  return out;
}

/** Rounds each f32 to the nearest f16 value (RNE, subnormals, overflow to ±inf) and stores it back as f32. */
export function roundToF16InPlace(x: Float32Array): Float32Array {
  const u32 = u32View(x);
  const t = f16ToF32Table();
  const n = x.length;
  for (let i = 0; i < n; i++) u32[i] = t[f16Round(u32[i])];
  return x;
}

export function f16BitsToNumber(bits: number): number {
  scalarU32[0] = f16BitsToF32Bits(bits & 0xffff);
  return scalarF32[0];
}

/** number -> f16 bits. The number is first rounded to f32 (as storing it in a Float32Array would). */
export function numberToF16Bits(x: number): number {
  scalarF32[0] = x;
  return f16Round(scalarU32[0]);
}

// u: f32 bits (unsigned). Returns f16 bits.
function f16Round(u: number): number {
  const sign = (u >>> 16) & 0x8000;
  const a = u & 0x7fffffff;
  if (a >= 0x38800000) {
    // |x| >= 2^-14: normal range, or overflow.
    if (a < 0x477ff000) {
      // Below 65520 (halfway between 65504 and 2^16): rebias the exponent by -112 and round 13 bits off (RNE).
      const r = a - 0x38000000;
      return sign | ((r + 0xfff + ((r >>> 13) & 1)) >>> 13);
    }
    if (a <= 0x7f800000) return sign | 0x7c00; // overflow or inf
    return sign | 0x7e00 | ((a >>> 13) & 0x3ff); // NaN: keep the top payload bits, force quiet
  }
  if (a <= 0x33000000) return sign; // |x| <= 2^-25: halfway to the smallest subnormal or less rounds to ±0 (even)
  // Subnormal result k·2^-24 with k = m·2^(e-126), m the 24-bit significand: shift right by 126-e (14..24) with RNE.
  const e = a >>> 23;
  const m = (a & 0x7fffff) | 0x800000;
  const shift = 126 - e;
  const k = m >>> shift;
  const rem = m - (k << shift);
  const half = 1 << (shift - 1);
  // k can reach 0x400 when rounding up: that is exactly the bit pattern of the smallest normal.
  return sign | (rem > half || (rem === half && (k & 1) === 1) ? k + 1 : k);
}

// ---------------------------------------------------------------------------------------------------------------

const scalarF32 = new Float32Array(1);
const scalarU32 = new Uint32Array(scalarF32.buffer);

function u32View(x: Float32Array): Uint32Array {
  return new Uint32Array(x.buffer, x.byteOffset, x.length);
}

function checkLength(got: number, want: number): void {
  if (got !== want) throw new RangeError(`destination has ${got} elements, source ${want}`);
}
