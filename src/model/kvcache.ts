// Per-layer key/value cache: k[l], v[l] are [batch·capacity, width]; rows [b·capacity, b·capacity + length) hold
// sequence b. Used by causal decoding (write the new positions, then advance once per forward; crop when speculative
// decoding rejects drafts) and by the DFlash drafter (context rows, then its block's K/V written after them as
// scratch rows that the length does not count: writeAt + setLength).
import type { Backend, Tensor } from '../engine/backend.js';

export class KVCache {
  readonly k: Tensor[] = [];
  readonly v: Tensor[] = [];
  private len = 0;
  private cap: number;

  constructor(
    private readonly be: Backend,
    readonly layers: number,
    readonly batch: number,
    capacity: number,
    readonly width: number,
    /** Storage of the keys and values: f32, or bf16 at compute dtype bf16 (what the tensor-core attention reads). */
    readonly dtype: 'f32' | 'bf16' = 'f32',
  ) {
    this.cap = Math.max(1, capacity);
    for (let l = 0; l < layers; l++) {
      this.k.push(be.zeros([batch * this.cap, width], dtype));
      this.v.push(be.zeros([batch * this.cap, width], dtype));
    }
  }

  get length(): number {
    return this.len;
  }

  get capacity(): number {
    return this.cap;
  }

  /** Make room for positions [0, rows) of every sequence (keeps the first `length`). */
  reserve(rows: number): void {
    if (rows <= this.cap) return;
    const newCap = Math.max(rows, this.cap * 2);
    for (let l = 0; l < this.layers; l++) {
      for (const arr of [this.k, this.v]) {
        const bigger = this.be.zeros([this.batch * newCap, this.width], this.dtype);
        if (this.len > 0) {
          for (let b = 0; b < this.batch; b++) this.be.copyRows(bigger, b * newCap, arr[l], b * this.cap, this.len);
        }
        this.be.free(arr[l]);
        arr[l] = bigger;
      }
    }
    this.cap = newCap;
  }

  /** Store the keys/values of `seq` new positions (rows [b·seq, (b+1)·seq) of k, v) after the current length. */
  write(layer: number, k: Tensor, v: Tensor, seq: number): void {
    this.reserve(this.len + seq);
    this.writeAt(layer, this.len, k, v, seq);
  }

  /** Write n positions per sequence (rows [b·n, (b+1)·n) of k, v) at position `at` of layer l (at + n ≤ capacity). */
  writeAt(layer: number, at: number, k: Tensor, v: Tensor, n: number): void {
    if (at + n > this.cap) throw new Error(`KV cache: positions ${at}..${at + n} exceed capacity ${this.cap}`);
    for (let b = 0; b < this.batch; b++) {
      this.be.copyRows(this.k[layer], b * this.cap + at, k, b * n, n);
      this.be.copyRows(this.v[layer], b * this.cap + at, v, b * n, n);
    }
  }

  /** Called once per forward after every layer wrote its rows. */
  advance(seq: number): void {
    this.setLength(this.len + seq);
  }

  setLength(n: number): void {
    if (n < 0 || n > this.cap) throw new Error(`KV cache: length ${n} outside [0, ${this.cap}]`);
    this.len = n;
  }

  /** Keep only the first n positions. */
  crop(n: number): void {
    if (n > this.len) throw new Error(`cannot crop a KV cache of length ${this.len} to ${n}`);
    this.len = n;
  }

  free(): void {
    this.be.free(...this.k, ...this.v);
    this.k.length = 0;
    this.v.length = 0;
  }
}
