// Worker kernel file: ropeApply goes to the cpu worker threads as source text (toString(),
// thread-pool.ts), so it stays closure- and import-free: nothing from outside its own body but
// parameters and JS built-ins.
// Rotary position embedding, rotate-half (NeoX) layout, on [rows, heads·headDim]:
// x′_m = x_m·cos φ − x_{m+d/2}·sin φ,  x′_{m+d/2} = x_{m+d/2}·cos φ + x_m·sin φ,  φ = pos·invFreq[m].

export function ropeApply(
  x: Float32Array, rows: number, width: number, positions: Int32Array, invFreq: Float32Array, headDim: number,
  inverse: boolean, out?: Float32Array,
): Float32Array {
  const half = headDim / 2;
  const heads = width / headDim;
  const y = out ?? new Float32Array(rows * width);
  const cos = new Float64Array(half);
  const sin = new Float64Array(half);
  let lastPos = NaN;
  for (let r = 0; r < rows; r++) {
    const p = positions[r];
    if (p !== lastPos) {
      for (let m = 0; m < half; m++) {
        // φ rounded to f32 as PyTorch computes it (inv_freq·pos in float32).
        const phi = Math.fround(p * invFreq[m]);
        cos[m] = Math.cos(phi);
        sin[m] = inverse ? -Math.sin(phi) : Math.sin(phi);
      }
      lastPos = p;
    }
    for (let h = 0; h < heads; h++) {
      const o = r * width + h * headDim;
      for (let m = 0; m < half; m++) {
        const a = x[o + m];
        const b = x[o + m + half];
        y[o + m] = a * cos[m] - b * sin[m];
        y[o + m + half] = b * cos[m] + a * sin[m];
      }
    }
  }
  return y;
}
