// Collectives between the ranks of a data-parallel run (issue 12): one process per device, each with its own Backend.
// On GPUs they are NCCL's (the machine's libnccl.so.2, loaded at run time like cuBLAS); on the cpu backend they go
// through the rendezvous connection (tests and cpu runs). Algorithms call only this interface. Calls are collective:
// every rank makes the same calls in the same order with tensors of the same shape and dtype. Like the Backend, the
// calls are synchronous in appearance (a GPU implementation enqueues on the backend's stream).
import type { Tensor } from './backend.js';

export type ReduceOp = 'sum' | 'mean';

export interface Collective {
  /** This process's rank, 0 ≤ rank < worldSize. Rank 0 writes outputs and prints progress. */
  readonly rank: number;
  readonly worldSize: number;
  /** In place: t becomes the elementwise sum (or mean) of t over all ranks. f32 or bf16 tensors of this rank's backend. */
  allReduce(t: Tensor, op: ReduceOp): void;
  /** In place: t becomes root's t on every rank. */
  broadcast(t: Tensor, root: number): void;
  /** Host numbers (losses, counts), reduced in f64 over all ranks; every rank gets the same result. */
  allReduceNumbers(values: Float64Array, op: ReduceOp): Float64Array;
  /** Returns when every rank has called it. */
  barrier(): void;
  /** Frees the communicator; no call after it. */
  close(): void;
}

/** The collective of a run with one rank: every call is the identity. */
export function singleRank(): Collective {
  return {
    rank: 0,
    worldSize: 1,
    allReduce: () => {},
    broadcast: () => {},
    allReduceNumbers: (values) => Float64Array.from(values),
    barrier: () => {},
    close: () => {},
  };
}

/**
 * The contiguous share [start, end) of n items (windows, prompts) that rank r of w takes: the first n % w ranks take one
 * more, so the shares differ by at most one and their concatenation in rank order is 0..n−1.
 */
export function rankShare(n: number, rank: number, worldSize: number): { start: number; end: number } {
  const base = Math.floor(n / worldSize);
  const extra = n % worldSize;
  const start = rank * base + Math.min(rank, extra);
  return { start, end: start + base + (rank < extra ? 1 : 0) };
}
