// Perplexity by the REFERENCE.md protocol: windows of seqLen tokens at stride seqLen; in each window the mean
// cross-entropy of its seqLen − 1 next-token predictions; perplexity = exp(mean over windows).
import type { Tensor } from '../engine/backend.js';
import type { Decoder } from './decoder.js';
import { UserError } from '../errors.js';

export interface PerplexityOptions {
  seqLen: number;
  /** Window start offsets into tokens. */
  starts: readonly number[];
  /** Windows per forward pass. */
  batch?: number;
  /** Rows of logits materialised at once (bounds memory for large vocabularies). */
  logitRows?: number;
  onProgress?: (windowsDone: number, windowsTotal: number) => void;
  /** The model directory, named when the model produces a non-finite loss. */
  model?: string;
}

export interface PerplexityResult {
  ppl: number;
  meanNll: number;
  windows: number;
  /** Predicted tokens (windows × (seqLen − 1)). */
  tokens: number;
  windowNll: number[];
}

/**
 * The token ids of windows of T tokens starting at starts, one after another, and their next-token labels (-1 on each
 * window's last position, which has no prediction within the window).
 */
export function windowBatch(tokens: Int32Array, starts: readonly number[], T: number): { ids: Int32Array; labels: Int32Array } {
  const nb = starts.length;
  const ids = new Int32Array(nb * T);
  const labels = new Int32Array(nb * T);
  for (let b = 0; b < nb; b++) {
    const s = starts[b];
    ids.set(tokens.subarray(s, s + T), b * T);
    for (let t = 0; t < T; t++) labels[b * T + t] = t < T - 1 ? tokens[s + t + 1] : -1;
  }
  return { ids, labels };
}

export function perplexity(dec: Decoder, tokens: Int32Array, opts: PerplexityOptions): PerplexityResult {
  const { be } = dec;
  const T = opts.seqLen;
  const batch = Math.max(1, opts.batch ?? 4);
  const logitRows = opts.logitRows ?? 2048;
  const windowNll: number[] = [];
  for (let w0 = 0; w0 < opts.starts.length; w0 += batch) {
    const nb = Math.min(batch, opts.starts.length - w0);
    const { ids, labels } = windowBatch(tokens, opts.starts.slice(w0, w0 + nb), T);
    const { hidden } = dec.forward(ids, nb, { noLogits: true });
    if (!hidden) throw new Error('forward returned no hidden state');
    const sums = new Float64Array(nb);
    for (let r0 = 0; r0 < nb * T; r0 += logitRows) {
      const n = Math.min(logitRows, nb * T - r0);
      let h: Tensor = hidden;
      if (n !== nb * T) {
        h = be.zeros([n, hidden.shape[1]]);
        be.copyRows(h, 0, hidden, r0, n);
      }
      const logits = dec.logits(h);
      const { loss, lse } = be.crossEntropy(logits, labels.subarray(r0, r0 + n));
      const l = be.toHost(loss);
      for (let i = 0; i < n; i++) sums[Math.floor((r0 + i) / T)] += l[i];
      be.free(logits, loss, lse);
      if (h !== hidden) be.free(h);
    }
    be.free(hidden);
    for (let b = 0; b < nb; b++) {
      const nll = sums[b] / (T - 1);
      // A non-finite loss is a broken model (NaN/Inf weights or activations), never a perplexity to report.
      if (!Number.isFinite(nll)) {
        const s = opts.starts[w0 + b];
        throw new UserError(
          `the model produced a non-finite loss (${nll}) on window ${w0 + b + 1} of ${opts.starts.length} (tokens ${s}..${s + T - 1}); ` +
            'its weights or activations hold NaN or Inf',
          { file: opts.model },
        );
      }
      windowNll.push(nll);
    }
    opts.onProgress?.(windowNll.length, opts.starts.length);
  }
  const meanNll = windowNll.reduce((a, b) => a + b, 0) / Math.max(1, windowNll.length);
  return { ppl: Math.exp(meanNll), meanNll, windows: windowNll.length, tokens: windowNll.length * (T - 1), windowNll };
}
