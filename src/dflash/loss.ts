// The DFlash training loss (dflash-spec §3.5): slot k of block n predicts input_ids[a_n + k] (same position, no
// shift), weighted by keep_n·[a_n + k < S]·[k ≥ 1]·loss_mask[a_n + k]·exp(−(k − 1)/γ); loss = Σ w·CE / (Σ w + 1e-6)
// over the micro-batch. The LM head + CE run only on rows with w > 0, in row chunks, and the gradient flows through
// the frozen head into the drafter's final hidden state.
import type { Backend, Tensor } from '../engine/backend.js';
import { gemmInput, type ComputeDtype } from '../model/layer-ops.js';

/** γ default by block size (§0: 7 / 5 / 4 for B = 16 / 10 / 8), linear in between, at least 1. */
export function defaultGamma(blockSize: number): number {
  const table: Record<number, number> = { 16: 7, 10: 5, 8: 4 };
  if (table[blockSize] !== undefined) return table[blockSize];
  // Through the published points (8, 4), (10, 5), (16, 7): close to B/2 for small blocks, flatter above.
  if (blockSize < 10) return Math.max(1, blockSize / 2);
  return 5 + ((blockSize - 10) * 2) / 6;
}

/** exp(−(k − 1)/γ) for k = 0..B−1 with slot 0 weighted 0. */
export function decayWeights(blockSize: number, gamma: number): Float32Array {
  const w = new Float32Array(blockSize);
  for (let k = 1; k < blockSize; k++) w[k] = Math.exp(-(k - 1) / gamma);
  return w;
}

/** Block token ids [N·B]: slot 0 = ids[a_n] for kept blocks (mask for disabled ones), other slots the mask token. */
export function blockInputIds(ids: Int32Array, anchors: Int32Array, keep: Uint8Array, blockSize: number, maskTokenId: number): Int32Array {
  const N = anchors.length;
  const out = new Int32Array(N * blockSize).fill(maskTokenId);
  for (let n = 0; n < N; n++) if (keep[n]) out[n * blockSize] = ids[anchors[n]];
  return out;
}

/** Labels (−1 where unused) and unnormalised weights [N·B] of one sequence. */
export function blockLabelsAndWeights(
  ids: Int32Array, lossMask: Uint8Array, anchors: Int32Array, keep: Uint8Array, blockSize: number, gamma: number,
): { labels: Int32Array; weights: Float32Array } {
  const S = ids.length;
  const N = anchors.length;
  const decay = decayWeights(blockSize, gamma);
  const labels = new Int32Array(N * blockSize).fill(-1);
  const weights = new Float32Array(N * blockSize);
  for (let n = 0; n < N; n++) {
    if (!keep[n]) continue;
    for (let k = 1; k < blockSize; k++) {
      const p = anchors[n] + k;
      if (p >= S || !lossMask[p]) continue;
      labels[n * blockSize + k] = ids[p];
      weights[n * blockSize + k] = decay[k];
    }
  }
  return { labels, weights };
}

export interface HeadLossResult {
  /** Σ rowWeight·CE over the rows (with the normalised weights the caller passed). */
  loss: number;
  /** Gradient w.r.t. the hidden rows [R, H] (zero rows where the weight is 0). */
  dHidden: Tensor;
  /** Rows with weight > 0 whose argmax equals the label, and how many rows had weight > 0. */
  correct: number;
  counted: number;
}

/** Maximal runs [start, end) of rows with weight > 0. */
function weightedRuns(weights: Float32Array): [number, number][] {
  const runs: [number, number][] = [];
  let r = 0;
  while (r < weights.length) {
    if (weights[r] > 0) {
      const s = r;
      while (r < weights.length && weights[r] > 0) r++;
      runs.push([s, r]);
    } else r++;
  }
  return runs;
}

/**
 * Rows per LM-head chunk (headLoss): 32 M logits (128 MB of f32) on a host-memory backend, whose caches and worker
 * tiles suit small chunks; with device memory, as many rows as keep the chunk's f32 logits and their gradient within
 * 1/8 of the free memory, at most 2^28 logits (1 GiB each). Small chunks starve a GPU: at vocab 151936 the host figure
 * is 220 rows, whose logits GEMM, cross-entropy and argmax run at a fraction of the card (issue 10, run 11 profile).
 */
export function headChunkRows(be: Backend, vocabSize: number): number {
  const mem = be.memoryInfo?.();
  const host = Math.max(16, Math.floor((32 << 20) / vocabSize));
  if (!mem) return host;
  const logits = Math.min(2 ** 28, Math.floor(mem.freeBytes / 8 / (2 * 4)));
  return Math.max(host, Math.floor(logits / vocabSize));
}

/**
 * LM head + weighted CE on the rows of hidden [R, H] with weight > 0, chunkRows rows at a time. rowWeights are the
 * final per-row loss coefficients (w / (Σw + 1e-6)); the gradient of Σ rowWeight·CE is returned. Compute dtype
 * 'bf16': bf16 rows and head (give a bf16 lmHead: another is cast once per call), f32 logits and gradient.
 */
export function headLoss(
  be: Backend, hidden: Tensor, lmHead: Tensor, labels: Int32Array, rowWeights: Float32Array, chunkRows: number, withGrad = true,
  computeDtype: ComputeDtype = 'f32',
): HeadLossResult {
  const bf16 = computeDtype === 'bf16';
  const head = gemmInput(be, lmHead, computeDtype);
  const [R, H] = hidden.shape;
  const dHidden = be.zeros([R, H]);
  let loss = 0;
  let correct = 0;
  let counted = 0;
  const runs = weightedRuns(rowWeights);
  let ri = 0;
  let runOffset = 0; // rows of runs[ri] already taken
  while (ri < runs.length) {
    // Gather up to chunkRows weighted rows, as pieces of runs.
    const pieces: [number, number, number][] = []; // [srcRow, dstRow, count]
    let rows = 0;
    while (ri < runs.length && rows < chunkRows) {
      const [s, e] = runs[ri];
      const take = Math.min(e - s - runOffset, chunkRows - rows);
      pieces.push([s + runOffset, rows, take]);
      rows += take;
      runOffset += take;
      if (s + runOffset >= e) {
        ri++;
        runOffset = 0;
      }
    }
    const sel = bf16 ? be.zeros([rows, H], 'bf16') : be.zeros([rows, H]); // copyRows casts the rows
    const lab = new Int32Array(rows);
    const wts = new Float32Array(rows);
    for (const [src, dst, cnt] of pieces) {
      be.copyRows(sel, dst, hidden, src, cnt);
      lab.set(labels.subarray(src, src + cnt), dst);
      wts.set(rowWeights.subarray(src, src + cnt), dst);
    }
    const logits = be.matmul(sel, head, bf16 ? { transB: true, outDtype: 'f32' } : { transB: true }); // [rows, V]
    const ce = be.crossEntropy(logits, lab, withGrad ? wts : undefined);
    const l = be.toHost(ce.loss);
    for (let i = 0; i < rows; i++) loss += wts[i] * l[i];
    const am = be.argmaxRows(logits);
    for (let i = 0; i < rows; i++) if (am[i] === lab[i]) correct++;
    counted += rows;
    be.free(sel, logits, ce.loss, ce.lse);
    if (withGrad && ce.dlogits) {
      const dl = gemmInput(be, ce.dlogits, computeDtype);
      const dsel = be.matmul(dl, head, bf16 ? { outDtype: 'f32' } : {}); // [rows, H]
      for (const [src, dst, cnt] of pieces) be.copyRows(dHidden, src, dsel, dst, cnt);
      if (dl !== ce.dlogits) be.free(dl);
      be.free(dsel, ce.dlogits);
    }
  }
  if (head !== lmHead) be.free(head);
  return { loss, dHidden, correct, counted };
}
