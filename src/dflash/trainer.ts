// The drafter's training computation (dflash-spec §3): teacher-forced target taps (cached in memory when they fit,
// the target being frozen), random anchors on response tokens, the drafter forward/backward over all blocks of each
// sequence, the exp(−(k−1)/γ)-weighted CE (slot 0 excluded, no label shift), global grad-norm clipping at 1.0 and
// the AdamW update. The job owns the settings, the schedule of steps, checkpoints, evaluations and the export.
// Data parallel (issue 12): every rank draws the anchors and loss weights of the whole batch (cheap host work, so the
// loss is normalised by the batch's Σw on every rank), runs the drafter over its rankShare of the batch's sequences
// and sums gradients, loss and accuracy counts over the ranks before clipping and AdamW: every rank holds the same
// parameters after every step.
import type { Backend, Tensor } from '../engine/backend.js';
import { rankShare, singleRank, type Collective } from '../engine/collective.js';
import type { Decoder } from '../model/decoder.js';
import type { ModelConfig } from '../io/config.js';
import type { ModelWeights } from '../model/weights.js';
import { initDrafterFromTarget } from './init-from-target.js';
import { Rng } from '../numerics/rng.js';
import type { DrafterConfig } from './drafter-config.js';
import { drafterGemmWeights, freeDrafterGemmWeights, freeTrainSaved, trainBackward, trainForward } from './drafter.js';
import type { ComputeDtype } from '../model/layer-ops.js';
import { drafterTensors, freeDrafterWeights, initDrafterWeights, mapDrafterWeights, zerosLike, type DrafterWeights, type SharedTargetParts } from './drafter-weights.js';
import { anchorRng, anchorsPerSequence, sampleAnchors, validAnchorPositions } from './anchors.js';
import { blockInputIds, blockLabelsAndWeights, headChunkRows, headLoss } from './loss.js';
import { targetTaps } from './features.js';
import type { TrainingData } from './training-data.js';
import type { TrainState } from './train-state.js';

export interface StepLog {
  step: number;
  epoch: number;
  loss: number;
  acc: number;
  lr: number;
  gradNorm: number;
}

export interface EvalLog {
  step: number;
  tau: number;
  tauPooled: number;
  steps: number;
  seconds: number;
}

export interface TrainLog {
  steps: StepLog[];
  evals: EvalLog[];
  trainSeconds: number;
}

/** The drafter's shape for a target: the target's layer sizes, the given depth, block, taps and mask row. */
export function drafterConfigFor(t: ModelConfig, numLayers: number, blockSize: number, layerIds: number[], maskTokenId: number): DrafterConfig {
  return {
    hiddenSize: t.hiddenSize,
    intermediateSize: t.intermediateSize,
    numLayers,
    numHeads: t.numHeads,
    numKvHeads: t.numKvHeads,
    headDim: t.headDim,
    rmsNormEps: t.rmsNormEps,
    ropeTheta: t.ropeTheta,
    maxPositionEmbeddings: t.maxPositionEmbeddings,
    blockSize,
    maskTokenId,
    targetLayerIds: layerIds,
    numTargetLayers: t.numLayers,
    vocabSize: t.vocabSize,
    bosTokenId: t.bosTokenId,
    eosTokenIds: t.eosTokenIds,
  };
}

/**
 * Features of every training sample, cached in memory or recomputed per visit. With several ranks (comm) each rank
 * computes the cached features of its rankShare of the samples and receives the others' (a batch's sequences move
 * between ranks from epoch to epoch); recomputed features are computed by the rank that trains on the sequence.
 */
export class FeatureSource {
  private cache: Float32Array[] | null = null;
  readonly width: number;

  constructor(
    private readonly be: Backend, private readonly target: Decoder, private readonly layerIds: number[], private readonly data: TrainingData, cacheBytes: number,
    onProgress?: (done: number, total: number) => void, comm: Collective = singleRank(),
  ) {
    this.width = layerIds.length * target.cfg.hiddenSize;
    const bytes = data.tokens * this.width * 4;
    if (bytes <= cacheBytes) {
      const n = data.samples.length;
      const W = comm.worldSize;
      const shares = Array.from({ length: W }, (_, r) => rankShare(n, r, W));
      const cache = new Array<Float32Array>(n);
      let done = 0;
      // Round j: every rank computes the j-th sample of its share at the same time, then each result goes to all
      // (one rank: every sample in order, as before).
      for (let j = 0; j < shares[0].end - shares[0].start; j++) {
        const mine = shares[comm.rank].start + j;
        const own = mine < shares[comm.rank].end ? targetTaps(target, data.samples[mine].ids, layerIds) : null;
        for (let r = 0; r < W; r++) {
          const i = shares[r].start + j;
          if (i >= shares[r].end) continue;
          let t = r === comm.rank ? own! : be.zeros([data.samples[i].ids.length, this.width], 'f32');
          if (W > 1) {
            // Sent as f32 (what the cache holds anyway): every rank's tensor has the same dtype and shape.
            if (t.dtype !== 'f32') {
              const f = be.cast(t, 'f32');
              be.free(t);
              t = f;
            }
            comm.broadcast(t, r);
          }
          cache[i] = be.toHost(t);
          be.free(t);
          onProgress?.(++done, n);
        }
      }
      this.cache = cache;
    }
  }

  get mode(): 'memory' | 'online' {
    return this.cache ? 'memory' : 'online';
  }

  taps(i: number): Tensor {
    const s = this.data.samples[i];
    if (this.cache) return this.be.fromHost(this.cache[i], [s.ids.length, this.width], 'f32');
    return targetTaps(this.target, s.ids, this.layerIds);
  }
}

/** Per-epoch sample order: a seeded permutation (same for a resumed run). */
export function epochOrder(n: number, seed: number, epoch: number): Int32Array {
  const order = Int32Array.from({ length: n }, (_, i) => i);
  return new Rng(((seed * 0x9e3779b1) ^ (epoch * 0x85ebca6b) ^ 0x632be5ab) | 0).shuffle(order);
}

/** A fresh state: random (spec) or warm-started from the target's last layers; AdamW moments zero. */
export function initTrainState(be: Backend, c: DrafterConfig, seed: number, from: ModelWeights | null): TrainState {
  const weights = from ? initDrafterFromTarget(be, c, from) : initDrafterWeights(be, c, seed);
  return { weights, m: zerosLike(be, c), v: zerosLike(be, c), step: 0 };
}

/** The samples of optimizer step `step`: its epoch, position in the epoch and batch indices. */
export function stepBatch(step: number, nSamples: number, batch: number, seed: number): { epoch: number; j: number; stepsPerEpoch: number; batchIdx: number[] } {
  const stepsPerEpoch = Math.ceil(nSamples / batch);
  const epoch = Math.floor(step / stepsPerEpoch);
  const order = epochOrder(nSamples, seed, epoch);
  const j = step % stepsPerEpoch;
  return { epoch, j, stepsPerEpoch, batchIdx: Array.from(order.subarray(j * batch, Math.min(nSamples, (j + 1) * batch))) };
}

export interface OptimizerStepOptions {
  epoch: number;
  seed: number;
  anchors: number;
  gamma: number;
  lr: number;
  weightDecay: number;
  /** GEMM precision of the drafter and its loss head (default 'f32'). */
  computeDtype?: ComputeDtype;
}

/** One optimizer step on the batch: gradient (trainStep), AdamW update of every drafter tensor, st.step + 1. */
export function optimizerStep(
  be: Backend, c: DrafterConfig, st: TrainState, shared: SharedTargetParts, invFreq: Float32Array, features: { taps(i: number): Tensor },
  data: TrainingData, batchIdx: number[], o: OptimizerStepOptions, comm: Collective = singleRank(),
): { loss: number; acc: number; gradNorm: number } {
  const r = trainStep(be, c, st, shared, invFreq, features, data, batchIdx, { epoch: o.epoch, seed: o.seed, anchors: o.anchors, gamma: o.gamma, computeDtype: o.computeDtype }, comm);
  for (const { tensor: p, spec } of drafterTensors(c, st.weights)) {
    const g = spec.get(r.grads);
    be.adamw(p, g, spec.get(st.m), spec.get(st.v), { lr: o.lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: o.weightDecay, step: st.step + 1 });
  }
  freeDrafterWeights(be, c, r.grads);
  st.step += 1;
  return { loss: r.loss, acc: r.acc, gradNorm: r.gradNorm };
}

interface StepResult {
  grads: DrafterWeights;
  loss: number;
  acc: number;
  gradNorm: number;
}

/**
 * One optimizer step's gradient over a micro-batch of sequences (loss normalised by the batch's Σw), clipped to 1.
 * With several ranks this rank runs its rankShare of the batch's sequences; gradient, loss and accuracy are the
 * whole batch's on every rank.
 */
export function trainStep(
  be: Backend, c: DrafterConfig, st: TrainState, shared: SharedTargetParts, invFreq: Float32Array, features: { taps(i: number): Tensor },
  data: TrainingData, batchIdx: number[], o: { epoch: number; seed: number; anchors: number; gamma: number; chunkRows?: number; computeDtype?: ComputeDtype },
  comm: Collective = singleRank(),
): StepResult {
  const B = c.blockSize;
  const valid = batchIdx.map((i) => validAnchorPositions(data.samples[i].lossMask, B));
  const N = anchorsPerSequence(valid.map((v) => v.length), o.anchors);
  const seqs = batchIdx.map((i, b) => {
    const smp = data.samples[i];
    const { anchors, keep } = sampleAnchors(valid[b], N, anchorRng(o.seed, o.epoch, i));
    const { labels, weights } = blockLabelsAndWeights(smp.ids, smp.lossMask, anchors, keep, B, o.gamma);
    return { i, anchors, keep, labels, weights, blockIds: blockInputIds(smp.ids, anchors, keep, B, c.maskTokenId) };
  });
  let wSum = 0;
  for (const q of seqs) for (let r = 0; r < q.weights.length; r++) wSum += q.weights[r];
  const norm = 1 / (wSum + 1e-6);
  const chunkRows = o.chunkRows ?? headChunkRows(be, c.vocabSize);
  let grads: DrafterWeights | null = null;
  let loss = 0;
  let correct = 0;
  let counted = 0;
  // Σw of the whole batch above (each sequence's rows weigh the same on every rank), so the ranks' parts simply add.
  const mine = rankShare(seqs.length, comm.rank, comm.worldSize);
  const cd = o.computeDtype ?? 'f32';
  const gemm = drafterGemmWeights(be, st.weights, cd); // bf16 copies of the weights once per step ('f32': the weights)
  for (const q of seqs.slice(mine.start, mine.end)) {
    const taps = features.taps(q.i);
    const { out, saved } = trainForward(be, c, st.weights, shared, invFreq, { taps, anchors: q.anchors, keep: q.keep, blockIds: q.blockIds }, true, { gemm });
    const rowW = new Float32Array(q.weights.length);
    for (let r = 0; r < rowW.length; r++) rowW[r] = q.weights[r] * norm;
    const h = headLoss(be, out, shared.lmHead, q.labels, rowW, chunkRows, true, cd);
    be.free(out);
    loss += h.loss;
    correct += h.correct;
    counted += h.counted;
    const g = trainBackward(be, c, st.weights, invFreq, saved!, h.dHidden);
    be.free(h.dHidden);
    freeTrainSaved(be, saved!);
    be.free(taps);
    if (!grads) grads = g;
    else {
      for (const { spec } of drafterTensors(c, g)) be.axpy(spec.get(grads), spec.get(g), 1);
      freeDrafterWeights(be, c, g);
    }
  }
  freeDrafterGemmWeights(be, gemm);
  grads ??= zerosLike(be, c); // a rank without a sequence of this batch (its share of a short last batch is empty)
  if (comm.worldSize > 1) {
    for (const { tensor } of drafterTensors(c, grads)) comm.allReduce(tensor, 'sum');
    [loss, correct, counted] = comm.allReduceNumbers(Float64Array.of(loss, correct, counted), 'sum');
  }
  // Global grad-norm clipping at 1.0 (torch clip_grad_norm_: scale by max/(norm + 1e-6) when that is < 1).
  let sq = 0;
  const list = drafterTensors(c, grads);
  for (const { tensor } of list) sq += be.sumSquares(tensor);
  const gradNorm = Math.sqrt(sq);
  const coef = 1 / (gradNorm + 1e-6);
  let out = grads;
  if (coef < 1) {
    out = mapDrafterWeights(c, grads, (t) => be.scale(t, coef));
    freeDrafterWeights(be, c, grads);
  }
  return { grads: out, loss, acc: counted > 0 ? correct / counted : NaN, gradNorm };
}
