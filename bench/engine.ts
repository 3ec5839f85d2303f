// `npm run bench -- engine`: the cpu engine. Matmul GFLOP/s at square sizes and at the shapes the tiny-qwen3 block
// runs (8192 rows = a batch of 16 windows × 512 tokens), operands in tensor storage as the backend has them, on one
// thread and on all threads in the same run; then the eval throughput (tokens/s, REFERENCE.md perplexity protocol)
// on a few windows of the fixture's val.jsonl.
// Options: --windows N (eval windows, default 16), --batch N (windows per forward, 4), --min-seconds S (0.5 per case),
// --skip-eval, --skip-matmul.
import path from 'node:path';
import { CpuBackend } from '../src/engine/cpu/backend.js';
import { gemm, matmulThreads, setMatmulThreads, view } from '../src/engine/cpu/matmul.js';
import { takeF32 } from '../src/engine/cpu/buffers.js';
import { perplexityWindows, readTextDocuments, tokenizeCorpus } from '../src/io/datasets.js';
import { loadTokenizer } from '../src/io/tokenizer.js';
import { loadModel } from '../src/model/load.js';
import { perplexity } from '../src/model/perplexity.js';
import { FIXTURES, HAVE_FIXTURES, flag, intOption, machine, option, round, table, type BenchContext } from './report.js';

interface MatmulCase {
  name: string;
  M: number;
  K: number;
  N: number;
  transA?: boolean;
  transB?: boolean;
}

const CASES: MatmulCase[] = [
  { name: '256³', M: 256, K: 256, N: 256 },
  { name: '1024³', M: 1024, K: 1024, N: 1024 },
  { name: '2048³', M: 2048, K: 2048, N: 2048 },
  { name: '[8192×256]·[256×768]', M: 8192, K: 256, N: 768 },
  { name: 'q/o   x·Wᵀ  [8192×256]·[256×256]ᵀ', M: 8192, K: 256, N: 256, transB: true },
  { name: 'gate  x·Wᵀ  [8192×256]·[768×256]ᵀ', M: 8192, K: 256, N: 768, transB: true },
  { name: 'down  x·Wᵀ  [8192×768]·[256×768]ᵀ', M: 8192, K: 768, N: 256, transB: true },
  { name: 'dX    dY·W  [8192×768]·[768×256]', M: 8192, K: 768, N: 256 },
  { name: 'dW    dYᵀ·X [8192×768]ᵀ·[8192×256]', M: 768, K: 8192, N: 256, transA: true },
  { name: 'head  h·Eᵀ  [2048×256]·[4096×256]ᵀ', M: 2048, K: 256, N: 4096, transB: true },
];

/** Random values in tensor storage (shared with the worker threads when they run, as the backend's tensors are). */
function random(n: number, seed: number): Float32Array {
  const a = takeF32(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 4294967296 - 0.5;
  }
  return a;
}

function cpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/**
 * Best and median wall seconds of fn over repetitions lasting at least minSeconds (and 3 runs), after one warm-up,
 * and the mean process CPU seconds per run (all threads; other load on the machine does not inflate it).
 */
function time(fn: () => void, minSeconds: number): { best: number; median: number; cpu: number } {
  fn();
  const ts: number[] = [];
  const t0 = performance.now();
  const c0 = cpuSeconds();
  while (ts.length < 3 || performance.now() - t0 < minSeconds * 1000) {
    const t = performance.now();
    fn();
    ts.push((performance.now() - t) / 1000);
  }
  const cpu = (cpuSeconds() - c0) / ts.length;
  ts.sort((a, b) => a - b);
  return { best: ts[0], median: ts[Math.floor(ts.length / 2)], cpu };
}

function sameBits(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return false;
  return true;
}

export async function run(ctx: BenchContext): Promise<Record<string, unknown>> {
  const be = await CpuBackend.create();
  const th = matmulThreads();
  const all = th.available;
  const minSeconds = Number(option(ctx.args, 'min-seconds') ?? 0.5);
  ctx.log(`engine bench: ${be.device}; matmul threads available ${all}${th.problem ? ` (workers: ${th.problem})` : ''}`);
  const report: Record<string, unknown> = { machine: machine(), device: be.device, threads: th };

  if (!flag(ctx.args, 'skip-matmul')) {
    const rows: (string | number)[][] = [['matmul', 'GFLOP/s 1 thread', `GFLOP/s ${all} threads`, 'ratio', 'cpu s ratio', 'same bits']];
    const results = [];
    for (const c of CASES) {
      const a = random(c.M * c.K, 1);
      const b = random(c.K * c.N, 2);
      const flop = 2 * c.M * c.K * c.N;
      const per: Record<number, { best: number; median: number; cpu: number; out: Float32Array }> = {};
      for (const t of all > 1 ? [1, all] : [1]) {
        setMatmulThreads(t);
        const out = takeF32(c.M * c.N);
        const A = view(a, c.transA ? c.M : c.K, !!c.transA);
        const B = view(b, c.transB ? c.K : c.N, !!c.transB);
        const r = time(() => gemm(c.M, c.K, c.N, A, B, view(out, c.N)), minSeconds);
        per[t] = { ...r, out };
      }
      setMatmulThreads(all);
      const g1 = flop / per[1].best / 1e9;
      const gN = flop / per[all].best / 1e9;
      const same = sameBits(per[1].out, per[all].out);
      const cpuRatio = per[all].cpu / per[1].cpu;
      rows.push([c.name, g1.toFixed(1), gN.toFixed(1), (gN / g1).toFixed(2), cpuRatio.toFixed(2), same ? 'yes' : 'NO']);
      results.push({
        name: c.name, M: c.M, K: c.K, N: c.N, transA: !!c.transA, transB: !!c.transB,
        gflops1: round(g1, 1), gflopsAll: round(gN, 1), ratio: round(gN / g1), medianGflops1: round(flop / per[1].median / 1e9, 1),
        medianGflopsAll: round(flop / per[all].median / 1e9, 1), cpuGflops1: round(flop / per[1].cpu / 1e9, 1),
        cpuSecondsRatio: round(cpuRatio), sameBits: same,
      });
      ctx.log(`  ${c.name}: ${g1.toFixed(1)} → ${gN.toFixed(1)} GFLOP/s`);
    }
    ctx.log('');
    ctx.log(table(rows));
    ctx.log('');
    report.matmul = results;
  }

  if (!flag(ctx.args, 'skip-eval')) {
    const modelDir = path.join(FIXTURES, 'tiny-qwen3');
    if (!HAVE_FIXTURES) {
      ctx.log(`eval skipped: fixtures not found at ${FIXTURES}`);
      report.eval = { skipped: `fixtures not found at ${FIXTURES}` };
    } else {
      const windows = intOption(ctx.args, 'windows', 16);
      const batch = intOption(ctx.args, 'batch', 4);
      const seqLen = 512;
      const model = loadModel(be, modelDir);
      const tok = loadTokenizer(modelDir);
      const eos = model.cfg.eosTokenIds[0] ?? tok.eosTokenId ?? 0;
      const tokens = tokenizeCorpus(readTextDocuments(path.join(FIXTURES, 'text', 'val.jsonl')), tok, eos, { maxTokens: (windows + 1) * seqLen + 1 });
      const starts = perplexityWindows(tokens.length, seqLen, windows);
      const rows: (string | number)[][] = [['eval (tiny-qwen3)', 'windows', 'seconds', 'tokens/s', 'ppl']];
      const evals = [];
      perplexity(model.decoder, tokens, { seqLen, starts: starts.slice(0, batch), batch }); // warm-up
      for (const t of all > 1 ? [1, all] : [1]) {
        setMatmulThreads(t);
        const t0 = performance.now();
        const r = perplexity(model.decoder, tokens, { seqLen, starts, batch });
        const s = (performance.now() - t0) / 1000;
        const tps = (r.windows * seqLen) / s;
        rows.push([`${t} thread${t > 1 ? 's' : ''}`, r.windows, s.toFixed(2), tps.toFixed(0), r.ppl.toFixed(4)]);
        evals.push({ threads: t, windows: r.windows, seconds: round(s), tokensPerSecond: round(tps, 0), ppl: r.ppl });
      }
      setMatmulThreads(all);
      ctx.log(table(rows));
      report.eval = { model: modelDir, seqLen, batch, runs: evals, ratio: evals.length > 1 ? round(evals[1].tokensPerSecond / evals[0].tokensPerSecond) : 1 };
    }
  }
  return report;
}
