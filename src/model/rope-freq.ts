// Rotary inverse frequencies from a ModelConfig, including Llama-3.1 ("llama3") and linear scaling. Computed with
// float32 rounding at each step, as transformers does in float32.
import type { ModelConfig, RopeScaling } from '../io/config.js';
import { roundToBf16InPlace, roundToF16InPlace } from '../numerics/half.js';

const f = Math.fround;

/** Default inverse frequencies: 1 / theta^(2m/d), m < d/2. */
export function defaultInvFreq(theta: number, headDim: number): Float32Array {
  const half = headDim / 2;
  const inv = new Float32Array(half);
  for (let m = 0; m < half; m++) inv[m] = f(1 / f(Math.pow(theta, f((2 * m) / headDim))));
  return inv;
}

/** Apply a rope_scaling rule to default inverse frequencies. */
export function scaleInvFreq(inv: Float32Array, scaling: RopeScaling | null): Float32Array {
  if (!scaling) return inv;
  const out = new Float32Array(inv.length);
  if (scaling.type === 'linear') {
    for (let m = 0; m < inv.length; m++) out[m] = f(inv[m] / scaling.factor);
    return out;
  }
  // llama3: long wavelengths divided by factor, short ones kept, the band between interpolated smoothly.
  const { factor, lowFreqFactor, highFreqFactor, originalMaxPositionEmbeddings: oldCtx } = scaling;
  const lowFreqWavelen = oldCtx / lowFreqFactor;
  const highFreqWavelen = oldCtx / highFreqFactor;
  for (let m = 0; m < inv.length; m++) {
    const wavelen = (2 * Math.PI) / inv[m];
    let v = wavelen > lowFreqWavelen ? inv[m] / factor : inv[m];
    const medium = !(wavelen < highFreqWavelen) && !(wavelen > lowFreqWavelen);
    if (medium) {
      const smooth = (oldCtx / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
      v = (1 - smooth) * (v / factor) + smooth * v;
    }
    out[m] = f(v);
  }
  return out;
}

/**
 * How the inv_freq buffer is held. 'f32': as transformers computes it (a model loaded or created in f32).
 * 'storage': rounded to the checkpoint's dtype, as in a model instantiated in bf16/f16 and upcast afterwards
 * (model.float() keeps the rounded buffer) — arch/reference.json was produced that way; at theta 1e6 the
 * difference moves layer outputs by ~1e-3 relative.
 */
export type RopePrecision = 'f32' | 'storage';

export function ropeInvFreq(
  cfg: Pick<ModelConfig, 'ropeTheta' | 'headDim' | 'ropeScaling' | 'dtype'>, precision: RopePrecision = 'f32',
): Float32Array {
  const inv = scaleInvFreq(defaultInvFreq(cfg.ropeTheta, cfg.headDim), cfg.ropeScaling);
  if (precision === 'storage') {
    if (cfg.dtype === 'bfloat16') roundToBf16InPlace(inv);
    else if (cfg.dtype === 'float16') roundToF16InPlace(inv);
  }
  return inv;
}
