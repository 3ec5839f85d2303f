// Round-half-to-even, the rounding of PyTorch's torch.round (paroquant-spec §4.1, §11.6; dflash-spec layer ids).
// Never use Math.round for quantization: it rounds ties toward +∞.

// 1.5·2^52: adding it puts the units digit at the last mantissa bit, so IEEE round-to-nearest-even does the work.
const MAGIC = 6755399441055744;
const TWO_51 = 2251799813685248;
const TWO_52 = 4503599627370496;

/**
 * Nearest integer, ties to even, for every double: ±0 keep their sign, (−0.5, 0) gives −0 as torch.round does,
 * NaN and ±Infinity pass through. Float32 values need no variant: the rounded value of an f32 is itself an f32.
 */
export function roundHalfEven(x: number): number {
  if (x < TWO_51 && x > -TWO_51) {
    const r = x + MAGIC - MAGIC;
    // x·0 restores the sign of zero (−0 for negative x) that the magic-number sum loses.
    return r === 0 ? x * 0 : r;
  }
  if (x < TWO_52 && x > -TWO_52) {
    // 2^51 ≤ |x| < 2^52: x is a multiple of 0.5, Math.round is exact here and only ties need fixing.
    const r = Math.round(x);
    return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
  }
  return x; // |x| ≥ 2^52 is already an integer; NaN and ±Infinity too.
}
