// The CUDA backend: the Backend interface over the native addon. Arguments are checked here (shape-checks.ts, shared
// with the cpu backend); the addon only launches. Work is queued on one stream; toHost()/sumSquares()/hasNonFinite()/
// argmaxRows()/smoothL1() synchronise. Output dtypes follow the rule in backend.ts: storage follows the inputs, so
// bf16 stays bf16 (promote() gives the common dtype of mixed inputs).
import type {
  AdamWHyper, AttentionMask, AttentionShape, Backend, DType, MatmulOptions, QuantGrid, Tensor,
} from '../backend.js';
import { numel, shapeString } from '../backend.js';
import {
  checkAdamW, checkAttention, checkAttentionBackward, checkBroadcast, checkColumnVector, checkConcatCols, checkCopyRows,
  checkCrossEntropy, checkGatherRows, checkGivens, checkGrid, checkGridParams, checkRmsnorm, checkRmsnormBackward, checkRope,
  checkDequantizePacked, checkQuantizePacked, checkSameSize, checkScatterRows, checkSmoothL1, matmulDims, rowsCols,
  checkGroupGram, checkMinMaxGram, checkScaleGrad, extremeWords,
} from '../shape-checks.js';
import { bf16ToF32, f16ToF32 } from '../../numerics/half.js';
import type { NativeAddon, NativeAttnDims, NativeAttnMask, NativeDevice, NativeMemStats } from './addon.js';
import { DT_CODE, dtypeBytes, isFloat, promote } from './dtypes.js';
import { CudaTensor, StoragePool } from './tensor.js';

/** Largest Givens group the kernels take (one thread block per group). */
const CUDA_MAX_GROUP_SIZE = 1024;

/** Shapes the fused transform kernels take (native/src/ops.h kParoFused*): others run the composition. */
const FUSED_GROUP_SIZES = { min: 2, max: 128 } as const;
const FUSED_MAX_K = 16;
/** Group sizes groupGram takes (native/src/k_gram.cu: warp tiles of 32 rows × gs/2 columns, 8-column n-tiles). */
const GROUP_GRAM_SIZES: readonly number[] = [32, 64, 96, 128];

function code(t: Tensor): number {
  return DT_CODE[t.dtype];
}

/** A nibble order as the kernels take it: nibble k's row offset in bits 4k..4k+2 (AutoAWQ's is 0x75316420). */
function nibbleCode(order: readonly number[]): number {
  return order.reduce((acc, row, k) => acc + row * 16 ** k, 0);
}

export class CudaBackend implements Backend {
  readonly name = 'cuda' as const;
  readonly device: string;
  /** 'scalar' forces the f32 reference-style attention kernels (tests); 'auto' uses tensor cores for head dim 64/128. */
  attentionKernel: 'auto' | 'scalar' = 'auto';
  readonly maxGivensGroupSize = CUDA_MAX_GROUP_SIZE;
  /**
   * Whether paroTransform/paroTransformBackward run: on unless the environment sets PARO_FUSED_TRANSFORM=0. The
   * kernels in the Givens v2 layout measured 1.04× (stage 1) and 1.19× (stage 2) the composition's speed over the 8B
   * block's seven linears on an H100 (docs/gpu-validation.md run 18; the first fused kernels, run 9, were slower), with
   * Ŵ bit-identical and no R/U kept (1.5 GB less at 8B); false makes them decline, so src/paroquant/transform.ts runs
   * the composition of the unfused ops (benches set it to compare both paths).
   */
  fusedTransform = process.env.PARO_FUSED_TRANSFORM !== '0';
  /**
   * Backend.paroResidualDtype: bf16 E (and the stage-1 extremes) from paroTransform, for the Gram backward
   * (src/paroquant/transform-gram.ts), unless the environment sets PARO_GRAM_BACKWARD=0; undefined (the backward
   * recomputes) while fusedTransform is off. Benches set it to undefined to compare both backwards.
   */
  get paroResidualDtype(): DType | undefined {
    return this.fusedTransform ? this.gramResidual : undefined;
  }
  set paroResidualDtype(dt: DType | undefined) {
    this.gramResidual = dt;
  }
  private gramResidual: DType | undefined = process.env.PARO_GRAM_BACKWARD !== '0' ? 'bf16' : undefined;
  /** Exact-f32 mode (Backend.setExactF32): f32 attention runs on the scalar f32 kernels. */
  private exactF32 = false;
  private readonly pool: StoragePool;

  constructor(private readonly a: NativeAddon, readonly deviceIndex: number, readonly info: NativeDevice & { cublasVersion: number }) {
    this.device = `${info.name} (sm_${info.ccMajor}${info.ccMinor}, ${(info.totalMemoryBytes / 2 ** 30).toFixed(0)} GiB)`;
    this.pool = new StoragePool(a);
  }

  setExactF32(on: boolean): void {
    this.exactF32 = on;
  }

  // ---- helpers ----
  private scalarAttention(q: CudaTensor): boolean {
    return this.attentionKernel === 'scalar' || (this.exactF32 && q.dtype === 'f32');
  }

  private T(t: Tensor): CudaTensor {
    if (!(t instanceof CudaTensor)) throw new Error('tensor does not belong to the cuda backend');
    if (t.storage.freed) throw new Error(`tensor ${shapeString(t.shape)} was used after free()`);
    return t;
  }

  private F(t: Tensor, op: string): CudaTensor {
    const c = this.T(t);
    if (!isFloat(c.dtype)) throw new Error(`${op}: expected a float tensor, got ${c.dtype}`);
    return c;
  }

  private alloc(shape: readonly number[], dtype: DType): CudaTensor {
    return new CudaTensor([...shape], dtype, this.pool.allocate(numel(shape) * dtypeBytes(dtype)));
  }

  /** t itself when it has dtype dt, else a converted temporary (free it with dropTemp). */
  private as(t: CudaTensor, dt: DType): CudaTensor {
    return t.dtype === dt ? t : (this.cast(t, dt) as CudaTensor);
  }

  private dropTemp(t: CudaTensor, original: Tensor): void {
    if (t !== original) this.free(t);
  }

  memStats(): NativeMemStats {
    return this.a.memStats();
  }

  memoryInfo(): { freeBytes: number; totalBytes: number } {
    const m = this.a.memStats();
    return { freeBytes: m.freeBytes + m.cachedBytes, totalBytes: m.totalBytes };
  }

  hostBuffer(bytes: number): ArrayBuffer {
    return this.a.hostAlloc(bytes);
  }

  /** Return cached device memory to the driver (e.g. before another process needs the GPU). */
  emptyCache(): void {
    this.a.emptyCache();
  }

  /** Median ms of a direct cuBLAS BF16 GEMM C[M,N] = A[M,K]·B[N,K]ᵀ (benchmark reference, no Backend overhead). */
  benchCublasBf16(M: number, N: number, K: number, iters = 20): number {
    return this.a.benchCublas(M, N, K, iters);
  }

  /** Fill a float tensor with uniform values in [−1, 1) from a seed (device-side; benchmark inputs). */
  fillRandom(t: Tensor, seed: number): void {
    const c = this.F(t, 'fillRandom');
    this.a.random(c.ptr, code(c), c.size, seed >>> 0);
  }

  // ---- memory ----
  fromHost(data: Float32Array | Int32Array, shape: readonly number[], dtype?: DType): Tensor {
    const dt: DType = dtype ?? (data instanceof Int32Array ? 'i32' : 'f32');
    const n = numel(shape);
    if (data.length !== n) throw new Error(`tensor data length ${data.length} does not match shape ${shapeString(shape)}`);
    const t = this.alloc(shape, dt);
    if (dt === 'i32') {
      this.a.upload(t.ptr, data instanceof Int32Array ? data : Int32Array.from(data));
    } else if (dt === 'f32') {
      this.a.upload(t.ptr, data instanceof Float32Array ? data : Float32Array.from(data));
    } else {
      // Rounded on the device (round-to-nearest-even), from an f32 staging copy.
      const stage = this.alloc(shape, 'f32');
      this.a.upload(stage.ptr, data instanceof Float32Array ? data : Float32Array.from(data));
      this.a.cast(stage.ptr, DT_CODE.f32, t.ptr, DT_CODE[dt], n);
      this.free(stage);
    }
    return t;
  }

  fromBits(bits: Uint16Array, shape: readonly number[], dtype: 'bf16' | 'f16'): Tensor {
    if (bits.length !== numel(shape)) throw new Error(`tensor data length ${bits.length} does not match shape ${shapeString(shape)}`);
    const t = this.alloc(shape, dtype);
    this.a.upload(t.ptr, bits);
    return t;
  }

  toHost(t: Tensor): Float32Array {
    const c = this.T(t);
    if (c.dtype === 'f32') {
      const out = new Float32Array(c.size);
      this.a.download(c.ptr, out);
      return out;
    }
    if (c.dtype === 'i32') {
      const out = new Int32Array(c.size);
      this.a.download(c.ptr, out);
      return Float32Array.from(out);
    }
    const bits = new Uint16Array(c.size);
    this.a.download(c.ptr, bits);
    return c.dtype === 'bf16' ? bf16ToF32(bits) : f16ToF32(bits);
  }

  toHostInt(t: Tensor): Int32Array {
    const c = this.T(t);
    if (c.dtype === 'i32') {
      const out = new Int32Array(c.size);
      this.a.download(c.ptr, out);
      return out;
    }
    return Int32Array.from(this.toHost(c));
  }

  zeros(shape: readonly number[], dtype: DType = 'f32'): Tensor {
    const t = this.alloc(shape, dtype);
    this.a.memset(t.ptr, t.size * dtypeBytes(dtype));
    return t;
  }

  fill(t: Tensor, value: number): void {
    const c = this.T(t);
    this.a.fill(c.ptr, code(c), c.size, value);
  }

  free(...ts: (Tensor | undefined | null)[]): void {
    for (const t of ts) {
      if (t instanceof CudaTensor) this.pool.release(t.storage);
    }
  }

  reshape(t: Tensor, shape: readonly number[]): Tensor {
    const c = this.T(t);
    if (numel(shape) !== c.size) throw new Error(`cannot reshape ${shapeString(c.shape)} to ${shapeString(shape)}`);
    return new CudaTensor([...shape], c.dtype, c.storage);
  }

  cast(t: Tensor, dtype: DType): Tensor {
    const c = this.T(t);
    const out = this.alloc(c.shape, dtype);
    if (c.dtype === dtype) this.a.copy(out.ptr, c.ptr, c.size * dtypeBytes(dtype));
    else this.a.cast(c.ptr, code(c), out.ptr, DT_CODE[dtype], c.size);
    return out;
  }

  copy(t: Tensor): Tensor {
    const c = this.T(t);
    const out = this.alloc(c.shape, c.dtype);
    this.a.copy(out.ptr, c.ptr, c.size * dtypeBytes(c.dtype));
    return out;
  }

  copyRows(dst: Tensor, dstRow: number, src: Tensor, srcRow: number, count: number): void {
    const d = this.T(dst);
    const s = this.T(src);
    checkCopyRows(d, dstRow, s, srcRow, count);
    const cols = rowsCols(d)[1];
    const n = count * cols;
    const dOff = d.ptr + dstRow * cols * dtypeBytes(d.dtype);
    const sOff = s.ptr + srcRow * cols * dtypeBytes(s.dtype);
    if (d.dtype === s.dtype) this.a.copy(dOff, sOff, n * dtypeBytes(d.dtype));
    else this.a.cast(sOff, code(s), dOff, code(d), n);
  }

  scatterRows(dst: Tensor, rows: Int32Array, src: Tensor): void {
    const d = this.T(dst);
    const s = this.T(src);
    checkScatterRows(d, rows, s);
    if (rows.length > 0) this.a.scatterRows(s.ptr, code(s), d.ptr, code(d), rows, rowsCols(d)[1]);
  }

  gatherRows(table: Tensor, ids: Int32Array): Tensor {
    const t = this.T(table);
    checkGatherRows(t, ids);
    const C = rowsCols(t)[1];
    const out = this.alloc([ids.length, C], t.dtype);
    if (ids.length > 0) this.a.gatherRows(t.ptr, ids, out.ptr, C * dtypeBytes(t.dtype));
    return out;
  }

  concatCols(ts: readonly Tensor[]): Tensor {
    const cs = ts.map((t) => this.T(t));
    const rows = checkConcatCols(cs);
    const widths = cs.map((c) => rowsCols(c)[1]);
    const W = widths.reduce((x, y) => x + y, 0);
    const dt = promote(...cs.map((c) => c.dtype));
    const out = this.alloc([rows, W], dt);
    const eb = dtypeBytes(dt);
    let c0 = 0;
    cs.forEach((c, k) => {
      const w = widths[k];
      if (c.dtype === dt) this.a.copy2d(out.ptr + c0 * eb, W * eb, c.ptr, w * eb, w * eb, rows);
      else this.a.cast2d(c.ptr, code(c), w, out.ptr + c0 * eb, DT_CODE[dt], W, rows, w);
      c0 += w;
    });
    return out;
  }

  // ---- dense algebra ----
  matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
    const A0 = this.F(a, 'matmul');
    const B0 = this.F(b, 'matmul');
    const { M, K, N } = matmulDims(A0, B0, opts);
    const dt = promote(A0.dtype, B0.dtype);
    const A = this.as(A0, dt);
    const B = this.as(B0, dt);
    const alpha = opts.alpha ?? 1;
    let out: CudaTensor;
    let beta = 0;
    if (opts.accumulate) {
      out = this.F(opts.accumulate, 'matmul accumulate');
      if (out.dtype !== 'f32' && out.dtype !== dt) throw new Error(`matmul accumulate target must be f32 (got ${out.dtype})`);
      beta = 1;
    } else {
      out = this.alloc([M, N], opts.outDtype ?? dt);
    }
    if (K === 0) {
      if (!opts.accumulate) this.a.memset(out.ptr, out.size * dtypeBytes(out.dtype));
    } else {
      this.a.gemm(A.ptr, DT_CODE[dt], B.ptr, DT_CODE[dt], out.ptr, code(out), M, N, K, !!opts.transA, !!opts.transB, alpha, beta);
    }
    this.dropTemp(A, a);
    this.dropTemp(B, b);
    return out;
  }

  add(a: Tensor, b: Tensor): Tensor {
    const x = this.F(a, 'add');
    const y = this.F(b, 'add');
    checkBroadcast(x, y);
    const bcast = y.size !== x.size ? y.size : 0;
    const out = this.alloc(x.shape, promote(x.dtype, y.dtype));
    this.a.add(x.ptr, code(x), y.ptr, code(y), out.ptr, code(out), x.size, bcast);
    return out;
  }

  axpy(a: Tensor, b: Tensor, alpha: number): void {
    const x = this.F(a, 'axpy');
    const y = this.F(b, 'axpy');
    checkSameSize('axpy', x, y);
    this.a.axpy(x.ptr, code(x), y.ptr, code(y), x.size, alpha);
  }

  scale(a: Tensor, alpha: number): Tensor {
    const x = this.F(a, 'scale');
    const out = this.alloc(x.shape, x.dtype);
    this.a.scale(x.ptr, code(x), out.ptr, code(out), x.size, alpha);
    return out;
  }

  private colOp(a: Tensor, v: Tensor, div: boolean): Tensor {
    const op = div ? 'divCols' : 'mulCols';
    const x = this.F(a, op);
    const s = this.F(v, op);
    checkColumnVector(op, x, s);
    const C = rowsCols(x)[1];
    const out = this.alloc(x.shape, x.dtype);
    this.a.colOp(x.ptr, code(x), s.ptr, code(s), out.ptr, code(out), x.size, C, div);
    return out;
  }

  mulCols(a: Tensor, v: Tensor): Tensor {
    return this.colOp(a, v, false);
  }

  divCols(a: Tensor, v: Tensor): Tensor {
    return this.colOp(a, v, true);
  }

  dotCols(a: Tensor, b: Tensor): Tensor {
    const x = this.F(a, 'dotCols');
    const y = this.F(b, 'dotCols');
    checkSameSize('dotCols', x, y);
    const [rows, C] = rowsCols(x);
    const out = this.alloc([C], 'f32');
    this.a.colReduce(x.ptr, code(x), y.ptr, code(y), 0, rows, C, out.ptr);
    return out;
  }

  sumSquares(a: Tensor): number {
    const x = this.F(a, 'sumSquares');
    return this.a.sumSquares(x.ptr, code(x), x.size);
  }

  hasNonFinite(a: Tensor): boolean {
    const x = this.T(a);
    if (x.dtype === 'i32') return false;
    return this.a.nonFinite(x.ptr, code(x), x.size);
  }

  // ---- transformer layers ----
  rmsnorm(x: Tensor, w: Tensor, eps: number): { y: Tensor; rstd: Tensor } {
    const X = this.F(x, 'rmsnorm');
    const W = this.F(w, 'rmsnorm');
    checkRmsnorm(X, W);
    const [rows, C] = rowsCols(X);
    const y = this.alloc(X.shape, X.dtype);
    const rstd = this.alloc([rows], 'f32');
    this.a.rmsnorm(X.ptr, code(X), W.ptr, code(W), y.ptr, code(y), rstd.ptr, rows, C, eps);
    return { y, rstd };
  }

  rmsnormBackward(dy: Tensor, x: Tensor, w: Tensor, rstd: Tensor): { dx: Tensor; dw: Tensor };
  rmsnormBackward(dy: Tensor, x: Tensor, w: Tensor, rstd: Tensor, weightGrad: false): { dx: Tensor };
  rmsnormBackward(dy: Tensor, x: Tensor, w: Tensor, rstd: Tensor, weightGrad = true): { dx: Tensor; dw?: Tensor } {
    const DY = this.F(dy, 'rmsnormBackward');
    const X = this.F(x, 'rmsnormBackward');
    const W = this.F(w, 'rmsnormBackward');
    checkRmsnormBackward(DY, X, W, rstd);
    const [rows, C] = rowsCols(X);
    const R = this.as(this.F(rstd, 'rmsnormBackward'), 'f32');
    const dx = this.alloc(X.shape, promote(DY.dtype, X.dtype));
    const dw = weightGrad ? this.alloc([C], 'f32') : undefined;
    // A null dw pointer: the addon skips the column reduction.
    this.a.rmsnormBwd(DY.ptr, code(DY), X.ptr, code(X), W.ptr, code(W), R.ptr, dx.ptr, code(dx), dw ? dw.ptr : 0, rows, C);
    this.dropTemp(R, rstd);
    return dw ? { dx, dw } : { dx };
  }

  rope(x: Tensor, positions: Int32Array, invFreq: Float32Array, headDim: number, inverse = false): Tensor {
    const X = this.F(x, 'rope');
    checkRope(X, positions, invFreq, headDim);
    const [rows, width] = rowsCols(X);
    const out = this.alloc(X.shape, X.dtype);
    if (rows > 0) this.a.rope(X.ptr, code(X), out.ptr, code(out), rows, width, positions, invFreq, headDim, inverse);
    return out;
  }

  /**
   * The native kernels' dims and mask (the shapes are checked by the caller: checkAttention). The per-entry causal
   * offsets travel in the anchors argument (addon.cc MaskArgs uploads them for a causal mask).
   */
  private attnArgs(shape: AttentionShape, mask: AttentionMask): {
    dims: NativeAttnDims; m: NativeAttnMask; anchors: Int32Array | null; keep: Int32Array | null;
  } {
    const { batch, tq, tk, heads, kvHeads, headDim: D } = shape;
    const kvStride = shape.kvStride ?? tk;
    const dims: NativeAttnDims = { batch, tq, tk, kvStride, heads, kvHeads, headDim: D, scale: shape.scale ?? 1 / Math.sqrt(D) };
    const none = { qOffset: 0, ctxLen: 0, blockSize: 1, nBlocks: 0 };
    switch (mask.kind) {
      case 'causal':
        return { dims, m: { kind: 0, ...none, qOffset: mask.qOffset }, anchors: null, keep: null };
      case 'causalPerEntry':
        return { dims, m: { kind: 0, ...none }, anchors: Int32Array.from(mask.qOffsets.subarray(0, batch)), keep: null };
      case 'full':
        return { dims, m: { kind: 1, ...none }, anchors: null, keep: null };
      case 'anchoredBlocks': {
        const { ctxLen, blockSize, nBlocks } = mask;
        return {
          dims, m: { kind: 2, qOffset: 0, ctxLen, blockSize, nBlocks },
          anchors: Int32Array.from(mask.anchors.subarray(0, batch * nBlocks)),
          keep: Int32Array.from(mask.keep.subarray(0, batch * nBlocks)),
        };
      }
    }
  }

  attention(q: Tensor, k: Tensor, v: Tensor, shape: AttentionShape, mask: AttentionMask): { out: Tensor; lse: Tensor } {
    const Q = this.F(q, 'attention');
    const K = this.F(k, 'attention');
    const V = this.F(v, 'attention');
    checkAttention('attention', Q, K, V, shape, mask);
    const { dims, m, anchors, keep } = this.attnArgs(shape, mask);
    const out = this.alloc([shape.batch * shape.tq, shape.heads * shape.headDim], Q.dtype);
    const lse = this.alloc([shape.batch, shape.heads, shape.tq], 'f32');
    this.a.attention(Q.ptr, code(Q), K.ptr, code(K), V.ptr, code(V), out.ptr, code(out), lse.ptr, dims, m, anchors, keep,
      this.scalarAttention(Q));
    return { out, lse };
  }

  attentionBackward(
    dout: Tensor, q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, shape: AttentionShape, mask: AttentionMask,
  ): { dq: Tensor; dk: Tensor; dv: Tensor } {
    const Q = this.F(q, 'attentionBackward');
    const K = this.F(k, 'attentionBackward');
    const V = this.F(v, 'attentionBackward');
    const dO = this.F(dout, 'attentionBackward');
    const O = this.F(out, 'attentionBackward');
    checkAttentionBackward(dO, Q, K, V, O, lse, shape, mask);
    const { dims, m, anchors, keep } = this.attnArgs(shape, mask);
    const L = this.as(this.F(lse, 'attentionBackward'), 'f32');
    const dq = this.alloc(Q.shape, Q.dtype);
    const dk = this.alloc(K.shape, K.dtype);
    const dv = this.alloc(V.shape, V.dtype);
    this.a.attentionBwd(dO.ptr, code(dO), Q.ptr, code(Q), K.ptr, code(K), V.ptr, code(V), O.ptr, code(O), L.ptr,
      dq.ptr, code(dq), dk.ptr, code(dk), dv.ptr, code(dv), dims, m, anchors, keep, this.scalarAttention(Q));
    this.dropTemp(L, lse);
    return { dq, dk, dv };
  }

  swiglu(gate: Tensor, up: Tensor): Tensor {
    const G = this.F(gate, 'swiglu');
    const U = this.F(up, 'swiglu');
    checkSameSize('swiglu', G, U);
    const h = this.alloc(G.shape, promote(G.dtype, U.dtype));
    this.a.swiglu(G.ptr, code(G), U.ptr, code(U), h.ptr, code(h), G.size);
    return h;
  }

  swigluBackward(dh: Tensor, gate: Tensor, up: Tensor): { dgate: Tensor; dup: Tensor } {
    const DH = this.F(dh, 'swigluBackward');
    const G = this.F(gate, 'swigluBackward');
    const U = this.F(up, 'swigluBackward');
    checkSameSize('swigluBackward', G, U);
    checkSameSize('swigluBackward', DH, G);
    const dgate = this.alloc(G.shape, promote(DH.dtype, G.dtype));
    const dup = this.alloc(U.shape, promote(DH.dtype, U.dtype));
    this.a.swigluBwd(DH.ptr, code(DH), G.ptr, code(G), U.ptr, code(U), dgate.ptr, code(dgate), dup.ptr, code(dup), G.size);
    return { dgate, dup };
  }

  crossEntropy(logits: Tensor, labels: Int32Array, rowWeights?: Float32Array): { loss: Tensor; lse: Tensor; dlogits?: Tensor } {
    const Z = this.F(logits, 'crossEntropy');
    checkCrossEntropy(Z, labels, rowWeights);
    const [rows, V] = rowsCols(Z);
    const loss = this.alloc([rows], 'f32');
    const lse = this.alloc([rows], 'f32');
    const dlogits = rowWeights ? this.alloc(Z.shape, Z.dtype) : undefined;
    if (rows > 0) {
      this.a.crossEntropy(Z.ptr, code(Z), rows, V, labels, rowWeights ?? null, loss.ptr, lse.ptr, dlogits?.ptr ?? 0,
        dlogits ? code(dlogits) : 0);
    }
    return { loss, lse, dlogits };
  }

  argmaxRows(t: Tensor): Int32Array {
    const X = this.F(t, 'argmaxRows');
    const [rows, V] = rowsCols(X);
    if (rows === 0) return new Int32Array(0);
    return this.a.argmax(X.ptr, code(X), rows, V);
  }

  // ---- ParoQuant transform ----
  private givensArgs(x: CudaTensor, pairs: Tensor, theta: Tensor, groupSize: number, op: string): {
    rows: number; I: number; K: number; P: CudaTensor; TH: CudaTensor;
  } {
    const P = this.T(pairs);
    const { rows, I, K } = checkGivens(op, x, P, theta, groupSize);
    // This backend's limit: one thread block holds a group.
    if (groupSize > CUDA_MAX_GROUP_SIZE) throw new Error(`${op}: groupSize ${groupSize} exceeds the cuda backend's limit of ${CUDA_MAX_GROUP_SIZE}`);
    return { rows, I, K, P, TH: this.as(this.F(theta, op), 'f32') };
  }

  givens(x: Tensor, pairs: Tensor, theta: Tensor, groupSize: number, direction: 'forward' | 'inverse'): Tensor {
    const X = this.F(x, 'givens');
    const { rows, I, K, P, TH } = this.givensArgs(X, pairs, theta, groupSize, 'givens');
    const y = this.alloc(X.shape, X.dtype);
    this.a.givens(X.ptr, code(X), y.ptr, code(y), rows, I, P.ptr, TH.ptr, K, groupSize, direction === 'inverse');
    this.dropTemp(TH, theta);
    return y;
  }

  givensBackward(
    dy: Tensor, y: Tensor, pairs: Tensor, theta: Tensor, groupSize: number, direction: 'forward' | 'inverse',
  ): { dx: Tensor; dtheta: Tensor };
  givensBackward(
    dy: Tensor, y: Tensor, pairs: Tensor, theta: Tensor, groupSize: number, direction: 'forward' | 'inverse', wantTheta: false,
  ): { dx: Tensor };
  givensBackward(
    dy: Tensor, y: Tensor, pairs: Tensor, theta: Tensor, groupSize: number, direction: 'forward' | 'inverse', wantTheta = true,
  ): { dx: Tensor; dtheta?: Tensor } {
    const Y = this.F(y, 'givensBackward');
    const DY = this.F(dy, 'givensBackward');
    checkSameSize('givensBackward', DY, Y);
    // dx = dy·Mᵀ for the layers' product M: the opposite direction's pass (the forward kernel; half the backward's time).
    if (!wantTheta) return { dx: this.givens(DY, pairs, theta, groupSize, direction === 'forward' ? 'inverse' : 'forward') };
    const { rows, I, K, P, TH } = this.givensArgs(Y, pairs, theta, groupSize, 'givensBackward');
    const dx = this.alloc(Y.shape, DY.dtype);
    const dtheta = this.alloc(theta.shape, 'f32');
    this.a.givensBwd(DY.ptr, code(DY), Y.ptr, code(Y), dx.ptr, code(dx), dtheta.ptr, rows, I, P.ptr, TH.ptr, K, groupSize,
      direction === 'inverse');
    this.dropTemp(TH, theta);
    return { dx, dtheta };
  }

  private grid(r: CudaTensor, grid: QuantGrid, op: string): { nGroups: number; qmax: number } {
    return checkGrid(op, r, grid);
  }

  private gridParams(scale: Tensor, zpf: Tensor, nGroups: number, op: string): { S: CudaTensor; Z: CudaTensor } {
    checkGridParams(op, scale, zpf, nGroups);
    return { S: this.as(this.F(scale, op), 'f32'), Z: this.as(this.F(zpf, op), 'f32') };
  }

  fakeQuantMinMax(r: Tensor, grid: QuantGrid): { rq: Tensor; scale: Tensor; zpf: Tensor } {
    const R = this.F(r, 'fakeQuantMinMax');
    const { nGroups, qmax } = this.grid(R, grid, 'fakeQuantMinMax');
    const rq = this.alloc(R.shape, R.dtype);
    const scale = this.alloc([nGroups], 'f32');
    const zpf = this.alloc([nGroups], 'f32');
    this.a.fqMinMax(R.ptr, code(R), rq.ptr, code(rq), scale.ptr, zpf.ptr, nGroups, grid.groupSize, qmax);
    return { rq, scale, zpf };
  }

  fakeQuantMinMaxBackward(drq: Tensor, r: Tensor, scale: Tensor, zpf: Tensor, grid: QuantGrid): Tensor {
    const R = this.F(r, 'fakeQuantMinMaxBackward');
    const D = this.F(drq, 'fakeQuantMinMaxBackward');
    checkSameSize('fakeQuantMinMaxBackward', D, R);
    const { nGroups, qmax } = this.grid(R, grid, 'fakeQuantMinMaxBackward');
    const { S, Z } = this.gridParams(scale, zpf, nGroups, 'fakeQuantMinMaxBackward');
    const dr = this.alloc(R.shape, D.dtype);
    this.a.fqMinMaxBwd(D.ptr, code(D), R.ptr, code(R), S.ptr, Z.ptr, dr.ptr, code(dr), nGroups, grid.groupSize, qmax);
    this.dropTemp(S, scale);
    this.dropTemp(Z, zpf);
    return dr;
  }

  fakeQuantParams(r: Tensor, scale: Tensor, zpf: Tensor, grid: QuantGrid): Tensor {
    const R = this.F(r, 'fakeQuantParams');
    const { nGroups, qmax } = this.grid(R, grid, 'fakeQuantParams');
    const { S, Z } = this.gridParams(scale, zpf, nGroups, 'fakeQuantParams');
    const rq = this.alloc(R.shape, R.dtype);
    this.a.fqParams(R.ptr, code(R), S.ptr, Z.ptr, rq.ptr, code(rq), nGroups, grid.groupSize, qmax);
    this.dropTemp(S, scale);
    this.dropTemp(Z, zpf);
    return rq;
  }

  fakeQuantParamsBackward(drq: Tensor, r: Tensor, scale: Tensor, zpf: Tensor, grid: QuantGrid): { dr: Tensor; dscale: Tensor } {
    const R = this.F(r, 'fakeQuantParamsBackward');
    const D = this.F(drq, 'fakeQuantParamsBackward');
    checkSameSize('fakeQuantParamsBackward', D, R);
    const { nGroups, qmax } = this.grid(R, grid, 'fakeQuantParamsBackward');
    const { S, Z } = this.gridParams(scale, zpf, nGroups, 'fakeQuantParamsBackward');
    const dr = this.alloc(R.shape, D.dtype);
    const dscale = this.alloc(scale.shape, 'f32');
    this.a.fqParamsBwd(D.ptr, code(D), R.ptr, code(R), S.ptr, Z.ptr, dr.ptr, code(dr), dscale.ptr, nGroups, grid.groupSize, qmax);
    this.dropTemp(S, scale);
    this.dropTemp(Z, zpf);
    return { dr, dscale };
  }

  /** Checked shapes of a fused transform call; null where the kernels do not take it (or fusedTransform is off). */
  private fusedArgs(op: string, W: CudaTensor, alpha: Tensor, pairs: Tensor, theta: Tensor, grid: QuantGrid): {
    O: number; I: number; K: number; nGroups: number; qmax: number;
  } | null {
    const { rows: O, I, K } = checkGivens(op, W, this.T(pairs), theta, grid.groupSize);
    const { nGroups, qmax } = checkGrid(op, W, grid);
    checkColumnVector(op, W, alpha);
    const gs = grid.groupSize;
    if (!this.fusedTransform || gs < FUSED_GROUP_SIZES.min || gs > FUSED_GROUP_SIZES.max || K < 1 || K > FUSED_MAX_K) return null;
    return { O, I, K, nGroups, qmax };
  }

  paroTransform(
    W: Tensor, alpha: Tensor, pairs: Tensor, theta: Tensor, grid: QuantGrid, params: { scale: Tensor; zpf: Tensor } | null,
    outDtype: DType, residual?: DType,
  ): { What: Tensor; scale?: Tensor; zpf?: Tensor; E?: Tensor; extremes?: Tensor } | undefined {
    const op = 'paroTransform';
    const Wt = this.F(W, op);
    const args = this.fusedArgs(op, Wt, alpha, pairs, theta, grid);
    if (!args || !isFloat(outDtype) || (residual !== undefined && !isFloat(residual))) return undefined;
    const { O, I, K, nGroups, qmax } = args;
    if (params) checkGridParams(op, params.scale, params.zpf, nGroups);
    const P = this.T(pairs);
    const A = this.as(this.F(alpha, op), 'f32');
    const TH = this.as(this.F(theta, op), 'f32');
    const S = params ? this.as(this.F(params.scale, op), 'f32') : null;
    const Z = params ? this.as(this.F(params.zpf, op), 'f32') : null;
    const What = this.alloc(Wt.shape, outDtype);
    const scale = params ? null : this.alloc([nGroups], 'f32');
    const zpf = params ? null : this.alloc([nGroups], 'f32');
    // The residual only where the Gram ops take the group size, and for a 16-bit Ŵ (the GEMMs' compute dtype): an f32
    // compute dtype asks for f32 arithmetic, which the recomputing backward keeps throughout (the Gram backward's bf16
    // residual and TF32 products differ from it by ≈ 1e-3). Otherwise transformForward keeps the recomputing backward.
    const resid = residual !== undefined && GROUP_GRAM_SIZES.includes(grid.groupSize) && outDtype !== 'f32' ? residual : undefined;
    const E = resid ? this.alloc(Wt.shape, resid) : null;
    const extremes = resid && !params ? this.alloc([nGroups, 2 * extremeWords(grid.groupSize)], 'i32') : null;
    this.a.paroTransform(Wt.ptr, code(Wt), A.ptr, P.ptr, TH.ptr, S?.ptr ?? 0, Z?.ptr ?? 0, What.ptr, code(What),
      scale?.ptr ?? 0, zpf?.ptr ?? 0, O, I, K, grid.groupSize, qmax, E?.ptr ?? 0, E ? code(E) : 0, extremes?.ptr ?? 0);
    this.dropTemp(A, alpha);
    this.dropTemp(TH, theta);
    const kept = E ? (extremes ? { E, extremes } : { E }) : {};
    if (params) {
      this.dropTemp(S!, params.scale);
      this.dropTemp(Z!, params.zpf);
      return { What, ...kept };
    }
    return { What, scale: scale!, zpf: zpf!, ...kept };
  }

  paroScaleGrad(dWhat: Tensor, E: Tensor, scale: Tensor, grid: QuantGrid): Tensor {
    const op = 'paroScaleGrad';
    const D = this.F(dWhat, op);
    const Et = this.F(E, op);
    const { nGroups } = checkScaleGrad(D, Et, scale, grid);
    const Sc = this.as(this.F(scale, op), 'f32');
    const S = this.alloc([nGroups], 'f32');
    this.a.paroScaleGrad(D.ptr, code(D), Et.ptr, code(Et), Sc.ptr, S.ptr, nGroups, grid.groupSize);
    this.dropTemp(Sc, scale);
    return S;
  }

  paroMinMaxGram(S: Tensor, extremes: Tensor, W: Tensor, alpha: Tensor, grid: QuantGrid): Tensor {
    const op = 'paroMinMaxGram';
    const Wt = this.F(W, op);
    const X = this.T(extremes);
    const { O, I, qmax } = checkMinMaxGram(S, X, Wt, alpha, grid);
    const gs = grid.groupSize;
    // Its rows go through groupGram's tensor-core kernel (native/src/k_paro_resid.cu).
    if (!GROUP_GRAM_SIZES.includes(gs)) throw new Error(`${op}: groupSize ${gs} is not one of ${GROUP_GRAM_SIZES.join(', ')}`);
    const St = this.as(this.F(S, op), 'f32');
    const A = this.as(this.F(alpha, op), 'f32');
    const out = this.alloc([gs, I], 'f32');
    this.a.paroMinMaxGram(St.ptr, X.ptr, Wt.ptr, code(Wt), A.ptr, out.ptr, O, I, gs, qmax);
    this.dropTemp(St, S);
    this.dropTemp(A, alpha);
    return out;
  }

  groupGram(a: Tensor, b: Tensor, groupSize: number, alpha?: Tensor): Tensor {
    const op = 'groupGram';
    const At = this.F(a, op);
    const Bt = this.F(b, op);
    const { O, I } = checkGroupGram(At, Bt, groupSize, alpha);
    if (!GROUP_GRAM_SIZES.includes(groupSize)) throw new Error(`${op}: groupSize ${groupSize} is not one of ${GROUP_GRAM_SIZES.join(', ')}`);
    const Al = alpha ? this.as(this.F(alpha, op), 'f32') : null;
    const out = this.alloc([groupSize, I], 'f32');
    this.a.groupGram(At.ptr, code(At), Bt.ptr, code(Bt), Al?.ptr ?? 0, out.ptr, O, I, groupSize);
    if (Al) this.dropTemp(Al, alpha!);
    return out;
  }

  paroTransformBackward(
    dWhat: Tensor, W: Tensor, alpha: Tensor, pairs: Tensor, theta: Tensor, grid: QuantGrid, scale: Tensor, zpf: Tensor,
    stage: 1 | 2,
  ): { dtheta?: Tensor; dalpha?: Tensor; dW?: Tensor; dscale?: Tensor } | undefined {
    const op = 'paroTransformBackward';
    const Wt = this.F(W, op);
    const D = this.F(dWhat, op);
    checkSameSize(op, D, Wt);
    const args = this.fusedArgs(op, Wt, alpha, pairs, theta, grid);
    if (!args) return undefined;
    const { O, I, K, nGroups, qmax } = args;
    checkGridParams(op, scale, zpf, nGroups);
    const P = this.T(pairs);
    const A = this.as(this.F(alpha, op), 'f32');
    const TH = this.as(this.F(theta, op), 'f32');
    const S = this.as(this.F(scale, op), 'f32');
    const Z = this.as(this.F(zpf, op), 'f32');
    const dtheta = stage === 1 ? this.alloc(theta.shape, 'f32') : null;
    const dalpha = stage === 1 ? this.alloc([I], 'f32') : null;
    const dW = stage === 2 ? this.alloc(Wt.shape, 'f32') : null;
    const dscale = stage === 2 ? this.alloc([nGroups], 'f32') : null;
    this.a.paroTransformBwd(D.ptr, code(D), Wt.ptr, code(Wt), A.ptr, P.ptr, TH.ptr, S.ptr, Z.ptr, stage, dtheta?.ptr ?? 0,
      dalpha?.ptr ?? 0, dW?.ptr ?? 0, DT_CODE.f32, dscale?.ptr ?? 0, O, I, K, grid.groupSize, qmax);
    this.dropTemp(A, alpha);
    this.dropTemp(TH, theta);
    this.dropTemp(S, scale);
    this.dropTemp(Z, zpf);
    return stage === 1 ? { dtheta: dtheta!, dalpha: dalpha! } : { dW: dW!, dscale: dscale! };
  }

  quantizePacked(r: Tensor, scale: Tensor, zpf: Tensor, grid: QuantGrid, nibbleOrder: readonly number[]): Tensor {
    const R = this.F(r, 'quantizePacked');
    const { O, I, qmax } = checkQuantizePacked(R, scale, zpf, grid, nibbleOrder);
    const S = this.as(this.F(scale, 'quantizePacked'), 'f32');
    const Z = this.as(this.F(zpf, 'quantizePacked'), 'f32');
    const words = this.alloc([I, O / 8], 'i32');
    this.a.quantizePacked(R.ptr, code(R), S.ptr, Z.ptr, words.ptr, O, I, grid.groupSize, qmax, nibbleCode(nibbleOrder));
    this.dropTemp(S, scale);
    this.dropTemp(Z, zpf);
    return words;
  }

  dequantizePacked(words: Tensor, zeros: Tensor, scale: Tensor, groupSize: number, nibbleOrder: readonly number[]): Tensor {
    const W = this.T(words);
    const Zr = this.T(zeros);
    const { O, I } = checkDequantizePacked(W, Zr, scale, groupSize, nibbleOrder);
    const S = this.as(this.F(scale, 'dequantizePacked'), 'f32');
    const out = this.alloc([O, I], 'f32');
    this.a.dequantizePacked(W.ptr, Zr.ptr, S.ptr, out.ptr, O, I, groupSize, nibbleCode(nibbleOrder));
    this.dropTemp(S, scale);
    return out;
  }

  smoothL1(pred: Tensor, target: Tensor, withGrad: boolean): { loss: number; dpred?: Tensor } {
    const P = this.F(pred, 'smoothL1');
    const T = this.F(target, 'smoothL1');
    checkSmoothL1(P, T);
    const dpred = withGrad ? this.alloc(P.shape, P.dtype) : undefined;
    const sum = this.a.smoothL1(P.ptr, code(P), T.ptr, code(T), P.size, dpred?.ptr ?? 0, dpred ? code(dpred) : 0);
    return dpred ? { loss: sum / P.size, dpred } : { loss: sum / P.size };
  }

  // ---- optimisation ----
  adamw(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, h: AdamWHyper): void {
    const p = this.F(param, 'adamw');
    const g = this.F(grad, 'adamw');
    const M = this.F(m, 'adamw');
    const Vt = this.F(v, 'adamw');
    checkAdamW(p, g, M, Vt, h.step);
    const stepSize = h.lr / (1 - h.beta1 ** h.step);
    const sqrtBc2 = Math.sqrt(1 - h.beta2 ** h.step);
    this.a.adamw(p.ptr, code(p), g.ptr, code(g), M.ptr, code(M), Vt.ptr, code(Vt), p.size, h.lr, h.beta1, h.beta2, h.eps,
      h.weightDecay, stepSize, sqrtBc2);
  }

  synchronize(): void {
    this.a.synchronize();
  }
}
