// Multi-core execution for the synchronous cpu backend: persistent worker threads, each with its own
// tfjs-backend-wasm instance (the wasm module is single-threaded under Node), take slices of large products and of
// the heavy JS kernels while the main thread computes the first slice. Operands travel through a growable
// SharedArrayBuffer per worker; the main thread blocks on Atomics.wait until every worker is done, so calls stay
// synchronous.
//
// A slice is computed by the same code (the workers run the source text of wasm-gemm.ts, attention-kernels.ts,
// activations.ts and crossentropy.ts) on the same wasm build as on the main thread; slices depend only on the shapes
// and the thread count, and outputs are split into independent parts (rows of a product, batch entries of attention,
// element or row ranges), so results are the single-thread results bit for bit whatever the thread count.
import { Worker } from 'node:worker_threads';
import { createGemmDriver, type GemmDriver, type MatView } from './wasm-gemm.js';
import { createAttentionKernels } from './attention-kernels.js';
import { swigluBackward, swigluForward } from './activations.js';
import { crossEntropyRows } from './crossentropy.js';

/** Where a worker finds tfjs: absolute paths resolved by the main thread, so the worker source needs no resolution. */
export interface WorkerImports {
  corePath: string;
  wasmPackagePath: string;
  wasmDir: string;
}

/** Worker operations (Int32 parameters from slot PARAMS, f64 parameters in the f64 slots; offsets in staged floats). */
export enum WorkerOp {
  /** M, K, N, aOff, aLd, aTrans, bOff, bLd, bTrans, cOff: C [M, N] (row stride N) = A·B. */
  Gemm = 1,
  /** batch, tq, tk, stride, heads, kvHeads, D, maskKind, qOffset, ctxLen, blockSize, nBlocks, q, k, v, out, lse, anchors, keep; f64 scale. */
  AttentionForward = 2,
  /** As AttentionForward, then dout, dq, dk, dv (dk, dv zeroed by the worker). */
  AttentionBackward = 3,
  /** n, gate, up, h. */
  SwigluForward = 4,
  /** n, dh, gate, up, dgate, dup. */
  SwigluBackward = 5,
  /** rows, V, logits, labels (i32), rowWeights (−1: none), loss, lse, dlogits (−1: none). */
  CrossEntropy = 6,
}

// Control block of one worker: Int32 slots, then F64_SLOTS doubles, then MESSAGE_BYTES for an error text.
const SEQ = 0; // job number, written by the main thread
const DONE = 1; // last finished job number, written by the worker
const STATUS = 2; // 0 = ok, 1 = failed (message follows)
const OP = 3;
const PARAMS = 4;
const CONTROL_INTS = 32;
const F64_SLOTS = 4;
const MESSAGE_BYTES = 2048;
const CONTROL_BYTES = CONTROL_INTS * 4 + F64_SLOTS * 8 + MESSAGE_BYTES;
const ID_BASE_WORKER = 0x40000000;

/** Products below this many multiply-adds run on the calling thread alone (a hand-off costs ~0.1 ms). */
const PARALLEL_MACS = 1 << 21;
/** The main thread's share of a split product relative to a worker's (it also stages operands and results). */
const MAIN_SHARE = 0.85;
/** Rows per slice at least (XNNPACK tiles rows by 4–6). */
const MIN_ROWS = 16;
/** Largest staging area per worker, in floats (reserved address space; committed as used). */
const STAGE_MAX_FLOATS = 2 ** 28;
/** A worker that does not answer within this time is considered lost. */
const WAIT_MS = 10 * 60 * 1000;

interface GrowableShared extends SharedArrayBuffer {
  grow(bytes: number): void;
  readonly maxByteLength: number;
}

/** One worker as the kernels see it: a staging area and a way to start an operation on it. */
export interface PoolWorker {
  /** Fixed-length Float32/Int32 views of at least n staging floats (grown as needed; previous contents may be lost). */
  stage(n: number): { f32: Float32Array; i32: Int32Array };
  /** Start op with Int32 parameters ints and f64 parameters f64 on what was staged. */
  start(op: WorkerOp, ints: readonly number[], f64?: readonly number[]): void;
}

/** Operations started on workers since the process began (tests check that a split really happened). */
let workerJobs = 0;

export function workerJobCount(): number {
  return workerJobs;
}

class WorkerThread implements PoolWorker {
  private seq = 0;
  private f32: Float32Array = new Float32Array(0);
  private i32: Int32Array = new Int32Array(0);
  private readonly ctrl: Int32Array;
  private readonly f64: Float64Array;
  private readonly message: Uint8Array;

  constructor(readonly worker: Worker, ctrlBuffer: SharedArrayBuffer, private readonly stageBuffer: GrowableShared) {
    this.ctrl = new Int32Array(ctrlBuffer, 0, CONTROL_INTS);
    this.f64 = new Float64Array(ctrlBuffer, CONTROL_INTS * 4, F64_SLOTS);
    this.message = new Uint8Array(ctrlBuffer, CONTROL_INTS * 4 + F64_SLOTS * 8, MESSAGE_BYTES);
  }

  stage(n: number): { f32: Float32Array; i32: Int32Array } {
    if (n > STAGE_MAX_FLOATS) throw new Error(`staging area of ${n} floats exceeds ${STAGE_MAX_FLOATS}`);
    const b = this.stageBuffer;
    if (b.byteLength < n * 4) b.grow(Math.min(STAGE_MAX_FLOATS, Math.max(n, Math.ceil((b.byteLength / 4) * 1.5))) * 4);
    if (this.f32.length * 4 !== b.byteLength) {
      // Fixed-length views: element access through length-tracking views of a growable buffer is ~25x slower.
      this.f32 = new Float32Array(b, 0, b.byteLength / 4);
      this.i32 = new Int32Array(b, 0, b.byteLength / 4);
    }
    return { f32: this.f32, i32: this.i32 };
  }

  start(op: WorkerOp, ints: readonly number[], f64: readonly number[] = []): void {
    if (PARAMS + ints.length > CONTROL_INTS || f64.length > F64_SLOTS) throw new Error('too many worker parameters');
    const c = this.ctrl;
    c[OP] = op;
    for (let i = 0; i < ints.length; i++) c[PARAMS + i] = ints[i];
    for (let i = 0; i < f64.length; i++) this.f64[i] = f64[i];
    this.seq = this.seq >= 0x7ffffff0 ? 1 : this.seq + 1;
    workerJobs++;
    Atomics.store(c, SEQ, this.seq);
    Atomics.notify(c, SEQ);
  }

  /** Block until the last started operation is done; its error text, or null. */
  wait(): string | null {
    const t0 = Date.now();
    for (;;) {
      const done = Atomics.load(this.ctrl, DONE);
      if (done === this.seq) break;
      if (Date.now() - t0 > WAIT_MS) throw new Error(`a cpu worker thread did not answer within ${WAIT_MS / 1000} s`);
      Atomics.wait(this.ctrl, DONE, done, 1000);
    }
    if (this.ctrl[STATUS] === 0) return null;
    const end = this.message.indexOf(0);
    return new TextDecoder().decode(this.message.slice(0, end < 0 ? MESSAGE_BYTES : end));
  }
}

/** Source text run by each worker (CommonJS eval context). */
function workerSource(): string {
  return `'use strict';
const { workerData, parentPort } = require('node:worker_threads');
// Identity shim for the name-keeping helper that some TypeScript transpilers insert into function bodies.
var __name = (f) => f;
const createGemmDriver = (${createGemmDriver.toString()});
const createAttentionKernels = (${createAttentionKernels.toString()});
const swigluForward = (${swigluForward.toString()});
const swigluBackward = (${swigluBackward.toString()});
const crossEntropyRows = (${crossEntropyRows.toString()});
(async () => {
  const d = workerData;
  const tf = require(d.corePath);
  const wasmBackend = require(d.wasmPackagePath);
  wasmBackend.setWasmPaths(d.wasmDir);
  tf.env().set('IS_NODE', true);
  if (!(await tf.setBackend('wasm'))) throw new Error('tfjs-backend-wasm failed to initialise in a worker');
  const driver = createGemmDriver(tf.backend().wasm, ${ID_BASE_WORKER});
  const attention = createAttentionKernels(driver.gemm);
  const ctrl = new Int32Array(d.ctrl, 0, ${CONTROL_INTS});
  const f64 = new Float64Array(d.ctrl, ${CONTROL_INTS * 4}, ${F64_SLOTS});
  const message = new Uint8Array(d.ctrl, ${CONTROL_INTS * 4 + F64_SLOTS * 8}, ${MESSAGE_BYTES});
  let f32 = new Float32Array(0);
  let i32 = new Int32Array(0);
  const view = (data, offset, ld, trans) => ({ data, offset, ld, trans: trans === 1 });
  const sub = (off, n) => f32.subarray(off, off + n);
  function attentionArgs(p) {
    const [batch, tq, tk, stride, heads, kvHeads, D, kind, qOffset, ctxLen, blockSize, nBlocks] = p;
    const dims = { batch, tq, tk, stride, heads, kvHeads, D, scale: f64[0] };
    const mask = { kind, qOffset, ctxLen, blockSize, nBlocks, anchors: kind === 2 ? i32.subarray(p[17], p[17] + batch * nBlocks) : null, keep: kind === 2 ? i32.subarray(p[18], p[18] + batch * nBlocks) : null };
    const qn = batch * tq * heads * D, kn = batch * stride * kvHeads * D;
    const x = { q: sub(p[12], qn), k: sub(p[13], kn), v: sub(p[14], kn), out: sub(p[15], qn), lse: sub(p[16], batch * heads * tq) };
    if (p.length > 19) { x.dout = sub(p[19], qn); x.dq = sub(p[20], qn); x.dk = sub(p[21], kn).fill(0); x.dv = sub(p[22], kn).fill(0); }
    return [dims, mask, x, batch * kvHeads];
  }
  parentPort.postMessage({ ready: true });
  let seen = 0;
  for (;;) {
    Atomics.wait(ctrl, ${SEQ}, seen);
    seen = Atomics.load(ctrl, ${SEQ});
    try {
      if (f32.length * 4 !== d.stage.byteLength) {
        f32 = new Float32Array(d.stage, 0, d.stage.byteLength / 4);
        i32 = new Int32Array(d.stage, 0, d.stage.byteLength / 4);
      }
      const op = ctrl[${OP}];
      const p = Array.from(ctrl.subarray(${PARAMS}));
      if (op === ${WorkerOp.Gemm}) {
        const [M, K, N] = p;
        driver.gemm(M, K, N, view(f32, p[3], p[4], p[5]), view(f32, p[6], p[7], p[8]), view(f32, p[9], N, 0), 0, 1);
      } else if (op === ${WorkerOp.AttentionForward}) {
        const [dims, mask, x, units] = attentionArgs(p.slice(0, 19));
        attention.forward(dims, mask, x, 0, units);
      } else if (op === ${WorkerOp.AttentionBackward}) {
        const [dims, mask, x, units] = attentionArgs(p.slice(0, 23));
        attention.backward(dims, mask, x, 0, units);
      } else if (op === ${WorkerOp.SwigluForward}) {
        const n = p[0];
        swigluForward(sub(p[1], n), sub(p[2], n), sub(p[3], n));
      } else if (op === ${WorkerOp.SwigluBackward}) {
        const n = p[0];
        swigluBackward(sub(p[1], n), sub(p[2], n), sub(p[3], n), { dgate: sub(p[4], n), dup: sub(p[5], n) });
      } else if (op === ${WorkerOp.CrossEntropy}) {
        const [rows, V, lo, la, wo, lossOff, lseOff, dlo] = p;
        const r = crossEntropyRows(sub(lo, rows * V), rows, V, i32.subarray(la, la + rows), wo >= 0 ? sub(wo, rows) : undefined, dlo >= 0 ? sub(dlo, rows * V) : undefined);
        f32.set(r.loss, lossOff);
        f32.set(r.lse, lseOff);
      } else {
        throw new Error('unknown worker operation ' + op);
      }
      ctrl[${STATUS}] = 0;
    } catch (e) {
      ctrl[${STATUS}] = 1;
      const text = new TextEncoder().encode(String((e && e.stack) || e)).subarray(0, ${MESSAGE_BYTES - 1});
      message.fill(0);
      message.set(text);
    }
    Atomics.store(ctrl, ${DONE}, seen);
    Atomics.notify(ctrl, ${DONE});
  }
})().catch((e) => parentPort.postMessage({ error: String((e && e.stack) || e) }));
`;
}

function startWorker(imports: WorkerImports, timeoutMs: number): Promise<WorkerThread> {
  const ctrlBuffer = new SharedArrayBuffer(CONTROL_BYTES);
  const stageBuffer = new (SharedArrayBuffer as unknown as new (n: number, o: { maxByteLength: number }) => GrowableShared)(
    0, { maxByteLength: STAGE_MAX_FLOATS * 4 },
  );
  const worker = new Worker(workerSource(), { eval: true, workerData: { ...imports, ctrl: ctrlBuffer, stage: stageBuffer } });
  return new Promise<WorkerThread>((resolve, reject) => {
    const fail = (why: string) => {
      clearTimeout(timer);
      void worker.terminate();
      reject(new Error(why));
    };
    const timer = setTimeout(() => fail(`a cpu worker thread did not start within ${timeoutMs} ms`), timeoutMs);
    worker.once('error', (e) => fail(`a cpu worker thread failed: ${e.message}`));
    worker.once('exit', (code) => fail(`a cpu worker thread exited (code ${code}) before it was ready`));
    worker.once('message', (m: { ready?: boolean; error?: string }) => {
      if (!m.ready) return fail(`a cpu worker thread failed to start: ${m.error ?? 'unknown error'}`);
      clearTimeout(timer);
      worker.removeAllListeners('error');
      worker.removeAllListeners('exit');
      worker.on('error', () => {}); // a later failure shows as a job error or a timeout, not an uncaught event
      worker.unref(); // a parked worker must not keep the process alive
      resolve(new WorkerThread(worker, ctrlBuffer, stageBuffer));
    });
  });
}

/** Copy rows×cols of a strided matrix into dst (compact, row stride cols). */
function packRows(dst: Float32Array, at: number, src: Float32Array, offset: number, ld: number, rows: number, cols: number): void {
  if (ld === cols) {
    dst.set(src.subarray(offset, offset + rows * cols), at);
    return;
  }
  for (let r = 0; r < rows; r++) dst.set(src.subarray(offset + r * ld, offset + r * ld + cols), at + r * cols);
}

export class ThreadPool {
  private active: number;
  /** The main thread's own GEMM (for kernels that already run beside busy workers). */
  readonly mainGemm: GemmDriver['gemm'];

  private constructor(main: GemmDriver, private readonly workers: WorkerThread[]) {
    this.active = 1 + workers.length;
    this.mainGemm = main.gemm;
  }

  /**
   * Start threads − 1 workers beside the main thread. Returns the pool and, when fewer workers could be started
   * than asked for, the reason (the pool then runs on the threads it has, at least the main one).
   */
  static async create(main: GemmDriver, threads: number, imports: WorkerImports | null, timeoutMs = 60_000): Promise<{ pool: ThreadPool; problem?: string }> {
    const want = Math.max(0, Math.floor(threads) - 1);
    if (want === 0 || !imports) return { pool: new ThreadPool(main, []), problem: want > 0 ? 'tfjs packages not resolvable for worker threads' : undefined };
    const settled = await Promise.allSettled(Array.from({ length: want }, () => startWorker(imports, timeoutMs)));
    const ok = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    const bad = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    return { pool: new ThreadPool(main, ok), problem: bad ? String((bad.reason as Error).message) : undefined };
  }

  /** Threads available (main + workers). */
  get available(): number {
    return 1 + this.workers.length;
  }

  /** Threads in use. */
  get threads(): number {
    return this.active;
  }

  /** Use at most n threads from now on (1 = main thread only); returns the number in use. */
  setThreads(n: number): number {
    this.active = Math.max(1, Math.min(this.available, Math.floor(n)));
    return this.active;
  }

  /** The first n − 1 active workers (for a split into n parts, the main thread taking part 0). */
  helpers(n: number): PoolWorker[] {
    return this.workers.slice(0, Math.max(0, Math.min(n, this.active) - 1));
  }

  /** Wait for the given workers; throws the first failure after all have finished. */
  waitFor(ws: readonly PoolWorker[]): void {
    let failure: string | null = null;
    for (const w of ws) {
      const err = (w as WorkerThread).wait();
      if (err !== null && failure === null) failure = err;
    }
    if (failure !== null) throw new Error(`cpu worker thread failed: ${failure}`);
  }

  /**
   * C = alpha·A·B (beta 0) or C += alpha·A·B (beta 1), as GemmDriver.gemm; large products are split by rows over
   * the active threads.
   */
  gemm(M: number, K: number, N: number, a: MatView, b: MatView, c: MatView, beta: 0 | 1, alpha: number): void {
    const parts = Math.min(this.active, Math.floor(M / MIN_ROWS));
    if (parts < 2 || M * K * N < PARALLEL_MACS || c.trans) {
      this.mainGemm(M, K, N, a, b, c, beta, alpha);
      return;
    }
    // Row boundaries (multiples of 8): the main thread also stages operands and copies results, so it takes a
    // smaller share.
    const bounds = [0];
    const total = MAIN_SHARE + (parts - 1);
    for (let p = 1; p < parts; p++) bounds.push(Math.min(M, Math.round((M * (MAIN_SHARE + p - 1)) / total / 8) * 8));
    bounds.push(M);
    const jobs: { w: WorkerThread; m0: number; rows: number; cAt: number }[] = [];
    const helpers = this.helpers(parts) as WorkerThread[];
    for (let p = 1; p < parts; p++) {
      const w = helpers[p - 1];
      const m0 = bounds[p];
      const rows = bounds[p + 1] - m0;
      if (rows <= 0) continue;
      const aAt = 0;
      const bAt = rows * K;
      const cAt = bAt + K * N;
      if (cAt + rows * N > STAGE_MAX_FLOATS) break; // too large to stage: the rest stays on this thread
      const st = w.stage(cAt + rows * N).f32;
      // A slice: rows of A, or (transposed storage) the same columns of every stored row; B whole, as stored.
      if (!a.trans) packRows(st, aAt, a.data, a.offset + m0 * a.ld, a.ld, rows, K);
      else packRows(st, aAt, a.data, a.offset + m0, a.ld, K, rows);
      if (!b.trans) packRows(st, bAt, b.data, b.offset, b.ld, K, N);
      else packRows(st, bAt, b.data, b.offset, b.ld, N, K);
      w.start(WorkerOp.Gemm, [rows, K, N, aAt, a.trans ? rows : K, a.trans ? 1 : 0, bAt, b.trans ? K : N, b.trans ? 1 : 0, cAt]);
      jobs.push({ w, m0, rows, cAt });
    }
    const mainRows = jobs.length > 0 ? bounds[1] : M;
    const tail = jobs.length > 0 ? jobs[jobs.length - 1].m0 + jobs[jobs.length - 1].rows : M;
    this.mainGemm(mainRows, K, N, a, b, c, beta, alpha);
    if (tail < M) {
      // Rows no worker could take (staging limit): also on this thread.
      const at = { ...a, offset: a.trans ? a.offset + tail : a.offset + tail * a.ld };
      this.mainGemm(M - tail, K, N, at, b, { ...c, offset: c.offset + tail * c.ld }, beta, alpha);
    }
    this.waitFor(jobs.map((j) => j.w));
    for (const j of jobs) {
      const src = j.w.stage(0).f32;
      const o = c.offset + j.m0 * c.ld;
      const dst = c.data;
      for (let i = 0; i < j.rows; i++) {
        const d = o + i * c.ld;
        const r = j.cAt + i * N;
        if (beta === 0 && alpha === 1) dst.set(src.subarray(r, r + N), d);
        else if (beta === 0) for (let t = 0; t < N; t++) dst[d + t] = alpha * src[r + t];
        else if (alpha === 1) for (let t = 0; t < N; t++) dst[d + t] += src[r + t];
        else for (let t = 0; t < N; t++) dst[d + t] += alpha * src[r + t];
      }
    }
  }
}
