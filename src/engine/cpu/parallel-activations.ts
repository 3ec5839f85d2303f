// SwiGLU and cross-entropy over the thread pool: element or row ranges of large tensors go to the workers
// (activations.ts and crossentropy.ts run there as they are).
import { swigluBackward, swigluForward } from './activations.js';
import { crossEntropyRows } from './crossentropy.js';
import { threadPool } from './matmul.js';
import { WorkerOp, type PoolWorker } from './thread-pool.js';

/** Below this many elements one thread is faster than staging a slice. */
const PARALLEL_ELEMENTS = 1 << 18;

/** Element boundaries [0, e1, ..., n] of a split over threads (multiples of 16), or null for one thread. */
function rangeSplit(n: number): number[] | null {
  const parts = threadPool().threads;
  if (parts < 2 || n < PARALLEL_ELEMENTS) return null;
  const per = Math.ceil(n / parts / 16) * 16;
  const bounds = [0];
  for (let e = per; e < n; e += per) bounds.push(e);
  bounds.push(n);
  return bounds;
}

/**
 * Run an elementwise op on [bounds[i+1], bounds[i+2]) per worker i and the main part [0, bounds[1]) here.
 * inputs are staged, outputs copied back; main(e0, e1) computes a range on this thread.
 */
function runRanges(
  op: WorkerOp, bounds: number[], inputs: Float32Array[], outputs: Float32Array[], main: (e0: number, e1: number) => void,
): void {
  const pool = threadPool();
  const ws = pool.helpers(bounds.length - 1);
  const jobs: { w: PoolWorker; e0: number; n: number }[] = [];
  for (let i = 0; i < ws.length && i + 2 < bounds.length; i++) {
    const e0 = bounds[i + 1];
    const n = bounds[i + 2] - e0;
    const { f32 } = ws[i].stage((inputs.length + outputs.length) * n);
    inputs.forEach((a, j) => f32.set(a.subarray(e0, e0 + n), j * n));
    ws[i].start(op, [n, ...Array.from({ length: inputs.length + outputs.length }, (_, j) => j * n)]);
    jobs.push({ w: ws[i], e0, n });
  }
  const end = jobs.length > 0 ? jobs[jobs.length - 1].e0 + jobs[jobs.length - 1].n : bounds[bounds.length - 1];
  try {
    main(0, jobs.length > 0 ? jobs[0].e0 : end);
    if (end < bounds[bounds.length - 1]) main(end, bounds[bounds.length - 1]);
  } finally {
    pool.waitFor(jobs.map((j) => j.w));
  }
  for (const j of jobs) {
    const f32 = j.w.stage(0).f32;
    outputs.forEach((o, k) => o.set(f32.subarray((inputs.length + k) * j.n, (inputs.length + k + 1) * j.n), j.e0));
  }
}

/** swigluForward (activations.ts) over the pool. */
export function swigluForwardParallel(gate: Float32Array, up: Float32Array, out: Float32Array): Float32Array {
  const bounds = rangeSplit(gate.length);
  if (!bounds) return swigluForward(gate, up, out);
  runRanges(WorkerOp.SwigluForward, bounds, [gate, up], [out], (e0, e1) => {
    swigluForward(gate.subarray(e0, e1), up.subarray(e0, e1), out.subarray(e0, e1));
  });
  return out;
}

/** swigluBackward (activations.ts) over the pool. */
export function swigluBackwardParallel(
  dh: Float32Array, gate: Float32Array, up: Float32Array, dgate: Float32Array, dup: Float32Array,
): { dgate: Float32Array; dup: Float32Array } {
  const bounds = rangeSplit(gate.length);
  if (!bounds) return swigluBackward(dh, gate, up, { dgate, dup });
  runRanges(WorkerOp.SwigluBackward, bounds, [dh, gate, up], [dgate, dup], (e0, e1) => {
    swigluBackward(dh.subarray(e0, e1), gate.subarray(e0, e1), up.subarray(e0, e1), { dgate: dgate.subarray(e0, e1), dup: dup.subarray(e0, e1) });
  });
  return { dgate, dup };
}

/** Logit elements below which one thread is faster than staging rows for a worker. */
const PARALLEL_CE_ELEMENTS = 1 << 20;

/** crossEntropyRows (crossentropy.ts) with row ranges over the pool; dlogits (when weights are given) is written in place. */
export function crossEntropyParallel(
  logits: Float32Array, rows: number, V: number, labels: Int32Array, rowWeights: Float32Array | undefined, dlogits: Float32Array | undefined,
): { loss: Float32Array; lse: Float32Array; dlogits?: Float32Array } {
  const pool = threadPool();
  const parts = Math.min(pool.threads, rows);
  if (parts < 2 || rows * V < PARALLEL_CE_ELEMENTS) return crossEntropyRows(logits, rows, V, labels, rowWeights, dlogits);
  const per = Math.ceil(rows / parts);
  const ws = pool.helpers(parts);
  const loss = new Float32Array(rows);
  const lse = new Float32Array(rows);
  const jobs: { w: PoolWorker; r0: number; n: number; at: number[] }[] = [];
  for (let i = 0; i < ws.length; i++) {
    const r0 = (i + 1) * per;
    const n = Math.min(per, rows - r0);
    if (n <= 0) break;
    // logits, labels, weights, loss, lse, dlogits
    const sizes = [n * V, n, rowWeights ? n : 0, n, n, dlogits ? n * V : 0];
    const at: number[] = [];
    let total = 0;
    for (const sz of sizes) {
      at.push(total);
      total += sz;
    }
    const { f32, i32 } = ws[i].stage(total);
    f32.set(logits.subarray(r0 * V, (r0 + n) * V), at[0]);
    i32.set(labels.subarray(r0, r0 + n), at[1]);
    if (rowWeights) f32.set(rowWeights.subarray(r0, r0 + n), at[2]);
    ws[i].start(WorkerOp.CrossEntropy, [n, V, at[0], at[1], rowWeights ? at[2] : -1, at[3], at[4], dlogits ? at[5] : -1]);
    jobs.push({ w: ws[i], r0, n, at });
  }
  const mainRows = jobs.length > 0 ? jobs[0].r0 : rows;
  try {
    const r = crossEntropyRows(logits.subarray(0, mainRows * V), mainRows, V, labels.subarray(0, mainRows), rowWeights?.subarray(0, mainRows), dlogits?.subarray(0, mainRows * V));
    loss.set(r.loss);
    lse.set(r.lse);
  } finally {
    pool.waitFor(jobs.map((j) => j.w));
  }
  for (const j of jobs) {
    const f32 = j.w.stage(0).f32;
    loss.set(f32.subarray(j.at[3], j.at[3] + j.n), j.r0);
    lse.set(f32.subarray(j.at[4], j.at[4] + j.n), j.r0);
    if (dlogits) dlogits.set(f32.subarray(j.at[5], j.at[5] + j.n * V), j.r0 * V);
  }
  return { loss, lse, dlogits };
}
