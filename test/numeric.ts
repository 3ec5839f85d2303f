// Shared numeric helpers of the tests: Gaussian samples and comparisons of float arrays.
import type { Rng } from '../src/numerics/rng.js';

/** n samples of N(0, std²) from rng. */
export function randn(rng: Rng, n: number, std = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal() * std;
  return a;
}

/** Relative Frobenius error ‖a − b‖ / ‖b‖. */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / Math.max(den, 1e-30));
}

/** Bit-identical (NaN and −0 included). */
export function sameBits(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return false;
  return true;
}

/**
 * Reference visibility of the DFlash block mask (spec §2.5), written from the rule rather than the kernels: query row i
 * belongs to block n = ⌊i / B⌋; a disabled block sees nothing; context key j < ctxLen is visible when j < anchor of
 * block n; a block key is visible when it lies in the same block.
 */
export function dflashVisible(ctxLen: number, blockSize: number, nBlocks: number, anchors: Int32Array, keep: Uint8Array) {
  return (b: number, i: number, j: number): boolean => {
    const n = Math.floor(i / blockSize);
    if (!keep[b * nBlocks + n]) return false;
    if (j < ctxLen) return j < anchors[b * nBlocks + n];
    return Math.floor((j - ctxLen) / blockSize) === n;
  };
}
