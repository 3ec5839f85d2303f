// The ParoQuant transform of one linear layer (spec §2, §4, §5): the pseudo-quantized weight
// Ŵ = F⁻¹(Q(F(W))) with F(v) = (v ⊙ α)·G, and its hand-written backward to θ, α (stage 1) or W, s (stage 2).
import type { Backend, DType, QuantGrid, Tensor } from '../engine/backend.js';
import { gramBackwardStage1, gramBackwardStage2, hasGramBackward } from './transform-gram.js';

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

/**
 * What the backward needs from the forward. The composition keeps R and U; the fused path (Backend.paroTransform)
 * keeps the grid, and either nothing more (its backward recomputes the transform per row and group) or, where the
 * backend runs the Gram backward (transform-gram.ts), the residual E = Ŵ − W and in stage 1 the max/min masks.
 */
export interface TransformSaved {
  R?: Tensor; // F(W) = givens(W ⊙ α) (composition only)
  U?: Tensor; // Q(R)·Gᵀ, before the division by α (composition only)
  E?: Tensor; // Ŵ − W (Gram backward only)
  extremes?: Tensor; // stage 1: max/min masks of R per group (Gram backward only)
  scale: Tensor; // quantizer grid used (stage 1: from min/max; stage 2: the parameters)
  zpf: Tensor;
  stage: 1 | 2;
  fused: boolean;
}

/**
 * Ŵ for the current state. stage 1: grid from min/max of F(W); stage 2: grid from the parameters. outDtype: the
 * dtype Ŵ is returned in (the GEMMs' compute dtype; omitted: what the ops give, W's dtype on the cuda backend, f32 on
 * the cpu). Where the backend has the fused op (Backend.paroTransform) and it takes the shape, one pass computes Ŵ
 * and stores it in outDtype directly; otherwise the composition of the unfused ops runs and Ŵ is cast at the end.
 */
export function transformForward(
  be: Backend, lin: ParoLinear, grid: QuantGrid, stage: 1 | 2, save: boolean, outDtype?: DType,
): { What: Tensor; saved?: TransformSaved } {
  if (stage === 2 && (!lin.scale || !lin.zpf)) throw new Error('stage 2 needs quantizer parameters');
  const residual = save && hasGramBackward(be) ? be.paroResidualDtype : undefined;
  const fused = be.paroTransform?.(lin.W, lin.alpha, lin.pairs, lin.theta, grid,
    stage === 2 ? { scale: lin.scale!, zpf: lin.zpf! } : null, outDtype ?? lin.W.dtype, residual);
  if (fused) {
    const scale = stage === 2 ? lin.scale! : fused.scale;
    const zpf = stage === 2 ? lin.zpf! : fused.zpf;
    if (!scale || !zpf) throw new Error('paroTransform returned no quantizer grid in stage 1');
    if (!save) {
      if (stage === 1) be.free(scale, zpf);
      return { What: fused.What };
    }
    // A backend returns the residual only where its Gram ops take the shape; otherwise its fused backward recomputes.
    const gram = fused.E !== undefined && (stage === 2 || fused.extremes !== undefined);
    if (!gram) be.free(fused.E, fused.extremes);
    return { What: fused.What, saved: { scale, zpf, E: gram ? fused.E : undefined, extremes: gram ? fused.extremes : undefined, stage, fused: true } };
  }
  const Ws = be.mulCols(lin.W, lin.alpha);
  const R = be.givens(Ws, lin.pairs, lin.theta, grid.groupSize, 'forward');
  be.free(Ws);
  let rq: Tensor;
  let scale: Tensor;
  let zpf: Tensor;
  if (stage === 1) {
    ({ rq, scale, zpf } = be.fakeQuantMinMax(R, grid));
  } else {
    rq = be.fakeQuantParams(R, lin.scale!, lin.zpf!, grid);
    scale = lin.scale!;
    zpf = lin.zpf!;
  }
  const U = be.givens(rq, lin.pairs, lin.theta, grid.groupSize, 'inverse');
  be.free(rq);
  let What = be.divCols(U, lin.alpha);
  if (outDtype !== undefined && What.dtype !== outDtype) {
    const c = be.cast(What, outDtype);
    be.free(What);
    What = c;
  }
  if (!save) {
    be.free(R, U);
    if (stage === 1) be.free(scale, zpf);
    return { What };
  }
  return { What, saved: { R, U, scale, zpf, stage, fused: false } };
}

export function freeTransformSaved(be: Backend, s: TransformSaved): void {
  be.free(s.R, s.U, s.E, s.extremes);
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
 * dŴ may come in any float dtype (the block's bf16 weight gradients): the fused backward reads it as it is (the same
 * values as after a cast, without the cast's pass over O·I elements); the composition works on an f32 copy. dW is f32,
 * except with takeDWhat (the caller gives dŴ up: it is freed here or returned as dW): then the Gram backward's stage 2
 * returns dŴ itself as dW, in dŴ's dtype (AdamW reads any float gradient; the values are the f32 cast's).
 */
export function transformBackward(
  be: Backend, lin: ParoLinear, grid: QuantGrid, s: TransformSaved, dWhat: Tensor, opts: { takeDWhat?: boolean } = {},
): TransformGrads {
  // The Gram backward's stage 2: dW = dŴ (dŴ itself when the caller hands it over, else an f32 copy).
  if (s.fused && s.E && s.stage === 2) return gramBackwardStage2(be, grid, s.scale, { E: s.E }, dWhat, opts.takeDWhat);
  if (opts.takeDWhat) {
    // The caller hands dŴ over: freed here once the gradients are formed.
    try {
      return transformBackward(be, lin, grid, s, dWhat);
    } finally {
      be.free(dWhat);
    }
  }
  if (s.fused) return fusedBackward(be, lin, grid, s, dWhat);
  if (dWhat.dtype !== 'f32') {
    const d32 = be.cast(dWhat, 'f32');
    try {
      return transformBackward(be, lin, grid, s, d32);
    } finally {
      be.free(d32);
    }
  }
  if (!s.R || !s.U) throw new Error('transformBackward: the forward did not save R and U');
  const gs = grid.groupSize;
  const dU = be.divCols(dWhat, lin.alpha);
  if (s.stage === 2) {
    // θ is frozen in stage 2: only the input gradients of the two rotations, without angle sums.
    const { dx: drq2 } = be.givensBackward(dU, s.U, lin.pairs, lin.theta, gs, 'inverse', false);
    be.free(dU);
    const { dr, dscale } = be.fakeQuantParamsBackward(drq2, s.R, s.scale, s.zpf, grid);
    be.free(drq2);
    const { dx: dWs2 } = be.givensBackward(dr, s.R, lin.pairs, lin.theta, gs, 'forward', false);
    be.free(dr);
    const dW = be.mulCols(dWs2, lin.alpha);
    be.free(dWs2);
    return { dW, dscale };
  }
  const { dx: drq, dtheta: dthetaInv } = be.givensBackward(dU, s.U, lin.pairs, lin.theta, gs, 'inverse');
  be.free(dU);
  const dR = be.fakeQuantMinMaxBackward(drq, s.R, s.scale, s.zpf, grid);
  be.free(drq);
  const { dx: dWs, dtheta: dthetaFwd } = be.givensBackward(dR, s.R, lin.pairs, lin.theta, gs, 'forward');
  be.free(dR);
  // dθ: forward-layer and inverse-layer contributions, dummy slots masked.
  be.axpy(dthetaFwd, dthetaInv, 1);
  be.free(dthetaInv);
  const dtheta = maskDummySlots(be, lin, dthetaFwd);
  // dα = Σ_o W·d(W⊙α) − Σ_o U·dŴ / α².
  const a1 = be.dotCols(lin.W, dWs);
  const a2 = be.dotCols(s.U, dWhat);
  const a2s = be.divCols(be.reshape(a2, [1, a2.size]), lin.alpha);
  const a2ss = be.divCols(a2s, lin.alpha);
  be.axpy(a1, be.reshape(a2ss, [a1.size]), -1);
  be.free(dWs, a2, a2s, a2ss);
  return { dtheta, dalpha: a1 };
}

/** dθ [K, I/2] with the dummy slots zeroed (their angles stay 0); frees the input. */
function maskDummySlots(be: Backend, lin: ParoLinear, dthetaRaw: Tensor): Tensor {
  const flat = be.reshape(dthetaRaw, [1, dthetaRaw.size]);
  const masked = be.mulCols(flat, lin.thetaKeep);
  be.free(dthetaRaw);
  return be.reshape(masked, lin.theta.shape);
}

/** The backward of the fused forward: one Backend.paroTransformBackward call (it recomputes R and U itself). */
function fusedBackward(be: Backend, lin: ParoLinear, grid: QuantGrid, s: TransformSaved, dWhat: Tensor): TransformGrads {
  if (s.E) {
    // Stage 1 (transformBackward takes the Gram backward's stage 2 itself).
    const g = gramBackwardStage1(be, lin, grid, s.scale, { E: s.E, extremes: s.extremes }, dWhat);
    return { dtheta: maskDummySlots(be, lin, g.dtheta), dalpha: g.dalpha };
  }
  const g = be.paroTransformBackward?.(dWhat, lin.W, lin.alpha, lin.pairs, lin.theta, grid, s.scale, s.zpf, s.stage);
  if (!g) throw new Error('transformBackward: the backend ran the fused forward but has no fused backward for this shape');
  if (s.stage === 2) {
    if (!g.dW || !g.dscale) throw new Error('paroTransformBackward returned no dW/dscale in stage 2');
    be.free(g.dtheta, g.dalpha);
    return { dW: g.dW, dscale: g.dscale };
  }
  if (!g.dtheta || !g.dalpha) throw new Error('paroTransformBackward returned no dtheta/dalpha in stage 1');
  be.free(g.dW, g.dscale);
  return { dtheta: maskDummySlots(be, lin, g.dtheta), dalpha: g.dalpha };
}
