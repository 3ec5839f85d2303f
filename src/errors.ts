// Errors meant for the user: the CLI prints them as one line (no stack trace unless --debug) and exits non-zero.

export class UserError extends Error {
  /** The file the problem is about, when there is one; printed first. */
  readonly file?: string;
  readonly exitCode: number;

  constructor(message: string, opts: { file?: string; exitCode?: number; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'UserError';
    this.file = opts.file;
    this.exitCode = opts.exitCode ?? 1;
  }

  /** One line: "<file>: <message>" or "<message>". */
  oneLine(): string {
    const msg = this.message.replace(/\s*\n\s*/g, ' ');
    return this.file ? `${this.file}: ${msg}` : msg;
  }
}
