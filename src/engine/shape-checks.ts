// Argument checks of the Backend operations, shared by every backend so that a bad call fails the same way (same
// message) whichever backend runs it. Limits of one backend's kernels (e.g. the CUDA Givens group size) stay there.
import type { AttentionMask, AttentionShape, MatmulOptions, QuantGrid, Tensor } from './backend.js';
import { shapeString } from './backend.js';

/** [rows, cols] of the 2-D view of a tensor (cols = last dimension). */
export function rowsCols(t: Tensor): [number, number] {
  const s = t.shape;
  const cols = s.length === 0 ? 1 : s[s.length - 1];
  return [cols === 0 ? 0 : t.size / cols, cols];
}

/** M, K, N of op(A)·op(B). */
export function matmulDims(a: Tensor, b: Tensor, opts: MatmulOptions): { M: number; K: number; N: number } {
  if (a.shape.length !== 2 || b.shape.length !== 2) throw new Error(`matmul needs 2-D tensors, got ${shapeString(a.shape)} and ${shapeString(b.shape)}`);
  const [ar, ac] = a.shape;
  const [br, bc] = b.shape;
  const M = opts.transA ? ac : ar;
  const K = opts.transA ? ar : ac;
  const K2 = opts.transB ? bc : br;
  const N = opts.transB ? br : bc;
  if (K !== K2) throw new Error(`matmul inner dimensions differ: ${shapeString(a.shape)}${opts.transA ? 'ᵀ' : ''} · ${shapeString(b.shape)}${opts.transB ? 'ᵀ' : ''}`);
  if (opts.accumulate && opts.accumulate.size !== M * N) throw new Error('matmul accumulate target has the wrong size');
  if (opts.outDtype !== undefined) {
    if (opts.accumulate) throw new Error('matmul takes outDtype or accumulate, not both');
    const common = a.dtype === b.dtype ? a.dtype : 'f32';
    if (opts.outDtype !== 'f32' && opts.outDtype !== common) throw new Error(`matmul outDtype must be f32 or the operands' dtype ${common}, got ${opts.outDtype}`);
  }
  return { M, K, N };
}

export function checkCopyRows(dst: Tensor, dstRow: number, src: Tensor, srcRow: number, count: number): void {
  const [drows, cols] = rowsCols(dst);
  const [srows, scols] = rowsCols(src);
  if (cols !== scols) throw new Error(`copyRows: column mismatch ${cols} vs ${scols}`);
  if (count < 0 || dstRow < 0 || srcRow < 0 || dstRow + count > drows || srcRow + count > srows) {
    throw new Error(`copyRows: rows [${srcRow}, ${srcRow + count}) → [${dstRow}, ${dstRow + count}) out of range (${srows} → ${drows} rows)`);
  }
}

export function checkGatherRows(table: Tensor, ids: Int32Array): void {
  const V = rowsCols(table)[0];
  for (let i = 0; i < ids.length; i++) {
    if (!(ids[i] >= 0 && ids[i] < V)) throw new Error(`gatherRows: index ${ids[i]} outside [0, ${V})`);
  }
}

/** scatterRows: same columns, one src row per index, distinct indices inside dst. */
export function checkScatterRows(dst: Tensor, rows: Int32Array, src: Tensor): void {
  const [drows, cols] = rowsCols(dst);
  const [srows, scols] = rowsCols(src);
  if (cols !== scols) throw new Error(`scatterRows: column mismatch ${cols} vs ${scols}`);
  if (srows !== rows.length) throw new Error(`scatterRows: ${rows.length} indices for ${srows} source rows`);
  const seen = new Set<number>();
  for (let i = 0; i < rows.length; i++) {
    if (!(rows[i] >= 0 && rows[i] < drows)) throw new Error(`scatterRows: index ${rows[i]} outside [0, ${drows})`);
    if (seen.has(rows[i])) throw new Error(`scatterRows: index ${rows[i]} repeated`);
    seen.add(rows[i]);
  }
}

/** Rows shared by every tensor of a column concatenation. */
export function checkConcatCols(ts: readonly Tensor[]): number {
  if (ts.length === 0) throw new Error('concatCols: no tensors');
  const rows = rowsCols(ts[0])[0];
  ts.forEach((t, k) => {
    if (rowsCols(t)[0] !== rows) throw new Error(`concatCols: tensor ${k} has ${rowsCols(t)[0]} rows, expected ${rows}`);
  });
  return rows;
}

export function checkSameSize(op: string, a: Tensor, b: Tensor): void {
  if (a.size !== b.size) throw new Error(`${op}: size mismatch`);
}

/** b has a's size or is a vector of a's last dimension (broadcast over rows). */
export function checkBroadcast(a: Tensor, b: Tensor): void {
  if (b.size !== a.size && b.size !== rowsCols(a)[1]) throw new Error(`add: cannot broadcast ${shapeString(b.shape)} over ${shapeString(a.shape)}`);
}

/** v is a vector of a's last dimension. */
export function checkColumnVector(op: string, a: Tensor, v: Tensor): void {
  const C = rowsCols(a)[1];
  if (v.size !== C) throw new Error(`${op}: vector ${shapeString(v.shape)} does not match width ${C}`);
}

export function checkRmsnorm(x: Tensor, w: Tensor): void {
  const C = rowsCols(x)[1];
  if (w.size !== C) throw new Error(`rmsnorm: weight ${shapeString(w.shape)} does not match width ${C}`);
}

export function checkRmsnormBackward(dy: Tensor, x: Tensor, w: Tensor, rstd: Tensor): void {
  const [rows, C] = rowsCols(x);
  if (dy.size !== x.size || w.size !== C || rstd.size !== rows) throw new Error('rmsnormBackward: shape mismatch');
}

export function checkRope(x: Tensor, positions: Int32Array, invFreq: Float32Array, headDim: number): void {
  const [rows, width] = rowsCols(x);
  if (positions.length !== rows) throw new Error(`rope: ${positions.length} positions for ${rows} rows`);
  if (headDim % 2 !== 0 || width % headDim !== 0) throw new Error(`rope: width ${width} is not a multiple of an even headDim ${headDim}`);
  if (invFreq.length !== headDim / 2) throw new Error(`rope: invFreq has ${invFreq.length} entries, expected ${headDim / 2}`);
}

/** Shapes of q, k, v against the attention shape, and the mask's fields against the shape. */
export function checkAttention(op: string, q: Tensor, k: Tensor, v: Tensor, shape: AttentionShape, mask: AttentionMask): void {
  const { batch, tq, tk, heads, kvHeads, headDim: D } = shape;
  const kvStride = shape.kvStride ?? tk;
  if (!(kvHeads > 0 && heads % kvHeads === 0)) throw new Error(`${op}: ${heads} heads is not a multiple of ${kvHeads} KV heads`);
  if (kvStride < tk) throw new Error(`${op}: kvStride ${kvStride} < tk ${tk}`);
  if (q.size !== batch * tq * heads * D) throw new Error(`${op}: q ${shapeString(q.shape)} does not match [${batch}·${tq}, ${heads}·${D}]`);
  // The forward may read the first batch entries of a larger k/v (a cache with spare slots: dflash/batch-decode.ts);
  // the backward writes dk/dv of k's shape, so there they match exactly.
  const need = batch * kvStride * kvHeads * D;
  const kOk = op === 'attention' ? k.size >= need && k.size % (kvHeads * D) === 0 : k.size === need;
  if (!kOk || v.size !== k.size) {
    throw new Error(`${op}: k/v ${shapeString(k.shape)} do not match [${batch}·${kvStride}, ${kvHeads}·${D}]`);
  }
  if (mask.kind === 'causalPerEntry' && mask.qOffsets.length < batch) {
    throw new Error(`${op}: causalPerEntry mask has ${mask.qOffsets.length} offsets for ${batch} batch entries`);
  }
  if (mask.kind === 'anchoredBlocks') {
    const { blockSize, nBlocks } = mask;
    if (!(blockSize > 0) || tq > nBlocks * blockSize) throw new Error(`${op}: anchoredBlocks mask covers ${nBlocks}·${blockSize} query rows, tq is ${tq}`);
    if (mask.anchors.length < batch * nBlocks || mask.keep.length < batch * nBlocks) {
      throw new Error(`${op}: anchoredBlocks mask needs ${batch * nBlocks} anchors and keep flags`);
    }
  }
}

export function checkAttentionBackward(
  dout: Tensor, q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, shape: AttentionShape, mask: AttentionMask,
): void {
  checkAttention('attentionBackward', q, k, v, shape, mask);
  if (dout.size !== q.size || out.size !== q.size) throw new Error('attentionBackward: dout/out do not match q');
  if (lse.size !== shape.batch * shape.heads * shape.tq) throw new Error('attentionBackward: lse has the wrong size');
}

export function checkCrossEntropy(logits: Tensor, labels: Int32Array, rowWeights?: Float32Array): void {
  const [rows, V] = rowsCols(logits);
  if (labels.length !== rows) throw new Error(`crossEntropy: ${labels.length} labels for ${rows} rows`);
  for (let r = 0; r < rows; r++) {
    if (!(labels[r] >= -1 && labels[r] < V)) throw new Error(`crossEntropy: label ${labels[r]} outside [−1, ${V})`);
  }
  if (rowWeights && rowWeights.length !== rows) throw new Error(`crossEntropy: ${rowWeights.length} row weights for ${rows} rows`);
}

/** Rows, width I and layer count K of a Givens call (pairs i32 [K, I], theta [K, I/2], I a multiple of an even group). */
export function checkGivens(op: string, x: Tensor, pairs: Tensor, theta: Tensor, groupSize: number): { rows: number; I: number; K: number } {
  const [rows, I] = rowsCols(x);
  if (pairs.dtype !== 'i32' || pairs.shape.length !== 2 || pairs.shape[1] !== I) {
    throw new Error(`${op}: pairs must be i32 [K, ${I}], got ${pairs.dtype} ${shapeString(pairs.shape)}`);
  }
  const K = pairs.shape[0];
  if (!(groupSize >= 2 && groupSize % 2 === 0) || I % groupSize !== 0) throw new Error(`${op}: width ${I} is not a multiple of an even groupSize ${groupSize}`);
  if (theta.size !== (K * I) / 2) throw new Error(`${op}: theta has ${theta.size} elements, expected [${K}, ${I / 2}]`);
  return { rows, I, K };
}

/** Groups and largest code of a quantizer grid over r's rows. */
export function checkGrid(op: string, r: Tensor, grid: QuantGrid): { nGroups: number; qmax: number } {
  const cols = rowsCols(r)[1];
  if (!(Number.isInteger(grid.bits) && grid.bits >= 1 && grid.bits <= 8)) throw new Error(`${op}: bits must be in [1, 8], got ${grid.bits}`);
  if (!(grid.groupSize >= 1) || cols % grid.groupSize !== 0) throw new Error(`${op}: cols ${cols} is not a multiple of groupSize ${grid.groupSize}`);
  return { nGroups: r.size / grid.groupSize, qmax: 2 ** grid.bits - 1 };
}

/** scale and zpf hold one entry per group. */
export function checkGridParams(op: string, scale: Tensor, zpf: Tensor, nGroups: number): void {
  if (scale.size !== nGroups || zpf.size !== nGroups) throw new Error(`${op}: scale and zpf need ${nGroups} elements`);
}

/** Rows O and columns I of a quantizePacked call (4-bit nibbles, 8 rows per word, nibbleOrder a permutation of 0..7). */
export function checkQuantizePacked(r: Tensor, scale: Tensor, zpf: Tensor, grid: QuantGrid, nibbleOrder: readonly number[]): { O: number; I: number; qmax: number } {
  const { nGroups, qmax } = checkGrid('quantizePacked', r, grid);
  checkGridParams('quantizePacked', scale, zpf, nGroups);
  if (grid.bits > 4) throw new Error(`quantizePacked: codes are packed in 4-bit nibbles, bits ${grid.bits} do not fit`);
  const [O, I] = rowsCols(r);
  if (O % 8 !== 0) throw new Error(`quantizePacked: ${O} rows is not a multiple of 8`);
  checkNibbleOrder('quantizePacked', nibbleOrder);
  return { O, I, qmax };
}

function checkNibbleOrder(op: string, nibbleOrder: readonly number[]): void {
  const sorted = [...nibbleOrder].sort((a, b) => a - b);
  if (sorted.length !== 8 || sorted.some((v, k) => v !== k)) throw new Error(`${op}: nibbleOrder [${nibbleOrder.join(', ')}] is not a permutation of 0..7`);
}

/** Rows O and columns I of the weight a dequantizePacked call restores (words i32 [I, O/8]). */
export function checkDequantizePacked(words: Tensor, zeros: Tensor, scale: Tensor, groupSize: number, nibbleOrder: readonly number[]): { O: number; I: number } {
  if (words.dtype !== 'i32' || words.shape.length !== 2) throw new Error(`dequantizePacked: words must be i32 [I, O/8], got ${words.dtype} ${shapeString(words.shape)}`);
  const [I, O8] = words.shape;
  const O = O8 * 8;
  if (!(Number.isInteger(groupSize) && groupSize >= 1) || I % groupSize !== 0) throw new Error(`dequantizePacked: ${I} columns is not a multiple of groupSize ${groupSize}`);
  const nGroups = (O * I) / groupSize;
  if (zeros.dtype !== 'i32' || zeros.size !== nGroups) throw new Error(`dequantizePacked: zeros must be i32 with ${nGroups} elements`);
  if (scale.size !== nGroups) throw new Error(`dequantizePacked: scale needs ${nGroups} elements`);
  checkNibbleOrder('dequantizePacked', nibbleOrder);
  return { O, I };
}

export function checkAdamW(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, step: number): void {
  if (grad.size !== param.size || m.size !== param.size || v.size !== param.size) throw new Error('adamw: param, grad, m and v must have equal sizes');
  if (!(Number.isInteger(step) && step >= 1)) throw new Error(`adamw: step must be a 1-based integer, got ${step}`);
}

export function checkSmoothL1(pred: Tensor, target: Tensor): void {
  if (pred.size !== target.size) throw new Error(`smoothL1: pred has ${pred.size} elements, target ${target.size}`);
  if (pred.size === 0) throw new Error('smoothL1: empty input');
}

/** groupGram: a, b [O, I] of the same shape, I a multiple of groupSize, alpha (if given) [I]. */
export function checkGroupGram(a: Tensor, b: Tensor, groupSize: number, alpha?: Tensor): { O: number; I: number; G: number } {
  const [O, I] = rowsCols(a);
  const [Ob, Ib] = rowsCols(b);
  if (O !== Ob || I !== Ib) throw new Error(`groupGram: shapes ${shapeString(a.shape)} and ${shapeString(b.shape)} differ`);
  if (!(Number.isInteger(groupSize) && groupSize >= 1) || I % groupSize !== 0) throw new Error(`groupGram: cols ${I} is not a multiple of groupSize ${groupSize}`);
  if (alpha) checkColumnVector('groupGram', a, alpha);
  return { O, I, G: I / groupSize };
}

/** paroScaleGrad: dWhat and E [O, I] alike, scale one entry per group. */
export function checkScaleGrad(dWhat: Tensor, E: Tensor, scale: Tensor, grid: QuantGrid): { O: number; I: number; nGroups: number } {
  const [O, I] = rowsCols(dWhat);
  const [Oe, Ie] = rowsCols(E);
  if (O !== Oe || I !== Ie) throw new Error(`paroScaleGrad: shapes ${shapeString(dWhat.shape)} and ${shapeString(E.shape)} differ`);
  const { nGroups } = checkGrid('paroScaleGrad', dWhat, grid);
  if (scale.size !== nGroups) throw new Error(`paroScaleGrad: scale needs ${nGroups} elements`);
  return { O, I, nGroups };
}

/** Words per min or max mask of one group in paroTransform's extremes (bit e%32 of word e/32). */
export function extremeWords(groupSize: number): number {
  return Math.ceil(groupSize / 32);
}

/** paroMinMaxGram: S one entry per group, extremes i32 [O·G, 2·words], W [O, I], alpha [I]. */
export function checkMinMaxGram(S: Tensor, extremes: Tensor, W: Tensor, alpha: Tensor, grid: QuantGrid): { O: number; I: number; nGroups: number; qmax: number; words: number } {
  const [O, I] = rowsCols(W);
  const { nGroups, qmax } = checkGrid('paroMinMaxGram', W, grid);
  if (S.size !== nGroups) throw new Error(`paroMinMaxGram: S needs ${nGroups} elements`);
  if (extremes.dtype !== 'i32') throw new Error('paroMinMaxGram: extremes must be i32');
  const words = extremeWords(grid.groupSize);
  if (extremes.size !== nGroups * 2 * words) throw new Error(`paroMinMaxGram: extremes need ${nGroups}·${2 * words} words`);
  checkColumnVector('paroMinMaxGram', W, alpha);
  return { O, I, nGroups, qmax, words };
}
