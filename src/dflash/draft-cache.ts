// The drafter's per-layer context K/V cache (dflash-spec §4.1): rows [0, length) hold the keys (k_norm + RoPE
// applied) and values of the context features seen so far. A draft pass writes its block's K/V right after them
// for its own attention, then the length stays at the context (the block rows are scratch, discarded).
import type { Backend, Tensor } from '../engine/backend.js';

export class DraftCache {
  readonly k: Tensor[] = [];
  readonly v: Tensor[] = [];
  private len = 0;
  private cap: number;

  constructor(private readonly be: Backend, readonly layers: number, capacity: number, readonly width: number) {
    this.cap = Math.max(1, capacity);
    for (let l = 0; l < layers; l++) {
      this.k.push(be.zeros([this.cap, width]));
      this.v.push(be.zeros([this.cap, width]));
    }
  }

  get length(): number {
    return this.len;
  }

  get capacity(): number {
    return this.cap;
  }

  /** Make room for rows [0, rows) (keeps the first `length` rows). */
  reserve(rows: number): void {
    if (rows <= this.cap) return;
    const newCap = Math.max(rows, this.cap * 2);
    for (const arr of [this.k, this.v]) {
      for (let l = 0; l < this.layers; l++) {
        const bigger = this.be.zeros([newCap, this.width]);
        if (this.len > 0) this.be.copyRows(bigger, 0, arr[l], 0, this.len);
        this.be.free(arr[l]);
        arr[l] = bigger;
      }
    }
    this.cap = newCap;
  }

  /** Write rows of k, v ([n, width]) at row `at` of layer l (at + n ≤ capacity). */
  writeAt(l: number, at: number, k: Tensor, v: Tensor, n: number): void {
    if (at + n > this.cap) throw new Error(`draft cache: rows ${at}..${at + n} exceed capacity ${this.cap}`);
    this.be.copyRows(this.k[l], at, k, 0, n);
    this.be.copyRows(this.v[l], at, v, 0, n);
  }

  setLength(n: number): void {
    if (n < 0 || n > this.cap) throw new Error(`draft cache: length ${n} outside [0, ${this.cap}]`);
    this.len = n;
  }

  /** Keep only the first n context rows. */
  crop(n: number): void {
    if (n > this.len) throw new Error(`cannot crop a draft cache of length ${this.len} to ${n}`);
    this.len = n;
  }

  free(): void {
    this.be.free(...this.k, ...this.v);
    this.k.length = 0;
    this.v.length = 0;
  }
}
