// Wraps a command: the one --json envelope on stdout (also on failure), one-line errors on stderr, and the documented
// exit codes (src/errors.ts EXIT_CODES: 0 ok, 1 usage, 2 input or environment, 3 quality gate, 4 internal).
import { CommanderError, type Command } from 'commander';
import { EXIT_CODES, UserError, errorCodeOf, type ErrorCode } from '../errors.js';
import { TOOL_VERSION } from './version.js';

export const ENVELOPE_SCHEMA = 'paro-dflash/envelope@1';

/** What every command prints on stdout with --json. */
export interface Envelope {
  schema: typeof ENVELOPE_SCHEMA;
  tool: 'paro' | 'dflash';
  version: string;
  command: string;
  ok: boolean;
  error?: { message: string; code: ErrorCode; exitCode: number; file?: string };
  /** The command's report; on failure what it had when it failed (a failed gate's figures), else null. */
  result: unknown;
  /** Wall-clock seconds of the command. */
  seconds: number;
}

export interface CommandSpec {
  tool: 'paro' | 'dflash';
  command: string;
  json?: boolean;
  debug?: boolean;
}

/** Handed to a command body: set `result` before throwing to keep figures in a failure's envelope. */
export interface CommandContext {
  result?: unknown;
}

/**
 * Run a command body. It prints its human-readable output itself (when not --json) and returns its report; with
 * --json the report goes out in the envelope. Errors become one line on stderr and the exit code of their class.
 */
export async function runCommand(spec: CommandSpec, fn: (ctx: CommandContext) => Promise<unknown>): Promise<void> {
  const t0 = performance.now();
  const ctx: CommandContext = {};
  try {
    const result = await fn(ctx);
    if (spec.json) printJson(envelope(spec, true, result ?? null, t0));
  } catch (e0) {
    const e = environmentError(e0, spec) ?? e0;
    const exitCode = reportError(e, !!spec.debug);
    process.exitCode = exitCode;
    if (spec.json) printJson(envelope(spec, false, ctx.result ?? null, t0, errorOf(e, exitCode)));
  }
}

/** What lowers a command's GPU memory, named in its out-of-memory error. */
const MEMORY_KNOBS: Record<string, string> = {
  'paro quantize': '--activations host (or disk), a smaller --batch-size or --seq-len',
  'paro eval': 'a smaller --batch or --seq-len',
  'paro release': 'the quantize.activations, quantize.batch_size, eval.batch, drafter.generate.batch or drafter.train.batch key',
  'dflash generate-data': 'a smaller --batch (its KV cache grows with batch × (longest prompt + --max-new-tokens))',
  'dflash train-drafter': 'a smaller --batch or --seq-len',
  'dflash eval': 'a smaller --max-new-tokens or shorter prompts',
};

/**
 * A failure of the machine rather than of the code: the GPU ran out of memory (the addon's "CUDA out of memory"
 * message, native/src/runtime.cu). It is reported as an input/environment error (exit 2) with what to change, not as
 * an internal error that asks for a bug report.
 */
export function environmentError(e: unknown, spec: Pick<CommandSpec, 'tool' | 'command'>): UserError | null {
  if (!(e instanceof Error) || e instanceof UserError || !e.message.startsWith('CUDA out of memory')) return null;
  const knobs = MEMORY_KNOBS[`${spec.tool} ${spec.command}`];
  const hint = knobs ? `; ${knobs} lowers what the run needs` : '; a smaller run or a larger GPU is needed';
  return new UserError(e.message.split('\n')[0] + hint, { cause: e });
}

function envelope(spec: CommandSpec, ok: boolean, result: unknown, t0: number, error?: Envelope['error']): Envelope {
  return {
    schema: ENVELOPE_SCHEMA, tool: spec.tool, version: TOOL_VERSION, command: spec.command, ok,
    ...(error ? { error } : {}), result, seconds: (performance.now() - t0) / 1000,
  };
}

function errorOf(e: unknown, exitCode: number): NonNullable<Envelope['error']> {
  if (e instanceof UserError) {
    const flat = (t: string): string => t.replace(/\s*[\r\n\u2028\u2029]+\s*/g, ' ').trim();
    return { message: flat(e.message), code: errorCodeOf(exitCode), exitCode, ...(e.file ? { file: e.file } : {}) };
  }
  const msg = e instanceof Error ? e.message : String(e);
  return { message: msg.split('\n')[0], code: errorCodeOf(exitCode), exitCode };
}

/** One line on stderr (the stack only with --debug); returns the exit code of the error's class. */
export function reportError(e: unknown, debug: boolean): number {
  if (e instanceof UserError) {
    process.stderr.write(`error: ${e.oneLine()}\n`);
    if (debug && e.stack) process.stderr.write(e.stack + '\n');
    return e.exitCode;
  }
  const err = e instanceof Error ? e : new Error(String(e));
  process.stderr.write(`error: ${err.message.split('\n')[0]}${debug ? '' : ' (run with --debug for details)'}\n`);
  if (debug && err.stack) process.stderr.write(err.stack + '\n');
  return EXIT_CODES.internal;
}

/** One JSON object on stdout. */
export function printJson(report: object): void {
  process.stdout.write(JSON.stringify(report) + '\n');
}

/**
 * Parse argv with a program: commander's own usage errors (unknown flag, bad value, missing argument) exit with code 1,
 * and with --json also print a failed envelope on stdout (commander has already printed its message on stderr).
 */
export async function runProgram(program: Command, tool: 'paro' | 'dflash', argv: string[]): Promise<void> {
  const t0 = performance.now();
  program.exitOverride();
  for (const c of program.commands) c.exitOverride();
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (!(e instanceof CommanderError)) throw e;
    if (e.exitCode === 0) return; // --help, --version
    process.exitCode = EXIT_CODES.usage;
    if (argv.includes('--json')) {
      const command = argv.slice(2).find((a) => !a.startsWith('-')) ?? '';
      const message = e.message.replace(/^error:\s*/, '').split('\n')[0];
      printJson(envelope({ tool, command }, false, null, t0, { message, code: 'usage', exitCode: EXIT_CODES.usage }));
    }
  }
}
