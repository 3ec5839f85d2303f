// A model directory's weights: model.safetensors, or shards listed by model.safetensors.index.json, or else the one
// *.safetensors file present. Shards are opened on first use (header only) and kept open until close().
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../errors.js';
import { SafetensorsFile, TensorInfo, errMessage } from './safetensors.js';
import { assertFinite16, assertFiniteF32 } from './finite.js';
import { readSideFile } from './input-file.js';

export const SINGLE_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';

const isFloat = (d: string): boolean => d === 'F32' || d === 'F64' || d === 'F16' || d === 'BF16';

/** The path, when it is a regular file (or a link to one); a one-line UserError naming it otherwise. */
function requireRegularFile(file: string): string {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (e) {
    throw new UserError(`cannot open the checkpoint file: ${errMessage(e)}`, { file, cause: e });
  }
  if (!st.isFile()) {
    throw new UserError(st.isDirectory() ? 'is a directory, not a file' : 'is not a regular file', { file });
  }
  return file;
}

export class Checkpoint {
  readonly dir: string;
  readonly sharded: boolean;
  /** The index file when sharded, else the single safetensors file: what error messages point at. */
  readonly source: string;
  /** tensor name -> absolute path of the file holding it. */
  private readonly weightMap: Map<string, string>;
  private readonly open_: Map<string, SafetensorsFile> = new Map();
  private closed = false;

  private constructor(dir: string, sharded: boolean, source: string, weightMap: Map<string, string>) {
    this.dir = dir;
    this.sharded = sharded;
    this.source = source;
    this.weightMap = weightMap;
  }

  static open(dir: string): Checkpoint {
    let st: fs.Stats;
    try {
      st = fs.statSync(dir);
    } catch (e) {
      throw new UserError(`cannot open model directory: ${errMessage(e)}`, { file: dir, cause: e });
    }
    if (!st.isDirectory()) throw new UserError('not a directory (expected a model directory)', { file: dir });

    const single = path.join(dir, SINGLE_FILE);
    if (fs.existsSync(single)) return Checkpoint.fromSingle(dir, requireRegularFile(single));
    const index = path.join(dir, INDEX_FILE);
    if (fs.existsSync(index)) return Checkpoint.fromIndex(dir, requireRegularFile(index));

    const candidates = fs.readdirSync(dir).filter((f) => f.endsWith('.safetensors')).sort();
    if (candidates.length === 1) requireRegularFile(path.join(dir, candidates[0]));
    if (candidates.length === 1) return Checkpoint.fromSingle(dir, path.join(dir, candidates[0]));
    if (candidates.length === 0)
      throw new UserError(`no checkpoint here: expected ${SINGLE_FILE}, ${INDEX_FILE} or a *.safetensors file`, {
        file: dir,
      });
    throw new UserError(
      `${candidates.length} .safetensors files (${candidates.slice(0, 4).join(', ')}${candidates.length > 4 ? ', ...' : ''}) ` +
        `but no ${SINGLE_FILE} or ${INDEX_FILE} saying how they go together`,
      { file: dir },
    );
  }

  private static fromSingle(dir: string, file: string): Checkpoint {
    const sf = SafetensorsFile.open(file);
    const map = new Map<string, string>();
    for (const n of sf.names()) map.set(n, file);
    const ck = new Checkpoint(dir, false, file, map);
    ck.open_.set(file, sf);
    return ck;
  }

  private static fromIndex(dir: string, index: string): Checkpoint {
    const fail = (msg: string): UserError => new UserError(`invalid checkpoint index: ${msg}`, { file: index });
    const text = readSideFile(index, 'the checkpoint index');
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw fail(`not valid JSON (${errMessage(e)})`);
    }
    if (typeof json !== 'object' || json === null || Array.isArray(json)) throw fail('not a JSON object');
    const weightMap = (json as Record<string, unknown>)['weight_map'];
    if (typeof weightMap !== 'object' || weightMap === null || Array.isArray(weightMap))
      throw fail(`no 'weight_map' object (tensor name -> shard file)`);
    const map = new Map<string, string>();
    const shardPaths = new Map<string, string>(); // shard name as written -> absolute path
    for (const [name, shard] of Object.entries(weightMap as Record<string, unknown>)) {
      if (typeof shard !== 'string' || shard === '')
        throw fail(`weight_map entry for tensor '${name}' is not a file name`);
      let p = shardPaths.get(shard);
      if (p === undefined) {
        // Shards live in the model directory; refuse paths that leave it.
        const resolved = path.resolve(dir, shard);
        const rel = path.relative(path.resolve(dir), resolved);
        if (path.isAbsolute(shard) || rel.startsWith('..') || path.isAbsolute(rel))
          throw fail(`shard '${shard}' (for tensor '${name}') is outside the model directory`);
        if (!fs.existsSync(resolved)) throw fail(`shard '${shard}' (for tensor '${name}' and others) does not exist`);
        requireRegularFile(resolved);
        p = path.join(dir, shard);
        shardPaths.set(shard, p);
      }
      map.set(name, p);
    }
    if (map.size === 0) throw fail('weight_map is empty');
    return new Checkpoint(dir, true, index, map);
  }

  /** Tensor names (from the index when sharded, without opening shards). */
  names(): string[] {
    return [...this.weightMap.keys()];
  }

  has(name: string): boolean {
    return this.weightMap.has(name);
  }

  /** Paths of the safetensors files, in first-use order of the weight map. */
  files(): string[] {
    return [...new Set(this.weightMap.values())];
  }

  /** Metadata of the single file, or null when sharded. */
  get metadata(): Record<string, string> | null {
    return this.sharded ? null : this.shard(this.source).metadata;
  }

  /** The tensor's info; a UserError naming the tensor and the checkpoint when it is missing. */
  require(name: string): TensorInfo {
    const file = this.weightMap.get(name);
    if (file === undefined)
      throw new UserError(`tensor '${name}' is missing from the checkpoint in ${this.dir}`, { file: this.source });
    const sf = this.shard(file);
    if (!sf.has(name))
      throw new UserError(
        `tensor '${name}' is assigned to shard '${path.basename(file)}' by the index, but that shard does not contain it`,
        { file: this.source },
      );
    return sf.info(name);
  }

  info(name: string): TensorInfo {
    return this.require(name);
  }

  readBytes(name: string): Uint8Array {
    return this.fileOf(name).readBytes(name);
  }

  readBytesInto(name: string, dst: Uint8Array, offset = 0): Uint8Array {
    return this.fileOf(name).readBytesInto(name, dst, offset);
  }

  /** The tensor as f32; a UserError naming it when a float tensor holds NaN or ±Inf. */
  readF32(name: string): Float32Array {
    const info = this.require(name);
    const out = this.fileOf(name).readF32(name);
    if (isFloat(info.dtype)) assertFiniteF32(out, name, info.file);
    return out;
  }

  readI32(name: string): Int32Array {
    return this.fileOf(name).readI32(name);
  }

  /** F16/BF16 bits as stored; a UserError naming the tensor when it holds NaN or ±Inf. */
  readRaw16(name: string): Uint16Array {
    const info = this.require(name);
    const out = this.fileOf(name).readRaw16(name);
    assertFinite16(out, info.dtype === 'BF16' ? 'BF16' : 'F16', name, info.file);
    return out;
  }

  /**
   * Opens every shard and checks that it holds the tensors the index assigns to it, so a broken checkpoint fails
   * before hours of work rather than when the tensor is first needed.
   */
  validate(): void {
    for (const name of this.weightMap.keys()) this.require(name);
  }

  close(): void {
    for (const sf of this.open_.values()) sf.close();
    this.open_.clear();
    this.closed = true;
  }

  private fileOf(name: string): SafetensorsFile {
    return this.shard(this.require(name).file);
  }

  private shard(file: string): SafetensorsFile {
    let sf = this.open_.get(file);
    if (!sf) {
      if (this.closed) throw new Error(`checkpoint ${this.dir} is closed`);
      sf = SafetensorsFile.open(file);
      this.open_.set(file, sf);
    }
    return sf;
  }
}
