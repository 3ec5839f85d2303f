// Writing the quantized checkpoint (spec §7): quantized linears in the INT4 format (io/int4-format), every other
// tensor in fp16, config.json with quantization_config, tokenizer and generation files copied from the source.
import * as fs from 'node:fs';
import path from 'node:path';
import type { Checkpoint } from '../io/checkpoint.js';
import { packedLinearTensors, quantizationConfig, type PackedLinear } from '../io/int4-format.js';
import { SafetensorsWriter } from '../io/safetensors-writer.js';
import type { SafetensorsDType } from '../io/safetensors.js';
import { f32ToF16 } from '../numerics/half.js';

/** Files copied from the source model directory when present. */
export const COPIED_FILES = [
  'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json', 'chat_template.jinja',
  'chat_template.json', 'vocab.json', 'merges.txt', 'tokenizer.model', 'added_tokens.json', 'preprocessor_config.json',
  'processor_config.json',
];

interface PlannedTensor {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  data: () => ArrayBufferView;
}

export interface ExportResult {
  tensors: number;
  bytes: number;
  /** Unquantized values that overflowed fp16 (written as ±inf). */
  fp16Overflows: number;
}

/**
 * Write model.safetensors into outDir: the packed linears (keyed by their module prefix, e.g.
 * "model.layers.0.self_attn.q_proj") and every other source tensor converted to fp16. Tensors are streamed one by one.
 */
export function writeQuantizedCheckpoint(outDir: string, src: Checkpoint, packed: Map<string, PackedLinear>): ExportResult {
  const plan: PlannedTensor[] = [];
  const replaced = new Set<string>();
  for (const [prefix, p] of packed) {
    replaced.add(`${prefix}.weight`);
    replaced.add(`${prefix}.bias`);
    for (const t of packedLinearTensors(prefix, p)) plan.push({ name: t.name, dtype: t.dtype, shape: t.shape, data: () => t.data });
  }
  let overflows = 0;
  for (const name of src.names()) {
    if (replaced.has(name)) continue;
    const info = src.info(name);
    const isFloat = ['F64', 'F32', 'F16', 'BF16'].includes(info.dtype);
    plan.push({
      name,
      dtype: isFloat ? 'F16' : info.dtype,
      shape: info.shape,
      data: () => {
        if (!isFloat) return src.readBytes(name);
        const v = src.readF32(name);
        for (let i = 0; i < v.length; i++) if (Math.abs(v[i]) > 65504 && Number.isFinite(v[i])) overflows++;
        return f32ToF16(v);
      },
    });
  }
  plan.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const file = path.join(outDir, 'model.safetensors');
  const w = new SafetensorsWriter(file, plan.map(({ name, dtype, shape }) => ({ name, dtype, shape })), { format: 'pt' });
  let bytes = 0;
  try {
    for (const t of plan) {
      const d = t.data();
      bytes += d.byteLength;
      w.write(t.name, d);
    }
    w.finish();
  } catch (e) {
    w.abort();
    throw e;
  }
  return { tensors: plan.length, bytes, fp16Overflows: overflows };
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
