// `paro eval <q-dir> --compare <fp-dir>`: the quantized model against its FP original on the same windows, window by
// window with both models on the backend: perplexity of each (the REFERENCE.md protocol, as jobs/eval), the mean
// per-token KL(p_fp ‖ p_q) and the share of predictions whose argmax agrees. Logits are taken in row chunks small
// enough that two chunks of a 150k vocabulary stay near 128 MB on the host.
import type { Tensor } from '../engine/backend.js';
import { UserError } from '../errors.js';
import type { Decoder } from '../model/decoder.js';
import { windowBatch } from '../model/perplexity.js';

export interface CompareOptions {
  seqLen: number;
  starts: readonly number[];
  batch: number;
  onProgress?: (done: number, total: number) => void;
  /** Named in the error when a model produces a non-finite loss. */
  fpModel: string;
  model: string;
}

export interface CompareFigures {
  /** Perplexity of the compared (quantized) model and of the FP reference. */
  ppl: number;
  meanNll: number;
  fpPpl: number;
  fpMeanNll: number;
  /** Mean over predictions of KL(p_fp ‖ p_q), nats. */
  kl: number;
  /** The largest per-prediction KL. */
  klMax: number;
  /** Share of predictions where both argmaxes agree (0..1). */
  top1Agreement: number;
  windows: number;
  /** Predictions scored (windows × (seqLen − 1)). */
  tokens: number;
}

/** Elements of one logits chunk on the host (two chunks are held at once). */
const CHUNK_ELEMENTS = 1 << 24;

/** log-sum-exp of a row in f64. */
function logSumExp(z: Float32Array, off: number, n: number): number {
  let m = -Infinity;
  for (let i = 0; i < n; i++) if (z[off + i] > m) m = z[off + i];
  let s = 0;
  for (let i = 0; i < n; i++) s += Math.exp(z[off + i] - m);
  return m + Math.log(s);
}

/** KL(softmax(zf) ‖ softmax(zq)) of one row, f64. */
function rowKl(zf: Float32Array, zq: Float32Array, off: number, n: number): number {
  const lf = logSumExp(zf, off, n);
  const lq = logSumExp(zq, off, n);
  let kl = 0;
  for (let i = 0; i < n; i++) {
    const a = zf[off + i] - lf;
    kl += Math.exp(a) * (a - (zq[off + i] - lq));
  }
  return Math.max(0, kl); // rounding can leave a tiny negative for identical rows
}

export function compareWindows(q: Decoder, fp: Decoder, tokens: Int32Array, opts: CompareOptions): CompareFigures {
  const be = q.be;
  const T = opts.seqLen;
  const V = q.weights.lmHead.shape[0];
  if (fp.weights.lmHead.shape[0] !== V) {
    throw new UserError(`the FP model's vocabulary (${fp.weights.lmHead.shape[0]}) differs from the compared model's (${V}); compare a model with its own original`, { file: opts.fpModel });
  }
  const rowsPerChunk = Math.max(1, Math.min(2048, Math.floor(CHUNK_ELEMENTS / V)));
  const nllQ: number[] = [];
  const nllF: number[] = [];
  let klSum = 0;
  let klMax = 0;
  let agree = 0;
  let predictions = 0;
  for (let w0 = 0; w0 < opts.starts.length; w0 += opts.batch) {
    const nb = Math.min(opts.batch, opts.starts.length - w0);
    const { ids, labels } = windowBatch(tokens, opts.starts.slice(w0, w0 + nb), T);
    const hq = q.forward(ids, nb, { noLogits: true }).hidden;
    const hf = fp.forward(ids, nb, { noLogits: true }).hidden;
    if (!hq || !hf) throw new Error('forward returned no hidden state');
    const sumQ = new Float64Array(nb);
    const sumF = new Float64Array(nb);
    for (let r0 = 0; r0 < nb * T; r0 += rowsPerChunk) {
      const n = Math.min(rowsPerChunk, nb * T - r0);
      const rows = (h: Tensor): Tensor => {
        if (n === nb * T) return h;
        const part = be.zeros([n, h.shape[1]], h.dtype);
        be.copyRows(part, 0, h, r0, n);
        return part;
      };
      const pq = rows(hq);
      const pf = rows(hf);
      const lq = q.logits(pq);
      const lf = fp.logits(pf);
      const lab = labels.subarray(r0, r0 + n);
      const ceQ = be.crossEntropy(lq, lab);
      const ceF = be.crossEntropy(lf, lab);
      const lossQ = be.toHost(ceQ.loss);
      const lossF = be.toHost(ceF.loss);
      const amQ = be.argmaxRows(lq);
      const amF = be.argmaxRows(lf);
      const zq = be.toHost(lq);
      const zf = be.toHost(lf);
      for (let i = 0; i < n; i++) {
        const w = Math.floor((r0 + i) / T);
        sumQ[w] += lossQ[i];
        sumF[w] += lossF[i];
        if (lab[i] < 0) continue; // the last position of a window predicts nothing
        const kl = rowKl(zf, zq, i * V, V);
        klSum += kl;
        if (kl > klMax) klMax = kl;
        if (amQ[i] === amF[i]) agree++;
        predictions++;
      }
      be.free(lq, lf, ceQ.loss, ceQ.lse, ceF.loss, ceF.lse);
      if (pq !== hq) be.free(pq);
      if (pf !== hf) be.free(pf);
    }
    be.free(hq, hf);
    for (let b = 0; b < nb; b++) {
      const a = sumQ[b] / (T - 1);
      const f = sumF[b] / (T - 1);
      for (const [v, dir] of [[a, opts.model], [f, opts.fpModel]] as const) {
        if (!Number.isFinite(v)) {
          throw new UserError(`the model produced a non-finite loss (${v}) on window ${w0 + b + 1} of ${opts.starts.length}; its weights or activations hold NaN or Inf`, { file: dir });
        }
      }
      nllQ.push(a);
      nllF.push(f);
    }
    opts.onProgress?.(nllQ.length, opts.starts.length);
  }
  const mean = (x: number[]) => x.reduce((s, v) => s + v, 0) / Math.max(1, x.length);
  const meanNll = mean(nllQ);
  const fpMeanNll = mean(nllF);
  return {
    ppl: Math.exp(meanNll), meanNll, fpPpl: Math.exp(fpMeanNll), fpMeanNll,
    kl: klSum / Math.max(1, predictions), klMax, top1Agreement: agree / Math.max(1, predictions),
    windows: nllQ.length, tokens: predictions,
  };
}
