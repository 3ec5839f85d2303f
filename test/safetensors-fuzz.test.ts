// Seeded fuzz test of the safetensors reader (and the sharded-checkpoint index that sits on top of it): every mutant
// of a valid file (bit flips, truncations, header-length lies, header JSON edits of offsets/shapes/dtypes/names,
// nested junk, unicode) must either load, and then every tensor read returns the declared number of elements, or
// throw a UserError. Anything else (RangeError, TypeError, a plain Error from Node) is a bug in the reader.
// The seed is in the test name; rerun one with SAFETENSORS_FUZZ_SEED=<seed> (and SAFETENSORS_FUZZ_N=<mutants>).
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomInt } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { UserError } from '../src/errors.js';
import { Checkpoint } from '../src/io/checkpoint.js';
import { SAFETENSORS_DTYPES, SafetensorsDType, SafetensorsFile, dtypeByteSize } from '../src/io/safetensors.js';
import { encodeSafetensorsHeader } from '../src/io/safetensors-writer.js';
import { Rng } from '../src/numerics/rng.js';
import { scratchDir } from './scratch.js';

const FIXED_SEED = 20261207;
const envSeed = process.env.SAFETENSORS_FUZZ_SEED;
const N = Number(process.env.SAFETENSORS_FUZZ_N ?? 240);
// A fixed seed (the same mutants every run) and a fresh one (new mutants every run, reproducible from the name).
const SEEDS = envSeed !== undefined ? [Number(envSeed)] : [FIXED_SEED, randomInt(1, 2 ** 31)];

const tmp = scratchDir('safetensors-fuzz-');

interface Tensor {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  data: Uint8Array;
}

/** A valid file: every dtype, a scalar, an empty tensor, names that need escaping, metadata. */
function baseTensors(rng: Rng): Tensor[] {
  const specs: [string, SafetensorsDType, number[]][] = [
    ['model.embed_tokens.weight', 'BF16', [6, 4]],
    ['model.layers.0.self_attn.k_proj.weight', 'F16', [4, 4]],
    ['model.norm.weight', 'F32', [4]],
    ['scalar', 'F64', []],
    ['empty', 'BF16', [0, 3]],
    ['ids', 'I64', [3]],
    ['i32', 'I32', [2, 2]],
    ['i16', 'I16', [3]],
    ['i8', 'I8', [5]],
    ['u8', 'U8', [2, 3]],
    ['mask', 'BOOL', [4]],
    ['ünïcødé "quoted"\\name', 'F32', [1, 2]],
  ];
  return specs.map(([name, dtype, shape]) => {
    const n = shape.reduce((a, d) => a * d, 1) * dtypeByteSize(dtype);
    const data = new Uint8Array(n);
    for (let i = 0; i < n; i++) data[i] = rng.nextInt(256);
    if (dtype === 'I64') for (let i = 4; i < n; i += 8) data.fill(0, i, i + 4); // values fit int32 in the base file
    return { name, dtype, shape, data };
  });
}

function encode(tensors: Tensor[], metadata?: Record<string, string>): Buffer {
  const header = encodeSafetensorsHeader(tensors, metadata);
  return Buffer.concat([Buffer.from(header), ...tensors.map((t) => Buffer.from(t.data))]);
}

/** The header length, JSON text and data section of a well-formed file. */
function split(file: Buffer): { json: string; data: Buffer } {
  const len = Number(file.readBigUInt64LE(0));
  return { json: file.subarray(8, 8 + len).toString('utf8'), data: file.subarray(8 + len) };
}

function join(json: string | Buffer, data: Buffer, lengthOverride?: bigint): Buffer {
  const h = typeof json === 'string' ? Buffer.from(json, 'utf8') : json;
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(lengthOverride ?? BigInt(h.length));
  return Buffer.concat([len, h, data]);
}

// Values a hostile header may hold where a number, array or string belongs.
function junk(rng: Rng): unknown {
  const choices: (() => unknown)[] = [
    () => -1 - rng.nextInt(100),
    () => rng.nextDouble() * 100,
    () => 2 ** 53 + 2,
    () => 1e308,
    () => -0,
    () => 2 ** 32,
    () => 2 ** 31 - 1,
    () => '12',
    () => null,
    () => true,
    () => [],
    () => [[1, 2], 3],
    () => ({ nested: { deeper: [1, { x: null }] } }),
    () => '\u0000\ud83d\ude00\u202e',
    () => rng.nextInt(1000),
    () => 0,
  ];
  return choices[rng.nextInt(choices.length)]();
}

function pick<T>(rng: Rng, xs: T[]): T {
  return xs[rng.nextInt(xs.length)];
}

type Entry = { dtype?: unknown; shape?: unknown; data_offsets?: unknown; [k: string]: unknown };

/** One mutant of `base`: the bytes and a short description for the failure message. */
function mutate(base: Buffer, rng: Rng): { bytes: Buffer; what: string } {
  const { json, data } = split(base);
  const header = JSON.parse(json) as Record<string, Entry>;
  const names = Object.keys(header).filter((k) => k !== '__metadata__');
  const name = pick(rng, names);
  const e = header[name];
  const kind = rng.nextInt(24);
  const reencode = (what: string): { bytes: Buffer; what: string } => ({ bytes: join(JSON.stringify(header), data), what });
  switch (kind) {
    case 0: {
      // Bit flips anywhere.
      const b = Buffer.from(base);
      const flips = 1 + rng.nextInt(8);
      for (let i = 0; i < flips; i++) b[rng.nextInt(b.length)] ^= 1 << rng.nextInt(8);
      return { bytes: b, what: `${flips} bit flips` };
    }
    case 1: {
      // Bit flips in the length field and header only.
      const b = Buffer.from(base);
      const end = 8 + Buffer.byteLength(json);
      const flips = 1 + rng.nextInt(4);
      for (let i = 0; i < flips; i++) b[rng.nextInt(end)] ^= 1 << rng.nextInt(8);
      return { bytes: b, what: `${flips} bit flips in the header` };
    }
    case 2: {
      const at = rng.nextInt(base.length);
      return { bytes: base.subarray(0, at), what: `truncated at ${at}` };
    }
    case 3: {
      const extra = Buffer.alloc(1 + rng.nextInt(64), rng.nextInt(256));
      return { bytes: Buffer.concat([base, extra]), what: `${extra.length} trailing bytes` };
    }
    case 4: {
      const lies = [0n, 1n, 7n, 2n ** 62n, 2n ** 64n - 1n, 100_000_001n, BigInt(base.length), BigInt(Buffer.byteLength(json) + 1 + rng.nextInt(16)), BigInt(Math.max(1, Buffer.byteLength(json) - 1 - rng.nextInt(16)))];
      const len = pick(rng, lies);
      return { bytes: join(json, data, len), what: `header length ${len}` };
    }
    case 5:
      e.data_offsets = [junk(rng), junk(rng)];
      return reencode(`${name}: data_offsets junk`);
    case 6: {
      const [b, en] = e.data_offsets as [number, number];
      const d = pick(rng, [-1, 1, -8, 8, 2 ** 40]);
      e.data_offsets = pick(rng, [[b + d, en + d], [b, en + d], [b + d, en], [en, b], [b], [b, en, en]]);
      return reencode(`${name}: data_offsets shifted/swapped to ${JSON.stringify(e.data_offsets)}`);
    }
    case 7: {
      // Overlap: copy another tensor's offsets.
      const other = header[pick(rng, names)];
      e.data_offsets = other.data_offsets;
      return reencode(`${name}: offsets of another tensor`);
    }
    case 8: {
      const shape = e.shape as unknown[];
      if (shape.length > 0) shape[rng.nextInt(shape.length)] = junk(rng);
      else e.shape = [junk(rng)];
      return reencode(`${name}: shape ${JSON.stringify(e.shape)}`);
    }
    case 9: {
      // Same element count, different shape (still valid) or a wrong element count.
      const n = (e.shape as number[]).reduce((a, d) => a * d, 1);
      e.shape = pick(rng, [[n], [n, 1], [1, n, 1], [n + 1], [2, n], [0], [2 ** 26, 2 ** 26], [2 ** 53, 0], [-n]]);
      return reencode(`${name}: reshaped to ${JSON.stringify(e.shape)}`);
    }
    case 10:
      e.dtype = pick<unknown>(rng, [...SAFETENSORS_DTYPES, 'bf16', 'F8_E4M3', 'Q4', '', 3, null, ['F32']]);
      return reencode(`${name}: dtype ${JSON.stringify(e.dtype)}`);
    case 11: {
      const key = pick(rng, ['dtype', 'shape', 'data_offsets']);
      delete e[key];
      return reencode(`${name}: no ${key}`);
    }
    case 12:
      e[pick(rng, ['extra', 'dtype2', '__proto__', 'constructor'])] = junk(rng);
      return reencode(`${name}: extra key in the entry`);
    case 13:
      header[name] = junk(rng) as Entry;
      return reencode(`${name}: entry replaced by junk`);
    case 14: {
      const key = pick(rng, ['__proto__', 'constructor', 'toString', '', '\u0000', '\ud83d\ude00', 'hasOwnProperty', '__metadata__']);
      (header as Record<string, unknown>)[key] = pick<unknown>(rng, [junk(rng), { dtype: 'F32', shape: [0], data_offsets: [0, 0] }, { x: '1' }]);
      return reencode(`extra top-level key ${JSON.stringify(key)}`);
    }
    case 15:
      (header as Record<string, unknown>).__metadata__ = pick<unknown>(rng, [junk(rng), { a: junk(rng) }, { a: 'b', c: '\ud83d\ude00' }]);
      return reencode('__metadata__ edited');
    case 16: {
      // Duplicate a name at the text level (JSON.parse keeps the last one).
      const entryText = `${JSON.stringify(name)}:${JSON.stringify(e)}`;
      const other = header[pick(rng, names)];
      const dup = `${JSON.stringify(name)}:${JSON.stringify(other)}`;
      const text = json.trimEnd().replace(/}$/, `,${dup}}`);
      return { bytes: join(text, data), what: `duplicate name ${name} (first ${entryText.length} chars)` };
    }
    case 17: {
      // Raw text edits of the header JSON.
      const bytes = Buffer.from(json, 'utf8');
      const at = rng.nextInt(bytes.length);
      const ins = Buffer.from(pick(rng, ['{', '}', '"', ',', ':', '[', ']', '\u0000', '\ud83d\ude00', 'null', '-', '1e999', '\\u12']), 'utf8');
      const edited = rng.nextInt(2) === 0 ? Buffer.concat([bytes.subarray(0, at), ins, bytes.subarray(at)]) : Buffer.concat([bytes.subarray(0, at), ins, bytes.subarray(at + ins.length)]);
      return { bytes: join(edited, data), what: `header text edit at ${at}` };
    }
    case 18: {
      // Invalid UTF-8 or a BOM in the header.
      const bytes = Buffer.from(json, 'utf8');
      const bad = pick(rng, [Buffer.from([0xff]), Buffer.from([0xc3]), Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from([0xed, 0xa0, 0x80])]);
      const at = rng.nextInt(2) === 0 ? 0 : rng.nextInt(bytes.length);
      return { bytes: join(Buffer.concat([bytes.subarray(0, at), bad, bytes.subarray(at)]), data), what: `bytes ${bad.toString('hex')} in the header at ${at}` };
    }
    case 19: {
      // Deeply nested junk (parser recursion).
      const depth = pick(rng, [100, 10_000, 200_000]);
      const text = json.trimEnd().replace(/}$/, `,"deep":${'['.repeat(depth)}${']'.repeat(depth)}}`);
      return { bytes: join(text, data), what: `nesting depth ${depth}` };
    }
    case 20: {
      // The header is not an object.
      const text = pick(rng, ['[]', '"x"', '42', 'null', 'true', '{}', '']);
      return { bytes: join(text, data), what: `header ${JSON.stringify(text)}` };
    }
    case 21: {
      // Data bytes changed: must still load (values are not the reader's business).
      const b = Buffer.from(base);
      const start = base.length - data.length;
      for (let i = 0; i < 16 && data.length > 0; i++) b[start + rng.nextInt(data.length)] = rng.nextInt(256);
      return { bytes: b, what: 'data bytes changed' };
    }
    case 22: {
      // Offsets and shape moved consistently to a huge tensor the file does not hold.
      const [b] = e.data_offsets as [number, number];
      e.shape = [2 ** 20, 2 ** 10];
      e.data_offsets = [b, b + 2 ** 30 * dtypeByteSize(isDtype(e.dtype) ? e.dtype : 'U8')];
      return reencode(`${name}: a 1 Gi-element tensor`);
    }
    default: {
      // Several header edits at once.
      for (const n of names.slice(0, 1 + rng.nextInt(names.length))) {
        const x = header[n];
        if (rng.nextInt(2)) x.shape = [junk(rng)];
        if (rng.nextInt(2)) x.data_offsets = [0, junk(rng)];
      }
      return reencode('several entries edited');
    }
  }
}

function isDtype(d: unknown): d is SafetensorsDType {
  return typeof d === 'string' && (SAFETENSORS_DTYPES as string[]).includes(d);
}

/** Opens and reads every tensor of `file` every way; returns 'loaded', 'refused', or throws the unexpected error. */
function exercise(file: string): 'loaded' | 'refused' {
  let sf: SafetensorsFile;
  try {
    sf = SafetensorsFile.open(file);
  } catch (e) {
    if (e instanceof UserError) return 'refused';
    throw e;
  }
  try {
    for (const name of sf.names()) checkReads(name, sf.info(name), (n) => sf.readBytes(n), (n) => sf.readF32(n), (n) => sf.readI32(n), (n) => sf.readRaw16(n));
  } finally {
    sf.close();
  }
  return 'loaded';
}

function checkReads(
  name: string,
  info: { dtype: SafetensorsDType; shape: number[]; byteLength: number },
  readBytes: (n: string) => Uint8Array,
  readF32: (n: string) => Float32Array,
  readI32: (n: string) => Int32Array,
  readRaw16: (n: string) => Uint16Array,
): void {
  const elements = info.shape.reduce((a, d) => a * d, 1);
  if (elements * dtypeByteSize(info.dtype) !== info.byteLength) throw new Error(`${name}: info says ${info.byteLength} bytes for ${info.dtype} ${JSON.stringify(info.shape)}`);
  if (readBytes(name).byteLength !== info.byteLength) throw new Error(`${name}: readBytes returned the wrong length`);
  if (readF32(name).length !== elements) throw new Error(`${name}: readF32 returned the wrong length`);
  // Reads that may refuse the dtype or the values, but only with a UserError.
  for (const read of [readI32, readRaw16]) {
    try {
      if (read(name).length !== elements) throw new Error(`${name}: ${read.name} returned the wrong length`);
    } catch (e) {
      if (!(e instanceof UserError)) throw e;
    }
  }
}

function rethrow(e: unknown, seed: number, i: number, what: string): never {
  const err = e as Error;
  throw new Error(
    `mutant ${i} (${what}) of seed ${seed} threw ${err?.name ?? typeof e}: ${err?.message ?? String(e)} — ` +
      `rerun with SAFETENSORS_FUZZ_SEED=${seed}`,
    { cause: e },
  );
}

describe('safetensors reader fuzz', () => {
  for (const seed of SEEDS) {
    it(`${N} mutants of header and data: each loads fully or is a UserError (seed ${seed})`, () => {
      const rng = new Rng(seed);
      const base = encode(baseTensors(rng), { format: 'pt', note: 'ü' });
      const file = path.join(tmp, `mutant-${seed}.safetensors`);
      fs.writeFileSync(file, base);
      expect(exercise(file)).toBe('loaded'); // the base file is valid
      const outcome = { loaded: 0, refused: 0 };
      for (let i = 0; i < N; i++) {
        const { bytes, what } = mutate(base, rng);
        fs.writeFileSync(file, bytes);
        try {
          outcome[exercise(file)]++;
        } catch (e) {
          rethrow(e, seed, i, what);
        }
      }
      // A fuzzer that only ever refuses (or only loads) is not exploring both sides.
      expect(outcome.refused).toBeGreaterThan(N / 4);
      expect(outcome.loaded).toBeGreaterThan(0);
    });
  }

  it('a directory, a FIFO, /dev/zero or a missing path in place of the file: a UserError naming the path', () => {
    const dir = path.join(tmp, 'dir.safetensors');
    fs.mkdirSync(dir, { recursive: true });
    const fifo = path.join(tmp, 'fifo.safetensors');
    execFileSync('mkfifo', [fifo]); // opening it must not wait for a writer
    for (const p of [dir, fifo, '/dev/zero', path.join(tmp, 'missing.safetensors')]) {
      let err: unknown = null;
      try {
        SafetensorsFile.open(p).close();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(UserError);
      expect((err as UserError).oneLine()).toContain(p);
    }
  });
});

describe('sharded checkpoint index fuzz (src/io/checkpoint.ts)', () => {
  const seed = SEEDS[SEEDS.length - 1];
  it(`60 mutants of model.safetensors.index.json: each loads fully or is a UserError (seed ${seed})`, () => {
    const rng = new Rng(seed);
    const tensors = baseTensors(rng);
    const dir = path.join(tmp, `sharded-${seed}`);
    fs.mkdirSync(path.join(dir, 'sub'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'a.safetensors'), encode(tensors.slice(0, 6)));
    fs.writeFileSync(path.join(dir, 'b.safetensors'), encode(tensors.slice(6)));
    fs.writeFileSync(path.join(dir, 'bad.safetensors'), Buffer.from('not a safetensors file'));
    const weightMap: Record<string, unknown> = {};
    tensors.forEach((t, i) => (weightMap[t.name] = i < 6 ? 'a.safetensors' : 'b.safetensors'));
    const indexFile = path.join(dir, 'model.safetensors.index.json');
    const base = { metadata: { total_size: 1 }, weight_map: weightMap };

    const run = (): 'loaded' | 'refused' => {
      let ck: Checkpoint;
      try {
        ck = Checkpoint.open(dir);
      } catch (e) {
        if (e instanceof UserError) return 'refused';
        throw e;
      }
      try {
        for (const name of ck.names()) {
          try {
            checkReads(name, ck.info(name), (n) => ck.readBytes(n), (n) => ck.readF32(n), (n) => ck.readI32(n), (n) => ck.readRaw16(n));
          } catch (e) {
            if (!(e instanceof UserError)) throw e;
          }
        }
      } finally {
        ck.close();
      }
      return 'loaded';
    };
    fs.writeFileSync(indexFile, JSON.stringify(base));
    expect(run()).toBe('loaded');
    for (let i = 0; i < 60; i++) {
      const idx = JSON.parse(JSON.stringify(base)) as { weight_map: Record<string, unknown>; [k: string]: unknown };
      const names = Object.keys(idx.weight_map);
      const name = pick(rng, names);
      const kind = rng.nextInt(8);
      let text: string;
      let what: string;
      if (kind === 0) {
        idx.weight_map[name] = pick<unknown>(rng, ['../a.safetensors', '/etc/passwd', '.', 'sub', 'sub/../a.safetensors', 'missing.safetensors', 'bad.safetensors', '', 'a.safetensors\u0000x', junk(rng)]);
        what = `${name} -> ${JSON.stringify(idx.weight_map[name])}`;
      } else if (kind === 1) {
        idx.weight_map[pick(rng, ['not.in.any.shard', '__proto__', 'constructor'])] = pick(rng, ['a.safetensors', 'b.safetensors']);
        what = 'a name no shard holds';
      } else if (kind === 2) {
        idx.weight_map[name] = idx.weight_map[name] === 'a.safetensors' ? 'b.safetensors' : 'a.safetensors';
        what = `${name} assigned to the wrong shard`;
      } else if (kind === 3) {
        idx.weight_map = junk(rng) as Record<string, unknown>;
        what = 'weight_map junk';
      } else if (kind === 4) {
        delete (idx as Record<string, unknown>).weight_map;
        what = 'no weight_map';
      } else if (kind === 5) {
        idx.weight_map = {};
        what = 'empty weight_map';
      } else if (kind === 6) {
        idx.metadata = junk(rng);
        what = 'metadata junk';
      } else {
        what = 'unchanged';
      }
      text = JSON.stringify(idx);
      if (rng.nextInt(6) === 0) {
        const at = rng.nextInt(text.length);
        text = text.slice(0, at);
        what += `, truncated at ${at}`;
      }
      fs.writeFileSync(indexFile, text);
      try {
        run();
      } catch (e) {
        rethrow(e, seed, i, `index: ${what}`);
      }
    }
  });
});
