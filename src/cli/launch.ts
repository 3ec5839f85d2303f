// The launcher of data-parallel runs (issue 12): `--gpus 0,1,...` (one worker per GPU) or `--ranks N` (N workers on
// the chosen device). Given either, and RANK not set, the command does not run itself: it starts one worker process
// per rank (same node, same script, same arguments minus these two flags) with RANK, WORLD_SIZE, LOCAL_RANK,
// MASTER_ADDR, MASTER_PORT (and CUDA_VISIBLE_DEVICES + NCCL_NVLS_ENABLE=0 for --gpus), and waits for them.
//
// Output: rank 0's stdout and stderr reach the user (its stderr directly, so progress bars stay bars); of the other
// ranks only the stderr lines that report a problem, prefixed "[rank k] ": lines starting with "error" or "warning",
// a JavaScript error name ("TypeError: ..."), or an NCCL warning ("NCCL WARN"). Their stdout is discarded.
//
// Failure: the first worker that exits non-zero or by a signal ends the run: the others get SIGTERM, then SIGKILL
// after a grace period, and the launcher exits with that worker's code (128 + signal number for a signal). A failure
// that only reports another rank's end ("rank 1 disconnected", "rank 0 left the run") is a consequence: the launcher
// waits a few seconds for the rank that caused it and names that one (rank 0 when it failed on its own, as when every
// rank meets the same bad input). With --json, rank 0's envelope is printed when rank 0 caused the end (or all went
// well); otherwise the launcher prints one with ok false naming the failed rank.
// Ctrl-C (SIGINT) and SIGTERM reach every worker.
//
// With RANK and WORLD_SIZE set (our own workers, torchrun, a cluster launcher) the process is a worker: rankInfoFromEnv
// (engine/open-collective.ts) validates the variables and the job opens its Collective from them.
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import os from 'node:os';
import { InvalidArgumentError } from 'commander';
import { rankInfoFromEnv, type RankInfo } from '../engine/open-collective.js';
import { cudaAvailability } from '../engine/cuda/index.js';
import { UsageError, UserError, errorCodeOf } from '../errors.js';
import { gpuList, positiveInt } from './options.js';
import { ENVELOPE_SCHEMA, printJson, reportError, type Envelope } from './run-command.js';
import { TOOL_VERSION } from './version.js';

export { rankInfoFromEnv, type RankInfo };

export type Tool = 'paro' | 'dflash';

/** The commands that run data parallel (the others reject --gpus and --ranks as unknown options). */
export const LAUNCHABLE: Readonly<Record<Tool, readonly string[]>> = {
  paro: ['quantize'],
  dflash: ['train-drafter', 'generate-data'],
};

export const GPUS_HELP = 'data parallel on these GPUs of this host, one worker process each, e.g. 0,1,2,3 (results as on one GPU; rank 0 writes)';
export const RANKS_HELP = 'data parallel with n worker processes on the chosen device (cpu runs and tests)';

/** Time a worker has between SIGTERM and SIGKILL. */
const GRACE_MS = 10_000;
/** Time the launcher waits for the cause of a failure that only reports another rank's end. */
const CAUSE_WAIT_MS = 5_000;
/** Time the others get after a failure of its own before SIGTERM (ranks failing on the same input end by themselves). */
const STOP_DELAY_MS = 1_000;
/** Stderr lines kept per worker (shown when a failed rank printed nothing that passed the filter). */
const TAIL_LINES = 20;
/** A failure that only reports the end of another rank. */
const CONSEQUENCE = /rank \d+ (disconnected|left the run)/;
/** Stderr lines of ranks > 0 that reach the user. */
const SHOWN_LINE = /^(error|warning)\b|^[A-Za-z]*Error\b|NCCL WARN/i;

export interface LaunchFlags {
  gpus?: number[];
  ranks?: number;
}

/** Takes --gpus / --ranks (and their =forms) out of the arguments after the script; throws a UsageError on bad values. */
export function splitLaunchFlags(args: readonly string[]): { flags: LaunchFlags; rest: string[] } {
  const flags: LaunchFlags = {};
  const rest: string[] = [];
  const parse = <T>(name: string, value: string | undefined, fn: (v: string) => T): T => {
    if (value === undefined) throw new UsageError(`option '${name}' argument missing`);
    try {
      return fn(value);
    } catch (e) {
      throw new UsageError(e instanceof InvalidArgumentError ? e.message : `${name}: ${(e as Error).message}`);
    }
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--') {
      rest.push(...args.slice(i));
      break;
    }
    const m = /^(--gpus|--ranks)(?:=(.*))?$/.exec(a);
    if (!m) {
      rest.push(a);
      continue;
    }
    const value = m[2] ?? args[++i];
    if (m[1] === '--gpus') flags.gpus = parse('--gpus', value, gpuList('--gpus'));
    else flags.ranks = parse('--ranks', value, positiveInt('--ranks'));
  }
  if (flags.gpus && flags.ranks !== undefined) throw new UsageError('--gpus and --ranks exclude each other: --gpus starts one worker per listed GPU');
  return { flags, rest };
}

/** The value of --device in the arguments, if given. */
function deviceArg(args: readonly string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--device') return args[i + 1];
    if (args[i].startsWith('--device=')) return args[i].slice('--device='.length);
  }
  return undefined;
}

/**
 * The --device a worker uses. Our own workers keep theirs (with --gpus, CUDA_VISIBLE_DEVICES leaves them one GPU:
 * cuda means it). A worker of an outside launcher (torchrun) that sees several GPUs takes GPU LOCAL_RANK for cuda or
 * auto (when a GPU is usable); an explicit cuda:N stays as given.
 */
export function deviceForRank(device: string | undefined, info: RankInfo | null = rankInfoFromEnv(process.env), env: NodeJS.ProcessEnv = process.env): string {
  const given = device ?? 'auto';
  if (!info || info.worldSize === 1 || info.launcherPid !== undefined) return given;
  const visible = (env.CUDA_VISIBLE_DEVICES ?? '').split(',').filter((s) => s.trim() !== '');
  if (visible.length === 1) return given;
  const d = given.trim().toLowerCase();
  if (d === 'cuda' || (d === 'auto' && cudaAvailability().available)) return `cuda:${info.localRank}`;
  return given;
}

/** A TCP port of this host that was free a moment ago (rank 0 listens on it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

interface Worker {
  rank: number;
  child: ChildProcess;
  done: boolean;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Ended by our SIGTERM/SIGKILL (not a cause). */
  stopped: boolean;
  /** The last "error: ..." line it printed (ranks > 0; rank 0's stderr goes straight to the user). */
  errorLine: string | null;
  tail: string[];
  shown: number;
  endedAt: number;
}

export interface LaunchSpec {
  tool: Tool;
  command: string;
  /** The script and node options to rerun (process.argv[1], process.execArgv). */
  script: string;
  execArgv: readonly string[];
  /** The arguments after the script, without the launch flags. */
  args: readonly string[];
  flags: LaunchFlags;
  json: boolean;
}

function exitCodeOf(w: Worker): number {
  if (w.code !== null) return w.code;
  const n = w.signal ? os.constants.signals[w.signal] : undefined;
  return 128 + (n ?? 9);
}

function describeEnd(w: Worker): string {
  const how = w.signal ? `was ended by ${w.signal}` : `exited with code ${w.code}`;
  return w.errorLine ? `rank ${w.rank} ${how}: ${w.errorLine.replace(/^error:\s*/, '')}` : `rank ${w.rank} ${how}`;
}

/** Starts the workers and waits for all of them; resolves with the exit code of the run. */
export async function launchWorkers(spec: LaunchSpec): Promise<number> {
  const gpus = spec.flags.gpus;
  const worldSize = gpus ? gpus.length : spec.flags.ranks ?? 1;
  const port = await freePort();
  const t0 = performance.now();
  const workers: Worker[] = [];
  let heldEnvelope: string | null = null;
  let interrupted: NodeJS.Signals | null = null;
  let stopTimer: NodeJS.Timeout | null = null;
  let stopAt = Infinity;
  let killTimer: NodeJS.Timeout | null = null;

  const stopAll = (signal: NodeJS.Signals): void => {
    if (killTimer) return;
    for (const w of workers) {
      if (w.done) continue;
      w.stopped = true;
      w.child.kill(signal);
    }
    killTimer = setTimeout(() => {
      for (const w of workers) if (!w.done) w.child.kill('SIGKILL');
    }, GRACE_MS);
  };

  const onSignal = (signal: NodeJS.Signals) => () => {
    interrupted ??= signal;
    stopAll(signal);
  };
  const onInt = onSignal('SIGINT');
  const onTerm = onSignal('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);

  const ended = new Promise<void>((resolveAll) => {
    let left = worldSize;
    const onEnd = (w: Worker, code: number | null, signal: NodeJS.Signals | null): void => {
      if (w.done) return;
      w.done = true;
      w.code = code;
      w.signal = signal;
      w.endedAt = performance.now();
      if ((code !== 0 || signal) && !w.stopped) {
        // A consequence of another rank's end waits a little for its cause; a failure of its own stops the run now.
        const consequence = w.errorLine !== null && CONSEQUENCE.test(w.errorLine);
        const at = performance.now() + (consequence ? CAUSE_WAIT_MS : STOP_DELAY_MS);
        if (at < stopAt) {
          if (stopTimer) clearTimeout(stopTimer);
          stopAt = at;
          stopTimer = setTimeout(() => stopAll('SIGTERM'), at - performance.now());
        }
      }
      if (--left === 0) resolveAll();
    };
    for (let rank = 0; rank < worldSize; rank++) {
      const env: NodeJS.ProcessEnv = {
        ...process.env,
        RANK: String(rank), WORLD_SIZE: String(worldSize), LOCAL_RANK: String(rank),
        MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), PARO_LAUNCHER_PID: String(process.pid),
        NCCL_NVLS_ENABLE: '0',
      };
      if (gpus) env.CUDA_VISIBLE_DEVICES = String(gpus[rank]);
      const child = spawn(process.execPath, [...spec.execArgv, spec.script, ...spec.args], {
        env, stdio: ['ignore', rank === 0 ? 'pipe' : 'ignore', rank === 0 ? 'inherit' : 'pipe'],
      });
      const w: Worker = { rank, child, done: false, code: null, signal: null, stopped: false, errorLine: null, tail: [], shown: 0, endedAt: 0 };
      workers.push(w);
      if (rank === 0) {
        // Passed through line by line; the envelope is held until the end (another rank may have caused a failure).
        lines(child.stdout!, (line) => {
          if (line.startsWith(`{"schema":"${ENVELOPE_SCHEMA}"`)) {
            heldEnvelope = line;
            // Rank 0's stderr goes straight to the user; with --json its error is known from here.
            const message = envelopeError(line);
            if (message !== null) w.errorLine = `error: ${message}`;
          } else process.stdout.write(line + '\n');
        });
      } else {
        lines(child.stderr!, (line) => {
          w.tail.push(line);
          if (w.tail.length > TAIL_LINES) w.tail.shift();
          if (/^error:/i.test(line)) w.errorLine = line;
          if (SHOWN_LINE.test(line)) {
            w.shown++;
            process.stderr.write(`[rank ${rank}] ${line}\n`);
          }
        });
      }
      child.on('error', (e) => {
        w.errorLine = `error: cannot start worker ${rank}: ${e.message}`;
        if (child.pid === undefined) onEnd(w, 127, null); // never started: no 'close' to wait for
      });
      child.on('close', (code, signal) => onEnd(w, code, signal));
    }
  });
  await ended;
  if (stopTimer) clearTimeout(stopTimer);
  if (killTimer) clearTimeout(killTimer);
  process.off('SIGINT', onInt);
  process.off('SIGTERM', onTerm);

  // The cause: rank 0 when it failed with an error of its own (all ranks hit the same bad input: rank 0's report is
  // the one to show), else the first rank that did, else the first that failed.
  // A worker that exited with a code (not by our signal) ended by itself, even after our SIGTERM was sent.
  const failed = workers.filter((w) => (w.code !== null && w.code !== 0) || (w.signal && !w.stopped)).sort((a, b) => a.endedAt - b.endedAt);
  const own = failed.filter((w) => !(w.errorLine && CONSEQUENCE.test(w.errorLine)));
  const cause = own.find((w) => w.rank === 0 && w.errorLine !== null) ?? own[0] ?? failed[0];
  if (!cause) {
    if (heldEnvelope !== null) process.stdout.write(heldEnvelope + '\n');
    if (!interrupted) return 0;
    const exitCode = 128 + (os.constants.signals[interrupted] ?? 2);
    if (spec.json && heldEnvelope === null) {
      printJson({
        schema: ENVELOPE_SCHEMA, tool: spec.tool, version: TOOL_VERSION, command: spec.command, ok: false,
        error: { message: `interrupted (${interrupted})`, code: errorCodeOf(exitCode), exitCode }, result: null, seconds: (performance.now() - t0) / 1000,
      } satisfies Envelope);
    }
    return exitCode;
  }
  if (cause.rank !== 0) {
    // Its error line has been shown with its prefix; when nothing of it passed the filter, its last lines are.
    if (cause.shown === 0) for (const line of cause.tail) process.stderr.write(`[rank ${cause.rank}] ${line}\n`);
  }
  const exitCode = exitCodeOf(cause);
  if (cause.rank === 0 && heldEnvelope !== null) process.stdout.write(heldEnvelope + '\n');
  else if (spec.json) {
    const rank0 = heldEnvelope !== null ? (JSON.parse(heldEnvelope) as Envelope) : null;
    printJson({
      schema: ENVELOPE_SCHEMA, tool: spec.tool, version: TOOL_VERSION, command: spec.command, ok: false,
      error: { message: describeEnd(cause), code: errorCodeOf(exitCode), exitCode },
      result: rank0?.result ?? null, seconds: (performance.now() - t0) / 1000,
    } satisfies Envelope);
  }
  // Rank 0's own error line went straight to stderr; another rank's end, or a signal, gets a last line naming it.
  if (cause.rank !== 0 || cause.signal) process.stderr.write(`error: ${describeEnd(cause)}\n`);
  return exitCode;
}

/** The error message of an envelope line with ok false (null otherwise). */
function envelopeError(line: string): string | null {
  try {
    const e = JSON.parse(line) as Partial<Envelope>;
    return e.ok === false && e.error ? e.error.message : null;
  } catch {
    return null;
  }
}

/** Calls fn with each complete line of a stream (and the last unterminated one at its end). */
function lines(stream: NodeJS.ReadableStream, fn: (line: string) => void): void {
  let buf = '';
  stream.setEncoding('utf8');
  stream.on('data', (d: string) => {
    buf += d;
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      fn(buf.slice(0, i).replace(/\r$/, ''));
      buf = buf.slice(i + 1);
    }
  });
  stream.on('end', () => {
    if (buf !== '') fn(buf);
    buf = '';
  });
}

/**
 * The hook of the paro and dflash entry points, called with the full argv before the command is parsed. With --gpus
 * or --ranks on a command that runs data parallel and no RANK in the environment, this process becomes the launcher:
 * it runs the workers, sets process.exitCode and returns true (the caller then returns). Otherwise it returns false
 * and the command runs here (as a worker when RANK/WORLD_SIZE are set: their values are checked first).
 */
export async function launchIfRequested(tool: Tool, argv: readonly string[], launchable: readonly string[] = LAUNCHABLE[tool]): Promise<boolean> {
  const args = argv.slice(2);
  const command = args.find((a) => !a.startsWith('-')) ?? '';
  if (!launchable.includes(command)) return false; // --gpus / --ranks on another command: commander rejects them
  if (args.includes('--help') || args.includes('-h')) return false; // help, not a run
  const json = args.includes('--json');
  const t0 = performance.now();
  try {
    const { flags, rest } = splitLaunchFlags(args);
    const launching = flags.gpus !== undefined || flags.ranks !== undefined;
    // Bad rank variables are a usage error before any work.
    if (rankInfoFromEnv(process.env) !== null) {
      if (launching) throw new UsageError('--gpus / --ranks start worker processes, but this process is one already (RANK is set in the environment)');
      return false;
    }
    if (!launching) return false;
    const device = deviceArg(rest);
    if (flags.gpus && device !== undefined && !['auto', 'cuda'].includes(device.trim().toLowerCase())) {
      throw new UsageError(`--gpus picks the GPUs: pass --device cuda (or leave --device out), not --device ${device}`);
    }
    process.exitCode = await launchWorkers({ tool, command, script: process.argv[1], execArgv: process.execArgv, args: rest, flags, json });
    return true;
  } catch (e) {
    const exitCode = reportError(e, args.includes('--debug'));
    process.exitCode = exitCode;
    if (json) {
      const message = e instanceof UserError ? e.message.replace(/\s*[\r\n]+\s*/g, ' ').trim() : String((e as Error).message ?? e).split('\n')[0];
      printJson({
        schema: ENVELOPE_SCHEMA, tool, version: TOOL_VERSION, command, ok: false,
        error: { message, code: errorCodeOf(exitCode), exitCode }, result: null, seconds: (performance.now() - t0) / 1000,
      } satisfies Envelope);
    }
    return true;
  }
}
