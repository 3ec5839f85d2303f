// Errors meant for the user: the CLI prints them as one line (no stack trace unless --debug) and exits with the
// documented code of their class (EXIT_CODES; README "Exit codes").

/** The process exit codes of both tools. */
export const EXIT_CODES = Object.freeze({
  ok: 0,
  /** Bad flags or options (unknown flag, bad value, missing argument, bad --set). */
  usage: 1,
  /** Bad input or environment: a file, a model, data, a config value, a missing GPU. */
  input: 2,
  /** A quality gate of `paro release` failed. */
  gate: 3,
  /** Anything unexpected: a bug (run with --debug for the stack). */
  internal: 4,
});

export type ErrorCode = 'usage' | 'input' | 'gate' | 'internal';

export class UserError extends Error {
  /** The file the problem is about, when there is one; printed first. */
  readonly file?: string;
  readonly exitCode: number;

  constructor(message: string, opts: { file?: string; exitCode?: number; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'UserError';
    this.file = opts.file;
    this.exitCode = opts.exitCode ?? EXIT_CODES.input;
  }

  /** One line: "<file>: <message>" or "<message>"; line breaks anywhere (even in a file name) become spaces. */
  oneLine(): string {
    const flat = (t: string): string => t.replace(/\s*[\r\n\u2028\u2029]+\s*/g, ' ').trim();
    const msg = flat(this.message);
    return this.file ? `${flat(this.file)}: ${msg}` : msg;
  }
}

/** A command line the tool cannot run: a missing argument or flag, flags that exclude each other (exit code 1). */
export class UsageError extends UserError {
  constructor(message: string, opts: { file?: string; cause?: unknown } = {}) {
    super(message, { ...opts, exitCode: EXIT_CODES.usage });
    this.name = 'UsageError';
  }
}

/** A quality gate that failed (exit code 3): its name, the measured value and the limit. */
export class GateError extends UserError {
  constructor(readonly gate: string, readonly value: number, readonly limit: number, message: string) {
    super(message, { exitCode: EXIT_CODES.gate });
    this.name = 'GateError';
  }
}

/** The envelope's error code of an exit code. */
export function errorCodeOf(exitCode: number): ErrorCode {
  if (exitCode === EXIT_CODES.usage) return 'usage';
  if (exitCode === EXIT_CODES.gate) return 'gate';
  if (exitCode === EXIT_CODES.input) return 'input';
  return 'internal';
}
