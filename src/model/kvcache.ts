// Per-layer key/value cache for causal decoding: k[l], v[l] are [batch·capacity, kvHeads·headDim]; rows
// [b·capacity, b·capacity + length) hold sequence b. Crop shortens it (speculative decoding rejects drafts).
import type { Backend, Tensor } from '../engine/backend.js';

export class KVCache {
  readonly k: Tensor[] = [];
  readonly v: Tensor[] = [];
  private len = 0;

  constructor(
    private readonly be: Backend,
    readonly layers: number,
    readonly batch: number,
    private cap: number,
    readonly width: number,
  ) {
    for (let l = 0; l < layers; l++) {
      this.k.push(be.zeros([batch * cap, width]));
      this.v.push(be.zeros([batch * cap, width]));
    }
  }

  get length(): number {
    return this.len;
  }

  get capacity(): number {
    return this.cap;
  }

  /** Store the keys/values of `seq` new positions (rows [b·seq, (b+1)·seq) of k, v) after the current length. */
  write(layer: number, k: Tensor, v: Tensor, seq: number): void {
    if (this.len + seq > this.cap) this.grow(Math.max(this.len + seq, this.cap * 2));
    for (let b = 0; b < this.batch; b++) {
      this.be.copyRows(this.k[layer], b * this.cap + this.len, k, b * seq, seq);
      this.be.copyRows(this.v[layer], b * this.cap + this.len, v, b * seq, seq);
    }
  }

  /** Called once per forward after every layer wrote its rows. */
  advance(seq: number): void {
    this.len += seq;
  }

  /** Keep only the first n positions. */
  crop(n: number): void {
    if (n > this.len) throw new Error(`cannot crop a KV cache of length ${this.len} to ${n}`);
    this.len = n;
  }

  private grow(newCap: number): void {
    for (let l = 0; l < this.layers; l++) {
      for (const arr of [this.k, this.v]) {
        const bigger = this.be.zeros([this.batch * newCap, this.width]);
        for (let b = 0; b < this.batch; b++) this.be.copyRows(bigger, b * newCap, arr[l], b * this.cap, this.len);
        this.be.free(arr[l]);
        arr[l] = bigger;
      }
    }
    this.cap = newCap;
  }

  free(): void {
    this.be.free(...this.k, ...this.v);
    this.k.length = 0;
    this.v.length = 0;
  }
}
