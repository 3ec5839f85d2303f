// Content identities: the one SHA-256 of a file (read in pieces, so a multi-GB checkpoint never sits in memory) and
// the one fingerprint of a run (settings + input identities), which decides whether a partial output may be resumed.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { UserError } from '../errors.js';

const CHUNK = 16 << 20;

/** SHA-256 (hex) of a file's bytes, read 16 MiB at a time; onBytes gets the size of each piece read (progress). */
export function sha256File(file: string, onBytes?: (bytes: number) => void): string {
  const h = createHash('sha256');
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    throw new UserError(`cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { file, cause: e });
  }
  try {
    // A device or a pipe (/dev/zero, a FIFO) would be read forever: only regular files have an identity.
    if (!fs.fstatSync(fd).isFile()) throw new UserError('is not a regular file (a device, pipe or directory cannot be an input)', { file });
    const buf = Buffer.allocUnsafe(CHUNK);
    let pos = 0;
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, pos);
      if (n <= 0) break;
      h.update(buf.subarray(0, n));
      pos += n;
      onBytes?.(n);
    }
  } finally {
    fs.closeSync(fd);
  }
  return h.digest('hex');
}

/** SHA-256 (hex) of a string or bytes. */
export function sha256Bytes(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * JSON with object keys sorted at every level, so equal values give equal text whatever order they were built in.
 * undefined fields are dropped (as JSON.stringify does); non-finite numbers become null.
 */
export function stableJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (ArrayBuffer.isView(v)) return Array.from(v as unknown as ArrayLike<number>);
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) {
      const x = (v as Record<string, unknown>)[k];
      if (x !== undefined) out[k] = sortKeys(x);
    }
    return out;
  }
  return v;
}

/** The fingerprint of a run: SHA-256 of the stable JSON of what determines its result (settings, input hashes, backend). */
export function fingerprint(what: Record<string, unknown>): string {
  return sha256Bytes(stableJson(what));
}

/**
 * The top-level keys (and one level below) where two fingerprint objects differ, for an error that says what changed,
 * e.g. ["settings.seqLen", "inputs.calib"].
 */
export function fingerprintDiff(a: Record<string, unknown>, b: Record<string, unknown>): string[] {
  const out: string[] = [];
  for (const k of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
    const x = a[k];
    const y = b[k];
    if (stableJson(x) === stableJson(y)) continue;
    const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
    if (isObj(x) && isObj(y)) for (const sub of fingerprintDiff(x, y)) out.push(`${k}.${sub}`);
    else out.push(k);
  }
  return out;
}
