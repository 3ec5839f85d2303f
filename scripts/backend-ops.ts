// The backend-ops check table (in the spirit of ggml's test-backend-ops): every Backend method on fresh random inputs
// of several shapes (tiny-qwen3 and Qwen3-8B sizes), run on a reference backend (the cpu backend) and on the backend
// under test, one row per op/shape/output with OK/FAIL, max abs error, relative Frobenius error, tolerance and the
// time per call of the backend under test. scripts/gpu-check.ts runs it against the CUDA backend;
// test/backend-ops.test.ts runs it with a second cpu backend under test and asserts that every method of the Backend
// interface has a case (the backend under test is wrapped so that each method a case touches is recorded).
import { performance } from 'node:perf_hooks';
import type { AttentionMask, AttentionShape, Backend, DType, QuantGrid, Tensor } from '../src/engine/backend.js';
import { Rng } from '../src/numerics/rng.js';
import { roundToF16InPlace } from '../src/numerics/half.js';
import { AWQ_ORDER } from '../src/io/awq.js';
import { freeTransformSaved, transformBackward, transformForward, type ParoLinear } from '../src/paroquant/transform.js';

export interface CheckOptions {
  /** The backend under test. */
  test: Backend;
  /** The reference backend (the cpu backend); null: time the backend under test only (TIME lines). */
  ref: Backend | null;
  /** Skip the largest shapes. */
  quick?: boolean;
  /** Only the tiny shapes (the vitest self-test on a cpu backend). */
  small?: boolean;
  /** Only cases whose "group op shape" contains this. */
  only?: string;
  /** Skip the per-op timings. */
  noTime?: boolean;
  seed: number;
  /** Where result lines go (default console.log). */
  log?: (line: string) => void;
}

export interface CheckResult {
  rows: Row[];
  /** Backend members the cases touched on the backend under test (methods called or optional methods looked up). */
  touched: Set<string>;
}

let cpu: Backend;
/** The backend under test, wrapped by recording(). */
let gpu: Backend;
let QUICK = false;
let SMALL = false;
let ONLY: string | undefined;
let NO_TIME = false;
let NO_REF = false;
let rng = new Rng(1);
let log: (line: string) => void = console.log;
let rows: Row[] = [];
let touched = new Set<string>();

/** be with every member lookup recorded in `touched` (a lookup of an absent optional method counts: the case ran). */
function recording(be: Backend): Backend {
  return new Proxy(be, {
    get(target, key) {
      if (typeof key === 'string') touched.add(key);
      const v: unknown = Reflect.get(target, key, target);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}

/** The backend's attention kernel choice, where it has one (the CUDA backend: 'auto' | 'scalar'). */
function setAttentionKernel(be: Backend, kernel: 'auto' | 'scalar'): void {
  const raw = be as Backend & { attentionKernel?: 'auto' | 'scalar' };
  if (raw.attentionKernel !== undefined) raw.attentionKernel = kernel;
}

/** Run the named groups (all when omitted). */
export function runChecks(opts: CheckOptions, groups: readonly string[] = Object.keys(GROUPS)): CheckResult {
  rows = [];
  touched = new Set();
  gpu = recording(opts.test);
  NO_REF = opts.ref === null;
  if (opts.ref) cpu = opts.ref;
  QUICK = opts.quick === true || opts.small === true;
  SMALL = opts.small === true;
  ONLY = opts.only;
  NO_TIME = opts.noTime === true;
  rng = new Rng(opts.seed);
  log = opts.log ?? console.log;
  for (const name of groups) {
    const fn = GROUPS[name];
    if (!fn) throw new Error(`unknown group ${name}; groups: ${Object.keys(GROUPS).join(', ')}`);
    log(`\n# ${name}`);
    const t0 = performance.now();
    try {
      fn();
    } catch (e) {
      fail(name, '(group)', '', e);
    }
    log(`# ${name}: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
  return { rows, touched };
}

// ---- data ----
function randn(n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal() * scale;
  return a;
}

function uniform(n: number, lo: number, hi: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * rng.nextFloat();
  return a;
}

interface In {
  data: Float32Array | Int32Array;
  shape: number[];
  dtype: DType;
}

const inp = (data: Float32Array | Int32Array, shape: number[], dtype: DType = 'f32'): In => ({ data, shape, dtype });

export interface Row {
  group: string; op: string; shape: string; dtype: string; ok: boolean; maxAbs: number; relFro: number; tol: number;
  ms: number; note?: string;
}
// ---- comparison ----
function compare(ref: Float32Array, got: Float32Array): { maxAbs: number; relFro: number; bad: boolean } {
  if (ref.length !== got.length) return { maxAbs: Infinity, relFro: Infinity, bad: true };
  let num = 0, den = 0, maxAbs = 0, bad = false;
  for (let i = 0; i < ref.length; i++) {
    const r = ref[i], g = got[i];
    if (Number.isNaN(g) !== Number.isNaN(r) || (!Number.isFinite(r) && !Number.isNaN(r) && r !== g)) { bad = true; continue; }
    if (!Number.isFinite(r)) continue; // equal infinities (e.g. lse of a row that sees nothing)
    const d = Math.abs(g - r);
    if (!(d <= maxAbs)) maxAbs = d;
    num += d * d;
    den += r * r;
  }
  const relFro = den > 0 ? Math.sqrt(num / den) : Math.sqrt(num);
  return { maxAbs, relFro, bad };
}

function fmt(x: number): string {
  return Number.isFinite(x) ? x.toExponential(2) : String(x);
}

function report(group: string, op: string, shape: string, dtype: string, ref: Float32Array, got: Float32Array, tol: number, ms: number, note?: string): void {
  const c = compare(ref, got);
  const ok = !c.bad && c.relFro <= tol;
  rows.push({ group, op, shape, dtype, ok, maxAbs: c.maxAbs, relFro: c.relFro, tol, ms, note });
  const line = `${ok ? 'OK  ' : 'FAIL'} ${op.padEnd(30)} ${shape.padEnd(34)} ${dtype.padEnd(5)} maxAbs=${fmt(c.maxAbs)} ` +
    `relFro=${fmt(c.relFro)} tol=${fmt(tol)} cuda=${ms.toFixed(3)} ms${c.bad ? ' (NaN/Inf mismatch)' : ''}${note ? ` ${note}` : ''}`;
  log(line);
}

function reportExact(group: string, op: string, shape: string, dtype: string, ref: ArrayLike<number>, got: ArrayLike<number>, ms: number): void {
  let diff = 0;
  for (let i = 0; i < ref.length; i++) if (ref[i] !== got[i] && !(Number.isNaN(ref[i]) && Number.isNaN(got[i]))) diff++;
  const ok = ref.length === got.length && diff === 0;
  rows.push({ group, op, shape, dtype, ok, maxAbs: diff, relFro: 0, tol: 0, ms });
  log(`${ok ? 'OK  ' : 'FAIL'} ${op.padEnd(30)} ${shape.padEnd(34)} ${dtype.padEnd(5)} exact: ${diff} of ${ref.length} differ cuda=${ms.toFixed(3)} ms`);
}

function fail(group: string, op: string, shape: string, e: unknown): void {
  rows.push({ group, op, shape, dtype: '-', ok: false, maxAbs: NaN, relFro: NaN, tol: 0, ms: 0, note: String(e) });
  log(`FAIL ${op.padEnd(30)} ${shape.padEnd(34)} error: ${(e as Error)?.stack ?? e}`);
}

function timeGpu(fn: () => void, targetMs = 60): number {
  return timeOn(gpu, fn, targetMs);
}

/** Time fn on backend be: a batch of calls then one synchronise, three batches, median per call (ms). */
export function timeOn(be: Backend, fn: () => void, targetMs = 60): number {
  fn();
  be.synchronize();
  let t0 = performance.now();
  fn();
  be.synchronize();
  const one = Math.max(performance.now() - t0, 1e-3);
  const reps = Math.max(1, Math.min(200, Math.floor(targetMs / one)));
  const per: number[] = [];
  for (let b = 0; b < 3; b++) {
    t0 = performance.now();
    for (let r = 0; r < reps; r++) fn();
    be.synchronize();
    per.push((performance.now() - t0) / reps);
  }
  return per.sort((x, y) => x - y)[1];
}

type OpFn = (be: Backend, t: Tensor[]) => Tensor[];

/** Run fn on both backends with the same inputs; returns the outputs as f32 host arrays and the CUDA time. */
function both(inputs: In[], fn: OpFn, time = true): { ref: Float32Array[]; got: Float32Array[]; ms: number } {
  const ct = NO_REF ? [] : inputs.map((i) => cpu.fromHost(i.data, i.shape, i.dtype));
  const ref = NO_REF ? [] : fn(cpu, ct).map((t) => cpu.toHost(t));
  const gt = inputs.map((i) => gpu.fromHost(i.data, i.shape, i.dtype));
  const outs = fn(gpu, gt);
  const got = outs.map((t) => gpu.toHost(t));
  gpu.free(...outs);
  const ms = time && !NO_TIME ? timeGpu(() => gpu.free(...fn(gpu, gt))) : 0;
  gpu.free(...gt);
  return { ref, got, ms };
}

function caseRun(group: string, op: string, shape: string, dtype: string, names: string[], tols: number[], inputs: () => In[], fn: OpFn, time = true): void {
  if (ONLY && !`${group} ${op} ${shape}`.includes(ONLY)) return;
  try {
    const r = both(inputs(), fn, time);
    if (NO_REF) {
      if (time) log(`TIME ${op.padEnd(30)} ${shape.padEnd(34)} ${dtype.padEnd(5)} cuda=${r.ms.toFixed(3)} ms`);
      return;
    }
    names.forEach((n, k) => report(group, n ? `${op}.${n}` : op, shape, dtype, r.ref[k], r.got[k], tols[k] ?? tols[0], r.ms));
  } catch (e) {
    fail(group, op, shape, e);
  }
}

const TOL_BF16 = 1e-2;
const TOL_F32 = 1e-5;
const tolFor = (dt: DType, f32 = TOL_F32) => (dt === 'f32' ? f32 : TOL_BF16);

// ---- groups ----
function groupMemory(): void {
  const g = 'memory';
  for (const dt of ['f32', 'bf16', 'f16'] as DType[]) {
    caseRun(g, 'fromHost/toHost', '[1000, 257]', dt, [''], [0], () => [inp(randn(257000, 3), [1000, 257], dt)], (_be, [x]) => [x], false);
    caseRun(g, 'cast→f32', '[513, 100]', dt, [''], [0], () => [inp(randn(51300), [513, 100], dt)], (be, [x]) => [be.cast(x, 'f32')]);
    caseRun(g, 'cast f32→' + dt, '[513, 100]', 'f32', [''], [0], () => [inp(randn(51300), [513, 100])], (be, [x]) => [be.cast(x, dt)]);
  }
  caseRun(g, 'cast f32→i32', '[300]', 'f32', [''], [0], () => [inp(randn(300, 100), [300])], (be, [x]) => [be.cast(x, 'i32')]);
  caseRun(g, 'copy', '[700, 300]', 'bf16', [''], [0], () => [inp(randn(210000), [700, 300], 'bf16')], (be, [x]) => [be.copy(x)]);
  caseRun(g, 'zeros+fill', '[123, 45]', 'bf16', [''], [0], () => [], (be) => {
    const t = be.zeros([123, 45], 'bf16');
    be.fill(t, 1.25); // bf16-exact: the cpu backend's fill() does not round to the dtype
    return [t];
  });
  caseRun(g, 'copyRows bf16→f32', '[40, 96]', 'mixed', [''], [0], () => [inp(randn(40 * 96), [40, 96], 'bf16'), inp(randn(30 * 96), [30, 96])],
    (be, [src, dst0]) => {
      const dst = be.copy(dst0);
      be.copyRows(dst, 5, src, 11, 20);
      return [dst];
    });
  // The decoding step's K/V write (dflash/batch-decode.ts): f32 rows into a bf16 cache, and same-dtype rows.
  for (const [sdt, ddt] of [['f32', 'bf16'], ['bf16', 'bf16'], ['f32', 'f32']] as const) {
    caseRun(g, `scatterRows ${sdt}→${ddt}`, '[33, 1024] → [4096, 1024]', 'mixed', [''], [0],
      () => [inp(randn(33 * 1024), [33, 1024], sdt), inp(randn(4096 * 1024), [4096, 1024], ddt)], (be, [src, dst0]) => {
        const dst = be.copy(dst0);
        be.scatterRows(dst, Int32Array.from({ length: 33 }, (_, i) => (i * 2477 + 5) % 4096), src);
        return [dst];
      });
  }
  caseRun(g, 'gatherRows', '[5000, 256] ids 777', 'bf16', [''], [0], () => [inp(randn(5000 * 256), [5000, 256], 'bf16')], (be, [t]) => {
    const ids = new Int32Array(777);
    for (let i = 0; i < ids.length; i++) ids[i] = (i * 7919) % 5000;
    return [be.gatherRows(t, ids)];
  });
  caseRun(g, 'concatCols', '[64,100]‖[64,28]‖[64,4096]', 'mixed', [''], [1e-7],
    () => [inp(randn(6400), [64, 100], 'bf16'), inp(randn(64 * 28), [64, 28]), inp(randn(64 * 4096), [64, 4096], 'bf16')],
    (be, ts) => [be.concatCols(ts)]);
  for (const dt of ['bf16', 'f16'] as const) {
    // Raw 16-bit patterns, NaN and infinity patterns included: uploaded without rounding.
    const bits = new Uint16Array(4000);
    for (let i = 0; i < bits.length; i++) bits[i] = rng.nextInt(65536);
    caseRun(g, 'fromBits', '[40, 100]', dt, [''], [0], () => [], (be) => [be.fromBits(bits, [40, 100], dt)], false);
  }
  for (const dt of ['i32', 'f32'] as DType[]) {
    // toHostInt of a float tensor truncates toward zero.
    const data = dt === 'i32' ? Int32Array.from(randn(3000, 1e6), Math.trunc) : randn(3000, 1000);
    caseRun(g, 'toHostInt', '[3000]', dt, [''], [0], () => [inp(data, [3000], dt)], (be, [t]) => [Ft(be, be.toHostInt(t))], false);
  }
  const hostData = randn(512 * 64);
  caseRun(g, 'hostBuffer → fromHost', '[512, 64]', 'f32', [''], [0], () => [], (be) => {
    // Page-locked host memory where the backend has it (an ordinary ArrayBuffer elsewhere): filled, then uploaded.
    const data = hostData;
    const buf = be.hostBuffer ? be.hostBuffer(data.byteLength) : new ArrayBuffer(data.byteLength);
    const view = new Float32Array(buf, 0, data.length);
    view.set(data);
    return [be.fromHost(view, [512, 64])];
  }, false);
  caseRun(g, 'synchronize', '[100, 100]', 'f32', [''], [0], () => [inp(randn(10000), [100, 100])], (be, [x]) => {
    const y = be.scale(x, 2);
    be.synchronize();
    return [y];
  }, false);
  caseRun(g, 'memoryInfo', '-', '-', [''], [0], () => [], (be) => {
    // Backends without device memory omit it; where present, 0 ≤ free ≤ total and total > 0.
    const m = be.memoryInfo ? be.memoryInfo() : undefined;
    const sane = m === undefined || (m.totalBytes > 0 && m.freeBytes >= 0 && m.freeBytes <= m.totalBytes);
    return [Ft(be, sane ? 1 : 0)];
  }, false);
  caseRun(g, 'reshape', '[64,128]→[8192]', 'f32', [''], [0], () => [inp(randn(8192), [64, 128])], (be, [t]) => [be.copy(be.reshape(t, [8192]))]);
}

function groupMatmul(): void {
  const g = 'matmul';
  const cases: [number, number, number, boolean, boolean, string][] = [
    [64, 256, 256, false, true, 'tiny q_proj'],
    [128, 256, 512, false, false, 'tiny NN'],
    [96, 200, 136, true, false, 'TN (weight grad)'],
    [48, 72, 40, true, true, 'TT'],
  ];
  if (!SMALL) cases.push([64, 4096, 4096, false, true, '8B q_proj']);
  if (!QUICK) cases.push([64, 4096, 12288, false, true, '8B gate_proj'], [64, 12288, 4096, false, true, '8B down_proj'], [4096, 64, 4096, true, false, '8B weight grad']);
  for (const [M, K, N, tA, tB, label] of cases) {
    for (const dt of ['bf16', 'f32'] as DType[]) {
      const aShape = tA ? [K, M] : [M, K];
      const bShape = tB ? [N, K] : [K, N];
      caseRun(g, `matmul ${label}`, `[${M}x${K}]·[${K}x${N}] ${tA ? 'T' : 'N'}${tB ? 'T' : 'N'}`, dt, [''], [tolFor(dt)],
        () => [inp(randn(M * K), aShape, dt), inp(randn(K * N, 0.05), bShape, dt)],
        (be, [a, b]) => [be.matmul(a, b, { transA: tA, transB: tB })]);
    }
  }
  caseRun(g, 'matmul accumulate α=0.5', '[64x256]·[256x128] NT +=', 'bf16', [''], [2e-3],
    () => [inp(randn(64 * 256), [64, 256], 'bf16'), inp(randn(128 * 256), [128, 256], 'bf16'), inp(randn(64 * 128), [64, 128])],
    (be, [a, b, acc0]) => {
      const acc = be.copy(acc0);
      be.matmul(a, b, { transB: true, accumulate: acc, alpha: 0.5 });
      return [acc];
    }, false);
  caseRun(g, 'matmul mixed bf16·f32', '[64x256]·[256x64]', 'mixed', [''], [TOL_F32],
    () => [inp(randn(64 * 256), [64, 256], 'bf16'), inp(randn(256 * 64), [256, 64])], (be, [a, b]) => [be.matmul(a, b)]);
  // Compute dtype bf16 (model/layer-ops.ts): bf16 operands, outDtype f32 — the f32 GEMM of the same bf16 values
  // within f32 accumulation error (a bf16-rounded result would be ~1e-3 off).
  for (const [M, K, N, tA, tB, label] of cases) {
    caseRun(g, `matmul ${label} bf16→f32 out`, `[${M}x${K}]·[${K}x${N}] ${tA ? 'T' : 'N'}${tB ? 'T' : 'N'}`, 'bf16', [''], [TOL_F32],
      () => [inp(randn(M * K), tA ? [K, M] : [M, K], 'bf16'), inp(randn(K * N, 0.05), tB ? [N, K] : [K, N], 'bf16')],
      (be, [a, b]) => [be.matmul(a, b, { transA: tA, transB: tB, outDtype: 'f32' })]);
  }
}

function groupElementwise(): void {
  const g = 'elementwise';
  // [37, 333]: sizes that are no multiple of 8, the kernels' element-by-element path (the others take 8 at a time)
  for (const [R, C] of SMALL ? [[64, 256], [37, 333]] : [[64, 256], [512, 4096], [37, 333]]) {
    for (const dt of ['f32', 'bf16'] as DType[]) {
      const n = R * C;
      const s = `[${R}, ${C}]`;
      caseRun(g, 'add', s, dt, [''], [tolFor(dt)], () => [inp(randn(n), [R, C], dt), inp(randn(n), [R, C], dt)], (be, [a, b]) => [be.add(a, b)]);
      caseRun(g, 'add broadcast', s, dt, [''], [tolFor(dt)], () => [inp(randn(n), [R, C], dt), inp(randn(C), [C], dt)], (be, [a, b]) => [be.add(a, b)]);
      caseRun(g, 'axpy α=-0.7', s, dt, [''], [tolFor(dt)], () => [inp(randn(n), [R, C], dt), inp(randn(n), [R, C], dt)], (be, [a0, b]) => {
        const a = be.copy(a0);
        be.axpy(a, b, -0.7);
        return [a];
      });
      caseRun(g, 'scale α=1.7', s, dt, [''], [tolFor(dt)], () => [inp(randn(n), [R, C], dt)], (be, [a]) => [be.scale(a, 1.7)]);
      caseRun(g, 'mulCols', s, dt, [''], [tolFor(dt)], () => [inp(randn(n), [R, C], dt), inp(uniform(C, 0.5, 2), [C])], (be, [a, v]) => [be.mulCols(a, v)]);
      caseRun(g, 'divCols', s, dt, [''], [tolFor(dt)], () => [inp(randn(n), [R, C], dt), inp(uniform(C, 0.5, 2), [C])], (be, [a, v]) => [be.divCols(a, v)]);
      caseRun(g, 'swiglu', s, dt, [''], [tolFor(dt)], () => [inp(randn(n, 3), [R, C], dt), inp(randn(n), [R, C], dt)], (be, [a, b]) => [be.swiglu(a, b)]);
      caseRun(g, 'swigluBackward', s, dt, ['dgate', 'dup'], [tolFor(dt)],
        () => [inp(randn(n), [R, C], dt), inp(randn(n, 3), [R, C], dt), inp(randn(n), [R, C], dt)],
        (be, [dh, a, b]) => { const r = be.swigluBackward(dh, a, b); return [r.dgate, r.dup]; });
    }
  }
  if (!QUICK) {
    caseRun(g, 'swiglu 8B MLP', '[2048, 12288]', 'bf16', [''], [TOL_BF16],
      () => [inp(randn(2048 * 12288, 3), [2048, 12288], 'bf16'), inp(randn(2048 * 12288), [2048, 12288], 'bf16')], (be, [a, b]) => [be.swiglu(a, b)]);
  }
}

function groupReduce(): void {
  const g = 'reduce';
  for (const [R, C] of SMALL ? [[100, 256]] : [[100, 256], [2048, 4096]]) {
    for (const dt of ['f32', 'bf16'] as DType[]) {
      const s = `[${R}, ${C}]`;
      caseRun(g, 'dotCols', s, dt, [''], [1e-5], () => [inp(randn(R * C), [R, C], dt), inp(randn(R * C), [R, C], dt)], (be, [a, b]) => [be.dotCols(a, b)]);
      caseRun(g, 'sumSquares', s, dt, [''], [1e-6], () => [inp(randn(R * C), [R, C], dt)], (be, [a]) => [Ft(be, be.sumSquares(a))]);
    }
  }
  const bad = randn(100000);
  bad[77777] = NaN;
  caseRun(g, 'hasNonFinite (NaN)', '[100000]', 'bf16', [''], [0], () => [inp(bad, [100000], 'bf16')], (be, [a]) => [Ft(be, be.hasNonFinite(a) ? 1 : 0)]);
  const inf = randn(5000);
  inf[4999] = -Infinity;
  caseRun(g, 'hasNonFinite (-Inf)', '[5000]', 'f32', [''], [0], () => [inp(inf, [5000])], (be, [a]) => [Ft(be, be.hasNonFinite(a) ? 1 : 0)]);
  caseRun(g, 'hasNonFinite (finite)', '[5000]', 'f32', [''], [0], () => [inp(randn(5000), [5000])], (be, [a]) => [Ft(be, be.hasNonFinite(a) ? 1 : 0)]);
}

/** A host scalar as a 1-element tensor of backend be (so scalar results flow through the same comparison). */
function Ft(be: Backend, x: number | Int32Array): Tensor {
  if (typeof x !== 'number') return be.fromHost(Float32Array.from(x), [x.length]);
  return be.fromHost(Float32Array.of(x), [1]);
}

function groupNorm(): void {
  const g = 'norm';
  const shapes: [number, number, string][] = [[256, 256, 'tiny hidden'], [512, 4096, '8B hidden'], [512 * 32, 128, '8B per-head q_norm'], [1001, 64, 'head_dim 64: 4 rows per warp, the last warp part-filled'], [9, 100, 'width not a multiple of 8']];
  if (SMALL) shapes.splice(1, 3);
  for (const [R, C, label] of shapes) {
    for (const dt of ['f32', 'bf16'] as DType[]) {
      const s = `[${R}, ${C}] ${label}`;
      caseRun(g, 'rmsnorm', s, dt, ['y', 'rstd'], [tolFor(dt), tolFor(dt, 1e-6)], () => [inp(randn(R * C, 2), [R, C], dt), inp(uniform(C, 0.5, 1.5), [C], dt)],
        (be, [x, w]) => { const r = be.rmsnorm(x, w, 1e-6); return [r.y, r.rstd]; });
      caseRun(g, 'rmsnormBackward', s, dt, ['dx', 'dw'], [tolFor(dt), tolFor(dt, 1e-5)],
        () => [inp(randn(R * C), [R, C], dt), inp(randn(R * C, 2), [R, C], dt), inp(uniform(C, 0.5, 1.5), [C], dt)],
        (be, [dy, x, w]) => {
          const { rstd, y } = be.rmsnorm(x, w, 1e-6);
          const r = be.rmsnormBackward(dy, x, w, rstd);
          be.free(y, rstd);
          return [r.dx, r.dw];
        });
      // weightGrad false (the ParoQuant block's frozen norms): dx alone, no dw formed.
      caseRun(g, 'rmsnormBackward dx only', s, dt, ['dx'], [tolFor(dt)],
        () => [inp(randn(R * C), [R, C], dt), inp(randn(R * C, 2), [R, C], dt), inp(uniform(C, 0.5, 1.5), [C], dt)],
        (be, [dy, x, w]) => {
          const { rstd, y } = be.rmsnorm(x, w, 1e-6);
          const r = be.rmsnormBackward(dy, x, w, rstd, false);
          be.free(y, rstd);
          if ('dw' in r) throw new Error('rmsnormBackward(…, false) returned dw');
          return [r.dx];
        });
    }
  }
}

function ropeFreqs(D: number, base: number): Float32Array {
  const f = new Float32Array(D / 2);
  for (let m = 0; m < D / 2; m++) f[m] = Math.fround(base ** (-(2 * m) / D));
  return f;
}

function groupRope(): void {
  const g = 'rope';
  const cases: [number, number, number, number, string][] = [[256, 4, 64, 1e6, 'tiny q'], [512, 32, 128, 1e6, '8B q'], [512, 8, 128, 1e6, '8B k'], [33, 3, 20, 1e4, 'head_dim 20: the scalar path']];
  if (SMALL) cases.length = 1;
  for (const [R, H, D, base, label] of cases) {
    for (const dt of ['f32', 'bf16'] as DType[]) {
      for (const inverse of [false, true]) {
        const pos = new Int32Array(R);
        for (let i = 0; i < R; i++) pos[i] = rng.nextInt(40000);
        caseRun(g, `rope${inverse ? ' inverse' : ''}`, `[${R}, ${H}·${D}] ${label}`, dt, [''], [tolFor(dt, 2e-6)], () => [inp(randn(R * H * D), [R, H * D], dt)],
          (be, [x]) => [be.rope(x, pos, ropeFreqs(D, base), D, inverse)]);
      }
    }
  }
}

interface AttnCase {
  label: string;
  shape: AttentionShape;
  mask: AttentionMask;
  dtype: DType;
  kernel?: 'auto' | 'scalar';
  /**
   * The CUDA tensor-core kernel version (PARO_ATTN_KERNEL, read by native/src/k_attention.cu at each call): 'v1' the
   * 16-rows-per-warp kernels, 'v2' the 32-rows-per-warp ones, 'v3' the wgmma kernels (sm_90a, head dim 128; v2
   * elsewhere, and v2's backward on grids of less than 4 waves), 'v4' v3 with the forward's and dK/dV kernel's tiles
   * loaded by the TMA unit (the default above 64 queries), 'v4p' that with the warpgroups ping-ponging, 'v5' v4 with
   * a persistent forward and dQ kernel (one CTA per SM), 'v6' v5 with dQ inside the dK/dV kernel. Unset: the default.
   */
  version?: 'v1' | 'v2' | 'v3' | 'v4' | 'v4p' | 'v5' | 'v6';
  /** Run with Backend.setExactF32(true) (f32 arithmetic throughout). */
  exactF32?: boolean;
  tol?: number;
}

function anchoredBlocksMask(batch: number, ctxLen: number, blockSize: number, nBlocks: number): AttentionMask {
  const anchors = new Int32Array(batch * nBlocks);
  const keep = new Uint8Array(batch * nBlocks);
  for (let i = 0; i < anchors.length; i++) {
    anchors[i] = 1 + rng.nextInt(ctxLen - 1);
    keep[i] = rng.nextFloat() < 0.85 ? 1 : 0;
  }
  return { kind: 'anchoredBlocks', ctxLen, blockSize, nBlocks, anchors, keep };
}

function attnCases(): AttnCase[] {
  const c: AttnCase[] = [];
  const tiny = (batch: number, tq: number, tk: number, extra: Partial<AttentionShape> = {}): AttentionShape => ({ batch, tq, tk, heads: 4, kvHeads: 2, headDim: 64, ...extra });
  const big = (batch: number, tq: number, tk: number, extra: Partial<AttentionShape> = {}): AttentionShape => ({ batch, tq, tk, heads: 32, kvHeads: 8, headDim: 128, ...extra });
  for (const dt of ['bf16', 'f32'] as DType[]) {
    c.push({ label: 'tiny causal', shape: tiny(2, 100, 100), mask: { kind: 'causal', qOffset: 0 }, dtype: dt });
  }
  c.push({ label: 'tiny causal decode-ish qOffset', shape: tiny(2, 37, 165, { kvStride: 200 }), mask: { kind: 'causal', qOffset: 128 }, dtype: 'bf16' });
  c.push({ label: 'tiny full', shape: tiny(1, 70, 130), mask: { kind: 'full' }, dtype: 'bf16' });
  // Batched decoding (dflash/batch-decode.ts): an offset per batch entry, one row (decode) or several.
  c.push({ label: 'tiny causalPerEntry decode', shape: tiny(3, 1, 150, { kvStride: 160 }), mask: { kind: 'causalPerEntry', qOffsets: Int32Array.of(149, 37, 0) }, dtype: 'bf16' });
  c.push({ label: 'tiny causalPerEntry tq 5', shape: tiny(3, 5, 126), mask: { kind: 'causalPerEntry', qOffsets: Int32Array.of(121, 3, 60) }, dtype: 'f32' });
  c.push({ label: 'tiny causalPerEntry scalar kernel', shape: tiny(3, 5, 126), mask: { kind: 'causalPerEntry', qOffsets: Int32Array.of(121, 3, 60) }, dtype: 'bf16', kernel: 'scalar' });
  c.push({ label: 'tiny full (draft step)', shape: tiny(2, 16, 200 + 16), mask: { kind: 'full' }, dtype: 'bf16' });
  c.push({ label: 'tiny anchoredBlocks', shape: tiny(2, 8 * 16, 150 + 8 * 16), mask: anchoredBlocksMask(2, 150, 16, 8), dtype: 'bf16' });
  c.push({ label: 'tiny causal scalar kernel', shape: tiny(2, 100, 100), mask: { kind: 'causal', qOffset: 0 }, dtype: 'bf16', kernel: 'scalar' });
  c.push({ label: 'tiny anchoredBlocks scalar kernel', shape: tiny(2, 8 * 16, 150 + 8 * 16), mask: anchoredBlocksMask(2, 150, 16, 8), dtype: 'f32', kernel: 'scalar', tol: 1e-5 });
  c.push({ label: 'tiny causal exact f32', shape: tiny(2, 100, 100), mask: { kind: 'causal', qOffset: 0 }, dtype: 'f32', exactF32: true, tol: 1e-5 });
  if (SMALL) return c;
  c.push({ label: 'headDim 96 (scalar path)', shape: { batch: 1, tq: 50, tk: 50, heads: 4, kvHeads: 1, headDim: 96 }, mask: { kind: 'causal', qOffset: 0 }, dtype: 'bf16' });
  c.push({ label: '8B causal T=256', shape: big(1, 256, 256), mask: { kind: 'causal', qOffset: 0 }, dtype: 'bf16' });
  c.push({ label: '8B anchoredBlocks (drafter training)', shape: big(1, 16 * 16, 512 + 16 * 16), mask: anchoredBlocksMask(1, 512, 16, 16), dtype: 'bf16' });
  c.push({ label: '8B full (draft step)', shape: big(1, 16, 700 + 16, { kvStride: 1024 }), mask: { kind: 'full' }, dtype: 'bf16' });
  c.push({
    label: '8B causalPerEntry (generate-data decode step)', shape: big(32, 1, 700, { kvStride: 1024 }),
    mask: { kind: 'causalPerEntry', qOffsets: Int32Array.from({ length: 32 }, (_, b) => (b === 0 ? 699 : 20 + rng.nextInt(680))) }, dtype: 'bf16',
  });
  if (!QUICK) c.push({ label: '8B causal T=2048', shape: big(1, 2048, 2048), mask: { kind: 'causal', qOffset: 0 }, dtype: 'bf16' });
  // 4 × 8 × 17 = 544 CTAs of 128 keys: at least 4 waves on an H100, so version 3's dK/dV kernel runs (wgmmaDkv).
  c.push({ label: '8B causal T=512 batch 17 (v3 dK/dV grid)', shape: big(17, 512, 512), mask: { kind: 'causal', qOffset: 0 }, dtype: 'bf16' });
  // Edges of the 128-row query tiles of the version-2 kernels (two m16 tiles per warp, either partly valid), key
  // counts off the 64/32-key tiles, spare cache rows (kvStride > tk), a query offset, GQA, head dims 64 and 128.
  c.push({ label: '8B causal decode tq1 qOffset', shape: big(1, 1, 77, { kvStride: 96 }), mask: { kind: 'causal', qOffset: 76 }, dtype: 'bf16' });
  c.push({ label: '8B causal tq17 qOffset', shape: big(2, 17, 150, { kvStride: 160 }), mask: { kind: 'causal', qOffset: 133 }, dtype: 'bf16' });
  c.push({ label: '8B full tq100 tk333', shape: big(1, 100, 333), mask: { kind: 'full' }, dtype: 'bf16' });
  c.push({ label: '8B causal tq129 qOffset', shape: big(1, 129, 329, { kvStride: 400 }), mask: { kind: 'causal', qOffset: 200 }, dtype: 'bf16' });
  c.push({ label: 'd64 causal tq300 h16/4', shape: { batch: 2, tq: 300, tk: 300, heads: 16, kvHeads: 4, headDim: 64 }, mask: { kind: 'causal', qOffset: 0 }, dtype: 'bf16' });
  c.push({ label: 'd64 anchoredBlocks tq 5·32', shape: { batch: 2, tq: 5 * 32, tk: 90 + 5 * 32, heads: 8, kvHeads: 2, headDim: 64 }, mask: anchoredBlocksMask(2, 90, 32, 5), dtype: 'f32' });
  return c;
}

/** Whether a case runs the tensor-core kernels (head dim 64 or 128, not forced scalar, not exact f32). */
function usesMma(ac: AttnCase): boolean {
  return (ac.shape.headDim === 64 || ac.shape.headDim === 128) && ac.kernel !== 'scalar' && !(ac.exactF32 && ac.dtype === 'f32');
}

/** Every tensor-core case once per kernel version (labels end in [v1] … [v6]); the others once. */
function attnCasesEveryVersion(): AttnCase[] {
  return attnCases().flatMap((ac) => (usesMma(ac)
    ? (['v1', 'v2', 'v3', 'v4', 'v4p', 'v5', 'v6'] as const).map((version) => ({ ...ac, label: `${ac.label} [${version}]`, version }))
    : [ac]));
}

function groupAttention(): void {
  const g = 'attention';
  const envBefore = process.env.PARO_ATTN_KERNEL;
  for (const ac of attnCasesEveryVersion()) {
    const { batch, tq, tk, heads, kvHeads, headDim: D } = ac.shape;
    const stride = ac.shape.kvStride ?? tk;
    const qn = batch * tq * heads * D;
    const kn = batch * stride * kvHeads * D;
    const s = `b${batch} tq${tq} tk${tk}${stride !== tk ? `/${stride}` : ''} h${heads}/${kvHeads} d${D}`;
    const tol = ac.tol ?? TOL_BF16;
    const setKernel = (be: Backend) => {
      setAttentionKernel(be, ac.kernel ?? 'auto');
      be.setExactF32?.(ac.exactF32 === true);
      // Node's process.env writes the process environment, which the addon reads at each attention call.
      if (ac.version) process.env.PARO_ATTN_KERNEL = ac.version;
      else if (envBefore === undefined) delete process.env.PARO_ATTN_KERNEL;
      else process.env.PARO_ATTN_KERNEL = envBefore;
    };
    const mkInputs = () => [inp(randn(qn), [batch * tq, heads * D], ac.dtype), inp(randn(kn), [batch * stride, kvHeads * D], ac.dtype),
      inp(randn(kn), [batch * stride, kvHeads * D], ac.dtype), inp(randn(qn), [batch * tq, heads * D], ac.dtype)];
    caseRun(g, `attention ${ac.label}`, s, ac.dtype, ['out', 'lse'], [tol, tol], mkInputs, (be, [q, k, v]) => {
      setKernel(be);
      const r = be.attention(q, k, v, ac.shape, ac.mask);
      return [r.out, r.lse];
    });
    caseRun(g, `attentionBackward ${ac.label}`, s, ac.dtype, ['dq', 'dk', 'dv'], [tol], mkInputs, (be, [q, k, v, dout]) => {
      setKernel(be);
      const f = be.attention(q, k, v, ac.shape, ac.mask);
      const r = be.attentionBackward(dout, q, k, v, f.out, f.lse, ac.shape, ac.mask);
      be.free(f.out, f.lse);
      return [r.dq, r.dk, r.dv];
    });
  }
  setAttentionKernel(gpu, 'auto');
  gpu.setExactF32?.(false);
  if (envBefore === undefined) delete process.env.PARO_ATTN_KERNEL;
  else process.env.PARO_ATTN_KERNEL = envBefore;
}

function groupCrossEntropy(): void {
  const g = 'crossentropy';
  const cases: [number, number, DType][] = SMALL ? [[128, 1000, 'f32'], [16, 3000, 'bf16']] : [[128, 1000, 'f32'], [64, 151936, 'bf16']];
  if (!QUICK) cases.push([512, 151936, 'bf16']);
  for (const [R, V, dt] of cases) {
    const labels = new Int32Array(R);
    const w = new Float32Array(R);
    for (let r = 0; r < R; r++) {
      labels[r] = r % 9 === 4 ? -1 : rng.nextInt(V);
      w[r] = r % 7 === 3 ? 0 : rng.nextFloat();
    }
    const s = `[${R}, ${V}]`;
    caseRun(g, 'crossEntropy', s, dt, ['loss', 'lse', 'dlogits'], [tolFor(dt, 1e-6), tolFor(dt, 1e-6), tolFor(dt)], () => [inp(randn(R * V, 3), [R, V], dt)], (be, [z]) => {
      const r = be.crossEntropy(z, labels, w);
      return [r.loss, r.lse, r.dlogits as Tensor];
    });
    if (!ONLY || 'crossentropy argmaxRows'.includes(ONLY)) {
      try {
        const data = randn(R * V, 3);
        const ref = NO_REF ? new Int32Array(R) : cpu.argmaxRows(cpu.fromHost(data, [R, V], dt)); // (reference tensor left to GC)
        const gt = gpu.fromHost(data, [R, V], dt);
        const got = gpu.argmaxRows(gt);
        const ms = NO_TIME ? 0 : timeGpu(() => gpu.argmaxRows(gt));
        gpu.free(gt);
        if (NO_REF) log(`TIME ${'argmaxRows'.padEnd(30)} ${s.padEnd(34)} ${dt.padEnd(5)} cuda=${ms.toFixed(3)} ms`);
        else reportExact(g, 'argmaxRows', s, dt, ref, got, ms);
      } catch (e) {
        fail(g, 'argmaxRows', s, e);
      }
    }
  }
}

/**
 * The ParoQuant block step's attention call at a Qwen3-8B shape (32 query / 8 KV heads, head_dim 128, causal) on
 * device-random bf16 inputs: what the GPU benchmarks and the Nsight probe time. The caller frees q, k, v, dout.
 */
export function blockAttentionInputs(be: Backend & { fillRandom(t: Tensor, seed: number): void }, B: number, T: number): {
  shape: AttentionShape; mask: AttentionMask; q: Tensor; k: Tensor; v: Tensor; dout: Tensor;
} {
  const shape: AttentionShape = { batch: B, tq: T, tk: T, heads: 32, kvHeads: 8, headDim: 128 };
  const q = be.zeros([B * T, 32 * 128], 'bf16');
  const k = be.zeros([B * T, 8 * 128], 'bf16');
  const v = be.zeros([B * T, 8 * 128], 'bf16');
  const dout = be.zeros([B * T, 32 * 128], 'bf16');
  [q, k, v, dout].forEach((t, i) => be.fillRandom(t, 10 + i));
  return { shape, mask: { kind: 'causal', qOffset: 0 }, q, k, v, dout };
}

/** Random pairs per spec §3: per layer and group a random perfect matching of the group's channels (from r). */
export function randomPairs(K: number, I: number, gs: number, r: Rng = rng): Int32Array {
  const p = new Int32Array(K * I);
  const perm = new Int32Array(gs);
  for (let l = 0; l < K; l++) {
    for (let g0 = 0; g0 < I; g0 += gs) {
      for (let i = 0; i < gs; i++) perm[i] = i;
      r.shuffle(perm);
      p.set(perm, l * I + g0);
    }
  }
  return p;
}

type GivensKernel = 'v1' | 'v2';

/** Run fn with environment variables set (kernel versions and switches the addon reads at each call), then restore them. */
export function withEnvs<T>(env: Record<string, string>, fn: () => T): T {
  const names = Object.keys(env);
  const before = names.map((n) => process.env[n]);
  for (const n of names) process.env[n] = env[n];
  try {
    return fn();
  } finally {
    names.forEach((n, i) => {
      if (before[i] === undefined) delete process.env[n];
      else process.env[n] = before[i];
    });
  }
}

/** withEnvs for one variable. */
export function withEnv<T>(name: string, value: string, fn: () => T): T {
  return withEnvs({ [name]: value }, fn);
}

/** Run fn with the Givens kernel version v: PARO_GIVENS_KERNEL, which native/src/k_paro.cu reads at each call. */
function withGivensKernel<T>(v: GivensKernel, fn: () => T): T {
  return withEnv('PARO_GIVENS_KERNEL', v, fn);
}

/**
 * The CUDA Givens kernels v2 (the default for f32) against v1 on the same inputs: forward output and dx
 * bit-identical (the same arithmetic per element), dθ within the f32 summation-order tolerance; every backward pass
 * takes v1's forward output. Times both (the ms column: v2; a TIME line: both).
 */
function givensVersions(g: string, s: string, dt: DType, dir: 'forward' | 'inverse', R: number, I: number, K: number, gs: number,
  pairs: Int32Array, theta: Float32Array): void {
  const op = `givens ${dir} v2≡v1`;
  if (ONLY && !`${g} ${op} ${s}`.includes(ONLY)) return;
  try {
    const x = gpu.fromHost(randn(R * I), [R, I], dt);
    const dy = gpu.fromHost(randn(R * I), [R, I], dt);
    const p = gpu.fromHost(pairs, [K, I], 'i32');
    const th = gpu.fromHost(theta, [K, I / 2]);
    const y1 = withGivensKernel('v1', () => gpu.givens(x, p, th, gs, dir));
    const time = (f: () => void) => (NO_TIME ? 0 : timeGpu(f));
    const run = (v: GivensKernel) => withGivensKernel(v, () => {
      const y = gpu.givens(x, p, th, gs, dir);
      const out: { y: Float32Array; dx: Float32Array; dtheta: Float32Array; fwdMs: number; bwdMs: number } =
        { y: gpu.toHost(y), dx: new Float32Array(0), dtheta: new Float32Array(0), fwdMs: 0, bwdMs: 0 };
      gpu.free(y);
      out.fwdMs = time(() => gpu.free(gpu.givens(x, p, th, gs, dir)));
      const b = gpu.givensBackward(dy, y1, p, th, gs, dir);
      out.dx = gpu.toHost(b.dx);
      out.dtheta = gpu.toHost(b.dtheta);
      gpu.free(b.dx, b.dtheta);
      out.bwdMs = time(() => {
        const r = gpu.givensBackward(dy, y1, p, th, gs, dir);
        gpu.free(r.dx, r.dtheta);
      });
      return out;
    });
    const a = run('v1');
    const b = run('v2');
    gpu.free(x, dy, p, th, y1);
    reportExact(g, op, s, dt, f32Bits(a.y), f32Bits(b.y), b.fwdMs);
    reportExact(g, `givensBackward ${dir} v2≡v1.dx`, s, dt, f32Bits(a.dx), f32Bits(b.dx), b.bwdMs);
    report(g, `givensBackward ${dir} v2~v1.dθ`, s, dt, a.dtheta, b.dtheta, 1e-5, b.bwdMs);
    if (!NO_TIME) {
      log(`TIME givens ${dir} ${s} ${dt}: forward v1 ${a.fwdMs.toFixed(3)} ms, v2 ${b.fwdMs.toFixed(3)} ms; ` +
        `backward v1 ${a.bwdMs.toFixed(3)} ms, v2 ${b.bwdMs.toFixed(3)} ms`);
    }
  } catch (e) {
    fail(g, op, s, e);
  }
}

function groupParo(): void {
  const g = 'paroquant';
  const shapes: [number, number][] = SMALL ? [[256, 256]] : [[256, 256], [1024, 4096]];
  if (!QUICK) shapes.push([4096, 4096]);
  const K = 8, gs = 128;
  for (const [R, I] of shapes) {
    const pairs = randomPairs(K, I, gs);
    const theta = uniform((K * I) / 2, -0.6, 0.6);
    const s = `[${R}, ${I}] K${K} g${gs}`;
    for (const dt of ['f32', 'bf16'] as DType[]) {
      for (const dir of ['forward', 'inverse'] as const) {
        caseRun(g, `givens ${dir}`, s, dt, [''], [tolFor(dt)], () => [inp(randn(R * I), [R, I], dt), inp(pairs, [K, I], 'i32'), inp(theta, [K, I / 2])],
          (be, [x, p, th]) => [be.givens(x, p, th, gs, dir)]);
        caseRun(g, `givensBackward ${dir}`, s, dt, ['dx', 'dtheta'], [tolFor(dt), dt === 'f32' ? 1e-4 : 2e-2],
          () => [inp(randn(R * I), [R, I], dt), inp(randn(R * I), [R, I], dt), inp(pairs, [K, I], 'i32'), inp(theta, [K, I / 2])],
          (be, [x, dy, p, th]) => {
            const y = be.givens(x, p, th, gs, dir);
            const r = be.givensBackward(dy, y, p, th, gs, dir);
            be.free(y);
            return [r.dx, r.dtheta];
          });
        // wantTheta false (ParoQuant stage 2): dx alone (the cuda backend: the opposite direction's forward pass).
        caseRun(g, `givensBackward ${dir} dx only`, s, dt, ['dx'], [tolFor(dt)],
          () => [inp(randn(R * I), [R, I], dt), inp(randn(R * I), [R, I], dt), inp(pairs, [K, I], 'i32'), inp(theta, [K, I / 2])],
          (be, [x, dy, p, th]) => {
            const y = be.givens(x, p, th, gs, dir);
            const r = be.givensBackward(dy, y, p, th, gs, dir, false);
            be.free(y);
            if ('dtheta' in r) throw new Error('givensBackward(…, false) returned dθ');
            return [r.dx];
          });
        givensVersions(g, s, dt, dir, R, I, K, gs, pairs, theta);
      }
    }
    const grid = { bits: 4, groupSize: 128 };
    caseRun(g, 'fakeQuantMinMax', s, 'f32', ['rq', 'scale', 'zpf'], [1e-5, 1e-6, 1e-6], () => [inp(randn(R * I, 0.02), [R, I])], (be, [r]) => {
      const o = be.fakeQuantMinMax(r, grid);
      return [o.rq, o.scale, o.zpf];
    });
    caseRun(g, 'fakeQuantMinMaxBackward', s, 'f32', [''], [1e-4], () => [inp(randn(R * I, 0.02), [R, I]), inp(randn(R * I), [R, I])], (be, [r, d]) => {
      const o = be.fakeQuantMinMax(r, grid);
      const dr = be.fakeQuantMinMaxBackward(d, r, o.scale, o.zpf, grid);
      be.free(o.rq, o.scale, o.zpf);
      return [dr];
    });
    const nG = (R * I) / 128;
    caseRun(g, 'fakeQuantParams', s, 'f32', [''], [1e-5],
      () => [inp(randn(R * I, 0.02), [R, I]), inp(uniform(nG, 0.004, 0.008), [nG]), inp(uniform(nG, -9, -6), [nG])],
      (be, [r, sc, z]) => [be.fakeQuantParams(r, sc, z, grid)]);
    caseRun(g, 'fakeQuantParamsBackward', s, 'f32', ['dr', 'dscale'], [1e-6, 1e-4],
      () => [inp(randn(R * I), [R, I]), inp(randn(R * I, 0.02), [R, I]), inp(uniform(nG, 0.004, 0.008), [nG]), inp(uniform(nG, -9, -6), [nG])],
      (be, [d, r, sc, z]) => { const o = be.fakeQuantParamsBackward(d, r, sc, z, grid); return [o.dr, o.dscale]; });
    exportCodesCase(R, I, gs, 4, 'f32');
    dequantCodesCase(R, I, gs);
  }
  exportCodesCase(64, 192, 64, 3, 'f32');
  exportCodesCase(256, 512, 128, 4, 'bf16');
  dequantCodesCase(40, 192, 64);
  if (!QUICK) exportCodesCase(12288, 4096, 128, 4, 'f32');
  if (!QUICK) dequantCodesCase(4096, 12288, 128);
  paroFusedCases();
}

// ---- the fused ParoQuant transform (Backend.paroTransform / paroTransformBackward) ----

interface FusedProblem {
  O: number; I: number; K: number; gs: number;
  W: Float32Array; alpha: Float32Array; pairs: Int32Array; theta: Float32Array; scale: Float32Array; zpf: Float32Array;
  dWhat: Float32Array;
}

/**
 * Random W, α, θ and pairs; group 0 has θ = 0 and α = 1 and every row two equal maxima and three equal minima there
 * (exact ties of the stage-1 min/max path); stage-2 grids that clip some elements.
 */
function fusedProblem(O: number, I: number, K: number, gs: number): FusedProblem {
  const W = randn(O * I, 0.02);
  const alpha = uniform(I, 0.5, 1.5);
  const theta = uniform((K * I) / 2, -0.6, 0.6);
  alpha.fill(1, 0, gs);
  for (let l = 0; l < K; l++) theta.fill(0, l * (I / 2), l * (I / 2) + gs / 2);
  for (let o = 0; o < O; o++) {
    const b = o * I;
    W[b + 3] = W[b + 17] = 0.09;
    W[b + 5] = W[b + 20] = W[b + gs - 1] = -0.08;
  }
  const nG = (O * I) / gs;
  return {
    O, I, K, gs, W, alpha, pairs: randomPairs(K, I, gs), theta, scale: uniform(nG, 0.004, 0.008), zpf: uniform(nG, -9, -6),
    dWhat: randn(O * I),
  };
}

/** be without the fused ops: transform.ts runs the composition of the unfused ops on it. */
function withoutFused(be: Backend): Backend {
  return new Proxy(be, {
    get(target, key) {
      if (key === 'paroTransform' || key === 'paroTransformBackward') return undefined;
      const v: unknown = Reflect.get(target, key, target);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}

/** The linear of a problem on be; thetaKeep all 1, so transformBackward's dθ is the ops' unmasked dθ. */
function fusedLinear(be: Backend, p: FusedProblem): ParoLinear {
  const half = (p.K * p.I) / 2;
  return {
    outFeatures: p.O, inFeatures: p.I, W: be.fromHost(p.W, [p.O, p.I]), alpha: be.fromHost(p.alpha, [p.I]),
    theta: be.fromHost(p.theta, [p.K, p.I / 2]), pairs: be.fromHost(p.pairs, [p.K, p.I], 'i32'),
    thetaKeep: be.fromHost(new Float32Array(half).fill(1), [half]), krot: p.K,
    scale: be.fromHost(p.scale, [p.scale.length]), zpf: be.fromHost(p.zpf, [p.zpf.length]),
  };
}

type FusedOut = Partial<Record<'What' | 'scale' | 'zpf' | 'dtheta' | 'dalpha' | 'dW' | 'dscale', Float32Array>> & { fused: boolean };

/** transformForward + transformBackward on be; outputs on the host. */
function runTransform(be: Backend, lin: ParoLinear, grid: QuantGrid, stage: 1 | 2, outDtype: DType, dWhat: Tensor): FusedOut {
  const { What, saved } = transformForward(be, lin, grid, stage, true, outDtype);
  if (What.dtype !== outDtype) throw new Error(`transformForward returned ${What.dtype}, asked for ${outDtype}`);
  const out: FusedOut = { fused: saved!.fused, What: be.toHost(What) };
  if (stage === 1) {
    out.scale = be.toHost(saved!.scale);
    out.zpf = be.toHost(saved!.zpf);
  }
  const g = transformBackward(be, lin, grid, saved!, dWhat);
  freeTransformSaved(be, saved!);
  for (const k of ['dtheta', 'dalpha', 'dW', 'dscale'] as const) if (g[k]) out[k] = be.toHost(g[k]!);
  be.free(What, g.dtheta, g.dalpha, g.dW, g.dscale);
  return out;
}

/** One forward + backward on be, nothing brought to the host (timing). */
function transformCycle(be: Backend, lin: ParoLinear, grid: QuantGrid, stage: 1 | 2, outDtype: DType, dWhat: Tensor): () => void {
  return () => {
    const { What, saved } = transformForward(be, lin, grid, stage, true, outDtype);
    const g = transformBackward(be, lin, grid, saved!, dWhat);
    freeTransformSaved(be, saved!);
    be.free(What, g.dtheta, g.dalpha, g.dW, g.dscale);
  };
}

/** Order of a bf16 pattern (the upper half of an f32 holding a bf16 value) on the number line: ulp distances. */
function bf16Order(x: number): number {
  const b = new Uint32Array(Float32Array.of(x).buffer)[0] >>> 16;
  return b & 0x8000 ? -(b & 0x7fff) : b;
}

function rms(x: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i] * x[i];
  return Math.sqrt(s / Math.max(1, x.length));
}

/**
 * Ŵ in bf16 (values of f32 arrays) within maxUlp bf16 ulps of ref, except elements whose difference is below 2⁻⁹ of
 * ref's RMS (near-zero elements, where an ulp is tiny; a third of an ulp at typical magnitudes) and at most maxFar
 * others (quantizer rounding flips). The line also counts every element beyond maxUlp.
 */
function reportUlps(op: string, shape: string, ref: Float32Array, got: Float32Array, maxUlp: number, maxFar: number, ms: number, note = ''): void {
  const c = compare(ref, got);
  const floor = 2 ** -9 * rms(ref);
  let beyond = 0;
  let far = 0;
  let worst = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = Math.abs(bf16Order(ref[i]) - bf16Order(got[i]));
    if (d > maxUlp) {
      beyond++;
      if (Math.abs(ref[i] - got[i]) > floor) far++;
    }
    worst = Math.max(worst, d);
  }
  const ok = !c.bad && ref.length === got.length && far <= maxFar;
  rows.push({ group: 'paroquant', op, shape, dtype: 'bf16', ok, maxAbs: c.maxAbs, relFro: c.relFro, tol: maxUlp, ms, note: `${beyond} beyond ${maxUlp} ulp, ${far} of them above the floor` });
  log(`${ok ? 'OK  ' : 'FAIL'} ${op.padEnd(30)} ${shape.padEnd(34)} bf16  maxAbs=${fmt(c.maxAbs)} relFro=${fmt(c.relFro)} ` +
    `worst=${worst} ulp; ${beyond} of ${ref.length} beyond ${maxUlp} ulp, ${far} of them by more than ${fmt(floor)} (≤ ${maxFar} allowed) ` +
    `cuda=${ms.toFixed(3)} ms${note ? ` ${note}` : ''}`);
}

/** Ŵ of the transform in float64 on the host (spec §2.2, §4.1) and the size of one quantizer step at each element. */
function fusedForwardF64(p: FusedProblem, stage: 1 | 2): { What: Float64Array; step: Float64Array } {
  const { O, I, K, gs } = p;
  const P = gs / 2;
  const qmax = 15;
  const What = new Float64Array(O * I);
  const step = new Float64Array(O * I);
  const v = new Float64Array(gs);
  const rotate = (g: number, l: number, sign: number) => {
    for (let t = 0; t < P; t++) {
      const th = sign * p.theta[l * (I / 2) + g * P + t];
      const i = p.pairs[l * I + g * gs + 2 * t], j = p.pairs[l * I + g * gs + 2 * t + 1];
      const c = Math.cos(th), s = Math.sin(th), a = v[i], b = v[j];
      v[i] = c * a + s * b;
      v[j] = -s * a + c * b;
    }
  };
  const roundEven = (x: number) => {
    const r = Math.round(x);
    return Math.abs(x - Math.trunc(x)) === 0.5 && r % 2 !== 0 ? r - 1 : r;
  };
  for (let o = 0; o < O; o++) {
    for (let g = 0; g < I / gs; g++) {
      const base = o * I + g * gs;
      for (let e = 0; e < gs; e++) v[e] = p.W[base + e] * p.alpha[g * gs + e];
      for (let l = 0; l < K; l++) rotate(g, l, 1);
      let s: number, zf: number;
      if (stage === 1) {
        const mx = Math.max(...v), mn = Math.min(...v);
        s = Math.max(mx - mn, 1e-5) / qmax;
        zf = mn / s;
      } else {
        s = p.scale[o * (I / gs) + g];
        zf = p.zpf[o * (I / gs) + g];
      }
      const sc = Math.min(Math.max(s, 1e-5), 1e5);
      const z = Math.min(Math.max(-roundEven(zf), 0), qmax);
      for (let e = 0; e < gs; e++) v[e] = (Math.min(Math.max(roundEven(v[e] / sc) + z, 0), qmax) - z) * sc;
      for (let l = K - 1; l >= 0; l--) rotate(g, l, -1);
      for (let e = 0; e < gs; e++) {
        What[base + e] = v[e] / p.alpha[g * gs + e];
        step[base + e] = sc / p.alpha[g * gs + e];
      }
    }
  }
  return { What, step };
}

/**
 * The fused Ŵ against the float64 recomputation: every element within 1 bf16 ulp (bf16) or 1e-5 relative (f32) plus a
 * floor of 2⁻⁹ (bf16) or 1e-6 (f32) of the RMS, except quantizer rounding flips (an f32 R/s at a rounding boundary:
 * the element moves by about one step); flips are counted and at most 1 in 5000 elements may flip.
 */
function reportVsF64(op: string, shape: string, ref: { What: Float64Array; step: Float64Array }, got: Float32Array, outDtype: DType): void {
  let far = 0, flips = 0, num = 0, den = 0;
  // Absolute floors for near-zero elements (f32 cancellation in the rotations is ~1e-7 of the group's magnitude).
  const floor = (outDtype === 'bf16' ? 2 ** -9 : 1e-6) * rms(ref.What);
  for (let i = 0; i < got.length; i++) {
    const r = ref.What[i];
    const d = Math.abs(got[i] - r);
    const tol = (outDtype === 'bf16' ? 2 ** -7 : 1e-5) * Math.abs(r) + floor;
    den += r * r;
    if (d <= tol) {
      num += d * d;
      continue;
    }
    if (Math.abs(d - ref.step[i]) <= 0.05 * ref.step[i] + tol) flips++;
    else far++;
  }
  const relFro = Math.sqrt(num / den);
  const ok = far === 0 && flips <= Math.max(2, got.length / 5000);
  rows.push({ group: 'paroquant', op, shape, dtype: outDtype, ok, maxAbs: far, relFro, tol: 0, ms: 0, note: `${flips} rounding flips` });
  log(`${ok ? 'OK  ' : 'FAIL'} ${op.padEnd(30)} ${shape.padEnd(34)} ${outDtype.padEnd(5)} ${far} beyond tolerance, ${flips} quantizer ` +
    `rounding flips of ${got.length}; relFro (others)=${fmt(relFro)}`);
}

/**
 * Run fn with the backend under test on one backward path of the fused transform: 'recompute' (paroTransformBackward,
 * paroResidualDtype unset) or 'gram' (the Gram backward, src/paroquant/transform-gram.ts, with a bf16 residual).
 */
function onPath<T>(path: 'recompute' | 'gram', fn: () => T): T {
  const sw = gpu as Backend & { paroResidualDtype?: DType };
  const was = sw.paroResidualDtype;
  sw.paroResidualDtype = path === 'gram' ? 'bf16' : undefined;
  try {
    return fn();
  } finally {
    sw.paroResidualDtype = was;
  }
}

/**
 * paroTransform / paroTransformBackward of the backend under test (through transform.ts) against its own composition
 * of the unfused ops on the same inputs: Ŵ within 1 bf16 ulp (bf16 out) or 1e-5 (f32 out) except quantizer rounding
 * flips (≤ 1 in 10⁵ elements), the stage-1 grid within 1e-6, dθ and dα within 1e-4 (relative Frobenius), dW 2e-5,
 * dscale 1e-4; timings of both (forward + backward). With `host`, also against the float64 recomputation. path 'gram'
 * runs the Gram backward instead ('paroGram' lines): its residual E = Ŵ − W is stored in bf16, whose rounding (2⁻⁹ of
 * each element of E) enters the scale gradient, the α terms and the inverse layers' Gram matrix: dscale, dα and dθ
 * are held to 3e-3 (run 23, H100: 1.6–2.0e-3 on every shape; the same algorithm with an f32 residual agrees to 1e-5 on
 * the cpu, test/transform-gram.test.ts); dW is dŴ itself (2e-5 as before).
 */
function fusedCase(O: number, I: number, K: number, gs: number, stage: 1 | 2, outDtype: DType, host: boolean, path: 'recompute' | 'gram' = 'recompute'): void {
  const g = 'paroquant';
  const op = `${path === 'gram' ? 'paroGram' : 'paroFused'} s${stage} ${outDtype}`;
  const shape = `[${O}, ${I}] K${K} g${gs}`;
  if (ONLY && !`${g} ${op} ${shape}`.includes(ONLY)) return;
  // Both looked up (the coverage test records lookups): a backend without them skips the case.
  const hasOps = [gpu.paroTransform, gpu.paroTransformBackward].every((f) => f !== undefined) &&
    (path === 'recompute' || [gpu.groupGram, gpu.paroScaleGrad, gpu.paroMinMaxGram].every((f) => f !== undefined));
  if (!hasOps) {
    log(`SKIP ${op.padEnd(30)} ${shape.padEnd(34)} (the backend under test has no fused transform${path === 'gram' ? ' or no Gram ops' : ''})`);
    return;
  }
  onPath(path, () => fusedCaseOn(g, op, shape, O, I, K, gs, stage, outDtype, host, path));
}

function fusedCaseOn(g: string, op: string, shape: string, O: number, I: number, K: number, gs: number, stage: 1 | 2, outDtype: DType, host: boolean, path: 'recompute' | 'gram'): void {
  try {
    const p = fusedProblem(O, I, K, gs);
    const grid = { bits: 4, groupSize: gs };
    const lin = fusedLinear(gpu, p);
    const dW = gpu.fromHost(p.dWhat, [O, I]);
    const comp = withoutFused(gpu);
    const a = runTransform(comp, lin, grid, stage, outDtype, dW);
    const b = runTransform(gpu, lin, grid, stage, outDtype, dW);
    if (!b.fused) throw new Error('paroTransform declined this shape');
    const msFused = NO_TIME ? 0 : timeGpu(transformCycle(gpu, lin, grid, stage, outDtype, dW));
    const msComp = NO_TIME ? 0 : timeGpu(transformCycle(comp, lin, grid, stage, outDtype, dW));
    const note = `(composition ${msComp.toFixed(3)} ms, fwd+bwd)`;
    if (outDtype === 'bf16') reportUlps(`${op}.What`, shape, a.What!, b.What!, 1, Math.floor((O * I) / 1e5), msFused, note);
    else report(g, `${op}.What`, shape, outDtype, a.What!, b.What!, 1e-5, msFused, note);
    const tol: Record<string, number> = path === 'gram'
      ? { scale: 1e-6, zpf: 1e-6, dtheta: 3e-3, dalpha: 3e-3, dW: 2e-5, dscale: 3e-3 }
      : { scale: 1e-6, zpf: 1e-6, dtheta: 1e-4, dalpha: 1e-4, dW: 2e-5, dscale: 1e-4 };
    const names = stage === 1 ? ['scale', 'zpf', 'dtheta', 'dalpha'] : ['dW', 'dscale'];
    for (const n of names) {
      const k = n as keyof typeof tol & keyof FusedOut;
      const ra = a[k] as Float32Array | undefined, rb = b[k] as Float32Array | undefined;
      if (!ra || !rb) throw new Error(`${n} missing (composition ${!!ra}, fused ${!!rb})`);
      report(g, `${op}.${n}`, shape, 'f32', ra, rb, tol[n], msFused);
    }
    if (host) reportVsF64(`${op}.What vs float64`, shape, fusedForwardF64(p, stage), b.What!, outDtype);
    gpu.free(dW, lin.W, lin.alpha, lin.theta, lin.pairs, lin.thetaKeep, lin.scale, lin.zpf);
  } catch (e) {
    fail(g, op, shape, e);
  }
}

/** The fused backward twice on the same inputs: bit-identical outputs (the sums over rows have a fixed order). */
function fusedDeterminism(O: number, I: number, stage: 1 | 2): void {
  if (!gpu.paroTransform || !gpu.paroTransformBackward) return;
  const p = fusedProblem(O, I, 8, 128);
  const grid = { bits: 4, groupSize: 128 };
  twice('paroquant', `paroFused s${stage} backward`, `[${O}, ${I}] K8 g128`, 'f32',
    [inp(p.dWhat, [O, I]), inp(p.W, [O, I]), inp(p.alpha, [I]), inp(p.pairs, [8, I], 'i32'), inp(p.theta, [8, I / 2]),
      inp(p.scale, [p.scale.length]), inp(p.zpf, [p.zpf.length])],
    (be, [d, W, al, pr, th, sc, z]) => {
      const r = be.paroTransformBackward!(d, W, al, pr, th, grid, sc, z, stage);
      if (!r) throw new Error('paroTransformBackward declined');
      return stage === 1 ? [r.dtheta!, r.dalpha!] : [r.dW!, r.dscale!];
    });
}

function paroFusedCases(): void {
  // The cuda backend runs the fused ops unless PARO_FUSED_TRANSFORM=0: these cases switch them on explicitly and
  // restore the setting for the cases after them.
  const sw = gpu as Backend & { fusedTransform?: boolean };
  const was = sw.fusedTransform;
  if (was === false) sw.fusedTransform = true;
  try {
    paroFusedCasesOn();
  } finally {
    if (was === false) sw.fusedTransform = false;
  }
}

/**
 * paroTransformBackward given dŴ in bf16 (the block's weight gradients, read by the kernel as they are) against the
 * same values cast to f32 first: every output bit-identical (bf16 → f32 is exact; the kernel converts on load).
 */
function fusedBf16Grad(O: number, I: number, stage: 1 | 2): void {
  const g = 'paroquant', op = `paroFused s${stage} backward, dŴ bf16 = f32`, shape = `[${O}, ${I}] K8 g128`;
  if (ONLY && !`${g} ${op} ${shape}`.includes(ONLY)) return;
  if (!gpu.paroTransformBackward) return;
  try {
    const p = fusedProblem(O, I, 8, 128);
    const grid = { bits: 4, groupSize: 128 };
    const dB = gpu.fromHost(p.dWhat, [O, I], 'bf16');
    const dF = gpu.cast(dB, 'f32');
    const ins = [gpu.fromHost(p.W, [O, I]), gpu.fromHost(p.alpha, [I]), gpu.fromHost(p.pairs, [8, I], 'i32'),
      gpu.fromHost(p.theta, [8, I / 2]), gpu.fromHost(p.scale, [p.scale.length]), gpu.fromHost(p.zpf, [p.zpf.length])];
    const [W, al, pr, th, sc, z] = ins;
    const outs = (d: Tensor): Tensor[] => {
      const r = gpu.paroTransformBackward!(d, W, al, pr, th, grid, sc, z, stage);
      if (!r) throw new Error('paroTransformBackward declined');
      return stage === 1 ? [r.dtheta!, r.dalpha!] : [r.dW!, r.dscale!];
    };
    const a = outs(dF), b = outs(dB);
    const names = stage === 1 ? ['dtheta', 'dalpha'] : ['dW', 'dscale'];
    a.forEach((t, k) => reportExact(g, `${op} ${names[k]}`, shape, 'f32', gpu.toHost(t), gpu.toHost(b[k]), 0));
    gpu.free(...a, ...b, dB, dF, ...ins);
  } catch (e) {
    fail(g, op, shape, e);
  }
}

/** The Gram backward twice on the same inputs (through transform.ts): bit-identical gradients. */
function gramDeterminism(O: number, I: number, stage: 1 | 2): void {
  if (!gpu.paroTransform || !gpu.groupGram || !gpu.paroScaleGrad || !gpu.paroMinMaxGram) return;
  const p = fusedProblem(O, I, 8, 128);
  const grid = { bits: 4, groupSize: 128 };
  onPath('gram', () => twice('paroquant', `paroGram s${stage} backward`, `[${O}, ${I}] K8 g128`, 'f32',
    [inp(p.dWhat, [O, I], 'bf16')],
    (be, [d]) => {
      const lin = fusedLinear(be, p);
      const { What, saved } = transformForward(be, lin, grid, stage, true, 'bf16');
      if (!saved?.E) throw new Error('the forward kept no residual: the Gram backward did not run');
      const gr = transformBackward(be, lin, grid, saved, d);
      freeTransformSaved(be, saved);
      be.free(What, lin.W, lin.alpha, lin.theta, lin.pairs, lin.thetaKeep, lin.scale, lin.zpf);
      return stage === 1 ? [gr.dtheta!, gr.dalpha!] : [gr.dW!, gr.dscale!];
    }));
}

/** x rounded to bf16 values (nearest even), kept as f32. */
function bf16Values(x: Float32Array): Float32Array {
  const u = new Uint32Array(x.buffer, x.byteOffset, x.length);
  for (let i = 0; i < u.length; i++) u[i] = ((u[i] + 0x7fff + ((u[i] >>> 16) & 1)) >>> 16) << 16 >>> 0;
  return x;
}

/** Max/min masks for paroMinMaxGram: one bit each in most groups, several (ties) in every 5th, all ones in every 11th. */
function randomExtremes(nGroups: number, gs: number): Int32Array {
  const words = Math.ceil(gs / 32);
  const out = new Int32Array(nGroups * 2 * words);
  const set = (grp: number, side: number, e: number) => { out[grp * 2 * words + side * words + (e >> 5)] |= 1 << (e % 32); };
  for (let grp = 0; grp < nGroups; grp++) {
    if (grp % 11 === 0) {
      for (let e = 0; e < gs; e++) { set(grp, 0, e); set(grp, 1, e); }
      continue;
    }
    const ties = grp % 5 === 0 ? 3 : 1;
    for (let t = 0; t < ties; t++) { set(grp, 0, rng.nextInt(gs)); set(grp, 1, rng.nextInt(gs)); }
  }
  return out;
}

/** The Gram backward's three ops against the cpu backend's (float64 sums there). */
function gramOpCases(): void {
  const g = 'paroquant';
  const shapes: [number, number, number][] = SMALL ? [[77, 192, 64], [300, 384, 128]] : [[77, 192, 64], [300, 384, 128], [96, 96, 32], [1000, 4096, 128]];
  for (const [O, I, gs] of shapes) {
    const s = `[${O}, ${I}] g${gs}`;
    const nG = (O * I) / gs;
    const grid = { bits: 4, groupSize: gs };
    // f32 b holding bf16 values (the stage-1 W: a checkpoint's 16-bit weights): exact products on TF32 tensor cores.
    caseRun(g, 'groupGram bf16·f32, α', s, 'mixed', [''], [1e-5], () => [inp(randn(O * I), [O, I], 'bf16'), inp(bf16Values(randn(O * I, 0.02)), [O, I]), inp(uniform(I, 0.5, 1.5), [I])],
      (be, [a, b, al]) => [be.groupGram!(a, b, gs, al)]);
    caseRun(g, 'groupGram bf16·bf16', s, 'bf16', [''], [1e-5], () => [inp(randn(O * I), [O, I], 'bf16'), inp(randn(O * I, 1e-3), [O, I], 'bf16')],
      (be, [a, b]) => [be.groupGram!(a, b, gs)]);
    caseRun(g, 'groupGram f32·f32 (TF32)', s, 'f32', [''], [2e-3], () => [inp(randn(O * I), [O, I]), inp(randn(O * I), [O, I])],
      (be, [a, b]) => [be.groupGram!(a, b, gs)]);
    caseRun(g, 'paroScaleGrad', s, 'bf16', [''], [1e-5], () => [inp(randn(O * I), [O, I], 'bf16'), inp(randn(O * I, 1e-3), [O, I], 'bf16'), inp(uniform(nG, 0.004, 0.008), [nG])],
      (be, [d, e, sc]) => [be.paroScaleGrad!(d, e, sc, grid)]);
    const minMaxInputs = () => [inp(randn(nG), [nG]), inp(randomExtremes(nG, gs), [nG, 2 * Math.ceil(gs / 32)], 'i32'), inp(bf16Values(randn(O * I, 0.02)), [O, I]), inp(uniform(I, 0.5, 1.5), [I])];
    // 2e-3: the CUDA op runs groupGram's TF32 tensor cores on dense rows α·c, whose low 13 mantissa bits are lost.
    caseRun(g, 'paroMinMaxGram', s, 'f32', [''], [2e-3], minMaxInputs, (be, [S, ex, W, al]) => [be.paroMinMaxGram!(S, ex, W, al, grid)]);
  }
}

function paroFusedCasesOn(): void {
  // Stage 1 and 2, K 8 and 1, groups of 128 and 64, Ŵ in bf16 (the GEMMs' dtype) and f32.
  fusedCase(64, 256, 8, 128, 1, 'bf16', true);
  fusedCase(64, 256, 8, 128, 2, 'f32', true);
  for (const stage of [1, 2] as const) fusedBf16Grad(256, 1024, stage);
  // The Gram backward (the cuda default for a 16-bit Ŵ; an f32 Ŵ keeps the recomputing backward) on the same problems,
  // and its ops one by one.
  if (gpu.groupGram && gpu.paroScaleGrad && gpu.paroMinMaxGram) {
    for (const stage of [1, 2] as const) fusedCase(64, 256, 8, 128, stage, 'bf16', false, 'gram');
    gramOpCases();
    if (!SMALL) {
      for (const stage of [1, 2] as const) {
        fusedCase(256, 1024, 8, 128, stage, 'bf16', false, 'gram');
        fusedCase(256, 1024, 8, 64, stage, 'bf16', false, 'gram');
        fusedCase(96, 384, 3, 32, stage, 'bf16', false, 'gram');
        fusedCase(1024, 4096, 8, 128, stage, 'bf16', false, 'gram');
        if (!QUICK) fusedCase(4096, 12288, 8, 128, stage, 'bf16', false, 'gram');
        gramDeterminism(1024, 4096, stage);
      }
    }
  }
  if (SMALL) return;
  for (const stage of [1, 2] as const) {
    fusedCase(256, 1024, 8, 128, stage, 'bf16', true);
    fusedCase(256, 1024, 8, 128, stage, 'f32', false);
    fusedCase(128, 512, 1, 128, stage, 'bf16', true);
    fusedCase(256, 1024, 8, 64, stage, 'bf16', true);
    fusedCase(96, 384, 3, 32, stage, 'f32', false);
    fusedCase(1024, 4096, 8, 128, stage, 'bf16', false);
    if (!QUICK) fusedCase(4096, 4096, 8, 128, stage, 'bf16', false);
    if (!QUICK) fusedCase(4096, 12288, 8, 128, stage, 'bf16', false);
    fusedDeterminism(1024, 4096, stage);
  }
}

/**
 * Inputs of quantizePacked, as the export gives them (f16-valued scales and zero points) plus the cases where rounding
 * and clamping decide: every 4th group has a power-of-two scale with r = (k + ½)·s exactly (ties, both signs, codes
 * from below 0 to above qmax) and a tie zero point −(m + ½); the others random. Extremes: scale 0, an f16 subnormal,
 * negative, NaN or 65504; zpf NaN or ±65504; elements ±0, ±Inf, NaN, ±3e38 and quotients at the f32 integer limit.
 */
function exportCodesInputs(O: number, I: number, gs: number, dt: DType): In[] {
  const nG = (O * I) / gs;
  const scale = new Float32Array(nG);
  const zpf = new Float32Array(nG);
  const r = new Float32Array(O * I);
  for (let grp = 0; grp < nG; grp++) {
    const tie = grp % 4 === 0;
    let s = tie ? 2 ** -(4 + rng.nextInt(8)) : 0.002 + 0.02 * rng.nextFloat();
    let z = tie ? -(rng.nextInt(16) + 0.5) : -16 * rng.nextFloat();
    if (grp % 53 === 7) s = [0, 2 ** -24, -s, NaN, 65504][rng.nextInt(5)];
    if (grp % 59 === 11) z = [NaN, 65504, -65504, -0][rng.nextInt(4)];
    scale[grp] = s;
    zpf[grp] = z;
    for (let e = grp * gs; e < (grp + 1) * gs; e++) {
      r[e] = tie ? (rng.nextInt(40) - 20 + 0.5) * s : rng.normal() * 6 * s;
      if (rng.nextInt(61) === 0) r[e] = [0, -0, Infinity, -Infinity, NaN, 3e38, -3e38, 2 ** 24 * s, -(2 ** 24 + 2) * s][rng.nextInt(9)];
    }
  }
  roundToF16InPlace(scale);
  roundToF16InPlace(zpf);
  return [inp(r, [O, I], dt), inp(scale, [nG]), inp(zpf, [nG])];
}

/** quantizePacked on both backends: the packed i32 words must be equal bit for bit (the checkpoint bytes). */
function exportCodesCase(O: number, I: number, gs: number, bits: number, dt: DType): void {
  const g = 'paroquant';
  const op = 'quantizePacked exact';
  const shape = `[${O}, ${I}] g${gs} b${bits}`;
  if (ONLY && !`${g} ${op} ${shape}`.includes(ONLY)) return;
  try {
    const inputs = exportCodesInputs(O, I, gs, dt);
    const grid = { bits, groupSize: gs };
    const run = (be: Backend, ts: Tensor[]) => be.quantizePacked(ts[0], ts[1], ts[2], grid, AWQ_ORDER);
    const gt = inputs.map((i) => gpu.fromHost(i.data, i.shape, i.dtype));
    const out = run(gpu, gt);
    const got = gpu.toHostInt(out);
    gpu.free(out);
    const ms = NO_TIME ? 0 : timeGpu(() => gpu.free(run(gpu, gt)));
    gpu.free(...gt);
    if (NO_REF) {
      if (!NO_TIME) log(`TIME ${op.padEnd(30)} ${shape.padEnd(34)} ${dt.padEnd(5)} cuda=${ms.toFixed(3)} ms`);
      return;
    }
    const ct = inputs.map((i) => cpu.fromHost(i.data, i.shape, i.dtype));
    const ref = cpu.toHostInt(run(cpu, ct));
    cpu.free(...ct);
    reportExact(g, op, shape, dt, ref, got, ms);
  } catch (e) {
    fail(g, op, shape, e);
  }
}

/** f32 values as bit patterns with every NaN as one pattern (the kernels' NaN payloads may differ), ±0 distinct. */
function f32Bits(x: Float32Array): Uint32Array {
  const u = new Uint32Array(x.length);
  const v = new Uint32Array(x.buffer, x.byteOffset, x.length);
  for (let k = 0; k < x.length; k++) u[k] = Number.isNaN(x[k]) ? 0x7fc00000 : v[k];
  return u;
}

/**
 * dequantizePacked on both backends, bit for bit: random words (every nibble), zero points 0..15, f16-valued scales
 * with 0, −0, ±Inf, NaN, subnormals and negatives among them.
 */
function dequantCodesCase(O: number, I: number, gs: number): void {
  const g = 'paroquant';
  const op = 'dequantizePacked exact';
  const shape = `[${O}, ${I}] g${gs}`;
  if (ONLY && !`${g} ${op} ${shape}`.includes(ONLY)) return;
  try {
    const nG = (O * I) / gs;
    const words = Int32Array.from({ length: (O * I) / 8 }, () => rng.nextInt(2 ** 32) | 0);
    const zeros = Int32Array.from({ length: nG }, () => rng.nextInt(16));
    const specials = [0, -0, Infinity, -Infinity, NaN, 2 ** -24, -0.0123, 65504];
    const scale = Float32Array.from({ length: nG }, () => (rng.nextInt(13) === 0 ? specials[rng.nextInt(specials.length)] : 0.001 + 0.02 * rng.nextFloat()));
    roundToF16InPlace(scale);
    const inputs = [inp(words, [I, O / 8], 'i32'), inp(zeros, [nG], 'i32'), inp(scale, [nG])];
    const run = (be: Backend, ts: Tensor[]) => be.dequantizePacked(ts[0], ts[1], ts[2], gs, AWQ_ORDER);
    const gt = inputs.map((i) => gpu.fromHost(i.data, i.shape, i.dtype));
    const out = run(gpu, gt);
    const got = gpu.toHost(out);
    gpu.free(out);
    const ms = NO_TIME ? 0 : timeGpu(() => gpu.free(run(gpu, gt)));
    gpu.free(...gt);
    if (NO_REF) {
      if (!NO_TIME) log(`TIME ${op.padEnd(30)} ${shape.padEnd(34)} ${'i32'.padEnd(5)} cuda=${ms.toFixed(3)} ms`);
      return;
    }
    const ct = inputs.map((i) => cpu.fromHost(i.data, i.shape, i.dtype));
    const ref = cpu.toHost(run(cpu, ct));
    cpu.free(...ct);
    reportExact(g, op, shape, 'i32', f32Bits(ref), f32Bits(got), ms);
  } catch (e) {
    fail(g, op, shape, e);
  }
}

function groupOptim(): void {
  const g = 'optim';
  // 1001: not a multiple of 8, so smoothL1's element-wise path (the others take the 16-byte one).
  for (const n of SMALL ? [1000] : [1000, 1001, 1 << 22]) {
    for (const dt of ['f32', 'bf16'] as DType[]) {
      caseRun(g, 'smoothL1', `[${n}]`, dt, ['loss', 'dpred'], [1e-6, tolFor(dt, 1e-6)], () => [inp(randn(n, 1.5), [n], dt), inp(randn(n), [n], dt)], (be, [p, t]) => {
        const r = be.smoothL1(p, t, true);
        return [Ft(be, r.loss), r.dpred as Tensor];
      });
    }
    const h = { lr: 0.05, beta1: 0.9, beta2: 0.95, eps: 1e-10, weightDecay: 0.01, step: 1 };
    caseRun(g, 'adamw ×3 steps', `[${n}]`, 'f32', ['param', 'm', 'v'], [1e-5, 1e-5, 1e-5],
      () => [inp(randn(n), [n]), inp(randn(n, 0.1), [n]), inp(randn(n, 0.1), [n]), inp(randn(n, 0.1), [n])],
      (be, [p0, g1, g2, g3]) => {
        const p = be.copy(p0);
        const m = be.zeros([n]);
        const v = be.zeros([n]);
        [g1, g2, g3].forEach((gr, k) => be.adamw(p, gr, m, v, { ...h, step: k + 1 }));
        return [p, m, v];
      }, false);
  }
}

/** Run fn twice on the backend under test with the same inputs: every output must be bit-identical. */
function twice(group: string, op: string, shape: string, dtype: string, inputs: In[], fn: OpFn): void {
  if (ONLY && !`${group} ${op} ${shape}`.includes(ONLY)) return;
  try {
    const gt = inputs.map((i) => gpu.fromHost(i.data, i.shape, i.dtype));
    const o1 = fn(gpu, gt);
    const o2 = fn(gpu, gt);
    o1.forEach((t, k) => reportExact(group, `${op} run-to-run #${k}`, shape, dtype, gpu.toHost(t), gpu.toHost(o2[k]), 0));
    gpu.free(...o1, ...o2, ...gt);
  } catch (e) {
    fail(group, op, shape, e);
  }
}

function groupDeterminism(): void {
  const g = 'determinism';
  const R = SMALL ? 64 : 1024, I = SMALL ? 256 : 4096, K = 8;
  const pairs = randomPairs(K, I, 128);
  twice(g, 'givensBackward', `[${R}, ${I}] K8`, 'f32', [inp(randn(R * I), [R, I]), inp(randn(R * I), [R, I]), inp(pairs, [K, I], 'i32'),
    inp(uniform((K * I) / 2, -0.6, 0.6), [K, I / 2])], (be, [x, dy, p, th]) => {
    const y = be.givens(x, p, th, 128, 'forward');
    const r = be.givensBackward(dy, y, p, th, 128, 'forward');
    be.free(y);
    return [r.dx, r.dtheta];
  });
  if (SMALL) return;
  const shape: AttentionShape = { batch: 1, tq: 512, tk: 512, heads: 32, kvHeads: 8, headDim: 128 };
  const mask: AttentionMask = { kind: 'causal', qOffset: 0 };
  twice(g, 'attentionBackward', 'b1 T512 h32/8 d128', 'bf16', [inp(randn(512 * 4096), [512, 4096], 'bf16'), inp(randn(512 * 1024), [512, 1024], 'bf16'),
    inp(randn(512 * 1024), [512, 1024], 'bf16'), inp(randn(512 * 4096), [512, 4096], 'bf16')], (be, [q, k, v, dout]) => {
    const f = be.attention(q, k, v, shape, mask);
    const r = be.attentionBackward(dout, q, k, v, f.out, f.lse, shape, mask);
    return [f.out, f.lse, r.dq, r.dk, r.dv];
  });
  twice(g, 'rmsnormBackward', '[2048, 4096]', 'bf16', [inp(randn(2048 * 4096), [2048, 4096], 'bf16'), inp(randn(2048 * 4096), [2048, 4096], 'bf16'),
    inp(uniform(4096, 0.5, 1.5), [4096], 'bf16')], (be, [dy, x, w]) => {
    const f = be.rmsnorm(x, w, 1e-6);
    const r = be.rmsnormBackward(dy, x, w, f.rstd);
    return [r.dx, r.dw];
  });
  twice(g, 'dotCols/sumSquares', '[4096, 4096]', 'f32', [inp(randn(4096 * 4096), [4096, 4096]), inp(randn(4096 * 4096), [4096, 4096])],
    (be, [a, b]) => [be.dotCols(a, b), Ft(be, be.sumSquares(a))]);
  twice(g, 'fakeQuantParamsBackward', '[4096, 4096]', 'f32', [inp(randn(4096 * 4096), [4096, 4096]), inp(randn(4096 * 4096, 0.02), [4096, 4096]),
    inp(uniform(131072, 0.004, 0.008), [131072]), inp(uniform(131072, -9, -6), [131072])],
    (be, [d, r, sc, z]) => { const o = be.fakeQuantParamsBackward(d, r, sc, z, { bits: 4, groupSize: 128 }); return [o.dr, o.dscale]; });
  twice(g, 'matmul weight grad', '[4096x512]ᵀ·[4096x4096]', 'bf16', [inp(randn(4096 * 512), [4096, 512], 'bf16'), inp(randn(4096 * 4096), [4096, 4096], 'bf16')],
    (be, [x, dy]) => [be.matmul(x, dy, { transA: true })]);
}

export const GROUPS: Record<string, () => void> = {
  memory: groupMemory, matmul: groupMatmul, elementwise: groupElementwise, reduce: groupReduce, norm: groupNorm,
  rope: groupRope, attention: groupAttention, crossentropy: groupCrossEntropy, paroquant: groupParo, optim: groupOptim,
  determinism: groupDeterminism,
};

