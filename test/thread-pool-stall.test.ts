// The rare stall of the cpu thread pool on a loaded machine (2-rank quantize, 2–3 compute threads per process):
// the main thread stores a job's number, then notifies; when it is preempted between the two, the worker sees the
// number without waiting, runs the job and waits for the next one before the notify arrives. That late notify must
// not start the finished job again: the worker would wait for buffers already taken, drop the next job's buffers
// as stale, and the main thread would wait for it for good (caught in two hung runs: worker control words SEQ 7,
// DONE 6, NEED 6, the worker asking again for job 6's buffers). The late notify is forced here directly.
import { createRequire } from 'node:module';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initMatmul, matmulF32, setMatmulThreads, view } from '../src/engine/cpu/matmul.js';
import { ThreadPool } from '../src/engine/cpu/thread-pool.js';
import { createGemmDriver, type WasmGemmModule } from '../src/engine/cpu/wasm-gemm.js';
import { Rng } from '../src/numerics/rng.js';
import { randn as randnFrom, sameBits } from './numeric.js';

process.env.PARO_CPU_THREADS = '2';

const rng = new Rng(7);
function shared(a: Float32Array): Float32Array {
  const s = new Float32Array(new SharedArrayBuffer(a.length * 4));
  s.set(a);
  return s;
}

function imports() {
  const require = createRequire(import.meta.url);
  const wasmDir = path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist') + '/';
  return { corePath: require.resolve('@tensorflow/tfjs-core'), wasmPackagePath: require.resolve('@tensorflow/tfjs-backend-wasm'), wasmDir };
}

/** Control words of a worker (thread-pool.ts: SEQ job number, DONE last finished, NEED job whose buffers it asks for). */
const SEQ = 0;
const DONE = 1;
const NEED = 6;

beforeAll(async () => {
  await initMatmul();
});

describe('a late wake-up of a cpu worker', () => {
  it('does not run the finished job again; the next job runs and gives the one-thread result', async () => {
    const driver = createGemmDriver((tf.backend() as unknown as { wasm: WasmGemmModule }).wasm, 0x3c000000);
    const { pool } = await ThreadPool.create(driver, 2, imports());
    expect(pool.available).toBe(2);
    const ctrl = (pool.helpers(2)[0] as unknown as { ctrl: Int32Array }).ctrl;
    const [M, K, N] = [256, 128, 192];
    const run = (): void => {
      const [a, b] = [shared(randnFrom(rng, M * K)), shared(randnFrom(rng, K * N))];
      const c = shared(new Float32Array(M * N)); // every operand shared: the job's buffers go through the port
      pool.gemm(M, K, N, view(a, K), view(b, N), view(c, N), 0, 1);
      setMatmulThreads(1);
      const ref = matmulF32(a, b, M, K, N);
      setMatmulThreads(2);
      expect(sameBits(c, ref)).toBe(true);
    };
    run();
    const seq = Atomics.load(ctrl, SEQ);
    expect(Atomics.load(ctrl, DONE)).toBe(seq);
    // The notify of the finished job arrives now, while the worker waits for the next one.
    Atomics.notify(ctrl, SEQ);
    // A worker that took it for a job runs job `seq` again and asks for its buffers (NEED = seq) within
    // milliseconds; a correct one goes on waiting. (Looked at for 500 ms: the next run() would block for good.)
    const t0 = Date.now();
    while (Date.now() - t0 < 500 && Atomics.load(ctrl, NEED) !== seq) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
    expect(Atomics.load(ctrl, NEED)).not.toBe(seq);
    run();
    run();
  });
});
