// Worker kernel file: swigluForward and swigluBackward go to the cpu worker threads as source text (toString(),
// thread-pool.ts), so they stay closure- and import-free: nothing from outside their own body but
// parameters and JS built-ins.
// SwiGLU: h = silu(g) ⊙ u with silu(g) = g·σ(g). One exp per element in each direction.

export function swigluForward(gate: Float32Array, up: Float32Array, out?: Float32Array): Float32Array {
  const n = gate.length;
  const h = out ?? new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const g = gate[i];
    h[i] = (g / (1 + Math.exp(-g))) * up[i];
  }
  return h;
}

/** dgate = dh·u·σ(g)·(1 + g·(1 − σ(g))); dup = dh·silu(g). Outputs may alias dh (each element is read first). */
export function swigluBackward(
  dh: Float32Array, gate: Float32Array, up: Float32Array, out: { dgate?: Float32Array; dup?: Float32Array } = {},
): { dgate: Float32Array; dup: Float32Array } {
  const n = gate.length;
  const dgate = out.dgate ?? new Float32Array(n);
  const dup = out.dup ?? new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const g = gate[i];
    const d = dh[i];
    const s = 1 / (1 + Math.exp(-g));
    dup[i] = d * g * s;
    dgate[i] = d * up[i] * s * (1 + g * (1 - s));
  }
  return { dgate, dup };
}
