// Writing the quantized checkpoint (spec §7): quantized linears as qweight/qzeros/scales + theta/pairs/channel_scales,
// every other tensor in fp16, config.json with quantization_config, tokenizer and generation files copied.
import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Checkpoint } from '../io/checkpoint.js';
import { SafetensorsWriter } from '../io/safetensors-writer.js';
import type { SafetensorsDType } from '../io/safetensors.js';
import { f32ToF16 } from '../numerics/half.js';
import type { PackedLinear } from './finalize.js';

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

function packedTensors(prefix: string, p: PackedLinear): PlannedTensor[] {
  const I = p.inFeatures;
  const O = p.outFeatures;
  const G = I / p.groupSize;
  const out: PlannedTensor[] = [
    { name: `${prefix}.qweight`, dtype: 'I32', shape: [I, O / 8], data: () => p.qweight },
    { name: `${prefix}.qzeros`, dtype: 'I32', shape: [G, O / 8], data: () => p.qzeros },
    { name: `${prefix}.scales`, dtype: 'F16', shape: [G, O], data: () => p.scales },
    { name: `${prefix}.theta`, dtype: 'F16', shape: [p.krot, I / 2], data: () => p.theta },
    { name: `${prefix}.pairs`, dtype: 'I16', shape: [p.krot, I], data: () => p.pairs },
    { name: `${prefix}.channel_scales`, dtype: 'F16', shape: [1, I], data: () => p.channelScales },
  ];
  if (p.bias) out.push({ name: `${prefix}.bias`, dtype: 'F16', shape: [O], data: () => p.bias! });
  return out;
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
    plan.push(...packedTensors(prefix, p));
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
  const cfg = { ...rawConfig, quantization_config: { quant_method: 'paroquant', bits: q.bits, group_size: q.groupSize, krot: q.krot } };
  writeFileSync(path.join(outDir, 'config.json'), JSON.stringify(cfg, null, 2) + '\n');
}

export function copyModelFiles(srcDir: string, outDir: string): string[] {
  const copied: string[] = [];
  for (const f of COPIED_FILES) {
    const from = path.join(srcDir, f);
    if (existsSync(from)) {
      copyFileSync(from, path.join(outDir, f));
      copied.push(f);
    }
  }
  return copied;
}

export function readJson(file: string): Record<string, unknown> {
  return JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
}
