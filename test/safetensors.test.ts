// safetensors reader and writer: round trips of every dtype against DataView decoding, byte equality with an
// encoding computed here, every header-validation error on hand-crafted files, positional reads past 4 GiB in a
// sparse file, and the tiny-qwen3 fixture.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { UserError } from '../src/errors.js';
import { SafetensorsDType, SafetensorsFile, dtypeByteSize } from '../src/io/safetensors.js';
import { SafetensorsWriter, encodeSafetensorsHeader, writeSafetensors } from '../src/io/safetensors-writer.js';
import { FIXTURES } from './fixtures-path.js';

const TINY = path.join(FIXTURES, 'tiny-qwen3/model.safetensors');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'safetensors-test-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const ALL: SafetensorsDType[] = ['F64', 'F32', 'F16', 'BF16', 'I64', 'I32', 'I16', 'I8', 'U8', 'BOOL'];

function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

function randomBytes(n: number, r: () => number, dtype: SafetensorsDType): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = r() & 0xff;
  if (dtype === 'BOOL') for (let i = 0; i < n; i++) b[i] &= 1;
  if (dtype === 'I64') for (let i = 4; i < n; i += 8) b.fill(b[i - 1] & 0x80 ? 0xff : 0, i, i + 4); // fits int32
  return b;
}

// Float64 decoding of half formats from sign/exponent/mantissa, independent of src/numerics/half.ts.
function decodeHalf(bits: number, ebits: number, mbits: number): number {
  const sign = bits >> (ebits + mbits) ? -1 : 1;
  const e = (bits >> mbits) & ((1 << ebits) - 1);
  const m = bits & ((1 << mbits) - 1);
  const bias = (1 << (ebits - 1)) - 1;
  if (e === (1 << ebits) - 1) return m ? NaN : sign * Infinity;
  if (e === 0) return sign * m * 2 ** (1 - bias - mbits);
  return sign * (1 + m / 2 ** mbits) * 2 ** (e - bias);
}

// Element i of little-endian bytes as a number, by DataView.
function elementValue(bytes: Uint8Array, dtype: SafetensorsDType, i: number): number {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (dtype) {
    case 'F64':
      return dv.getFloat64(8 * i, true);
    case 'F32':
      return dv.getFloat32(4 * i, true);
    case 'F16':
      return decodeHalf(dv.getUint16(2 * i, true), 5, 10);
    case 'BF16':
      return decodeHalf(dv.getUint16(2 * i, true), 8, 7);
    case 'I64':
      return Number(dv.getBigInt64(8 * i, true));
    case 'I32':
      return dv.getInt32(4 * i, true);
    case 'I16':
      return dv.getInt16(2 * i, true);
    case 'I8':
      return dv.getInt8(i);
    case 'U8':
    case 'BOOL':
      return dv.getUint8(i);
  }
}

// The reference encoding: u64 LE length, JSON padded with spaces to a multiple of 8, then the data back to back.
function referenceEncoding(
  tensors: { name: string; dtype: string; shape: number[]; data: Uint8Array }[],
  metadata?: Record<string, string>,
): Buffer {
  const header: Record<string, unknown> = metadata ? { __metadata__: metadata } : {};
  let off = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + t.data.length] };
    off += t.data.length;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  json = Buffer.concat([json, Buffer.alloc((8 - (json.length % 8)) % 8, ' ')]);
  const len = Buffer.alloc(8);
  len.writeUInt32LE(json.length, 0);
  return Buffer.concat([len, json, ...tensors.map((t) => Buffer.from(t.data))]);
}

function randomShape(r: () => number): number[] {
  const rank = r() % 4;
  return Array.from({ length: rank }, () => 1 + (r() % 7));
}

describe('round trip through writer and reader', () => {
  for (const seed of [1, 2, 3]) {
    it(`every dtype, random shapes incl. 0-d and empty (seed ${seed})`, () => {
      const r = rng(seed);
      const tensors = [];
      for (const dtype of ALL) {
        for (const shape of [randomShape(r), [], [3, 0], randomShape(r)]) {
          const n = shape.reduce((a, d) => a * d, 1);
          tensors.push({ name: `t.${tensors.length}.${dtype}`, dtype, shape, data: randomBytes(n * dtypeByteSize(dtype), r, dtype) });
        }
      }
      // Shuffle so the plan order is not sorted by dtype.
      for (let i = tensors.length - 1; i > 0; i--) {
        const j = r() % (i + 1);
        [tensors[i], tensors[j]] = [tensors[j], tensors[i]];
      }
      const metadata = { format: 'pt', note: 'ünïcødé ✓', empty: '' };
      const file = path.join(tmp, `roundtrip-${seed}.safetensors`);
      writeSafetensors(file, tensors, metadata);

      expect(fs.readFileSync(file).equals(referenceEncoding(tensors, metadata))).toBe(true);

      const sf = SafetensorsFile.open(file);
      try {
        expect(sf.metadata).toEqual(metadata);
        expect(new Set(sf.names())).toEqual(new Set(tensors.map((t) => t.name)));
        for (const t of tensors) {
          const info = sf.info(t.name);
          expect(info.dtype).toBe(t.dtype);
          expect(info.shape).toEqual(t.shape);
          expect(info.byteLength).toBe(t.data.length);
          expect(info.file).toBe(file);
          expect(sf.readBytes(t.name)).toEqual(t.data);
          const n = t.data.length / dtypeByteSize(t.dtype);
          const f = sf.readF32(t.name);
          expect(f.length).toBe(n);
          for (let i = 0; i < n; i++) {
            const want = Math.fround(elementValue(t.data, t.dtype, i));
            if (!(Object.is(f[i], want) || (Number.isNaN(want) && Number.isNaN(f[i])))) {
              throw new Error(`${t.name}[${i}]: readF32 ${f[i]}, expected ${want}`);
            }
          }
          if (['I64', 'I32', 'I16', 'I8', 'U8', 'BOOL'].includes(t.dtype)) {
            const v = sf.readI32(t.name);
            expect(Array.from(v)).toEqual(Array.from({ length: n }, (_, i) => elementValue(t.data, t.dtype, i)));
          } else {
            expect(() => sf.readI32(t.name)).toThrow(/not an integer dtype/);
          }
          if (t.dtype === 'F16' || t.dtype === 'BF16') {
            const raw = sf.readRaw16(t.name);
            const dv = new DataView(t.data.buffer);
            expect(Array.from(raw)).toEqual(Array.from({ length: n }, (_, i) => dv.getUint16(2 * i, true)));
          } else {
            expect(() => sf.readRaw16(t.name)).toThrow(UserError);
          }
        }
      } finally {
        sf.close();
      }
    });
  }

  it('no metadata reads back as null; integer-like names keep their plan order', () => {
    const file = path.join(tmp, 'nometa.safetensors');
    const tensors = [
      { name: 'b', dtype: 'F32' as const, shape: [1], data: new Float32Array([2]) },
      { name: '10', dtype: 'F32' as const, shape: [1], data: new Float32Array([10]) },
      { name: '2', dtype: 'F32' as const, shape: [1], data: new Float32Array([3]) },
    ];
    writeSafetensors(file, tensors);
    const bytes = fs.readFileSync(file);
    const len = bytes.readUInt32LE(0);
    expect(len % 8).toBe(0);
    expect(bytes.subarray(8, 8 + len).toString('utf8').trimEnd()).toBe(
      '{"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"10":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},' +
        '"2":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}',
    );
    const sf = SafetensorsFile.open(file);
    expect(sf.metadata).toBeNull();
    expect(sf.names()).toEqual(['b', '10', '2']);
    expect(Array.from(sf.readF32('10'))).toEqual([10]);
    sf.close();
  });

  it('I64 values outside int32 are refused by readI32, naming the tensor and the value', () => {
    const file = path.join(tmp, 'i64.safetensors');
    writeSafetensors(file, [
      { name: 'ok', dtype: 'I64', shape: [3], data: new BigInt64Array([-(2n ** 31n), 2n ** 31n - 1n, 0n]) },
      { name: 'big', dtype: 'I64', shape: [2], data: new BigInt64Array([1n, 2n ** 31n]) },
    ]);
    const sf = SafetensorsFile.open(file);
    expect(Array.from(sf.readI32('ok'))).toEqual([-(2 ** 31), 2 ** 31 - 1, 0]);
    expect(() => sf.readI32('big')).toThrow(/'big'.*2147483648 at index 1/);
    sf.close();
  });
});

describe('streaming writer', () => {
  const plan = [
    { name: 'a', dtype: 'F32' as const, shape: [2, 3] },
    { name: 'empty', dtype: 'BF16' as const, shape: [0] },
    { name: 'b', dtype: 'U8' as const, shape: [5] },
  ];
  const a = new Float32Array([1, 2, 3, 4, 5, 6]);
  const b = new Uint8Array([9, 8, 7, 6, 5]);

  it('writes tensors in chunks, byte-identical to whole writes', () => {
    const whole = path.join(tmp, 'whole.safetensors');
    const chunked = path.join(tmp, 'chunked.safetensors');
    writeSafetensors(whole, plan.map((p, i) => ({ ...p, data: [a, new Uint16Array(0), b][i] })), { k: 'v' });
    const w = new SafetensorsWriter(chunked, plan, { k: 'v' });
    w.writeChunk('a', a.subarray(0, 2));
    w.writeChunk('a', a.subarray(2));
    w.write('empty', new Uint16Array(0));
    w.writeChunk('b', b.subarray(0, 1));
    w.writeChunk('b', b.subarray(1));
    w.finish();
    expect(fs.readFileSync(chunked)).toEqual(fs.readFileSync(whole));
    // The header alone matches the exported encoder.
    const header = encodeSafetensorsHeader(plan, { k: 'v' });
    expect(new Uint8Array(fs.readFileSync(whole).subarray(0, header.length))).toEqual(header);
  });

  it('refuses out-of-order, wrong-size and missing tensors; abort removes the file', () => {
    const file = path.join(tmp, 'bad-writes.safetensors');
    const w = new SafetensorsWriter(file, plan);
    expect(() => w.write('b', b)).toThrow(/out of order.*expects 'a'/);
    expect(() => w.write('a', new Float32Array(5))).toThrow(/needs 24 bytes, got 20/);
    w.write('a', a);
    expect(() => w.finish()).toThrow(/2 tensor\(s\) not written: empty, b/);
    w.abort();
    expect(fs.existsSync(file)).toBe(false);
    expect(() => new SafetensorsWriter(file, [...plan, plan[0]])).toThrow(/appears twice/);
    expect(() => new SafetensorsWriter(file, [{ name: 'x', dtype: 'F32', shape: [-1] }])).toThrow(/non-negative/);
  });

  it('writeSafetensors leaves no file behind when a tensor has the wrong size', () => {
    const file = path.join(tmp, 'failed.safetensors');
    expect(() => writeSafetensors(file, [{ name: 'x', dtype: 'F32', shape: [4], data: new Float32Array(3) }])).toThrow(
      /needs 16 bytes/,
    );
    expect(fs.existsSync(file)).toBe(false);
  });
});

describe('header validation', () => {
  let count = 0;
  function craft(opts: { header?: string | Uint8Array; data?: number; lenOverride?: number; raw?: Uint8Array }): string {
    const file = path.join(tmp, `bad-${count++}.safetensors`);
    if (opts.raw) {
      fs.writeFileSync(file, opts.raw);
      return file;
    }
    const h = typeof opts.header === 'string' ? Buffer.from(opts.header, 'utf8') : Buffer.from(opts.header ?? []);
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(opts.lenOverride ?? h.length));
    fs.writeFileSync(file, Buffer.concat([len, h, Buffer.alloc(opts.data ?? 0)]));
    return file;
  }
  function expectError(file: string, pattern: RegExp): void {
    let err: unknown;
    try {
      SafetensorsFile.open(file).close();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UserError);
    const ue = err as UserError;
    expect(ue.file).toBe(file);
    expect(ue.message).toMatch(pattern);
    expect(ue.oneLine()).toContain(file);
  }
  const entry = (name: string, dtype: string, shape: number[], offsets: number[]): string =>
    `${JSON.stringify(name)}:${JSON.stringify({ dtype, shape, data_offsets: offsets })}`;

  const cases: [string, () => string, RegExp][] = [
    ['file shorter than 8 bytes', () => craft({ raw: new Uint8Array([1, 0, 0, 0, 0]) }), /5 bytes, shorter than the 8-byte/],
    ['empty file', () => craft({ raw: new Uint8Array(0) }), /0 bytes, shorter/],
    ['header length 0', () => craft({ header: '', lenOverride: 0, data: 16 }), /header length is 0/],
    ['header length over 100 MB', () => craft({ header: '{}', lenOverride: 100_000_001 }), /100000001 exceeds the 100000000-byte limit/],
    ['header length beyond the file', () => craft({ header: '{}', lenOverride: 64 }), /header length 64 runs beyond the end of the file \(10 bytes\)/],
    ['header length with the high word set', () => craft({ header: '{}', lenOverride: 2 ** 32 + 2 }), /exceeds/],
    ['invalid UTF-8', () => craft({ header: new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]) }), /not valid UTF-8/],
    ['not JSON', () => craft({ header: '{"a": ' }), /not valid JSON/],
    ['JSON array', () => craft({ header: '[1, 2]' }), /not a JSON object/],
    ['JSON null', () => craft({ header: 'null    ' }), /not a JSON object/],
    ['entry not an object', () => craft({ header: '{"w": 5}' }), /tensor 'w': the entry is not an object/],
    ['missing dtype', () => craft({ header: '{"w": {"shape": [1], "data_offsets": [0, 4]}}', data: 4 }), /tensor 'w': the entry has no 'dtype'/],
    ['missing shape', () => craft({ header: '{"w": {"dtype": "F32", "data_offsets": [0, 4]}}', data: 4 }), /tensor 'w': the entry has no 'shape'/],
    ['missing data_offsets', () => craft({ header: '{"w": {"dtype": "F32", "shape": [1]}}', data: 4 }), /tensor 'w': the entry has no 'data_offsets'/],
    ['dtype not a string', () => craft({ header: `{${entry('w', 'F32', [1], [0, 4]).replace('"F32"', '7')}}`, data: 4 }), /tensor 'w': dtype is not a string/],
    ['shape not an array', () => craft({ header: '{"w": {"dtype": "F32", "shape": 1, "data_offsets": [0, 4]}}', data: 4 }), /tensor 'w': shape is not an array/],
    ['data_offsets not a pair', () => craft({ header: '{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0]}}', data: 4 }), /tensor 'w': data_offsets is not a pair/],
    ['data_offsets strings', () => craft({ header: '{"w": {"dtype": "F32", "shape": [1], "data_offsets": ["0", "4"]}}', data: 4 }), /tensor 'w': data_offsets is not a pair/],
    ['unknown dtype', () => craft({ header: `{${entry('w', 'F8_E4M3', [1], [0, 1])}}`, data: 1 }), /tensor 'w': unknown dtype 'F8_E4M3' \(known: F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL\)/],
    ['negative dimension', () => craft({ header: `{${entry('w', 'F32', [-1], [0, 4])}}`, data: 4 }), /tensor 'w': shape \[-1\] has a dimension that is not a non-negative integer/],
    ['fractional dimension', () => craft({ header: `{${entry('w', 'U8', [1.5], [0, 1])}}`, data: 1 }), /tensor 'w': shape \[1.5\].*non-negative integer/],
    ['end before begin', () => craft({ header: `{${entry('w', 'U8', [0], [4, 0])}}`, data: 4 }), /tensor 'w': data_offsets \[4, 0\]/],
    ['negative offset', () => craft({ header: `{${entry('w', 'U8', [4], [-4, 0])}}`, data: 4 }), /tensor 'w': data_offsets \[-4, 0\]/],
    ['offsets outside the data section', () => craft({ header: `{${entry('w', 'F32', [4], [0, 16])}}`, data: 8 }), /tensor 'w': data_offsets \[0, 16\] lie outside the data section \(8 bytes\)/],
    ['shape × dtype ≠ byte length', () => craft({ header: `{${entry('w', 'F32', [3], [0, 8])}}`, data: 8 }), /tensor 'w': shape \[3\] × F32 \(4 bytes\) is 12 bytes, but data_offsets \[0, 8\] span 8/],
    ['overlapping tensors', () => craft({ header: `{${entry('a', 'F32', [2], [0, 8])},${entry('b', 'F32', [2], [4, 12])}}`, data: 12 }), /tensor 'b': data_offsets \[4, 12\] overlap tensor 'a'/],
    ['a hole between tensors', () => craft({ header: `{${entry('a', 'F32', [1], [0, 4])},${entry('b', 'F32', [1], [8, 12])}}`, data: 12 }), /tensor 'b': .*leave a hole of 4 bytes after tensor 'a'/],
    ['a hole at the start', () => craft({ header: `{${entry('a', 'F32', [1], [4, 8])}}`, data: 8 }), /tensor 'a': .*hole of 4 bytes after the start of the data section/],
    ['bytes left over at the end', () => craft({ header: `{${entry('a', 'F32', [1], [0, 4])}}`, data: 8 }), /cover 4 bytes of the data section, but it is 8 bytes/],
    ['metadata not an object', () => craft({ header: '{"__metadata__": ["pt"]}' }), /__metadata__ is not a JSON object/],
    ['metadata value not a string', () => craft({ header: '{"__metadata__": {"format": "pt", "n": 3}}' }), /__metadata__ value of 'n' is not a string/],
  ];
  for (const [name, make, pattern] of cases) it(name, () => expectError(make(), pattern));

  it('accepts tensors stored out of name order, zero-length tensors, and a padded header', () => {
    const header = `{${entry('z', 'U8', [0], [0, 0])},${entry('b', 'U8', [2], [2, 4])},${entry('a', 'U8', [2], [0, 2])},${entry('y', 'U8', [0], [4, 4])}}   `;
    const file = craft({ header, data: 4 });
    const fd = fs.openSync(file, 'r+');
    fs.writeSync(fd, new Uint8Array([1, 2, 3, 4]), 0, 4, 8 + Buffer.byteLength(header));
    fs.closeSync(fd);
    const sf = SafetensorsFile.open(file);
    expect(Array.from(sf.readBytes('a'))).toEqual([1, 2]);
    expect(Array.from(sf.readBytes('b'))).toEqual([3, 4]);
    expect(sf.readBytes('y').length).toBe(0);
    expect(sf.metadata).toBeNull();
    expect(() => sf.info('nope')).toThrow(/no tensor 'nope'/);
    sf.close();
  });

  it('a missing file is a UserError naming it', () => {
    const missing = path.join(tmp, 'does-not-exist.safetensors');
    expect(() => SafetensorsFile.open(missing)).toThrow(UserError);
    expect(() => SafetensorsFile.open(missing)).toThrow(/cannot open/);
  });
});

describe('positional I/O beyond 4 GiB', () => {
  it('reads a tensor at offset > 4 GiB in a sparse 5+ GB file, and part of a 5 GiB tensor', () => {
    const file = path.join(tmp, 'sparse.safetensors');
    const big = 5 * 2 ** 30;
    const header = encodeSafetensorsHeader([
      { name: 'pad', dtype: 'U8', shape: [big] },
      { name: 'tail', dtype: 'F32', shape: [2, 2] },
    ]);
    const tail = new Float32Array([1.5, -2.25, 3e-7, 65504]);
    const marker = new Uint8Array([0xde, 0xad, 0xbe, 0xef]);
    const fd = fs.openSync(file, 'w');
    try {
      fs.writeSync(fd, header, 0, header.length, 0);
      fs.ftruncateSync(fd, header.length + big + 16);
      fs.writeSync(fd, new Uint8Array(tail.buffer), 0, 16, header.length + big);
      fs.writeSync(fd, marker, 0, 4, header.length + 4.5 * 2 ** 30);
    } finally {
      fs.closeSync(fd);
    }
    const sf = SafetensorsFile.open(file);
    try {
      const info = sf.info('tail');
      expect(info.begin).toBe(header.length + big);
      expect(info.begin).toBeGreaterThan(2 ** 32);
      expect(Array.from(sf.readF32('tail'))).toEqual(Array.from(tail));
      const part = sf.readBytesInto('pad', new Uint8Array(8), 4.5 * 2 ** 30 - 2);
      expect(Array.from(part)).toEqual([0, 0, 0xde, 0xad, 0xbe, 0xef, 0, 0]);
      // A 5 GiB tensor cannot be one buffer: a clear error, not a crash.
      expect(() => sf.readBytes('pad')).toThrow(/'pad' \(5368709120 bytes\) is too large for one buffer/);
    } finally {
      sf.close();
      fs.rmSync(file);
    }
  });
});

describe.skipIf(!fs.existsSync(TINY))('tiny-qwen3 fixture', () => {
  if (!fs.existsSync(TINY)) console.warn(`skipping fixture tests: ${TINY} not found`);

  it('opens; embed_tokens is BF16 [4096, 256] and decodes like the raw bytes', () => {
    const sf = SafetensorsFile.open(TINY);
    try {
      expect(sf.metadata).toEqual({ format: 'pt' });
      const info = sf.info('model.embed_tokens.weight');
      expect(info.dtype).toBe('BF16');
      expect(info.shape).toEqual([4096, 256]);
      // Independent parse of the (small) fixture in the test.
      const bytes = fs.readFileSync(TINY);
      const n = Number(bytes.readBigUInt64LE(0));
      const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as Record<string, { data_offsets: number[] }>;
      expect(new Set(sf.names())).toEqual(new Set(Object.keys(header).filter((k) => k !== '__metadata__')));
      const [b, e] = header['model.embed_tokens.weight'].data_offsets;
      const raw = new Uint8Array(bytes.buffer, bytes.byteOffset + 8 + n + b, e - b);
      const f = sf.readF32('model.embed_tokens.weight');
      expect(f.length).toBe(4096 * 256);
      for (let i = 0; i < f.length; i += 97) expect(f[i]).toBe(elementValue(raw, 'BF16', i));
    } finally {
      sf.close();
    }
  });

  it('rewriting every tensor in stored order reproduces the file byte for byte', () => {
    const sf = SafetensorsFile.open(TINY);
    const out = path.join(tmp, 'tiny-copy.safetensors');
    const names = sf.names();
    const w = new SafetensorsWriter(out, names.map((nm) => sf.info(nm)), sf.metadata ?? undefined);
    for (const nm of names) w.write(nm, sf.readBytes(nm));
    w.finish();
    sf.close();
    expect(fs.readFileSync(out).equals(fs.readFileSync(TINY))).toBe(true);
  });
});
