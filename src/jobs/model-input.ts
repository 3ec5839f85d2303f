// The identity of a model directory as the dflash jobs record it (manifest inputs, resume fingerprints): the hashes
// of the files a load reads — configs, tokenizer files, chat templates, weights — not of stray files beside them.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../errors.js';
import { describeInput, type ManifestInput } from '../io/manifest.js';

const READ_BY_LOAD = /(\.json|\.safetensors|\.jinja|^tokenizer\.model)$/;

/** onBytes gets the size of each piece hashed (progress over a multi-GB checkpoint). */
export function describeModelDir(role: string, dir: string, onBytes?: (bytes: number) => void): ManifestInput {
  let names: string[];
  try {
    names = fs.readdirSync(dir).filter((n) => READ_BY_LOAD.test(n) && fs.statSync(path.join(dir, n)).isFile());
  } catch (e) {
    throw new UserError(`cannot read the ${role} directory: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, { file: dir, cause: e });
  }
  return describeInput(role, dir, names, onBytes);
}
