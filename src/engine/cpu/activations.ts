// SwiGLU: h = silu(g) ⊙ u with silu(g) = g·σ(g).

export function swigluForward(gate: Float32Array, up: Float32Array): Float32Array {
  const n = gate.length;
  const h = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const g = gate[i];
    h[i] = (g / (1 + Math.exp(-g))) * up[i];
  }
  return h;
}

/** dgate = dh·u·σ(g)·(1 + g·(1 − σ(g))); dup = dh·silu(g). */
export function swigluBackward(dh: Float32Array, gate: Float32Array, up: Float32Array): { dgate: Float32Array; dup: Float32Array } {
  const n = gate.length;
  const dgate = new Float32Array(n);
  const dup = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const g = gate[i];
    const s = 1 / (1 + Math.exp(-g));
    dup[i] = dh[i] * g * s;
    dgate[i] = dh[i] * up[i] * s * (1 + g * (1 - s));
  }
  return { dgate, dup };
}
