// Seeded pseudo-random numbers: xoshiro128** (Blackman & Vigna) with its 128-bit state filled from a 32-bit seed by
// splitmix32. Integer arithmetic only (Math.imul, shifts), so the integer and 24/53-bit float streams are identical
// on every platform; normal() additionally relies on V8's fdlibm-based Math.log/cos/sin.

/** Anything indexable and writable by position: plain arrays and typed arrays. */
export interface Shufflable {
  length: number;
  [index: number]: unknown;
}

const TWO_POW_32 = 4294967296;
const TWO_NEG_24 = 1 / 16777216;
const TWO_NEG_53 = 1 / 9007199254740992;

/** splitmix32 step: returns [next state, output]. The output finaliser is MurmurHash3's fmix32 (a bijection). */
function splitmix32(state: number): [number, number] {
  const next = (state + 0x9e3779b9) | 0;
  let z = next;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  z ^= z >>> 16;
  return [next, z >>> 0];
}

export class Rng {
  // xoshiro128** state, four 32-bit words held as int32.
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;
  // Second Box–Muller variate, used by the next normal() call.
  private spareNormal: number | null = null;

  /** seed: any integer; only its low 32 bits are used. */
  constructor(seed: number) {
    if (!Number.isInteger(seed)) throw new RangeError(`Rng seed must be an integer, got ${seed}`);
    let st = seed >>> 0; // ToUint32: the seed modulo 2^32
    const words: number[] = [];
    for (let k = 0; k < 4; k++) {
      const [next, out] = splitmix32(st);
      st = next;
      words.push(out | 0);
    }
    // fmix32 is a bijection of four distinct inputs, so at most one word is 0 and the state is never all zero.
    [this.s0, this.s1, this.s2, this.s3] = words as [number, number, number, number];
  }

  /** Uniform 32-bit unsigned integer. */
  nextU32(): number {
    const s1 = this.s1;
    const x = Math.imul(s1, 5);
    const result = Math.imul((x << 7) | (x >>> 25), 9);
    const t = s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = (this.s3 << 11) | (this.s3 >>> 21);
    return result >>> 0;
  }

  /** Uniform in [0, 1) with 24 random bits: exactly representable in float32, never rounds up to 1 there. */
  nextFloat(): number {
    return (this.nextU32() >>> 8) * TWO_NEG_24;
  }

  /** Uniform in [0, 1) with 53 random bits (two draws). */
  nextDouble(): number {
    const hi = this.nextU32() >>> 5; // 27 bits
    const lo = this.nextU32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) * TWO_NEG_53;
  }

  /** Uniform integer in [0, n), 1 ≤ n ≤ 2^32, without modulo bias (rejection of the incomplete top range). */
  nextInt(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > TWO_POW_32) throw new RangeError(`nextInt bound must be in [1, 2^32], got ${n}`);
    // The largest multiple of n that fits in 2^32; draws at or above it would favour small residues.
    const limit = TWO_POW_32 - (TWO_POW_32 % n);
    let u = this.nextU32();
    while (u >= limit) u = this.nextU32();
    return u % n;
  }

  /** Standard normal N(0, 1) by Box–Muller; the pair's second value is cached for the next call. */
  normal(): number {
    if (this.spareNormal !== null) {
      const z = this.spareNormal;
      this.spareNormal = null;
      return z;
    }
    const u1 = 1 - this.nextDouble(); // (0, 1]: log stays finite
    const u2 = this.nextDouble();
    const r = Math.sqrt(-2 * Math.log(u1));
    const phi = 2 * Math.PI * u2;
    this.spareNormal = r * Math.sin(phi);
    return r * Math.cos(phi);
  }

  /** Fisher–Yates shuffle in place (from the end, j uniform in [0, i]); returns the same array. */
  shuffle<T extends Shufflable>(a: T): T {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.nextInt(i + 1);
      const tmp = a[i];
      a[i] = a[j];
      a[j] = tmp;
    }
    return a;
  }

  /**
   * k distinct integers drawn uniformly from [0, n), sorted ascending (Floyd's algorithm: k draws, O(k) memory).
   */
  sampleWithoutReplacement(n: number, k: number): Int32Array {
    if (!Number.isInteger(n) || !Number.isInteger(k) || k < 0 || k > n || n > 0x7fffffff) {
      throw new RangeError(`sampleWithoutReplacement needs integers 0 ≤ k ≤ n < 2^31, got n=${n}, k=${k}`);
    }
    const chosen = new Set<number>();
    for (let j = n - k; j < n; j++) {
      const t = this.nextInt(j + 1);
      chosen.add(chosen.has(t) ? j : t);
    }
    const out = Int32Array.from(chosen);
    out.sort();
    return out;
  }
}
