import { describe, expect, it } from 'vitest';
import { roundHalfEven } from '../src/numerics/rounding.js';
import { Rng } from '../src/numerics/rng.js';

// Independent reference: exact decimal reasoning with BigInt on the binary expansion of the double.
// x = mant·2^exp exactly; compare the fractional part with 1/2 by integer arithmetic.
function refRound(x: number): number {
  if (!Number.isFinite(x) || Number.isInteger(x)) return x;
  const buf = new DataView(new ArrayBuffer(8));
  buf.setFloat64(0, Math.abs(x));
  const bits = buf.getBigUint64(0);
  const expField = Number((bits >> 52n) & 0x7ffn);
  const frac = bits & ((1n << 52n) - 1n);
  const mant = expField === 0 ? frac : frac | (1n << 52n);
  const e = (expField === 0 ? 1 : expField) - 1075; // |x| = mant·2^e, e < 0 here since x is not an integer
  const shift = BigInt(-e);
  const intPart = mant >> shift;
  const rem = mant - (intPart << shift); // fractional part numerator over 2^shift
  const halfUnit = 1n << (shift - 1n);
  let r = intPart;
  if (rem > halfUnit || (rem === halfUnit && (intPart & 1n) === 1n)) r += 1n;
  const mag = Number(r);
  return x < 0 ? -mag : mag; // -0 for negative x rounding to 0, as torch.round
}

describe('roundHalfEven', () => {
  it('matches the spec §11.6 cases, including the sign of zero', () => {
    expect(Object.is(roundHalfEven(0.5), 0)).toBe(true);
    expect(roundHalfEven(1.5)).toBe(2);
    expect(roundHalfEven(2.5)).toBe(2);
    expect(Object.is(roundHalfEven(-0.5), -0)).toBe(true);
    expect(roundHalfEven(-1.5)).toBe(-2);
    expect(roundHalfEven(-2.5)).toBe(-2);
    expect(roundHalfEven(3.5)).toBe(4);
    expect(Object.is(roundHalfEven(-0.3), -0)).toBe(true);
    expect(Object.is(roundHalfEven(-0), -0)).toBe(true);
    expect(Object.is(roundHalfEven(0), 0)).toBe(true);
    expect(roundHalfEven(0.49999999999999994)).toBe(0);
    expect(roundHalfEven(-0.5000000000000001)).toBe(-1);
  });

  it('passes NaN, infinities and huge values through', () => {
    expect(roundHalfEven(NaN)).toBeNaN();
    expect(roundHalfEven(Infinity)).toBe(Infinity);
    expect(roundHalfEven(-Infinity)).toBe(-Infinity);
    expect(roundHalfEven(2 ** 60 + 2 ** 8)).toBe(2 ** 60 + 2 ** 8);
    expect(roundHalfEven(Number.MAX_VALUE)).toBe(Number.MAX_VALUE);
  });

  it('handles the magnitudes around 2^51..2^53 where a magic-number trick breaks', () => {
    const cases = [2 ** 51 - 0.5, 2 ** 51 + 0.5, 2 ** 51 + 1.5, 2 ** 52 - 0.5, 2 ** 52 - 1.5, 2 ** 52, 2 ** 53 - 1, 2 ** 51 - 1.25];
    for (const c of cases) {
      expect(roundHalfEven(c)).toBe(refRound(c));
      expect(roundHalfEven(-c)).toBe(refRound(-c));
    }
    expect(roundHalfEven(2 ** 51 + 0.5)).toBe(2 ** 51);
    expect(roundHalfEven(2 ** 51 + 1.5)).toBe(2 ** 51 + 2);
  });

  it('agrees with an exact BigInt reference on random doubles of all scales and on f32 ties', () => {
    const rng = new Rng(123);
    for (let n = 0; n < 20000; n++) {
      const scale = 2 ** (rng.nextInt(120) - 60);
      const x = (rng.nextDouble() * 2 - 1) * scale;
      const got = roundHalfEven(x);
      const want = refRound(x);
      if (!Object.is(got, want)) throw new Error(`roundHalfEven(${x}) = ${got}, expected ${want}`);
    }
    // Exact ties k + 0.5 and their f32 neighbours.
    for (let k = -3000; k < 3000; k += 7) {
      const t = k + 0.5;
      const f32 = new Float32Array([t]);
      const u32 = new Uint32Array(f32.buffer);
      for (const delta of [-1, 0, 1]) {
        const u = new Uint32Array([u32[0] + delta]);
        const v = new Float32Array(u.buffer)[0];
        expect(Object.is(roundHalfEven(v), refRound(v))).toBe(true);
      }
    }
  });
});
