// safetensors reader: validates the header, then reads tensors lazily with positional I/O on a file descriptor,
// so files larger than RAM (or than the 2 GiB single-read limit) work. Format: u64 LE header length N, N bytes of
// UTF-8 JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?: {str: str}}, then the data section.
import * as fs from 'node:fs';
import * as os from 'node:os';
import { UserError } from '../errors.js';
import { bf16ToF32, f16ToF32 } from '../numerics/half.js';

export type SafetensorsDType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

const DTYPE_SIZES: Record<SafetensorsDType, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

export const SAFETENSORS_DTYPES = Object.keys(DTYPE_SIZES) as SafetensorsDType[];

export function isSafetensorsDType(s: unknown): s is SafetensorsDType {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_SIZES, s);
}

export function dtypeByteSize(d: SafetensorsDType): number {
  return DTYPE_SIZES[d];
}

export interface TensorInfo {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  /** Absolute byte offset of the tensor's data in the file. */
  begin: number;
  byteLength: number;
  /** Path of the file holding the tensor. */
  file: string;
}

/** Largest header the reader accepts (the reference implementation's limit). */
export const MAX_HEADER_BYTES = 100_000_000;
/** Largest single read or write: one fs call of 2 GiB or more throws in Node. */
export const IO_CHUNK_BYTES = 1 << 30;

if (os.endianness() !== 'LE') throw new Error('safetensors I/O assumes a little-endian host');

export class SafetensorsFile {
  readonly path: string;
  readonly metadata: Record<string, string> | null;
  private fd: number | null;
  private readonly tensors: Map<string, TensorInfo>;

  private constructor(path: string, fd: number, tensors: Map<string, TensorInfo>, metadata: Record<string, string> | null) {
    this.path = path;
    this.fd = fd;
    this.tensors = tensors;
    this.metadata = metadata;
  }

  /** Opens the file and validates its header; no tensor data is read. */
  static open(path: string): SafetensorsFile {
    let fd: number;
    try {
      // O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused just below); no effect on regular files.
      fd = fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    } catch (e) {
      throw new UserError(`cannot open safetensors file: ${errMessage(e)}`, { file: path, cause: e });
    }
    try {
      const st = fs.fstatSync(fd);
      if (!st.isFile())
        throw new UserError(`not a regular file (${fileKind(st)}); expected a .safetensors file`, { file: path });
      const size = st.size;
      const { tensors, metadata } = readHeader(fd, size, path);
      return new SafetensorsFile(path, fd, tensors, metadata);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  /** Tensor names in data-offset order. */
  names(): string[] {
    return [...this.tensors.keys()];
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  info(name: string): TensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new UserError(`no tensor '${name}' in this file`, { file: this.path });
    return t;
  }

  /** The tensor's bytes as stored (little-endian). */
  readBytes(name: string): Uint8Array {
    const t = this.info(name);
    const out = allocBytes(t);
    this.readAt(t.begin, out, t.name);
    return out;
  }

  /**
   * Part of a tensor's bytes: dst.byteLength bytes from byte `offset` within the tensor, into dst (for streaming
   * tensors too large for one buffer).
   */
  readBytesInto(name: string, dst: Uint8Array, offset = 0): Uint8Array {
    const t = this.info(name);
    if (!Number.isInteger(offset) || offset < 0 || offset + dst.byteLength > t.byteLength)
      throw new RangeError(`bytes ${offset}..${offset + dst.byteLength} are outside tensor '${name}' (${t.byteLength} bytes)`);
    this.readAt(t.begin + offset, dst, t.name);
    return dst;
  }

  /** The tensor as f32: floats converted exactly (F64 rounded), integers and booleans converted to their values. */
  readF32(name: string): Float32Array {
    const t = this.info(name);
    const n = t.byteLength / DTYPE_SIZES[t.dtype];
    const out = allocF32(n, t);
    const outBytes = new Uint8Array(out.buffer);
    switch (t.dtype) {
      case 'F32':
        this.readAt(t.begin, outBytes, t.name);
        return out;
      case 'BF16':
      case 'F16': {
        // Read the 16-bit data into the upper half of the output and widen front to back in place: element i's
        // write (bytes 4i..4i+3) only overwrites input elements <= i, which are already consumed.
        const raw = new Uint16Array(out.buffer, 2 * n, n);
        this.readAt(t.begin, new Uint8Array(out.buffer, 2 * n, 2 * n), t.name);
        return t.dtype === 'BF16' ? bf16ToF32(raw, out) : f16ToF32(raw, out);
      }
      default: {
        const bytes = this.readBytes(name);
        const src = typedView(bytes, t.dtype);
        if (src instanceof BigInt64Array) for (let i = 0; i < n; i++) out[i] = Number(src[i]);
        else for (let i = 0; i < n; i++) out[i] = src[i];
        return out;
      }
    }
  }

  /** The tensor as int32: from I32, I16, I8, U8, BOOL, or I64 when every value fits in int32. */
  readI32(name: string): Int32Array {
    const t = this.info(name);
    const n = t.byteLength / DTYPE_SIZES[t.dtype];
    switch (t.dtype) {
      case 'I32': {
        const out = new Int32Array(n);
        this.readAt(t.begin, new Uint8Array(out.buffer), t.name);
        return out;
      }
      case 'I64': {
        const bytes = this.readBytes(name);
        const words = new Int32Array(bytes.buffer, 0, 2 * n); // [lo, hi] pairs
        const out = new Int32Array(n);
        for (let i = 0; i < n; i++) {
          const lo = words[2 * i];
          // Fits in int32 exactly when the high word is the sign extension of the low word.
          if (words[2 * i + 1] !== lo >> 31)
            throw new UserError(
              `tensor '${name}' (I64) holds ${new BigInt64Array(bytes.buffer, 8 * i, 1)[0]} at index ${i}, outside the int32 range`,
              { file: t.file },
            );
          out[i] = lo;
        }
        return out;
      }
      case 'I16':
      case 'I8':
      case 'U8':
      case 'BOOL': {
        const src = typedView(this.readBytes(name), t.dtype) as Int16Array | Int8Array | Uint8Array;
        const out = new Int32Array(n);
        for (let i = 0; i < n; i++) out[i] = src[i];
        return out;
      }
      default:
        throw new UserError(`tensor '${name}' is ${t.dtype}, not an integer dtype`, { file: t.file });
    }
  }

  /** F16 or BF16 bits as stored. */
  readRaw16(name: string): Uint16Array {
    const t = this.info(name);
    if (t.dtype !== 'F16' && t.dtype !== 'BF16')
      throw new UserError(`tensor '${name}' is ${t.dtype}, expected F16 or BF16`, { file: t.file });
    const out = new Uint16Array(t.byteLength / 2);
    this.readAt(t.begin, new Uint8Array(out.buffer), t.name);
    return out;
  }

  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }

  // Fills dst from absolute file position `pos`, in chunks of at most 1 GiB.
  private readAt(pos: number, dst: Uint8Array, tensor: string): void {
    if (this.fd === null) throw new Error(`${this.path} is closed`);
    readFully(this.fd, dst, pos, this.path, tensor);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Header

interface ParsedHeader {
  tensors: Map<string, TensorInfo>;
  metadata: Record<string, string> | null;
}

function readHeader(fd: number, fileSize: number, path: string): ParsedHeader {
  function fail(msg: string): never {
    throw new UserError(`invalid safetensors file: ${msg}`, { file: path });
  }
  if (fileSize < 8) fail(`the file is ${fileSize} bytes, shorter than the 8-byte header length`);
  const lenBytes = new Uint8Array(8);
  readFully(fd, lenBytes, 0, path, null);
  const lenWords = new Uint32Array(lenBytes.buffer);
  const headerLen = lenWords[0] + lenWords[1] * 2 ** 32;
  if (headerLen === 0) fail('the header length is 0');
  if (headerLen > MAX_HEADER_BYTES) fail(`the header length ${headerLen} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  if (8 + headerLen > fileSize)
    fail(`the header length ${headerLen} runs beyond the end of the file (${fileSize} bytes)`);

  const headerBytes = new Uint8Array(headerLen);
  readFully(fd, headerBytes, 8, path, null);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch {
    return fail('the header is not valid UTF-8');
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    return fail(`the header is not valid JSON (${errMessage(e)})`);
  }
  if (!isPlainObject(json)) return fail('the header is not a JSON object');

  const dataStart = 8 + headerLen;
  const dataSize = fileSize - dataStart;
  let metadata: Record<string, string> | null = null;
  const entries: { info: TensorInfo; begin: number; end: number }[] = [];
  for (const [name, value] of Object.entries(json)) {
    if (name === '__metadata__') {
      metadata = parseMetadata(value, fail);
      continue;
    }
    const at = `tensor '${name}'`;
    if (!isPlainObject(value)) fail(`${at}: the entry is not an object`);
    const entry = value as Record<string, unknown>;
    for (const key of ['dtype', 'shape', 'data_offsets'])
      if (!(key in entry)) fail(`${at}: the entry has no '${key}'`);
    const { dtype, shape, data_offsets: offsets } = entry;
    if (typeof dtype !== 'string') fail(`${at}: dtype is not a string`);
    if (!isSafetensorsDType(dtype))
      fail(`${at}: unknown dtype '${String(dtype)}' (known: ${SAFETENSORS_DTYPES.join(', ')})`);
    if (!Array.isArray(shape)) fail(`${at}: shape is not an array`);
    for (const d of shape as unknown[])
      if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0)
        fail(`${at}: shape ${JSON.stringify(shape)} has a dimension that is not a non-negative integer`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => typeof o === 'number'))
      fail(`${at}: data_offsets is not a pair of numbers`);
    const [begin, end] = offsets as [number, number];
    if (!Number.isSafeInteger(begin) || !Number.isSafeInteger(end) || begin < 0 || end < begin)
      fail(`${at}: data_offsets [${begin}, ${end}] are not integers with 0 <= begin <= end`);
    if (end > dataSize)
      fail(`${at}: data_offsets [${begin}, ${end}] lie outside the data section (${dataSize} bytes)`);
    const dims = shape as number[];
    const elements = dims.reduce((a, d) => a * d, 1);
    const byteLength = elements * DTYPE_SIZES[dtype as SafetensorsDType];
    if (byteLength !== end - begin)
      fail(
        `${at}: shape [${dims.join(', ')}] × ${dtype} (${DTYPE_SIZES[dtype as SafetensorsDType]} bytes) is ` +
          `${byteLength} bytes, but data_offsets [${begin}, ${end}] span ${end - begin}`,
      );
    entries.push({
      info: { name, dtype: dtype as SafetensorsDType, shape: [...dims], begin: dataStart + begin, byteLength, file: path },
      begin,
      end,
    });
  }

  // The tensors must tile the data section exactly, in some order: no overlap, no hole, no trailing bytes.
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let expected = 0;
  let prev: string | null = null;
  for (const e of entries) {
    const at = `tensor '${e.info.name}'`;
    if (e.begin < expected)
      fail(`${at}: data_offsets [${e.begin}, ${e.end}] overlap tensor '${prev}' (which ends at ${expected})`);
    if (e.begin > expected)
      fail(`${at}: data_offsets [${e.begin}, ${e.end}] leave a hole of ${e.begin - expected} bytes after ` +
        (prev === null ? 'the start of the data section' : `tensor '${prev}'`));
    expected = e.end;
    prev = e.info.name;
  }
  if (expected !== dataSize)
    fail(`the tensors cover ${expected} bytes of the data section, but it is ${dataSize} bytes (unaccounted bytes at the end)`);

  const tensors = new Map<string, TensorInfo>();
  for (const e of entries) tensors.set(e.info.name, e.info);
  return { tensors, metadata };
}

function parseMetadata(value: unknown, fail: (msg: string) => never): Record<string, string> {
  if (!isPlainObject(value)) return fail('__metadata__ is not a JSON object');
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (typeof v !== 'string') fail(`__metadata__ value of '${k}' is not a string`);
    out[k] = v as string;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Helpers

/** Reads dst.byteLength bytes from file position `pos`, in chunks of at most 1 GiB; short files are a UserError. */
export function readFully(fd: number, dst: Uint8Array, pos: number, path: string, tensor: string | null): void {
  let done = 0;
  while (done < dst.byteLength) {
    const len = Math.min(IO_CHUNK_BYTES, dst.byteLength - done);
    let got: number;
    try {
      got = fs.readSync(fd, dst, done, len, pos + done);
    } catch (e) {
      throw new UserError(`cannot read ${tensor === null ? 'the header' : `tensor '${tensor}'`}: ${errMessage(e)}`, { file: path, cause: e });
    }
    if (got === 0)
      throw new UserError(
        `the file ended at byte ${pos + done} while reading ${tensor === null ? 'the header' : `tensor '${tensor}'`}` +
          ' (was it truncated or changed after opening?)',
        { file: path },
      );
    done += got;
  }
}

function allocBytes(t: TensorInfo): Uint8Array {
  try {
    return new Uint8Array(t.byteLength);
  } catch (e) {
    throw new UserError(`tensor '${t.name}' (${t.byteLength} bytes) is too large for one buffer: ${errMessage(e)}`, {
      file: t.file,
      cause: e,
    });
  }
}

function allocF32(n: number, t: TensorInfo): Float32Array {
  try {
    return new Float32Array(n);
  } catch (e) {
    throw new UserError(`tensor '${t.name}' (${n} elements as f32) is too large for one buffer: ${errMessage(e)}`, {
      file: t.file,
      cause: e,
    });
  }
}

type IntOrFloatView = Float64Array | Int32Array | Int16Array | Int8Array | Uint8Array | BigInt64Array | Float32Array;

// A typed view of freshly read bytes (offset 0 of their own buffer, so always aligned).
function typedView(bytes: Uint8Array, dtype: SafetensorsDType): IntOrFloatView {
  const b = bytes.buffer;
  const n = bytes.byteLength / DTYPE_SIZES[dtype];
  switch (dtype) {
    case 'F64':
      return new Float64Array(b, 0, n);
    case 'F32':
      return new Float32Array(b, 0, n);
    case 'I64':
      return new BigInt64Array(b, 0, n);
    case 'I32':
      return new Int32Array(b, 0, n);
    case 'I16':
      return new Int16Array(b, 0, n);
    case 'I8':
      return new Int8Array(b, 0, n);
    case 'U8':
    case 'BOOL':
      return bytes;
    default:
      throw new Error(`no plain typed view for ${dtype}`);
  }
}

/** What a non-regular file is, for the error message. */
function fileKind(st: fs.Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a plain file';
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function errMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
