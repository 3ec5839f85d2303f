// One decoder block, forward with saved activations and backward to the weight gradients — written once against
// the Backend, for block-wise optimization (ParoQuant) where the block's linear weights are replaced by effective
// weights Ŵ (dense [out, in] tensors) and only dL/dŴ is needed (the block input is fixed data).
import type { Backend, Tensor } from '../engine/backend.js';
import type { ModelConfig } from '../io/config.js';
import type { LinearKey } from './weights.js';

/** Non-trained parts of a block (norms, biases) and the effective linear weights to use. */
export interface BlockParams {
  inputNorm: Tensor;
  postNorm: Tensor;
  qNorm?: Tensor;
  kNorm?: Tensor;
  /** Effective weights Ŵ [out, in] per linear. */
  weights: Record<LinearKey, Tensor>;
  biases: Partial<Record<LinearKey, Tensor>>;
}

/** Activations the backward needs. */
export interface BlockSaved {
  x: Tensor; h1: Tensor; rstd1: Tensor;
  q0: Tensor; k0: Tensor; qRstd?: Tensor; kRstd?: Tensor;
  qr: Tensor; kr: Tensor; v: Tensor; attn: Tensor; lse: Tensor;
  x1: Tensor; h2: Tensor; rstd2: Tensor;
  g: Tensor; u: Tensor; m: Tensor;
}

export interface BlockGeometry {
  /** Sequences in the batch; rows of x = nSeq · seqLen. */
  nSeq: number;
  seqLen: number;
  /** Positions of each row (0..seqLen−1 per sequence). */
  positions: Int32Array;
  invFreq: Float32Array;
}

export function positionsFor(nSeq: number, seqLen: number): Int32Array {
  const p = new Int32Array(nSeq * seqLen);
  for (let s = 0; s < nSeq; s++) for (let t = 0; t < seqLen; t++) p[s * seqLen + t] = t;
  return p;
}

/** Geometry of batches of n windows of seqLen tokens, made once per n (positions are the same for every call). */
export function geometryCache(seqLen: number, invFreq: Float32Array): (nSeq: number) => BlockGeometry {
  const cache = new Map<number, BlockGeometry>();
  return (nSeq) => {
    let g = cache.get(nSeq);
    if (!g) cache.set(nSeq, (g = { nSeq, seqLen, positions: positionsFor(nSeq, seqLen), invFreq }));
    return g;
  };
}

function linear(be: Backend, x: Tensor, w: Tensor, b?: Tensor): Tensor {
  const y = be.matmul(x, w, { transB: true });
  if (!b) return y;
  const yb = be.add(y, b);
  be.free(y);
  return yb;
}

/** Per-head RMSNorm on [rows, heads·D]; returns y (same shape) and rstd [rows·heads]. */
function headNormFwd(be: Backend, x: Tensor, w: Tensor, D: number, eps: number): { y: Tensor; rstd: Tensor } {
  const [rows, width] = x.shape;
  const { y, rstd } = be.rmsnorm(be.reshape(x, [(rows * width) / D, D]), w, eps);
  return { y: be.reshape(y, [rows, width]), rstd };
}

function headNormBwd(be: Backend, dy: Tensor, x: Tensor, w: Tensor, rstd: Tensor, D: number): Tensor {
  const [rows, width] = x.shape;
  const flat = [(rows * width) / D, D];
  const { dx, dw } = be.rmsnormBackward(be.reshape(dy, flat), be.reshape(x, flat), w, rstd);
  be.free(dw);
  return be.reshape(dx, [rows, width]);
}

/**
 * Block forward: y = x1 + down(swiglu(gate(h2), up(h2))), x1 = x + o(attn(rope(norm(q(h1))), ...)), h1 = norm(x).
 * With save = true the activations for blockBackward are returned (x is referenced, not copied).
 */
export function blockForward(
  be: Backend, cfg: ModelConfig, p: BlockParams, x: Tensor, geo: BlockGeometry, save: boolean,
): { y: Tensor; saved?: BlockSaved } {
  const D = cfg.headDim;
  const eps = cfg.rmsNormEps;
  const { y: h1, rstd: rstd1 } = be.rmsnorm(x, p.inputNorm, eps);
  const q0 = linear(be, h1, p.weights.q, p.biases.q);
  const k0 = linear(be, h1, p.weights.k, p.biases.k);
  const v = linear(be, h1, p.weights.v, p.biases.v);
  let qn = q0;
  let kn = k0;
  let qRstd: Tensor | undefined;
  let kRstd: Tensor | undefined;
  if (p.qNorm && p.kNorm) {
    const a = headNormFwd(be, q0, p.qNorm, D, eps);
    const b = headNormFwd(be, k0, p.kNorm, D, eps);
    qn = a.y; qRstd = a.rstd; kn = b.y; kRstd = b.rstd;
  }
  const qr = be.rope(qn, geo.positions, geo.invFreq, D);
  const kr = be.rope(kn, geo.positions, geo.invFreq, D);
  if (qn !== q0) be.free(qn, kn);
  const shape = { batch: geo.nSeq, tq: geo.seqLen, tk: geo.seqLen, heads: cfg.numHeads, kvHeads: cfg.numKvHeads, headDim: D };
  const { out: attn, lse } = be.attention(qr, kr, v, shape, { kind: 'causal', qOffset: 0 });
  const o = linear(be, attn, p.weights.o, p.biases.o);
  const x1 = be.add(x, o);
  be.free(o);
  const { y: h2, rstd: rstd2 } = be.rmsnorm(x1, p.postNorm, eps);
  const g = linear(be, h2, p.weights.gate, p.biases.gate);
  const u = linear(be, h2, p.weights.up, p.biases.up);
  const m = be.swiglu(g, u);
  const d = linear(be, m, p.weights.down, p.biases.down);
  const y = be.add(x1, d);
  be.free(d);
  if (!save) {
    be.free(h1, rstd1, q0, k0, qRstd, kRstd, qr, kr, v, attn, lse, x1, h2, rstd2, g, u, m);
    return { y };
  }
  return { y, saved: { x, h1, rstd1, q0, k0, qRstd, kRstd, qr, kr, v, attn, lse, x1, h2, rstd2, g, u, m } };
}

/** Free the saved activations (not x, which the caller owns). */
export function freeSaved(be: Backend, s: BlockSaved): void {
  be.free(s.h1, s.rstd1, s.q0, s.k0, s.qRstd, s.kRstd, s.qr, s.kr, s.v, s.attn, s.lse, s.x1, s.h2, s.rstd2, s.g, s.u, s.m);
}

/**
 * Backward of blockForward from dy to the gradients of the effective weights dŴ [out, in] (f32). The input
 * gradient is not formed: block-wise optimization keeps the block input fixed.
 */
export function blockBackward(
  be: Backend, cfg: ModelConfig, p: BlockParams, s: BlockSaved, dy: Tensor, geo: BlockGeometry,
): Record<LinearKey, Tensor> {
  const D = cfg.headDim;
  // MLP: y = x1 + m·Wdᵀ.
  const dWdown = be.matmul(dy, s.m, { transA: true }); // [H, I]
  const dm = be.matmul(dy, p.weights.down); // [N, I]
  const { dgate, dup } = be.swigluBackward(dm, s.g, s.u);
  be.free(dm);
  const dWgate = be.matmul(dgate, s.h2, { transA: true });
  const dWup = be.matmul(dup, s.h2, { transA: true });
  const dh2 = be.matmul(dgate, p.weights.gate);
  be.matmul(dup, p.weights.up, { accumulate: dh2 });
  be.free(dgate, dup);
  const { dx: dx1n, dw: dPost } = be.rmsnormBackward(dh2, s.x1, p.postNorm, s.rstd2);
  be.free(dh2, dPost);
  const dx1 = be.add(dy, dx1n); // residual
  be.free(dx1n);
  // Attention: x1 = x + attn·Woᵀ.
  const dWo = be.matmul(dx1, s.attn, { transA: true });
  const dattn = be.matmul(dx1, p.weights.o);
  be.free(dx1);
  const shape = { batch: geo.nSeq, tq: geo.seqLen, tk: geo.seqLen, heads: cfg.numHeads, kvHeads: cfg.numKvHeads, headDim: D };
  const { dq: dqr, dk: dkr, dv } = be.attentionBackward(dattn, s.qr, s.kr, s.v, s.attn, s.lse, shape, { kind: 'causal', qOffset: 0 });
  be.free(dattn);
  let dq = be.rope(dqr, geo.positions, geo.invFreq, D, true);
  let dk = be.rope(dkr, geo.positions, geo.invFreq, D, true);
  be.free(dqr, dkr);
  if (p.qNorm && p.kNorm && s.qRstd && s.kRstd) {
    const dq0 = headNormBwd(be, dq, s.q0, p.qNorm, s.qRstd, D);
    const dk0 = headNormBwd(be, dk, s.k0, p.kNorm, s.kRstd, D);
    be.free(dq, dk);
    dq = dq0;
    dk = dk0;
  }
  const dWq = be.matmul(dq, s.h1, { transA: true });
  const dWk = be.matmul(dk, s.h1, { transA: true });
  const dWv = be.matmul(dv, s.h1, { transA: true });
  be.free(dq, dk, dv);
  return { q: dWq, k: dWk, v: dWv, o: dWo, gate: dWgate, up: dWup, down: dWdown };
}
