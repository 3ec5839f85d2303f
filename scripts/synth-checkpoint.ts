// Random-weight checkpoints with the exact layout of published models (tensor names, shapes, bf16, config.json,
// Hugging Face sharding: model-0000i-of-0000n.safetensors + model.safetensors.index.json), for tests and benchmarks
// at real size without downloads. Streamed tensor by tensor: only a few chunks are ever in memory; worker threads
// fill the chunks (a seeded generator and a normal-quantile table of bf16 words, so one table lookup per value).
//   npx tsx scripts/synth-checkpoint.ts --arch qwen3-8b --out /tmp/q8 [--layers N] [--shard-size 5GB] [--seed 0]
//   npx tsx scripts/synth-checkpoint.ts --arch llama3.1-70b --plan      (names, shapes and shards only; writes nothing)
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

type HfConfig = Record<string, unknown>;

const LLAMA31_ROPE = { factor: 8.0, high_freq_factor: 4.0, low_freq_factor: 1.0, original_max_position_embeddings: 8192, rope_type: 'llama3' };

function qwen3(hidden: number, intermediate: number, layers: number, heads: number): HfConfig {
  return {
    architectures: ['Qwen3ForCausalLM'], attention_bias: false, attention_dropout: 0.0, bos_token_id: 151643, eos_token_id: 151645,
    head_dim: 128, hidden_act: 'silu', hidden_size: hidden, initializer_range: 0.02, intermediate_size: intermediate,
    max_position_embeddings: 40960, max_window_layers: layers, model_type: 'qwen3', num_attention_heads: heads,
    num_hidden_layers: layers, num_key_value_heads: 8, rms_norm_eps: 1e-6, rope_scaling: null, rope_theta: 1000000,
    sliding_window: null, tie_word_embeddings: false, torch_dtype: 'bfloat16', transformers_version: '4.51.0', use_cache: true,
    use_sliding_window: false, vocab_size: 151936,
  };
}

function llama31(hidden: number, intermediate: number, layers: number, heads: number): HfConfig {
  return {
    architectures: ['LlamaForCausalLM'], attention_bias: false, attention_dropout: 0.0, bos_token_id: 128000, eos_token_id: 128001,
    head_dim: 128, hidden_act: 'silu', hidden_size: hidden, initializer_range: 0.02, intermediate_size: intermediate,
    max_position_embeddings: 131072, mlp_bias: false, model_type: 'llama', num_attention_heads: heads, num_hidden_layers: layers,
    num_key_value_heads: 8, pretraining_tp: 1, rms_norm_eps: 1e-5, rope_scaling: { ...LLAMA31_ROPE }, rope_theta: 500000.0,
    tie_word_embeddings: false, torch_dtype: 'bfloat16', transformers_version: '4.43.0', use_cache: true, vocab_size: 128256,
  };
}

/**
 * The published configs (Qwen/Qwen3-8B, Qwen/Qwen3-32B, meta-llama/Llama-3.1-8B, meta-llama/Llama-3.1-70B), and a
 * tiny Qwen3 with the fixture tokenizer's vocabulary for cpu tests.
 */
export const ARCHS: Record<string, () => HfConfig> = {
  'qwen3-8b': () => qwen3(4096, 12288, 36, 32),
  'qwen3-32b': () => qwen3(5120, 25600, 64, 64),
  'llama3.1-8b': () => llama31(4096, 14336, 32, 32),
  'llama3.1-70b': () => llama31(8192, 28672, 80, 64),
  'qwen3-tiny': () => ({ ...qwen3(128, 384, 2, 4), head_dim: 32, num_key_value_heads: 2, vocab_size: 4096, bos_token_id: 0, eos_token_id: 0, max_position_embeddings: 4096 }),
};

export interface PlannedTensor {
  name: string;
  shape: number[];
  /** Values: 'normal' = N(0, initializer_range²), 'ones' = RMSNorm weights. */
  init: 'normal' | 'ones';
}

const num = (cfg: HfConfig, key: string): number => {
  const v = cfg[key];
  if (typeof v !== 'number') throw new Error(`config.${key} is not a number`);
  return v;
};

/** Every tensor in the order of the model's state_dict (the order Hugging Face fills shards in). */
export function tensorPlan(cfg: HfConfig): PlannedTensor[] {
  const H = num(cfg, 'hidden_size');
  const I = num(cfg, 'intermediate_size');
  const hd = num(cfg, 'head_dim');
  const q = num(cfg, 'num_attention_heads') * hd;
  const kv = num(cfg, 'num_key_value_heads') * hd;
  const V = num(cfg, 'vocab_size');
  const qkNorm = cfg.model_type === 'qwen3';
  const plan: PlannedTensor[] = [{ name: 'model.embed_tokens.weight', shape: [V, H], init: 'normal' }];
  for (let l = 0; l < num(cfg, 'num_hidden_layers'); l++) {
    const p = `model.layers.${l}.`;
    plan.push(
      { name: `${p}self_attn.q_proj.weight`, shape: [q, H], init: 'normal' },
      { name: `${p}self_attn.k_proj.weight`, shape: [kv, H], init: 'normal' },
      { name: `${p}self_attn.v_proj.weight`, shape: [kv, H], init: 'normal' },
      { name: `${p}self_attn.o_proj.weight`, shape: [H, q], init: 'normal' },
    );
    if (qkNorm) plan.push({ name: `${p}self_attn.q_norm.weight`, shape: [hd], init: 'ones' }, { name: `${p}self_attn.k_norm.weight`, shape: [hd], init: 'ones' });
    plan.push(
      { name: `${p}mlp.gate_proj.weight`, shape: [I, H], init: 'normal' },
      { name: `${p}mlp.up_proj.weight`, shape: [I, H], init: 'normal' },
      { name: `${p}mlp.down_proj.weight`, shape: [H, I], init: 'normal' },
      { name: `${p}input_layernorm.weight`, shape: [H], init: 'ones' },
      { name: `${p}post_attention_layernorm.weight`, shape: [H], init: 'ones' },
    );
  }
  plan.push({ name: 'model.norm.weight', shape: [H], init: 'ones' });
  if (cfg.tie_word_embeddings !== true) plan.push({ name: 'lm_head.weight', shape: [V, H], init: 'normal' });
  return plan;
}

export const bytesOf = (t: { shape: number[] }): number => 2 * t.shape.reduce((a, d) => a * d, 1);

/**
 * Shards as huggingface_hub's split_state_dict_into_shards fills them: tensors in state_dict order; a tensor larger
 * than the limit gets a shard of its own; otherwise a new shard starts when the next tensor would overflow.
 */
export function shardPlan<T extends { shape: number[] }>(plan: T[], maxShardBytes: number): T[][] {
  const shards: T[][] = [];
  let cur: T[] = [];
  let curBytes = 0;
  for (const t of plan) {
    const b = bytesOf(t);
    if (b > maxShardBytes) {
      shards.push([t]);
      continue;
    }
    if (curBytes + b > maxShardBytes && cur.length > 0) {
      shards.push(cur);
      cur = [];
      curBytes = 0;
    }
    cur.push(t);
    curBytes += b;
  }
  if (cur.length > 0) shards.push(cur);
  return shards;
}

/** `model-00001-of-00004.safetensors`, or `model.safetensors` when there is one shard. */
export function shardFileName(i: number, n: number): string {
  if (n === 1) return 'model.safetensors';
  const pad = (k: number) => String(k).padStart(5, '0');
  return `model-${pad(i + 1)}-of-${pad(n)}.safetensors`;
}

/** "5GB" (10⁹, as Hugging Face counts), "500MB", "2GiB", "1048576" → bytes. */
export function parseSize(s: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB)?\s*$/i.exec(s);
  if (!m) throw new Error(`--shard-size: expected a size like 5GB, 500MB or a byte count, got "${s}"`);
  const units: Record<string, number> = { b: 1, kb: 1e3, mb: 1e6, gb: 1e9, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30 };
  return Math.floor(Number(m[1]) * units[(m[2] ?? 'b').toLowerCase()]);
}

/** The safetensors header for the tensors of one file; data laid out in the order given. */
function encodeHeader(tensors: PlannedTensor[]): Buffer {
  const parts = ['"__metadata__":{"format":"pt"}'];
  let off = 0;
  for (const t of tensors) {
    const n = bytesOf(t);
    parts.push(`${JSON.stringify(t.name)}:${JSON.stringify({ dtype: 'BF16', shape: t.shape, data_offsets: [off, off + n] })}`);
    off += n;
  }
  const json = Buffer.from(`{${parts.join(',')}}`, 'utf8');
  const padded = Math.ceil(json.length / 8) * 8;
  const out = Buffer.alloc(8 + padded, 0x20);
  out.writeBigUInt64LE(BigInt(padded), 0);
  json.copy(out, 8);
  return out;
}

// The worker: plain JS (evaluated from a string, so the same code runs under tsx and in an esbuild bundle). It builds
// a 65536-entry table of bf16 words of std·Φ⁻¹((i + ½)/65536) (Acklam's rational approximation, good to ~1e-9) and
// fills chunks from mulberry32, two table lookups per 32-bit draw.
const WORKER_SRC = `
const { parentPort, workerData } = require('node:worker_threads');
function invNorm(p) {
  const a = [-3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.38357751867269e2, -3.066479806614716e1, 2.506628277459239];
  const b = [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
  const c = [-7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
  const lo = 0.02425;
  if (p < lo) { const q = Math.sqrt(-2 * Math.log(p)); return (((((c[0]*q+c[1])*q+c[2])*q+c[3])*q+c[4])*q+c[5]) / ((((d[0]*q+d[1])*q+d[2])*q+d[3])*q+1); }
  if (p > 1 - lo) { const q = Math.sqrt(-2 * Math.log(1 - p)); return -(((((c[0]*q+c[1])*q+c[2])*q+c[3])*q+c[4])*q+c[5]) / ((((d[0]*q+d[1])*q+d[2])*q+d[3])*q+1); }
  const q = p - 0.5, r = q * q;
  return (((((a[0]*r+a[1])*r+a[2])*r+a[3])*r+a[4])*r+a[5])*q / (((((b[0]*r+b[1])*r+b[2])*r+b[3])*r+b[4])*r+1);
}
const f = new Float32Array(1), u = new Uint32Array(f.buffer);
const table = new Uint16Array(65536);
for (let i = 0; i < 65536; i++) {
  f[0] = workerData.std * invNorm((i + 0.5) / 65536);
  table[i] = (u[0] + 0x7fff + ((u[0] >>> 16) & 1)) >>> 16; // round to nearest even
}
parentPort.on('message', (m) => {
  const out = new Uint16Array(m.buf, 0, m.n);
  let s = m.seed >>> 0;
  const n = m.n;
  let i = 0;
  for (; i + 1 < n; i += 2) {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    t = (t ^ (t >>> 14)) >>> 0;
    out[i] = table[t & 0xffff];
    out[i + 1] = table[t >>> 16];
  }
  if (i < n) { s = (s + 0x6d2b79f5) | 0; out[i] = table[(Math.imul(s ^ (s >>> 15), 1 | s) >>> 0) & 0xffff]; }
  parentPort.postMessage(m.id);
});
`;

/** A seed per (tensor, chunk), independent of the thread count, so a checkpoint is the same on any machine. */
/** fs.writeSync may write less than asked: loop until all of it is out. */
function writeAll(fd: number, bytes: Uint8Array): void {
  for (let off = 0; off < bytes.length; ) off += fs.writeSync(fd, bytes, off, bytes.length - off);
}

function chunkSeed(seed: number, tensor: number, chunk: number): number {
  let h = (seed ^ 0x9e3779b9) >>> 0;
  for (const v of [tensor, chunk]) {
    h = Math.imul(h ^ v, 0x85ebca6b) >>> 0;
    h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
    h = (h ^ (h >>> 16)) >>> 0;
  }
  return h;
}

class FillPool {
  private readonly workers: Worker[];
  private readonly idle: Worker[];
  private readonly waiting: (() => void)[] = [];
  private readonly pending = new Map<number, () => void>();
  private nextId = 0;

  constructor(threads: number, std: number) {
    this.workers = Array.from({ length: threads }, () => new Worker(WORKER_SRC, { eval: true, workerData: { std } }));
    for (const w of this.workers) w.on('message', (id: number) => this.pending.get(id)?.());
    this.idle = [...this.workers];
  }

  /** Fills buf's first n bf16 words from the seed. */
  async fill(buf: SharedArrayBuffer, n: number, seed: number): Promise<void> {
    while (this.idle.length === 0) await new Promise<void>((r) => this.waiting.push(r));
    const w = this.idle.pop()!;
    const id = this.nextId++;
    await new Promise<void>((resolve, reject) => {
      const onErr = (e: Error) => reject(e);
      w.once('error', onErr);
      this.pending.set(id, () => {
        this.pending.delete(id);
        w.off('error', onErr);
        resolve();
      });
      w.postMessage({ id, buf, n, seed });
    });
    this.idle.push(w);
    this.waiting.shift()?.();
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

export interface SynthOptions {
  arch: string;
  out: string;
  /** Fewer decoder layers than the published model (config.json says so). */
  layers?: number;
  shardBytes?: number;
  seed?: number;
  threads?: number;
  /** Compute names, shapes and shards only; write nothing. */
  planOnly?: boolean;
  /** Overwrite an existing output directory. */
  force?: boolean;
  /** Directory with tokenizer.json / tokenizer_config.json to copy (default examples/tiny-qwen3). */
  tokenizerDir?: string;
  log?: (line: string) => void;
}

export interface SynthResult {
  config: HfConfig;
  files: { file: string; tensors: string[]; bytes: number }[];
  index: { metadata: { total_size: number }; weight_map: Record<string, string> } | null;
  totalBytes: number;
  parameters: number;
  seconds: number;
}

const CHUNK_WORDS = 8 << 20; // 16 MB of bf16 per chunk

/**
 * The shard limit the publishers used: 4 GB for Qwen3 (Qwen3-8B ships 5 shards, Qwen3-32B 17), Hugging Face's 5 GB
 * default for Llama 3.1 (8B: 4 shards, 70B: 30).
 */
export function defaultShardBytes(cfg: HfConfig): number {
  return cfg.model_type === 'qwen3' ? 4e9 : 5e9;
}

export function archConfig(arch: string, layers?: number): HfConfig {
  const make = ARCHS[arch];
  if (!make) throw new Error(`unknown --arch "${arch}"; one of ${Object.keys(ARCHS).join(', ')}`);
  const cfg = make();
  if (layers !== undefined) {
    if (!Number.isInteger(layers) || layers < 1) throw new Error(`--layers must be a positive integer, got ${layers}`);
    cfg.num_hidden_layers = layers;
    if ('max_window_layers' in cfg) cfg.max_window_layers = layers;
  }
  return cfg;
}

/** Writes (or only plans) a checkpoint; the output directory is built under a temporary name, then renamed. */
export async function synthCheckpoint(o: SynthOptions): Promise<SynthResult> {
  const t0 = performance.now();
  const log = o.log ?? (() => {});
  const cfg = archConfig(o.arch, o.layers);
  const plan = tensorPlan(cfg);
  const shards = shardPlan(plan, o.shardBytes ?? defaultShardBytes(cfg));
  const files = shards.map((ts, i) => ({ file: shardFileName(i, shards.length), tensors: ts.map((t) => t.name), bytes: ts.reduce((a, t) => a + bytesOf(t), 0) }));
  const totalBytes = files.reduce((a, f) => a + f.bytes, 0);
  const weightMap: Record<string, string> = {};
  for (const f of files) for (const n of f.tensors) weightMap[n] = f.file;
  const sortedMap = Object.fromEntries(Object.keys(weightMap).sort().map((k) => [k, weightMap[k]]));
  const index = shards.length > 1 ? { metadata: { total_size: totalBytes }, weight_map: sortedMap } : null;
  const result: SynthResult = { config: cfg, files, index, totalBytes, parameters: totalBytes / 2, seconds: 0 };
  if (o.planOnly) return { ...result, seconds: (performance.now() - t0) / 1000 };

  if (fs.existsSync(o.out)) {
    if (!o.force) throw new Error(`${o.out} exists (pass --force to replace it)`);
    fs.rmSync(o.out, { recursive: true, force: true });
  }
  const tmp = `${o.out}.partial-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  const tokDir = o.tokenizerDir ?? path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'examples', 'tiny-qwen3');
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) {
    const src = path.join(tokDir, f);
    if (fs.existsSync(src)) fs.copyFileSync(src, path.join(tmp, f));
  }
  fs.writeFileSync(path.join(tmp, 'config.json'), JSON.stringify(cfg, null, 2) + '\n');
  fs.writeFileSync(path.join(tmp, 'generation_config.json'), JSON.stringify({ bos_token_id: cfg.bos_token_id, eos_token_id: cfg.eos_token_id, transformers_version: cfg.transformers_version }, null, 2) + '\n');

  const threads = Math.max(1, o.threads ?? Math.min(16, os.availableParallelism()));
  const pool = new FillPool(threads, num(cfg, 'initializer_range'));
  const tensorIndex = new Map(plan.map((t, i) => [t.name, i]));
  const ones = new Uint16Array(CHUNK_WORDS).fill(0x3f80); // bf16 1.0
  const free: SharedArrayBuffer[] = Array.from({ length: threads * 2 }, () => new SharedArrayBuffer(CHUNK_WORDS * 2));
  let written = 0;
  let lastLog = performance.now();
  try {
    for (let s = 0; s < shards.length; s++) {
      // Within a file, tensors sorted by name (as the safetensors library lays them out).
      const inFile = [...shards[s]].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      const fd = fs.openSync(path.join(tmp, files[s].file), 'w');
      try {
        writeAll(fd, encodeHeader(inFile));
        // Chunks in file order, filled ahead by the pool (bounded by the free buffers), written in order.
        const queue: { done: Promise<void>; buf: SharedArrayBuffer | null; n: number }[] = [];
        const flush = async (keep: number) => {
          while (queue.length > keep) {
            const c = queue.shift()!;
            await c.done;
            if (c.buf) {
              writeAll(fd, new Uint8Array(c.buf, 0, c.n * 2));
              free.push(c.buf);
            } else writeAll(fd, new Uint8Array(ones.buffer, 0, c.n * 2));
            written += c.n * 2;
            if (performance.now() - lastLog > 5000) {
              lastLog = performance.now();
              log(`  ${(written / 1e9).toFixed(1)} / ${(totalBytes / 1e9).toFixed(1)} GB, ${((performance.now() - t0) / 1000).toFixed(0)} s`);
            }
          }
        };
        for (const t of inFile) {
          const n = bytesOf(t) / 2;
          const ti = tensorIndex.get(t.name)!;
          for (let c = 0, off = 0; off < n; c++, off += CHUNK_WORDS) {
            const k = Math.min(CHUNK_WORDS, n - off);
            if (t.init === 'ones') {
              queue.push({ done: Promise.resolve(), buf: null, n: k });
              continue;
            }
            while (free.length === 0) await flush(queue.length - 1);
            const buf = free.pop()!;
            queue.push({ done: pool.fill(buf, k, chunkSeed(o.seed ?? 0, ti, c)), buf, n: k });
          }
        }
        await flush(0);
      } finally {
        fs.closeSync(fd);
      }
      log(`${files[s].file}: ${files[s].tensors.length} tensors, ${(files[s].bytes / 1e9).toFixed(2)} GB`);
    }
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  } finally {
    await pool.close();
  }
  if (index) fs.writeFileSync(path.join(tmp, 'model.safetensors.index.json'), JSON.stringify(index, null, 2) + '\n');
  fs.renameSync(tmp, o.out);
  return { ...result, seconds: (performance.now() - t0) / 1000 };
}

function parseArgs(argv: string[]): SynthOptions & { json: boolean } {
  const o: SynthOptions & { json: boolean } = { arch: '', out: '', json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--arch') o.arch = val();
    else if (a === '--out') o.out = val();
    else if (a === '--layers') o.layers = Number(val());
    else if (a === '--shard-size') o.shardBytes = parseSize(val());
    else if (a === '--seed') o.seed = Number(val());
    else if (a === '--threads') o.threads = Number(val());
    else if (a === '--tokenizer') o.tokenizerDir = val();
    else if (a === '--plan') o.planOnly = true;
    else if (a === '--force') o.force = true;
    else if (a === '--json') o.json = true;
    else throw new Error(`unknown option ${a}`);
  }
  if (!o.arch) throw new Error(`--arch is required: ${Object.keys(ARCHS).join(', ')}`);
  if (!o.out && !o.planOnly) throw new Error('--out is required (or --plan)');
  return o;
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const r = await synthCheckpoint({ ...o, log: (l) => process.stderr.write(l + '\n') });
  const summary = {
    arch: o.arch, out: o.out || null, layers: r.config.num_hidden_layers, parameters: r.parameters, totalBytes: r.totalBytes,
    shards: r.files.map((f) => ({ file: f.file, tensors: f.tensors.length, bytes: f.bytes })), seconds: r.seconds,
    gbPerSecond: o.planOnly ? null : r.totalBytes / 1e9 / r.seconds,
  };
  if (o.json) process.stdout.write(JSON.stringify(summary, null, 1) + '\n');
  else {
    process.stderr.write(`${o.arch}: ${(r.parameters / 1e9).toFixed(2)} B parameters, ${(r.totalBytes / 1e9).toFixed(2)} GB in ${r.files.length} file(s)` +
      (o.planOnly ? ' (plan only)\n' : ` written in ${r.seconds.toFixed(1)} s (${summary.gbPerSecond!.toFixed(2)} GB/s)\n`));
    if (o.planOnly) for (const f of summary.shards) process.stderr.write(`  ${f.file}: ${f.tensors} tensors, ${f.bytes} bytes\n`);
  }
}

// Run as a program (tsx, or the bundled .gpu/synth-checkpoint.mjs), not when imported by a bench.
if (process.argv[1] && /synth-checkpoint\.(ts|mjs|js)$/.test(process.argv[1])) {
  main().catch((e: unknown) => {
    process.stderr.write(`synth-checkpoint: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
}
