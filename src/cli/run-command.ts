// Wraps a command: user errors become one line on stderr and a non-zero exit code; stack traces only with --debug.
import { UserError } from '../errors.js';

export async function runCommand(debug: boolean, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (e) {
    process.exitCode = reportError(e, debug);
  }
}

export function reportError(e: unknown, debug: boolean): number {
  if (e instanceof UserError) {
    process.stderr.write(`error: ${e.oneLine()}\n`);
    if (debug && e.stack) process.stderr.write(e.stack + '\n');
    return e.exitCode;
  }
  const err = e instanceof Error ? e : new Error(String(e));
  process.stderr.write(`error: ${err.message.split('\n')[0]}${debug ? '' : ' (run with --debug for details)'}\n`);
  if (debug && err.stack) process.stderr.write(err.stack + '\n');
  return 2;
}

/** Print a --json report: one JSON object on stdout. */
export function printJson(report: object): void {
  process.stdout.write(JSON.stringify(report) + '\n');
}
