// DType codes shared with native/src/common.cuh, element sizes, and the output-dtype rule of the CUDA backend.
import type { DType } from '../backend.js';

export const DT_CODE: Readonly<Record<DType, number>> = { f32: 0, bf16: 1, f16: 2, i32: 3 };

export function dtypeBytes(dt: DType): number {
  return dt === 'bf16' || dt === 'f16' ? 2 : 4;
}

export function isFloat(dt: DType): boolean {
  return dt !== 'i32';
}

/**
 * Result dtype of an op on several float operands: their common dtype when they agree, else f32 (bf16 with f16
 * mixes too). Storage stays bf16 end to end when the inputs are bf16; f32 wins whenever it is involved.
 */
export function promote(...dts: DType[]): DType {
  const first = dts[0];
  return dts.every((d) => d === first) ? first : 'f32';
}
