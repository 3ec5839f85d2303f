// Worker kernel file: rmsnormForward goes to the cpu worker threads as source text (toString(),
// thread-pool.ts), so it stays closure- and import-free: nothing from outside its own body but
// parameters and JS built-ins.
// RMSNorm over the last dimension: y = w ⊙ x / sqrt(mean(x²) + eps), rows independent.

/** x, y: [rows, C]; w: [C]; returns rstd [rows] (1/sqrt(mean(x²)+eps)) for the backward. */
export function rmsnormForward(
  x: Float32Array, w: Float32Array, rows: number, C: number, eps: number, out: { y?: Float32Array; rstd?: Float32Array } = {},
): { y: Float32Array; rstd: Float32Array } {
  const y = out.y ?? new Float32Array(rows * C);
  const rstd = out.rstd ?? new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    const o = r * C;
    let ss = 0;
    for (let c = 0; c < C; c++) ss += x[o + c] * x[o + c];
    const rs = 1 / Math.sqrt(ss / C + eps);
    rstd[r] = rs;
    for (let c = 0; c < C; c++) y[o + c] = w[c] * (x[o + c] * rs);
  }
  return { y, rstd };
}

/**
 * With x̂ = x·rstd: dw = Σ_rows dy ⊙ x̂; dx = rstd·(w⊙dy − x̂·mean(w⊙dy ⊙ x̂)).
 */
export function rmsnormBackward(
  dy: Float32Array, x: Float32Array, w: Float32Array, rstd: Float32Array, rows: number, C: number, dxOut?: Float32Array,
): { dx: Float32Array; dw: Float32Array } {
  const dx = dxOut ?? new Float32Array(rows * C);
  const dw64 = new Float64Array(C);
  for (let r = 0; r < rows; r++) {
    const o = r * C;
    const rs = rstd[r];
    let dot = 0;
    for (let c = 0; c < C; c++) {
      const xh = x[o + c] * rs;
      const g = dy[o + c] * w[c];
      dot += g * xh;
      dw64[c] += dy[o + c] * xh;
    }
    const m = dot / C;
    for (let c = 0; c < C; c++) dx[o + c] = rs * (dy[o + c] * w[c] - x[o + c] * rs * m);
  }
  return { dx, dw: Float32Array.from(dw64) };
}
