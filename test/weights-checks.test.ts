// Bad weights stop a command before any compute (issue 8, defects 2, 7, 9): NaN/Inf tensors named with their file,
// tensors checked against config.json (shape, dtype, missing, unexpected, extra layers), a directory in place of
// model.safetensors; and NaN that reaches the kernels propagates instead of looking like a masked row.
import { copyFileSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { loadTokenizer } from '../src/io/tokenizer.js';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { CpuBackend } from '../src/engine/cpu/backend.js';
import type { Backend } from '../src/engine/backend.js';
import { initMatmul } from '../src/engine/cpu/matmul.js';
import { attentionForward } from '../src/engine/cpu/attention.js';
import { Checkpoint } from '../src/io/checkpoint.js';
import { SafetensorsFile } from '../src/io/safetensors.js';
import { writeSafetensors, type TensorData } from '../src/io/safetensors-writer.js';
import { firstNonFinite16, firstNonFiniteF32 } from '../src/io/finite.js';
import { loadModel } from '../src/model/load.js';
import { perplexity } from '../src/model/perplexity.js';
import { DEMO_MODEL, FIXTURES, HAVE_FIXTURES } from './fixtures-path.js';
import { loadModelConfig } from '../src/io/config.js';
import { validateCheckpoint } from '../src/io/validate-checkpoint.js';
import { scratchDir } from './scratch.js';
import { userError } from './user-error.js';

const SIDE_FILES = ['config.json', 'tokenizer.json', 'tokenizer_config.json'];

function demoTensors(src = DEMO_MODEL): TensorData[] {
  const f = SafetensorsFile.open(path.join(src, 'model.safetensors'));
  try {
    return f.names().map((name) => {
      const i = f.info(name);
      return { name, dtype: i.dtype, shape: [...i.shape], data: f.readBytes(name) };
    });
  } finally {
    f.close();
  }
}

/** A copy of the demo model whose tensors went through edit; config.json optionally edited too. */
function variant(edit: (t: TensorData[]) => TensorData[], config?: (c: Record<string, unknown>) => void, src = DEMO_MODEL): string {
  const dir = scratchDir('weights-checks-');
  for (const f of SIDE_FILES) copyFileSync(path.join(src, f), path.join(dir, f));
  writeSafetensors(path.join(dir, 'model.safetensors'), edit(demoTensors(src)));
  if (config) {
    const c = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    config(c);
    writeFileSync(path.join(dir, 'config.json'), JSON.stringify(c));
  }
  return dir;
}

/** Sets 16-bit element i of the named tensor to the given raw bits. */
function poke16(name: string, i: number, bits: number) {
  return (ts: TensorData[]): TensorData[] => {
    const t = ts.find((x) => x.name === name)!;
    new DataView(t.data.buffer, t.data.byteOffset).setUint16(2 * i, bits, true);
    return ts;
  };
}

let be: Backend;
beforeAll(async () => {
  be = await CpuBackend.create();
  await initMatmul();
});

describe('finite checks', () => {
  it('finds NaN and Inf in f32 data and in raw bf16/f16 words', () => {
    expect(firstNonFiniteF32(new Float32Array([1, -2, 3e38]))).toBe(-1);
    expect(firstNonFiniteF32(new Float32Array([1, NaN, 3]))).toBe(1);
    expect(firstNonFiniteF32(new Float32Array([1, 2, -Infinity]))).toBe(2);
    // bf16: 0x7f7f is the largest finite, 0x7f80 Inf, 0xffc0 NaN; f16: 0x7bff max, 0x7c00 Inf, 0xfe00 NaN.
    expect(firstNonFinite16(new Uint16Array([0x3f80, 0x7f7f, 0xff7f]), 'BF16')).toBe(-1);
    expect(firstNonFinite16(new Uint16Array([0x3f80, 0x7f80]), 'BF16')).toBe(1);
    expect(firstNonFinite16(new Uint16Array([0xffc0]), 'BF16')).toBe(0);
    expect(firstNonFinite16(new Uint16Array([0x7bff, 0xfbff, 0x3c00]), 'F16')).toBe(-1);
    expect(firstNonFinite16(new Uint16Array([0x3c00, 0xfe00]), 'F16')).toBe(1);
  });

  it('the two-words-at-a-time 16-bit test agrees with the per-word rule on every bit pattern, at both positions', () => {
    const wrong: string[] = [];
    const words = new Uint16Array(5);
    for (const dt of ['BF16', 'F16'] as const) {
      const mask = dt === 'BF16' ? 0x7f80 : 0x7c00;
      for (let b = 0; b < 65536; b++) {
        const bad = (b & mask) === mask;
        for (const at of [2, 3]) { // low and high half of the second pair
          words.set([0x3c00, 0xbc00, 0x3c00, 0x3c00, 0x3c00]);
          words[at] = b;
          if (firstNonFinite16(words, dt) !== (bad ? at : -1)) wrong.push(`${dt} 0x${b.toString(16)} at ${at}`);
        }
      }
    }
    expect(wrong).toEqual([]);
  });

  it('one NaN in k_proj: loading fails naming the tensor and the file (it gave ppl 27.45)', () => {
    const dir = variant(poke16('model.layers.1.self_attn.k_proj.weight', 77, 0x7fc0));
    const e = userError(() => loadModel(be, dir));
    expect(e.oneLine()).toContain('model.layers.1.self_attn.k_proj.weight');
    expect(e.oneLine()).toContain('NaN at element 77');
    expect(e.file).toBe(path.join(dir, 'model.safetensors'));
  });

  it('an Inf in the embedding fails the same way', () => {
    const dir = variant(poke16('model.embed_tokens.weight', 5, 0xff80));
    expect(userError(() => loadModel(be, dir)).oneLine()).toMatch(/model\.embed_tokens\.weight holds -Inf at element 5/);
  });

  it('the check costs little next to loading', () => {
    const ck = Checkpoint.open(DEMO_MODEL);
    try {
      const bits = ck.readRaw16('model.embed_tokens.weight'); // 1 M words
      const t0 = performance.now();
      for (let r = 0; r < 10; r++) expect(firstNonFinite16(bits, 'BF16')).toBe(-1);
      const ms = (performance.now() - t0) / 10;
      expect(ms).toBeLessThan(20); // ~1 ms per million words measured; generous bound for a busy machine
    } finally {
      ck.close();
    }
  });
});

describe('kernels and metrics do not hide NaN', () => {
  it('cpu attention: an all-NaN score row gives NaN, not the zero of a masked row', () => {
    const shape = { batch: 1, tq: 4, tk: 4, heads: 1, kvHeads: 1, headDim: 8 };
    const q = new Float32Array(32).fill(0.1);
    const k = new Float32Array(32).fill(0.2);
    const v = new Float32Array(32).fill(0.3);
    k.fill(NaN, 0, 8); // key 0: the only key query 0 sees under the causal mask
    const { out } = attentionForward(q, k, v, shape, { kind: 'causal', qOffset: 0 });
    expect(Number.isNaN(out[0])).toBe(true);
    // A clean run keeps finite outputs (the fix changes nothing else).
    const clean = attentionForward(q, new Float32Array(32).fill(0.2), v, shape, { kind: 'causal', qOffset: 0 });
    expect(Array.from(clean.out).every(Number.isFinite)).toBe(true);
  });

  it('perplexity: a non-finite loss is a UserError naming the model and the window, not ppl NaN', () => {
    const model = loadModel(be, DEMO_MODEL);
    const w = model.decoder.weights;
    const [V, H] = w.lmHead.shape;
    const host = be.toHost(w.lmHead);
    host[3 * H] = NaN; // one logit row of token 3 becomes NaN: every row's log-sum-exp is NaN
    (w as { lmHead: unknown }).lmHead = be.fromHost(host, [V, H], 'f32');
    const tokens = new Int32Array(200).map((_, i) => (i * 7) % V);
    const e = userError(() => perplexity(model.decoder, tokens, { seqLen: 32, starts: [0, 32], batch: 1, model: DEMO_MODEL }));
    expect(e.file).toBe(DEMO_MODEL);
    expect(e.oneLine()).toMatch(/non-finite loss \(NaN\) on window 1 of 2/);
  });
});

describe('tensors checked against config.json', () => {
  it('a norm weight relabelled to another shape names the file, the tensor and both shapes', () => {
    const dir = variant((ts) => {
      const t = ts.find((x) => x.name === 'model.norm.weight')!;
      t.shape = [128];
      t.data = new Uint8Array(t.data.buffer, t.data.byteOffset, 256).slice();
      return ts;
    });
    const e = userError(() => loadModel(be, dir));
    expect(e.oneLine()).toBe(`${path.join(dir, 'model.safetensors')}: tensor model.norm.weight has shape [128], config.json implies [256]`);
  });

  it('missing and unexpected tensors are listed', () => {
    const dir = variant((ts) => [
      ...ts.filter((x) => x.name !== 'model.layers.2.mlp.up_proj.weight'),
      { name: 'model.layers.0.mlp.extra.weight', dtype: 'F32', shape: [2], data: new Uint8Array(8) },
    ]);
    const msg = userError(() => loadModel(be, dir)).oneLine();
    expect(msg).toContain('missing 1 tensor(s): model.layers.2.mlp.up_proj.weight');
    expect(msg).toContain('unexpected 1 tensor(s): model.layers.0.mlp.extra.weight');
  });

  it('a checkpoint with more layers than num_hidden_layers is refused', () => {
    const dir = variant((ts) => ts, (c) => { c.num_hidden_layers = 3; c.layer_types = ['full_attention', 'full_attention', 'full_attention']; });
    expect(userError(() => loadModel(be, dir)).oneLine()).toContain('holds 4 decoder layers (model.layers.0 .. 3) but config.json says num_hidden_layers: 3');
  });

  it('an integer tensor where a float is expected is refused by dtype', () => {
    const dir = variant((ts) => {
      const t = ts.find((x) => x.name === 'model.layers.0.input_layernorm.weight')!;
      t.dtype = 'I16';
      return ts;
    });
    expect(userError(() => loadModel(be, dir)).oneLine()).toContain('tensor model.layers.0.input_layernorm.weight has dtype I16');
  });

  it('rotary inv_freq buffers of older checkpoints are tolerated', () => {
    const dir = variant((ts) => [...ts, { name: 'model.layers.0.self_attn.rotary_emb.inv_freq', dtype: 'F32', shape: [32], data: new Uint8Array(128) }]);
    expect(() => loadModel(be, dir)).not.toThrow();
  });

  it.skipIf(!existsSync('/dev/zero'))('side files linked to /dev/zero fail at once instead of reading forever', () => {
    for (const name of ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'chat_template.jinja']) {
      const dir = scratchDir('weights-checks-');
      for (const f of [...SIDE_FILES, 'model.safetensors']) if (f !== name) copyFileSync(path.join(DEMO_MODEL, f), path.join(dir, f));
      symlinkSync('/dev/zero', path.join(dir, name));
      const e = userError(() => {
        loadModel(be, dir);
        loadTokenizer(dir);
      });
      expect(e.oneLine()).toMatch(new RegExp(`${name.replace('.', '\\.')}: .* is not a regular file`));
    }
  });

  it('model.safetensors being a directory is one line naming it', () => {
    const dir = scratchDir('weights-checks-');
    for (const f of SIDE_FILES) copyFileSync(path.join(DEMO_MODEL, f), path.join(dir, f));
    mkdirSync(path.join(dir, 'model.safetensors'));
    const e = userError(() => loadModel(be, dir));
    expect(e.oneLine()).toBe(`${path.join(dir, 'model.safetensors')}: is a directory, not a file`);
  });

  const OFFICIAL = path.join(FIXTURES, 'official', 'tiny-qwen3-paroquant');
  const validate = (dir: string) => {
    const ck = Checkpoint.open(dir);
    try {
      validateCheckpoint(ck, loadModelConfig(dir));
    } finally {
      ck.close();
    }
  };

  it.skipIf(!HAVE_FIXTURES)('the official ParoQuant checkpoint and the arch fixtures pass', () => {
    for (const d of ['official/tiny-qwen3-paroquant', 'arch/tiny-llama31-f16', 'arch/tiny-qwen25-bf16', 'tiny-qwen3']) {
      expect(() => validate(path.join(FIXTURES, d))).not.toThrow();
    }
  });

  it.skipIf(!HAVE_FIXTURES)('quantized linears: a lying scales shape and a missing theta are named', () => {
    const lying = variant((ts) => {
      const t = ts.find((x) => x.name === 'model.layers.0.mlp.down_proj.scales')!;
      t.shape = [t.shape[1], t.shape[0]];
      return ts;
    }, undefined, OFFICIAL);
    expect(userError(() => validate(lying)).oneLine()).toMatch(/tensor model\.layers\.0\.mlp\.down_proj\.scales has shape \[\d+, \d+\], config\.json implies \[\d+, \d+\]/);
    const missing = variant((ts) => ts.filter((x) => x.name !== 'model.layers.1.self_attn.q_proj.theta'), undefined, OFFICIAL);
    expect(userError(() => validate(missing)).oneLine()).toContain('missing 1 tensor(s): model.layers.1.self_attn.q_proj.theta');
  });
});
