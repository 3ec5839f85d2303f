// Multi-core execution for the synchronous cpu backend: persistent worker threads, each with its own
// tfjs-backend-wasm instance (the wasm module is single-threaded under Node), take slices of large products and of
// the heavy JS kernels while the main thread computes the first slice; the main thread blocks on Atomics.wait until
// every worker is done, so calls stay synchronous.
//
// Operands reach a worker by reference when their storage is a SharedArrayBuffer (tensor storage is, once workers
// run: buffers.ts), otherwise as copies through a growable staging buffer per worker (results copied back).
//
// A slice is computed by the same code (the workers run the source text of wasm-gemm.ts, attention-kernels.ts,
// activations.ts, crossentropy.ts, norm.ts and rope.ts) on the same wasm build as on the main thread; slices depend
// only on the shapes and the thread count, and outputs are split into independent parts (rows of a product, batch
// entries of attention, element or row ranges), so results are the single-thread results bit for bit whatever the
// thread count.
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { createGemmDriver, type GemmDriver, type MatView } from './wasm-gemm.js';
import { createAttentionKernels } from './attention-kernels.js';
import { swigluBackward, swigluForward } from './activations.js';
import { crossEntropyRows } from './crossentropy.js';
import { rmsnormForward } from './norm.js';
import { ropeApply } from './rope.js';

/** Where a worker finds tfjs: absolute paths resolved by the main thread, so the worker source needs no resolution. */
export interface WorkerImports {
  corePath: string;
  wasmPackagePath: string;
  wasmDir: string;
}

/**
 * Worker operations. Parameters are Int32 slots from PARAMS and f64 slots; an operand is a pair (bi, off): element
 * off of posted shared buffer bi, or of the staging buffer when bi = −1 (bi = −2: absent).
 */
export enum WorkerOp {
  /** M, K, N, A(bi, off, ld, trans), B(bi, off, ld, trans), C(bi, off, ld), beta; f64 alpha: C (=|+=) alpha·A·B. */
  Gemm = 1,
  /** batch, tq, tk, stride, heads, kvHeads, D, maskKind, qOffset, ctxLen, blockSize, nBlocks, q, k, v, out, lse, anchors, keep; f64 scale. */
  AttentionForward = 2,
  /** As AttentionForward, then dout, dq, dk, dv (dk, dv accumulated). */
  AttentionBackward = 3,
  /** n, gate, up, h. */
  SwigluForward = 4,
  /** n, dh, gate, up, dgate, dup. */
  SwigluBackward = 5,
  /** rows, V, logits, labels (staged i32), rowWeights, loss, lse, dlogits. */
  CrossEntropy = 6,
  /** rows, C, x, w, y, rstd; f64 eps. */
  RmsnormForward = 7,
  /** rows, width, headDim, inverse, positions (staged i32), invFreq, x, y. */
  Rope = 8,
  /** n, C (0: same shape; else b is broadcast over rows of width C), a, b, out. */
  Add = 9,
  /** ms: the worker sleeps this long inside its part (tests: a slow worker is waited for, not declared dead). */
  Sleep = 98,
  /**
   * code, silent: the worker exits with this code mid-job (tests: a worker that dies must fail the command at once);
   * silent = 1 skips its exit hook, as a thread stopped for running out of memory does.
   */
  Exit = 99,
}

// Control block of one worker: Int32 slots, then F64_SLOTS doubles, then MESSAGE_BYTES for an error text.
const SEQ = 0; // job number, written by the main thread
const DONE = 1; // last finished job number, written by the worker
const STATUS = 2; // 0 = ok, 1 = failed (message follows)
const OP = 3;
const NBUFS = 4; // shared buffers posted for the job
const DEAD = 5; // nonzero once the worker thread is gone (exit code + 1), written by whichever side sees it first
// Job number whose buffers the worker could not find on its port: the main thread posts them again. A buffer message
// has been seen missing (the worker then spun in receiveMessageOnPort for good: the rare stall of a tiny cpu run), so
// buffers travel tagged with their job number, stale ones are dropped, and a missing one is asked for again.
const NEED = 6;
const PARAMS = 7;
const CONTROL_INTS = 64;
const F64_SLOTS = 4;
const MESSAGE_BYTES = 2048;
const CONTROL_BYTES = CONTROL_INTS * 4 + F64_SLOTS * 8 + MESSAGE_BYTES;
const ID_BASE_WORKER = 0x40000000;

/** Products below this many multiply-adds run on the calling thread alone (a hand-off costs ~0.1 ms). */
const PARALLEL_MACS = 1 << 21;
/** The main thread's share of a split product relative to a worker's (it also prepares and finishes the jobs). */
const MAIN_SHARE = 0.85;
/** Rows per slice at least (XNNPACK tiles rows by 4–6). */
const MIN_ROWS = 16;
/** Largest staging area per worker, in floats (reserved address space; committed as used). */
const STAGE_MAX_FLOATS = 2 ** 28;
/**
 * How often a main thread blocked on a worker looks at it again (ms). A worker that dies wakes it at once through
 * its exit hook; the look catches a thread stopped without running the hook (e.g. its heap out of memory). A worker
 * that is alive is waited for however long its part takes: a loaded machine makes parts slow, never dead.
 */
const DEATH_POLL_MS = 500;

interface GrowableShared extends SharedArrayBuffer {
  grow(bytes: number): void;
  readonly maxByteLength: number;
}

/** Operations started on workers, and floats they received through staging copies, since the process began. */
let workerJobs = 0;
let stagedFloats = 0;

/** Tests check with these that a split really happened, and that shared operands were not copied. */
export function workerJobCount(): number {
  return workerJobs;
}

export function stagedFloatCount(): number {
  return stagedFloats;
}

class WorkerThread {
  private seq = 0;
  private bufs: readonly SharedArrayBuffer[] = [];
  private f32: Float32Array = new Float32Array(0);
  private i32: Int32Array = new Int32Array(0);
  private readonly ctrl: Int32Array;
  private readonly f64: Float64Array;
  private readonly message: Uint8Array;

  constructor(
    readonly worker: Worker, ctrlBuffer: SharedArrayBuffer, private readonly stageBuffer: GrowableShared, private readonly port: MessagePort,
  ) {
    this.ctrl = new Int32Array(ctrlBuffer, 0, CONTROL_INTS);
    this.f64 = new Float64Array(ctrlBuffer, CONTROL_INTS * 4, F64_SLOTS);
    this.message = new Uint8Array(ctrlBuffer, CONTROL_INTS * 4 + F64_SLOTS * 8, MESSAGE_BYTES);
  }

  /** Fixed-length Float32/Int32 views of at least n staging floats (grown as needed; contents may be lost). */
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

  /** Why the worker is gone (its exit seen by the worker itself or by an 'exit'/'error' event here), or null. */
  deathReason: string | null = null;

  markDead(reason: string): void {
    this.deathReason ??= reason;
    if (Atomics.load(this.ctrl, DEAD) === 0) Atomics.store(this.ctrl, DEAD, 1);
    Atomics.notify(this.ctrl, DONE);
  }

  /**
   * Whether the thread has stopped, asked synchronously (its 'exit' event cannot arrive while the main thread blocks):
   * Node reports an event-loop idle time of −1 for a stopped worker (node_worker.cc, Worker::LoopIdleTime). Needs
   * eventLoopUtilization() to have been called once while the worker ran (startWorker does). Should a Node version
   * stop reporting it, only this look is lost; deaths that run the exit hook are still seen at once.
   */
  private threadStopped(): boolean {
    return this.worker.performance.eventLoopUtilization().idle < 0;
  }

  private deadError(): Error | null {
    if (Atomics.load(this.ctrl, DEAD) === 0 && this.threadStopped()) this.markDead('it stopped without reporting (out of memory?)');
    const d = Atomics.load(this.ctrl, DEAD);
    if (d === 0) return null;
    const why = this.deathReason ?? `it exited with code ${d - 1}`;
    return new Error(`a cpu worker thread died (${why}); the computation cannot finish`);
  }

  start(op: WorkerOp, ints: readonly number[], f64: readonly number[], bufs: readonly SharedArrayBuffer[]): void {
    const dead = this.deadError();
    if (dead) throw dead;
    if (PARAMS + ints.length > CONTROL_INTS || f64.length > F64_SLOTS) throw new Error('too many worker parameters');
    const c = this.ctrl;
    c[OP] = op;
    c[NBUFS] = bufs.length;
    for (let i = 0; i < ints.length; i++) c[PARAMS + i] = ints[i];
    for (let i = 0; i < f64.length; i++) this.f64[i] = f64[i];
    this.seq = this.seq >= 0x7ffffff0 ? 1 : this.seq + 1;
    this.bufs = bufs;
    if (bufs.length > 0) this.postBuffers(); // queued before the job starts; read with receiveMessageOnPort
    workerJobs++;
    Atomics.store(c, SEQ, this.seq);
    Atomics.notify(c, SEQ);
  }

  private postBuffers(): void {
    this.port.postMessage({ seq: this.seq, bufs: this.bufs });
  }

  /** Block until the last started operation is done, or the worker is seen dead (thrown); its error text, or null. */
  wait(): string | null {
    for (;;) {
      const done = Atomics.load(this.ctrl, DONE);
      if (done === this.seq) break;
      if (Atomics.load(this.ctrl, NEED) === this.seq) {
        // The worker found no buffers for this job on its port: post them again (it drops any stale copy).
        Atomics.store(this.ctrl, NEED, 0);
        this.postBuffers();
        Atomics.notify(this.ctrl, NEED);
        continue;
      }
      // A dying worker stores DEAD and notifies DONE from its exit hook, so this wakes at once; the timeout only
      // paces the look for a thread that stopped without running the hook.
      const dead = this.deadError();
      if (dead) throw dead;
      Atomics.wait(this.ctrl, DONE, done, DEATH_POLL_MS);
    }
    if (this.ctrl[STATUS] === 0) return null;
    const end = this.message.indexOf(0);
    return new TextDecoder().decode(this.message.slice(0, end < 0 ? MESSAGE_BYTES : end));
  }
}

/** The shared buffer behind a Float32Array, or null when it is an ordinary one. */
function sharedOf(a: Float32Array): SharedArrayBuffer | null {
  return a.buffer instanceof SharedArrayBuffer ? a.buffer : null;
}

/**
 * One operation for one worker: operands in shared storage go by reference, the others through the staging area
 * (inputs copied in when the job starts, outputs copied back by finish()). Parameters are appended in call order.
 */
export class Job {
  private readonly bufs: SharedArrayBuffer[] = [];
  private readonly index = new Map<SharedArrayBuffer, number>();
  private stageFloats = 0;
  private readonly copyIn: { src: Float32Array | Int32Array | Uint8Array; off: number; n: number; at: number; int: boolean }[] = [];
  private readonly copyOut: { dst: Float32Array; off: number; n: number; at: number }[] = [];
  private readonly ints: number[] = [];
  private readonly f64: number[] = [];
  private worker: WorkerThread | null = null;

  constructor(private readonly op: WorkerOp) {}

  /** Plain Int32 parameters. */
  int(...v: number[]): this {
    this.ints.push(...v);
    return this;
  }

  /** An f64 parameter (in order). */
  float(v: number): this {
    this.f64.push(v);
    return this;
  }

  /** Elements [off, off + n) of a, read by the worker. */
  in(a: Float32Array, off: number, n: number): this {
    return this.operand(a, off, n, true, false);
  }

  /** Elements [off, off + n) of a, written (not read) by the worker. */
  out(a: Float32Array, off: number, n: number): this {
    return this.operand(a, off, n, false, true);
  }

  /** Elements [off, off + n) of a, read and written by the worker. */
  inout(a: Float32Array, off: number, n: number): this {
    return this.operand(a, off, n, true, true);
  }

  /** Integer data, always staged (small: positions, labels, masks). */
  intData(a: Int32Array | Uint8Array, off: number, n: number): this {
    const at = this.reserve(n);
    this.copyIn.push({ src: a, off, n, at, int: true });
    this.ints.push(-1, at);
    return this;
  }

  /** An absent optional operand. */
  none(): this {
    this.ints.push(-2, 0);
    return this;
  }

  /**
   * A strided matrix operand (GEMM): by reference when shared, else rows×cols of the view (row stride ld) staged
   * compactly; pushes (bi, off, ld). Returns the staged position or −1.
   */
  matrix(a: Float32Array, offset: number, ld: number, rows: number, cols: number, input: boolean, output: boolean): this {
    const sab = sharedOf(a);
    if (sab) {
      this.ints.push(this.bufIndex(sab), a.byteOffset / 4 + offset, ld);
      return this;
    }
    const at = this.reserve(rows * cols);
    const runs = ld === cols ? 1 : rows; // contiguous rows: one copy
    const len = ld === cols ? rows * cols : cols;
    for (let r = 0; r < runs; r++) {
      if (input) this.copyIn.push({ src: a, off: offset + r * ld, n: len, at: at + r * cols, int: false });
      if (output) this.copyOut.push({ dst: a, off: offset + r * ld, n: len, at: at + r * cols });
    }
    this.ints.push(-1, at, cols);
    return this;
  }

  /** Stage the copies and start the job on w. */
  start(w: PoolWorker): void {
    const t = w as WorkerThread;
    const { f32, i32 } = t.stage(this.stageFloats);
    stagedFloats += this.stageFloats;
    for (const c of this.copyIn) (c.int ? i32 : f32).set(c.src.subarray(c.off, c.off + c.n), c.at);
    t.start(this.op, this.ints, this.f64, this.bufs);
    this.worker = t;
  }

  /** After the pool waited for the job: copy staged outputs back. */
  finish(): void {
    if (!this.worker || this.copyOut.length === 0) return;
    const f32 = this.worker.stage(0).f32;
    for (const c of this.copyOut) c.dst.set(f32.subarray(c.at, c.at + c.n), c.off);
  }

  get startedOn(): PoolWorker | null {
    return this.worker;
  }

  private operand(a: Float32Array, off: number, n: number, input: boolean, output: boolean): this {
    const sab = sharedOf(a);
    if (sab) {
      this.ints.push(this.bufIndex(sab), a.byteOffset / 4 + off);
      return this;
    }
    const at = this.reserve(n);
    if (input) this.copyIn.push({ src: a, off, n, at, int: false });
    if (output) this.copyOut.push({ dst: a, off, n, at });
    this.ints.push(-1, at);
    return this;
  }

  private reserve(n: number): number {
    const at = this.stageFloats;
    this.stageFloats += n;
    if (this.stageFloats > STAGE_MAX_FLOATS) throw new Error(`a worker job needs more than ${STAGE_MAX_FLOATS} staged floats`);
    return at;
  }

  private bufIndex(sab: SharedArrayBuffer): number {
    let i = this.index.get(sab);
    if (i === undefined) {
      i = this.bufs.length;
      this.bufs.push(sab);
      this.index.set(sab, i);
    }
    return i;
  }
}

/** A worker as the kernels see it (opaque: jobs start on it). */
export type PoolWorker = object;

/** Source text run by each worker (CommonJS eval context). */
function workerSource(): string {
  return `'use strict';
const { workerData, parentPort, receiveMessageOnPort } = require('node:worker_threads');
// Identity shim for the name-keeping helper that some TypeScript transpilers insert into function bodies.
var __name = (f) => f;
const createGemmDriver = (${createGemmDriver.toString()});
const createAttentionKernels = (${createAttentionKernels.toString()});
const swigluForward = (${swigluForward.toString()});
const swigluBackward = (${swigluBackward.toString()});
const crossEntropyRows = (${crossEntropyRows.toString()});
const rmsnormForward = (${rmsnormForward.toString()});
const ropeApply = (${ropeApply.toString()});
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
  const port = d.port;
  // However the thread ends (process.exit, an uncaught error), tell a main thread blocked in wait() at once.
  process.on('exit', (code) => {
    Atomics.store(ctrl, ${DEAD}, code + 1);
    Atomics.notify(ctrl, ${DONE});
  });
  let f32 = new Float32Array(0);
  let i32 = new Int32Array(0);
  let shared = [];
  // Operand (bi, off) of n elements as a Float32Array view; bi −2: absent.
  const arr = (bi, off, n) => bi === -2 ? undefined : (bi < 0 ? f32 : shared[bi]).subarray(off, off + n);
  const ints = (off, n) => i32.subarray(off, off + n);
  const matrix = (bi, off, ld, trans) => ({ data: bi < 0 ? f32 : shared[bi], offset: off, ld, trans: trans === 1 });
  function attentionArgs(p, backward) {
    const [batch, tq, tk, stride, heads, kvHeads, D, kind, qOffset, ctxLen, blockSize, nBlocks] = p;
    const qn = batch * tq * heads * D, kn = batch * stride * kvHeads * D, mn = batch * nBlocks;
    const r = (i, n) => arr(p[12 + 2 * i], p[13 + 2 * i], n);
    const dims = { batch, tq, tk, stride, heads, kvHeads, D, scale: f64[0] };
    // Causal masks with per-entry offsets send them in the anchors slot (attention.ts runSplit).
    const qOffsets = kind === 0 && p[22] !== -2 ? ints(p[23], batch) : null;
    const mask = { kind, qOffset, qOffsets, ctxLen, blockSize, nBlocks, anchors: kind === 2 ? ints(p[23], mn) : null, keep: kind === 2 ? ints(p[25], mn) : null };
    const x = { q: r(0, qn), k: r(1, kn), v: r(2, kn), out: r(3, qn), lse: r(4, batch * heads * tq) };
    if (backward) { x.dout = r(7, qn); x.dq = r(8, qn); x.dk = r(9, kn); x.dv = r(10, kn); }
    return [dims, mask, x, batch * kvHeads];
  }
  parentPort.postMessage({ ready: true });
  let seen = 0;
  for (;;) {
    // A wake-up alone is no new job: the notify of job n can arrive late, after this thread saw SEQ = n without
    // waiting, ran job n and came back here (main thread preempted between its store and its notify); taking that
    // wake-up for a job ran job n again, with its buffers gone (the rare stall of a loaded machine). Wait until SEQ moves.
    while (Atomics.load(ctrl, ${SEQ}) === seen) Atomics.wait(ctrl, ${SEQ}, seen);
    seen = Atomics.load(ctrl, ${SEQ});
    try {
      if (f32.length * 4 !== d.stage.byteLength) {
        f32 = new Float32Array(d.stage, 0, d.stage.byteLength / 4);
        i32 = new Int32Array(d.stage, 0, d.stage.byteLength / 4);
      }
      shared = [];
      if (ctrl[${NBUFS}] > 0) {
        // Posted before the job started, tagged with its number; older copies (posted again) are dropped. When none is
        // there, ask the main thread to post it again (it looks at NEED whenever it waits) and look again shortly.
        let bufs = null;
        while (bufs === null) {
          const m = receiveMessageOnPort(port);
          if (m !== undefined) { if (m.message.seq === seen) bufs = m.message.bufs; continue; }
          Atomics.store(ctrl, ${NEED}, seen);
          Atomics.notify(ctrl, ${DONE});
          Atomics.wait(ctrl, ${NEED}, seen, 5);
        }
        shared = bufs.map((b) => new Float32Array(b));
      }
      const op = ctrl[${OP}];
      const p = Array.from(ctrl.subarray(${PARAMS}));
      if (op === ${WorkerOp.Gemm}) {
        const [M, K, N] = p;
        driver.gemm(M, K, N, matrix(p[3], p[4], p[5], p[6]), matrix(p[7], p[8], p[9], p[10]), matrix(p[11], p[12], p[13], 0), p[14], f64[0]);
      } else if (op === ${WorkerOp.AttentionForward}) {
        const [dims, mask, x, units] = attentionArgs(p, false);
        attention.forward(dims, mask, x, 0, units);
      } else if (op === ${WorkerOp.AttentionBackward}) {
        const [dims, mask, x, units] = attentionArgs(p, true);
        attention.backward(dims, mask, x, 0, units);
      } else if (op === ${WorkerOp.SwigluForward}) {
        const n = p[0];
        swigluForward(arr(p[1], p[2], n), arr(p[3], p[4], n), arr(p[5], p[6], n));
      } else if (op === ${WorkerOp.SwigluBackward}) {
        const n = p[0];
        swigluBackward(arr(p[1], p[2], n), arr(p[3], p[4], n), arr(p[5], p[6], n), { dgate: arr(p[7], p[8], n), dup: arr(p[9], p[10], n) });
      } else if (op === ${WorkerOp.CrossEntropy}) {
        const [rows, V] = p;
        const r = crossEntropyRows(arr(p[2], p[3], rows * V), rows, V, ints(p[5], rows), arr(p[6], p[7], rows), arr(p[12], p[13], rows * V));
        arr(p[8], p[9], rows).set(r.loss);
        arr(p[10], p[11], rows).set(r.lse);
      } else if (op === ${WorkerOp.RmsnormForward}) {
        const [rows, C] = p;
        rmsnormForward(arr(p[2], p[3], rows * C), arr(p[4], p[5], C), rows, C, f64[0], { y: arr(p[6], p[7], rows * C), rstd: arr(p[8], p[9], rows) });
      } else if (op === ${WorkerOp.Rope}) {
        const [rows, width, headDim, inverse] = p;
        ropeApply(arr(p[8], p[9], rows * width), rows, width, ints(p[5], rows), arr(p[6], p[7], headDim / 2), headDim, inverse === 1, arr(p[10], p[11], rows * width));
      } else if (op === ${WorkerOp.Add}) {
        const [n, C] = p;
        const a = arr(p[2], p[3], n), b = arr(p[4], p[5], C > 0 ? C : n), out = arr(p[6], p[7], n);
        if (C > 0) { for (let o = 0; o < n; o += C) for (let c = 0; c < C; c++) out[o + c] = a[o + c] + b[c]; }
        else for (let i = 0; i < n; i++) out[i] = a[i] + b[i];
      } else if (op === ${WorkerOp.Sleep}) {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, p[0]);
      } else if (op === ${WorkerOp.Exit}) {
        if (p[1] === 1) process.removeAllListeners('exit');
        process.exit(p[0]);
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
    shared = [];
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
  const { port1, port2 } = new MessageChannel();
  const worker = new Worker(workerSource(), {
    eval: true, workerData: { ...imports, ctrl: ctrlBuffer, stage: stageBuffer, port: port2 }, transferList: [port2],
  });
  return new Promise<WorkerThread>((resolve, reject) => {
    const fail = (why: string) => {
      clearTimeout(timer);
      port1.close();
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
      const t = new WorkerThread(worker, ctrlBuffer, stageBuffer, port1);
      worker.performance.eventLoopUtilization(); // caches the loop start, so threadStopped() can read the idle time
      // Seen when the main thread is not blocked (e.g. a terminated worker): the next job fails at once.
      worker.on('error', (e) => t.markDead(`error: ${e.message.split('\n')[0]}`));
      worker.on('exit', (code) => t.markDead(`it exited with code ${code}`));
      worker.unref(); // a parked worker must not keep the process alive
      port1.unref();
      resolve(t);
    });
  });
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

  /**
   * Run jobs on helpers while main() runs here, wait for all, copy staged outputs back. A failing worker is
   * reported after every job has finished.
   */
  run(jobs: readonly Job[], main: () => void): void {
    try {
      main();
    } finally {
      let failure: string | null = null;
      for (const j of jobs) {
        const w = j.startedOn as WorkerThread | null;
        const err = w ? w.wait() : null;
        if (err !== null && failure === null) failure = err;
      }
      if (failure !== null) throw new Error(`cpu worker thread failed: ${failure}`);
    }
    for (const j of jobs) j.finish();
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
    // Row boundaries (multiples of 8): the main thread also prepares and finishes the jobs, so it takes a smaller
    // share.
    const bounds = [0];
    const total = MAIN_SHARE + (parts - 1);
    for (let p = 1; p < parts; p++) bounds.push(Math.min(M, Math.round((M * (MAIN_SHARE + p - 1)) / total / 8) * 8));
    bounds.push(M);
    const jobs: Job[] = [];
    const helpers = this.helpers(parts);
    for (let p = 1; p < parts; p++) {
      const m0 = bounds[p];
      const rows = bounds[p + 1] - m0;
      if (rows <= 0) continue;
      // A slice: rows of A, or (transposed storage) the same columns of every stored row.
      const job = new Job(WorkerOp.Gemm).int(rows, K, N);
      if (!a.trans) job.matrix(a.data, a.offset + m0 * a.ld, a.ld, rows, K, true, false).int(0);
      else job.matrix(a.data, a.offset + m0, a.ld, K, rows, true, false).int(1);
      if (!b.trans) job.matrix(b.data, b.offset, b.ld, K, N, true, false).int(0);
      else job.matrix(b.data, b.offset, b.ld, N, K, true, false).int(1);
      job.matrix(c.data, c.offset + m0 * c.ld, c.ld, rows, N, beta === 1, true).int(beta).float(alpha);
      job.start(helpers[p - 1]);
      jobs.push(job);
    }
    this.run(jobs, () => this.mainGemm(bounds[1], K, N, a, b, c, beta, alpha));
  }
}
