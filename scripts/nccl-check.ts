// The NCCL collective on several GPUs of one host (issue 12): one worker process per GPU (CUDA_VISIBLE_DEVICES = that
// GPU, so each opens its device 0), the unique id handed from rank 0 to the others through a file in a temporary folder
// (self-contained: no rendezvous server). Each worker all-reduces (sum, mean) and broadcasts random f32 and bf16
// tensors and checks them against a host recomputation of every rank's inputs, reduces host numbers in f64, then
// times a large bf16 all-reduce (bus bandwidth, as nccl-tests reports it: algbw · 2(n−1)/n). Exits 1 on any failure;
// a worker that fails or hangs ends the whole check.
//
//   node .gpu/nccl-check.mjs [--gpus 0,1] [--mib 1024] [--iters 20] [--seed N] [--timeout 300]
//   (from a checkout: npx tsx scripts/nccl-check.ts ...)
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Collective } from '../src/engine/collective.js';
import type { CudaBackend } from '../src/engine/cuda/backend.js';
import { loadCudaBackend } from '../src/engine/cuda/availability.js';
import { loadAddon } from '../src/engine/cuda/addon.js';
import { loadNccl, ncclCollective } from '../src/engine/cuda/collective.js';
import { bf16ToF32, f32ToBf16 } from '../src/numerics/half.js';
import { Rng } from '../src/numerics/rng.js';

const argv = process.argv.slice(2);
const opt = (n: string): string | undefined => {
  const i = argv.indexOf(n);
  return i >= 0 ? argv[i + 1] : undefined;
};

interface WorkerResult {
  rank: number;
  failures: string[];
  lines: string[];
  /** The f64 all-reduce's result bits, to compare across ranks (every rank must get the same bytes). */
  numbersHex: string;
  busGBs?: number;
  algGBs?: number;
  ms?: number;
}

// ---- worker ----

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Rank 0 writes its id (write then rename: readers never see half a file); the others wait for it. */
function fileShare(dir: string, timeoutMs = 120_000): (mine: Uint8Array | null) => Uint8Array {
  const file = path.join(dir, 'nccl-unique-id');
  return (mine) => {
    if (mine) {
      fs.writeFileSync(`${file}.tmp`, mine);
      fs.renameSync(`${file}.tmp`, file);
      return mine;
    }
    const end = Date.now() + timeoutMs;
    while (!fs.existsSync(file)) {
      if (Date.now() > end) throw new Error(`no NCCL unique id from rank 0 in ${file} after ${timeoutMs / 1000} s`);
      sleepMs(20);
    }
    return new Uint8Array(fs.readFileSync(file));
  };
}

/** Rank k's input of n values: normal, rounded to bf16 when dtype is bf16 (so the host knows the exact inputs). */
function inputOf(seed: number, k: number, n: number, dtype: 'f32' | 'bf16'): Float32Array {
  const rng = new Rng(seed * 7919 + k * 104729 + n);
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal();
  return dtype === 'bf16' ? bf16ToF32(f32ToBf16(a)) : a;
}

function hex(values: Float64Array): string {
  return Buffer.from(values.buffer, values.byteOffset, values.byteLength).toString('hex');
}

function worker(rank: number, world: number, dir: string, mib: number, iters: number, seed: number): WorkerResult {
  const res: WorkerResult = { rank, failures: [], lines: [], numbersHex: '' };
  const say = (line: string): void => {
    res.lines.push(line);
  };
  const be: CudaBackend = loadCudaBackend(0);
  const lib = loadNccl(loadAddon().addon!);
  say(`rank ${rank}: ${be.device}; NCCL ${lib.version} from ${lib.path}; NCCL_NVLS_ENABLE=${process.env.NCCL_NVLS_ENABLE}`);
  const t0 = performance.now();
  const c: Collective = ncclCollective(be, rank, world, fileShare(dir));
  say(`rank ${rank}: communicator of ${world} ready in ${(performance.now() - t0).toFixed(0)} ms`);

  for (const dtype of ['f32', 'bf16'] as const) {
    // One unit roundoff per addition of the ring, plus the final rounding.
    const u = dtype === 'f32' ? 2 ** -24 : 2 ** -8;
    for (const n of [1, 1000, (1 << 20) + 3]) {
      const inputs = Array.from({ length: world }, (_, k) => inputOf(seed, k, n, dtype));
      const upload = (a: Float32Array) => (dtype === 'bf16' ? be.fromBits(f32ToBf16(a), [n], 'bf16') : be.fromHost(a, [n], 'f32'));
      for (const op of ['sum', 'mean'] as const) {
        const x = upload(inputs[rank]);
        c.allReduce(x, op);
        const got = be.toHost(x);
        be.free(x);
        let bad = 0, worst = 0;
        for (let i = 0; i < n; i++) {
          let exp = 0, mag = 0;
          for (let k = 0; k < world; k++) {
            exp += inputs[k][i];
            mag += Math.abs(inputs[k][i]);
          }
          if (op === 'mean') {
            exp /= world;
            mag /= world;
          }
          const err = Math.abs(got[i] - exp);
          const tol = (world + 1) * u * mag + 1e-30;
          if (!(err <= tol)) bad++;
          worst = Math.max(worst, err / (mag || 1));
        }
        const line = `${bad ? 'FAIL' : 'OK  '} rank ${rank} allReduce ${op.padEnd(4)} ${dtype.padEnd(4)} n=${n}: ${bad} outside tolerance, worst rel ${worst.toExponential(2)}`;
        say(line);
        if (bad) res.failures.push(line);
      }
      const root = world - 1;
      const y = upload(inputs[rank]);
      c.broadcast(y, root);
      const got = be.toHost(y);
      be.free(y);
      let differ = 0;
      for (let i = 0; i < n; i++) if (!Object.is(got[i], inputs[root][i])) differ++;
      const line = `${differ ? 'FAIL' : 'OK  '} rank ${rank} broadcast root ${root} ${dtype.padEnd(4)} n=${n}: ${differ} differ`;
      say(line);
      if (differ) res.failures.push(line);
    }
  }

  const numbersOf = (k: number) => Float64Array.from([k + 0.1, (k + 1) * 1e-17, -1.5 * k * k, 1 / (k + 3)]);
  const sums = c.allReduceNumbers(numbersOf(rank), 'sum');
  const means = c.allReduceNumbers(numbersOf(rank), 'mean');
  let numBad = 0;
  for (let j = 0; j < sums.length; j++) {
    let exp = 0;
    for (let k = 0; k < world; k++) exp += numbersOf(k)[j];
    if (!(Math.abs(sums[j] - exp) <= 1e-15 * Math.abs(exp) + 1e-300)) numBad++;
    if (!(Math.abs(means[j] - exp / world) <= 1e-15 * Math.abs(exp / world) + 1e-300)) numBad++;
  }
  res.numbersHex = hex(sums) + hex(means);
  const numLine = `${numBad ? 'FAIL' : 'OK  '} rank ${rank} allReduceNumbers f64: ${numBad} outside 1e-15`;
  say(numLine);
  if (numBad) res.failures.push(numLine);
  c.barrier();

  // Bandwidth: zeros stay zeros through repeated sums (no overflow); NCCL moves the same bytes whatever the values.
  const bytes = mib * 2 ** 20;
  const big = be.zeros([bytes / 2], 'bf16');
  for (let w = 0; w < 3; w++) c.allReduce(big, 'sum');
  c.barrier();
  const t1 = performance.now();
  for (let i = 0; i < iters; i++) c.allReduce(big, 'sum');
  c.barrier();
  const ms = (performance.now() - t1) / iters;
  be.free(big);
  res.ms = ms;
  res.algGBs = bytes / (ms / 1000) / 1e9;
  res.busGBs = res.algGBs * (2 * (world - 1)) / world;
  say(`rank ${rank}: all-reduce ${mib} MiB bf16 sum: ${ms.toFixed(3)} ms, algbw ${res.algGBs.toFixed(1)} GB/s, busbw ${res.busGBs.toFixed(1)} GB/s`);
  c.close();
  return res;
}

// ---- launcher ----

async function launch(): Promise<number> {
  const gpus = (opt('--gpus') ?? '0,1').split(',').map((s) => s.trim()).filter(Boolean);
  const world = gpus.length;
  const mib = Number(opt('--mib') ?? 1024);
  const iters = Number(opt('--iters') ?? 20);
  const seed = Number(opt('--seed') ?? 20260101);
  const timeoutS = Number(opt('--timeout') ?? 300);
  if (world < 1 || !(mib > 0) || !(iters > 0)) throw new Error('usage: nccl-check [--gpus 0,1] [--mib 1024] [--iters 20] [--seed N] [--timeout 300]');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paro-nccl-'));
  console.log(`nccl-check: ${world} ranks on GPUs ${gpus.join(',')}; ${mib} MiB bf16 all-reduce × ${iters}`);
  const results: WorkerResult[] = [];
  let failed = '';
  const children = gpus.map((gpu, rank) => {
    const env = { ...process.env, CUDA_VISIBLE_DEVICES: gpu, NCCL_NVLS_ENABLE: process.env.NCCL_NVLS_ENABLE ?? '0' };
    // execArgv keeps a loader such as tsx's (npx tsx scripts/nccl-check.ts) in the workers.
    return spawn(process.execPath, [...process.execArgv, process.argv[1], '--worker', String(rank), String(world), dir, String(mib), String(iters), String(seed)], {
      env, stdio: ['ignore', 'pipe', 'pipe'],
    });
  });
  const killAll = (): void => {
    for (const ch of children) if (ch.exitCode === null && ch.signalCode === null) ch.kill('SIGKILL');
  };
  const timer = setTimeout(() => {
    failed ||= `timed out after ${timeoutS} s`;
    killAll();
  }, timeoutS * 1000);
  await Promise.all(children.map((ch, rank) => new Promise<void>((resolve) => {
    let out = '';
    ch.stdout.on('data', (d) => { out += d; });
    ch.stderr.on('data', (d) => { process.stderr.write(`[rank ${rank}] ${d}`); });
    ch.on('close', (code, signal) => {
      let reported = false;
      for (const line of out.split('\n')) {
        if (line.startsWith('RESULT ')) {
          results.push(JSON.parse(line.slice(7)) as WorkerResult);
          reported = true;
        } else if (line.trim()) {
          console.log(`[rank ${rank}] ${line}`);
        }
      }
      // A worker that ended without its result failed mid-way: the others would wait for it forever.
      if (!reported && !failed) {
        failed = `rank ${rank} failed (exit ${code ?? signal}) before reporting`;
        killAll();
      }
      resolve();
    });
  })));
  clearTimeout(timer);
  fs.rmSync(dir, { recursive: true, force: true });
  results.sort((a, b) => a.rank - b.rank);
  for (const r of results) for (const l of r.lines) console.log(l);
  const failures = results.flatMap((r) => r.failures);
  if (results.length === world && new Set(results.map((r) => r.numbersHex)).size !== 1) {
    failures.push('allReduceNumbers: the ranks got different bytes');
  }
  if (failed) failures.push(failed);
  if (results.length !== world && !failed) failures.push(`${world - results.length} rank(s) gave no result`);
  const r0 = results[0];
  if (r0?.busGBs !== undefined) console.log(`\nbus bandwidth (rank 0): ${r0.busGBs.toFixed(1)} GB/s for ${mib} MiB bf16 (${r0.ms?.toFixed(3)} ms per all-reduce, ${world} GPUs)`);
  console.log(failures.length ? `\nFAIL (${failures.length}):\n  ${failures.join('\n  ')}` : '\nall OK');
  return failures.length ? 1 : 0;
}

if (argv[0] === '--worker') {
  try {
    const [rank, world, dir, mib, iters, seed] = argv.slice(1);
    const r = worker(Number(rank), Number(world), dir, Number(mib), Number(iters), Number(seed));
    console.log(`RESULT ${JSON.stringify(r)}`);
    process.exit(r.failures.length ? 1 : 0);
  } catch (e) {
    console.error((e as Error)?.stack ?? String(e));
    process.exit(2);
  }
} else {
  launch().then((code) => process.exit(code), (e) => {
    console.error(`nccl-check crashed: ${(e as Error)?.stack ?? e}`);
    process.exit(2);
  });
}
