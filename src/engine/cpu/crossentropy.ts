// Worker kernel file: crossEntropyRows goes to the cpu worker threads as source text (toString(),
// thread-pool.ts), so it stays closure- and import-free: nothing from outside its own body but
// parameters and JS built-ins.
// Cross-entropy rows: loss_r = logsumexp(z_r) − z_r[label_r]; gradient w_r·(softmax(z_r) − onehot(label_r)).

export function crossEntropyRows(
  logits: Float32Array, rows: number, V: number, labels: Int32Array, rowWeights?: Float32Array, dlogitsOut?: Float32Array,
): { loss: Float32Array; lse: Float32Array; dlogits?: Float32Array } {
  const loss = new Float32Array(rows);
  const lse = new Float32Array(rows);
  const dlogits = rowWeights ? (dlogitsOut ?? new Float32Array(rows * V)) : undefined;
  for (let r = 0; r < rows; r++) {
    const o = r * V;
    let mx = -Infinity;
    for (let v = 0; v < V; v++) if (logits[o + v] > mx) mx = logits[o + v];
    let s = 0;
    for (let v = 0; v < V; v++) s += Math.exp(logits[o + v] - mx);
    const l = mx + Math.log(s);
    lse[r] = l;
    const lab = labels[r];
    loss[r] = lab >= 0 ? l - logits[o + lab] : 0;
    if (dlogits && rowWeights) {
      const w = lab >= 0 ? rowWeights[r] : 0;
      if (w !== 0) {
        for (let v = 0; v < V; v++) dlogits[o + v] = w * Math.exp(logits[o + v] - l);
        dlogits[o + lab] -= w;
      } else {
        dlogits.fill(0, o, o + V); // the output buffer may be reused
      }
    }
  }
  return { loss, lse, dlogits };
}

export function argmaxRows(x: Float32Array, rows: number, V: number): Int32Array {
  const out = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    const o = r * V;
    let best = 0;
    let bv = x[o];
    for (let v = 1; v < V; v++) if (x[o + v] > bv) { bv = x[o + v]; best = v; }
    out[r] = best;
  }
  return out;
}
