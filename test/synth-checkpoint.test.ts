// scripts/synth-checkpoint.ts: the published layouts (names, shapes, shard counts, index) of the four real models in
// plan mode, and a written tiny checkpoint that our checkpoint loader, config parser and model loader accept.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ARCHS, archConfig, bytesOf, defaultShardBytes, parseSize, shardPlan, synthCheckpoint, tensorPlan } from '../scripts/synth-checkpoint.js';
import { Checkpoint } from '../src/io/checkpoint.js';
import { loadModelConfig } from '../src/io/config.js';
import { CpuBackend } from '../src/engine/cpu/backend.js';
import { loadModel } from '../src/model/load.js';
import { scratchDir } from './scratch.js';

describe('synth-checkpoint plans', () => {
  // Parameter counts and shard files as published on the Hugging Face hub.
  const published: [string, number, number, number][] = [
    // arch, layers, parameters (±0.01 B), shard files
    ['qwen3-8b', 36, 8.19, 5],
    ['llama3.1-8b', 32, 8.03, 4],
    ['qwen3-32b', 64, 32.76, 17],
    ['llama3.1-70b', 80, 70.55, 30],
  ];
  for (const [arch, layers, billions, files] of published) {
    it(`${arch}: ${layers} layers, ${billions} B parameters in ${files} shards of the publisher's limit`, async () => {
      const r = await synthCheckpoint({ arch, out: '', planOnly: true });
      expect(r.config.num_hidden_layers).toBe(layers);
      expect(Math.abs(r.parameters / 1e9 - billions)).toBeLessThan(0.01);
      expect(r.files.length).toBe(files);
      expect(r.files[0].file).toBe(`model-00001-of-${String(files).padStart(5, '0')}.safetensors`);
      const limit = defaultShardBytes(r.config);
      for (const f of r.files) expect(f.bytes).toBeLessThanOrEqual(limit);
      // Index: total_size is the sum of the tensors' bytes, every tensor mapped once, keys sorted.
      expect(r.index!.metadata.total_size).toBe(r.totalBytes);
      const keys = Object.keys(r.index!.weight_map);
      expect(keys.length).toBe(tensorPlan(r.config).length);
      expect(keys).toEqual([...keys].sort());
    });
  }

  it('tensor names and shapes of one Qwen3-8B block and one Llama-3.1-70B block', () => {
    const q = new Map(tensorPlan(archConfig('qwen3-8b', 1)).map((t) => [t.name, t.shape]));
    expect(q.get('model.embed_tokens.weight')).toEqual([151936, 4096]);
    expect(q.get('lm_head.weight')).toEqual([151936, 4096]);
    expect(q.get('model.layers.0.self_attn.q_proj.weight')).toEqual([4096, 4096]);
    expect(q.get('model.layers.0.self_attn.k_proj.weight')).toEqual([1024, 4096]);
    expect(q.get('model.layers.0.self_attn.o_proj.weight')).toEqual([4096, 4096]);
    expect(q.get('model.layers.0.self_attn.q_norm.weight')).toEqual([128]);
    expect(q.get('model.layers.0.mlp.down_proj.weight')).toEqual([4096, 12288]);
    expect(q.size).toBe(1 + 11 + 2);
    const l = new Map(tensorPlan(archConfig('llama3.1-70b', 1)).map((t) => [t.name, t.shape]));
    expect(l.get('model.layers.0.self_attn.q_proj.weight')).toEqual([8192, 8192]);
    expect(l.get('model.layers.0.self_attn.v_proj.weight')).toEqual([1024, 8192]);
    expect(l.get('model.layers.0.mlp.gate_proj.weight')).toEqual([28672, 8192]);
    expect(l.has('model.layers.0.self_attn.q_norm.weight')).toBe(false);
    expect(l.size).toBe(1 + 9 + 2);
    expect(archConfig('llama3.1-8b').rope_scaling).toMatchObject({ rope_type: 'llama3', factor: 8, original_max_position_embeddings: 8192 });
  });

  it('shards: a new file when the next tensor would overflow, an oversized tensor alone', () => {
    const ts = [[10], [10], [30], [5], [5]].map((shape, i) => ({ name: `t${i}`, shape }));
    // bytes 20, 20, 60, 10, 10 against a 45-byte limit; as in huggingface_hub, the oversized tensor's shard is
    // emitted at once, ahead of the shard still being filled
    expect(shardPlan(ts, 45).map((s) => s.map((t) => t.name))).toEqual([['t2'], ['t0', 't1'], ['t3', 't4']]);
    expect(bytesOf({ shape: [3, 4] })).toBe(24);
    expect(parseSize('5GB')).toBe(5e9);
    expect(parseSize('2MiB')).toBe(2 * 2 ** 20);
    expect(() => parseSize('lots')).toThrow(/--shard-size/);
  });
});

describe('synth-checkpoint writes a checkpoint our loaders open', () => {
  let dir: string;
  beforeAll(async () => {
    dir = path.join(scratchDir('paro-synth-'), 'tiny');
    // 1 MB shards force the sharded layout even at this size.
    await synthCheckpoint({ arch: 'qwen3-tiny', out: dir, shardBytes: 1e6, seed: 3, threads: 2 });
  });

  it('index, headers and data agree; norms are 1, linears N(0, 0.02²)', () => {
    const index = JSON.parse(readFileSync(path.join(dir, 'model.safetensors.index.json'), 'utf8'));
    const ck = Checkpoint.open(dir);
    try {
      expect(ck.sharded).toBe(true);
      const plan = tensorPlan(ARCHS['qwen3-tiny']());
      expect(ck.names().sort()).toEqual(plan.map((t) => t.name).sort());
      let total = 0;
      for (const t of plan) {
        const info = ck.info(t.name);
        expect(info.dtype).toBe('BF16');
        expect(info.shape).toEqual(t.shape);
        expect(path.basename(info.file)).toBe(index.weight_map[t.name]);
        total += info.byteLength;
      }
      expect(index.metadata.total_size).toBe(total);
      ck.validate();
      const words = (name: string) => {
        const b = ck.readBytes(name);
        return new Uint16Array(b.buffer, b.byteOffset, b.byteLength / 2);
      };
      expect(words('model.layers.0.input_layernorm.weight').every((w) => w === 0x3f80)).toBe(true);
      const f = new Float32Array(1);
      const u = new Uint32Array(f.buffer);
      const w = words('model.layers.1.mlp.up_proj.weight');
      let s1 = 0;
      let s2 = 0;
      for (const x of w) {
        u[0] = x << 16;
        s1 += f[0];
        s2 += f[0] * f[0];
      }
      const mean = s1 / w.length;
      const std = Math.sqrt(s2 / w.length - mean * mean);
      expect(Math.abs(mean)).toBeLessThan(5e-4);
      expect(Math.abs(std - 0.02) / 0.02).toBeLessThan(0.02);
      // Different tensors get different draws.
      expect(Buffer.from(ck.readBytes('model.layers.0.mlp.up_proj.weight')).equals(Buffer.from(ck.readBytes('model.layers.1.mlp.up_proj.weight')))).toBe(false);
    } finally {
      ck.close();
    }
  });

  it('the same seed gives the same bytes with another thread count', async () => {
    const again = path.join(scratchDir('paro-synth-'), 'tiny');
    await synthCheckpoint({ arch: 'qwen3-tiny', out: again, shardBytes: 1e6, seed: 3, threads: 1 });
    for (const f of ['model-00001-of-00003.safetensors', 'model-00003-of-00003.safetensors'])
      expect(readFileSync(path.join(again, f)).equals(readFileSync(path.join(dir, f)))).toBe(true);
  });

  it('config parses and the model loads and runs', async () => {
    const cfg = loadModelConfig(dir);
    expect(cfg.family).toBe('qwen3');
    expect(cfg.numLayers).toBe(2);
    expect(cfg.hiddenSize).toBe(128);
    const be = await CpuBackend.create();
    const m = loadModel(be, dir);
    const r = m.decoder.forward(Int32Array.from([1, 2, 3, 4]), 1, {});
    const logits = be.toHost(r.logits!);
    expect(logits.length).toBe(4 * 4096);
    expect(logits.every(Number.isFinite)).toBe(true);
  });
});
