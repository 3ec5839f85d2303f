// One rank of the data-parallel tests (test/rendezvous.test.ts, test/collective-cpu.test.ts): reads its rank from the
// environment as a real worker does, runs one scenario and prints what it saw as one JSON line on stdout.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { CpuBackend } from '../../src/engine/cpu/backend.js';
import { openCollective, rankInfoFromEnv } from '../../src/engine/open-collective.js';
import { Rendezvous } from '../../src/engine/rendezvous.js';
import { rankData } from './dp-procs.js';

const [scenario, outDir = ''] = process.argv.slice(2);
const info = rankInfoFromEnv(process.env);
if (!info) throw new Error('RANK and WORLD_SIZE must be set');
const { rank, worldSize } = info;
const timeoutMs = Number(process.env.DP_TIMEOUT_MS ?? 20_000);
const say = (o: object): void => void process.stdout.write(JSON.stringify({ rank, ...o }) + '\n');
const errorOf = (f: () => unknown): string => {
  try {
    f();
    return '';
  } catch (e) {
    return (e as Error).message;
  }
};

if (scenario === 'store') {
  const rv = Rendezvous.connect(info, { timeoutMs });
  // Every rank publishes a value that depends on its rank, then reads everyone's; the barrier separates two rounds.
  rv.set(`first/${rank}`, new TextEncoder().encode(`hello from ${rank}`));
  const first = Array.from({ length: worldSize }, (_, r) => new TextDecoder().decode(rv.get(`first/${r}`, r)));
  rv.barrier('between');
  // A value read by a bounded number of readers, larger than one TCP segment.
  const big = new Uint8Array(3 * 2 ** 20).map((_, i) => (i * 7 + rank) & 255);
  if (rank === 0) rv.set('big', big, worldSize - 1);
  const bigOk = rank === 0 ? true : rv.get('big', 0).every((v, i) => v === ((i * 7) & 255));
  rv.barrier('end');
  rv.close();
  say({ first, bigOk });
} else if (scenario === 'timeout') {
  const rv = Rendezvous.connect(info, { timeoutMs });
  // Rank 2 stays out of the barrier (it waits for a key nobody sets), so ranks 0 and 1 time out naming it.
  const t0 = Date.now();
  const error = rank === 2 ? errorOf(() => rv.get('never-set', 0)) : errorOf(() => rv.barrier('all'));
  const ms = Date.now() - t0;
  rv.barrier('after'); // all in: rank 0 does not leave while another rank still waits
  say({ error, ms });
  rv.close();
} else if (scenario === 'disconnect') {
  const rv = Rendezvous.connect(info, { timeoutMs });
  rv.barrier('ready');
  if (rank === 1) process.exit(7); // no goodbye: the connection just drops
  const t0 = Date.now();
  const error = errorOf(() => rv.get('from-rank-1', 1));
  const later = errorOf(() => rv.barrier('after'));
  say({ error, later, ms: Date.now() - t0 });
  rv.close();
} else if (scenario === 'leave') {
  // Rank 2 closes early (a rank that ended on an error path after closing): what waits for it fails at once. Then
  // rank 0 closes while rank 1 waits for a value of rank 0's: that wait fails at once too, and rank 0's close returns.
  const rv = Rendezvous.connect(info, { timeoutMs });
  rv.barrier('ready');
  const t0 = Date.now();
  let error = '';
  let barrierError = '';
  if (rank === 2) rv.close();
  else {
    error = errorOf(() => rv.get('from-rank-2', 2));
    barrierError = errorOf(() => rv.barrier('after'));
    rv.set(`done/${rank}`, new Uint8Array([1]));
    if (rank === 1) {
      rv.get('done/0', 0); // rank 0 is past its waits: it now closes, while this rank waits for more
      error += ' | ' + errorOf(() => rv.get('never-from-0', 0));
    } else rv.get('done/1', 1);
    rv.close();
  }
  say({ error, barrierError, ms: Date.now() - t0 });
} else if (scenario === 'collective') {
  const be = await CpuBackend.create();
  const coll = await openCollective(be, info, { timeoutMs });
  const n = Number(process.env.DP_N ?? 1000);
  const seed = Number(process.env.DP_SEED ?? 1);
  const results: Record<string, Float32Array> = {};
  for (const [name, dtype, op] of [['sumF32', 'f32', 'sum'], ['meanF32', 'f32', 'mean'], ['sumBf16', 'bf16', 'sum'], ['meanBf16', 'bf16', 'mean']] as const) {
    const t = be.fromHost(rankData(rank, n, seed), [n], dtype);
    coll.allReduce(t, op);
    results[name] = be.toHost(t);
    be.free(t);
  }
  const b = be.fromHost(rankData(rank, n, seed + 1), [n], 'f32');
  coll.broadcast(b, worldSize - 1);
  results.broadcast = be.toHost(b);
  const numbers = coll.allReduceNumbers(Float64Array.from([rank + 0.5, 1e-3 * rank, -rank]), 'mean');
  coll.barrier();
  coll.close();
  for (const [name, v] of Object.entries(results)) writeFileSync(path.join(outDir, `${name}.${rank}.f32`), v);
  say({ numbers: Array.from(numbers), rankSeen: coll.rank, worldSeen: coll.worldSize });
} else throw new Error(`unknown scenario ${scenario}`);
