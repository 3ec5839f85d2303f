// Dense f32 matrix multiplication for the cpu backend: XNNPACK through tfjs-backend-wasm (wasm-gemm.ts), on the main
// thread plus worker threads for large products (thread-pool.ts, which the heavy JS kernels use too).
// PARO_CPU_THREADS sets the thread count (default: the available cores, at most 4); 1, or any failure to start a
// worker (e.g. a bundle without node_modules), leaves the single-thread path. The thread count never changes results.
// PARO_CPU_SHARED=0 keeps tensor storage out of SharedArrayBuffers (workers then get copies; for comparisons).
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { createGemmDriver, type MatView, type WasmGemmModule } from './wasm-gemm.js';
import { ThreadPool, type WorkerImports } from './thread-pool.js';
import { setSharedStorage } from './buffers.js';

export type { MatView } from './wasm-gemm.js';

let ready: Promise<void> | null = null;
let pool: ThreadPool | null = null;
let threadProblem: string | undefined;

/** Directory of the tfjs-backend-wasm .wasm files: $PARO_TFJS_WASM_DIR (bundles) or the installed package. */
function wasmDir(): string {
  const env = process.env.PARO_TFJS_WASM_DIR;
  if (env) return env.endsWith('/') ? env : env + '/';
  const require = createRequire(import.meta.url);
  return path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist') + '/';
}

/** Absolute paths of the tfjs packages for the workers, or null where they cannot be resolved (bundles). */
function workerImports(dir: string): WorkerImports | null {
  try {
    const require = createRequire(import.meta.url);
    return { corePath: require.resolve('@tensorflow/tfjs-core'), wasmPackagePath: require.resolve('@tensorflow/tfjs-backend-wasm'), wasmDir: dir };
  } catch {
    return null;
  }
}

/** Threads requested by PARO_CPU_THREADS, else the available cores up to 4. */
export function requestedThreads(): number {
  const env = process.env.PARO_CPU_THREADS;
  if (env !== undefined && env.trim() !== '') {
    const n = Number(env);
    if (Number.isInteger(n) && n >= 1) return n;
  }
  return Math.max(1, Math.min(4, os.availableParallelism()));
}

/** Initialise the wasm backend and the worker threads once (async: modules must be compiled). */
export function initMatmul(): Promise<void> {
  if (!ready) {
    ready = (async () => {
      const dir = wasmDir();
      setWasmPaths(dir);
      tf.env().set('IS_NODE', true);
      const ok = await tf.setBackend('wasm');
      if (!ok) throw new Error('tfjs-backend-wasm failed to initialise');
      const wasm = (tf.backend() as unknown as { wasm: WasmGemmModule }).wasm;
      const want = requestedThreads();
      const imports = want > 1 ? workerImports(dir) : null;
      const r = await ThreadPool.create(createGemmDriver(wasm, 0x20000000), want, imports);
      pool = r.pool;
      threadProblem = r.problem;
      setSharedStorage(pool.available > 1 && process.env.PARO_CPU_SHARED !== '0');
    })();
  }
  return ready;
}

/** The cpu thread pool (initMatmul() must have resolved). */
export function threadPool(): ThreadPool {
  if (!pool) throw new Error('cpu kernels called before initMatmul() resolved');
  return pool;
}

/** Threads the matmul uses now, those it could use, and why fewer started than requested (if so). */
export function matmulThreads(): { active: number; available: number; requested: number; problem?: string } {
  const p = threadPool();
  return { active: p.threads, available: p.available, requested: requestedThreads(), problem: threadProblem };
}

/** Use at most n threads (benchmarks compare 1 with all); returns the number now in use. */
export function setMatmulThreads(n: number): number {
  return threadPool().setThreads(n);
}

/**
 * C = alpha·A·B (beta 0) or C += alpha·A·B (beta 1) on strided views (A logical [M, K], B [K, N], C [M, N]).
 * C must not overlap A or B. initMatmul() must have resolved.
 */
export function gemm(M: number, K: number, N: number, a: MatView, b: MatView, c: MatView, beta: 0 | 1 = 0, alpha = 1): void {
  threadPool().gemm(M, K, N, a, b, c, beta, alpha);
}

/** A dense row-major matrix as a view (trans: the array holds the transpose). */
export function view(data: Float32Array, cols: number, trans = false, offset = 0): MatView {
  return { data, offset, ld: cols, trans };
}

/**
 * C [M, N] = op(A)·op(B). a is [M, K] (or [K, M] with transA), b is [K, N] (or [N, K] with transB).
 * initMatmul() must have resolved.
 */
export function matmulF32(
  a: Float32Array, b: Float32Array, M: number, K: number, N: number, transA = false, transB = false,
): Float32Array {
  const c = new Float32Array(M * N);
  gemm(M, K, N, view(a, transA ? M : K, transA), view(b, transB ? K : N, transB), view(c, N));
  return c;
}
