// Finalizing a trained linear into the checkpoint format (spec §7.1): fp16-rounded state, integer codes, AWQ packing —
// and the effective weight Ŵ that the exported tensors stand for, computed from those tensors exactly as a loader
// does, so the in-memory model after quantization and the written checkpoint are the same model.
import type { Backend, QuantGrid, Tensor } from '../engine/backend.js';
import { f16ToF32 as f16Values, f32ToF16, roundToF16InPlace } from '../numerics/half.js';
import { packAwq, zeroPoint, type PackedLinear } from '../io/int4-format.js';
import { AWQ_ORDER } from '../io/awq.js';
import type { ParoLinear } from './transform.js';
import { foldRotation } from '../model/layer-ops.js';
import { dequantizeAwqOnBackend } from '../model/weights.js';

export type { PackedLinear };

/**
 * Round the trained state to fp16 (as the reference's layer.half()), quantize F(W) with the stage-2 grid (or the
 * min/max grid when there was no stage 2), and pack. The weight-sized work (f16 rounding, fold, codes, nibble packing)
 * stays on the backend; only the packed words and the per-group grid come back to the host.
 */
export function packLinear(be: Backend, lin: ParoLinear, grid: QuantGrid): PackedLinear {
  const O = lin.outFeatures;
  const I = lin.inFeatures;
  const gs = grid.groupSize;
  const G = I / gs;
  const qmax = 2 ** grid.bits - 1;
  // W to fp16 (round to nearest even, as the host rounding did) and back to f32 for the f32 fold.
  const W16 = be.cast(lin.W, 'f16');
  const tW = be.reshape(be.cast(W16, 'f32'), [O, I]);
  be.free(W16);
  const theta = be.toHost(lin.theta);
  roundToF16InPlace(theta);
  const alpha = be.toHost(lin.alpha);
  const cs = new Float32Array(I);
  for (let i = 0; i < I; i++) cs[i] = 1 / alpha[i];
  const csBits = f32ToF16(cs);
  const cs16 = f16Values(csBits);
  // α as the runtime sees it: the inverse of the stored channel scales.
  const alphaEff = new Float32Array(I);
  for (let i = 0; i < I; i++) alphaEff[i] = 1 / cs16[i];
  const tA = be.fromHost(alphaEff, [I]);
  const tTheta = be.fromHost(theta, lin.theta.shape);
  const Ws = be.mulCols(tW, tA);
  const R = be.givens(Ws, lin.pairs, tTheta, gs, 'forward');
  be.free(tW, tA, tTheta, Ws);
  let scale: Float32Array;
  let zpf: Float32Array;
  if (lin.scale && lin.zpf) {
    scale = be.toHost(lin.scale);
    zpf = be.toHost(lin.zpf);
  } else {
    const g = be.fakeQuantMinMax(R, grid);
    scale = be.toHost(g.scale);
    zpf = be.toHost(g.zpf);
    be.free(g.rq, g.scale, g.zpf);
  }
  const scaleBits = f32ToF16(scale);
  const scale16 = f16Values(scaleBits);
  const zpf16 = Float32Array.from(zpf);
  roundToF16InPlace(zpf16);
  const tS = be.fromHost(scale16, [O * G]);
  const tZ = be.fromHost(zpf16, [O * G]);
  const words = be.quantizePacked(R, tS, tZ, grid, AWQ_ORDER);
  const qweight = be.toHostInt(words);
  be.free(R, tS, tZ, words);
  // Per group [O·G] (row-major o, g) → [G, O]: zero points (zeroPoint, as the codes used them) and scales.
  const zT = new Uint8Array(G * O);
  const sT = new Uint16Array(G * O);
  for (let o = 0; o < O; o++) for (let g = 0; g < G; g++) {
    zT[g * O + o] = zeroPoint(zpf16[o * G + g], qmax);
    sT[g * O + o] = scaleBits[o * G + g];
  }
  const pairs = be.toHostInt(lin.pairs);
  return {
    outFeatures: O,
    inFeatures: I,
    krot: lin.krot,
    groupSize: gs,
    qweight,
    qzeros: packAwq(zT, G, O),
    scales: sT,
    theta: f32ToF16(theta),
    pairs: Int16Array.from(pairs),
    channelScales: csBits,
    bias: lin.bias ? f32ToF16(be.toHost(lin.bias)) : undefined,
  };
}

/**
 * Dense effective weight Ŵ = (W_rot·Gᵀ) ⊙ channel_scales [O, I] of packed tensors (what the runtime computes). The
 * packed words go to the backend, which dequantizes them there (dequantizeCodes' formula); only per-group zero points
 * and scales are rearranged here.
 */
export function effectiveWeight(be: Backend, p: PackedLinear): Tensor {
  const O = p.outFeatures;
  const I = p.inFeatures;
  const tRot = dequantizeAwqOnBackend(be, p.qweight, p.qzeros, f16Values(p.scales), I, O, p.groupSize);
  const pairs = be.fromHost(Int32Array.from(p.pairs), [p.krot, p.inFeatures], 'i32');
  const theta = be.fromHost(f16Values(p.theta), [p.krot, p.inFeatures / 2]);
  const cs = be.fromHost(f16Values(p.channelScales), [p.inFeatures]);
  const w = foldRotation(be, tRot, pairs, theta, cs, p.groupSize);
  be.free(tRot, pairs, theta, cs);
  return w;
}

export function biasTensor(be: Backend, p: PackedLinear): Tensor | undefined {
  return p.bias ? be.fromHost(f16Values(p.bias), [p.outFeatures]) : undefined;
}
