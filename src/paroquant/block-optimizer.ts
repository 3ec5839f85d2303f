// Block-wise ParoQuant optimization (spec §6): for one decoder block, stage 1 trains angles θ and channel scales α,
// stage 2 the FP weights and the quantizer scales, each with AdamW + the per-stage cosine schedule, selecting the best
// epoch (the untrained state included) by validation loss. Written against the Backend and the Collective only.
// Data parallel (issue 12): each rank computes its share of every batch (window-shares.ts); per step its loss and
// gradients, weighted by its share of the batch, are summed over the ranks before AdamW, so every rank applies the
// same update; validation losses are summed the same way, so best-epoch selection agrees on every rank.
import type { Backend, DType, QuantGrid, Tensor } from '../engine/backend.js';
import { singleRank, type Collective } from '../engine/collective.js';
import type { ModelConfig } from '../io/config.js';
import { blockBackward, blockForward, freeSaved, type BlockGeometry, type BlockParams } from '../model/block.js';
import { LINEAR_KEYS, type LinearKey } from '../model/weights.js';
import { paroCosineLr } from '../numerics/schedule.js';
import type { ActivationStore } from './activation-store.js';
import { freeTransformSaved, transformBackward, transformForward, type ParoLinear, type TransformSaved } from './transform.js';
import { windowShares, type BatchShare, type WindowShares } from './window-shares.js';

export interface OptimizerSettings {
  grid: QuantGrid;
  /**
   * Dtype of the block's activations and effective weights in the forward/backward GEMMs ('bf16' on GPUs: tensor
   * cores; the transform, gradients w.r.t. θ/α/W/s and optimizer state stay f32).
   */
  computeDtype: DType;
  epochs: [number, number];
  batchSize: number;
  lrAngle: number; // stage 1, θ
  lrChannelScale: number; // stage 1, α
  lrWeight: number; // stage 2, W
  lrQuantizer: number; // stage 2, s
  weightDecay: number;
  betas: [number, number];
  eps: number;
}

/**
 * Calibration activations of one block ([samples·seqLen, H] stores): samples [0, nTrain) train, the next nVal
 * validate. nTrain and nVal count the windows of all ranks; with several ranks the stores hold only this rank's
 * windows, in the order of windowShares(nTrain, nVal, batchSize, rank, worldSize).windows.
 */
export interface BlockData {
  x: ActivationStore; // X′: inputs from the already-quantized prefix
  y: ActivationStore; // Y: FP block on FP inputs
  nTrain: number;
  nVal: number;
  seqLen: number;
}

export interface EpochLog {
  stage: 1 | 2;
  epoch: number; // 0 = before training
  trainLoss: number | null;
  valLoss: number;
  /** Learning rates of the stage's parameters at the epoch's last step (stage 1: angle, channelScale; stage 2: weight, quantizer). */
  lr: Record<string, number> | null;
  seconds: number;
}

export interface StageResult {
  bestEpoch: number;
  bestValLoss: number;
  initialValLoss: number;
  diverged: boolean;
}

export interface BlockProgress {
  stage: 1 | 2;
  epoch: number;
  epochs: number;
  step: number;
  steps: number;
  loss: number;
}

/** Fixed parts of the block and the linears under optimization. */
export interface BlockUnderOptimization {
  norms: Omit<BlockParams, 'weights' | 'biases'>;
  linears: Record<LinearKey, ParoLinear>;
}

interface ParamRef {
  lin: ParoLinear;
  name: 'theta' | 'alpha' | 'W' | 'scale';
  lr: number;
  m: Tensor;
  v: Tensor;
}

function getParam(lin: ParoLinear, name: ParamRef['name']): Tensor {
  const t = name === 'theta' ? lin.theta : name === 'alpha' ? lin.alpha : name === 'W' ? lin.W : lin.scale;
  if (!t) throw new Error(`parameter ${name} missing`);
  return t;
}

function setParam(lin: ParoLinear, name: ParamRef['name'], t: Tensor): void {
  if (name === 'theta') lin.theta = t;
  else if (name === 'alpha') lin.alpha = t;
  else if (name === 'W') lin.W = t;
  else lin.scale = t;
}

function stageRates(s: OptimizerSettings, stage: 1 | 2, stepNo: number, total: number): Record<string, number> {
  return stage === 1
    ? { angle: paroCosineLr(s.lrAngle, stepNo, total), channelScale: paroCosineLr(s.lrChannelScale, stepNo, total) }
    : { weight: paroCosineLr(s.lrWeight, stepNo, total), quantizer: paroCosineLr(s.lrQuantizer, stepNo, total) };
}

export class BlockOptimizer {
  readonly log: EpochLog[] = [];
  private readonly shares: WindowShares;

  constructor(
    private readonly be: Backend,
    private readonly cfg: ModelConfig,
    private readonly block: BlockUnderOptimization,
    private readonly data: BlockData,
    private readonly s: OptimizerSettings,
    private readonly geoFor: (nSeq: number) => BlockGeometry,
    private readonly onProgress?: (p: BlockProgress) => void,
    private readonly onWarn?: (msg: string) => void,
    private readonly comm: Collective = singleRank(),
  ) {
    this.shares = windowShares(data.nTrain, data.nVal, s.batchSize, comm.rank, comm.worldSize);
  }

  /** This rank's part of a batch's mean loss: its windows' mean weighted by its share (the whole mean on one rank). */
  private weighted(loss: number, b: BatchShare): number {
    return this.comm.worldSize === 1 ? loss : b.count === 0 ? 0 : loss * (b.count / b.n);
  }

  /** Samples [s0, s0 + n) of a store as a batch tensor [n·T, H]. */
  private rows(src: ActivationStore, s0: number, n: number): Tensor {
    const T = this.data.seqLen;
    return src.read(s0 * T, n * T);
  }

  private params(weights: Record<LinearKey, Tensor>): BlockParams {
    const biases: Partial<Record<LinearKey, Tensor>> = {};
    for (const k of LINEAR_KEYS) if (this.block.linears[k].bias) biases[k] = this.block.linears[k].bias;
    return { ...this.block.norms, weights, biases };
  }

  /** Mean SmoothL1 over the validation batches with the current state. */
  validate(stage: 1 | 2): number {
    const { be, data } = this;
    const weights = {} as Record<LinearKey, Tensor>;
    for (const k of LINEAR_KEYS) weights[k] = transformForward(be, this.block.linears[k], this.s.grid, stage, false, this.s.computeDtype).What;
    const p = this.params(weights);
    // Per batch this rank's weighted part, summed over the ranks in one call; then the batches in order as on one rank.
    const parts = new Float64Array(this.shares.val.length);
    this.shares.val.forEach((b, i) => {
      if (b.count === 0) return;
      const x = this.rows(data.x, b.local, b.count);
      const y = this.rows(data.y, b.local, b.count);
      const { y: pred } = blockForward(be, this.cfg, p, x, this.geoFor(b.count), false);
      parts[i] = this.weighted(be.smoothL1(pred, y, false).loss, b);
      be.free(x, y, pred);
    });
    be.free(...Object.values(weights));
    const losses = this.comm.allReduceNumbers(parts, 'sum');
    let total = 0;
    for (const l of losses) total += l;
    return total / Math.max(1, losses.length);
  }

  /** One optimizer step on a batch (this rank's share of it); returns the batch's loss over all ranks. */
  private step(stage: 1 | 2, params: ParamRef[], b: BatchShare, stepNo: number, totalSteps: number): number {
    const { be, comm } = this;
    const local = b.count > 0 ? this.localGradients(stage, b) : { loss: 0, grads: null };
    // The batch's loss over all ranks, before the backward's gradients are used: every rank sees the same divergence.
    const loss = comm.worldSize === 1 ? local.loss : comm.allReduceNumbers(Float64Array.of(this.weighted(local.loss, b)), 'sum')[0];
    if (!Number.isFinite(loss)) {
      if (local.grads) be.free(...local.grads.values());
      return loss;
    }
    for (const pr of params) {
      const key = `${LINEAR_KEYS.find((k) => this.block.linears[k] === pr.lin)}.${pr.name}`;
      const param = getParam(pr.lin, pr.name);
      let g = local.grads ? local.grads.get(key) : be.zeros(param.shape);
      if (!g) throw new Error(`no gradient for ${key}`);
      local.grads?.delete(key);
      if (comm.worldSize > 1) {
        // Summed over ranks in f32 (stage 2's weight gradient may be the GEMMs' bf16 dŴ itself).
        if (g.dtype !== 'f32') {
          const g32 = be.cast(g, 'f32');
          be.free(g);
          g = g32;
        }
        // Σ over ranks of (n_r / n)·∇(mean over the rank's rows) = ∇(mean over the batch).
        if (b.count > 0 && b.count < b.n) {
          const scaled = be.scale(g, b.count / b.n);
          be.free(g);
          g = scaled;
        }
        comm.allReduce(g, 'sum');
      }
      be.adamw(param, g, pr.m, pr.v, {
        lr: paroCosineLr(pr.lr, stepNo, totalSteps),
        beta1: this.s.betas[0], beta2: this.s.betas[1], eps: this.s.eps, weightDecay: this.s.weightDecay, step: stepNo,
      });
      be.free(g);
    }
    if (local.grads) be.free(...local.grads.values()); // gradients of tensors this stage does not train
    return loss;
  }

  /**
   * Loss and parameter gradients of this rank's windows of a batch (its rows' mean SmoothL1); grads null when the
   * loss is not finite (no backward).
   */
  private localGradients(stage: 1 | 2, b: BatchShare): { loss: number; grads: Map<string, Tensor> | null } {
    const { be, data } = this;
    const weights = {} as Record<LinearKey, Tensor>;
    const saved = {} as Record<LinearKey, TransformSaved>;
    for (const k of LINEAR_KEYS) {
      const r = transformForward(be, this.block.linears[k], this.s.grid, stage, true, this.s.computeDtype);
      weights[k] = r.What; // already in the compute dtype (transformForward's outDtype)
      saved[k] = r.saved!;
    }
    const p = this.params(weights);
    const x = this.rows(data.x, b.local, b.count);
    const yT = this.rows(data.y, b.local, b.count);
    const geo = this.geoFor(b.count);
    const { y, saved: act } = blockForward(be, this.cfg, p, x, geo, true);
    const { loss, dpred } = be.smoothL1(y, yT, true);
    be.free(y, yT);
    if (!Number.isFinite(loss)) {
      freeSaved(be, act!);
      be.free(x, dpred, ...Object.values(weights));
      for (const k of LINEAR_KEYS) freeTransformSaved(be, saved[k]);
      return { loss, grads: null };
    }
    const dW = blockBackward(be, this.cfg, p, act!, dpred!, geo);
    freeSaved(be, act!);
    be.free(x, dpred, ...Object.values(weights));
    const grads = new Map<string, Tensor>();
    for (const k of LINEAR_KEYS) {
      // dŴ in the compute dtype as it is (transformBackward takes any float dtype; the fused kernel reads bf16).
      const g = transformBackward(be, this.block.linears[k], this.s.grid, saved[k], dW[k], { takeDWhat: true });
      freeTransformSaved(be, saved[k]);
      if (g.dtheta) grads.set(`${k}.theta`, g.dtheta);
      if (g.dalpha) grads.set(`${k}.alpha`, g.dalpha);
      if (g.dW) grads.set(`${k}.W`, g.dW);
      if (g.dscale) grads.set(`${k}.scale`, g.dscale);
    }
    return { loss, grads };
  }

  private snapshot(params: ParamRef[]): Tensor[] {
    return params.map((p) => this.be.copy(getParam(p.lin, p.name)));
  }

  private restore(params: ParamRef[], snap: Tensor[]): void {
    params.forEach((p, i) => {
      this.be.free(getParam(p.lin, p.name));
      setParam(p.lin, p.name, this.be.copy(snap[i]));
    });
  }

  /** Run one stage: train, validate each epoch, restore the best state. */
  runStage(stage: 1 | 2): StageResult {
    const { be, s } = this;
    const epochs = s.epochs[stage - 1];
    if (stage === 2) this.initQuantizers();
    const params: ParamRef[] = [];
    for (const k of LINEAR_KEYS) {
      const lin = this.block.linears[k];
      const names: [ParamRef['name'], number][] = stage === 1 ? [['theta', s.lrAngle], ['alpha', s.lrChannelScale]] : [['W', s.lrWeight], ['scale', s.lrQuantizer]];
      for (const [name, lr] of names) {
        const t = getParam(lin, name);
        params.push({ lin, name, lr, m: be.zeros(t.shape), v: be.zeros(t.shape) });
      }
    }
    const t0 = performance.now();
    const initialVal = this.validate(stage);
    this.log.push({ stage, epoch: 0, trainLoss: null, valLoss: initialVal, lr: null, seconds: (performance.now() - t0) / 1000 });
    let best = initialVal;
    let bestEpoch = 0;
    let snap = this.snapshot(params);
    const stepsPerEpoch = this.shares.train.length;
    const total = epochs * stepsPerEpoch;
    let stepNo = 0;
    let diverged = false;
    for (let e = 1; e <= epochs && !diverged; e++) {
      const te = performance.now();
      let sum = 0;
      for (let b = 0; b < stepsPerEpoch; b++) {
        stepNo++;
        const loss = this.step(stage, params, this.shares.train[b], stepNo, total);
        if (!Number.isFinite(loss)) {
          this.onWarn?.(`stage ${stage} epoch ${e}: loss became ${loss}; restoring the best state (epoch ${bestEpoch}) and ending the stage`);
          diverged = true;
          break;
        }
        sum += loss;
        this.onProgress?.({ stage, epoch: e, epochs, step: b + 1, steps: stepsPerEpoch, loss });
      }
      if (diverged) break;
      const val = this.validate(stage);
      this.log.push({ stage, epoch: e, trainLoss: sum / stepsPerEpoch, valLoss: val, lr: stageRates(s, stage, stepNo, total), seconds: (performance.now() - te) / 1000 });
      if (!Number.isFinite(val)) {
        this.onWarn?.(`stage ${stage} epoch ${e}: validation loss is ${val}; restoring the best state (epoch ${bestEpoch})`);
        diverged = true;
        break;
      }
      if (val < best) {
        best = val;
        bestEpoch = e;
        be.free(...snap);
        snap = this.snapshot(params);
      }
    }
    this.restore(params, snap);
    be.free(...snap);
    for (const p of params) be.free(p.m, p.v);
    return { bestEpoch, bestValLoss: best, initialValLoss: initialVal, diverged };
  }

  /** Stage 2 quantizer parameters from the min/max grid of the current F(W) (spec §4.3). */
  private initQuantizers(): void {
    const { be } = this;
    for (const k of LINEAR_KEYS) {
      const lin = this.block.linears[k];
      const Ws = be.mulCols(lin.W, lin.alpha);
      const R = be.givens(Ws, lin.pairs, lin.theta, this.s.grid.groupSize, 'forward');
      const { rq, scale, zpf } = be.fakeQuantMinMax(R, this.s.grid);
      be.free(Ws, R, rq, lin.scale, lin.zpf);
      lin.scale = scale;
      lin.zpf = zpf;
    }
  }
}
