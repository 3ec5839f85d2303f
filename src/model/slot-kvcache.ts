// A KV cache for decoding many sequences of different lengths together: one [slots·capacity, width] tensor per layer
// for K and one for V, slot s in rows [s·capacity, (s+1)·capacity), each slot with its own length. The running
// sequences occupy slots 0..n−1, so that attention reads them as one batch (kvStride = capacity) with a per-entry
// causal offset; a step writes every sequence's new row with one scatter per layer, and a finished sequence's slot
// is refilled by moving the last one into it (compact: the batch stays 0..n−1 and a finished slot costs nothing).
import type { Backend, Tensor } from '../engine/backend.js';
import type { KVCache } from './kvcache.js';

export class SlotKVCache {
  readonly k: Tensor[] = [];
  readonly v: Tensor[] = [];
  /** Valid positions of each slot. */
  readonly lengths: Int32Array;

  constructor(
    private readonly be: Backend,
    readonly layers: number,
    readonly slots: number,
    readonly capacity: number,
    readonly width: number,
    /** As KVCache: f32, or bf16 at compute dtype bf16. */
    readonly dtype: 'f32' | 'bf16' = 'f32',
  ) {
    if (!(slots > 0 && capacity > 0)) throw new Error(`slot KV cache: ${slots} slots of ${capacity} positions`);
    this.lengths = new Int32Array(slots);
    for (let l = 0; l < layers; l++) {
      this.k.push(be.zeros([slots * capacity, width], dtype));
      this.v.push(be.zeros([slots * capacity, width], dtype));
    }
  }

  /** Copy the positions of a one-sequence cache (a prefill) into slot s. */
  load(s: number, cache: KVCache): void {
    const n = cache.length;
    if (cache.batch !== 1 || cache.layers !== this.layers || cache.width !== this.width) {
      throw new Error('slot KV cache: load of a cache of another shape');
    }
    if (n > this.capacity) throw new Error(`slot KV cache: ${n} positions exceed capacity ${this.capacity}`);
    for (let l = 0; l < this.layers; l++) {
      this.be.copyRows(this.k[l], s * this.capacity, cache.k[l], 0, n);
      this.be.copyRows(this.v[l], s * this.capacity, cache.v[l], 0, n);
    }
    this.lengths[s] = n;
  }

  /** The row of each of slots 0..n−1's next position (where a decoding step writes its K/V). */
  nextRows(n: number): Int32Array {
    const rows = new Int32Array(n);
    for (let s = 0; s < n; s++) {
      if (this.lengths[s] >= this.capacity) throw new Error(`slot KV cache: slot ${s} is full (${this.capacity} positions)`);
      rows[s] = s * this.capacity + this.lengths[s];
    }
    return rows;
  }

  /** Write row i of k, v (one new position per sequence) to row rows[i] of layer l: one scatter each. */
  write(l: number, k: Tensor, v: Tensor, rows: Int32Array): void {
    this.be.scatterRows(this.k[l], rows, k);
    this.be.scatterRows(this.v[l], rows, v);
  }

  /** Called once per step after every layer wrote: slots 0..n−1 grew by one position. */
  advance(n: number): void {
    for (let s = 0; s < n; s++) this.lengths[s]++;
  }

  /** Move slot `from`'s positions into slot `to` (its old contents are dropped); `from` becomes empty. */
  move(from: number, to: number): void {
    const n = this.lengths[from];
    if (from !== to) {
      for (let l = 0; l < this.layers; l++) {
        this.be.copyRows(this.k[l], to * this.capacity, this.k[l], from * this.capacity, n);
        this.be.copyRows(this.v[l], to * this.capacity, this.v[l], from * this.capacity, n);
      }
      this.lengths[to] = n;
    }
    this.lengths[from] = 0;
  }

  free(): void {
    this.be.free(...this.k, ...this.v);
    this.k.length = 0;
    this.v.length = 0;
  }
}
