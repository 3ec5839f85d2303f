// Several real processes for the data-parallel tests: a free port, one child per rank with the rank variables set, and
// their outputs once all have ended (SIGKILL after a time limit: a hang fails the test instead of stalling it).
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { freePort } from '../../src/cli/launch.js';
import { Rng } from '../../src/numerics/rng.js';

/** A TCP port that was free a moment ago (the launcher's own). */
export { freePort };

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const TSX = pathToFileURL(path.join(ROOT, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;
export const DP_WORKER = path.join(ROOT, 'test', 'helpers', 'dp-worker.ts');

export interface ProcResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  pid: number;
}


/** Runs `node --import tsx script ...args` with env added; resolves when it has ended. */
export function runNode(script: string, args: string[], env: NodeJS.ProcessEnv, timeoutS: number, onSpawn?: (pid: number) => void): Promise<ProcResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', TSX, script, ...args], {
      cwd: ROOT, env: { ...process.env, PARO_QUIET: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    onSpawn?.(child.pid ?? -1);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutS * 1000);
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, pid: child.pid ?? -1 });
    });
  });
}

/** One dp-worker process per rank of a run of worldSize on a fresh port. */
export async function runRanks(worldSize: number, args: string[], timeoutS = 60, extraEnv: (rank: number) => NodeJS.ProcessEnv = () => ({})): Promise<ProcResult[]> {
  const port = await freePort();
  const runs: Promise<ProcResult>[] = [];
  for (let rank = 0; rank < worldSize; rank++) {
    runs.push(runNode(DP_WORKER, args, {
      RANK: String(rank), WORLD_SIZE: String(worldSize), LOCAL_RANK: String(rank), MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), ...extraEnv(rank),
    }, timeoutS));
  }
  return Promise.all(runs);
}

/** The input data of rank `rank` in the collective tests: n values of a seeded normal-ish distribution. */
export function rankData(rank: number, n: number, seed: number): Float32Array {
  const rng = new Rng(seed * 1000 + rank);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (rng.nextFloat() - 0.5) * 8 * (1 + rank);
  return out;
}

/** True when the process with this pid no longer exists. */
export function pidGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
