// The launcher of data-parallel runs (src/cli/launch.ts) with real processes: what reaches stdout and stderr, a failing
// worker ending the run with its exit code and message and leaving no process behind, Ctrl-C reaching every worker,
// the validation of the rank variables, and the hook in the paro / dflash entry points.
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { deviceForRank, rankInfoFromEnv, splitLaunchFlags } from '../src/cli/launch.js';
import { UsageError } from '../src/errors.js';
import { freePort, pidGone, ROOT, runNode, type ProcResult } from './helpers/dp-procs.js';
import { scratchDir } from './scratch.js';

const TOOL = path.join(ROOT, 'test', 'helpers', 'launch-tool.ts');
const PARO = path.join(ROOT, 'scripts', 'paro-dev.ts');
const DFLASH = path.join(ROOT, 'scripts', 'dflash-dev.ts');
/** The launcher's own environment must not look like a worker's. */
const NOT_A_WORKER = { RANK: '', WORLD_SIZE: '', LOCAL_RANK: '', MASTER_ADDR: '', MASTER_PORT: '' };

interface EnvelopeLine { ok: boolean; command: string; error?: { message: string; code: string; exitCode: number }; result: { sum?: number } | null }
const envelopes = (stdout: string): EnvelopeLine[] =>
  stdout.split('\n').filter((l) => l.startsWith('{"schema"')).map((l) => JSON.parse(l) as EnvelopeLine);

function workerPids(dir: string): number[] {
  return readdirSync(dir).filter((f) => f.endsWith('.pid')).map((f) => Number(readFileSync(path.join(dir, f), 'utf8')));
}

const tool = (args: string[], timeoutS = 60, onSpawn?: (pid: number) => void): Promise<ProcResult> => runNode(TOOL, args, unsetWorkerVars(), timeoutS, onSpawn);

function unsetWorkerVars(): NodeJS.ProcessEnv {
  // runNode merges into process.env: an empty value would be "set", so the variables are deleted in a copy instead.
  const env = { ...process.env };
  for (const k of Object.keys(NOT_A_WORKER)) delete env[k];
  return env;
}

describe('rankInfoFromEnv', () => {
  const env = (o: Record<string, string>): NodeJS.ProcessEnv => o;
  it('null without RANK and WORLD_SIZE; the values with them; LOCAL_RANK defaults to RANK', () => {
    expect(rankInfoFromEnv(env({}))).toBeNull();
    expect(rankInfoFromEnv(env({ RANK: '2', WORLD_SIZE: '4', LOCAL_RANK: '0', MASTER_ADDR: 'node7', MASTER_PORT: '29500' })))
      .toEqual({ rank: 2, worldSize: 4, localRank: 0, masterAddr: 'node7', masterPort: 29500 });
    expect(rankInfoFromEnv(env({ RANK: '1', WORLD_SIZE: '2', MASTER_ADDR: 'h', MASTER_PORT: '1234', PARO_LAUNCHER_PID: '77' })))
      .toEqual({ rank: 1, worldSize: 2, localRank: 1, masterAddr: 'h', masterPort: 1234, launcherPid: 77 });
    expect(rankInfoFromEnv(env({ RANK: '0', WORLD_SIZE: '1' }))?.worldSize).toBe(1); // one rank needs no address
  });

  it('bad values are one-line usage errors naming the variable', () => {
    const cases: [Record<string, string>, RegExp][] = [
      [{ RANK: '2', WORLD_SIZE: '2', MASTER_ADDR: 'h', MASTER_PORT: '1' }, /RANK=2 .* below WORLD_SIZE=2/],
      [{ RANK: '0' }, /RANK is set .* WORLD_SIZE is not/],
      [{ WORLD_SIZE: '2' }, /WORLD_SIZE is set .* RANK is not/],
      [{ RANK: 'one', WORLD_SIZE: '2' }, /RANK="one"/],
      [{ RANK: '0', WORLD_SIZE: '0' }, /WORLD_SIZE="0"/],
      [{ RANK: '0', WORLD_SIZE: '2', MASTER_PORT: '29500' }, /needs MASTER_ADDR/],
      [{ RANK: '0', WORLD_SIZE: '2', MASTER_ADDR: 'h' }, /needs MASTER_PORT/],
      [{ RANK: '0', WORLD_SIZE: '2', MASTER_ADDR: 'h', MASTER_PORT: '70000' }, /MASTER_PORT=70000 .* not a port/],
      [{ RANK: '0', WORLD_SIZE: '2', LOCAL_RANK: '5', MASTER_ADDR: 'h', MASTER_PORT: '1' }, /LOCAL_RANK=5/],
    ];
    for (const [vars, msg] of cases) {
      let err: unknown;
      try {
        rankInfoFromEnv(env(vars));
      } catch (e) {
        err = e;
      }
      expect(err, JSON.stringify(vars)).toBeInstanceOf(UsageError);
      expect((err as UsageError).message).toMatch(msg);
      expect((err as UsageError).oneLine()).not.toContain('\n');
    }
  });
});

describe('deviceForRank', () => {
  const info = (o: Record<string, string>) => rankInfoFromEnv({ WORLD_SIZE: '4', MASTER_ADDR: 'h', MASTER_PORT: '1', ...o });
  it('a worker of an outside launcher that sees several GPUs takes GPU LOCAL_RANK; ours and explicit choices stay', () => {
    expect(deviceForRank('cuda', info({ RANK: '6', WORLD_SIZE: '8', LOCAL_RANK: '2' }), {})).toBe('cuda:2');
    expect(deviceForRank('cuda', info({ RANK: '2' }), { CUDA_VISIBLE_DEVICES: '0,1,2,3' })).toBe('cuda:2');
    expect(deviceForRank('cuda', info({ RANK: '2' }), { CUDA_VISIBLE_DEVICES: '3' })).toBe('cuda'); // one GPU left to it
    expect(deviceForRank('cuda:1', info({ RANK: '2' }), {})).toBe('cuda:1');
    expect(deviceForRank('cpu', info({ RANK: '2' }), {})).toBe('cpu');
    expect(deviceForRank('cuda', info({ RANK: '2', PARO_LAUNCHER_PID: '99' }), {})).toBe('cuda'); // ours: --gpus set CUDA_VISIBLE_DEVICES
    expect(deviceForRank(undefined, null, {})).toBe('auto');
  });
});

describe('splitLaunchFlags', () => {
  it('takes --gpus / --ranks (both spellings) out of the arguments and checks their values', () => {
    expect(splitLaunchFlags(['quantize', 'm', '--gpus', '0,2', '--out', 'o'])).toEqual({ flags: { gpus: [0, 2] }, rest: ['quantize', 'm', '--out', 'o'] });
    expect(splitLaunchFlags(['quantize', '--ranks=3', '--json'])).toEqual({ flags: { ranks: 3 }, rest: ['quantize', '--json'] });
    expect(() => splitLaunchFlags(['q', '--gpus', '0', '--ranks', '2'])).toThrow(/exclude each other/);
    expect(() => splitLaunchFlags(['q', '--gpus', '0,0'])).toThrow(/twice/);
    expect(() => splitLaunchFlags(['q', '--gpus', 'a,1'])).toThrow(/comma-separated list of GPU indices/);
    expect(() => splitLaunchFlags(['q', '--ranks', '0'])).toThrow(/--ranks must be a positive integer/);
    expect(() => splitLaunchFlags(['q', '--ranks'])).toThrow(/argument missing/);
  });
});

describe('launcher (real worker processes)', () => {
  it('passes rank 0\'s stdout and envelope through, other ranks\' stdout not, their warnings prefixed', async () => {
    const r = await tool(['work', '--ranks', '3', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('stdout of rank 0');
    expect(r.stdout).not.toMatch(/stdout of rank [12]/);
    const env = envelopes(r.stdout);
    expect(env).toHaveLength(1);
    expect(env[0].ok).toBe(true);
    expect(env[0].result?.sum).toBe(0 + 1 + 2); // the workers did reduce across 3 ranks
    expect(r.stderr).toContain('[rank 1] warning: a warning of rank 1');
    expect(r.stderr).toContain('[rank 2] warning: a warning of rank 2');
    expect(r.stderr).toContain('progress line of rank 0');
    expect(r.stderr).not.toMatch(/progress line of rank [12]/);
  });

  it('--gpus: one worker per listed GPU, each seeing only its GPU, with the rank variables and without the launch flags', async () => {
    const dir = scratchDir('dp-env-');
    const r = await tool(['work', '--gpus', '3,5', '--pids', dir, '--device', 'cuda']);
    expect(r.code, r.stderr).toBe(0);
    const seen = [0, 1].map((k) => JSON.parse(readFileSync(path.join(dir, `rank${k}.json`), 'utf8')) as { env: Record<string, string | null>; args: string[] });
    expect(seen[0].env.MASTER_PORT).toMatch(/^\d+$/);
    for (const [k, gpu] of [[0, '3'], [1, '5']] as const) {
      expect(seen[k].env).toEqual({
        RANK: String(k), WORLD_SIZE: '2', LOCAL_RANK: String(k), MASTER_ADDR: '127.0.0.1', MASTER_PORT: seen[0].env.MASTER_PORT,
        CUDA_VISIBLE_DEVICES: gpu, NCCL_NVLS_ENABLE: '0',
      });
      expect(seen[k].args).toEqual(['work', '--pids', dir, '--device', 'cuda']);
    }
  });

  it('a worker that fails ends the run with its exit code and message; the others are stopped, no process is left', async () => {
    const pids = scratchDir('dp-pids-');
    const t0 = Date.now();
    // Rank 1 fails; rank 2 is busy outside the store (only SIGTERM ends it); rank 0 waits for rank 1 in the store.
    const r = await tool(['work', '--ranks', '3', '--fail-rank', '1', '--others', 'sleep', '--pids', pids, '--json']);
    expect(r.code, r.stderr).toBe(3);
    expect(Date.now() - t0).toBeLessThan(40_000); // not rank 2's 120 s sleep
    expect(r.stderr).toContain('[rank 1] error: simulated failure in rank 1');
    expect(r.stderr).toMatch(/error: rank 1 exited with code 3: simulated failure in rank 1\n$/);
    const env = envelopes(r.stdout);
    expect(env).toHaveLength(1);
    expect(env[0]).toMatchObject({ ok: false, command: 'work', error: { exitCode: 3, code: 'gate' } });
    expect(env[0].error?.message).toBe('rank 1 exited with code 3: simulated failure in rank 1');
    const ids = workerPids(pids);
    expect(ids).toHaveLength(3);
    for (const pid of ids) expect(pidGone(pid), `worker ${pid}`).toBe(true);
  });

  it('rank 0 failing: its own envelope and exit code', async () => {
    const r = await tool(['work', '--ranks', '2', '--fail-rank', '0', '--json']);
    expect(r.code, r.stderr).toBe(3);
    const env = envelopes(r.stdout);
    expect(env).toHaveLength(1);
    expect(env[0].error?.message).toBe('simulated failure in rank 0');
    expect(r.stderr).toContain('error: simulated failure in rank 0');
  });

  it('Ctrl-C (SIGINT to the launcher) reaches every worker; none is left', async () => {
    const pids = scratchDir('dp-pids-');
    let launcher = -1;
    const run = tool(['work', '--ranks', '2', '--sleep', '--pids', pids, '--json'], 60, (pid) => { launcher = pid; });
    // Once both workers are in their sleep (they wrote their pids and passed the barrier), interrupt the launcher only.
    const t0 = Date.now();
    while (workerPids(pids).length < 2 && Date.now() - t0 < 30_000) await new Promise((res) => setTimeout(res, 100));
    await new Promise((res) => setTimeout(res, 1500));
    process.kill(launcher, 'SIGINT');
    const r = await run;
    expect(r.code, r.stderr).toBe(130);
    expect(envelopes(r.stdout)).toMatchObject([{ ok: false, error: { message: 'interrupted (SIGINT)', exitCode: 130 } }]);
    const ids = workerPids(pids);
    expect(ids).toHaveLength(2);
    for (const pid of ids) expect(pidGone(pid), `worker ${pid}`).toBe(true);
  });

  it('a launcher killed with SIGKILL leaves no worker behind: they end themselves', async () => {
    const pids = scratchDir('dp-pids-');
    let launcher = -1;
    const run = tool(['work', '--ranks', '2', '--sleep', '--pids', pids], 60, (pid) => { launcher = pid; });
    const t0 = Date.now();
    while (workerPids(pids).length < 2 && Date.now() - t0 < 30_000) await new Promise((res) => setTimeout(res, 100));
    await new Promise((res) => setTimeout(res, 1500));
    process.kill(launcher, 'SIGKILL');
    await run;
    const ids = workerPids(pids);
    expect(ids).toHaveLength(2);
    const t1 = Date.now();
    while (ids.some((pid) => !pidGone(pid)) && Date.now() - t1 < 10_000) await new Promise((res) => setTimeout(res, 100));
    for (const pid of ids) expect(pidGone(pid), `worker ${pid}`).toBe(true);
  });
});

describe('the paro and dflash entry points', () => {
  const cli = (script: string, args: string[], env: NodeJS.ProcessEnv = unsetWorkerVars()): Promise<ProcResult> => runNode(script, args, env, 60);

  it('quantize runs its workers (each failing on a missing model: the run exits 2 with one envelope)', async () => {
    const dir = scratchDir('dp-cli-');
    mkdirSync(path.join(dir, 'empty-model'));
    const r = await cli(PARO, ['quantize', path.join(dir, 'empty-model'), '--out', path.join(dir, 'out'), '--device', 'cpu', '--ranks', '2', '--json']);
    expect(r.code, r.stderr).toBe(2);
    const env = envelopes(r.stdout);
    expect(env).toHaveLength(1);
    expect(env[0]).toMatchObject({ ok: false, command: 'quantize', error: { code: 'input', exitCode: 2 } });
  });

  it('started as torchrun starts workers (rank variables, no launch flag): only rank 0 prints its envelope', async () => {
    const dir = scratchDir('dp-torchrun-');
    const port = String(await freePort());
    const args = ['quantize', path.join(ROOT, 'examples', 'tiny-qwen3'), '--out', path.join(dir, 'out'), '--device', 'cpu', '--samples', '4',
      '--val-samples', '2', '--seq-len', '32', '--batch-size', '2', '--epochs', '1,1', '--json'];
    const rank = (r: number): NodeJS.ProcessEnv => ({ ...unsetWorkerVars(), RANK: String(r), WORLD_SIZE: '2', LOCAL_RANK: String(r), MASTER_ADDR: '127.0.0.1', MASTER_PORT: port, PARO_CPU_THREADS: '1' });
    const [r0, r1] = await Promise.all([runNode(PARO, args, rank(0), 120), runNode(PARO, args, rank(1), 120)]);
    expect(r0.code, r0.stderr).toBe(0);
    expect(r1.code, r1.stderr).toBe(0);
    const e0 = envelopes(r0.stdout);
    expect(e0).toHaveLength(1);
    expect(e0[0]).toMatchObject({ ok: true, command: 'quantize' });
    expect((e0[0].result as unknown as { worldSize: number }).worldSize).toBe(2);
    expect(r1.stdout.trim()).toBe('');
  }, 150_000);

  it('usage errors: the flags on another command, both flags, --gpus with --device cpu, bad rank variables', async () => {
    const [evalRanks, both, gpusCpu, badEnv] = await Promise.all([
      cli(PARO, ['eval', '--demo', '--ranks', '2']),
      cli(PARO, ['quantize', '--demo', '--ranks', '2', '--gpus', '0']),
      cli(DFLASH, ['train-drafter', '--target', 't', '--data', 'd', '--out', 'o', '--gpus', '0,1', '--device', 'cpu', '--json']),
      cli(DFLASH, ['generate-data', '--target', 't', '--prompts', 'p', '--out', 'o'], { ...unsetWorkerVars(), RANK: '1', WORLD_SIZE: '1' }),
    ]);
    expect(evalRanks.code).toBe(1);
    expect(evalRanks.stderr).toMatch(/unknown option '--ranks'/);
    expect(both.code).toBe(1);
    expect(both.stderr).toMatch(/error: --gpus and --ranks exclude each other/);
    expect(gpusCpu.code).toBe(1);
    expect(envelopes(gpusCpu.stdout)[0]).toMatchObject({ ok: false, command: 'train-drafter', error: { code: 'usage', exitCode: 1 } });
    expect(gpusCpu.stderr).toMatch(/--gpus picks the GPUs: pass --device cuda/);
    expect(badEnv.code).toBe(1);
    expect(badEnv.stderr).toMatch(/error: RANK=1 in the environment must be below WORLD_SIZE=1/);
  });
});
