// Sharded safetensors output (io/sharded-writer): HF's shard assignment, tensors written at their offsets in any order
// and in pieces, read back through Checkpoint (index or single file), the single-shard file identical to the
// one-file writer's with tensors sorted by name, and abort leaving nothing.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Checkpoint } from '../src/io/checkpoint.js';
import { writeSafetensors, type TensorData } from '../src/io/safetensors-writer.js';
import { ShardedSafetensorsWriter, assignShards, shardFileName } from '../src/io/sharded-writer.js';
import { scratchDir } from './scratch.js';

function tensor(name: string, n: number, seed: number): TensorData {
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = Math.sin(seed * 131 + i * 0.37);
  return { name, dtype: 'F32', shape: [n], data };
}

// Module order as a checkpoint lists it; names sort differently (layers.10 before layers.2).
const TENSORS = [
  tensor('model.embed_tokens.weight', 300, 1),
  ...[0, 1, 2, 10].flatMap((l) => [tensor(`model.layers.${l}.a.weight`, 100, 10 + l), tensor(`model.layers.${l}.b.weight`, 50, 20 + l)]),
  tensor('model.norm.weight', 10, 3),
  tensor('lm_head.weight', 300, 4),
];

describe('assignShards', () => {
  const t = (name: string, n: number) => ({ name, dtype: 'F32' as const, shape: [n] });
  it('fills shards in order and starts a new one when the next tensor would pass the limit', () => {
    const groups = assignShards([t('a', 2), t('b', 2), t('c', 2), t('d', 1)], 16);
    expect(groups.map((g) => g.map((x) => x.name))).toEqual([['a', 'b'], ['c', 'd']]);
  });
  it('gives a tensor larger than the limit a shard of its own', () => {
    const groups = assignShards([t('a', 1), t('big', 10), t('c', 1)], 8);
    expect(groups.map((g) => g.map((x) => x.name))).toEqual([['a'], ['big'], ['c']]);
  });
  it('names shards as Hugging Face does, one shard as model.safetensors', () => {
    expect(shardFileName(0, 1)).toBe('model.safetensors');
    expect(shardFileName(1, 12)).toBe('model-00002-of-00012.safetensors');
  });
});

describe('ShardedSafetensorsWriter', () => {
  it('writes shards and an index that Checkpoint reads back, tensors written in any order and in pieces', () => {
    const dir = scratchDir('shards-');
    const w = new ShardedSafetensorsWriter(dir, TENSORS, { maxShardSize: 1600, metadata: { format: 'pt' } });
    // Reverse order; the embedding in three pieces.
    for (const t of [...TENSORS].reverse()) {
      if (t.name !== 'model.embed_tokens.weight') {
        w.write(t.name, t.data);
        continue;
      }
      const bytes = new Uint8Array(t.data.buffer);
      w.writeAt(t.name, 800, bytes.subarray(800));
      w.writeAt(t.name, 0, bytes.subarray(0, 400));
      w.writeAt(t.name, 400, bytes.subarray(400, 800));
    }
    w.finish();
    const shards = readdirSync(dir).filter((f) => f.endsWith('.safetensors')).sort();
    expect(shards.length).toBeGreaterThan(2);
    expect(shards[0]).toBe(`model-00001-of-${String(shards.length).padStart(5, '0')}.safetensors`);
    expect(w.files).toEqual([...shards, 'model.safetensors.index.json']);
    const index = JSON.parse(readFileSync(path.join(dir, 'model.safetensors.index.json'), 'utf8'));
    expect(index.metadata.total_size).toBe(TENSORS.reduce((a, t) => a + t.data.byteLength, 0));
    expect(Object.keys(index.weight_map)).toEqual(TENSORS.map((t) => t.name).sort());
    // Module order decides the shards: the embedding is in the first, lm_head in the last.
    expect(index.weight_map['model.embed_tokens.weight']).toBe(shards[0]);
    expect(index.weight_map['lm_head.weight']).toBe(shards[shards.length - 1]);
    const ck = Checkpoint.open(dir);
    expect(ck.sharded).toBe(true);
    for (const t of TENSORS) expect(ck.readF32(t.name)).toEqual(t.data);
    ck.close();
  });

  it('one shard is model.safetensors, byte for byte the one-file writer\'s output with tensors sorted by name', () => {
    const dir = scratchDir('shards-');
    const w = new ShardedSafetensorsWriter(dir, TENSORS, { metadata: { format: 'pt' } });
    for (const t of TENSORS) w.write(t.name, t.data);
    w.finish();
    expect(readdirSync(dir)).toEqual(['model.safetensors']);
    const ref = path.join(scratchDir('ref-'), 'ref.safetensors');
    writeSafetensors(ref, [...TENSORS].sort((a, b) => (a.name < b.name ? -1 : 1)), { format: 'pt' });
    expect(Buffer.compare(readFileSync(path.join(dir, 'model.safetensors')), readFileSync(ref))).toBe(0);
  });

  it('refuses to finish with a tensor missing or incomplete, and abort leaves no file', () => {
    const dir = scratchDir('shards-');
    const w = new ShardedSafetensorsWriter(dir, TENSORS, { maxShardSize: 1600 });
    for (const t of TENSORS.slice(1)) w.write(t.name, t.data);
    w.writeAt(TENSORS[0].name, 0, new Uint8Array(8));
    expect(() => w.finish()).toThrow(/not written in full: model\.embed_tokens\.weight/);
    expect(() => w.write('nope', new Uint8Array(4))).toThrow(/not in the output plan/);
    w.abort();
    expect(readdirSync(dir)).toEqual([]);
    expect(existsSync(path.join(dir, 'model.safetensors.index.json'))).toBe(false);
  });
});
