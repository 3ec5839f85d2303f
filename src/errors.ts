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

  /** One line: "<file>: <message>" or "<message>"; line breaks anywhere (even in a file name) become spaces. */
  oneLine(): string {
    const flat = (t: string): string => t.replace(/\s*[\r\n\u2028\u2029]+\s*/g, ' ').trim();
    const msg = flat(this.message);
    return this.file ? `${flat(this.file)}: ${msg}` : msg;
  }
}
