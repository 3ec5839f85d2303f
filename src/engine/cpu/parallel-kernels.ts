// Row- and element-parallel kernels over the thread pool: ranges of large tensors go to the workers, which run the
// same kernel functions (activations.ts, crossentropy.ts, norm.ts, rope.ts) on their part. Parts are independent
// (rows or elements), so results do not depend on the thread count.
import { swigluBackward, swigluForward } from './activations.js';
import { crossEntropyRows } from './crossentropy.js';
import { rmsnormForward } from './norm.js';
import { ropeApply } from './rope.js';
import { threadPool } from './matmul.js';
import { Job, WorkerOp } from './thread-pool.js';

/** Below this many elements one thread is faster than handing a part to a worker. */
const PARALLEL_ELEMENTS = 1 << 18;

/** Boundaries [0, e1, ..., n] (multiples of align) of a split over the active threads, or null for one thread. */
function split(n: number, elements: number, align: number): number[] | null {
  const parts = Math.min(threadPool().threads, Math.floor(n / align));
  if (parts < 2 || elements < PARALLEL_ELEMENTS) return null;
  const per = Math.ceil(n / parts / align) * align;
  const bounds = [0];
  for (let e = per; e < n; e += per) bounds.push(e);
  bounds.push(n);
  return bounds;
}

/** Part i ≥ 1 of bounds as a job on a worker, part 0 with main(e0, e1) on this thread. */
function runParts(bounds: number[], job: (e0: number, e1: number) => Job, main: (e0: number, e1: number) => void): void {
  const pool = threadPool();
  const ws = pool.helpers(bounds.length - 1);
  const jobs: Job[] = [];
  for (let i = 0; i < ws.length; i++) {
    const j = job(bounds[i + 1], bounds[i + 2]);
    j.start(ws[i]);
    jobs.push(j);
  }
  const end = jobs.length + 1 < bounds.length - 1 ? bounds[jobs.length + 1] : bounds[bounds.length - 1];
  pool.run(jobs, () => {
    main(0, bounds[1]);
    if (end < bounds[bounds.length - 1]) main(end, bounds[bounds.length - 1]); // parts no worker took
  });
}

/** swigluForward (activations.ts) over the pool. */
export function swigluForwardParallel(gate: Float32Array, up: Float32Array, out: Float32Array): Float32Array {
  const bounds = split(gate.length, gate.length, 16);
  if (!bounds) return swigluForward(gate, up, out);
  runParts(bounds,
    (e0, e1) => new Job(WorkerOp.SwigluForward).int(e1 - e0).in(gate, e0, e1 - e0).in(up, e0, e1 - e0).out(out, e0, e1 - e0),
    (e0, e1) => swigluForward(gate.subarray(e0, e1), up.subarray(e0, e1), out.subarray(e0, e1)));
  return out;
}

/** swigluBackward (activations.ts) over the pool. */
export function swigluBackwardParallel(
  dh: Float32Array, gate: Float32Array, up: Float32Array, dgate: Float32Array, dup: Float32Array,
): { dgate: Float32Array; dup: Float32Array } {
  const bounds = split(gate.length, gate.length, 16);
  if (!bounds) return swigluBackward(dh, gate, up, { dgate, dup });
  runParts(bounds,
    (e0, e1) => new Job(WorkerOp.SwigluBackward).int(e1 - e0).in(dh, e0, e1 - e0).in(gate, e0, e1 - e0).in(up, e0, e1 - e0)
      .out(dgate, e0, e1 - e0).out(dup, e0, e1 - e0),
    (e0, e1) => swigluBackward(dh.subarray(e0, e1), gate.subarray(e0, e1), up.subarray(e0, e1), { dgate: dgate.subarray(e0, e1), dup: dup.subarray(e0, e1) }));
  return { dgate, dup };
}

/** crossEntropyRows (crossentropy.ts) with row ranges over the pool; dlogits (when weights are given) is written in place. */
export function crossEntropyParallel(
  logits: Float32Array, rows: number, V: number, labels: Int32Array, rowWeights: Float32Array | undefined, dlogits: Float32Array | undefined,
): { loss: Float32Array; lse: Float32Array; dlogits?: Float32Array } {
  const bounds = split(rows, rows * V, 1);
  if (!bounds) return crossEntropyRows(logits, rows, V, labels, rowWeights, dlogits);
  const loss = new Float32Array(rows);
  const lse = new Float32Array(rows);
  runParts(bounds,
    (r0, r1) => {
      const n = r1 - r0;
      const j = new Job(WorkerOp.CrossEntropy).int(n, V).in(logits, r0 * V, n * V).intData(labels, r0, n);
      if (rowWeights) j.in(rowWeights, r0, n);
      else j.none();
      j.out(loss, r0, n).out(lse, r0, n);
      if (dlogits) j.out(dlogits, r0 * V, n * V);
      else j.none();
      return j;
    },
    (r0, r1) => {
      const r = crossEntropyRows(logits.subarray(r0 * V, r1 * V), r1 - r0, V, labels.subarray(r0, r1), rowWeights?.subarray(r0, r1), dlogits?.subarray(r0 * V, r1 * V));
      loss.set(r.loss, r0);
      lse.set(r.lse, r0);
    });
  return { loss, lse, dlogits };
}

/** rmsnormForward (norm.ts) with row ranges over the pool. */
export function rmsnormForwardParallel(
  x: Float32Array, w: Float32Array, rows: number, C: number, eps: number, y: Float32Array, rstd: Float32Array,
): { y: Float32Array; rstd: Float32Array } {
  const bounds = split(rows, rows * C, 1);
  if (!bounds) return rmsnormForward(x, w, rows, C, eps, { y, rstd });
  runParts(bounds,
    (r0, r1) => new Job(WorkerOp.RmsnormForward).int(r1 - r0, C).in(x, r0 * C, (r1 - r0) * C).in(w, 0, C)
      .out(y, r0 * C, (r1 - r0) * C).out(rstd, r0, r1 - r0).float(eps),
    (r0, r1) => rmsnormForward(x.subarray(r0 * C, r1 * C), w, r1 - r0, C, eps, { y: y.subarray(r0 * C, r1 * C), rstd: rstd.subarray(r0, r1) }));
  return { y, rstd };
}

/** ropeApply (rope.ts) with row ranges over the pool. */
export function ropeParallel(
  x: Float32Array, rows: number, width: number, positions: Int32Array, invFreq: Float32Array, headDim: number, inverse: boolean, out: Float32Array,
): Float32Array {
  const bounds = split(rows, rows * width, 1);
  if (!bounds) return ropeApply(x, rows, width, positions, invFreq, headDim, inverse, out);
  runParts(bounds,
    (r0, r1) => new Job(WorkerOp.Rope).int(r1 - r0, width, headDim, inverse ? 1 : 0).intData(positions, r0, r1 - r0)
      .in(invFreq, 0, headDim / 2).in(x, r0 * width, (r1 - r0) * width).out(out, r0 * width, (r1 - r0) * width),
    (r0, r1) => ropeApply(x.subarray(r0 * width, r1 * width), r1 - r0, width, positions.subarray(r0, r1), invFreq, headDim, inverse, out.subarray(r0 * width, r1 * width)));
  return out;
}

/** out = a + b (same length) or a + b broadcast over rows of width b.length, over the pool. */
export function addParallel(a: Float32Array, b: Float32Array, out: Float32Array): Float32Array {
  const n = a.length;
  const C = b.length === n ? 0 : b.length;
  const add = (e0: number, e1: number) => {
    if (C === 0) for (let i = e0; i < e1; i++) out[i] = a[i] + b[i];
    else for (let o = e0; o < e1; o += C) for (let c = 0; c < C; c++) out[o + c] = a[o + c] + b[c];
  };
  const bounds = split(n, n, C === 0 ? 16 : C);
  if (!bounds) {
    add(0, n);
    return out;
  }
  runParts(bounds,
    (e0, e1) => new Job(WorkerOp.Add).int(e1 - e0, C).in(a, e0, e1 - e0).in(b, C === 0 ? e0 : 0, C === 0 ? e1 - e0 : C).out(out, e0, e1 - e0),
    add);
  return out;
}
