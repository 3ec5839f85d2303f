// Reading the small side files of a model folder (config.json, tokenizer files, chat templates, the shard index):
// only regular files of bounded size, so a link to /dev/zero, a FIFO or a directory fails at once with one line
// instead of hanging or exhausting memory.
import { UserError } from '../errors.js';
import { readUtf8, statInput } from './text-file.js';

/** Largest side file read (tokenizer.json of large vocabularies is tens of MB). */
export const MAX_SIDE_FILE_BYTES = 256 * 2 ** 20;

/** The UTF-8 text of a regular file of at most maxBytes; `what` names its role in errors ("the model config"). */
export function readSideFile(file: string, what: string, maxBytes = MAX_SIDE_FILE_BYTES): string {
  const st = statInput(file, what);
  if (st.isDirectory()) throw new UserError(`${what} is a directory, not a file`, { file });
  if (!st.isFile()) throw new UserError(`${what} is not a regular file (a device, FIFO or socket)`, { file });
  if (st.size > maxBytes) throw new UserError(`${what} is ${st.size} bytes, more than the ${maxBytes} accepted`, { file });
  return readUtf8(file, what);
}
