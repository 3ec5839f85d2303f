// The backward of the ParoQuant transform through per-group Gram matrices (docs/performance.md "The Gram backward").
// Per row and group the transform is X = W ⊙ α, R = G·X (K Givens layers), Q = fq(R), U = Gᵀ·Q, Ŵ = U ⊘ α. Its
// backward (transform.ts) walks every one of the O weight rows back through the 2K layers; two facts of exact
// arithmetic remove those walks:
//  1. G is orthogonal and the quantizer's STE passes dQ on unchanged, so the quantizer's scale gradient
//     S = Σ dQ·((q − z) − R/s) = dQ·(Q − R)/s = dU·(U − X)/s = Σ dŴ·E / s with E = Ŵ − W (kept by the forward), and in
//     stage 2 dW = α ⊙ Gᵀ·G·(dŴ ⊘ α) = dŴ.
//  2. A chain's angle gradient depends on its rows only through M = Σ_rows γ·yᵀ (output gradient ⊗ output state): the
//     O rows can be replaced by gs "virtual rows" per group whose Σ γ_k·y_kᵀ is the same matrix. With dR = G·dU + c (c:
//     the min/max path, two elements per row) and R = G·X, the forward chain's M is (G·A1 + C_X)·Gᵀ, A1 = Σ dU·Xᵀ,
//     C_X = Σ c·Xᵀ (virtual rows y_k = G·e_k, γ_k = G·A1·e_k + C_X·e_k); the inverse chain's is A2 = Σ dU·Uᵀ
//     (y_k = e_k, γ_k = A2·e_k). And dα_i = ((Gᵀ·C_X)_ii − Σ_o dŴ_oi·E_oi) / α_i.
// The O-row work is then three Gram products over the rows (tensor cores on the cuda backend) and one scale-gradient
// pass; the Givens layers run on gs virtual rows per group instead of O rows.
import type { Backend, QuantGrid, Tensor } from '../engine/backend.js';
import type { ParoLinear } from './transform.js';

/** What the forward keeps for this backward (paroTransform's residual outputs). */
export interface GramResidual {
  /** Ŵ − W [O, I] (the backend's residual dtype). */
  E: Tensor;
  /** Stage 1: the max/min masks of R per flat group (Backend.paroTransform's `extremes`). */
  extremes?: Tensor;
}

/** Whether this backend can run the Gram backward (it asks for the residual and has the three ops). */
export function hasGramBackward(be: Backend): boolean {
  return be.paroResidualDtype !== undefined && !!be.paroScaleGrad && !!be.paroMinMaxGram && !!be.groupGram;
}

// Identity virtual rows per backend and shape: [gs, I] with 1 at [k][g·gs + k]. θ-independent, so made once.
const identities = new WeakMap<Backend, Map<string, Tensor>>();

function identityRows(be: Backend, gs: number, I: number): Tensor {
  let byShape = identities.get(be);
  if (!byShape) {
    byShape = new Map();
    identities.set(be, byShape);
  }
  const key = `${gs}x${I}`;
  let t = byShape.get(key);
  if (!t) {
    const data = new Float32Array(gs * I);
    for (let k = 0; k < gs; k++) for (let g = 0; g < I / gs; g++) data[k * I + g * gs + k] = 1;
    t = be.fromHost(data, [gs, I], 'f32');
    byShape.set(key, t);
  }
  return t;
}

function ops(be: Backend): Required<Pick<Backend, 'paroScaleGrad' | 'paroMinMaxGram' | 'groupGram'>> {
  if (!be.paroScaleGrad || !be.paroMinMaxGram || !be.groupGram) throw new Error('the Gram backward needs paroScaleGrad, paroMinMaxGram and groupGram');
  return { paroScaleGrad: be.paroScaleGrad.bind(be), paroMinMaxGram: be.paroMinMaxGram.bind(be), groupGram: be.groupGram.bind(be) };
}

/**
 * Stage 1: dθ [K, I/2] (forward- plus inverse-layer terms, not masked) and dα [I] from dŴ [O, I] (any float dtype),
 * the forward's grid scale [O·G] and its residual.
 */
export function gramBackwardStage1(
  be: Backend, lin: ParoLinear, grid: QuantGrid, scale: Tensor, res: GramResidual, dWhat: Tensor,
): { dtheta: Tensor; dalpha: Tensor } {
  if (!res.extremes) throw new Error('gramBackwardStage1: the forward kept no max/min masks');
  const o = ops(be);
  const gs = grid.groupSize;
  const I = lin.inFeatures;
  const S = o.paroScaleGrad(dWhat, res.E, scale, grid);
  const Cx = o.paroMinMaxGram(S, res.extremes, lin.W, lin.alpha, grid); // C_X·e_k as rows
  be.free(S);
  const G1 = o.groupGram(dWhat, lin.W, gs, lin.alpha); // A1·e_k
  const Ge = o.groupGram(dWhat, res.E, gs, lin.alpha); // (A2 − A1)·e_k
  const id = identityRows(be, gs, I);
  // Forward chain: y_k = G·e_k, γ_k = G·A1·e_k + C_X·e_k.
  const Yf = be.givens(id, lin.pairs, lin.theta, gs, 'forward');
  const Gf = be.givens(G1, lin.pairs, lin.theta, gs, 'forward');
  be.axpy(Gf, Cx, 1);
  const fwd = be.givensBackward(Gf, Yf, lin.pairs, lin.theta, gs, 'forward');
  be.free(Gf, Yf, fwd.dx);
  // Inverse chain: y_k = e_k, γ_k = A2·e_k.
  be.axpy(G1, Ge, 1);
  const inv = be.givensBackward(G1, id, lin.pairs, lin.theta, gs, 'inverse');
  be.free(G1, inv.dx);
  be.axpy(fwd.dtheta, inv.dtheta, 1);
  be.free(inv.dtheta);
  // dα_i = ((Gᵀ·C_X)_ii − Σ_o dŴ_oi·E_oi) / α_i; the diagonals are the virtual rows' own channels.
  const T = be.givens(Cx, lin.pairs, lin.theta, gs, 'inverse');
  be.free(Cx);
  be.axpy(T, Ge, -1);
  be.free(Ge);
  const diag = be.dotCols(T, id);
  be.free(T);
  const dalpha = be.divCols(be.reshape(diag, [1, I]), lin.alpha);
  be.free(diag);
  return { dtheta: fwd.dtheta, dalpha: be.reshape(dalpha, [I]) };
}

/**
 * Stage 2: dW [O, I] (= dŴ) and dscale [O·G] from dŴ, the quantizer's scale parameters and the residual. dW is an f32
 * copy of dŴ, or with takeDWhat dŴ itself (the caller gave it up; its dtype).
 */
export function gramBackwardStage2(
  be: Backend, grid: QuantGrid, scale: Tensor, res: GramResidual, dWhat: Tensor, takeDWhat = false,
): { dW: Tensor; dscale: Tensor } {
  const dscale = ops(be).paroScaleGrad(dWhat, res.E, scale, grid);
  if (takeDWhat) return { dW: dWhat, dscale };
  const dW = dWhat.dtype === 'f32' ? be.copy(dWhat) : be.cast(dWhat, 'f32');
  return { dW, dscale };
}
