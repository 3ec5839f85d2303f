// Helpers of the bad-input corpus: a per-case scratch folder with copies of the demo model and small data files,
// the CLI spawned asynchronously (so that cases run side by side), a snapshot of a folder tree (every file's hash)
// to prove inputs are byte-identical afterwards and no output is left, and editors for safetensors/JSON files.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const DEMO = path.join(ROOT, 'examples', 'tiny-qwen3');
const TSX = pathToFileURL(path.join(ROOT, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;

export type Tool = 'paro' | 'dflash';

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  seconds: number;
}

/** Runs `paro`/`dflash` from the sources; SIGKILL after timeoutS (a hang is a failure, never a wait). */
export function runCli(tool: Tool, args: string[], cwd: string, timeoutS: number): Promise<RunResult> {
  const script = path.join(ROOT, 'scripts', tool === 'paro' ? 'paro-dev.ts' : 'dflash-dev.ts');
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', TSX, script, ...args], {
      cwd, env: { ...process.env, PARO_QUIET: '1' }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (d: string) => { if (stdout.length < 1e6) stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { if (stderr.length < 1e6) stderr += d; });
    const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, timeoutS * 1000);
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut, seconds: (Date.now() - t0) / 1000 });
    });
  });
}

/** At most `n` cases at a time (2 cores: more only adds memory pressure). */
export function limiter(n: number): <T>(fn: () => Promise<T>) => Promise<T> {
  let active = 0;
  const waiting: (() => void)[] = [];
  return async <T>(fn: () => Promise<T>): Promise<T> => {
    if (active >= n) await new Promise<void>((r) => waiting.push(r));
    active++;
    try {
      return await fn();
    } finally {
      active--;
      waiting.shift()?.();
    }
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Folder snapshots

/** relative path -> 'dir' | 'fifo' | 'link:<target>' | '<sha256>' (FIFOs are never opened). */
export type Snapshot = Map<string, string>;

export function snapshot(dir: string): Snapshot {
  const out: Snapshot = new Map();
  const walk = (abs: string, rel: string): void => {
    const st = lstatSync(abs);
    if (st.isSymbolicLink()) out.set(rel, `link:${readlinkSync(abs)}`);
    else if (st.isDirectory()) {
      if (rel !== '') out.set(rel, 'dir');
      for (const name of readdirSync(abs).sort()) walk(path.join(abs, name), rel === '' ? name : path.join(rel, name));
    } else if (st.isFIFO()) out.set(rel, 'fifo');
    else if (st.isFile()) out.set(rel, createHash('sha256').update(readFileSync(abs)).digest('hex'));
    else out.set(rel, 'other');
  };
  walk(dir, '');
  return out;
}

/**
 * Differences between two snapshots: inputs changed or removed, and new paths not allowed by `mayRemain`
 * (paths relative to the snapshot root; a new path inside an allowed folder is allowed too), except `mayGo` removed.
 */
export function snapshotDiff(before: Snapshot, after: Snapshot, mayRemain: string[], mayGo: string[] = []): string[] {
  const problems: string[] = [];
  for (const [p, h] of before) {
    const now = after.get(p);
    if (now === undefined) {
      if (!mayGo.includes(p)) problems.push(`removed: ${p}`);
    }
    else if (now !== h) problems.push(`changed: ${p}`);
  }
  const allowed = (p: string): boolean => mayRemain.some((r) => p === r || p.startsWith(r + path.sep));
  for (const p of after.keys()) if (!before.has(p) && !allowed(p)) problems.push(`left behind: ${p}`);
  return problems;
}

// ---------------------------------------------------------------------------------------------------------------
// File editors

export interface RawTensor {
  name: string;
  dtype: string;
  shape: number[];
  data: Buffer;
}

function parseSafetensors(file: string): { header: Record<string, unknown>; json: string; data: Buffer } {
  const b = readFileSync(file);
  const n = Number(b.readBigUInt64LE(0));
  const json = b.subarray(8, 8 + n).toString('utf8');
  return { header: JSON.parse(json) as Record<string, unknown>, json, data: b.subarray(8 + n) };
}

function writeRaw(file: string, headerText: string | Buffer, data: Buffer, lengthOverride?: bigint): void {
  const h = typeof headerText === 'string' ? Buffer.from(headerText, 'utf8') : headerText;
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(lengthOverride ?? BigInt(h.length));
  writeFileSync(file, Buffer.concat([len, h, data]));
}

/** The tensors of a safetensors file in data order, editable; written back with consistent offsets. */
export function editTensors(file: string, edit: (ts: RawTensor[]) => void): void {
  const { header, data } = parseSafetensors(file);
  const meta = header.__metadata__;
  const ts: RawTensor[] = Object.entries(header)
    .filter(([k]) => k !== '__metadata__')
    .map(([name, v]) => {
      const e = v as { dtype: string; shape: number[]; data_offsets: [number, number] };
      return { name, dtype: e.dtype, shape: e.shape, data: Buffer.from(data.subarray(e.data_offsets[0], e.data_offsets[1])), begin: e.data_offsets[0] };
    })
    .sort((a, b) => a.begin - b.begin);
  edit(ts);
  const out: Record<string, unknown> = meta === undefined ? {} : { __metadata__: meta };
  let off = 0;
  for (const t of ts) {
    out[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + t.data.length] };
    off += t.data.length;
  }
  writeRaw(file, JSON.stringify(out), Buffer.concat(ts.map((t) => t.data)));
}

/** Edits the header JSON only (the data section is kept as it is: for lies about offsets, shapes, dtypes). */
export function editHeader(file: string, edit: (h: Record<string, { dtype: string; shape: number[]; data_offsets: number[] }>) => void): void {
  const { header, data } = parseSafetensors(file);
  edit(header as Record<string, { dtype: string; shape: number[]; data_offsets: number[] }>);
  writeRaw(file, JSON.stringify(header), data);
}

/** Replaces the header text (may be anything) keeping the data; lengthOverride lies about its length. */
export function replaceHeaderText(file: string, text: (json: string) => string | Buffer, lengthOverride?: bigint): void {
  const { json, data } = parseSafetensors(file);
  writeRaw(file, text(json), data, lengthOverride);
}

/** Sets element `index` of a float tensor (F32, F16 or BF16) to NaN or ±Infinity, in place. */
export function poison(file: string, tensor: string, value: number, index = 0): void {
  editTensors(file, (ts) => {
    const t = ts.find((x) => x.name === tensor);
    if (!t) throw new Error(`test setup: no tensor ${tensor} in ${file}`);
    const f32 = Buffer.alloc(4);
    f32.writeFloatLE(value);
    if (t.dtype === 'F32') f32.copy(t.data, 4 * index);
    else if (t.dtype === 'BF16') t.data.writeUInt16LE(f32.readUInt16LE(2), 2 * index);
    else if (t.dtype === 'F16') t.data.writeUInt16LE(Number.isNaN(value) ? 0x7e00 : value > 0 ? 0x7c00 : 0xfc00, 2 * index);
    else throw new Error(`test setup: ${tensor} is ${t.dtype}`);
  });
}

export function editJson(file: string, edit: (j: Record<string, unknown>) => void): void {
  const j = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  edit(j);
  writeFileSync(file, JSON.stringify(j, null, 2));
}

export function copyDir(from: string, to: string): void {
  mkdirSync(path.dirname(to), { recursive: true });
  cpSync(from, to, { recursive: true });
}

/** args with option `opt` set to `value` (replaced in place when present, else appended); null removes it. */
export function withOpt(args: string[], opt: string, value: string | null): string[] {
  const i = args.indexOf(opt);
  if (i >= 0) return value === null ? [...args.slice(0, i), ...args.slice(i + 2)] : [...args.slice(0, i + 1), value, ...args.slice(i + 2)];
  return value === null ? args : [...args, opt, value];
}
