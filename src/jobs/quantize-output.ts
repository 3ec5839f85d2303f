// Writing the quantized checkpoint (spec §7): quantized linears in the INT4 format (io/int4-format), every other
// tensor in fp16, streamed block by block into shards (io/sharded-writer), config.json with quantization_config,
// tokenizer and generation files copied from the source.
import * as fs from 'node:fs';
import path from 'node:path';
import type { Checkpoint } from '../io/checkpoint.js';
import type { ModelConfig } from '../io/config.js';
import { assertFiniteF32 } from '../io/finite.js';
import { packedLinearLayout, packedLinearTensors, quantizationConfig, type PackedLinear } from '../io/int4-format.js';
import { dtypeByteSize, type SafetensorsDType } from '../io/safetensors.js';
import type { TensorPlan } from '../io/safetensors-writer.js';
import { ShardedSafetensorsWriter } from '../io/sharded-writer.js';
import { LINEAR_KEYS, LINEAR_NAMES, linearShapes, type LinearKey } from '../model/weights.js';
import { bf16ToF32, f16ToF32, f32ToF16 } from '../numerics/half.js';

/** Files copied from the source model directory when present. */
export const COPIED_FILES = [
  'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json', 'chat_template.jinja',
  'chat_template.json', 'vocab.json', 'merges.txt', 'tokenizer.model', 'added_tokens.json', 'preprocessor_config.json',
  'processor_config.json',
];

export interface OutputLayout {
  /** Every output tensor in module order (the shard assignment): embedding, layers 0..L−1, the rest. */
  tensors: TensorPlan[];
  /** Source tensors copied (as fp16 when float) with block l: its norms and whatever else is not a packed linear. */
  layerSource: string[][];
  /** Source tensors outside the blocks (embedding, final norm, lm_head), copied at the end. */
  rest: string[];
}

const LAYER_NAME = /^model\.layers\.(\d+)\./;
const isFloatDtype = (d: SafetensorsDType): boolean => d === 'F64' || d === 'F32' || d === 'F16' || d === 'BF16';
const byName = (a: { name: string }, b: { name: string }): number => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/**
 * The quantized checkpoint's tensors, known before any block is optimized (spec §7): each linear's packed tensors
 * (io/int4-format's layout) replace its weight and bias; every other source tensor is kept, float ones as fp16.
 */
export function quantizedLayout(src: Checkpoint, cfg: ModelConfig, q: { groupSize: number; krot: number }): OutputLayout {
  const L = cfg.numLayers;
  const shapes = linearShapes(cfg);
  const perLayer: TensorPlan[][] = Array.from({ length: L }, () => []);
  const layerSource: string[][] = Array.from({ length: L }, () => []);
  const replaced = new Set<string>();
  for (let l = 0; l < L; l++) {
    for (const k of LINEAR_KEYS) {
      const prefix = `model.layers.${l}.${LINEAR_NAMES[k]}`;
      replaced.add(`${prefix}.weight`);
      replaced.add(`${prefix}.bias`);
      const bias = shapes[k].bias || src.has(`${prefix}.bias`);
      for (const t of packedLinearLayout(prefix, { inFeatures: shapes[k].in, outFeatures: shapes[k].out, groupSize: q.groupSize, krot: q.krot, bias })) {
        perLayer[l].push({ name: t.name, dtype: t.dtype, shape: t.shape });
      }
    }
  }
  const first: TensorPlan[] = [];
  const last: TensorPlan[] = [];
  const rest: string[] = [];
  for (const name of src.names()) {
    if (replaced.has(name)) continue;
    const info = src.info(name);
    const plan: TensorPlan = { name, dtype: isFloatDtype(info.dtype) ? 'F16' : info.dtype, shape: info.shape };
    const m = LAYER_NAME.exec(name);
    const l = m ? Number(m[1]) : -1;
    if (l >= 0 && l < L) {
      perLayer[l].push(plan);
      layerSource[l].push(name);
    } else {
      (name.startsWith('model.embed_tokens.') ? first : last).push(plan);
      rest.push(name);
    }
  }
  const tensors = [...first.sort(byName), ...perLayer.flatMap((t) => t.sort(byName)), ...last.sort(byName)];
  return { tensors, layerSource, rest };
}

/** Elements per piece when a source tensor is streamed into the output (16 MiB of f32). */
const STREAM_ELEMS = 1 << 22;

/**
 * Writes the quantized checkpoint block by block into outDir (sharded at maxShardSize): only one block's packed
 * tensors and one piece of a source tensor are in memory at a time.
 */
export class QuantizedCheckpointWriter {
  /** Unquantized values that overflowed fp16 (written as ±inf). */
  fp16Overflows = 0;
  private readonly w: ShardedSafetensorsWriter;

  constructor(outDir: string, private readonly src: Checkpoint, private readonly layout: OutputLayout, maxShardSize: number) {
    this.w = new ShardedSafetensorsWriter(outDir, layout.tensors, { maxShardSize, metadata: { format: 'pt' } });
  }

  get files(): string[] {
    return this.w.files;
  }

  /** Block l: its packed linears (keyed by linear) and its other source tensors. */
  writeBlock(l: number, packed: Record<LinearKey, PackedLinear>): void {
    for (const k of LINEAR_KEYS) {
      for (const t of packedLinearTensors(`model.layers.${l}.${LINEAR_NAMES[k]}`, packed[k])) this.w.write(t.name, t.data);
    }
    for (const name of this.layout.layerSource[l]) this.copySource(name);
  }

  /** The tensors outside the blocks, then flush, close and (sharded) write the index. */
  finish(): void {
    for (const name of this.layout.rest) this.copySource(name);
    this.w.finish();
  }

  abort(): void {
    this.w.abort();
  }

  /** A source tensor piece by piece: floats as fp16 (NaN/Inf refused, overflows counted), others byte for byte. */
  private copySource(name: string): void {
    const info = this.src.info(name);
    const size = dtypeByteSize(info.dtype);
    const n = info.byteLength / size;
    for (let e0 = 0; e0 < n; e0 += STREAM_ELEMS) {
      const m = Math.min(STREAM_ELEMS, n - e0);
      const raw = this.src.readBytesInto(name, new Uint8Array(m * size), e0 * size);
      if (!isFloatDtype(info.dtype)) {
        this.w.writeAt(name, e0 * size, raw);
        continue;
      }
      const v = toF32(raw, info.dtype);
      assertFiniteF32(v, name, info.file);
      for (let i = 0; i < v.length; i++) if (Math.abs(v[i]) > 65504) this.fp16Overflows++;
      this.w.writeAt(name, e0 * 2, f32ToF16(v));
    }
  }
}

function toF32(raw: Uint8Array, dtype: SafetensorsDType): Float32Array {
  switch (dtype) {
    case 'F32': return new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
    case 'F16': return f16ToF32(new Uint16Array(raw.buffer, raw.byteOffset, raw.byteLength / 2));
    case 'BF16': return bf16ToF32(new Uint16Array(raw.buffer, raw.byteOffset, raw.byteLength / 2));
    case 'F64': return Float32Array.from(new Float64Array(raw.buffer, raw.byteOffset, raw.byteLength / 8));
    default: throw new Error(`not a float dtype: ${dtype}`);
  }
}

/** config.json of the source plus quantization_config (spec §7.5). */
export function writeQuantizedConfig(outDir: string, rawConfig: Record<string, unknown>, q: { bits: number; groupSize: number; krot: number }): void {
  const cfg = { ...rawConfig, quantization_config: quantizationConfig(q) };
  fs.writeFileSync(path.join(outDir, 'config.json'), JSON.stringify(cfg, null, 2) + '\n');
}

function within(a: string, b: string): boolean {
  const rel = path.relative(b, a);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/**
 * Where a side file may be copied from: a regular file, or a symlink whose target lies inside the model folder or in
 * the `blobs/` folder of the same Hugging Face cache repository (models--org--name/{snapshots/<rev>,blobs}). null
 * when it must not be copied.
 */
export function sideFileSource(modelDir: string, name: string): string | null {
  const p = path.join(modelDir, name);
  let st: fs.Stats;
  try {
    st = fs.lstatSync(p);
  } catch {
    return null;
  }
  if (st.isFile()) return p;
  if (!st.isSymbolicLink()) return null;
  let real: string;
  let realDir: string;
  try {
    real = fs.realpathSync(p);
    realDir = fs.realpathSync(modelDir);
    if (!fs.statSync(real).isFile()) return null;
  } catch {
    return null;
  }
  if (within(real, realDir)) return real;
  const repo = path.dirname(path.dirname(realDir)); // models--org--name, when the model is a snapshot folder
  const inCache = path.basename(path.dirname(realDir)) === 'snapshots' && path.dirname(real) === path.join(repo, 'blobs');
  return inCache ? real : null;
}

/** Copy the tokenizer/generation side files; returns the copied names and those skipped as links leading elsewhere. */
export function copyModelFiles(srcDir: string, outDir: string): { copied: string[]; skipped: string[] } {
  const copied: string[] = [];
  const skipped: string[] = [];
  for (const f of COPIED_FILES) {
    if (!fs.existsSync(path.join(srcDir, f)) && !isLink(path.join(srcDir, f))) continue;
    const from = sideFileSource(srcDir, f);
    if (from === null) {
      skipped.push(f);
      continue;
    }
    fs.copyFileSync(from, path.join(outDir, f));
    copied.push(f);
  }
  return { copied, skipped };
}

function isLink(p: string): boolean {
  try {
    return fs.lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}
