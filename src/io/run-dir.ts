// The run directory every command's output goes through. The output is built in `<out>.partial/` and renamed onto
// `<out>` when complete, so an interrupted run never leaves a half-written output where a finished one is expected,
// and can resume from the partial. Rules (checked before anything is touched):
// - an output that equals, contains or lies inside an input, or equals or contains the current directory, is refused;
// - an existing output is replaced only with --force, and a directory only when it carries our manifest;
// - an existing partial is continued only with --resume and the same fingerprint, discarded only with --force;
// - `<out>.lock` keeps two runs off one output (a lock left by a dead process on this host is taken over);
// - temporary folders left by an interrupted commit (`*.tmp-<pid>…`, `*.old-<pid>…`) are removed at open.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { UserError } from '../errors.js';
import { fingerprintDiff, stableJson } from './hash.js';
import { MANIFEST_FILE, isToolManifest, outputEntries, readToolManifest, writeManifest, type Manifest } from './manifest.js';

export interface RunDirSpec {
  /** Final output path. */
  out: string;
  /** quantize/train-drafter write a directory; generate-data a file. */
  kind: 'dir' | 'file';
  tool: 'paro' | 'dflash';
  command: string;
  /** role → path of every input (model, calib, data, prompts, drafter, target, ...). */
  inputs: Record<string, string>;
  force: boolean;
  resume: boolean;
  /** Resolved settings + input identities: a partial made with another fingerprint is refused. */
  fingerprint: Record<string, unknown>;
}

export interface RunDir {
  readonly out: string;
  /** `<out>.partial/` (for kind 'file' too: the file is built inside it, at `file`). */
  readonly partial: string;
  /** For kind 'file': where to build the file (inside the partial); for kind 'dir': the partial itself. */
  readonly file: string;
  /** An existing partial with the same fingerprint was found and kept. */
  readonly resumed: boolean;
  /** A file inside the partial directory. */
  path(name: string): string;
  /** progress.json of the partial, undefined when there is none; a corrupt one is a UserError naming it. */
  readProgress<T>(): T | undefined;
  /** Write progress.json atomically. */
  writeProgress(p: unknown): void;
  /**
   * dir: write manifest.json (with the sha256 of every output file) into the partial and rename it onto out;
   * file: rename the built file onto out (and the manifest, when given, to `<out>.manifest.json`). Releases the lock.
   */
  commit(manifest?: Manifest): void;
  /** Keep the partial (an interrupted run resumes from it), release the lock. */
  release(): void;
  /** Remove the partial, release the lock. */
  discard(): void;
}

export const PARTIAL_SUFFIX = '.partial';
export const LOCK_SUFFIX = '.lock';
/** The partial's own marker: which command made it and with what fingerprint. */
export const RUN_FILE = 'run.json';
export const PROGRESS_FILE = 'progress.json';

function errCode(e: unknown): string {
  return (e as NodeJS.ErrnoException)?.code ?? (e instanceof Error ? e.message : String(e));
}

/** The real path of p; when p does not exist, the real path of its nearest existing ancestor plus the rest. */
export function realPathNearest(p: string): string {
  const abs = path.resolve(p);
  const rest: string[] = [];
  let cur = abs;
  for (;;) {
    try {
      const real = fs.realpathSync(cur);
      return rest.length ? path.join(real, ...rest.reverse()) : real;
    } catch {
      const up = path.dirname(cur);
      if (up === cur) return abs;
      rest.push(path.basename(cur));
      cur = up;
    }
  }
}

/** a equals b or lies inside it. */
function within(a: string, b: string): boolean {
  const rel = path.relative(b, a);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

function lexists(p: string): fs.Stats | null {
  try {
    return fs.lstatSync(p);
  } catch {
    return null;
  }
}

/** The sidecar manifest of a file output. */
export function sidecarManifest(out: string): string {
  return `${path.resolve(out)}.manifest.json`;
}

/** Pure checks of an output path against its inputs, the current directory and what exists there. No side effects. */
export function checkOutputPath(spec: Pick<RunDirSpec, 'out' | 'kind' | 'inputs' | 'force'>): void {
  const out = spec.out;
  if (!out || out.trim() === '') throw new UserError('the output path is empty');
  const realOut = realPathNearest(out);
  const cwd = realPathNearest(process.cwd());
  if (within(cwd, realOut)) {
    throw new UserError('the output would replace the current directory or a folder containing it; choose a new path', { file: out });
  }
  for (const [role, p] of Object.entries(spec.inputs)) {
    if (!p) continue;
    const realIn = realPathNearest(p);
    if (within(realOut, realIn) || within(realIn, realOut)) {
      const how = realOut === realIn ? 'is' : within(realOut, realIn) ? 'lies inside' : 'contains';
      throw new UserError(`the output ${how} the ${role} input ${p}; choose a path outside the inputs`, { file: out });
    }
  }
  // The parent must be an existing, writable directory.
  const parent = path.dirname(path.resolve(out));
  const pst = statOrNull(parent);
  if (!pst) throw new UserError(`the output's folder ${parent} does not exist`, { file: out });
  if (!pst.isDirectory()) throw new UserError(`the output's parent ${nearestNonDir(parent)} is not a directory`, { file: out });
  try {
    fs.accessSync(parent, fs.constants.W_OK | fs.constants.X_OK);
  } catch {
    throw new UserError(`cannot write in the output's folder ${parent} (permission denied)`, { file: out });
  }
  const st = statOrNull(out);
  if (st) {
    if (spec.kind === 'dir') {
      if (!st.isDirectory()) throw new UserError('exists and is not a directory; choose another path', { file: out });
      if (!spec.force) throw new UserError('exists; pass --force to replace it', { file: out });
      if (!readToolManifest(out)) {
        throw new UserError(`exists and was not written by this tool (no ${MANIFEST_FILE} of ours); refusing to replace it, even with --force`, { file: out });
      }
    } else {
      if (!st.isFile()) throw new UserError('exists and is not a regular file; refusing to replace it', { file: out });
      if (!spec.force) throw new UserError('exists; pass --force to replace it', { file: out });
    }
  }
  if (spec.kind === 'file') {
    const side = sidecarManifest(out);
    const sst = statOrNull(side);
    if (sst && !(sst.isFile() && readToolManifestFile(side) && spec.force)) {
      throw new UserError(spec.force ? 'exists and was not written by this tool; refusing to replace it' : 'exists; pass --force to replace it', { file: side });
    }
  }
}

function readToolManifestFile(file: string): boolean {
  try {
    return isToolManifest(JSON.parse(fs.readFileSync(file, 'utf8')));
  } catch {
    return false;
  }
}

function statOrNull(p: string): fs.Stats | null {
  try {
    return fs.statSync(p);
  } catch {
    return null;
  }
}

/** The first ancestor of p (or p) that exists but is not a directory: what makes "a/file/x" impossible. */
function nearestNonDir(p: string): string {
  let cur = path.resolve(p);
  for (;;) {
    const st = statOrNull(cur);
    if (st && !st.isDirectory()) return cur;
    const up = path.dirname(cur);
    if (up === cur) return p;
    cur = up;
  }
}

interface LockInfo {
  pid: number;
  host: string;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function acquireLock(lock: string, out: string): void {
  const me: LockInfo = { pid: process.pid, host: os.hostname() };
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = fs.openSync(lock, fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_WRONLY, 0o644);
      try {
        fs.writeSync(fd, JSON.stringify(me) + '\n');
      } finally {
        fs.closeSync(fd);
      }
      return;
    } catch (e) {
      if (errCode(e) !== 'EEXIST') throw new UserError(`cannot create the lock file: ${errCode(e)}`, { file: lock, cause: e });
    }
    let held: LockInfo | null = null;
    try {
      held = JSON.parse(fs.readFileSync(lock, 'utf8')) as LockInfo;
    } catch {
      held = null;
    }
    if (!held || typeof held.pid !== 'number') {
      throw new UserError(`a lock file of unknown content keeps runs off ${out}; remove it if no run is writing there`, { file: lock });
    }
    if (held.host === me.host && (held.pid === me.pid || !processAlive(held.pid))) {
      fs.rmSync(lock, { force: true }); // stale: its process is gone
      continue;
    }
    throw new UserError(`another run (pid ${held.pid} on ${held.host}) is writing ${out}; wait for it, or remove the lock if that run is dead`, { file: lock });
  }
  throw new UserError('cannot take the lock', { file: lock });
}

function releaseLock(lock: string): void {
  try {
    const held = JSON.parse(fs.readFileSync(lock, 'utf8')) as LockInfo;
    if (held.pid === process.pid && held.host === os.hostname()) fs.rmSync(lock, { force: true });
  } catch {
    // already gone
  }
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Temporary names of an interrupted write: `[.]<base>[.x…].tmp-<pid>[-hex]` or `.old-<pid>…`, and `<name>.tmp`. */
function staleTempPattern(base: string): RegExp {
  return new RegExp(`^\\.?${escapeRe(base)}(\\.[A-Za-z0-9_-]+)*\\.(tmp|old)-\\d+(-[0-9a-f]+)?$`);
}

function removeStaleTemps(out: string, partial: string): void {
  const parent = path.dirname(out);
  const re = staleTempPattern(path.basename(out));
  for (const n of safeReaddir(parent)) if (re.test(n)) fs.rmSync(path.join(parent, n), { recursive: true, force: true });
  // Inside the partial: anything named *.tmp or *.tmp-<pid>… / *.old-<pid>… is an unfinished write.
  const inner = /(\.tmp|\.(tmp|old)-\d+(-[0-9a-f]+)?)$/;
  for (const n of safeReaddir(partial)) if (inner.test(n)) fs.rmSync(path.join(partial, n), { recursive: true, force: true });
}

function safeReaddir(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

interface RunFile {
  tool: string;
  command: string;
  fingerprint: Record<string, unknown>;
}

function readRunFile(partial: string): RunFile | null {
  const f = path.join(partial, RUN_FILE);
  try {
    const r = JSON.parse(fs.readFileSync(f, 'utf8')) as RunFile;
    return r && typeof r === 'object' && typeof r.fingerprint === 'object' && r.fingerprint !== null ? r : null;
  } catch {
    return null;
  }
}

const CORRUPT_PROGRESS = 'is corrupt (not valid JSON); pass --force to discard the partial run and start over';

/** A progress.json that exists must parse: checked before anything else about a partial that is to be resumed. */
function checkProgressReadable(file: string): void {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return; // absent (or unreadable: reported when it is read)
  }
  try {
    JSON.parse(text);
  } catch {
    throw new UserError(CORRUPT_PROGRESS, { file });
  }
}

function writeJsonAtomic(file: string, value: unknown): void {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, JSON.stringify(value, null, 1) + '\n');
  fs.renameSync(tmp, file);
}

/**
 * Open the run directory of an output: check the path (checkOutputPath), take the lock, clean stale temporaries,
 * then keep (resume), refuse or create `<out>.partial/`. Synchronous. Every refusal is a one-line UserError.
 */
export function openRunDir(spec: RunDirSpec): RunDir {
  checkOutputPath(spec);
  const out = path.resolve(spec.out);
  const partial = out + PARTIAL_SUFFIX;
  const lock = out + LOCK_SUFFIX;
  acquireLock(lock, spec.out);
  let resumed = false;
  try {
    removeStaleTemps(out, partial);
    const pst = lexists(partial);
    if (pst) {
      if (!pst.isDirectory()) throw new UserError('exists and is not a partial output folder of this tool; move it away', { file: partial });
      const run = readRunFile(partial);
      // Partials of the format before run.json: progress.json with a fingerprint string.
      const legacy = !run && lexists(path.join(partial, PROGRESS_FILE)) !== null;
      if (!run && !legacy && safeReaddir(partial).length > 0) {
        throw new UserError(`is not a partial output of this tool (no ${RUN_FILE}); move it away`, { file: partial });
      }
      if (spec.resume && !spec.force) checkProgressReadable(path.join(partial, PROGRESS_FILE));
      if (spec.resume && run && stableJson(run.fingerprint) === stableJson(spec.fingerprint) && run.command === spec.command) {
        resumed = true;
      } else if (spec.force) {
        fs.rmSync(partial, { recursive: true, force: true });
      } else if (!spec.resume) {
        throw new UserError('an interrupted run left this partial output; pass --resume to continue it or --force to discard it', { file: partial });
      } else {
        const diff = run ? fingerprintDiff(run.fingerprint, spec.fingerprint) : [];
        const what = run && run.command !== spec.command ? `command ${run.command}` : diff.length ? diff.slice(0, 6).join(', ') : 'an older format';
        throw new UserError(`was started with other inputs or settings (differs: ${what}); pass --force to discard it`, { file: partial });
      }
    }
    if (!resumed) {
      try {
        fs.mkdirSync(partial);
      } catch (e) {
        throw new UserError(`cannot create the partial output folder: ${errCode(e)}`, { file: partial, cause: e });
      }
      writeJsonAtomic(path.join(partial, RUN_FILE), { tool: spec.tool, command: spec.command, fingerprint: spec.fingerprint, pid: process.pid, created: new Date().toISOString() });
    }
  } catch (e) {
    releaseLock(lock);
    throw e;
  }

  let state: 'open' | 'committed' | 'released' = 'open';
  const file = spec.kind === 'file' ? path.join(partial, path.basename(out)) : partial;
  const progressFile = path.join(partial, PROGRESS_FILE);
  const ensureOpen = (what: string) => {
    if (state !== 'open') throw new Error(`${what} of ${spec.out}: the run directory was already ${state}`);
  };

  return {
    out, partial, file, resumed,
    path: (name: string) => path.join(partial, name),
    readProgress<T>(): T | undefined {
      let text: string;
      try {
        text = fs.readFileSync(progressFile, 'utf8');
      } catch (e) {
        if (errCode(e) === 'ENOENT') return undefined;
        throw new UserError(`cannot read: ${errCode(e)}`, { file: progressFile, cause: e });
      }
      try {
        return JSON.parse(text) as T;
      } catch {
        throw new UserError(CORRUPT_PROGRESS, { file: progressFile });
      }
    },
    writeProgress(p: unknown): void {
      ensureOpen('writeProgress');
      writeJsonAtomic(progressFile, p);
    },
    commit(manifest?: Manifest): void {
      ensureOpen('commit');
      const aside = (p: string) => path.join(path.dirname(p), `.${path.basename(p)}.old-${process.pid}-${crypto.randomBytes(4).toString('hex')}`);
      if (spec.kind === 'dir') {
        fs.rmSync(path.join(partial, RUN_FILE), { force: true });
        fs.rmSync(progressFile, { force: true });
        if (manifest) writeManifest(partial, { ...manifest, outputs: outputEntries(partial) });
        replaceWith(partial, out, spec, aside);
      } else {
        if (!lexists(file)) throw new Error(`commit of ${spec.out}: nothing was written to ${file}`);
        if (manifest) {
          const side = path.join(partial, path.basename(sidecarManifest(out)));
          fs.writeFileSync(side, JSON.stringify({ ...manifest, outputs: outputEntries(partial, new Set([path.basename(side), RUN_FILE, PROGRESS_FILE])) }, null, 2) + '\n');
          replaceWith(side, sidecarManifest(out), spec, aside);
        }
        replaceWith(file, out, spec, aside);
        fs.rmSync(partial, { recursive: true, force: true });
      }
      state = 'committed';
      releaseLock(lock);
    },
    release(): void {
      if (state !== 'open') return;
      state = 'released';
      releaseLock(lock);
    },
    discard(): void {
      if (state !== 'open') return;
      state = 'released';
      fs.rmSync(partial, { recursive: true, force: true });
      releaseLock(lock);
    },
  };
}

/** Rename from onto to; an existing `to` (allowed by checkOutputPath at open, re-checked here) is moved aside first. */
function replaceWith(from: string, to: string, spec: Pick<RunDirSpec, 'kind' | 'force' | 'out'>, aside: (p: string) => string): void {
  const st = lexists(to);
  let old: string | null = null;
  if (st) {
    // Something may have appeared since open: apply the same rules again.
    const ours = st.isDirectory() ? readToolManifest(to) !== null : st.isFile();
    if (!spec.force || !ours || (spec.kind === 'dir' && !st.isDirectory() && to === path.resolve(spec.out))) {
      throw new UserError(spec.force ? 'appeared during the run and is not ours; refusing to replace it' : 'appeared during the run; pass --force to replace it', { file: to });
    }
    old = aside(to);
    try {
      fs.renameSync(to, old);
    } catch (e) {
      throw new UserError(`cannot move the existing output aside: ${errCode(e)}`, { file: to, cause: e });
    }
  }
  try {
    fs.renameSync(from, to);
  } catch (e) {
    if (old !== null) fs.renameSync(old, to); // put the old output back
    throw new UserError(`cannot move the finished output into place: ${errCode(e)}`, { file: to, cause: e });
  }
  if (old !== null) fs.rmSync(old, { recursive: true, force: true });
}
