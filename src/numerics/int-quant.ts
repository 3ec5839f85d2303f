// The reference integer quantizer of a grouped weight (paroquant-spec §4, §7.1), shared by the export (finalize), the
// RTN baseline of the cpu backend and the INT4 format module: codes q = clamp(round(r/s) + z, 0, qmax) with the
// integer zero point z = clamp(−round(zpf), 0, qmax), and the inverse ŵ = (q − z)·s.
// r is [rows, cols] row-major; a group is groupSize consecutive columns of one row, flat group index o·G + g.
import { roundHalfEven } from './rounding.js';

/** Integer zero point of a float zero point: clamp(−round(zpf), 0, qmax). */
export function zeroPoint(zpf: number, qmax: number): number {
  const z = -roundHalfEven(zpf);
  return z < 0 ? 0 : z > qmax ? qmax : z;
}

function groupsOf(length: number, rows: number, cols: number, bits: number, groupSize: number): number {
  if (!(Number.isInteger(bits) && bits >= 1 && bits <= 8)) throw new RangeError(`bits must be an integer in [1, 8], got ${bits}`);
  if (!(Number.isInteger(groupSize) && groupSize >= 1) || cols % groupSize !== 0) {
    throw new RangeError(`cols ${cols} is not a multiple of groupSize ${groupSize}`);
  }
  if (length !== rows * cols) throw new RangeError(`tensor has ${length} elements, expected ${rows}·${cols}`);
  return (rows * cols) / groupSize;
}

/** Integer codes of r with per-group scale s and float zero point zpf (fp32 arithmetic as PyTorch's). */
export function quantizeCodes(
  r: Float32Array, scale: Float32Array, zpf: Float32Array, rows: number, cols: number, bits: number, groupSize: number,
): { q: Uint8Array; zero: Uint8Array } {
  const nGroups = groupsOf(r.length, rows, cols, bits, groupSize);
  if (scale.length !== nGroups || zpf.length !== nGroups) throw new RangeError('quantizeCodes: scale or zpf has the wrong length');
  const qmax = 2 ** bits - 1;
  const q = new Uint8Array(r.length);
  const zero = new Uint8Array(nGroups);
  for (let grp = 0; grp < nGroups; grp++) {
    const s = scale[grp];
    const z = zeroPoint(zpf[grp], qmax);
    zero[grp] = z;
    for (let e = grp * groupSize; e < (grp + 1) * groupSize; e++) {
      const v = roundHalfEven(Math.fround(r[e] / s)) + z;
      q[e] = v < 0 ? 0 : v > qmax ? qmax : v;
    }
  }
  return { q, zero };
}

/** The inverse: ŵ = (q − z)·s per group, [rows, cols]. */
export function dequantizeCodes(q: Uint8Array, zero: Uint8Array, scale: Float32Array, rows: number, cols: number, groupSize: number): Float32Array {
  const nGroups = (rows * cols) / groupSize;
  if (q.length !== rows * cols || zero.length !== nGroups || scale.length !== nGroups) throw new RangeError('dequantizeCodes: inconsistent lengths');
  const w = new Float32Array(q.length);
  for (let grp = 0; grp < nGroups; grp++) {
    const s = scale[grp];
    const z = zero[grp];
    for (let e = grp * groupSize; e < (grp + 1) * groupSize; e++) w[e] = (q[e] - z) * s;
  }
  return w;
}
