// Reading text inputs (JSON configs, JSONL records, expected-output files) with one-line errors naming the file: a
// directory, a device or a missing path is refused before anything is read; line files are streamed, not read whole.
import * as fs from 'node:fs';
import { UserError } from '../errors.js';

/** Largest file read whole: beyond it a JavaScript string cannot hold the text anyway. */
export const MAX_TEXT_FILE_BYTES = 512 * 2 ** 20;

/** Longest line readLines accepts, in UTF-16 units. */
export const MAX_LINE_CHARS = 64 * 2 ** 20;

/** The file's stats (links followed); a UserError naming it when it is missing or cannot be looked at. */
export function statInput(file: string, what: string): fs.Stats {
  try {
    return fs.statSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UserError(code === 'ENOENT' ? `${what} does not exist` : `cannot read ${what} (${code ?? String(e)})`, { file, cause: e });
  }
}

/** The whole file as UTF-8 text, its kind and size already checked; a UserError naming it when reading fails. */
export function readUtf8(file: string, what: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new UserError(`cannot read ${what} (${(e as NodeJS.ErrnoException).code ?? String(e)})`, { file, cause: e });
  }
}

/** The file's stats when it is a regular file; a UserError naming it otherwise. */
function regularFile(file: string, what: string): fs.Stats {
  const st = statInput(file, what);
  // A directory, a FIFO or a device (/dev/zero) would fail late or never end.
  if (!st.isFile()) throw new UserError(`${what} is ${st.isDirectory() ? 'a directory' : 'not a regular file'}`, { file });
  return st;
}

/** A regular file's text (UTF-8). `what` names the file's role in errors, e.g. "the training data". */
export function readTextFile(file: string, what: string, maxBytes = MAX_TEXT_FILE_BYTES): string {
  const st = regularFile(file, what);
  if (st.size > maxBytes) throw new UserError(`${what} is larger than ${Math.round(maxBytes / 2 ** 20)} MiB, more than can be read at once`, { file });
  return readUtf8(file, what);
}

/** A regular file's JSON value. */
export function readJsonFile(file: string, what: string): unknown {
  const text = readTextFile(file, what);
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new UserError(`${what} is not valid JSON (${(e as Error).message})`, { file, cause: e });
  }
}

/**
 * The lines of a regular UTF-8 file without their "\n" (a final line without one included), read 1 MiB at a time: a
 * file larger than memory's string limit is fine as long as each line is below MAX_LINE_CHARS. Invalid UTF-8 is a
 * UserError naming the file. The kind of file is checked at the call, the content while iterating.
 */
export function readLines(file: string, what: string): Iterable<string> {
  regularFile(file, what);
  return linesOf(file, what);
}

function* linesOf(file: string, what: string): Generator<string> {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    throw new UserError(`cannot read ${what} (${(e as NodeJS.ErrnoException).code ?? String(e)})`, { file, cause: e });
  }
  try {
    const decoder = new TextDecoder('utf-8', { fatal: true });
    const buf = new Uint8Array(1 << 20);
    let carry = '';
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      let text: string;
      try {
        text = decoder.decode(buf.subarray(0, n), { stream: n > 0 });
      } catch (e) {
        throw new UserError(`${what} is not UTF-8 text`, { file, cause: e });
      }
      carry += text;
      let start = 0;
      for (let nl = carry.indexOf('\n'); nl >= 0; nl = carry.indexOf('\n', start)) {
        yield carry.slice(start, nl);
        start = nl + 1;
      }
      carry = carry.slice(start);
      if (carry.length > MAX_LINE_CHARS) throw new UserError(`${what} has a line longer than ${MAX_LINE_CHARS} characters`, { file });
      if (n === 0) break;
    }
    if (carry !== '') yield carry;
  } finally {
    fs.closeSync(fd);
  }
}
