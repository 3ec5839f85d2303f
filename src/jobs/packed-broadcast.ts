// A packed block sent from rank 0 to every rank of a data-parallel quantize (issue 12): on --resume only rank 0 reads
// the finished blocks of the partial output (other ranks may run on hosts without it), yet every rank needs them to
// carry its X′ through the block. The packed arrays travel as one f32 tensor of their 16-bit words (each an exact
// f32 integer, so no bit pattern can turn into a NaN on the way) through Collective.broadcast.
import type { Backend } from '../engine/backend.js';
import type { Collective } from '../engine/collective.js';
import type { PackedLinear } from '../io/int4-format.js';
import { LINEAR_KEYS, type LayerWeights, type LinearKey } from '../model/weights.js';

type Part = 'qweight' | 'qzeros' | 'scales' | 'theta' | 'pairs' | 'channelScales' | 'bias';

/** The 16-bit words of each packed array of a linear, in a fixed order, from its shape. */
function words(lin: { inFeatures: number; outFeatures: number; bias: boolean }, groupSize: number, krot: number): [Part, number][] {
  const I = lin.inFeatures;
  const O = lin.outFeatures;
  const G = I / groupSize;
  const parts: [Part, number][] = [
    ['qweight', 2 * I * (O / 8)], ['qzeros', 2 * G * (O / 8)], ['scales', G * O], ['theta', krot * (I / 2)], ['pairs', krot * I], ['channelScales', I],
  ];
  if (lin.bias) parts.push(['bias', O]);
  return parts;
}

function u16(a: Int32Array | Uint16Array | Int16Array): Uint16Array {
  return new Uint16Array(a.buffer, a.byteOffset, a.byteLength / 2);
}

/**
 * Rank 0's packed block on every rank: rank 0 passes it, the others null (they pass their block's FP layer for the
 * shapes). Collective: every rank calls it for the same block.
 */
export function broadcastPackedBlock(
  be: Backend, comm: Collective, packed: Record<LinearKey, PackedLinear> | null, layer: LayerWeights, groupSize: number, krot: number,
): Record<LinearKey, PackedLinear> {
  const layout = LINEAR_KEYS.map((k) => words({ inFeatures: layer[k].inFeatures, outFeatures: layer[k].outFeatures, bias: layer[k].bias !== undefined }, groupSize, krot));
  const total = layout.flat().reduce((a, [, n]) => a + n, 0);
  const host = new Float32Array(total);
  if (comm.rank === 0) {
    if (!packed) throw new Error('broadcastPackedBlock: rank 0 has no block to send');
    let at = 0;
    LINEAR_KEYS.forEach((k, i) => {
      for (const [part, n] of layout[i]) {
        const src = packed[k][part];
        if (!src || src.byteLength !== 2 * n) throw new Error(`broadcastPackedBlock: ${k}.${part} has ${src?.byteLength ?? 0} bytes, expected ${2 * n}`);
        const w = u16(src);
        for (let j = 0; j < n; j++) host[at + j] = w[j];
        at += n;
      }
    });
  }
  const t = be.fromHost(host, [total]);
  comm.broadcast(t, 0);
  const got = be.toHost(t);
  be.free(t);
  if (comm.rank === 0) return packed!;
  const out = {} as Record<LinearKey, PackedLinear>;
  let at = 0;
  LINEAR_KEYS.forEach((k, i) => {
    const take = (n: number): Uint16Array => {
      const w = Uint16Array.from(got.subarray(at, at + n));
      at += n;
      return w;
    };
    const arrays: Partial<Record<Part, Uint16Array>> = {};
    for (const [part, n] of layout[i]) arrays[part] = take(n);
    const as32 = (w: Uint16Array) => new Int32Array(w.buffer, w.byteOffset, w.length / 2);
    out[k] = {
      outFeatures: layer[k].outFeatures, inFeatures: layer[k].inFeatures, krot, groupSize,
      qweight: as32(arrays.qweight!), qzeros: as32(arrays.qzeros!), scales: arrays.scales!, theta: arrays.theta!,
      pairs: new Int16Array(arrays.pairs!.buffer), channelScales: arrays.channelScales!, ...(arrays.bias ? { bias: arrays.bias } : {}),
    };
  });
  return out;
}
