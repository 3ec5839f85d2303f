// Sharded safetensors output as Hugging Face lays it out: tensors assigned to shards in the given (module) order, a new
// shard when the next tensor would push the current one past maxShardSize; one shard is written as model.safetensors,
// several as model-0000i-of-0000n.safetensors plus model.safetensors.index.json (metadata.total_size, weight_map).
// Every shard's header is written when the writer opens, so tensors can be written at their offsets in any order and
// piece by piece (positional writes): the caller streams a model block by block, never holding it whole.
import * as fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.js';
import { INDEX_FILE, SINGLE_FILE } from './checkpoint.js';
import { dtypeByteSize, errMessage } from './safetensors.js';
import { encodeSafetensorsHeader, type TensorPlan } from './safetensors-writer.js';

export const DEFAULT_MAX_SHARD_SIZE = 5e9;

/** Shard groups (tensor names) in order: HF's rule; a tensor larger than the limit gets a shard of its own. */
export function assignShards(tensors: readonly TensorPlan[], maxShardSize: number): TensorPlan[][] {
  const shards: TensorPlan[][] = [];
  let cur: TensorPlan[] = [];
  let size = 0;
  for (const t of tensors) {
    const b = tensorBytes(t);
    if (cur.length > 0 && size + b > maxShardSize) {
      shards.push(cur);
      cur = [];
      size = 0;
    }
    cur.push(t);
    size += b;
  }
  if (cur.length > 0 || shards.length === 0) shards.push(cur);
  return shards;
}

export function shardFileName(i: number, n: number): string {
  return n === 1 ? SINGLE_FILE : `model-${String(i + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`;
}

function tensorBytes(t: TensorPlan): number {
  return t.shape.reduce((a, d) => a * d, 1) * dtypeByteSize(t.dtype);
}

const byName = (a: TensorPlan, b: TensorPlan): number => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

interface Slot {
  shard: number;
  /** Absolute byte offset of the tensor's data in its shard file. */
  begin: number;
  byteLength: number;
  written: number;
}

export class ShardedSafetensorsWriter {
  /** Output file names (shards, then the index when there are several). */
  readonly files: string[];
  readonly totalSize: number;
  private readonly paths: string[];
  private fds: (number | null)[];
  private readonly slots = new Map<string, Slot>();
  private readonly weightMap: Record<string, string> = {};

  /**
   * Creates the shard files in dir (replacing files of those names) with their headers. `tensors` in module order
   * (the shard assignment); within a shard the header lists tensors sorted by name, as the single-file export always has.
   */
  constructor(readonly dir: string, tensors: readonly TensorPlan[], opts: { maxShardSize?: number; metadata?: Record<string, string> } = {}) {
    const max = opts.maxShardSize ?? DEFAULT_MAX_SHARD_SIZE;
    if (!(max > 0)) throw new Error(`maxShardSize must be positive, got ${max}`);
    const groups = assignShards(tensors, max);
    this.paths = groups.map((_, i) => path.join(dir, shardFileName(i, groups.length)));
    this.files = this.paths.map((p) => path.basename(p));
    if (groups.length > 1) this.files.push(INDEX_FILE);
    this.fds = [];
    let total = 0;
    try {
      groups.forEach((g, i) => {
        const sorted = [...g].sort(byName);
        const header = encodeSafetensorsHeader(sorted, opts.metadata);
        let off = header.byteLength;
        for (const t of sorted) {
          if (this.slots.has(t.name)) throw new Error(`tensor '${t.name}' appears twice in the plan`);
          const len = tensorBytes(t);
          this.slots.set(t.name, { shard: i, begin: off, byteLength: len, written: 0 });
          this.weightMap[t.name] = path.basename(this.paths[i]);
          off += len;
          total += len;
        }
        const fd = openFile(this.paths[i]);
        this.fds.push(fd);
        writeAll(fd, header, 0, this.paths[i]);
      });
    } catch (e) {
      this.abort();
      throw e;
    }
    this.totalSize = total;
  }

  /** The whole tensor. */
  write(name: string, data: ArrayBufferView): void {
    const s = this.slot(name);
    if (data.byteLength !== s.byteLength) throw new Error(`tensor '${name}' needs ${s.byteLength} bytes, got ${data.byteLength}`);
    this.writeAt(name, 0, data);
  }

  /** Bytes [offset, offset + chunk.byteLength) of a tensor (pieces of one tensor must not overlap). */
  writeAt(name: string, offset: number, chunk: ArrayBufferView): void {
    const s = this.slot(name);
    if (offset < 0 || offset + chunk.byteLength > s.byteLength) {
      throw new Error(`tensor '${name}': bytes ${offset}..${offset + chunk.byteLength} outside its ${s.byteLength}`);
    }
    const fd = this.fds[s.shard];
    if (fd === null || fd === undefined) throw new Error(`${this.paths[s.shard]}: writer already closed`);
    writeAll(fd, new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength), s.begin + offset, this.paths[s.shard]);
    s.written += chunk.byteLength;
  }

  has(name: string): boolean {
    return this.slots.has(name);
  }

  /** Checks that every tensor was written in full, flushes and closes the shards, writes the index when sharded. */
  finish(): void {
    const missing = [...this.slots].filter(([, s]) => s.written !== s.byteLength).map(([n]) => n);
    if (missing.length) throw new Error(`finish() with ${missing.length} tensor(s) not written in full: ${missing.slice(0, 5).join(', ')}`);
    for (let i = 0; i < this.fds.length; i++) {
      const fd = this.fds[i];
      if (fd === null) continue;
      try {
        fs.fsyncSync(fd);
      } catch (e) {
        throw new UserError(`cannot flush the output: ${errMessage(e)}`, { file: this.paths[i], cause: e });
      } finally {
        fs.closeSync(fd);
        this.fds[i] = null;
      }
    }
    if (this.paths.length > 1) {
      const sortedMap = Object.fromEntries(Object.keys(this.weightMap).sort().map((k) => [k, this.weightMap[k]]));
      const index = { metadata: { total_size: this.totalSize }, weight_map: sortedMap };
      fs.writeFileSync(path.join(this.dir, INDEX_FILE), JSON.stringify(index, null, 2) + '\n');
    }
  }

  /** Closes and deletes every file of the output. Safe after a failure or twice. */
  abort(): void {
    for (let i = 0; i < this.fds.length; i++) {
      const fd = this.fds[i];
      if (fd !== null) {
        try {
          fs.closeSync(fd);
        } catch {
          // already unusable; removing the file is what matters
        }
        this.fds[i] = null;
      }
    }
    for (const p of this.paths) fs.rmSync(p, { force: true });
    fs.rmSync(path.join(this.dir, INDEX_FILE), { force: true });
  }

  private slot(name: string): Slot {
    const s = this.slots.get(name);
    if (!s) throw new Error(`tensor '${name}' is not in the output plan`);
    return s;
  }
}

function openFile(p: string): number {
  try {
    return fs.openSync(p, 'w');
  } catch (e) {
    throw new UserError(`cannot create the output file: ${errMessage(e)}`, { file: p, cause: e });
  }
}

function writeAll(fd: number, bytes: Uint8Array, pos: number, file: string): void {
  const CHUNK = 64 << 20;
  let done = 0;
  try {
    while (done < bytes.byteLength) {
      const len = Math.min(CHUNK, bytes.byteLength - done);
      done += fs.writeSync(fd, bytes, done, len, pos + done);
    }
  } catch (e) {
    throw new UserError(`cannot write the output: ${errMessage(e)}`, { file, cause: e });
  }
}
