// Dense f32 matrix multiplication for the cpu backend, on tfjs-backend-wasm (XNNPACK, SIMD). Its fast path is the
// plain rank-2, non-transposed product (platform-notes.md: ~30 GFLOP/s; transposed or batched calls fall to ~0.7),
// so transposes are done here explicitly before the call.
import { createRequire } from 'node:module';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';

let ready: Promise<void> | null = null;

/** Directory of the tfjs-backend-wasm .wasm files: $PARO_TFJS_WASM_DIR (bundles) or the installed package. */
function wasmDir(): string {
  const env = process.env.PARO_TFJS_WASM_DIR;
  if (env) return env.endsWith('/') ? env : env + '/';
  const require = createRequire(import.meta.url);
  return path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist') + '/';
}

/** Initialise the wasm backend once (async: the module must be compiled). */
export function initMatmul(): Promise<void> {
  if (!ready) {
    ready = (async () => {
      setWasmPaths(wasmDir());
      tf.env().set('IS_NODE', true);
      const ok = await tf.setBackend('wasm');
      if (!ok) throw new Error('tfjs-backend-wasm failed to initialise');
    })();
  }
  return ready;
}

/** out[c, r] = a[r, c] for a [rows, cols]; cache-blocked. */
export function transpose(a: Float32Array, rows: number, cols: number, out?: Float32Array): Float32Array {
  const t = out ?? new Float32Array(rows * cols);
  const B = 32;
  for (let r0 = 0; r0 < rows; r0 += B) {
    const r1 = Math.min(r0 + B, rows);
    for (let c0 = 0; c0 < cols; c0 += B) {
      const c1 = Math.min(c0 + B, cols);
      for (let r = r0; r < r1; r++) {
        const base = r * cols;
        for (let c = c0; c < c1; c++) t[c * rows + r] = a[base + c];
      }
    }
  }
  return t;
}

// Below this many multiply-adds the tfjs call overhead dominates; a JS loop is faster.
const SMALL_MACS = 32 * 32 * 32;
// Up to this many rows, op(A)·Bᵀ is computed as (B·Aᵀ)ᵀ (see matmulF32).
const SWAP_MAX_ROWS = 32;

function matmulSmall(a: Float32Array, b: Float32Array, M: number, K: number, N: number): Float32Array {
  const c = new Float32Array(M * N);
  for (let i = 0; i < M; i++) {
    const ci = i * N;
    for (let k = 0; k < K; k++) {
      const av = a[i * K + k];
      if (av === 0) continue;
      const bk = k * N;
      for (let j = 0; j < N; j++) c[ci + j] += av * b[bk + j];
    }
  }
  return c;
}

/**
 * C [M, N] = op(A)·op(B). a is [M, K] (or [K, M] with transA), b is [K, N] (or [N, K] with transB).
 * initMatmul() must have resolved.
 */
export function matmulF32(
  a: Float32Array, b: Float32Array, M: number, K: number, N: number, transA = false, transB = false,
): Float32Array {
  if (M === 0 || N === 0) return new Float32Array(M * N);
  if (K === 0) return new Float32Array(M * N);
  // Few rows against a linear weight (decoding): Cᵀ = B·Aᵀ needs no transpose of the large B and keeps the wasm
  // GEMM on its fast many-rows path (20× faster at M = 1 against a [4096, 256] weight).
  if (transB && !transA && M <= SWAP_MAX_ROWS && N >= 4 * M && M * K * N > SMALL_MACS) {
    const At = M === 1 ? a.subarray(0, K) : transpose(a, M, K);
    const Ct = matmulF32(b, At, N, K, M); // [N, M]
    return M === 1 ? Ct : transpose(Ct, N, M);
  }
  const A = transA ? transpose(a, K, M) : a;
  const Bm = transB ? transpose(b, N, K) : b;
  if (M * K * N <= SMALL_MACS) return matmulSmall(A, Bm, M, K, N);
  if (!ready) throw new Error('matmulF32 called before initMatmul()');
  const ta = tf.tensor2d(A.length === M * K ? A : A.subarray(0, M * K), [M, K], 'float32');
  const tb = tf.tensor2d(Bm.length === K * N ? Bm : Bm.subarray(0, K * N), [K, N], 'float32');
  const tc = tf.matMul(ta, tb);
  const out = tc.dataSync() as Float32Array;
  ta.dispose();
  tb.dispose();
  tc.dispose();
  // dataSync may return a view into a buffer tfjs reuses; own a copy only if it is not a fresh array.
  return out.length === M * N && out.byteOffset === 0 ? out : out.slice(0, M * N);
}
