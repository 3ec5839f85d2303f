// Optimisation kernels on the cpu backend: AdamW (paroquant-spec §6.4, PyTorch torch.optim.AdamW single-tensor
// path), SmoothL1 loss (§6.2) and global gradient-norm clipping (dflash-spec §3.6, torch.nn.utils.clip_grad_norm_).
// Tensors are f32; each stored quantity is rounded to f32 once per update, intermediates are f64.

import type { AdamWHyper } from '../backend.js';

/**
 * One AdamW step in place. h.step is the 1-based step count including this update. Order as PyTorch:
 * p ← p·(1 − lr·wd); m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²;
 * p ← p − (lr/(1−β1^t))·m / (sqrt(v)/sqrt(1−β2^t) + eps).
 */
export function adamwStep(param: Float32Array, grad: Float32Array, m: Float32Array, v: Float32Array, h: AdamWHyper): void {
  const n = param.length;
  if (grad.length !== n || m.length !== n || v.length !== n) throw new RangeError('adamwStep: param, grad, m and v must have equal lengths');
  if (!(Number.isInteger(h.step) && h.step >= 1)) throw new RangeError(`adamwStep: step must be a 1-based integer, got ${h.step}`);
  const { lr, beta1, beta2, eps, weightDecay } = h;
  const decay = 1 - lr * weightDecay;
  const stepSize = lr / (1 - beta1 ** h.step);
  const bc2Sqrt = Math.sqrt(1 - beta2 ** h.step);
  const w1 = 1 - beta1;
  const w2 = 1 - beta2;
  for (let i = 0; i < n; i++) {
    const g = grad[i];
    const p = Math.fround(param[i] * decay);
    m[i] = beta1 * m[i] + w1 * g;
    v[i] = beta2 * v[i] + w2 * g * g;
    const denom = Math.sqrt(v[i]) / bc2Sqrt + eps;
    param[i] = p - (stepSize * m[i]) / denom;
  }
}

/**
 * SmoothL1 with β = 1, mean over all elements (spec §6.2): ℓ(d) = 0.5·d² if |d| < 1 else |d| − 0.5, d = pred − target.
 * dpred = clamp(d, −1, 1)/n, written into dpredOut when given (it may alias pred or target). The sum is in f64.
 */
export function smoothL1(
  pred: Float32Array, target: Float32Array, withGrad: boolean, dpredOut?: Float32Array,
): { loss: number; dpred?: Float32Array } {
  const n = pred.length;
  if (target.length !== n) throw new RangeError(`smoothL1: pred has ${n} elements, target ${target.length}`);
  if (n === 0) throw new RangeError('smoothL1: empty input');
  if (dpredOut !== undefined && dpredOut.length !== n) throw new RangeError(`smoothL1: dpredOut has ${dpredOut.length} elements, expected ${n}`);
  const dpred = withGrad ? (dpredOut ?? new Float32Array(n)) : undefined;
  const invN = 1 / n;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const d = pred[i] - target[i];
    const ad = Math.abs(d);
    sum += ad < 1 ? 0.5 * d * d : ad - 0.5;
    if (dpred) dpred[i] = (d > 1 ? 1 : d < -1 ? -1 : d) * invN;
  }
  return dpred ? { loss: sum * invN, dpred } : { loss: sum * invN };
}

/**
 * Global L2 norm clipping over all gradients (PyTorch clip_grad_norm_): returns the total norm before clipping and,
 * when maxNorm/(norm + 1e-6) < 1, multiplies every gradient by that factor in place. A non-finite norm scales by a
 * NaN or 0 factor as PyTorch does (error_if_nonfinite = false).
 */
export function clipGradNorm(grads: readonly Float32Array[], maxNorm: number): number {
  let sq = 0;
  for (const g of grads) for (let i = 0; i < g.length; i++) sq += g[i] * g[i];
  const norm = Math.sqrt(sq);
  const coef = maxNorm / (norm + 1e-6);
  if (!(coef >= 1)) {
    for (const g of grads) for (let i = 0; i < g.length; i++) g[i] *= coef;
  }
  return norm;
}
