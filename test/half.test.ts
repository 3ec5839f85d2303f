// half.ts against independent float64 references: exhaustive decoding of all 65,536 bit patterns, and rounding of
// random and edge-case f32 values to the nearest representable half value (ties to even) found by binary search.
import { describe, expect, it } from 'vitest';
import { getFloat16, f16round } from '@petamoriken/float16';
import {
  bf16BitsToNumber,
  bf16ToF32,
  f16BitsToNumber,
  f16ToF32,
  f32ToBf16,
  f32ToF16,
  numberToBf16Bits,
  numberToF16Bits,
  roundToBf16InPlace,
  roundToF16InPlace,
} from '../src/numerics/half.js';

interface HalfFormat {
  name: string;
  ebits: number;
  mbits: number;
}
const F16: HalfFormat = { name: 'f16', ebits: 5, mbits: 10 };
const BF16: HalfFormat = { name: 'bf16', ebits: 8, mbits: 7 };

// Float64 decoding from sign / exponent / mantissa fields, by the IEEE-754 formulas.
function decodeF64(bits: number, f: HalfFormat): number {
  const sign = (bits >> (f.ebits + f.mbits)) & 1 ? -1 : 1;
  const e = (bits >> f.mbits) & ((1 << f.ebits) - 1);
  const m = bits & ((1 << f.mbits) - 1);
  const bias = (1 << (f.ebits - 1)) - 1;
  const emax = (1 << f.ebits) - 1;
  if (e === emax) return m === 0 ? sign * Infinity : NaN;
  if (e === 0) return sign * m * 2 ** (1 - bias - f.mbits);
  return sign * (1 + m / 2 ** f.mbits) * 2 ** (e - bias);
}

function infBits(f: HalfFormat): number {
  return ((1 << f.ebits) - 1) << f.mbits;
}

// Nearest representable value by binary search over the (monotonic) positive bit patterns, ties to the even pattern;
// |x| at or beyond halfway between the largest finite value and 2^(emax+1) overflows to inf. Returns bits.
function roundRef(x: number, f: HalfFormat): number {
  const signBit = 1 << (f.ebits + f.mbits);
  const inf = infBits(f);
  if (Number.isNaN(x)) throw new Error('NaN has no reference rounding');
  const neg = x < 0 || Object.is(x, -0);
  const ax = Math.abs(x);
  const maxBits = inf - 1;
  const maxVal = decodeF64(maxBits, f);
  const bias = (1 << (f.ebits - 1)) - 1;
  const overflowAt = (maxVal + 2 ** (bias + 1)) / 2;
  let b: number;
  if (ax >= overflowAt) b = inf;
  else if (ax >= maxVal) b = maxBits;
  else {
    let lo = 0;
    let hi = maxBits; // invariant: value(lo) <= ax < value(hi)
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (decodeF64(mid, f) <= ax) lo = mid;
      else hi = mid;
    }
    const dLo = ax - decodeF64(lo, f);
    const dHi = decodeF64(hi, f) - ax;
    b = dLo < dHi ? lo : dHi < dLo ? hi : lo % 2 === 0 ? lo : hi;
  }
  return neg ? b | signBit : b;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
function bitsToF32(u: number): number {
  u32[0] = u >>> 0;
  return f32[0];
}
function f32ToBits(x: number): number {
  f32[0] = x;
  return u32[0];
}

// Seeded xorshift32, so failures reproduce.
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

// f32 bit patterns: edge cases, and around every kind of rounding boundary of the format (midpoints ± 1 f32 ulp).
function testInputs(f: HalfFormat, seed: number): Uint32Array {
  const r = rng(seed);
  const out: number[] = [];
  const edges = [
    0, -0, 1, -1, Infinity, -Infinity, 65504, -65504, 65519.996, 65520, 65536, 2 ** -14, 2 ** -24, 2 ** -25,
    3 * 2 ** -25, 2 ** -14 - 2 ** -25, 2 ** -126, 2 ** -149, 3.4028234663852886e38, -3.4028234663852886e38,
    1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 0.1, -0.1, 1e-8, 1e-40, 3.3895313892515355e38,
  ];
  for (const e of edges) out.push(f32ToBits(e));
  for (const e of [2 ** -25, 2 ** -14, 65520, 3.3895313892515355e38, 2 ** -133]) {
    const b = f32ToBits(e);
    out.push(b - 1, b + 1, (b | 0x80000000) >>> 0);
  }
  const inf = infBits(f);
  const totalBits = 1 + f.ebits + f.mbits;
  for (let i = 0; i < 20000; i++) {
    // Adjacent representable values lo < hi; their midpoint is exact in f32 (few significant bits).
    const b = r() % (inf - 1);
    const lo = decodeF64(b, f);
    const hi = decodeF64(b + 1, f);
    const mid = (lo + hi) / 2;
    const mb = f32ToBits(mid);
    const sign = r() & 1 ? 0x80000000 : 0;
    out.push(mb | sign, (mb - 1) | sign, (mb + 1) | sign);
    out.push(f32ToBits(lo + (hi - lo) * ((r() % 1000) / 1000)) | sign);
  }
  for (let i = 0; i < 50000; i++) out.push(r()); // any f32 bit pattern
  // Patterns near the format's own exponent range, shifted into f32 bit positions (the dense part of the grid).
  for (let i = 0; i < 50000; i++) {
    const h = r() & ((1 << totalBits) - 1);
    out.push((f32ToBits(decodeF64(h, f)) ^ (r() & 0xffff)) >>> 0);
  }
  return Uint32Array.from(out.map((v) => v >>> 0));
}

function checkNaN(bits: number, f: HalfFormat, inputBits: number): void {
  const inf = infBits(f);
  const quiet = 1 << (f.mbits - 1);
  const signBit = 1 << (f.ebits + f.mbits);
  expect(bits & inf).toBe(inf);
  expect(bits & quiet).toBe(quiet);
  expect(!!(bits & signBit)).toBe(!!(inputBits & 0x80000000));
}

describe.each([F16, BF16])('$name decode', (f) => {
  it('all 65,536 bit patterns decode exactly (bulk and scalar)', () => {
    const all = new Uint16Array(65536);
    for (let i = 0; i < 65536; i++) all[i] = i;
    const out = f === F16 ? f16ToF32(all) : bf16ToF32(all);
    const outBits = new Uint32Array(out.buffer);
    const scalar = f === F16 ? f16BitsToNumber : bf16BitsToNumber;
    let bad = 0;
    for (let h = 0; h < 65536; h++) {
      const want = decodeF64(h, f);
      if (Number.isNaN(want)) {
        // A NaN keeps its sign and payload, shifted into the top of the f32 mantissa.
        const sign = (h >> 15) << 31;
        const payload = (h & ((1 << f.mbits) - 1)) << (23 - f.mbits);
        if (outBits[h] !== ((sign | 0x7f800000 | payload) >>> 0)) bad++;
        if (!Number.isNaN(scalar(h))) bad++;
      } else {
        if (!Object.is(out[h], want)) bad++;
        if (!Object.is(scalar(h), want)) bad++;
      }
    }
    expect(bad).toBe(0);
  });

  it('every non-NaN pattern survives a round trip through f32', () => {
    const all = new Uint16Array(65536);
    for (let i = 0; i < 65536; i++) all[i] = i;
    const back = f === F16 ? f32ToF16(f16ToF32(all)) : f32ToBf16(bf16ToF32(all));
    const inf = infBits(f);
    let bad = 0;
    for (let h = 0; h < 65536; h++) {
      const isNaN = (h & inf) === inf && (h & ((1 << f.mbits) - 1)) !== 0;
      if (isNaN) {
        if ((back[h] & inf) !== inf || (back[h] & ((1 << f.mbits) - 1)) === 0) bad++;
      } else if (back[h] !== h) bad++;
    }
    expect(bad).toBe(0);
  });
});

it('f16 decoding agrees with @petamoriken/float16 on all patterns', () => {
  const dv = new DataView(new ArrayBuffer(2));
  const all = new Uint16Array(65536);
  for (let i = 0; i < 65536; i++) all[i] = i;
  const out = f16ToF32(all);
  let bad = 0;
  for (let h = 0; h < 65536; h++) {
    dv.setUint16(0, h, true);
    const ref = getFloat16(dv, 0, true);
    if (!(Object.is(ref, out[h]) || (Number.isNaN(ref) && Number.isNaN(out[h])))) bad++;
  }
  expect(bad).toBe(0);
});

describe.each([
  [F16, 1],
  [BF16, 2],
])('%s encode (seed %i)', (f, seed) => {
  const inputs = testInputs(f, seed);
  const x = new Float32Array(inputs.buffer);
  const encode = f === F16 ? f32ToF16 : f32ToBf16;
  const scalar = f === F16 ? numberToF16Bits : numberToBf16Bits;

  it(`rounds ${inputs.length} random and edge-case values to nearest, ties to even`, () => {
    const got = encode(x);
    const failures: string[] = [];
    for (let i = 0; i < inputs.length; i++) {
      const isNaN = (inputs[i] & 0x7fffffff) > 0x7f800000;
      if (isNaN) {
        checkNaN(got[i], f, inputs[i]);
        continue;
      }
      const want = roundRef(x[i], f);
      if (got[i] !== want && failures.length < 5)
        failures.push(`x=${x[i]} (0x${inputs[i].toString(16)}): got 0x${got[i].toString(16)} want 0x${want.toString(16)}`);
      if (scalar(x[i]) !== want && failures.length < 5) failures.push(`scalar x=${x[i]}`);
    }
    expect(failures).toEqual([]);
  });

  it('NaNs of any payload stay quiet NaNs with their sign', () => {
    const nans = Uint32Array.from([0x7f800001, 0xff800001, 0x7fc00000, 0xffc00000, 0x7fbfffff, 0x7f801fff, 0x7f800100]);
    const got = encode(new Float32Array(nans.buffer));
    for (let i = 0; i < nans.length; i++) checkNaN(got[i], f, nans[i]);
  });

  it('rounding in place equals encode then decode', () => {
    const y = x.slice();
    (f === F16 ? roundToF16InPlace : roundToBf16InPlace)(y);
    const want = f === F16 ? f16ToF32(f32ToF16(x)) : bf16ToF32(f32ToBf16(x));
    const yb = new Uint32Array(y.buffer);
    const wb = new Uint32Array(want.buffer);
    let bad = 0;
    for (let i = 0; i < y.length; i++) if (yb[i] !== wb[i]) bad++;
    expect(bad).toBe(0);
  });

  it('writes into a given destination, including a subarray view', () => {
    const dst = new Uint16Array(x.length + 4);
    const view = dst.subarray(2, 2 + x.length);
    encode(x, view);
    expect(dst[0]).toBe(0);
    expect(dst[dst.length - 1]).toBe(0);
    expect(Array.from(view.subarray(0, 100))).toEqual(Array.from(encode(x.subarray(0, 100))));
    expect(() => encode(x, new Uint16Array(3))).toThrow(RangeError);
  });
});

it('f32 -> f16 agrees with @petamoriken/float16 f16round on f32 inputs', () => {
  const r = rng(7);
  let bad = 0;
  for (let i = 0; i < 100000; i++) {
    const x = bitsToF32(r());
    const ours = f16BitsToNumber(numberToF16Bits(x));
    const ref = f16round(x);
    if (!(Object.is(ours, ref) || (Number.isNaN(ours) && Number.isNaN(ref)))) bad++;
  }
  expect(bad).toBe(0);
});

it('bulk conversions run at tens of millions of elements per second (typed-array loops)', () => {
  const n = 1 << 22;
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = Math.sin(i) * 1000;
  const h = new Uint16Array(n);
  const y = new Float32Array(n);
  const rate = (fn: () => void): number => {
    let best = Infinity;
    for (let k = 0; k < 3; k++) {
      const t0 = performance.now();
      fn();
      best = Math.min(best, performance.now() - t0);
    }
    return n / (best / 1000);
  };
  const rates = {
    f32ToF16: rate(() => f32ToF16(x, h)),
    f16ToF32: rate(() => f16ToF32(h, y)),
    f32ToBf16: rate(() => f32ToBf16(x, h)),
    bf16ToF32: rate(() => bf16ToF32(h, y)),
  };
  console.log('M elements/s', Object.fromEntries(Object.entries(rates).map(([k, v]) => [k, Math.round(v / 1e6)])));
  // Per-element allocation or DataView paths run at 1-2 M el/s; typed-array loops at 100+ M el/s.
  for (const v of Object.values(rates)) expect(v).toBeGreaterThan(20e6);
});
