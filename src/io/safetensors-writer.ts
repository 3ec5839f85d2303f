// Streaming safetensors writer: the header is written first from a plan (names, dtypes, shapes, in order), then
// each tensor's bytes are appended in plan order, so only one tensor (or one chunk of it) is in memory at a time.
import * as fs from 'node:fs';
import { UserError } from '../errors.js';
import { IO_CHUNK_BYTES, SafetensorsDType, dtypeByteSize, errMessage, isSafetensorsDType } from './safetensors.js';

export interface TensorPlan {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
}

export interface TensorData extends TensorPlan {
  data: ArrayBufferView;
}

interface PlannedTensor extends TensorPlan {
  byteLength: number;
}

/**
 * The header bytes for tensors laid out back to back in plan order: u64 LE length, then JSON padded with spaces so
 * the data section starts at a multiple of 8 (as the reference implementation writes it).
 */
export function encodeSafetensorsHeader(plan: TensorPlan[], metadata?: Record<string, string>): Uint8Array {
  // Built by hand rather than from one object so integer-like tensor names keep their plan position.
  const parts: string[] = [];
  if (metadata !== undefined) parts.push(`"__metadata__":${JSON.stringify(metadata)}`);
  let offset = 0;
  for (const t of plan) {
    const len = plannedByteLength(t);
    const entry = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + len] };
    parts.push(`${JSON.stringify(t.name)}:${JSON.stringify(entry)}`);
    offset += len;
  }
  const json = new TextEncoder().encode(`{${parts.join(',')}}`);
  const padded = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + padded).fill(0x20);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  return out;
}

export class SafetensorsWriter {
  readonly path: string;
  private readonly plan: PlannedTensor[];
  private fd: number | null;
  private pos: number;
  /** Index into plan of the tensor being written, and bytes of it written so far. */
  private next = 0;
  private nextWritten = 0;

  constructor(path: string, plan: TensorPlan[], metadata?: Record<string, string>) {
    this.path = path;
    const seen = new Set<string>();
    for (const t of plan) {
      if (t.name === '__metadata__') throw new Error(`'__metadata__' cannot be a tensor name`);
      if (seen.has(t.name)) throw new Error(`tensor '${t.name}' appears twice in the plan`);
      seen.add(t.name);
    }
    if (metadata !== undefined)
      for (const [k, v] of Object.entries(metadata))
        if (typeof v !== 'string') throw new Error(`metadata '${k}' is not a string`);
    this.plan = plan.map((t) => ({ name: t.name, dtype: t.dtype, shape: [...t.shape], byteLength: plannedByteLength(t) }));
    const header = encodeSafetensorsHeader(plan, metadata);
    try {
      this.fd = fs.openSync(path, 'w');
    } catch (e) {
      throw new UserError(`cannot create safetensors file: ${errMessage(e)}`, { file: path, cause: e });
    }
    this.pos = 0;
    this.writeRaw(header);
  }

  /** Writes the whole of the next tensor in the plan (empty tensors too). */
  write(name: string, data: ArrayBufferView): void {
    const t = this.expect(name);
    if (this.nextWritten !== 0) throw new Error(`tensor '${name}' was already started with writeChunk`);
    if (data.byteLength !== t.byteLength)
      throw new Error(
        `tensor '${name}': ${t.dtype} [${t.shape.join(', ')}] needs ${t.byteLength} bytes, got ${data.byteLength}`,
      );
    this.writeRaw(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    this.next++;
  }

  /** Appends a piece of the next tensor in the plan; pieces must add up to its byte size before the next tensor. */
  writeChunk(name: string, chunk: ArrayBufferView): void {
    const t = this.expect(name);
    if (this.nextWritten + chunk.byteLength > t.byteLength)
      throw new Error(
        `tensor '${name}': ${this.nextWritten + chunk.byteLength} bytes written, more than its ${t.byteLength}`,
      );
    this.writeRaw(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    this.nextWritten += chunk.byteLength;
    if (this.nextWritten === t.byteLength) {
      this.next++;
      this.nextWritten = 0;
    }
  }

  /** Checks that every planned tensor was written, flushes to disk and closes. */
  finish(): void {
    if (this.fd === null) throw new Error(`${this.path}: writer already closed`);
    if (this.next < this.plan.length) {
      const missing = this.plan.slice(this.next).map((t) => t.name);
      throw new Error(
        `${this.path}: finish() with ${missing.length} tensor(s) not written: ${missing.slice(0, 5).join(', ')}` +
          (missing.length > 5 ? ', ...' : ''),
      );
    }
    try {
      fs.fsyncSync(this.fd);
    } catch (e) {
      throw new UserError(`cannot flush safetensors file: ${errMessage(e)}`, { file: this.path, cause: e });
    } finally {
      fs.closeSync(this.fd);
      this.fd = null;
    }
  }

  /** Closes and deletes the partial file. Safe to call more than once or after a failure. */
  abort(): void {
    if (this.fd !== null) {
      try {
        fs.closeSync(this.fd);
      } catch {
        // already unusable; removing the file is what matters
      }
      this.fd = null;
    }
    fs.rmSync(this.path, { force: true });
  }

  // The plan entry `name` must be the next one.
  private expect(name: string): PlannedTensor {
    if (this.fd === null) throw new Error(`${this.path}: writer already closed`);
    const t = this.plan[this.next];
    if (t === undefined) throw new Error(`tensor '${name}': every planned tensor was already written`);
    if (t.name !== name)
      throw new Error(
        `tensor '${name}' written out of order: the plan expects '${t.name}' next` +
          (this.nextWritten > 0 ? ` (${this.nextWritten} of ${t.byteLength} bytes written)` : ''),
      );
    return t;
  }

  private writeRaw(bytes: Uint8Array): void {
    const fd = this.fd;
    if (fd === null) throw new Error(`${this.path}: writer already closed`);
    let done = 0;
    try {
      while (done < bytes.byteLength) {
        const len = Math.min(IO_CHUNK_BYTES, bytes.byteLength - done);
        done += fs.writeSync(fd, bytes, done, len, this.pos + done);
      }
    } catch (e) {
      throw new UserError(`cannot write safetensors file: ${errMessage(e)}`, { file: this.path, cause: e });
    }
    this.pos += bytes.byteLength;
  }
}

/** Writes a small file in one go (tensors in the given order). The file is removed if anything fails. */
export function writeSafetensors(path: string, tensors: TensorData[], metadata?: Record<string, string>): void {
  const w = new SafetensorsWriter(path, tensors, metadata);
  try {
    for (const t of tensors) w.write(t.name, t.data);
    w.finish();
  } catch (e) {
    w.abort();
    throw e;
  }
}

function plannedByteLength(t: TensorPlan): number {
  if (!isSafetensorsDType(t.dtype)) throw new Error(`tensor '${t.name}': unknown dtype '${String(t.dtype)}'`);
  for (const d of t.shape)
    if (!Number.isSafeInteger(d) || d < 0)
      throw new Error(`tensor '${t.name}': shape [${t.shape.join(', ')}] has a dimension that is not a non-negative integer`);
  const n = t.shape.reduce((a, d) => a * d, 1) * dtypeByteSize(t.dtype);
  if (!Number.isSafeInteger(n)) throw new Error(`tensor '${t.name}': byte size overflows`);
  return n;
}
