// The Gram backward's ops of the ParoQuant transform on the cpu backend (backend.ts paroScaleGrad, paroMinMaxGram,
// groupGram; design in notes/gram-spec.md). Matrices are [rows, cols] row-major, groups are groupSize consecutive
// columns of one row (flat group o·G + g). The "virtual rows" outputs are f32 [gs, cols]: entry [k][g·gs + i] belongs
// to group g. Sums over rows run in f64 in row order and are rounded once to f32, so reruns are bit-identical.

const F32_1EM5 = Math.fround(1e-5); // the quantizer's scale clamp, as fakequant.ts clampedScale bounds it
const F32_1E5 = 100000;

/**
 * out[k·cols + g·gs + i] = (Σ_o a[o, g·gs + i]·b[o, g·gs + k]) rounded to f32, then ·α[g·gs + k] and /α[g·gs + i] in f32
 * when alpha is given. Products of f32 values are exact in f64.
 */
export function groupGram(
  a: Float32Array, b: Float32Array, rows: number, cols: number, groupSize: number, alpha: Float32Array | undefined,
  out: Float32Array,
): Float32Array {
  const gs = groupSize;
  const acc = new Float64Array(gs * gs);
  for (let g0 = 0; g0 < cols; g0 += gs) {
    acc.fill(0);
    for (let o = 0; o < rows; o++) {
      const base = o * cols + g0;
      for (let k = 0; k < gs; k++) {
        const bk = b[base + k];
        const row = k * gs;
        for (let i = 0; i < gs; i++) acc[row + i] += a[base + i] * bk;
      }
    }
    for (let k = 0; k < gs; k++) {
      const ak = alpha ? alpha[g0 + k] : 1;
      for (let i = 0; i < gs; i++) {
        const sum = Math.fround(acc[k * gs + i]);
        out[k * cols + g0 + i] = alpha ? Math.fround(Math.fround(sum * ak) / alpha[g0 + i]) : sum;
      }
    }
  }
  return out;
}

/**
 * S[grp] = (Σ_e dWhat·E over the group, f64 in order, rounded to f32) / sc in f32, sc = scale[grp] clamped to
 * [1e-5, 1e5]: the quantizer's scale gradient from the residual E = Ŵ − W.
 */
export function paroScaleGrad(
  dWhat: Float32Array, E: Float32Array, scale: Float32Array, nGroups: number, groupSize: number, out: Float32Array,
): Float32Array {
  for (let grp = 0; grp < nGroups; grp++) {
    const start = grp * groupSize;
    let sum = 0;
    for (let e = start; e < start + groupSize; e++) sum += dWhat[e] * E[e];
    const s = scale[grp];
    const sc = s < F32_1EM5 ? F32_1EM5 : s > F32_1E5 ? F32_1E5 : s;
    out[grp] = Math.fround(Math.fround(sum) / sc);
  }
  return out;
}

/** Bits of the group's mask words starting at `at` (their count returned), restricted to the groupSize elements the group has. */
function maskBits(extremes: Int32Array, at: number, groupSize: number, bits: Uint8Array): number {
  let n = 0;
  for (let e = 0; e < groupSize; e++) {
    const set = (extremes[at + (e >>> 5)] >>> (e & 31)) & 1;
    bits[e] = set;
    n += set;
  }
  return n;
}

/**
 * The stage-1 min/max path as virtual rows: per flat group, gMax = S/qmax/nMax and gMin = −S/qmax/nMin (f32, that
 * order), c_i = (max bit i ? gMax : 0) + (min bit i ? gMin : 0) in f32; out[k·cols + g·gs + i] =
 * α[g·gs + k]·(Σ_o c[o, i]·W[o, g·gs + k] in f64, rounded to f32), rounded to f32. extremes: per flat group `words`
 * max-mask words then `words` min-mask words, bit e%32 of word e/32 for element e; bits past groupSize in a partial
 * last word are ignored (neither counted nor applied).
 */
export function paroMinMaxGram(
  S: Float32Array, extremes: Int32Array, W: Float32Array, alpha: Float32Array, rows: number, cols: number, bits: number,
  groupSize: number, out: Float32Array,
): Float32Array {
  const gs = groupSize;
  const G = cols / gs;
  const qmax = 2 ** bits - 1;
  const words = Math.ceil(gs / 32);
  const acc = new Float64Array(gs * gs);
  const maxBit = new Uint8Array(gs);
  const minBit = new Uint8Array(gs);
  const c = new Float32Array(gs);
  const hot = new Int32Array(gs); // elements with c ≠ 0 from a set bit: the only columns a row adds to
  for (let g = 0; g < G; g++) {
    const g0 = g * gs;
    acc.fill(0);
    for (let o = 0; o < rows; o++) {
      const grp = o * G + g;
      const at = grp * 2 * words;
      const nMax = maskBits(extremes, at, gs, maxBit);
      const nMin = maskBits(extremes, at + words, gs, minBit);
      if (nMax === 0 && nMin === 0) continue;
      const s = S[grp];
      const gMax = nMax > 0 ? Math.fround(Math.fround(s / qmax) / nMax) : 0;
      const gMin = nMin > 0 ? Math.fround(Math.fround(-s / qmax) / nMin) : 0;
      let nHot = 0;
      for (let i = 0; i < gs; i++) {
        if (!maxBit[i] && !minBit[i]) continue;
        c[i] = maxBit[i] && minBit[i] ? Math.fround(gMax + gMin) : maxBit[i] ? gMax : gMin;
        hot[nHot++] = i;
      }
      const base = o * cols + g0;
      for (let k = 0; k < gs; k++) {
        const w = W[base + k];
        const row = k * gs;
        for (let h = 0; h < nHot; h++) acc[row + hot[h]] += c[hot[h]] * w;
      }
    }
    for (let k = 0; k < gs; k++) {
      const ak = alpha[g0 + k];
      for (let i = 0; i < gs; i++) out[k * cols + g0 + i] = Math.fround(ak * Math.fround(acc[k * gs + i]));
    }
  }
  return out;
}
