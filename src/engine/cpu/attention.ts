// Attention entry points of the cpu backend: the kernels of attention-kernels.ts, with the batch entries split over
// the thread pool when the call is large (each thread computes whole batch entries; their outputs are disjoint, so
// the result does not depend on the thread count).
import type { AttentionMask, AttentionShape } from '../backend.js';
import {
  attentionDims, createAttentionKernels, maskSpec, type AttentionArrays, type AttentionDims, type AttentionKernels, type MaskSpec,
} from './attention-kernels.js';
import { gemm, threadPool } from './matmul.js';
import { takeF32 } from './buffers.js';
import { Job, WorkerOp } from './thread-pool.js';

/** Calls below this many (dense) multiply-adds stay on one thread. */
const PARALLEL_MACS = 1 << 23;

let onPool: AttentionKernels | null = null; // large tile products may still spread over the pool
let onMain: AttentionKernels | null = null; // the main thread's own GEMM, while workers take other batch entries

function kernels(): { pool: AttentionKernels; main: AttentionKernels } {
  if (!onPool || !onMain) {
    onPool = createAttentionKernels(gemm);
    onMain = createAttentionKernels(threadPool().mainGemm);
  }
  return { pool: onPool, main: onMain };
}

/** Batch boundaries [0, b1, ..., batch] of a split over threads, or null for one thread. */
function batchSplit(d: AttentionDims): number[] | null {
  const parts = Math.min(threadPool().threads, d.batch);
  if (parts < 2 || d.batch * d.heads * d.tq * d.tk * d.D < PARALLEL_MACS) return null;
  const per = Math.ceil(d.batch / parts);
  const bounds = [0];
  for (let b = per; b < d.batch; b += per) bounds.push(b);
  bounds.push(d.batch);
  return bounds;
}

/** Run op over the batch: workers take the later batch parts, the main thread the first; false if it did not split. */
function runSplit(op: WorkerOp, d: AttentionDims, m: MaskSpec, x: AttentionArrays): boolean {
  const bounds = batchSplit(d);
  if (!bounds) return false;
  const pool = threadPool();
  const helpers = pool.helpers(bounds.length - 1);
  const qn = d.tq * d.heads * d.D; // per batch entry
  const kn = d.stride * d.kvHeads * d.D;
  const ln = d.heads * d.tq;
  const mn = m.kind === 2 ? m.nBlocks : 0;
  const backward = op === WorkerOp.AttentionBackward;
  const jobs: Job[] = [];
  for (let i = 0; i < helpers.length; i++) {
    const b0 = bounds[i + 1];
    const nb = bounds[i + 2] - b0;
    const job = new Job(op).int(nb, d.tq, d.tk, d.stride, d.heads, d.kvHeads, d.D, m.kind, m.qOffset, m.ctxLen, m.blockSize, m.nBlocks)
      .in(x.q, b0 * qn, nb * qn).in(x.k, b0 * kn, nb * kn).in(x.v, b0 * kn, nb * kn);
    if (backward) job.in(x.out, b0 * qn, nb * qn).in(x.lse, b0 * ln, nb * ln);
    else job.out(x.out, b0 * qn, nb * qn).out(x.lse, b0 * ln, nb * ln);
    if (m.kind === 2) job.intData(m.anchors!, b0 * mn, nb * mn).intData(m.keep!, b0 * mn, nb * mn);
    else if (m.qOffsets) job.intData(m.qOffsets, b0, nb).none(); // per-entry causal offsets ride in the anchors slot
    else job.none().none();
    if (backward) job.in(x.dout!, b0 * qn, nb * qn).out(x.dq!, b0 * qn, nb * qn).inout(x.dk!, b0 * kn, nb * kn).inout(x.dv!, b0 * kn, nb * kn);
    job.float(d.scale);
    job.start(helpers[i]);
    jobs.push(job);
  }
  const { main } = kernels();
  const run = backward ? main.backward : main.forward;
  const taken = jobs.length + 1; // parts 0 .. taken − 1 are running
  pool.run(jobs, () => {
    run(d, m, x, 0, bounds[1] * d.kvHeads);
    if (taken < bounds.length - 1) run(d, m, x, bounds[taken] * d.kvHeads, d.batch * d.kvHeads);
  });
  return true;
}

/** Outputs may be passed in (any contents: every element is written). */
export function attentionForward(
  q: Float32Array, k: Float32Array, v: Float32Array, shape: AttentionShape, mask: AttentionMask,
  outputs: { out?: Float32Array; lse?: Float32Array } = {},
): { out: Float32Array; lse: Float32Array } {
  const d = attentionDims(shape);
  const out = outputs.out ?? new Float32Array(d.batch * d.tq * d.heads * d.D);
  const lse = outputs.lse ?? takeF32(d.batch * d.heads * d.tq);
  const m = maskSpec(mask);
  const x = { q, k, v, out, lse };
  if (!runSplit(WorkerOp.AttentionForward, d, m, x)) kernels().pool.forward(d, m, x, 0, d.batch * d.kvHeads);
  return { out, lse };
}

/**
 * Backward: with P recomputed from the scores and lse, dV = Pᵀ·dO, dP = dO·Vᵀ, dS = P ⊙ (dP − rowsum(dO ⊙ O)),
 * dQ = scale·dS·K, dK = scale·dSᵀ·Q; GQA heads sharing a KV head accumulate into it. Outputs may be passed in:
 * dq with any contents, dk and dv zero-filled.
 */
export function attentionBackward(
  dout: Float32Array, q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array, lse: Float32Array,
  shape: AttentionShape, mask: AttentionMask, outputs: { dq?: Float32Array; dk?: Float32Array; dv?: Float32Array } = {},
): { dq: Float32Array; dk: Float32Array; dv: Float32Array } {
  const d = attentionDims(shape);
  const dq = outputs.dq ?? new Float32Array(d.batch * d.tq * d.heads * d.D);
  const dk = outputs.dk ?? new Float32Array(d.batch * d.stride * d.kvHeads * d.D);
  const dv = outputs.dv ?? new Float32Array(d.batch * d.stride * d.kvHeads * d.D);
  const m = maskSpec(mask);
  const x = { q, k, v, out, lse, dout, dq, dk, dv };
  if (!runSplit(WorkerOp.AttentionBackward, d, m, x)) kernels().pool.backward(d, m, x, 0, d.batch * d.kvHeads);
  return { dq, dk, dv };
}
