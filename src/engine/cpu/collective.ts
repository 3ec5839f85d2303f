// The Collective of the cpu backend, over the rendezvous store (engine/rendezvous.ts): a star through rank 0. Every
// rank hands its data to the store, rank 0 reduces in f64 in rank order and hands the result back, so the result is
// the same bytes on every rank and the same from run to run. Large tensors go in chunks (bounded messages and memory).
import type { Backend, Tensor } from '../backend.js';
import type { Collective, ReduceOp } from '../collective.js';
import type { Rendezvous } from '../rendezvous.js';
import { roundToBf16InPlace, roundToF16InPlace } from '../../numerics/half.js';
import { CpuTensor } from './backend.js';

/** Elements per message (16 MiB of f32). */
const CHUNK = 1 << 22;

function floats(t: Tensor, what: string): Float32Array {
  if (!(t instanceof CpuTensor)) throw new Error(`${what}: the tensor does not belong to the cpu backend`);
  const d = t.data;
  if (!(d instanceof Float32Array) || t.dtype === 'i32') throw new Error(`${what}: f32, bf16 or f16 tensors only, got ${t.dtype}`);
  return d;
}

const bytesOf = (a: Float32Array | Float64Array | Int32Array): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** The cpu Collective of this rank; it owns the store and closes it. The caller has connected the store. */
export function cpuCollective(be: Backend, store: Rendezvous): Collective {
  if (be.name !== 'cpu') throw new Error(`cpuCollective needs the cpu backend, got ${be.name}`);
  const { rank, worldSize } = store;
  // Calls are collective (same order on every rank), so a counter names each call's keys alike everywhere.
  let seq = 0;
  let closed = false;
  const check = (what: string): void => {
    if (closed) throw new Error(`collective ${what} after close()`);
  };

  /**
   * Reduces data (f64 for numbers, else f32) over the ranks in place: rank 0 sums its own part and then rank 1's,
   * 2's ... in f64, scales a mean, and sends the result back.
   */
  function reduceChunk(key: string, data: Float32Array | Float64Array, op: ReduceOp, round: (x: Float32Array) => void): void {
    if (rank !== 0) {
      store.set(`${key}/${rank}`, bytesOf(data), 1);
      const out = store.get(`${key}/out`, 0);
      if (out.byteLength !== data.byteLength) throw new Error(`all-reduce ${key}: rank 0 sent ${out.byteLength} bytes, rank ${rank} expects ${data.byteLength} (calls out of order?)`);
      bytesOf(data).set(out);
      return;
    }
    const acc = Float64Array.from(data);
    for (let r = 1; r < worldSize; r++) {
      const part = store.get(`${key}/${r}`, r);
      const v = data instanceof Float64Array
        ? new Float64Array(part.buffer, part.byteOffset, part.byteLength / 8)
        : new Float32Array(part.buffer, part.byteOffset, part.byteLength / 4);
      if (v.length !== acc.length) throw new Error(`all-reduce ${key}: rank ${r} sent ${v.length} elements, rank 0 has ${acc.length} (calls out of order?)`);
      for (let i = 0; i < acc.length; i++) acc[i] += v[i];
    }
    if (op === 'mean') for (let i = 0; i < acc.length; i++) acc[i] /= worldSize;
    data.set(acc);
    if (data instanceof Float32Array) round(data);
    store.set(`${key}/out`, bytesOf(data), worldSize - 1);
  }

  return {
    rank,
    worldSize,

    allReduce(t: Tensor, op: ReduceOp): void {
      check('allReduce');
      const data = floats(t, 'allReduce');
      const round = t.dtype === 'bf16' ? roundToBf16InPlace : t.dtype === 'f16' ? roundToF16InPlace : () => {};
      const id = seq++;
      for (let c = 0, i = 0; c < data.length; c += CHUNK, i++) {
        reduceChunk(`ar/${id}/${i}`, data.subarray(c, Math.min(data.length, c + CHUNK)), op, round);
      }
    },

    broadcast(t: Tensor, root: number): void {
      check('broadcast');
      if (!Number.isInteger(root) || root < 0 || root >= worldSize) throw new Error(`broadcast root ${root} outside 0..${worldSize - 1}`);
      if (!(t instanceof CpuTensor)) throw new Error('broadcast: the tensor does not belong to the cpu backend');
      const data = t.data;
      const id = seq++;
      for (let c = 0, i = 0; c < data.length; c += CHUNK, i++) {
        const part = data.subarray(c, Math.min(data.length, c + CHUNK));
        const key = `bc/${id}/${i}`;
        if (rank === root) store.set(key, bytesOf(part), worldSize - 1);
        else {
          const got = store.get(key, root);
          if (got.byteLength !== part.byteLength) throw new Error(`broadcast: rank ${root} sent ${got.byteLength} bytes, rank ${rank} expects ${part.byteLength}`);
          bytesOf(part).set(got);
        }
      }
    },

    allReduceNumbers(values: Float64Array, op: ReduceOp): Float64Array {
      check('allReduceNumbers');
      const out = Float64Array.from(values);
      const id = seq++;
      for (let c = 0, i = 0; c < out.length || i === 0; c += CHUNK / 2, i++) {
        reduceChunk(`an/${id}/${i}`, out.subarray(c, Math.min(out.length, c + CHUNK / 2)), op, () => {});
      }
      return out;
    },

    barrier(): void {
      check('barrier');
      store.barrier(`b/${seq++}`);
    },

    close(): void {
      if (closed) return;
      closed = true;
      store.close();
    },
  };
}
