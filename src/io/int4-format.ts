// The ParoQuant INT4 checkpoint format of one quantized linear (paroquant-spec §7.1–7.3, §7.5): tensor names, dtypes
// and shapes, reading and writing them, the quantization_config entry, and the reference quantize/dequantize pair.
// Used by the export and the resume block files (jobs/quantize) and by model loading (model/weights).
import type { SafetensorsDType } from './safetensors.js';

export { quantizeCodes, dequantizeCodes, zeroPoint } from '../numerics/int-quant.js';
export { dequantizeAwq, packAwq, packAwqTransposed, unpackAwq } from './awq.js';

/** The checkpoint tensors of one quantized linear. 16-bit arrays hold f16 bit patterns. */
export interface PackedLinear {
  outFeatures: number;
  inFeatures: number;
  krot: number;
  groupSize: number;
  qweight: Int32Array; // [I, O/8] packed codes, AutoAWQ order
  qzeros: Int32Array; // [I/gs, O/8] packed integer zero points
  scales: Uint16Array; // f16 [I/gs, O]
  theta: Uint16Array; // f16 [K, I/2]
  pairs: Int16Array; // [K, I] group-local channel indices
  channelScales: Uint16Array; // f16 [1, I] = 1/α
  bias?: Uint16Array; // f16 [O]
}

/** Codes are AutoAWQ nibbles: the format holds at most 4 bits per weight. */
export const MAX_CODE_BITS = 4;
/** AWQ packs 8 output channels per int32 word. */
export const PACK_FACTOR = 8;

export type PackedTensorName = 'qweight' | 'qzeros' | 'scales' | 'theta' | 'pairs' | 'channel_scales' | 'bias';

export interface PackedTensorSpec {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
}

export interface PackedDims {
  inFeatures: number;
  outFeatures: number;
  groupSize: number;
  krot: number;
  bias: boolean;
}

/** Names, dtypes and shapes of the tensors of the linear `prefix` (e.g. model.layers.0.self_attn.q_proj). */
export function packedLinearLayout(prefix: string, d: PackedDims): PackedTensorSpec[] {
  const I = d.inFeatures;
  const O = d.outFeatures;
  const G = I / d.groupSize;
  const out: PackedTensorSpec[] = [
    { name: `${prefix}.qweight`, dtype: 'I32', shape: [I, O / PACK_FACTOR] },
    { name: `${prefix}.qzeros`, dtype: 'I32', shape: [G, O / PACK_FACTOR] },
    { name: `${prefix}.scales`, dtype: 'F16', shape: [G, O] },
    { name: `${prefix}.theta`, dtype: 'F16', shape: [d.krot, I / 2] },
    { name: `${prefix}.pairs`, dtype: 'I16', shape: [d.krot, I] },
    { name: `${prefix}.channel_scales`, dtype: 'F16', shape: [1, I] },
  ];
  if (d.bias) out.push({ name: `${prefix}.bias`, dtype: 'F16', shape: [O] });
  return out;
}

/** The tensors of a packed linear with their data, in layout order. */
export function packedLinearTensors(prefix: string, p: PackedLinear): (PackedTensorSpec & { data: ArrayBufferView })[] {
  const data: Record<PackedTensorName, ArrayBufferView | undefined> = {
    qweight: p.qweight, qzeros: p.qzeros, scales: p.scales, theta: p.theta, pairs: p.pairs, channel_scales: p.channelScales, bias: p.bias,
  };
  return packedLinearLayout(prefix, { ...p, bias: p.bias !== undefined }).map((s) => ({ ...s, data: data[s.name.slice(prefix.length + 1) as PackedTensorName]! }));
}

/** What reading a packed linear needs of a safetensors file or a checkpoint. */
export interface PackedReader {
  has(name: string): boolean;
  info(name: string): { shape: number[] };
  readI32(name: string): Int32Array;
  readRaw16(name: string): Uint16Array;
}

/** Read the packed linear `prefix` (shapes from the file; the group size is the format's, from quantization_config). */
export function readPackedLinear(r: PackedReader, prefix: string, groupSize: number): PackedLinear {
  const [I, O8] = r.info(`${prefix}.qweight`).shape;
  const K = r.info(`${prefix}.theta`).shape[0];
  return {
    inFeatures: I, outFeatures: O8 * PACK_FACTOR, krot: K, groupSize,
    qweight: r.readI32(`${prefix}.qweight`), qzeros: r.readI32(`${prefix}.qzeros`), scales: r.readRaw16(`${prefix}.scales`),
    theta: r.readRaw16(`${prefix}.theta`), pairs: Int16Array.from(r.readI32(`${prefix}.pairs`)),
    channelScales: r.readRaw16(`${prefix}.channel_scales`), bias: r.has(`${prefix}.bias`) ? r.readRaw16(`${prefix}.bias`) : undefined,
  };
}

/** The quantization_config entry of config.json (spec §7.5). */
export function quantizationConfig(q: { bits: number; groupSize: number; krot: number }): Record<string, unknown> {
  return { quant_method: 'paroquant', bits: q.bits, group_size: q.groupSize, krot: q.krot };
}
