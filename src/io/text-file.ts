// Reading small text inputs (JSON configs, JSONL records, expected-output files) with one-line errors naming the
// file: a directory, a device or a missing path is refused before anything is read.
import * as fs from 'node:fs';
import { UserError } from '../errors.js';

/** Largest file read whole: beyond it a JavaScript string cannot hold the text anyway. */
export const MAX_TEXT_FILE_BYTES = 512 * 2 ** 20;

/** A regular file's text (UTF-8). `what` names the file's role in errors, e.g. "the training data". */
export function readTextFile(file: string, what: string, maxBytes = MAX_TEXT_FILE_BYTES): string {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UserError(code === 'ENOENT' ? `${what} does not exist` : `cannot read ${what} (${code ?? String(e)})`, { file, cause: e });
  }
  // A directory, a FIFO or a device (/dev/zero) would fail late or never end.
  if (!st.isFile()) throw new UserError(`${what} is ${st.isDirectory() ? 'a directory' : 'not a regular file'}`, { file });
  if (st.size > maxBytes) throw new UserError(`${what} is larger than ${Math.round(maxBytes / 2 ** 20)} MiB, more than can be read at once`, { file });
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new UserError(`cannot read ${what} (${(e as NodeJS.ErrnoException).code ?? String(e)})`, { file, cause: e });
  }
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
