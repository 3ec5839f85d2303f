// The engine's one interface. Algorithms (model forward/backward, ParoQuant, DFlash) are written once against
// it; backends (cpu, cuda) implement it and hold no algorithm logic. Operations are coarse, so a GPU backend can
// fuse them, and synchronous in appearance: a GPU backend enqueues work on its stream and waits only where a host
// value is returned (toHost, toHostInt, sumSquares, hasNonFinite, argmaxRows, smoothL1) or in synchronize().
//
// Layout conventions: every tensor is row-major. Activations are [rows, features] with tokens flattened
// (rows = batch * seq). Linear weights are [out, in] as in the checkpoints; a linear layer is y = x·Wᵀ + b.
//
// Output dtypes (every backend follows this rule; argument checks are shared: shape-checks.ts):
//  - Storage ops give the dtype asked for or the input's: fromHost/fromBits/zeros (their dtype argument), cast (its
//    target), copy, reshape and gatherRows (the input's dtype).
//  - Statistics and small parameters are f32: rstd, lse, loss, dotCols, dw, dθ, the quantizer scale, zpf and dscale.
//  - Every other output (activations and their gradients) is f32 when every float input is f32. With bf16/f16 inputs
//    a backend returns either f32 (the cpu backend: it computes and stores in f32, so it never rounds an output) or
//    the inputs' storage dtype (the cuda backend: matmul, add, swiglu(+backward), rmsnormBackward dx and concatCols
//    take the common dtype of their float inputs, f32 when they differ; scale, mulCols, divCols, rmsnorm y, rope,
//    attention out, givens and fake-quantized r̂ the dtype of the data operand; gradients the dtype of the tensor they
//    differentiate or come from: dq of q, dk of k, dv of v, dx of dy, dr of dr̂). Code that needs f32 whatever the
//    backend (the residual stream) casts, as layer-ops.ts embedTokens does.
//  - matmul with `accumulate` writes into that tensor (f32, or the operands' dtype).
//  - matmul with `outDtype: 'f32'` returns f32 whatever the operands' dtype (bf16 × bf16 → f32 on tensor cores: the
//    mixed-precision linear of a compute dtype, model/layer-ops.ts); the cpu returns f32 either way.

export type DType = 'f32' | 'bf16' | 'f16' | 'i32';

/** A tensor handle. Its storage belongs to the backend that made it; free it with backend.free(). */
export interface Tensor {
  readonly shape: readonly number[];
  readonly dtype: DType;
  /** Number of elements (product of shape). */
  readonly size: number;
}

/** Attention visibility rule (which keys a query may see). */
export type AttentionMask =
  /** Query i of a sequence sits at absolute position qOffset + i; key j at position j. Visible iff j <= qOffset + i. */
  | { kind: 'causal'; qOffset: number }
  /**
   * Causal with an offset per batch entry: query i of entry b sits at position qOffsets[b] + i (qOffsets has ≥ batch
   * entries); visible iff j <= qOffsets[b] + i. Decoding sequences of different lengths in one call (dflash/batch-decode.ts):
   * each entry's keys past its own length are never read into the result.
   */
  | { kind: 'causalPerEntry'; qOffsets: Int32Array }
  /** Every query sees every key (within its own sequence). */
  | { kind: 'full' }
  /**
   * Query blocks anchored in a context (one sequence per batch entry): keys are [context (ctxLen rows) ; blocks
   * (nBlocks·blockSize rows)], queries are the block rows. A query of block n sees the context keys p < anchors[b·nBlocks
   * + n] (strict) and the blockSize keys of its own block (all of them: no causal order inside a block); a disabled
   * block (keep[...] = 0) sees nothing and gets a zero output. (DFlash drafter training, dflash-spec §2.5.)
   */
  | { kind: 'anchoredBlocks'; ctxLen: number; blockSize: number; nBlocks: number; anchors: Int32Array; keep: Uint8Array };

export interface AttentionShape {
  batch: number;
  /** Query rows per batch entry. */
  tq: number;
  /** Valid key rows per batch entry. */
  tk: number;
  /** Row stride of k and v per batch entry (>= tk); lets a KV cache with spare capacity be passed as is. */
  kvStride?: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  /** Softmax scale; default 1/sqrt(headDim). */
  scale?: number;
}

export interface MatmulOptions {
  /** Use Aᵀ: a is [K, M]. */
  transA?: boolean;
  /** Use Bᵀ: b is [N, K] (the linear-layer case). */
  transB?: boolean;
  /** Accumulate into this [M, N] f32 tensor instead of returning a new one: out += alpha·op(A)·op(B). */
  accumulate?: Tensor;
  alpha?: number;
  /**
   * Dtype of the returned tensor (not with accumulate): 'f32' or the operands' common dtype (the default). 16-bit
   * operands with 'f32' run one GEMM with f32 accumulation and an unrounded f32 result.
   */
  outDtype?: DType;
}

/** Quantizer grid of ParoQuant/RTN: asymmetric unsigned integers, groups of `groupSize` along each row. */
export interface QuantGrid {
  bits: number;
  groupSize: number;
}

export interface AdamWHyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 1-based step count after this update. */
  step: number;
}

export interface Backend {
  readonly name: 'cpu' | 'cuda';
  /** Human-readable device description (CPU model or GPU name). */
  readonly device: string;

  // ---- memory ----------------------------------------------------------------------------------
  /** Copy host data in. Float32Array for float dtypes (rounded to dtype), Int32Array for i32. */
  fromHost(data: Float32Array | Int32Array, shape: readonly number[], dtype?: DType): Tensor;
  /** Upload raw 16-bit storage (bf16 or f16 bit patterns) without rounding. */
  fromBits(bits: Uint16Array, shape: readonly number[], dtype: 'bf16' | 'f16'): Tensor;
  /** Copy to host as f32 (float dtypes) or i32. Synchronises. */
  toHost(t: Tensor): Float32Array;
  toHostInt(t: Tensor): Int32Array;
  zeros(shape: readonly number[], dtype?: DType): Tensor;
  fill(t: Tensor, value: number): void;
  free(...ts: (Tensor | undefined | null)[]): void;
  /** New tensor with the same data and a different shape (same size). May share storage: free only one. */
  reshape(t: Tensor, shape: readonly number[]): Tensor;
  cast(t: Tensor, dtype: DType): Tensor;
  copy(t: Tensor): Tensor;
  /** dst[rows dstRow..] = src[rows srcRow..] (count rows of the 2-D view [rows, cols]). */
  copyRows(dst: Tensor, dstRow: number, src: Tensor, srcRow: number, count: number): void;
  /** Gather rows of a [V, C] table by index: out[i] = table[ids[i]]. */
  gatherRows(table: Tensor, ids: Int32Array): Tensor;
  /**
   * Scatter rows in place: dst[rows[i]] = src[i] for i < rows.length (2-D views, same columns; src has rows.length rows),
   * converted to dst's dtype as copyRows does. Indices must be distinct (which of two writes lands is unspecified).
   */
  scatterRows(dst: Tensor, rows: Int32Array, src: Tensor): void;
  /** Concatenate 2-D tensors along columns: [R, C1] ‖ [R, C2] ‖ ... */
  concatCols(ts: readonly Tensor[]): Tensor;

  // ---- dense algebra -----------------------------------------------------------------------------
  /** op(A)·op(B) for 2-D tensors, f32 accumulation. */
  matmul(a: Tensor, b: Tensor, opts?: MatmulOptions): Tensor;
  /** out = a + b (same shape) or, if b is 1-D of the last dimension, a + b broadcast over rows. */
  add(a: Tensor, b: Tensor): Tensor;
  /** a += alpha·b in place. */
  axpy(a: Tensor, b: Tensor, alpha: number): void;
  /** out = a·alpha (elementwise). */
  scale(a: Tensor, alpha: number): Tensor;
  /** Multiply each column c of a 2-D tensor by v[c]; v is 1-D of the last dimension. */
  mulCols(a: Tensor, v: Tensor): Tensor;
  /** Divide each column c by v[c]. */
  divCols(a: Tensor, v: Tensor): Tensor;
  /** Σ a·b over all elements of each column: [C] (for channel-scale gradients). */
  dotCols(a: Tensor, b: Tensor): Tensor;
  /** Σ x² over all elements, as a host number (f64 accumulation). Synchronises. */
  sumSquares(a: Tensor): number;
  /** True if any element is NaN or ±Inf. Synchronises. */
  hasNonFinite(a: Tensor): boolean;

  // ---- transformer layers ----------------------------------------------------------------------------
  /** RMSNorm over the last dimension of a [R, C] tensor (R may be tokens·heads for per-head norms). */
  rmsnorm(x: Tensor, w: Tensor, eps: number): { y: Tensor; rstd: Tensor };
  /**
   * dx and, unless weightGrad is false, dw [C] (f32). Callers that discard dw (the ParoQuant block's frozen norms)
   * pass false: on the GPU dw is a second pass over dy and x.
   */
  rmsnormBackward(dy: Tensor, x: Tensor, w: Tensor, rstd: Tensor): { dx: Tensor; dw: Tensor };
  rmsnormBackward(dy: Tensor, x: Tensor, w: Tensor, rstd: Tensor, weightGrad: false): { dx: Tensor };
  /**
   * Rotary embedding (rotate-half layout) on [R, heads·headDim]. Row r has position positions[r]; invFreq has
   * headDim/2 entries. inverse = true rotates by −angle (the backward of the forward rotation).
   */
  rope(x: Tensor, positions: Int32Array, invFreq: Float32Array, headDim: number, inverse?: boolean): Tensor;
  /**
   * Scaled dot-product attention with GQA. q: [batch·tq, heads·headDim]; k, v: [batch·kvStride, kvHeads·headDim], or
   * more rows (only the first batch·kvStride are read: a cache of more sequences than the batch; not in the backward).
   * Returns the output [batch·tq, heads·headDim] and the softmax log-sum-exp [batch, heads, tq] for the backward.
   */
  attention(q: Tensor, k: Tensor, v: Tensor, shape: AttentionShape, mask: AttentionMask): { out: Tensor; lse: Tensor };
  attentionBackward(
    dout: Tensor, q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, shape: AttentionShape, mask: AttentionMask,
  ): { dq: Tensor; dk: Tensor; dv: Tensor };
  /** SwiGLU: silu(gate) ⊙ up. */
  swiglu(gate: Tensor, up: Tensor): Tensor;
  swigluBackward(dh: Tensor, gate: Tensor, up: Tensor): { dgate: Tensor; dup: Tensor };
  /**
   * Cross-entropy rows of logits [R, V] against labels (−1 = ignored). Returns per-row loss and log-sum-exp [R] and,
   * when rowWeights is given, the gradient dlogits = w_r·(softmax − onehot) (rows with label −1 get 0).
   */
  crossEntropy(logits: Tensor, labels: Int32Array, rowWeights?: Float32Array): { loss: Tensor; lse: Tensor; dlogits?: Tensor };
  /** Row-wise argmax of a [R, V] tensor. Synchronises. */
  argmaxRows(t: Tensor): Int32Array;

  // ---- ParoQuant transform ---------------------------------------------------------------------------
  /**
   * K layers of independent Givens rotations along the last dimension of x [R, I], groups of groupSize channels.
   * pairs: i32 [K, I] group-local indices, slot t of group g in layer r = (pairs[r, g·gs+2t], pairs[r, g·gs+2t+1]).
   * theta: f32 [K, I/2]. 'forward' applies layers 0..K−1 with +θ; 'inverse' applies K−1..0 with −θ.
   */
  givens(x: Tensor, pairs: Tensor, theta: Tensor, groupSize: number, direction: 'forward' | 'inverse'): Tensor;
  /**
   * Backward of givens() given its output y and output gradient dy: input gradient and the exact angle gradient
   * dθ [K, I/2] (summed over rows; for 'inverse' it is the gradient w.r.t. the same θ tensor). With wantTheta false
   * (ParoQuant stage 2: θ is frozen) only dx = the opposite direction's rotation of dy is formed, which a backend may
   * compute as a plain givens() pass (the cuda backend does: no layer outputs walked back, no angle sums).
   */
  givensBackward(
    dy: Tensor, y: Tensor, pairs: Tensor, theta: Tensor, groupSize: number, direction: 'forward' | 'inverse',
  ): { dx: Tensor; dtheta: Tensor };
  givensBackward(
    dy: Tensor, y: Tensor, pairs: Tensor, theta: Tensor, groupSize: number, direction: 'forward' | 'inverse', wantTheta: false,
  ): { dx: Tensor };
  /**
   * Fake quantization of r [O, I] with per-group min/max grid (ParoQuant stage 1 / RTN). Returns r̂ and the grid
   * (scale, zero-point float zpf = min/scale) per flat group o·G + g, each f32 [O·G].
   */
  fakeQuantMinMax(r: Tensor, grid: QuantGrid): { rq: Tensor; scale: Tensor; zpf: Tensor };
  /** STE backward of fakeQuantMinMax: dr = dr̂ + the scale path through each group's max/min (ties share). */
  fakeQuantMinMaxBackward(drq: Tensor, r: Tensor, scale: Tensor, zpf: Tensor, grid: QuantGrid): Tensor;
  /** Fake quantization with given grid parameters (stage 2): scale clamped to [1e-5, 1e5], z = clamp(−round(zpf)). */
  fakeQuantParams(r: Tensor, scale: Tensor, zpf: Tensor, grid: QuantGrid): Tensor;
  /** STE backward of fakeQuantParams: dr = dr̂; dscale[grp] = Σ dr̂·((q − z) − r/s); dzpf = 0 (exactly). */
  fakeQuantParamsBackward(drq: Tensor, r: Tensor, scale: Tensor, zpf: Tensor, grid: QuantGrid): { dr: Tensor; dscale: Tensor };
  /**
   * The integer codes of r [O, I] on a given grid, packed for export (paroquant-spec §7.1–7.2): per flat group
   * o·G + g, s = scale[·] used as given (no clamp) and z = clamp(−round(zpf[·]), 0, qmax);
   * q[o, i] = clamp(round(r[o, i] / s) + z, 0, qmax) with the f32 quotient rounded half to even, and 0 where that is
   * NaN — numerics/int-quant.ts quantizeCodes bit for bit. Returned transposed, 8 codes of consecutive rows per word:
   * i32 [I, O/8], nibble k of word (i, b) = q[b·8 + nibbleOrder[k], i] (nibbleOrder a permutation of 0..7; AutoAWQ's
   * is io/awq.ts AWQ_ORDER). bits ≤ 4, O % 8 = 0. Only the packed words need to leave the device.
   */
  quantizePacked(r: Tensor, scale: Tensor, zpf: Tensor, grid: QuantGrid, nibbleOrder: readonly number[]): Tensor;
  /**
   * The inverse of quantizePacked's packing, dequantized: words i32 [I, O/8] (same layout and nibbleOrder), integer
   * zero points zeros i32 [O·G] and scale f32 [O·G] per flat group o·G + g → ŵ f32 [O, I], ŵ[o, i] = (q − z)·s rounded
   * once to f32 (numerics/int-quant.ts dequantizeCodes bit for bit). Only the packed words need to reach the device.
   */
  dequantizePacked(words: Tensor, zeros: Tensor, scale: Tensor, groupSize: number, nibbleOrder: readonly number[]): Tensor;
  /**
   * Optional: the whole ParoQuant transform of one linear in one pass (paroquant-spec §2.2, §4), what the composition
   * mulCols → givens forward → fakeQuantMinMax | fakeQuantParams → givens inverse → divCols → cast computes
   * (src/paroquant/transform.ts transformForward): per row o and group g of W [O, I], v = W ⊙ α, the K layers with +θ
   * (pairs/theta as in givens()), the fake quantizer (params null: stage 1, grid from the group's min/max exactly as
   * fakeQuantMinMax, returned as scale/zpf f32 [O·G]; params given: stage 2, fakeQuantParams with them, nothing
   * returned for the grid), the K layers in reverse with −θ, ÷ α; What [O, I] is stored once, in outDtype (f32
   * arithmetic throughout, one rounding at the store). Nothing else is kept: paroTransformBackward recomputes.
   * Returns undefined, doing nothing, where this backend's kernel does not take the shape (the caller then runs the
   * composition); the cuda backend takes 32 ≤ groupSize ≤ 128 and 1 ≤ K ≤ 16. Backends without it (cpu) omit it.
   */
  paroTransform?(
    W: Tensor, alpha: Tensor, pairs: Tensor, theta: Tensor, grid: QuantGrid, params: { scale: Tensor; zpf: Tensor } | null,
    outDtype: DType, residual?: DType,
  ): { What: Tensor; scale?: Tensor; zpf?: Tensor; E?: Tensor; extremes?: Tensor } | undefined;
  /**
   * Set (to the dtype of E) where this backend wants the Gram backward of the transform (src/paroquant/transform-gram.ts):
   * transformForward then asks paroTransform for the residual outputs (the `residual` argument), which are:
   *  - E [O, I] in that dtype: Ŵ − W, both in f32 before the one rounding (Ŵ as stored in What, but unrounded);
   *  - stage 1 only, extremes i32 [O·G, 2·⌈gs/32⌉]: per flat group o·G + g, bit b of word w (w < ⌈gs/32⌉) is set where
   *    element 32w + b of the group's rotated row R (the fake quantizer's input) equals the group's maximum, and bit b
   *    of word ⌈gs/32⌉ + w where it equals the minimum (ties all set; a constant group sets both).
   * The three ops below then replace paroTransformBackward. A backend may return no residual for a shape its Gram ops
   * do not take, or for an outDtype it keeps exact (the cuda backend: f32), and transformForward then keeps the
   * recomputing backward for that linear. Undefined: the backward
   * recomputes (paroTransformBackward) or runs the composition.
   */
  paroResidualDtype?: DType;
  /**
   * Optional (with paroResidualDtype): the fake quantizer's scale gradient per flat group from the residual,
   * S[o·G + g] = Σ_e dŴ[o, g·gs + e]·E[o, g·gs + e] / s, s = scale[o·G + g] clamped to [1e-5, 1e5] (the quantizer's
   * scale as fakeQuantParams clamps it). Equal in exact arithmetic to fakeQuantParamsBackward's dscale and to the ds of
   * fakeQuantMinMaxBackward, because the rotations are orthogonal and the quantizer's STE passes dr̂ unchanged. f32 [O·G].
   */
  paroScaleGrad?(dWhat: Tensor, E: Tensor, scale: Tensor, grid: QuantGrid): Tensor;
  /**
   * Optional: the min/max path of the stage-1 quantizer as a Gram matrix in "virtual rows". Per flat group o·G + g,
   * c[o, g·gs + i] = (bit i of the max words ? S/qmax/nMax : 0) + (bit i of the min words ? −S/qmax/nMin : 0), with S
   * from paroScaleGrad and nMax, nMin the groups' popcounts (fakeQuantMinMaxBackward's gMax, gMin); returns f32 [gs, I]
   * out[k][g·gs + i] = α[g·gs + k] · Σ_o c[o, g·gs + i]·W[o, g·gs + k].
   */
  paroMinMaxGram?(S: Tensor, extremes: Tensor, W: Tensor, alpha: Tensor, grid: QuantGrid): Tensor;
  /**
   * Optional: per-group Gram matrices of a, b [O, I] (any float dtypes) in "virtual rows": f32 [gs, I],
   * out[k][g·gs + i] = (Σ_o a[o, g·gs + i]·b[o, g·gs + k])·α[g·gs + k]/α[g·gs + i] (alpha omitted: the plain sum).
   * Sums over o in a fixed order (reruns bit-identical); products of 16-bit inputs are exact.
   */
  groupGram?(a: Tensor, b: Tensor, groupSize: number, alpha?: Tensor): Tensor;
  /**
   * Optional: backward of paroTransform from dŴ [O, I] (transformBackward's composition in one pass per row and
   * group, the forward recomputed): stage 1 (scale/zpf: the forward's min/max grid) gives dtheta f32 [K, I/2], the sum
   * over rows of the forward- and inverse-layer angle gradients, NOT masked by the dummy slots, and dalpha f32 [I] =
   * Σ_o W·d(W⊙α) − (Σ_o U·dŴ)/α/α; stage 2 (scale/zpf: the quantizer parameters) gives dW f32 [O, I] = d(W⊙α)·α and
   * dscale f32 [O·G] (STE, spec §4.2). Sums over rows are reduced in a fixed order: reruns are bit-identical.
   * Returns undefined, doing nothing, for shapes paroTransform does not take.
   */
  paroTransformBackward?(
    dWhat: Tensor, W: Tensor, alpha: Tensor, pairs: Tensor, theta: Tensor, grid: QuantGrid, scale: Tensor, zpf: Tensor,
    stage: 1 | 2,
  ): { dtheta?: Tensor; dalpha?: Tensor; dW?: Tensor; dscale?: Tensor } | undefined;
  /** SmoothL1 (β = 1), mean over all elements; returns the loss (host) and dpred. */
  smoothL1(pred: Tensor, target: Tensor, withGrad: boolean): { loss: number; dpred?: Tensor };

  // ---- optimisation ----------------------------------------------------------------------------------------
  /** AdamW step in place (PyTorch semantics: decoupled decay first, bias-corrected moments, eps after the sqrt). */
  adamw(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, h: AdamWHyper): void;

  /** Wait for queued work (no-op on cpu). */
  synchronize(): void;

  /**
   * Query rows per 'anchoredBlocks' attention call that suit this backend's kernel: callers split such calls into groups
   * of whole blocks of about this many rows, each against only the keys it can see (block-attention.ts). Omitted: one
   * call for all blocks is best (a kernel that skips masked tiles itself).
   */
  readonly anchoredBlocksRowsPerCall?: number;

  /** Largest groupSize givens()/givensBackward() accept on this backend (a kernel limit); omitted: no limit. */
  readonly maxGivensGroupSize?: number;

  /** Device memory free / total, for backends with their own memory (undefined: activations live in host memory). */
  memoryInfo?(): { freeBytes: number; totalBytes: number };

  /**
   * Exact-f32 mode: compute f32 tensors with f32 arithmetic in every op, without the tensor-core shortcuts that round
   * f32 operands to bf16 (GPU attention). For reproducing FP32 reference runs; backends that are always exact omit it.
   */
  setExactF32?(on: boolean): void;
  /**
   * Host memory that uploads from are fast (page-locked on GPUs), for activations streamed from the host. Backends
   * without a notion of it may leave this out.
   */
  hostBuffer?(bytes: number): ArrayBuffer;
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function shapeString(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}
