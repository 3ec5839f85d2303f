// The cpu backend: the reference implementation of the engine interface. Float tensors live as f32 on the host
// (bf16/f16 tensors hold f32 values rounded to that dtype); i32 tensors as Int32Array. Computed outputs are f32
// (the output-dtype rule of backend.ts); arguments are checked by shape-checks.ts, shared with the cuda backend.
import os from 'node:os';
import type {
  AdamWHyper, AttentionMask, AttentionShape, Backend, DType, MatmulOptions, QuantGrid, Tensor,
} from '../backend.js';
import { numel, shapeString } from '../backend.js';
import {
  checkAdamW, checkAttention, checkAttentionBackward, checkBroadcast, checkColumnVector, checkConcatCols, checkCopyRows,
  checkCrossEntropy, checkGatherRows, checkGivens, checkGrid, checkGridParams, checkRmsnorm, checkRmsnormBackward, checkRope,
  checkDequantizePacked, checkQuantizePacked, checkSameSize, checkScatterRows, checkSmoothL1, matmulDims, rowsCols,
  checkGroupGram, checkMinMaxGram, checkScaleGrad,
} from '../shape-checks.js';
import { bf16ToF32, f16ToF32, roundToBf16InPlace, roundToF16InPlace } from '../../numerics/half.js';
import { gemm, initMatmul, view } from './matmul.js';
import { giveF32, takeF32, takeZeroedF32 } from './buffers.js';
import { rmsnormBackward } from './norm.js';
import { attentionBackward, attentionForward } from './attention.js';
import {
  addParallel, crossEntropyParallel, rmsnormForwardParallel, ropeParallel, swigluBackwardParallel, swigluForwardParallel,
} from './parallel-kernels.js';
import { argmaxRows } from './crossentropy.js';
import { givensApply, givensBackward } from './givens.js';
import {
  fakeQuantMinMax, fakeQuantMinMaxBackward, fakeQuantParams, fakeQuantParamsBackward, quantizePacked, dequantizePacked,
} from './fakequant.js';
import { adamwStep, smoothL1 } from './optim.js';
import { groupGram, paroMinMaxGram, paroScaleGrad } from './gram.js';

/** Storage shared by a tensor and its reshaped views; free() of any of them releases it. */
class Storage {
  freed = false;
  constructor(public data: Float32Array | Int32Array) {}
}

const RELEASED = new Float32Array(0);

export class CpuTensor implements Tensor {
  readonly size: number;
  private readonly storage: Storage;

  constructor(
    readonly shape: readonly number[],
    readonly dtype: DType,
    data: Float32Array | Int32Array | Storage,
  ) {
    this.size = numel(shape);
    this.storage = data instanceof Storage ? data : new Storage(data);
    const n = this.storage.data.length;
    if (n !== this.size) throw new Error(`tensor data length ${n} does not match shape ${shapeString(shape)}`);
  }

  /** The elements; a freed tensor (or a view of freed storage) throws instead of reading reused memory. */
  get data(): Float32Array | Int32Array {
    if (this.storage.freed) throw new Error(`cpu tensor ${shapeString(this.shape)} used after free()`);
    return this.storage.data;
  }

  /** A tensor of another shape on the same storage. */
  view(shape: readonly number[]): CpuTensor {
    return new CpuTensor(shape, this.dtype, this.storage);
  }

  /** Mark freed and hand the storage back (null when already freed). */
  release(): Float32Array | Int32Array | null {
    const st = this.storage;
    if (st.freed) return null;
    st.freed = true;
    const d = st.data;
    st.data = RELEASED;
    return d;
  }
}

function T(t: Tensor): CpuTensor {
  if (!(t instanceof CpuTensor)) throw new Error('tensor does not belong to the cpu backend');
  return t;
}

function F(t: Tensor): Float32Array {
  const c = T(t);
  if (!(c.data instanceof Float32Array)) throw new Error(`expected a float tensor, got ${c.dtype}`);
  return c.data;
}

function I(t: Tensor): Int32Array {
  const c = T(t);
  if (!(c.data instanceof Int32Array)) throw new Error(`expected an i32 tensor, got ${c.dtype}`);
  return c.data;
}

/** Round f32 data to the storage precision of dtype, in place. */
function roundTo(data: Float32Array, dtype: DType): void {
  if (dtype === 'bf16') roundToBf16InPlace(data);
  else if (dtype === 'f16') roundToF16InPlace(data);
}

function f32(shape: readonly number[], data: Float32Array): CpuTensor {
  return new CpuTensor(shape, 'f32', data);
}

/** Output storage: reused when a freed tensor of the same size exists (contents arbitrary until written). */
function alloc(n: number): Float32Array {
  return takeF32(n);
}

export class CpuBackend implements Backend {
  readonly name = 'cpu' as const;
  readonly device: string;
  /** The kernel multiplies every key a query tile spans: short calls over few blocks are cheaper (backend.ts). */
  readonly anchoredBlocksRowsPerCall = 64;

  private constructor() {
    const cpus = os.cpus();
    this.device = `${cpus[0]?.model ?? 'cpu'} (${cpus.length} threads)`;
  }

  static async create(): Promise<CpuBackend> {
    await initMatmul();
    return new CpuBackend();
  }

  // ---- memory ----
  fromHost(data: Float32Array | Int32Array, shape: readonly number[], dtype?: DType): Tensor {
    const dt: DType = dtype ?? (data instanceof Int32Array ? 'i32' : 'f32');
    if (dt === 'i32') return new CpuTensor(shape, dt, data instanceof Int32Array ? data.slice() : Int32Array.from(data));
    const f = alloc(data.length);
    f.set(data);
    roundTo(f, dt);
    return new CpuTensor(shape, dt, f);
  }

  fromBits(bits: Uint16Array, shape: readonly number[], dtype: 'bf16' | 'f16'): Tensor {
    const out = alloc(bits.length);
    return new CpuTensor(shape, dtype, dtype === 'bf16' ? bf16ToF32(bits, out) : f16ToF32(bits, out));
  }

  toHost(t: Tensor): Float32Array {
    const d = T(t).data;
    return d instanceof Float32Array ? d.slice() : Float32Array.from(d);
  }

  toHostInt(t: Tensor): Int32Array {
    const d = T(t).data;
    return d instanceof Int32Array ? d.slice() : Int32Array.from(d);
  }

  zeros(shape: readonly number[], dtype: DType = 'f32'): Tensor {
    const n = numel(shape);
    return new CpuTensor(shape, dtype, dtype === 'i32' ? new Int32Array(n) : takeZeroedF32(n));
  }

  fill(t: Tensor, value: number): void {
    const ct = T(t);
    if (ct.dtype === 'i32') {
      ct.data.fill(Math.trunc(value));
      return;
    }
    // Storage holds values representable in the tensor's dtype, as the CUDA backend's bf16/f16 buffers do.
    const v = Float32Array.of(value);
    roundTo(v, ct.dtype);
    ct.data.fill(v[0]);
  }

  free(...ts: (Tensor | undefined | null)[]): void {
    // Float storage goes back to the reuse pool (buffers.ts); freeing a tensor twice, or two views of one storage,
    // is harmless, and a freed tensor throws when used.
    for (const t of ts) {
      if (!t) continue;
      const d = T(t).release();
      if (d instanceof Float32Array) giveF32(d);
    }
  }

  reshape(t: Tensor, shape: readonly number[]): Tensor {
    if (numel(shape) !== t.size) throw new Error(`cannot reshape ${shapeString(t.shape)} to ${shapeString(shape)}`);
    return T(t).view(shape);
  }

  cast(t: Tensor, dtype: DType): Tensor {
    const src = T(t).data;
    if (dtype === 'i32') return new CpuTensor(t.shape, dtype, Int32Array.from(src, (x) => Math.trunc(x)));
    const f = alloc(src.length);
    f.set(src);
    roundTo(f, dtype);
    return new CpuTensor(t.shape, dtype, f);
  }

  copy(t: Tensor): Tensor {
    const src = T(t).data;
    if (src instanceof Int32Array) return new CpuTensor(t.shape, t.dtype, src.slice());
    const f = alloc(src.length);
    f.set(src);
    return new CpuTensor(t.shape, t.dtype, f);
  }

  copyRows(dst: Tensor, dstRow: number, src: Tensor, srcRow: number, count: number): void {
    checkCopyRows(dst, dstRow, src, srcRow, count);
    const cols = rowsCols(dst)[1];
    const d = T(dst).data;
    const s = T(src).data;
    d.set(s.subarray(srcRow * cols, (srcRow + count) * cols), dstRow * cols);
    if (dst.dtype === 'bf16' || dst.dtype === 'f16') roundTo((d as Float32Array).subarray(dstRow * cols, (dstRow + count) * cols), dst.dtype);
  }

  scatterRows(dst: Tensor, rows: Int32Array, src: Tensor): void {
    checkScatterRows(dst, rows, src);
    const cols = rowsCols(dst)[1];
    const d = T(dst).data;
    const s = T(src).data;
    for (let i = 0; i < rows.length; i++) {
      const at = rows[i] * cols;
      d.set(s.subarray(i * cols, (i + 1) * cols), at);
      if (dst.dtype === 'bf16' || dst.dtype === 'f16') roundTo((d as Float32Array).subarray(at, at + cols), dst.dtype);
    }
  }

  gatherRows(table: Tensor, ids: Int32Array): Tensor {
    checkGatherRows(table, ids);
    const C = rowsCols(table)[1];
    const src = F(table);
    const out = alloc(ids.length * C);
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      out.set(src.subarray(id * C, id * C + C), i * C);
    }
    return new CpuTensor([ids.length, C], table.dtype, out);
  }

  concatCols(ts: readonly Tensor[]): Tensor {
    const rows = checkConcatCols(ts);
    const widths = ts.map((t) => rowsCols(t)[1]);
    const W = widths.reduce((a, b) => a + b, 0);
    const out = alloc(rows * W);
    let c0 = 0;
    ts.forEach((t, k) => {
      const src = F(t);
      const w = widths[k];
      for (let r = 0; r < rows; r++) out.set(src.subarray(r * w, r * w + w), r * W + c0);
      c0 += w;
    });
    return f32([rows, W], out);
  }

  // ---- dense algebra ----
  matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
    const { M, K, N } = matmulDims(a, b, opts);
    const ac = a.shape[1];
    const bc = b.shape[1];
    const alpha = opts.alpha ?? 1;
    const A = view(F(a), ac, !!opts.transA);
    const B = view(F(b), bc, !!opts.transB);
    if (opts.accumulate) {
      const acc = F(opts.accumulate);
      if (acc === A.data || acc === B.data) throw new Error('matmul accumulate target must not be an operand');
      gemm(M, K, N, A, B, view(acc, N), 1, alpha);
      return opts.accumulate;
    }
    const c = alloc(M * N);
    gemm(M, K, N, A, B, view(c, N), 0, alpha);
    return f32([M, N], c);
  }

  add(a: Tensor, b: Tensor): Tensor {
    const x = F(a);
    const y = F(b);
    checkBroadcast(a, b);
    return f32(a.shape, addParallel(x, y, alloc(x.length)));
  }

  axpy(a: Tensor, b: Tensor, alpha: number): void {
    const x = F(a);
    const y = F(b);
    checkSameSize('axpy', a, b);
    for (let i = 0; i < x.length; i++) x[i] += alpha * y[i];
  }

  scale(a: Tensor, alpha: number): Tensor {
    const x = F(a);
    const out = alloc(x.length);
    for (let i = 0; i < x.length; i++) out[i] = x[i] * alpha;
    return f32(a.shape, out);
  }

  mulCols(a: Tensor, v: Tensor): Tensor {
    const x = F(a);
    const s = F(v);
    const C = s.length;
    checkColumnVector('mulCols', a, v);
    const out = alloc(x.length);
    for (let o = 0; o < x.length; o += C) for (let c = 0; c < C; c++) out[o + c] = x[o + c] * s[c];
    return f32(a.shape, out);
  }

  divCols(a: Tensor, v: Tensor): Tensor {
    const x = F(a);
    const s = F(v);
    const C = s.length;
    checkColumnVector('divCols', a, v);
    const out = alloc(x.length);
    for (let o = 0; o < x.length; o += C) for (let c = 0; c < C; c++) out[o + c] = x[o + c] / s[c];
    return f32(a.shape, out);
  }

  dotCols(a: Tensor, b: Tensor): Tensor {
    checkSameSize('dotCols', a, b);
    const [rows, C] = rowsCols(a);
    const x = F(a);
    const y = F(b);
    const acc = new Float64Array(C);
    for (let r = 0; r < rows; r++) for (let c = 0; c < C; c++) acc[c] += x[r * C + c] * y[r * C + c];
    return f32([C], Float32Array.from(acc));
  }

  sumSquares(a: Tensor): number {
    const x = F(a);
    let s = 0;
    for (let i = 0; i < x.length; i++) s += x[i] * x[i];
    return s;
  }

  hasNonFinite(a: Tensor): boolean {
    const x = T(a).data;
    for (let i = 0; i < x.length; i++) if (!Number.isFinite(x[i])) return true;
    return false;
  }

  // ---- transformer layers ----
  rmsnorm(x: Tensor, w: Tensor, eps: number): { y: Tensor; rstd: Tensor } {
    checkRmsnorm(x, w);
    const [rows, C] = rowsCols(x);
    const r = rmsnormForwardParallel(F(x), F(w), rows, C, eps, alloc(rows * C), alloc(rows));
    return { y: f32(x.shape, r.y), rstd: f32([rows], r.rstd) };
  }

  rmsnormBackward(dy: Tensor, x: Tensor, w: Tensor, rstd: Tensor): { dx: Tensor; dw: Tensor };
  rmsnormBackward(dy: Tensor, x: Tensor, w: Tensor, rstd: Tensor, weightGrad: false): { dx: Tensor };
  rmsnormBackward(dy: Tensor, x: Tensor, w: Tensor, rstd: Tensor, weightGrad = true): { dx: Tensor; dw?: Tensor } {
    checkRmsnormBackward(dy, x, w, rstd);
    const [rows, C] = rowsCols(x);
    const r = rmsnormBackward(F(dy), F(x), F(w), F(rstd), rows, C, alloc(rows * C));
    const dx = f32(x.shape, r.dx);
    return weightGrad ? { dx, dw: f32([C], r.dw) } : { dx };
  }

  rope(x: Tensor, positions: Int32Array, invFreq: Float32Array, headDim: number, inverse = false): Tensor {
    checkRope(x, positions, invFreq, headDim);
    const [rows, width] = rowsCols(x);
    return f32(x.shape, ropeParallel(F(x), rows, width, positions, invFreq, headDim, inverse, alloc(rows * width)));
  }

  attention(q: Tensor, k: Tensor, v: Tensor, shape: AttentionShape, mask: AttentionMask): { out: Tensor; lse: Tensor } {
    checkAttention('attention', q, k, v, shape, mask);
    const r = attentionForward(F(q), F(k), F(v), shape, mask, { out: alloc(shape.batch * shape.tq * shape.heads * shape.headDim) });
    return { out: f32([shape.batch * shape.tq, shape.heads * shape.headDim], r.out), lse: f32([shape.batch, shape.heads, shape.tq], r.lse) };
  }

  attentionBackward(
    dout: Tensor, q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, shape: AttentionShape, mask: AttentionMask,
  ): { dq: Tensor; dk: Tensor; dv: Tensor } {
    checkAttentionBackward(dout, q, k, v, out, lse, shape, mask);
    const r = attentionBackward(F(dout), F(q), F(k), F(v), F(out), F(lse), shape, mask, {
      dq: alloc(q.size), dk: takeZeroedF32(k.size), dv: takeZeroedF32(v.size),
    });
    return { dq: f32(q.shape, r.dq), dk: f32(k.shape, r.dk), dv: f32(v.shape, r.dv) };
  }

  swiglu(gate: Tensor, up: Tensor): Tensor {
    checkSameSize('swiglu', gate, up);
    return f32(gate.shape, swigluForwardParallel(F(gate), F(up), alloc(gate.size)));
  }

  swigluBackward(dh: Tensor, gate: Tensor, up: Tensor): { dgate: Tensor; dup: Tensor } {
    checkSameSize('swigluBackward', gate, up);
    checkSameSize('swigluBackward', dh, gate);
    const r = swigluBackwardParallel(F(dh), F(gate), F(up), alloc(gate.size), alloc(up.size));
    return { dgate: f32(gate.shape, r.dgate), dup: f32(up.shape, r.dup) };
  }

  crossEntropy(logits: Tensor, labels: Int32Array, rowWeights?: Float32Array): { loss: Tensor; lse: Tensor; dlogits?: Tensor } {
    checkCrossEntropy(logits, labels, rowWeights);
    const [rows, V] = rowsCols(logits);
    const r = crossEntropyParallel(F(logits), rows, V, labels, rowWeights, rowWeights ? alloc(rows * V) : undefined);
    return { loss: f32([rows], r.loss), lse: f32([rows], r.lse), dlogits: r.dlogits ? f32(logits.shape, r.dlogits) : undefined };
  }

  argmaxRows(t: Tensor): Int32Array {
    const [rows, V] = rowsCols(t);
    return argmaxRows(F(t), rows, V);
  }

  // ---- ParoQuant transform ----
  givens(x: Tensor, pairs: Tensor, theta: Tensor, groupSize: number, direction: 'forward' | 'inverse'): Tensor {
    const { rows, I: cols, K } = checkGivens('givens', x, pairs, theta, groupSize);
    return f32(x.shape, givensApply(F(x), rows, cols, I(pairs), F(theta), K, groupSize, direction, alloc(rows * cols)));
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
    checkSameSize('givensBackward', dy, y);
    const { rows, I: cols, K } = checkGivens('givensBackward', y, pairs, theta, groupSize);
    // dx alone is the same f64 walk (the cpu numerics do not depend on wantTheta).
    const r = givensBackward(F(dy), F(y), rows, cols, I(pairs), F(theta), K, groupSize, direction, { dx: alloc(rows * cols) });
    const dx = f32(y.shape, r.dx);
    return wantTheta ? { dx, dtheta: f32(theta.shape, r.dtheta) } : { dx };
  }

  fakeQuantMinMax(r: Tensor, grid: QuantGrid): { rq: Tensor; scale: Tensor; zpf: Tensor } {
    checkGrid('fakeQuantMinMax', r, grid);
    const [rows, cols] = rowsCols(r);
    const o = fakeQuantMinMax(F(r), rows, cols, grid.bits, grid.groupSize, { rq: alloc(rows * cols) });
    const G = (rows * cols) / grid.groupSize;
    return { rq: f32(r.shape, o.rq), scale: f32([G], o.scale), zpf: f32([G], o.zpf) };
  }

  fakeQuantMinMaxBackward(drq: Tensor, r: Tensor, scale: Tensor, zpf: Tensor, grid: QuantGrid): Tensor {
    checkSameSize('fakeQuantMinMaxBackward', drq, r);
    checkGridParams('fakeQuantMinMaxBackward', scale, zpf, checkGrid('fakeQuantMinMaxBackward', r, grid).nGroups);
    const [rows, cols] = rowsCols(r);
    return f32(r.shape, fakeQuantMinMaxBackward(F(drq), F(r), F(scale), F(zpf), rows, cols, grid.bits, grid.groupSize, alloc(rows * cols)));
  }

  fakeQuantParams(r: Tensor, scale: Tensor, zpf: Tensor, grid: QuantGrid): Tensor {
    checkGridParams('fakeQuantParams', scale, zpf, checkGrid('fakeQuantParams', r, grid).nGroups);
    const [rows, cols] = rowsCols(r);
    return f32(r.shape, fakeQuantParams(F(r), F(scale), F(zpf), rows, cols, grid.bits, grid.groupSize, alloc(rows * cols)));
  }

  fakeQuantParamsBackward(drq: Tensor, r: Tensor, scale: Tensor, zpf: Tensor, grid: QuantGrid): { dr: Tensor; dscale: Tensor } {
    checkSameSize('fakeQuantParamsBackward', drq, r);
    checkGridParams('fakeQuantParamsBackward', scale, zpf, checkGrid('fakeQuantParamsBackward', r, grid).nGroups);
    const [rows, cols] = rowsCols(r);
    const o = fakeQuantParamsBackward(F(drq), F(r), F(scale), F(zpf), rows, cols, grid.bits, grid.groupSize, { dr: alloc(rows * cols) });
    return { dr: f32(r.shape, o.dr), dscale: f32(scale.shape, o.dscale) };
  }

  quantizePacked(r: Tensor, scale: Tensor, zpf: Tensor, grid: QuantGrid, nibbleOrder: readonly number[]): Tensor {
    const { O, I } = checkQuantizePacked(r, scale, zpf, grid, nibbleOrder);
    const words = quantizePacked(F(r), F(scale), F(zpf), O, I, grid.bits, grid.groupSize, nibbleOrder);
    return new CpuTensor([I, O / 8], 'i32', words);
  }

  dequantizePacked(words: Tensor, zeros: Tensor, scale: Tensor, groupSize: number, nibbleOrder: readonly number[]): Tensor {
    const { O, I: cols } = checkDequantizePacked(words, zeros, scale, groupSize, nibbleOrder);
    return f32([O, cols], dequantizePacked(I(words), I(zeros), F(scale), O, cols, groupSize, nibbleOrder));
  }

  // The Gram backward's ops (gram.ts). No paroResidualDtype here: without paroTransform the cpu backend keeps the
  // composition backward; these serve tests and the reference of other backends.
  paroScaleGrad(dWhat: Tensor, E: Tensor, scale: Tensor, grid: QuantGrid): Tensor {
    const { nGroups } = checkScaleGrad(dWhat, E, scale, grid);
    return f32([nGroups], paroScaleGrad(F(dWhat), F(E), F(scale), nGroups, grid.groupSize, alloc(nGroups)));
  }

  paroMinMaxGram(S: Tensor, extremes: Tensor, W: Tensor, alpha: Tensor, grid: QuantGrid): Tensor {
    const { O, I: cols } = checkMinMaxGram(S, extremes, W, alpha, grid);
    const gs = grid.groupSize;
    return f32([gs, cols], paroMinMaxGram(F(S), I(extremes), F(W), F(alpha), O, cols, grid.bits, gs, alloc(gs * cols)));
  }

  groupGram(a: Tensor, b: Tensor, groupSize: number, alpha?: Tensor): Tensor {
    const { O, I: cols } = checkGroupGram(a, b, groupSize, alpha);
    const out = alloc(groupSize * cols);
    return f32([groupSize, cols], groupGram(F(a), F(b), O, cols, groupSize, alpha ? F(alpha) : undefined, out));
  }

  smoothL1(pred: Tensor, target: Tensor, withGrad: boolean): { loss: number; dpred?: Tensor } {
    checkSmoothL1(pred, target);
    const o = smoothL1(F(pred), F(target), withGrad, withGrad ? alloc(pred.size) : undefined);
    return { loss: o.loss, dpred: o.dpred ? f32(pred.shape, o.dpred) : undefined };
  }

  // ---- optimisation ----
  adamw(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, h: AdamWHyper): void {
    checkAdamW(param, grad, m, v, h.step);
    adamwStep(F(param), F(grad), F(m), F(v), h);
  }

  synchronize(): void {
    // Nothing is queued on the cpu.
  }
}
