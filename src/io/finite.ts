// Finite-value checks on tensor data as loaded: one NaN or Inf in a checkpoint must stop the command with the tensor's
// name, not flow silently into results. 16-bit data is tested on the raw words (exponent bits all ones), which is far
// cheaper than widening to f32 first.
import { UserError } from '../errors.js';

/** Index of the first NaN/±Inf in a, or −1. */
export function firstNonFiniteF32(a: Float32Array | Float64Array): number {
  for (let i = 0; i < a.length; i++) {
    // x − x is 0 for every finite x and NaN for NaN and ±Inf.
    const v = a[i];
    if (v - v !== 0) return i;
  }
  return -1;
}

/** Index of the first NaN/±Inf among raw bf16 or f16 words, or −1. */
export function firstNonFinite16(bits: Uint16Array, dtype: 'BF16' | 'F16'): number {
  const mask = dtype === 'BF16' ? 0x7f80 : 0x7c00;
  const one = dtype === 'BF16' ? 0x0080 : 0x0400; // lowest exponent bit
  let start = 0;
  // Two words at a time: masked to the exponent, + the lowest exponent bit carries into the (cleared) sign bit
  // exactly when the exponent is all ones, and never from the low half into the high half.
  if (bits.byteOffset % 4 === 0) {
    const pairs = new Uint32Array(bits.buffer, bits.byteOffset, bits.length >>> 1);
    const mask2 = mask * 0x10001;
    const one2 = one * 0x10001;
    let i = 0;
    while (i < pairs.length && (((pairs[i] & mask2) + one2) & 0x80008000) === 0) i++;
    start = 2 * i; // the exact element is found below
  }
  for (let i = start; i < bits.length; i++) if ((bits[i] & mask) === mask) return i;
  return -1;
}

/** 'NaN', 'Inf' or '-Inf' for a non-finite value given as f32 or as raw 16-bit bits. */
function describe(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  return v > 0 ? 'Inf' : '-Inf';
}

function describe16(bits: number, dtype: 'BF16' | 'F16'): string {
  const mantissa = dtype === 'BF16' ? bits & 0x7f : bits & 0x3ff;
  if (mantissa !== 0) return 'NaN';
  return bits & 0x8000 ? '-Inf' : 'Inf';
}

function fail(tensor: string, file: string, what: string, index: number, n: number): never {
  throw new UserError(`tensor ${tensor} holds ${what} at element ${index} of ${n}; the checkpoint is damaged`, { file });
}

/** Throws a UserError naming the tensor and file when a holds NaN or ±Inf. */
export function assertFiniteF32(a: Float32Array | Float64Array, tensor: string, file: string): void {
  const i = firstNonFiniteF32(a);
  if (i >= 0) fail(tensor, file, describe(a[i]), i, a.length);
}

/** Throws a UserError naming the tensor and file when raw bf16/f16 words hold NaN or ±Inf. */
export function assertFinite16(bits: Uint16Array, dtype: 'BF16' | 'F16', tensor: string, file: string): void {
  const i = firstNonFinite16(bits, dtype);
  if (i >= 0) fail(tensor, file, describe16(bits[i], dtype), i, bits.length);
}
