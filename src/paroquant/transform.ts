// The ParoQuant transform of one linear layer (spec §2, §4, §5): the pseudo-quantized weight
// Ŵ = F⁻¹(Q(F(W))) with F(v) = (v ⊙ α)·G, and its hand-written backward to θ, α (stage 1) or W, s (stage 2).
import type { Backend, QuantGrid, Tensor } from '../engine/backend.js';

/** Trainable and fixed state of one linear under optimization. */
export interface ParoLinear {
  outFeatures: number;
  inFeatures: number;
  /** FP master weight [O, I] (trained in stage 2). */
  W: Tensor;
  bias?: Tensor;
  /** α [I], channel scales of the training state (exported as 1/α). */
  alpha: Tensor;
  /** θ [K, I/2]. */
  theta: Tensor;
  /** i32 [K, I] group-local pair indices. */
  pairs: Tensor;
  /** [K·I/2]: 1 for real pair slots, 0 for dummy slots (θ held at 0). */
  thetaKeep: Tensor;
  krot: number;
  /** Stage 2 quantizer parameters per flat group o·G + g: scale s and float zero point zpf (both [O·G]). */
  scale?: Tensor;
  zpf?: Tensor;
}

/** What the backward needs from the forward. */
export interface TransformSaved {
  R: Tensor; // F(W) = givens(W ⊙ α)
  U: Tensor; // Q(R)·Gᵀ, before the division by α
  scale: Tensor; // quantizer grid used (stage 1: from min/max; stage 2: the parameters)
  zpf: Tensor;
  stage: 1 | 2;
}

/** Ŵ for the current state. stage 1: grid from min/max of F(W); stage 2: grid from the parameters. */
export function transformForward(
  be: Backend, lin: ParoLinear, grid: QuantGrid, stage: 1 | 2, save: boolean,
): { What: Tensor; saved?: TransformSaved } {
  const Ws = be.mulCols(lin.W, lin.alpha);
  const R = be.givens(Ws, lin.pairs, lin.theta, grid.groupSize, 'forward');
  be.free(Ws);
  let rq: Tensor;
  let scale: Tensor;
  let zpf: Tensor;
  if (stage === 1) {
    ({ rq, scale, zpf } = be.fakeQuantMinMax(R, grid));
  } else {
    if (!lin.scale || !lin.zpf) throw new Error('stage 2 needs quantizer parameters');
    rq = be.fakeQuantParams(R, lin.scale, lin.zpf, grid);
    scale = lin.scale;
    zpf = lin.zpf;
  }
  const U = be.givens(rq, lin.pairs, lin.theta, grid.groupSize, 'inverse');
  be.free(rq);
  const What = be.divCols(U, lin.alpha);
  if (!save) {
    be.free(R, U);
    if (stage === 1) be.free(scale, zpf);
    return { What };
  }
  return { What, saved: { R, U, scale, zpf, stage } };
}

export function freeTransformSaved(be: Backend, s: TransformSaved): void {
  be.free(s.R, s.U);
  if (s.stage === 1) be.free(s.scale, s.zpf);
}

export interface TransformGrads {
  dtheta?: Tensor; // [K, I/2], dummy slots zeroed
  dalpha?: Tensor; // [I]
  dW?: Tensor; // [O, I]
  dscale?: Tensor; // [O·G]
}

/**
 * Backward of transformForward from dŴ (spec §5.3):
 *   Ŵ = U ⊘ α            → dU = dŴ ⊘ α,  dα −= Σ_o U·dŴ / α²
 *   U = givens⁻¹(Q(R))    → dQ, dθ (inverse layers)
 *   Q(R) (STE)            → dR (+ grid path: min/max in stage 1, ds in stage 2)
 *   R = givens(W ⊙ α)     → d(W⊙α), dθ (forward layers)
 *   W ⊙ α                 → dα += Σ_o W·d(W⊙α),  dW = d(W⊙α) ⊙ α
 */
export function transformBackward(
  be: Backend, lin: ParoLinear, grid: QuantGrid, s: TransformSaved, dWhat: Tensor,
): TransformGrads {
  const gs = grid.groupSize;
  const dU = be.divCols(dWhat, lin.alpha);
  const { dx: drq, dtheta: dthetaInv } = be.givensBackward(dU, s.U, lin.pairs, lin.theta, gs, 'inverse');
  be.free(dU);
  let dR: Tensor;
  let dscale: Tensor | undefined;
  if (s.stage === 1) {
    dR = be.fakeQuantMinMaxBackward(drq, s.R, s.scale, s.zpf, grid);
  } else {
    const r = be.fakeQuantParamsBackward(drq, s.R, s.scale, s.zpf, grid);
    dR = r.dr;
    dscale = r.dscale;
  }
  be.free(drq);
  const { dx: dWs, dtheta: dthetaFwd } = be.givensBackward(dR, s.R, lin.pairs, lin.theta, gs, 'forward');
  be.free(dR);
  if (s.stage === 2) {
    be.free(dthetaInv, dthetaFwd);
    const dW = be.mulCols(dWs, lin.alpha);
    be.free(dWs);
    return { dW, dscale };
  }
  // dθ: forward-layer and inverse-layer contributions, dummy slots masked.
  be.axpy(dthetaFwd, dthetaInv, 1);
  be.free(dthetaInv);
  const flat = be.reshape(dthetaFwd, [1, dthetaFwd.size]);
  const masked = be.mulCols(flat, lin.thetaKeep);
  be.free(dthetaFwd);
  const dtheta = be.reshape(masked, lin.theta.shape);
  // dα = Σ_o W·d(W⊙α) − Σ_o U·dŴ / α².
  const a1 = be.dotCols(lin.W, dWs);
  const a2 = be.dotCols(s.U, dWhat);
  const a2s = be.divCols(be.reshape(a2, [1, a2.size]), lin.alpha);
  const a2ss = be.divCols(a2s, lin.alpha);
  be.axpy(a1, be.reshape(a2ss, [a1.size]), -1);
  be.free(dWs, a2, a2s, a2ss);
  return { dtheta, dalpha: a1 };
}
