// Checkpoint directories: single file, lone *.safetensors, a 3-shard copy of a random model with its index, and
// broken layouts (no checkpoint, several files, bad index, missing shard, tensor not in its shard).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { UserError } from '../src/errors.js';
import { Checkpoint } from '../src/io/checkpoint.js';
import { SafetensorsDType, dtypeByteSize } from '../src/io/safetensors.js';
import { TensorData, writeSafetensors } from '../src/io/safetensors-writer.js';
import { FIXTURES } from './fixtures-path.js';
import { userError } from './user-error.js';

const TINY_DIR = path.join(FIXTURES, 'tiny-qwen3');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'checkpoint-test-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

let dirCount = 0;
function freshDir(): string {
  const d = path.join(tmp, `m${dirCount++}`);
  fs.mkdirSync(d);
  return d;
}

// A small random "model": a few layers of mixed dtypes, values exactly representable in every float dtype.
function randomModel(seed: number): TensorData[] {
  let s = seed;
  const next = (): number => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return s;
  };
  const out: TensorData[] = [];
  const add = (name: string, dtype: SafetensorsDType, shape: number[]): void => {
    const n = shape.reduce((a, d) => a * d, 1);
    const bytes = new Uint8Array(n * dtypeByteSize(dtype));
    const dv = new DataView(bytes.buffer);
    for (let i = 0; i < n; i++) {
      const v = (next() % 256) - 128; // small integers: exact in bf16/f16/f32 and every integer dtype
      if (dtype === 'F32') dv.setFloat32(4 * i, v / 8, true);
      else if (dtype === 'BF16') dv.setUint16(2 * i, new Uint32Array(new Float32Array([v / 8]).buffer)[0] >>> 16, true);
      else if (dtype === 'I32') dv.setInt32(4 * i, v, true);
      else if (dtype === 'I16') dv.setInt16(2 * i, v, true);
    }
    out.push({ name, dtype, shape, data: bytes });
  };
  add('model.embed_tokens.weight', 'BF16', [32, 8]);
  for (let l = 0; l < 3; l++) {
    add(`model.layers.${l}.self_attn.q_proj.weight`, 'BF16', [8, 8]);
    add(`model.layers.${l}.mlp.down_proj.weight`, 'F32', [8, 16]);
    add(`model.layers.${l}.input_layernorm.weight`, 'F32', [8]);
    add(`model.layers.${l}.qweight`, 'I32', [8, 1]);
    add(`model.layers.${l}.pairs`, 'I16', [2, 8]);
  }
  add('model.norm.weight', 'F32', [8]);
  add('lm_head.weight', 'BF16', [32, 8]);
  return out;
}

// Writes the model as n shards named like Hugging Face's, with an index; returns name -> shard file.
function writeSharded(dir: string, tensors: TensorData[], n: number): Record<string, string> {
  const weightMap: Record<string, string> = {};
  for (let s = 0; s < n; s++) {
    const file = `model-${String(s + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`;
    const part = tensors.filter((_, i) => i % n === s);
    writeSafetensors(path.join(dir, file), part, { format: 'pt' });
    for (const t of part) weightMap[t.name] = file;
  }
  const total = tensors.reduce((a, t) => a + t.data.byteLength, 0);
  fs.writeFileSync(
    path.join(dir, 'model.safetensors.index.json'),
    JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2),
  );
  return weightMap;
}

function expectSameContents(ck: Checkpoint, tensors: TensorData[]): void {
  expect(new Set(ck.names())).toEqual(new Set(tensors.map((t) => t.name)));
  for (const t of tensors) {
    const info = ck.info(t.name);
    expect(info.dtype).toBe(t.dtype);
    expect(info.shape).toEqual(t.shape);
    const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    expect(ck.readBytes(t.name)).toEqual(bytes);
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const n = t.shape.reduce((a, d) => a * d, 1);
    if (t.dtype === 'I32' || t.dtype === 'I16') {
      const want = Array.from({ length: n }, (_, i) => (t.dtype === 'I32' ? dv.getInt32(4 * i, true) : dv.getInt16(2 * i, true)));
      expect(Array.from(ck.readI32(t.name))).toEqual(want);
      expect(Array.from(ck.readF32(t.name))).toEqual(want);
    } else if (t.dtype === 'F32') {
      expect(Array.from(ck.readF32(t.name))).toEqual(Array.from({ length: n }, (_, i) => dv.getFloat32(4 * i, true)));
    } else {
      const raw = Array.from({ length: n }, (_, i) => dv.getUint16(2 * i, true));
      expect(Array.from(ck.readRaw16(t.name))).toEqual(raw);
      const f = new Float32Array(new Uint32Array(raw.map((h) => h * 65536)).buffer);
      expect(Array.from(ck.readF32(t.name))).toEqual(Array.from(f));
    }
  }
}

describe('single-file checkpoints', () => {
  it('reads model.safetensors', () => {
    const dir = freshDir();
    const model = randomModel(1);
    writeSafetensors(path.join(dir, 'model.safetensors'), model, { format: 'pt' });
    const ck = Checkpoint.open(dir);
    expect(ck.sharded).toBe(false);
    expect(ck.metadata).toEqual({ format: 'pt' });
    expect(ck.files()).toEqual([path.join(dir, 'model.safetensors')]);
    expectSameContents(ck, model);
    ck.close();
  });

  it('falls back to the one *.safetensors file in the directory', () => {
    const dir = freshDir();
    const model = randomModel(2);
    writeSafetensors(path.join(dir, 'drafter.safetensors'), model);
    fs.writeFileSync(path.join(dir, 'config.json'), '{}');
    const ck = Checkpoint.open(dir);
    expect(ck.info('lm_head.weight').file).toBe(path.join(dir, 'drafter.safetensors'));
    expectSameContents(ck, model);
    ck.close();
  });

  it('prefers model.safetensors over an index when both exist', () => {
    const dir = freshDir();
    const model = randomModel(3);
    writeSharded(dir, model.slice(0, 4), 2);
    writeSafetensors(path.join(dir, 'model.safetensors'), model);
    const ck = Checkpoint.open(dir);
    expect(ck.sharded).toBe(false);
    expect(ck.names().length).toBe(model.length);
    ck.close();
  });

  it('a missing tensor is a UserError naming it and the file', () => {
    const dir = freshDir();
    writeSafetensors(path.join(dir, 'model.safetensors'), randomModel(4));
    const ck = Checkpoint.open(dir);
    expect(ck.has('model.layers.9.mlp.up_proj.weight')).toBe(false);
    const e = userError(() => ck.require('model.layers.9.mlp.up_proj.weight'));
    expect(e.message).toContain("'model.layers.9.mlp.up_proj.weight'");
    expect(e.message).toContain(dir);
    expect(e.file).toBe(path.join(dir, 'model.safetensors'));
    expect(() => ck.readF32('nope')).toThrow(UserError);
    ck.close();
  });
});

describe('directories without a usable checkpoint', () => {
  it('empty directory', () => {
    const dir = freshDir();
    fs.writeFileSync(path.join(dir, 'config.json'), '{}');
    const e = userError(() => Checkpoint.open(dir));
    expect(e.file).toBe(dir);
    expect(e.message).toMatch(/no checkpoint here: expected model.safetensors, model.safetensors.index.json or a \*.safetensors file/);
  });

  it('several *.safetensors files and no index', () => {
    const dir = freshDir();
    writeSafetensors(path.join(dir, 'a.safetensors'), randomModel(5).slice(0, 2));
    writeSafetensors(path.join(dir, 'b.safetensors'), randomModel(5).slice(2, 4));
    expect(userError(() => Checkpoint.open(dir)).message).toMatch(/2 .safetensors files \(a.safetensors, b.safetensors\) but no/);
  });

  it('a path that does not exist, or is a file', () => {
    const missing = path.join(tmp, 'no-such-model');
    expect(userError(() => Checkpoint.open(missing)).file).toBe(missing);
    const file = path.join(tmp, 'plain-file');
    fs.writeFileSync(file, 'x');
    expect(userError(() => Checkpoint.open(file)).message).toMatch(/not a directory/);
  });

  it('a corrupt model.safetensors reports the file', () => {
    const dir = freshDir();
    fs.writeFileSync(path.join(dir, 'model.safetensors'), 'abc');
    const e = userError(() => Checkpoint.open(dir));
    expect(e.file).toBe(path.join(dir, 'model.safetensors'));
  });
});

describe('sharded checkpoints', () => {
  it('reads a 3-shard copy of a random model back exactly', () => {
    const dir = freshDir();
    const model = randomModel(6);
    const weightMap = writeSharded(dir, model, 3);
    const ck = Checkpoint.open(dir);
    expect(ck.sharded).toBe(true);
    expect(ck.metadata).toBeNull();
    expect(ck.files().length).toBe(3);
    ck.validate();
    for (const t of model) expect(ck.info(t.name).file).toBe(path.join(dir, weightMap[t.name]));
    expectSameContents(ck, model);
    ck.close();
    expect(() => ck.readF32(model[0].name)).toThrow(/closed/);
  });

  it('opens shards lazily: a corrupt shard only fails when one of its tensors is used', () => {
    const dir = freshDir();
    const model = randomModel(7);
    const weightMap = writeSharded(dir, model, 3);
    fs.writeFileSync(path.join(dir, weightMap[model[2].name]), 'not a safetensors file');
    const ck = Checkpoint.open(dir);
    expect(ck.readBytes(model[0].name).length).toBe(model[0].data.byteLength); // shard 1 is fine
    const e = userError(() => ck.readF32(model[2].name));
    expect(e.file).toBe(path.join(dir, weightMap[model[2].name]));
    expect(() => ck.validate()).toThrow(UserError);
    ck.close();
  });

  it('a missing shard is reported at open, naming the shard and the index', () => {
    const dir = freshDir();
    const model = randomModel(8);
    const weightMap = writeSharded(dir, model, 3);
    fs.rmSync(path.join(dir, weightMap[model[1].name]));
    const e = userError(() => Checkpoint.open(dir));
    expect(e.file).toBe(path.join(dir, 'model.safetensors.index.json'));
    expect(e.message).toContain(`shard '${weightMap[model[1].name]}'`);
    expect(e.message).toContain('does not exist');
  });

  it('a tensor the index assigns to a shard that lacks it', () => {
    const dir = freshDir();
    const model = randomModel(9);
    const weightMap = writeSharded(dir, model, 3);
    const moved = model[4].name;
    const wrongShard = weightMap[model[5].name];
    expect(wrongShard).not.toBe(weightMap[moved]);
    weightMap[moved] = wrongShard;
    fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: weightMap }));
    const ck = Checkpoint.open(dir);
    expect(ck.has(moved)).toBe(true);
    for (const fn of [() => ck.readF32(moved), () => ck.require(moved), () => ck.validate()]) {
      const e = userError(fn);
      expect(e.message).toContain(`'${moved}'`);
      expect(e.message).toContain(`shard '${wrongShard}'`);
      expect(e.file).toBe(path.join(dir, 'model.safetensors.index.json'));
    }
    ck.close();
  });

  it('malformed index files', () => {
    const cases: [string, RegExp][] = [
      ['{"weight_map": ', /not valid JSON/],
      ['[]', /not a JSON object/],
      ['{"metadata": {}}', /no 'weight_map' object/],
      ['{"weight_map": []}', /no 'weight_map' object/],
      ['{"weight_map": {"a": 3}}', /weight_map entry for tensor 'a' is not a file name/],
      ['{"weight_map": {}}', /weight_map is empty/],
      ['{"weight_map": {"a": "../elsewhere.safetensors"}}', /shard '..\/elsewhere.safetensors' \(for tensor 'a'\) is outside the model directory/],
      ['{"weight_map": {"a": "/etc/passwd"}}', /outside the model directory/],
    ];
    for (const [text, pattern] of cases) {
      const dir = freshDir();
      fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), text);
      const e = userError(() => Checkpoint.open(dir));
      expect(e.file).toBe(path.join(dir, 'model.safetensors.index.json'));
      expect(e.message).toMatch(/^invalid checkpoint index: /);
      expect(e.message).toMatch(pattern);
    }
  });

  it('a tensor absent from the index names the index file', () => {
    const dir = freshDir();
    writeSharded(dir, randomModel(10), 3);
    const ck = Checkpoint.open(dir);
    const e = userError(() => ck.require('model.layers.7.mlp.gate_proj.weight'));
    expect(e.message).toContain("'model.layers.7.mlp.gate_proj.weight'");
    expect(e.file).toBe(path.join(dir, 'model.safetensors.index.json'));
    ck.close();
  });
});

describe.skipIf(!fs.existsSync(TINY_DIR))('tiny-qwen3 fixture directory', () => {
  if (!fs.existsSync(TINY_DIR)) console.warn(`skipping fixture tests: ${TINY_DIR} not found`);
  it('opens as a single-file checkpoint with the embedding', () => {
    const ck = Checkpoint.open(TINY_DIR);
    expect(ck.sharded).toBe(false);
    expect(ck.require('model.embed_tokens.weight').shape).toEqual([4096, 256]);
    ck.close();
  });
});
