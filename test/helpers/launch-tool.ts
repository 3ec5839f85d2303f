// A stand-in tool for test/launch.test.ts: its command "work" is launchable like `paro quantize`, so
// `launch-tool.ts work --ranks 3 ...` runs the real launcher (src/cli/launch.ts), and each worker opens the real cpu
// Collective. Worker behaviour by flags: --fail-rank k (rank k fails with exit code 3 after the first barrier),
// --others sleep|wait (the other ranks then block outside the store, or wait in it), --pids <dir> (each worker writes
// its pid and what it saw there), --sleep (every rank blocks for 2 minutes), --json (the envelope, as the real commands print it).
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { CpuBackend } from '../../src/engine/cpu/backend.js';
import { openCollectiveFromEnv } from '../../src/engine/open-collective.js';
import { UserError } from '../../src/errors.js';
import { launchIfRequested } from '../../src/cli/launch.js';
import { runCommand } from '../../src/cli/run-command.js';

const argv = process.argv;
if (!(await launchIfRequested('paro', argv, ['work']))) {
  const flag = (name: string): string | undefined => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const json = argv.includes('--json');
  await runCommand({ tool: 'paro', command: 'work', json }, async () => {
    if (argv.includes('--gpus') || argv.includes('--ranks')) throw new Error('a worker saw a launch flag');
    const pids = flag('--pids');
    const rank = Number(process.env.RANK);
    if (pids) {
      writeFileSync(path.join(pids, `rank${rank}.pid`), String(process.pid));
      const seen = ['RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT', 'CUDA_VISIBLE_DEVICES', 'NCCL_NVLS_ENABLE'];
      writeFileSync(path.join(pids, `rank${rank}.json`), JSON.stringify({ env: Object.fromEntries(seen.map((k) => [k, process.env[k] ?? null])), args: argv.slice(2) }));
    }
    const be = await CpuBackend.create();
    const coll = await openCollectiveFromEnv(be, { timeoutMs: 60_000 });
    process.stdout.write(`stdout of rank ${coll.rank}\n`);
    process.stderr.write(`progress line of rank ${coll.rank}\n`);
    process.stderr.write(`warning: a warning of rank ${coll.rank}\n`);
    coll.barrier();
    const failRank = flag('--fail-rank');
    if (failRank !== undefined && Number(failRank) === coll.rank) {
      throw new UserError(`simulated failure in rank ${coll.rank}`, { exitCode: 3 });
    }
    if (failRank !== undefined && flag('--others') === 'sleep') {
      // Busy outside the store (a long computation): only the launcher's SIGTERM ends it.
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 120_000);
    }
    if (argv.includes('--sleep')) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 120_000); // until a signal
    const sum = coll.allReduceNumbers(Float64Array.from([coll.rank]), 'sum');
    coll.barrier();
    coll.close();
    return { rank: coll.rank, worldSize: coll.worldSize, sum: sum[0] };
  });
}
