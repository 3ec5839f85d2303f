// Outputs are built under a temporary sibling name and renamed into place when complete, so a crash or Ctrl-C never
// leaves a half-written model where a finished one is expected, and nothing is overwritten without --force.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../errors.js';
import { errMessage } from './safetensors.js';

export interface PreparedOutput {
  /** Where to write: a sibling of the final path (same filesystem, so the rename is atomic). */
  readonly tmpPath: string;
  /** Renames tmpPath into place; with force, an existing output is moved aside first and removed afterwards. */
  commit(): void;
  /** Removes tmpPath (and anything in it). A no-op after commit or a previous abort. */
  abort(): void;
}

export function prepareOutput(finalPath: string, opts: { force: boolean; kind: 'dir' | 'file' }): PreparedOutput {
  const target = path.resolve(finalPath);
  if (!opts.force && fs.existsSync(target)) throw existsError(finalPath);
  const parent = path.dirname(target);
  try {
    fs.mkdirSync(parent, { recursive: true });
  } catch (e) {
    throw new UserError(`cannot create the output's parent directory: ${errMessage(e)}`, { file: parent, cause: e });
  }
  const base = path.basename(target);
  const tmpPath = path.join(parent, `.${base}.tmp-${uniqueSuffix()}`);
  if (opts.kind === 'dir') {
    try {
      fs.mkdirSync(tmpPath);
    } catch (e) {
      throw new UserError(`cannot create a temporary output directory: ${errMessage(e)}`, { file: tmpPath, cause: e });
    }
  }

  let state: 'open' | 'committed' | 'aborted' = 'open';
  return {
    tmpPath,
    commit(): void {
      if (state !== 'open') throw new Error(`output ${finalPath} was already ${state}`);
      if (!fs.existsSync(tmpPath)) throw new Error(`commit of ${finalPath}: nothing was written to ${tmpPath}`);
      let aside: string | null = null;
      if (fs.existsSync(target)) {
        // Something appeared after prepareOutput checked (or force was given): never replace it silently.
        if (!opts.force) throw existsError(finalPath);
        aside = path.join(parent, `.${base}.old-${uniqueSuffix()}`);
        renameOrFail(target, aside, finalPath);
      }
      try {
        fs.renameSync(tmpPath, target);
      } catch (e) {
        if (aside !== null) fs.renameSync(aside, target); // put the old output back
        throw new UserError(`cannot move the finished output into place: ${errMessage(e)}`, { file: finalPath, cause: e });
      }
      state = 'committed';
      if (aside !== null) fs.rmSync(aside, { recursive: true, force: true });
    },
    abort(): void {
      if (state !== 'open') return;
      state = 'aborted';
      fs.rmSync(tmpPath, { recursive: true, force: true });
    },
  };
}

function existsError(finalPath: string): UserError {
  return new UserError('exists; pass --force to overwrite', { file: finalPath });
}

function renameOrFail(from: string, to: string, finalPath: string): void {
  try {
    fs.renameSync(from, to);
  } catch (e) {
    throw new UserError(`cannot move the existing output aside: ${errMessage(e)}`, { file: finalPath, cause: e });
  }
}

function uniqueSuffix(): string {
  return `${process.pid}-${crypto.randomBytes(6).toString('hex')}`;
}
