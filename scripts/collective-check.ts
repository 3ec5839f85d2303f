// The single-rank check of the NCCL collective on one GPU (issue 12 item 5), run by `gpu-check --group collective`:
// a communicator of world size 1 through the real libnccl.so.2, where every collective must return its input
// bit for bit (sum, mean, broadcast; f32, bf16, f16; host f64 numbers), the barrier, close and a second communicator,
// the argument errors, no device memory left behind, and first the message of a PARO_NCCL_LIB naming a missing file.
// The several-GPU check (real reductions, bandwidth) is scripts/nccl-check.ts.
import { performance } from 'node:perf_hooks';
import type { DType, Tensor } from '../src/engine/backend.js';
import type { Collective } from '../src/engine/collective.js';
import { loadAddon } from '../src/engine/cuda/addon.js';
import type { CudaBackend } from '../src/engine/cuda/backend.js';
import { loadNccl, ncclCollective } from '../src/engine/cuda/collective.js';
import { Rng } from '../src/numerics/rng.js';
import { timeOn, type Row } from './backend-ops.js';

const GROUP = 'collective';

export function collectiveChecks(be: CudaBackend, seed: number, log: (line: string) => void = console.log): Row[] {
  const rows: Row[] = [];
  const rng = new Rng(seed);
  const record = (op: string, shape: string, dtype: string, ok: boolean, differ: number, ms: number, note = ''): void => {
    rows.push({ group: GROUP, op, shape, dtype, ok, maxAbs: differ, relFro: 0, tol: 0, ms, note });
    log(`${ok ? 'OK  ' : 'FAIL'} ${op.padEnd(30)} ${shape.padEnd(34)} ${dtype.padEnd(5)} exact: ${differ} differ` +
      `${ms ? ` cuda=${ms.toFixed(3)} ms` : ''}${note ? ` ${note}` : ''}`);
  };
  const attempt = (op: string, shape: string, fn: () => void): void => {
    try {
      fn();
    } catch (e) {
      rows.push({ group: GROUP, op, shape, dtype: '-', ok: false, maxAbs: NaN, relFro: NaN, tol: 0, ms: 0, note: String(e) });
      log(`FAIL ${op.padEnd(30)} ${shape.padEnd(34)} error: ${(e as Error)?.stack ?? e}`);
    }
  };
  /** fn must throw an error whose message matches re. */
  const expectThrow = (op: string, re: RegExp, fn: () => void): void => {
    let message: string | null = null;
    try {
      fn();
    } catch (e) {
      message = (e as Error).message;
    }
    const ok = message !== null && re.test(message);
    record(op, 'error message', '-', ok, ok ? 0 : 1, 0, message === null ? '(did not throw)' : `"${message.slice(0, 300)}"`);
  };
  const differing = (a: Float32Array | Float64Array, b: Float32Array | Float64Array): number => {
    if (a.length !== b.length) return Math.max(a.length, b.length);
    let n = 0;
    for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) n++;
    return n;
  };
  const randn = (n: number): Float32Array => {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = rng.normal();
    return a;
  };
  const shareOwn = (mine: Uint8Array | null): Uint8Array => {
    if (!mine) throw new Error('world size 1: only rank 0 exists');
    return mine;
  };

  // 1. The library missing: must run first (once loaded, the library stays loaded in this process).
  const saved = process.env.PARO_NCCL_LIB;
  const missing = '/nonexistent/paro-nccl-check/libnccl.so.2';
  process.env.PARO_NCCL_LIB = missing;
  try {
    expectThrow('missing libnccl (PARO_NCCL_LIB)', new RegExp(`PARO_NCCL_LIB names ${missing.replace(/[.]/g, '\\.')}, which does not exist`),
      () => ncclCollective(be, 0, 1, shareOwn).close());
  } finally {
    if (saved === undefined) delete process.env.PARO_NCCL_LIB;
    else process.env.PARO_NCCL_LIB = saved;
  }

  const liveBefore = be.memStats().liveBytes;
  let c: Collective | null = null;
  attempt('ncclCommInitRank', 'world 1', () => {
    const t0 = performance.now();
    c = ncclCollective(be, 0, 1, shareOwn);
    const ms = performance.now() - t0;
    const lib = loadNccl(loadAddon().addon!);
    record('ncclCommInitRank', 'world 1', '-', true, 0, ms, `NCCL ${lib.version} from ${lib.path}; NCCL_NVLS_ENABLE=${process.env.NCCL_NVLS_ENABLE}`);
  });
  if (!c) return rows;
  const comm: Collective = c;

  // 2. Tensors: with one rank, sum, mean and broadcast are the identity, bit for bit.
  const shapes: number[][] = [[1], [3, 7], [1000], [4096, 1024]];
  for (const dtype of ['f32', 'bf16', 'f16'] as DType[]) {
    for (const shape of shapes) {
      const label = `[${shape.join(',')}]`;
      attempt(`allReduce/broadcast ${dtype}`, label, () => {
        const n = shape.reduce((a, b) => a * b, 1);
        const x = be.fromHost(randn(n), shape, dtype);
        const before = be.toHost(x);
        const big = n >= 1 << 20;
        comm.allReduce(x, 'sum');
        const afterSum = be.toHost(x);
        const sumMs = big ? timeOn(be, () => comm.allReduce(x, 'sum')) : 0;
        record('allReduce sum', label, dtype, differing(before, afterSum) === 0, differing(before, afterSum), sumMs);
        comm.allReduce(x, 'mean');
        const afterMean = be.toHost(x);
        record('allReduce mean', label, dtype, differing(before, afterMean) === 0, differing(before, afterMean), 0);
        comm.broadcast(x, 0);
        const afterBcast = be.toHost(x);
        record('broadcast root 0', label, dtype, differing(before, afterBcast) === 0, differing(before, afterBcast), 0);
        be.free(x);
      });
    }
  }

  // 3. Host numbers in f64.
  attempt('allReduceNumbers', 'f64', () => {
    const values = Float64Array.from([0.1, -2.5, 1e-300, 123456789.123456789, Math.PI, -7e300, 2 ** -1074]);
    const sum = comm.allReduceNumbers(values, 'sum');
    record('allReduceNumbers sum', `[${values.length}]`, 'f64', differing(values, sum) === 0, differing(values, sum), 0);
    const mean = comm.allReduceNumbers(values, 'mean');
    record('allReduceNumbers mean', `[${values.length}]`, 'f64', differing(values, mean) === 0, differing(values, mean), 0);
    const empty = comm.allReduceNumbers(new Float64Array(0), 'sum');
    record('allReduceNumbers empty', '[0]', 'f64', empty.length === 0, empty.length, 0);
  });

  // 4. Barrier: returns with the stream idle (queued work done), also after a large all-reduce.
  attempt('barrier', '-', () => {
    const x: Tensor = be.zeros([64 << 20], 'bf16');
    comm.allReduce(x, 'sum');
    const t0 = performance.now();
    comm.barrier();
    const after = performance.now() - t0;
    const t1 = performance.now();
    comm.barrier();
    const idle = performance.now() - t1;
    be.free(x);
    record('barrier', 'after 128 MiB allReduce', '-', true, 0, after, `idle barrier ${idle.toFixed(3)} ms`);
  });

  // 5. Argument errors, then close, use after close, and a second communicator.
  attempt('errors', '-', () => {
    const t = be.zeros([4], 'f32');
    const i = be.zeros([4], 'i32');
    expectThrow('broadcast root 1 of world 1', /root 1 is not a rank/, () => comm.broadcast(t, 1));
    expectThrow('allReduce i32', /i32 tensors are not supported/, () => comm.allReduce(i, 'sum'));
    comm.close();
    expectThrow('allReduce after close', /after close/, () => comm.allReduce(t, 'sum'));
    comm.close(); // a second close does nothing
    const again = ncclCollective(be, 0, 1, shareOwn);
    const before = be.toHost(t);
    again.allReduce(t, 'mean');
    again.barrier();
    again.close();
    record('second communicator', 'world 1', 'f32', differing(before, be.toHost(t)) === 0, differing(before, be.toHost(t)), 0);
    be.free(t, i);
  });

  // 6. Nothing of the communicators stays allocated.
  const liveAfter = be.memStats().liveBytes;
  record('device memory after close', 'live bytes', '-', liveAfter === liveBefore, liveAfter - liveBefore, 0,
    `${liveBefore} before, ${liveAfter} after`);
  return rows;
}
