// Which calibration windows each rank of a data-parallel run holds (issue 12). The optimizer steps over the training
// windows in batches of B in order (batch b = windows [bB, bB + n)), then validates over the validation windows in
// batches of B; rank r takes rankShare(n, r, W) of every batch, so W ranks together see exactly the batches of the
// single-rank run. A rank's activation stores hold only its windows, in this order: its share of every training batch,
// then its share of every validation batch. With W = 1 that is every window in order (the single-rank layout).
import { rankShare } from '../engine/collective.js';

/** One batch of the single-rank run as one rank holds it. */
export interface BatchShare {
  /** Windows of the whole batch (over all ranks): the loss of the batch is a mean over them. */
  n: number;
  /** This rank's windows of the batch (0 when the batch has fewer windows than there are ranks). */
  count: number;
  /** Where this rank's windows of the batch start in its own stores (a window index, not a row). */
  local: number;
}

export interface WindowShares {
  train: BatchShare[];
  val: BatchShare[];
  /** The calibration window (0..nTrain + nVal − 1: training, then validation) of each window in this rank's stores. */
  windows: Int32Array;
}

/** Rank `rank` of `worldSize`'s windows of nTrain training and nVal validation windows in batches of `batch`. */
export function windowShares(nTrain: number, nVal: number, batch: number, rank: number, worldSize: number): WindowShares {
  if (!(Number.isInteger(batch) && batch > 0)) throw new Error(`windowShares: batch must be a positive integer, got ${batch}`);
  if (!(Number.isInteger(worldSize) && worldSize > 0 && Number.isInteger(rank) && rank >= 0 && rank < worldSize)) {
    throw new Error(`windowShares: rank ${rank} of world size ${worldSize}`);
  }
  const windows: number[] = [];
  const split = (first: number, count: number): BatchShare[] => {
    const out: BatchShare[] = [];
    for (let s0 = 0; s0 < count; s0 += batch) {
      const n = Math.min(batch, count - s0);
      const { start, end } = rankShare(n, rank, worldSize);
      out.push({ n, count: end - start, local: windows.length });
      for (let w = start; w < end; w++) windows.push(first + s0 + w);
    }
    return out;
  };
  const train = split(0, nTrain);
  const val = split(nTrain, nVal);
  return { train, val, windows: Int32Array.from(windows) };
}

/** The most windows a rank holds of one batch (its share of a full batch): the batch its block working set is sized for. */
export function largestShare(batch: number, worldSize: number): number {
  return Math.ceil(batch / worldSize);
}
