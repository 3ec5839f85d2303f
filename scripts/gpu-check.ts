// Backend-ops check of the CUDA backend against the cpu backend (in the spirit of ggml's test-backend-ops): the case
// table of scripts/backend-ops.ts (every Backend method on fresh random inputs of tiny-qwen3 and Qwen3-8B sizes), one
// line per op/shape/output with OK/FAIL, max abs error, relative Frobenius error, tolerance and the CUDA time per
// call. Exits 1 on any FAIL.
//
//   node .gpu/gpu-check.mjs [--quick] [--only <substring>] [--group <name>] [--isolate] [--bench] [--no-check]
//                           [--groups a,b] [--parallel] [--no-time] [--no-ref] [--seed N] [--json <file>]
//                           [--self-test-cpu]
//
// --isolate runs each group in its own process (a CUDA fault then spoils one group only); --bench adds the 8192³
// BF16 GEMM through the Backend vs a direct cuBLAS call, and attention timings; --no-check skips the comparisons;
// --no-time skips the per-op timings; --no-ref times the CUDA ops without the cpu reference (TIME lines);
// --parallel (with --isolate) runs the groups' processes concurrently; --self-test-cpu checks the harness itself with
// a second cpu backend (test/backend-ops.test.ts runs that self-test, small shapes, under vitest).
// --group collective (or --groups ...,collective) runs the single-rank NCCL check (scripts/collective-check.ts): only
// when named, since it needs libnccl.so.2.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import type { Backend } from '../src/engine/backend.js';
import { CpuBackend } from '../src/engine/cpu/backend.js';
import type { CudaBackend } from '../src/engine/cuda/backend.js';
import { cudaAvailability, loadCudaBackend } from '../src/engine/cuda/availability.js';
import { GROUPS, blockAttentionInputs, randomPairs, runChecks, timeOn, withEnv, withEnvs, type Row } from './backend-ops.js';
import { collectiveChecks } from './collective-check.js';
import { applyLinear, denseLinear } from '../src/model/layer-ops.js';

const argv = process.argv.slice(2);
const flag = (n: string) => argv.includes(n);
const opt = (n: string) => {
  const i = argv.indexOf(n);
  return i >= 0 ? argv[i + 1] : undefined;
};
const GROUP = opt('--group');
const GROUP_LIST = opt('--groups')?.split(',');
// A fixed default seed makes a failure reproducible; --seed N draws other inputs.
const SEED = Number(opt('--seed') ?? 20260101);

const rows: Row[] = [];
/** The backend under test: the CUDA backend, or a second cpu backend with --self-test-cpu (harness check). */
let gpu: Backend;
let cuda: CudaBackend | null = null;

function fmt(x: number): string {
  return Number.isFinite(x) ? x.toExponential(2) : String(x);
}

function fail(group: string, op: string, shape: string, e: unknown): void {
  rows.push({ group, op, shape, dtype: '-', ok: false, maxAbs: NaN, relFro: NaN, tol: 0, ms: 0, note: String(e) });
  console.log(`FAIL ${op.padEnd(30)} ${shape.padEnd(34)} error: ${(e as Error)?.stack ?? e}`);
}

function timeGpu(fn: () => void, targetMs = 60): number {
  return timeOn(gpu, fn, targetMs);
}

// ---- benchmarks ----
function benchmarks(gpu: CudaBackend): void {
  console.log('\n# benchmarks (CUDA event / host-synchronised timings, medians)');
  const n = 8192;
  const a = gpu.zeros([n, n], 'bf16');
  const b = gpu.zeros([n, n], 'bf16');
  gpu.fillRandom(a, 1);
  gpu.fillRandom(b, 2);
  const ms = timeGpu(() => gpu.free(gpu.matmul(a, b, { transB: true })), 400);
  const flops = 2 * n ** 3;
  const direct = gpu.benchCublasBf16(n, n, n, 20);
  console.log(`gemm 8192³ bf16 (Backend.matmul, NT): ${ms.toFixed(3)} ms = ${(flops / ms / 1e9).toFixed(0)} TFLOP/s`);
  console.log(`gemm 8192³ bf16 (direct cuBLAS, same process): ${direct.toFixed(3)} ms = ${(flops / direct / 1e9).toFixed(0)} TFLOP/s`);
  gpu.free(a, b);
  linearBench(gpu);
  givensBench(gpu);
  rows.push({ group: 'bench', op: 'gemm 8192³ Backend', shape: '', dtype: 'bf16', ok: true, maxAbs: 0, relFro: 0, tol: 0, ms, note: `${(flops / ms / 1e9).toFixed(0)} TFLOP/s` });
  rows.push({ group: 'bench', op: 'gemm 8192³ cuBLAS direct', shape: '', dtype: 'bf16', ok: true, maxAbs: 0, relFro: 0, tol: 0, ms: direct, note: `${(flops / direct / 1e9).toFixed(0)} TFLOP/s` });
  // Batch 1 (the grid alone is short of an H100 at T 2048) and batch 16, the ParoQuant block step's attention call.
  for (const [B, T] of [[1, 2048], [1, 4096], [16, 2048]]) {
    const { shape, mask, q, k, v, dout } = blockAttentionInputs(gpu, B, T);
    const fl = (B * 4 * T * T * 32 * 128) / 2; // causal: half the score matrix
    const bt = B > 1 ? ` b${B}` : '';
    // Every tensor-core kernel version in the same run (PARO_ATTN_KERNEL, read by the addon at each call): v4 (v3's
    // wgmma kernels with TMA loads; sm_90a; its backward where the grid has 4 waves, else v2's) is the default at these
    // sizes, v1 to v3 before it; v4p is v4 with the forward's warpgroups ping-ponging (v4's backward), v5 v4 with a
    // persistent forward and dQ kernel (one CTA per SM streaming its work items' tiles), v6 v5 with dQ inside the
    // dK/dV kernel (five products instead of seven; atomics).
    const versions = ['v1', 'v2', 'v3', 'v4', 'v4p', 'v5', 'v6'] as const;
    const ms = Object.fromEntries(versions.map((v) => [v, { fwd: 0, bwd: 0 }])) as Record<(typeof versions)[number], { fwd: number; bwd: number }>;
    const timeBwd = (): number => {
      const f = gpu.attention(q, k, v, shape, mask);
      const t = timeGpu(() => { const r = gpu.attentionBackward(dout, q, k, v, f.out, f.lse, shape, mask); gpu.free(r.dq, r.dk, r.dv); });
      gpu.free(f.out, f.lse);
      return t;
    };
    const bwdRow = (label: string, bwdMs: number) =>
      rows.push({ group: 'bench', op: `attention bwd T=${T}${bt} [${label}]`, shape: 'h32/8 d128 causal', dtype: 'bf16', ok: true, maxAbs: 0, relFro: 0, tol: 0, ms: bwdMs, note: `${((2.5 * fl) / bwdMs / 1e9).toFixed(0)} TFLOP/s` });
    for (const version of versions) {
      withEnv('PARO_ATTN_KERNEL', version, () => {
        const fwdMs = timeGpu(() => { const r = gpu.attention(q, k, v, shape, mask); gpu.free(r.out, r.lse); });
        const bwdMs = timeBwd();
        ms[version] = { fwd: fwdMs, bwd: bwdMs };
        console.log(`attention causal T=${T}${bt} h32/8 d128 [${version}]: fwd ${fwdMs.toFixed(3)} ms = ${(fl / fwdMs / 1e9).toFixed(0)} TFLOP/s; ` +
          `bwd ${bwdMs.toFixed(3)} ms = ${((2.5 * fl) / bwdMs / 1e9).toFixed(0)} TFLOP/s (2.5× fwd FLOPs)`);
        rows.push({ group: 'bench', op: `attention fwd T=${T}${bt} [${version}]`, shape: 'h32/8 d128 causal', dtype: 'bf16', ok: true, maxAbs: 0, relFro: 0, tol: 0, ms: fwdMs, note: `${(fl / fwdMs / 1e9).toFixed(0)} TFLOP/s` });
        bwdRow(version, bwdMs);
      });
    }
    // Versions 4 and 5's backward A/B forms in the same process (k_attention.cu's switches): serial dQ and/or dK/dV
    // steps (PARO_ATTN_SERIAL; version 5 has its own dQ kernel) and, on the batch-1 grids, the wgmma backward instead
    // of version 2's (PARO_ATTN_BWD_WAVES=0: per KV head; for version 5 at T 2048 =3: per query head, 512 CTAs, which
    // it takes by default at T 4096).
    const forms: ['v4' | 'v5', string, Record<string, string>][] = B > 1
      ? [['v4', 'serial dq', { PARO_ATTN_SERIAL: 'dq' }], ['v4', 'serial dkv', { PARO_ATTN_SERIAL: 'dkv' }],
        ['v4', 'serial dq,dkv', { PARO_ATTN_SERIAL: 'dq,dkv' }], ['v5', 'serial dq', { PARO_ATTN_SERIAL: 'dq' }]]
      : [['v4', 'waves 0', { PARO_ATTN_BWD_WAVES: '0' }], ['v4', 'waves 0, serial dq,dkv', { PARO_ATTN_BWD_WAVES: '0', PARO_ATTN_SERIAL: 'dq,dkv' }],
        ['v5', 'waves 0', { PARO_ATTN_BWD_WAVES: '0' }], ['v5', 'waves 3', { PARO_ATTN_BWD_WAVES: '3' }]];
    for (const [version, label, env] of forms) {
      const bwdMs = withEnvs({ PARO_ATTN_KERNEL: version, ...env }, timeBwd);
      console.log(`attention causal T=${T}${bt} h32/8 d128 [${version}, ${label}]: bwd ${bwdMs.toFixed(3)} ms = ` +
        `${((2.5 * fl) / bwdMs / 1e9).toFixed(0)} TFLOP/s (${version} as it is: ${ms[version].bwd.toFixed(3)} ms)`);
      bwdRow(`${version}, ${label}`, bwdMs);
    }
    console.log(`attention causal T=${T}${bt}: v2 / v1 speed-up fwd ${(ms.v1.fwd / ms.v2.fwd).toFixed(2)}×, bwd ${(ms.v1.bwd / ms.v2.bwd).toFixed(2)}×; ` +
      `v3 (wgmma) / v2 fwd ${(ms.v2.fwd / ms.v3.fwd).toFixed(2)}×, bwd ${(ms.v2.bwd / ms.v3.bwd).toFixed(2)}×; ` +
      `v4 (TMA) / v3 fwd ${(ms.v3.fwd / ms.v4.fwd).toFixed(2)}×, v4p (ping-pong) / v3 fwd ${(ms.v3.fwd / ms.v4p.fwd).toFixed(2)}×; ` +
      `v5 (persistent) / v4 fwd ${(ms.v4.fwd / ms.v5.fwd).toFixed(2)}×, bwd ${(ms.v4.bwd / ms.v5.bwd).toFixed(2)}×; ` +
      `v6 (fused dQ) / v5 bwd ${(ms.v5.bwd / ms.v6.bwd).toFixed(2)}×`);
    gpu.free(q, k, v, dout);
  }
  const m = gpu.memStats();
  console.log(`allocator: peak ${(m.peakBytes / 2 ** 30).toFixed(2)} GiB live, ${m.mallocs} cudaMalloc calls, ${m.hits} cache hits`);
}

/**
 * A linear at compute dtype f32 vs bf16 (model/layer-ops.ts), an 8B gate_proj over 3072 rows: the f32 path copies the
 * bf16 weight to f32 and runs an f32 GEMM on every call; the bf16 path casts the activation and runs bf16 → f32.
 */
function linearBench(gpu: CudaBackend): void {
  const [M, K, N] = [3072, 4096, 12288];
  const x = gpu.zeros([M, K], 'f32');
  const w = gpu.zeros([N, K], 'bf16');
  gpu.fillRandom(x, 3);
  gpu.fillRandom(w, 4);
  const lin = denseLinear(w);
  const flops = 2 * M * N * K;
  for (const cd of ['f32', 'bf16'] as const) {
    const ms = timeGpu(() => gpu.free(applyLinear(gpu, x, lin, cd)), 400);
    const note = `${(flops / ms / 1e9).toFixed(0)} TFLOP/s`;
    console.log(`linear [${M}x${K}]·[${N}x${K}]ᵀ (8B gate_proj), compute dtype ${cd}: ${ms.toFixed(3)} ms = ${note}`);
    rows.push({ group: 'bench', op: `linear compute dtype ${cd}`, shape: `[${M}x${K}]·[${N}x${K}]ᵀ`, dtype: cd, ok: true, maxAbs: 0, relFro: 0, tol: 0, ms, note });
  }
  gpu.free(x, w);
}

/**
 * The Givens kernels (ParoQuant, K 8, group 128) v1 and v2 side by side (PARO_GIVENS_KERNEL, read by the addon
 * at each call): a Qwen3-8B q/o_proj-sized and a gate/up_proj-sized weight; effective bandwidth = bytes read and written once
 * (forward x → y, backward y and dy → dx).
 */
function givensBench(gpu: CudaBackend): void {
  const K = 8, gs = 128;
  for (const [R, I] of [[4096, 4096], [12288, 4096]]) {
    const pairs = gpu.fromHost(randomPairs(K, I, gs), [K, I], 'i32');
    const theta = gpu.fromHost(Float32Array.from({ length: (K * I) / 2 }, (_, k) => 0.6 * Math.sin(k)), [K, I / 2]);
    for (const dt of ['f32', 'bf16'] as const) {
      const x = gpu.zeros([R, I], dt);
      const dy = gpu.zeros([R, I], dt);
      gpu.fillRandom(x, 21);
      gpu.fillRandom(dy, 22);
      const y = gpu.givens(x, pairs, theta, gs, 'forward');
      const bytes = R * I * (dt === 'f32' ? 4 : 2);
      const ms: Record<string, number> = {};
      for (const version of ['v1', 'v2'] as const) {
        const [fwd, bwd] = withEnv('PARO_GIVENS_KERNEL', version, () => [
          timeGpu(() => gpu.free(gpu.givens(x, pairs, theta, gs, 'forward'))),
          timeGpu(() => {
            const r = gpu.givensBackward(dy, y, pairs, theta, gs, 'forward');
            gpu.free(r.dx, r.dtheta);
          }),
        ]);
        ms[`${version}.fwd`] = fwd;
        ms[`${version}.bwd`] = bwd;
        const fwdNote = `${((2 * bytes) / fwd / 1e9).toFixed(2)} TB/s`;
        const bwdNote = `${((3 * bytes) / bwd / 1e9).toFixed(2)} TB/s`;
        const shape = `[${R}, ${I}] K${K} g${gs}`;
        rows.push({ group: 'bench', op: `givens fwd [${version}]`, shape, dtype: dt, ok: true, maxAbs: 0, relFro: 0, tol: 0, ms: fwd, note: fwdNote });
        console.log(`givens [${R}, ${I}] K${K} g${gs} ${dt} [${version}]: fwd ${fwd.toFixed(3)} ms = ${fwdNote}; bwd ${bwd.toFixed(3)} ms = ${bwdNote}`);
        rows.push({ group: 'bench', op: `givens bwd [${version}]`, shape, dtype: dt, ok: true, maxAbs: 0, relFro: 0, tol: 0, ms: bwd, note: bwdNote });
      }
      console.log(`givens [${R}, ${I}] ${dt}: speed-up of v2 over v1 fwd ${(ms['v1.fwd'] / ms['v2.fwd']).toFixed(2)}×, ` +
        `bwd ${(ms['v1.bwd'] / ms['v2.bwd']).toFixed(2)}×`);
      gpu.free(x, dy, y);
    }
    gpu.free(pairs, theta);
  }
}

function summary(): number {
  const failed = rows.filter((r) => !r.ok);
  const checked = rows.filter((r) => r.group !== 'bench');
  console.log(`\n${checked.length - failed.length}/${checked.length} OK${failed.length ? `, ${failed.length} FAIL:` : ''}`);
  for (const f of failed) console.log(`  FAIL ${f.group} ${f.op} ${f.shape} ${f.dtype} relFro=${fmt(f.relFro)}${f.note ? ` ${f.note.slice(0, 200)}` : ''}`);
  const json = opt('--json');
  if (json) fs.writeFileSync(json, JSON.stringify({ device: gpu?.device, rows }, null, 1));
  return failed.length ? 1 : 0;
}

async function main(): Promise<number> {
  const selfTest = flag('--self-test-cpu');
  const avail = selfTest ? { available: true as const, cublasPath: '-', code: undefined, reason: undefined } : cudaAvailability();
  if (!avail.available) {
    console.log(`cuda unavailable (${avail.code}): ${avail.reason}`);
    return 1;
  }
  if (flag('--isolate') && !GROUP) {
    // One child process per group: a sticky CUDA fault spoils only its own group.
    let worst = 0;
    const jsonAt = argv.indexOf('--json');
    const extra = argv.filter((x, i) => x !== '--isolate' && x !== '--bench' && !(jsonAt >= 0 && (i === jsonAt || i === jsonAt + 1)));
    const json = opt('--json');
    const names = [...Object.keys(GROUPS), 'collective'].filter((n) => (GROUP_LIST ? GROUP_LIST.includes(n) : n !== 'collective'));
    const childArgs = (name: string) => [process.argv[1], ...extra, ...(json ? ['--json', json.replace(/\.json$/, '') + `.${name}.json`] : []), '--group', name];
    const note = (name: string, status: number | null, signal: string | null) => {
      if (status !== 0) worst = 1;
      if (status !== 0 && status !== 1) console.log(`FAIL group ${name}: child exited with ${status ?? signal}`);
    };
    if (flag('--parallel')) {
      // All groups at once (the cpu references dominate the time; timings are then perturbed: use --no-time). Each
      // group's output is printed whole as soon as its process ends, so a run cut short by a time limit keeps the
      // groups that finished.
      await Promise.all(names.map((name) => new Promise<void>((resolve) => {
        const child = spawn(process.execPath, childArgs(name), { env: process.env });
        let text = '';
        child.stdout.on('data', (d) => { text += d; });
        child.stderr.on('data', (d) => { text += d; });
        child.on('close', (status, signal) => {
          process.stdout.write(text);
          note(name, status, signal);
          resolve();
        });
      })));
    } else {
      for (const name of names) {
        const r = spawnSync(process.execPath, childArgs(name), { stdio: 'inherit', env: process.env });
        note(name, r.status, r.signal);
      }
    }
    if (flag('--bench')) {
      const own = json ? ['--json', json.replace(/\.json$/, '') + '.bench.json'] : [];
      const r = spawnSync(process.execPath, [process.argv[1], '--bench', '--no-check', ...own], { stdio: 'inherit', env: process.env });
      if (r.status !== 0) worst = 1;
    }
    return worst;
  }
  if (selfTest) {
    gpu = await CpuBackend.create();
    console.log('self-test: the backend under test is a second cpu backend');
  } else {
    cuda = loadCudaBackend(0);
    gpu = cuda;
    console.log(`cuda: ${cuda.device}; cuBLAS ${cuda.info.cublasVersion} from ${avail.cublasPath}; seed ${SEED}`);
  }
  if (!flag('--no-check')) {
    const noRef = flag('--no-ref') || GROUP === 'collective';
    const cpu = noRef ? null : await CpuBackend.create();
    if (cpu) console.log(`cpu: ${cpu.device}`);
    const names = Object.keys(GROUPS).filter((name) => !(GROUP && GROUP !== name) && !(GROUP_LIST && !GROUP_LIST.includes(name)));
    const r = runChecks({ test: gpu, ref: cpu, quick: flag('--quick'), only: opt('--only'), noTime: flag('--no-time'), seed: SEED }, names);
    rows.push(...r.rows);
  }
  if (cuda && (GROUP === 'collective' || GROUP_LIST?.includes('collective'))) rows.push(...collectiveChecks(cuda, SEED));
  if (flag('--bench') && cuda) {
    try {
      benchmarks(cuda);
    } catch (e) {
      fail('bench', 'benchmarks', '', e);
    }
  }
  return summary();
}

main().then((code) => process.exit(code), (e) => {
  console.log(`gpu-check crashed: ${(e as Error)?.stack ?? e}`);
  process.exit(2);
});
