// Row slicing and stacking of 2-D tensors, from the Backend's copyRows.
import type { Backend, Tensor } from '../engine/backend.js';

/** Rows of a then rows of b: [ra + rb, C]. */
export function concatRows(be: Backend, a: Tensor, b: Tensor): Tensor {
  const out = be.zeros([a.shape[0] + b.shape[0], a.shape[1]]);
  be.copyRows(out, 0, a, 0, a.shape[0]);
  be.copyRows(out, a.shape[0], b, 0, b.shape[0]);
  return out;
}

/** Rows [r0, r0 + n) of t as a new [n, C] tensor. */
export function sliceRows(be: Backend, t: Tensor, r0: number, n: number): Tensor {
  const out = be.zeros([n, t.shape[1]], t.dtype === 'i32' ? 'i32' : 'f32');
  be.copyRows(out, 0, t, r0, n);
  return out;
}
