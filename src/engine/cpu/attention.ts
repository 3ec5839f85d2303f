// Attention entry points of the cpu backend: the kernels of attention-kernels.ts, with the batch entries split over
// the thread pool when the call is large (each thread computes whole batch entries; their outputs are disjoint, so
// the result does not depend on the thread count).
import type { AttentionMask, AttentionShape } from '../backend.js';
import {
  attentionDims, createAttentionKernels, maskSpec, type AttentionArrays, type AttentionDims, type AttentionKernels, type MaskSpec,
} from './attention-kernels.js';
import { gemm, threadPool } from './matmul.js';
import { WorkerOp, type PoolWorker } from './thread-pool.js';

/** Calls below this many (dense) multiply-adds stay on one thread. */
const PARALLEL_MACS = 1 << 23;
const STAGE_LIMIT = 2 ** 28;

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

interface Staged {
  w: PoolWorker;
  b0: number;
  b1: number;
  at: number[]; // q, k, v, out, lse, anchors, keep, dout, dq, dk, dv
}

/** Stage batch entries [b0, b1) for a worker and start op; null when they do not fit the staging area. */
function stageAttention(
  w: PoolWorker, op: WorkerOp, d: AttentionDims, m: MaskSpec, x: AttentionArrays, b0: number, b1: number,
): Staged | null {
  const nb = b1 - b0;
  const qn = d.tq * d.heads * d.D; // per batch entry
  const kn = d.stride * d.kvHeads * d.D;
  const ln = d.heads * d.tq;
  const mn = m.kind === 2 ? m.nBlocks : 0;
  const sizes = [qn, kn, kn, qn, ln, mn, mn];
  if (op === WorkerOp.AttentionBackward) sizes.push(qn, qn, kn, kn);
  const at: number[] = [];
  let total = 0;
  for (const s of sizes) {
    at.push(total);
    total += s * nb;
  }
  if (total > STAGE_LIMIT) return null;
  const { f32, i32 } = w.stage(total);
  const put = (src: Float32Array, i: number) => f32.set(src.subarray(b0 * sizes[i], b1 * sizes[i]), at[i]);
  put(x.q, 0);
  put(x.k, 1);
  put(x.v, 2);
  if (op === WorkerOp.AttentionBackward) {
    put(x.out, 3);
    put(x.lse, 4);
    put(x.dout!, 7);
  }
  if (m.kind === 2) {
    i32.set(m.anchors!.subarray(b0 * mn, b1 * mn), at[5]);
    i32.set(m.keep!.subarray(b0 * mn, b1 * mn), at[6]);
  }
  w.start(op, [nb, d.tq, d.tk, d.stride, d.heads, d.kvHeads, d.D, m.kind, m.qOffset, m.ctxLen, m.blockSize, m.nBlocks, ...at], [d.scale]);
  return { w, b0, b1, at };
}

/** Run op over the batch: workers take the later parts, the main thread the first; false if it did not split. */
function runSplit(op: WorkerOp, d: AttentionDims, m: MaskSpec, x: AttentionArrays): boolean {
  const bounds = batchSplit(d);
  if (!bounds) return false;
  const pool = threadPool();
  const helpers = pool.helpers(bounds.length - 1);
  const staged: Staged[] = [];
  for (let i = 0; i < helpers.length && i + 2 < bounds.length; i++) {
    const s = stageAttention(helpers[i], op, d, m, x, bounds[i + 1], bounds[i + 2]);
    if (!s) break;
    staged.push(s);
  }
  const mainEnd = staged.length > 0 ? staged[0].b0 : d.batch;
  const tailStart = staged.length > 0 ? staged[staged.length - 1].b1 : d.batch;
  const { main } = kernels();
  const run = op === WorkerOp.AttentionForward ? main.forward : main.backward;
  try {
    run(d, m, x, 0, mainEnd * d.kvHeads);
    if (tailStart < d.batch) run(d, m, x, tailStart * d.kvHeads, d.batch * d.kvHeads);
  } finally {
    pool.waitFor(staged.map((s) => s.w));
  }
  const qn = d.tq * d.heads * d.D;
  const kn = d.stride * d.kvHeads * d.D;
  for (const s of staged) {
    const f32 = s.w.stage(0).f32;
    const get = (dst: Float32Array, per: number, i: number) => dst.set(f32.subarray(s.at[i], s.at[i] + (s.b1 - s.b0) * per), s.b0 * per);
    if (op === WorkerOp.AttentionForward) {
      get(x.out, qn, 3);
      get(x.lse, d.heads * d.tq, 4);
    } else {
      get(x.dq!, qn, 8);
      get(x.dk!, kn, 9);
      get(x.dv!, kn, 10);
    }
  }
  return true;
}

/** Outputs may be passed in (any contents: every element is written). */
export function attentionForward(
  q: Float32Array, k: Float32Array, v: Float32Array, shape: AttentionShape, mask: AttentionMask,
  outputs: { out?: Float32Array; lse?: Float32Array } = {},
): { out: Float32Array; lse: Float32Array } {
  const d = attentionDims(shape);
  const out = outputs.out ?? new Float32Array(d.batch * d.tq * d.heads * d.D);
  const lse = outputs.lse ?? new Float32Array(d.batch * d.heads * d.tq);
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
