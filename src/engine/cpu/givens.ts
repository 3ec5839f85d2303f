// ParoQuant Givens rotation layers on the cpu backend (paroquant-spec §2.1 layer, §2.2 order, §5.1 gradients).
// x is [rows, cols] row-major; the rotation acts along cols in groups of groupSize channels. Groups are independent,
// so every (row, group) segment runs all K layers while it sits in L1, with that group's pair/angle table contiguous.
//
// Precision: the float32 kernels round every layer's output to f32 (as an fp32 GPU kernel does) and use cosf/sinf-like
// f32 angles; the backward keeps its per-segment working values in f64 and accumulates dθ in f64 over rows. The
// Float64 variants run the same code on Float64Array (no rounding anywhere): references for tests. Outputs can be
// passed in: a fresh 64 MB Float32Array costs ~200 ms of page faults here, more than the kernel itself.

export type GivensDirection = 'forward' | 'inverse';
type FloatArray = Float32Array | Float64Array;

/** Optional output buffers of givensBackward (dx may alias dy or y: each segment is read before it is written). */
export interface GivensBackwardOutputs {
  dx?: Float32Array;
  dtheta?: Float32Array;
}

/** Per-call tables, group-major so one group's K layers are contiguous: local [G][K][gs], c/s [G][K][gs/2]. */
interface GivensPlan {
  groups: number;
  local: Int32Array;
  c: FloatArray;
  s: FloatArray;
}

function checkShapes(
  xLength: number, rows: number, cols: number, pairs: Int32Array, theta: FloatArray, k: number, groupSize: number,
): void {
  if (!(groupSize >= 2 && groupSize % 2 === 0)) throw new RangeError(`groupSize must be even and ≥ 2, got ${groupSize}`);
  if (cols % groupSize !== 0) throw new RangeError(`cols ${cols} is not a multiple of groupSize ${groupSize}`);
  if (xLength !== rows * cols) throw new RangeError(`x has ${xLength} elements, expected ${rows}·${cols}`);
  if (pairs.length !== k * cols) throw new RangeError(`pairs has ${pairs.length} elements, expected [${k}, ${cols}]`);
  if (theta.length !== (k * cols) / 2) throw new RangeError(`theta has ${theta.length} elements, expected [${k}, ${cols / 2}]`);
}

/** Builds the tables; cos/sin are stored in the array type of the kernel (f32 tables = f32-rounded c and s). */
function makePlan(
  pairs: Int32Array, theta: FloatArray, k: number, cols: number, groupSize: number, f64: boolean,
): GivensPlan {
  const groups = cols / groupSize;
  const p = groupSize / 2;
  const half = cols / 2;
  const local = new Int32Array(groups * k * groupSize);
  const c = f64 ? new Float64Array(groups * k * p) : new Float32Array(groups * k * p);
  const s = f64 ? new Float64Array(groups * k * p) : new Float32Array(groups * k * p);
  for (let g = 0; g < groups; g++) {
    for (let r = 0; r < k; r++) {
      const src = r * cols + g * groupSize;
      const dst = (g * k + r) * groupSize;
      for (let e = 0; e < groupSize; e++) {
        const ch = pairs[src + e];
        if (!(ch >= 0 && ch < groupSize)) {
          throw new RangeError(`pairs[${r}, ${g * groupSize + e}] = ${ch} is not a group-local index in [0, ${groupSize})`);
        }
        local[dst + e] = ch;
      }
      const tsrc = r * half + g * p;
      const tdst = (g * k + r) * p;
      for (let t = 0; t < p; t++) {
        const th = theta[tsrc + t];
        c[tdst + t] = Math.cos(th);
        s[tdst + t] = Math.sin(th);
      }
    }
  }
  return { groups, local, c, s };
}

/** Applies the K layers in place on out (spec §2.1): forward = r 0..K−1 with +θ, inverse = r K−1..0 with −θ. */
function applyInPlace(
  out: FloatArray, rows: number, cols: number, plan: GivensPlan, k: number, groupSize: number, direction: GivensDirection,
): void {
  const { groups, local, c, s } = plan;
  const p = groupSize / 2;
  const fwd = direction === 'forward';
  const sign = fwd ? 1 : -1;
  for (let row = 0; row < rows; row++) {
    for (let g = 0; g < groups; g++) {
      const base = row * cols + g * groupSize;
      for (let step = 0; step < k; step++) {
        const r = fwd ? step : k - 1 - step;
        const lo = (g * k + r) * groupSize;
        const to = (g * k + r) * p;
        for (let t = 0; t < p; t++) {
          const a = base + local[lo + 2 * t];
          const b = base + local[lo + 2 * t + 1];
          const cc = c[to + t];
          const ss = sign * s[to + t];
          const vi = out[a];
          const vj = out[b];
          out[a] = cc * vi + ss * vj;
          out[b] = cc * vj - ss * vi;
        }
      }
    }
  }
}

/**
 * Walks the layers from the output back to the input (spec §5.1): per layer, the angle gradient Σ(γ_i·u_j − γ_j·u_i)
 * with the layer's output u and output gradient γ, then u and γ are rotated back (the layer with the negated angle).
 * dθ is accumulated in f64 and refers to the stored θ (the inverse direction used −θ, hence the sign flip).
 */
function backwardInto(
  dx: FloatArray, dtheta: Float64Array, dy: FloatArray, y: FloatArray, rows: number, cols: number,
  plan: GivensPlan, k: number, groupSize: number, direction: GivensDirection,
): void {
  const { groups, local, c, s } = plan;
  const p = groupSize / 2;
  const half = cols / 2;
  const fwd = direction === 'forward';
  const sign = fwd ? 1 : -1;
  const u = new Float64Array(groupSize); // layer output, then (rotated back) its input
  const gam = new Float64Array(groupSize); // gradient w.r.t. u
  for (let row = 0; row < rows; row++) {
    for (let g = 0; g < groups; g++) {
      const base = row * cols + g * groupSize;
      for (let e = 0; e < groupSize; e++) {
        u[e] = y[base + e];
        gam[e] = dy[base + e];
      }
      // Application order was r = 0..K−1 (forward) or K−1..0 (inverse); undo it from the last applied layer.
      for (let step = k - 1; step >= 0; step--) {
        const r = fwd ? step : k - 1 - step;
        const lo = (g * k + r) * groupSize;
        const to = (g * k + r) * p;
        const dto = r * half + g * p;
        for (let t = 0; t < p; t++) {
          const i = local[lo + 2 * t];
          const j = local[lo + 2 * t + 1];
          const cc = c[to + t];
          const ss = sign * s[to + t]; // sine of the angle this layer actually used
          const ui = u[i];
          const uj = u[j];
          const gi = gam[i];
          const gj = gam[j];
          const gin = cc * gi - ss * gj; // input gradient γ′ = γ·M(φ)ᵀ
          const gjn = ss * gi + cc * gj;
          const dphi = gi * uj - gj * ui;
          dtheta[dto + t] += sign * dphi;
          u[i] = cc * ui - ss * uj; // layer input v = u·M(φ)ᵀ
          u[j] = ss * ui + cc * uj;
          gam[i] = gin;
          gam[j] = gjn;
        }
      }
      for (let e = 0; e < groupSize; e++) dx[base + e] = gam[e];
    }
  }
}

/**
 * K Givens layers on x [rows, cols] (spec §2.1–2.2). pairs: [K, cols] group-local indices; theta: [K, cols/2].
 * Writes into out when given (out may be x itself), else into a new array; returns the result [rows, cols].
 */
export function givensApply(
  x: Float32Array, rows: number, cols: number, pairs: Int32Array, theta: Float32Array, k: number, groupSize: number,
  direction: GivensDirection, out?: Float32Array,
): Float32Array {
  checkShapes(x.length, rows, cols, pairs, theta, k, groupSize);
  const res = out ?? new Float32Array(x.length);
  if (res.length !== x.length) throw new RangeError(`out has ${res.length} elements, expected ${x.length}`);
  if (res !== x) res.set(x);
  applyInPlace(res, rows, cols, makePlan(pairs, theta, k, cols, groupSize, false), k, groupSize, direction);
  return res;
}

/**
 * Backward of givensApply from its output y and output gradient dy (spec §5.1): dx [rows, cols] and the exact angle
 * gradient dθ [K, cols/2] summed over rows, w.r.t. the stored θ for both directions.
 */
export function givensBackward(
  dy: Float32Array, y: Float32Array, rows: number, cols: number, pairs: Int32Array, theta: Float32Array, k: number,
  groupSize: number, direction: GivensDirection, opts: GivensBackwardOutputs = {},
): { dx: Float32Array; dtheta: Float32Array } {
  checkShapes(y.length, rows, cols, pairs, theta, k, groupSize);
  if (dy.length !== y.length) throw new RangeError(`dy has ${dy.length} elements, expected ${y.length}`);
  const dx = opts.dx ?? new Float32Array(y.length);
  const dtheta = opts.dtheta ?? new Float32Array(theta.length);
  if (dx.length !== y.length || dtheta.length !== theta.length) throw new RangeError('givensBackward: dx or dtheta has the wrong length');
  const acc = new Float64Array(theta.length);
  const plan = makePlan(pairs, theta, k, cols, groupSize, false);
  backwardInto(dx, acc, dy, y, rows, cols, plan, k, groupSize, direction);
  dtheta.set(acc);
  return { dx, dtheta };
}

/** Float64 twin of givensApply (no rounding; test reference). */
export function givensApplyF64(
  x: Float64Array, rows: number, cols: number, pairs: Int32Array, theta: Float64Array, k: number, groupSize: number,
  direction: GivensDirection,
): Float64Array {
  checkShapes(x.length, rows, cols, pairs, theta, k, groupSize);
  const res = Float64Array.from(x);
  applyInPlace(res, rows, cols, makePlan(pairs, theta, k, cols, groupSize, true), k, groupSize, direction);
  return res;
}

/** Float64 twin of givensBackward (test reference). */
export function givensBackwardF64(
  dy: Float64Array, y: Float64Array, rows: number, cols: number, pairs: Int32Array, theta: Float64Array, k: number,
  groupSize: number, direction: GivensDirection,
): { dx: Float64Array; dtheta: Float64Array } {
  checkShapes(y.length, rows, cols, pairs, theta, k, groupSize);
  if (dy.length !== y.length) throw new RangeError(`dy has ${dy.length} elements, expected ${y.length}`);
  const dx = new Float64Array(y.length);
  const dtheta = new Float64Array(theta.length);
  const plan = makePlan(pairs, theta, k, cols, groupSize, true);
  backwardInto(dx, dtheta, dy, y, rows, cols, plan, k, groupSize, direction);
  return { dx, dtheta };
}
