// Reuse of the cpu backend's tensor storage. On this kind of VM the first write to freshly allocated memory is the
// dominant cost of an elementwise kernel (page faults: writing a new 8 MB Float32Array took ~16 ms of CPU, writing a
// reused one ~2 ms), and the algorithms free every intermediate tensor explicitly (as a GPU backend needs), so freed
// Float32Arrays are kept by exact length and handed out again.
//
// PARO_CPU_POOL_MB caps the memory kept (default: 1/16 of RAM, at most 1024 MB; 0 disables reuse).
//
// While worker threads run (thread-pool.ts), new storage is allocated in SharedArrayBuffers, so workers read and
// write tensors in place instead of through copies.
import os from 'node:os';

/** Arrays shorter than this are cheap to allocate and are not kept. */
const MIN_FLOATS = 1 << 14;

function budgetBytes(): number {
  const env = process.env.PARO_CPU_POOL_MB;
  if (env !== undefined && env.trim() !== '') {
    const mb = Number(env);
    if (Number.isFinite(mb) && mb >= 0) return mb * 2 ** 20;
  }
  return Math.min(2 ** 30, Math.floor(os.totalmem() / 16));
}

const budget = budgetBytes();
let shared = false;

/** Allocate new storage in SharedArrayBuffers from now on (worker threads can then use it in place). */
export function setSharedStorage(on: boolean): void {
  shared = on;
}
const byLength = new Map<number, Float32Array[]>();
/** Kept arrays with the stamp of their return, in the order they were given back (oldest first), for eviction. */
let order: { a: Float32Array; stamp: number }[] = [];
let orderHead = 0;
const kept = new Map<Float32Array, number>(); // array → stamp of its latest return
let keptBytes = 0;
let stamp = 0;

function reuse(n: number): Float32Array | undefined {
  if (n < MIN_FLOATS) return undefined;
  const a = byLength.get(n)?.pop();
  if (a) {
    kept.delete(a);
    keptBytes -= a.byteLength;
  }
  return a;
}

function fresh(n: number): Float32Array {
  return shared && n >= MIN_FLOATS ? new Float32Array(new SharedArrayBuffer(n * 4)) : new Float32Array(n);
}

/** A Float32Array of length n with arbitrary contents (a reused one when available). */
export function takeF32(n: number): Float32Array {
  return reuse(n) ?? fresh(n);
}

/** A zero-filled Float32Array of length n. */
export function takeZeroedF32(n: number): Float32Array {
  const a = reuse(n);
  return a ? a.fill(0) : fresh(n);
}

/** Give an array back for reuse. The caller must not touch it afterwards. Views into a larger buffer are ignored. */
export function giveF32(a: Float32Array): void {
  if (a.length < MIN_FLOATS || budget === 0) return;
  if (a.byteOffset !== 0 || a.buffer.byteLength !== a.byteLength) return;
  if ((a.buffer as { growable?: boolean; resizable?: boolean }).growable || (a.buffer as { resizable?: boolean }).resizable) return;
  if (kept.has(a) || a.byteLength > budget) return;
  while (keptBytes + a.byteLength > budget && orderHead < order.length) evictOldest();
  let list = byLength.get(a.length);
  if (!list) byLength.set(a.length, (list = []));
  list.push(a);
  kept.set(a, ++stamp);
  keptBytes += a.byteLength;
  order.push({ a, stamp });
  if (orderHead > 1024 && orderHead * 2 > order.length) {
    order = order.slice(orderHead);
    orderHead = 0;
  }
}

function evictOldest(): void {
  const { a, stamp: s } = order[orderHead++];
  if (kept.get(a) !== s) return; // handed out (and perhaps returned) since
  kept.delete(a);
  keptBytes -= a.byteLength;
  const list = byLength.get(a.length)!;
  list.splice(list.indexOf(a), 1);
}
