// manifest.json: one format for every output of both tools (what was run, on what, with which settings, what came
// out). It is also the marker that lets --force replace an output: only a folder carrying a manifest of ours is ours.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../errors.js';
import { sha256File } from './hash.js';

export const MANIFEST_SCHEMA = 'paro-dflash/manifest@1';
export const MANIFEST_FILE = 'manifest.json';

export interface FileEntry {
  name: string;
  sha256: string;
  bytes: number;
}

/** An input: a file (sha256) or a directory (the files read from it, each hashed). */
export interface ManifestInput {
  role: string;
  path: string;
  sha256?: string;
  files?: FileEntry[];
}

export interface Manifest {
  schema: typeof MANIFEST_SCHEMA;
  tool: 'paro' | 'dflash';
  version: string;
  command: string;
  argv: string[];
  /** Resolved settings (after defaults and auto values). */
  settings: Record<string, unknown>;
  seed: number | null;
  device: string;
  backend: string;
  inputs: ManifestInput[];
  /** Every file of the output but manifest.json itself (filled in by RunDir.commit). */
  outputs: FileEntry[];
  metrics: Record<string, unknown>;
  /** Wall-clock seconds per stage. */
  seconds: Record<string, number>;
  created: string;
}

/** The fields a job supplies; schema, outputs and created are filled in. */
export type ManifestFields = Omit<Manifest, 'schema' | 'outputs' | 'created' | 'argv'> & { argv?: string[]; outputs?: FileEntry[] };

export function createManifest(f: ManifestFields): Manifest {
  return {
    schema: MANIFEST_SCHEMA,
    tool: f.tool, version: f.version, command: f.command, argv: f.argv ?? process.argv.slice(2),
    settings: f.settings, seed: f.seed, device: f.device, backend: f.backend, inputs: f.inputs,
    outputs: f.outputs ?? [], metrics: f.metrics, seconds: f.seconds, created: new Date().toISOString(),
  };
}

export function fileEntry(file: string, name = path.basename(file), onBytes?: (bytes: number) => void): FileEntry {
  return { name, sha256: sha256File(file, onBytes), bytes: fs.statSync(file).size };
}

/**
 * Identity of an input. A file: its sha256. A directory: per-file hashes of `files` (the files the command reads;
 * default: its regular top-level files), sorted by name.
 */
export function describeInput(role: string, p: string, files?: string[], onBytes?: (bytes: number) => void): ManifestInput {
  const abs = path.resolve(p);
  let st: fs.Stats;
  try {
    st = fs.statSync(abs);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const what = code === 'ENOENT' ? 'does not exist' : code === 'EACCES' ? 'cannot be read (permission denied)' : `cannot be read (${code ?? String(e)})`;
    throw new UserError(`the ${role} input ${what}`, { file: p, cause: e });
  }
  if (!st.isDirectory()) {
    if (!st.isFile()) throw new UserError(`the ${role} input is not a regular file (a device, pipe or socket cannot be an input)`, { file: p });
    return { role, path: abs, sha256: sha256File(abs, onBytes) };
  }
  const names = (files ?? fs.readdirSync(abs).filter((n) => fs.statSync(path.join(abs, n)).isFile())).slice().sort();
  return { role, path: abs, files: names.map((n) => fileEntry(path.join(abs, n), n, onBytes)) };
}

/** What identifies an input's content for a fingerprint: hashes only (the path may be spelled differently on resume). */
export function inputIdentity(i: ManifestInput): string | Record<string, string> {
  if (i.sha256 !== undefined) return i.sha256;
  return Object.fromEntries((i.files ?? []).map((f) => [f.name, f.sha256]));
}

/** Entries for every regular file under dir (recursively, names relative to dir), except those in skip. */
export function outputEntries(dir: string, skip: ReadonlySet<string> = new Set([MANIFEST_FILE])): FileEntry[] {
  const out: FileEntry[] = [];
  const walk = (rel: string) => {
    for (const n of fs.readdirSync(path.join(dir, rel)).sort()) {
      const r = rel ? `${rel}/${n}` : n;
      if (skip.has(r)) continue;
      const st = fs.lstatSync(path.join(dir, r));
      if (st.isDirectory()) walk(r);
      else if (st.isFile()) out.push(fileEntry(path.join(dir, r), r));
    }
  };
  walk('');
  return out;
}

export function writeManifest(dir: string, m: Manifest): void {
  const file = path.join(dir, MANIFEST_FILE);
  fs.writeFileSync(file + '.tmp', JSON.stringify(m, null, 2) + '\n');
  fs.renameSync(file + '.tmp', file);
}

/**
 * True when a parsed manifest.json was written by this toolchain: the current schema, or the formats written before
 * it (`paro quantize` with toolVersion and blocks; `dflash train-drafter` with settings and figures).
 */
export function isToolManifest(m: unknown): boolean {
  if (m === null || typeof m !== 'object') return false;
  const o = m as Record<string, unknown>;
  if (o.schema === MANIFEST_SCHEMA) return true;
  if (o.tool === 'paro quantize') return typeof o.toolVersion === 'string' && Array.isArray(o.blocks);
  if (o.tool === 'dflash train-drafter') return typeof o.settings === 'object' && typeof o.figures === 'object';
  return false;
}

/** The manifest in dir when it is one of ours, else null (missing, unreadable or foreign). */
export function readToolManifest(dir: string): Record<string, unknown> | null {
  try {
    const st = fs.lstatSync(path.join(dir, MANIFEST_FILE));
    if (!st.isFile()) return null;
    const m = JSON.parse(fs.readFileSync(path.join(dir, MANIFEST_FILE), 'utf8')) as unknown;
    return isToolManifest(m) ? (m as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}
