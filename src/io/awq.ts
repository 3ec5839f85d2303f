// AutoAWQ GEMM nibble packing and dequantization (paroquant-spec §7.1–7.2). Values are packed along the last
// dimension in blocks of 8: nibble k of a word holds element ORDER[k]; words are two's-complement int32 (bit 31 is
// set whenever element 7 is ≥ 8).

/** Nibble k ← element AWQ_ORDER[k]. */
export const AWQ_ORDER: readonly number[] = [0, 2, 4, 6, 1, 3, 5, 7];
/** Element m sits in nibble AWQ_INVERSE_ORDER[m]. */
export const AWQ_INVERSE_ORDER: readonly number[] = [0, 4, 1, 5, 2, 6, 3, 7];

function checkPackShape(length: number, rows: number, cols: number): void {
  if (cols % 8 !== 0) throw new RangeError(`packed dimension ${cols} is not a multiple of 8`);
  if (length !== rows * cols) throw new RangeError(`tensor has ${length} elements, expected ${rows}·${cols}`);
}

/** values [rows, cols] of 4-bit codes → words [rows, cols/8]. */
export function packAwq(values: Uint8Array, rows: number, cols: number): Int32Array {
  checkPackShape(values.length, rows, cols);
  const words = new Int32Array((rows * cols) / 8);
  for (let w = 0; w < words.length; w++) {
    const base = w * 8;
    let word = 0;
    for (let k = 0; k < 8; k++) {
      const e = values[base + AWQ_ORDER[k]];
      if (e > 15) throw new RangeError(`value ${e} at index ${base + AWQ_ORDER[k]} does not fit in 4 bits`);
      word |= e << (4 * k); // `|` wraps to int32, the stored two's-complement form
    }
    words[w] = word;
  }
  return words;
}

/** words [rows, cols/8] → 4-bit codes [rows, cols]. */
export function unpackAwq(words: Int32Array, rows: number, cols: number): Uint8Array {
  checkPackShape(words.length * 8, rows, cols);
  const values = new Uint8Array(rows * cols);
  for (let w = 0; w < words.length; w++) {
    const word = words[w];
    const base = w * 8;
    for (let k = 0; k < 8; k++) values[base + AWQ_ORDER[k]] = (word >>> (4 * k)) & 0xf;
  }
  return values;
}

/** Codes in the weight layout q [O, I] → qweight = pack(qᵀ), int32 [I, O/8] (spec §7.1). */
export function packAwqTransposed(q: Uint8Array, outFeatures: number, inFeatures: number): Int32Array {
  if (q.length !== outFeatures * inFeatures) throw new RangeError(`q has ${q.length} elements, expected ${outFeatures}·${inFeatures}`);
  const qt = new Uint8Array(q.length);
  for (let o = 0; o < outFeatures; o++) {
    for (let i = 0; i < inFeatures; i++) qt[i * outFeatures + o] = q[o * inFeatures + i];
  }
  return packAwq(qt, inFeatures, outFeatures);
}

/**
 * Dequantizes AWQ tensors to the rotated weight W_rot [O, I] row-major (spec §7.2):
 * W_rot[o, i] = (q[i, o] − z[g(i), o])·scales[g(i), o], with qweight [I, O/8], qzeros [I/G, O/8], scales [I/G, O].
 */
export function dequantizeAwq(
  qweight: Int32Array, qzeros: Int32Array, scales: Float32Array, inFeatures: number, outFeatures: number, groupSize: number,
): Float32Array {
  if (inFeatures % groupSize !== 0) throw new RangeError(`inFeatures ${inFeatures} is not a multiple of groupSize ${groupSize}`);
  const groups = inFeatures / groupSize;
  checkPackShape(qweight.length * 8, inFeatures, outFeatures);
  checkPackShape(qzeros.length * 8, groups, outFeatures);
  if (scales.length !== groups * outFeatures) throw new RangeError(`scales has ${scales.length} elements, expected [${groups}, ${outFeatures}]`);
  const zeros = unpackAwq(qzeros, groups, outFeatures);
  const w = new Float32Array(outFeatures * inFeatures);
  const wordsPerRow = outFeatures / 8;
  for (let i = 0; i < inFeatures; i++) {
    const g = (i / groupSize) | 0;
    const zg = g * outFeatures;
    for (let b = 0; b < wordsPerRow; b++) {
      const word = qweight[i * wordsPerRow + b];
      for (let k = 0; k < 8; k++) {
        const o = b * 8 + AWQ_ORDER[k];
        w[o * inFeatures + i] = (((word >>> (4 * k)) & 0xf) - zeros[zg + o]) * scales[zg + o];
      }
    }
  }
  return w;
}
