// The cpu backend's worker threads (thread-pool.ts): products, attention, SwiGLU, cross-entropy, RMSNorm, RoPE and
// add split over threads give the single-thread result bit for bit, with operands copied through staging (ordinary
// arrays) or used in place (SharedArrayBuffer storage); results repeat exactly and agree with float64 references;
// the pool falls back to the main thread when workers cannot start.
import { beforeAll, describe, expect, it } from 'vitest';
import { randn as randnFrom, relErr, sameBits } from './numeric.js';
import * as tf from '@tensorflow/tfjs-core';
import { Rng } from '../src/numerics/rng.js';
import { gemm, initMatmul, matmulF32, matmulThreads, requestedThreads, setMatmulThreads, view } from '../src/engine/cpu/matmul.js';
import { attentionBackward, attentionForward } from '../src/engine/cpu/attention.js';
import {
  addParallel, crossEntropyParallel, rmsnormForwardParallel, ropeParallel, swigluBackwardParallel, swigluForwardParallel,
} from '../src/engine/cpu/parallel-kernels.js';
import { rmsnormForward } from '../src/engine/cpu/norm.js';
import { ropeApply } from '../src/engine/cpu/rope.js';
import { crossEntropyRows } from '../src/engine/cpu/crossentropy.js';
import { swigluBackward, swigluForward } from '../src/engine/cpu/activations.js';
import { Job, ThreadPool, WorkerOp, stagedFloatCount, workerJobCount } from '../src/engine/cpu/thread-pool.js';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { Worker } from 'node:worker_threads';
import { createGemmDriver, type WasmGemmModule } from '../src/engine/cpu/wasm-gemm.js';
import type { AttentionMask, AttentionShape } from '../src/engine/backend.js';

// Two threads even on a one-core machine, so the split paths run everywhere.
process.env.PARO_CPU_THREADS = '2';

const rng = new Rng(Date.now() & 0xffff);
const randn = (n: number): Float32Array => randnFrom(rng, n);
/** A copy in a SharedArrayBuffer: workers then use it in place instead of through the staging copies. */
function shared(a: Float32Array): Float32Array {
  const s = new Float32Array(new SharedArrayBuffer(a.length * 4));
  s.set(a);
  return s;
}
/** Inputs as ordinary arrays (staged for the workers) and as shared ones (used in place). */
const STORAGE: [string, (a: Float32Array) => Float32Array][] = [['staged', (a) => a], ['shared', shared]];
/** Run fn on one thread and on two (checking that the second run handed work to the worker); returns both results. */
function oneAndTwo<T>(fn: () => T): [T, T] {
  setMatmulThreads(1);
  const jobs0 = workerJobCount();
  const one = fn();
  expect(workerJobCount()).toBe(jobs0);
  setMatmulThreads(2);
  const two = fn();
  expect(workerJobCount()).toBeGreaterThan(jobs0);
  return [one, two];
}

beforeAll(async () => {
  await initMatmul();
  const t = matmulThreads();
  if (t.available < 2) throw new Error(`worker thread did not start: ${t.problem}`);
});

describe('threaded matmul', () => {
  it.each([
    [300, 200, 500, false, false], [300, 200, 500, true, false], [300, 200, 500, false, true], [300, 200, 500, true, true],
    [1037, 129, 77, false, true], [64, 2048, 96, true, false],
  ])('M=%i K=%i N=%i transA=%s transB=%s: two threads = one thread bit for bit, = float64 within 1e-5', (M, K, N, tA, tB) => {
    const a = randn(M * K);
    const b = randn(K * N);
    const [c1, c2] = oneAndTwo(() => matmulF32(a, b, M, K, N, tA, tB));
    expect(sameBits(c1, c2)).toBe(true);
    expect(sameBits(c2, matmulF32(a, b, M, K, N, tA, tB))).toBe(true); // repeatable
    // Shared operands and output: used in place by the worker, nothing staged.
    const [as, bs] = [shared(a), shared(b)];
    const staged0 = stagedFloatCount();
    const [, c3] = oneAndTwo(() => {
      const c = shared(new Float32Array(M * N));
      gemm(M, K, N, view(as, tA ? M : K, tA), view(bs, tB ? K : N, tB), view(c, N));
      return c;
    });
    expect(sameBits(c3, c1)).toBe(true);
    expect(stagedFloatCount()).toBe(staged0);
    const ref = new Float64Array(M * N);
    for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += (tA ? a[k * M + i] : a[i * K + k]) * (tB ? b[j * K + k] : b[k * N + j]);
      ref[i * N + j] = s;
    }
    expect(relErr(c2, ref)).toBeLessThan(1e-5);
  });

  it.each([[1, 256, 4096, false], [5, 200, 1000, true], [24, 256, 768, false], [32, 130, 600, true]])(
    'M=%i K=%i N=%i transA=%s against a stored [N, K] weight (computed as (B·Aᵀ)ᵀ) matches float64', (M, K, N, tA) => {
      const a = randn(M * K);
      const b = randn(N * K);
      const c = matmulF32(a, b, M, K, N, tA, true);
      let err = 0;
      let den = 0;
      for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) {
        let r = 0;
        for (let k = 0; k < K; k++) r += (tA ? a[k * M + i] : a[i * K + k]) * b[j * K + k];
        err += (c[i * N + j] - r) ** 2;
        den += r * r;
      }
      expect(Math.sqrt(err / den)).toBeLessThan(1e-5);
      expect(sameBits(c, matmulF32(a, b, M, K, N, tA, true))).toBe(true);
    });

  it.each(STORAGE)('accumulates alpha·A·B into strided views the same way on one and two threads (%s)', (_name, store) => {
    const [M, K, N] = [256, 160, 96];
    const ld = N + 7;
    const a = store(randn(M * K));
    const b = store(randn(K * N));
    const base = randn(M * ld);
    const [c1, c2] = oneAndTwo(() => {
      const c = store(base.slice());
      gemm(M, K, N, view(a, K), view(b, N), { data: c, offset: 3, ld, trans: false }, 1, -0.5);
      return c;
    });
    expect(sameBits(c1, c2)).toBe(true);
    for (let i = 0; i < M; i += 37) {
      for (let j = 0; j < N; j += 11) {
        let s = 0;
        for (let k = 0; k < K; k++) s += a[i * K + k] * b[k * N + j];
        expect(c2[3 + i * ld + j]).toBeCloseTo(base[3 + i * ld + j] - 0.5 * s, 3);
      }
    }
    // Elements outside the view are untouched.
    expect(c2[0]).toBe(base[0]);
    expect(c2[3 + N]).toBe(base[3 + N]);
  });
});

describe('threaded attention and SwiGLU', () => {
  const D = 64;
  const cases: { name: string; shape: AttentionShape; mask: AttentionMask }[] = [
    { name: 'causal GQA', shape: { batch: 3, tq: 300, tk: 300, heads: 4, kvHeads: 2, headDim: D }, mask: { kind: 'causal', qOffset: 0 } },
    { name: 'causal with offset and kvStride', shape: { batch: 2, tq: 140, tk: 400, kvStride: 420, heads: 2, kvHeads: 1, headDim: D }, mask: { kind: 'causal', qOffset: 260 } },
    // 4 query rows per head: the tile products take the plain-loop path on every thread alike.
    { name: 'decoding-sized tiles', shape: { batch: 16, tq: 4, tk: 700, kvStride: 720, heads: 4, kvHeads: 4, headDim: D }, mask: { kind: 'causal', qOffset: 696 } },
  ];
  {
    const ctxLen = 200;
    const B = 16;
    const nBlocks = 10;
    const batch = 3;
    const anchors = Int32Array.from({ length: batch * nBlocks }, (_, i) => (i * 53) % ctxLen);
    const keep = Uint8Array.from({ length: batch * nBlocks }, (_, i) => (i % 7 === 3 ? 0 : 1));
    cases.push({
      name: 'dflash block mask', shape: { batch, tq: nBlocks * B, tk: ctxLen + nBlocks * B, heads: 4, kvHeads: 2, headDim: D },
      mask: { kind: 'anchoredBlocks', ctxLen, blockSize: B, nBlocks, anchors, keep },
    });
  }
  for (const c of cases) for (const [storage, store] of STORAGE) {
    it(`${c.name} (${storage}): split over batch entries = one thread bit for bit`, () => {
      const s = c.shape;
      const stride = s.kvStride ?? s.tk;
      const q = store(randn(s.batch * s.tq * s.heads * D));
      const k = store(randn(s.batch * stride * s.kvHeads * D));
      const v = store(randn(s.batch * stride * s.kvHeads * D));
      const dout = store(randn(q.length));
      const outputs = () => ({ out: store(new Float32Array(q.length)), lse: store(new Float32Array(s.batch * s.heads * s.tq)) });
      const [f1, f2] = oneAndTwo(() => attentionForward(q, k, v, s, c.mask, outputs()));
      expect(sameBits(f1.out, f2.out)).toBe(true);
      expect(sameBits(f1.lse, f2.lse)).toBe(true);
      const grads = () => ({ dq: store(new Float32Array(q.length)), dk: store(new Float32Array(k.length)), dv: store(new Float32Array(v.length)) });
      const [b1, b2] = oneAndTwo(() => attentionBackward(dout, q, k, v, f1.out, f1.lse, s, c.mask, grads()));
      expect(sameBits(b1.dq, b2.dq)).toBe(true);
      expect(sameBits(b1.dk, b2.dk)).toBe(true);
      expect(sameBits(b1.dv, b2.dv)).toBe(true);
      // One output row against a float64 recomputation (visibility from the mask's definition).
      const b = s.batch - 1;
      const i = s.tq - 1;
      const h = s.heads - 1;
      const g = Math.floor(h / (s.heads / s.kvHeads));
      const visible = (j: number): boolean => {
        const m = c.mask;
        if (m.kind === 'causal') return j <= m.qOffset + i;
        if (m.kind !== 'anchoredBlocks') return true;
        const n = Math.floor(i / m.blockSize);
        if (!m.keep[b * m.nBlocks + n]) return false;
        return j < m.ctxLen ? j < m.anchors[b * m.nBlocks + n] : Math.floor((j - m.ctxLen) / m.blockSize) === n;
      };
      const scores: number[] = [];
      const js: number[] = [];
      for (let j = 0; j < s.tk; j++) {
        if (!visible(j)) continue;
        let sc = 0;
        for (let d = 0; d < D; d++) sc += q[(b * s.tq + i) * s.heads * D + h * D + d] * k[(b * stride + j) * s.kvHeads * D + g * D + d];
        scores.push(sc / Math.sqrt(D));
        js.push(j);
      }
      const mx = Math.max(...scores);
      const w = scores.map((x) => Math.exp(x - mx));
      const sum = w.reduce((x, y) => x + y, 0);
      const ref = new Float64Array(D);
      js.forEach((j, t) => {
        for (let d = 0; d < D; d++) ref[d] += (w[t] / sum) * v[(b * stride + j) * s.kvHeads * D + g * D + d];
      });
      const o = (b * s.tq + i) * s.heads * D + h * D;
      expect(relErr(f2.out.subarray(o, o + D), ref)).toBeLessThan(1e-5);
    });
  }

  it.each(STORAGE)('SwiGLU forward and backward split over threads = one thread = the plain kernels (%s)', (_name, store) => {
    const n = (1 << 19) + 123;
    const gate = store(randn(n));
    const up = store(randn(n));
    const dh = store(randn(n));
    const [h1, h2] = oneAndTwo(() => swigluForwardParallel(gate, up, store(new Float32Array(n))));
    expect(sameBits(h1, h2)).toBe(true);
    expect(sameBits(h2, swigluForward(gate, up))).toBe(true);
    const [g1, g2] = oneAndTwo(() => swigluBackwardParallel(dh, gate, up, store(new Float32Array(n)), store(new Float32Array(n))));
    const ref = swigluBackward(dh, gate, up);
    expect(sameBits(g1.dgate, g2.dgate) && sameBits(g1.dup, g2.dup)).toBe(true);
    expect(sameBits(g2.dgate, ref.dgate) && sameBits(g2.dup, ref.dup)).toBe(true);
  });
});

describe('threaded row kernels', () => {
  it.each(STORAGE)('RMSNorm forward, RoPE (both directions) and add (plain and broadcast) over threads = the plain kernels (%s)', (_name, store) => {
    const [rows, C, heads, D] = [1037, 256, 4, 64];
    const x = store(randn(rows * C));
    const w = store(randn(C));
    const [n1, n2] = oneAndTwo(() => rmsnormForwardParallel(x, w, rows, C, 1e-6, store(new Float32Array(rows * C)), new Float32Array(rows)));
    const nref = rmsnormForward(x, w, rows, C, 1e-6);
    expect(sameBits(n1.y, n2.y) && sameBits(n2.y, nref.y) && sameBits(n2.rstd, nref.rstd)).toBe(true);
    const positions = Int32Array.from({ length: rows }, (_, r) => (r * 7) % 513);
    const invFreq = Float32Array.from({ length: D / 2 }, (_, m) => 10000 ** (-(2 * m) / D));
    for (const inverse of [false, true]) {
      const [r1, r2] = oneAndTwo(() => ropeParallel(x, rows, heads * D, positions, invFreq, D, inverse, store(new Float32Array(rows * C))));
      expect(sameBits(r1, r2) && sameBits(r2, ropeApply(x, rows, heads * D, positions, invFreq, D, inverse))).toBe(true);
    }
    const y = store(randn(rows * C));
    const [a1, a2] = oneAndTwo(() => addParallel(x, y, store(new Float32Array(rows * C))));
    expect(sameBits(a1, a2) && a2.every((v, i) => v === Math.fround(x[i] + y[i]))).toBe(true);
    const [b1, b2] = oneAndTwo(() => addParallel(x, w, store(new Float32Array(rows * C))));
    expect(sameBits(b1, b2) && b2.every((v, i) => v === Math.fround(x[i] + w[i % C]))).toBe(true);
  });

  it('cross-entropy row ranges over threads = one thread = the plain kernel (loss, lse, weighted gradient)', () => {
    const [rows, V] = [301, 4099];
    const logits = shared(randn(rows * V));
    const labels = Int32Array.from({ length: rows }, (_, r) => (r % 17 === 5 ? -1 : (r * 131) % V));
    const weights = Float32Array.from({ length: rows }, (_, r) => (r % 11 === 0 ? 0 : 1 / (1 + (r % 3))));
    for (const w of [undefined, weights]) {
      const [a, b] = oneAndTwo(() => crossEntropyParallel(logits, rows, V, labels, w, w ? new Float32Array(rows * V).fill(7) : undefined));
      const ref = crossEntropyRows(logits, rows, V, labels, w);
      for (const r of [a, b]) {
        expect(sameBits(r.loss, ref.loss) && sameBits(r.lse, ref.lse)).toBe(true);
        if (w) expect(sameBits(r.dlogits!, ref.dlogits!)).toBe(true); // rows without a gradient are zeroed, not left at 7
      }
    }
  });
});

describe('fallback to one thread', () => {
  it('PARO_CPU_THREADS sets the requested thread count', () => {
    const saved = process.env.PARO_CPU_THREADS;
    try {
      process.env.PARO_CPU_THREADS = '1';
      expect(requestedThreads()).toBe(1);
      process.env.PARO_CPU_THREADS = '3';
      expect(requestedThreads()).toBe(3);
      process.env.PARO_CPU_THREADS = 'x';
      expect(requestedThreads()).toBeGreaterThanOrEqual(1);
    } finally {
      process.env.PARO_CPU_THREADS = saved;
    }
  });

  it('a pool whose workers cannot load tfjs (e.g. a bundle without node_modules) runs on the main thread', async () => {
    const wasm = (tf.backend() as unknown as { wasm: WasmGemmModule }).wasm;
    const driver = createGemmDriver(wasm, 0x30000000);
    const none = await ThreadPool.create(driver, 2, null);
    expect(none.pool.available).toBe(1);
    expect(none.problem).toMatch(/not resolvable/);
    const broken = await ThreadPool.create(driver, 2, { corePath: '/nonexistent/tfjs-core.js', wasmPackagePath: '/nonexistent/wasm.js', wasmDir: '/nonexistent/' });
    expect(broken.pool.available).toBe(1);
    expect(broken.problem).toMatch(/failed/);
    // The fallback pool still multiplies, with the same bits as the shared pool on one thread.
    const [M, K, N] = [200, 300, 100];
    const a = randn(M * K);
    const b = randn(K * N);
    const c = new Float32Array(M * N);
    broken.pool.gemm(M, K, N, view(a, K), view(b, N), view(c, N), 0, 1);
    setMatmulThreads(1);
    expect(sameBits(c, matmulF32(a, b, M, K, N))).toBe(true);
    setMatmulThreads(2);
  });
});

// Issue 8, defect 10: a worker that dies mid-task must fail the computation at once, not after a 10-minute wait.
describe('a dying worker', () => {
  function imports() {
    const require = createRequire(import.meta.url);
    const wasmDir = path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist') + '/';
    return { corePath: require.resolve('@tensorflow/tfjs-core'), wasmPackagePath: require.resolve('@tensorflow/tfjs-backend-wasm'), wasmDir };
  }
  const driver = () => createGemmDriver((tf.backend() as unknown as { wasm: WasmGemmModule }).wasm, 0x38000000);
  const [M, K, N] = [256, 256, 256];

  it('a worker that exits during a job fails the run at once, and the pool refuses further jobs', async () => {
    const { pool } = await ThreadPool.create(driver(), 2, imports());
    expect(pool.available).toBe(2);
    const t0 = Date.now();
    const job = new Job(WorkerOp.Exit).int(7, 0);
    job.start(pool.helpers(2)[0]);
    expect(() => pool.run([job], () => {})).toThrow(/cpu worker thread died \(.*code 7\)/);
    expect(Date.now() - t0).toBeLessThan(5000);
    const c = new Float32Array(M * N);
    expect(() => pool.gemm(M, K, N, view(randn(M * K), K), view(randn(K * N), N), view(c, N), 0, 1)).toThrow(/died/);
  });

  it('a worker thread stopped without running its exit hook (as when its heap runs out) fails the run at once too', async () => {
    const { pool } = await ThreadPool.create(driver(), 2, imports());
    const t0 = Date.now();
    const job = new Job(WorkerOp.Exit).int(5, 1);
    job.start(pool.helpers(2)[0]);
    expect(() => pool.run([job], () => {})).toThrow(/cpu worker thread died \(it stopped without reporting/);
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  // A loaded machine makes a worker's part slow, never dead: no time limit may fail real work.
  it('a slow worker (3 s inside its part while the main part is instant) is waited for, and the pool keeps working', async () => {
    const { pool } = await ThreadPool.create(driver(), 2, imports());
    const t0 = Date.now();
    const job = new Job(WorkerOp.Sleep).int(3000);
    job.start(pool.helpers(2)[0]);
    pool.run([job], () => {});
    expect(Date.now() - t0).toBeGreaterThanOrEqual(2900);
    const [a, b] = [randn(M * K), randn(K * N)];
    const c = new Float32Array(M * N);
    pool.gemm(M, K, N, view(a, K), view(b, N), view(c, N), 0, 1);
    setMatmulThreads(1);
    expect(sameBits(c, matmulF32(a, b, M, K, N))).toBe(true);
    setMatmulThreads(2);
  });

  it('a lost or repeated buffer message neither hangs a job nor feeds it another job\'s operands', async () => {
    const { pool } = await ThreadPool.create(driver(), 2, imports());
    const port = (pool.helpers(2)[0] as unknown as { port: MessagePort }).port;
    const post = port.postMessage.bind(port);
    const [M2, K2, N2] = [256, 128, 192];
    const run = (): Float32Array => {
      const [a, b] = [shared(randn(M2 * K2)), shared(randn(K2 * N2))];
      const c = shared(new Float32Array(M2 * N2));
      pool.gemm(M2, K2, N2, view(a, K2), view(b, N2), view(c, N2), 0, 1);
      setMatmulThreads(1);
      const ref = matmulF32(a, b, M2, K2, N2);
      setMatmulThreads(2);
      expect(sameBits(c, ref)).toBe(true);
      return c;
    };
    let posts = 0;
    // Lost: the first posting of a job's buffers never arrives; the worker asks for them again.
    port.postMessage = (m: unknown) => { if (posts++ > 0) post(m); };
    run();
    expect(posts).toBe(2);
    // Repeated: every posting arrives twice; the extra copy must not serve the next job.
    port.postMessage = (m: unknown) => { post(m); post(m); };
    run();
    run();
    port.postMessage = post;
  });

  it('a terminated worker is seen before the next job starts', async () => {
    const { pool } = await ThreadPool.create(driver(), 2, imports());
    const w = (pool.helpers(2)[0] as { worker: Worker }).worker;
    await w.terminate();
    await new Promise((r) => setTimeout(r, 50)); // the 'exit' event reaches the pool
    const t0 = Date.now();
    const c = new Float32Array(M * N);
    expect(() => pool.gemm(M, K, N, view(randn(M * K), K), view(randn(K * N), N), view(c, N), 0, 1)).toThrow(/cpu worker thread died \(it exited/);
    expect(Date.now() - t0).toBeLessThan(5000);
  });
});
