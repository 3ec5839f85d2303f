// The compute steps of `paro quantize` (spec §6.1), callable one by one (the job runs them in order; benches time
// them): calibration embeddings into activation stores → per decoder block: FP targets Y, rotation pairs and the
// initial transform, stage 1 + stage 2 on X′ (inputs from the already-quantized prefix), finalize + pack, X′ through
// the block as written. No files, no flags, no printing: the job (src/jobs/quantize.ts) does those.
import type { Backend, DType, QuantGrid, Tensor } from '../engine/backend.js';
import { singleRank, type Collective } from '../engine/collective.js';
import type { ModelConfig } from '../io/config.js';
import type { PackedLinear } from '../io/int4-format.js';
import { blockForward, type BlockGeometry, type BlockParams } from '../model/block.js';
import { LINEAR_KEYS, linearShapes, type LayerWeights, type LinearKey } from '../model/weights.js';
import { dtypeBytes, type ActivationStore } from './activation-store.js';
import { BlockOptimizer, type BlockData, type BlockProgress, type EpochLog, type OptimizerSettings, type StageResult } from './block-optimizer.js';
import { biasTensor, effectiveWeight, packLinear } from './finalize.js';
import { selectPairs } from './pairs.js';
import type { ParoLinear } from './transform.js';

/**
 * Device bytes one block's optimization needs besides the activation stores, from the block's tensors (docs/scale.md):
 * - per weight element of the 7 linears (P): the f32 weight (4 B); the transform's saved R = F(W) and U (f32, 8 B,
 *   kept for every linear until the backward); Ŵ and its gradient in the compute dtype (2·c B); in stage 2 also the
 *   AdamW moments, the f32 weight gradient and the best-state snapshot (16 B); plus the largest linear's transient
 *   f32 work in the transform backward (8 B per element of that linear);
 * - per token of a batch (batch · seqLen): the activations the block backward keeps and its largest transients, in the
 *   compute dtype c: the input and the target, the normed inputs, q/k before and after RoPE, v, the attention output,
 *   the MLP input, gate, up and their product, and the gradients alive at the backward's peak ≈ (12·H + 3·KV + 6·I)
 *   values (H hidden, KV = kv heads · head dim, I intermediate).
 * Against the measurements at batch 16 × 2048 in bf16 (H100, docs/scale.md): Llama-3.1-70B stage 1 ≈ 28 GB (allocator
 * peak 33.7 GB less 5.4 GB of stores), this 33.5 GB (47.2 GB with stage 2); Qwen3-8B 12.4 GB (17.2 − 4.8), this
 * 14.8 GB with stage 2: about a fifth above, on the safe side.
 */
export function blockWorkingBytes(cfg: ModelConfig, batchSize: number, seqLen: number, dtype: DType, stage2 = true): number {
  const c = dtypeBytes(dtype);
  const sh = linearShapes(cfg);
  const sizes = LINEAR_KEYS.map((k) => sh[k].out * sh[k].in);
  const params = sizes.reduce((a, b) => a + b, 0);
  const perWeight = 4 + 8 + 2 * c + (stage2 ? 16 : 0);
  const kv = cfg.numKvHeads * cfg.headDim;
  const perToken = 12 * cfg.hiddenSize + 3 * kv + 6 * cfg.intermediateSize;
  return perWeight * params + 8 * Math.max(...sizes) + perToken * batchSize * seqLen * c;
}

/** Embeddings of the calibration windows (ids [n·seqLen]) written into every store, batch by batch, in the store dtype. */
export function embedInto(
  be: Backend, embed: Tensor, ids: Int32Array, seqLen: number, batch: number, stores: ActivationStore[], onBatch?: (done: number, total: number) => void,
): void {
  const nAll = ids.length / seqLen;
  for (let s0 = 0; s0 < nAll; s0 += batch) {
    const n = Math.min(batch, nAll - s0);
    const e32 = be.gatherRows(embed, ids.subarray(s0 * seqLen, (s0 + n) * seqLen));
    const e = be.cast(e32, stores[0].dtype);
    for (const st of stores) st.write(s0 * seqLen, e);
    be.free(e32, e);
    onBatch?.(s0 + n, nAll);
  }
}

/** Run a block (dense weights) over all samples of the store x in batches, writing the outputs into y (may be x). */
export function runBlock(
  be: Backend, cfg: ModelConfig, p: BlockParams, x: ActivationStore, y: ActivationStore, nSamples: number, seqLen: number, batch: number,
  geoFor: (n: number) => BlockGeometry,
): void {
  for (let s0 = 0; s0 < nSamples; s0 += batch) {
    const n = Math.min(batch, nSamples - s0);
    const xb = x.read(s0 * seqLen, n * seqLen);
    const { y: yb } = blockForward(be, cfg, p, xb, geoFor(n), false);
    y.write(s0 * seqLen, yb);
    be.free(xb, yb);
  }
}

/** The FP block with its weights in the compute dtype (copies when a cast is needed; free with freeCastWeights). */
export function fpBlockParams(be: Backend, layer: LayerWeights, dtype: DType): BlockParams {
  const weights = {} as Record<LinearKey, Tensor>;
  const biases: Partial<Record<LinearKey, Tensor>> = {};
  for (const k of LINEAR_KEYS) {
    weights[k] = layer[k].weight.dtype === dtype ? layer[k].weight : be.cast(layer[k].weight, dtype);
    if (layer[k].bias) biases[k] = layer[k].bias;
  }
  return { inputNorm: layer.inputNorm, postNorm: layer.postNorm, qNorm: layer.qNorm, kNorm: layer.kNorm, weights, biases };
}

export function freeCastWeights(be: Backend, p: BlockParams, layer: LayerWeights): void {
  for (const k of LINEAR_KEYS) if (p.weights[k] !== layer[k].weight) be.free(p.weights[k]);
}

/** The FP targets Y of block `layer` from its FP inputs X (y may be x: each batch is read before it is overwritten). */
export function fpTargets(
  be: Backend, cfg: ModelConfig, layer: LayerWeights, x: ActivationStore, y: ActivationStore, nSamples: number, seqLen: number, batch: number,
  dtype: DType, geoFor: (n: number) => BlockGeometry,
): void {
  const fp = fpBlockParams(be, layer, dtype);
  runBlock(be, cfg, fp, x, y, nSamples, seqLen, batch, geoFor);
  freeCastWeights(be, fp, layer);
}

/** Rotation pairs per (block, in_features): linears of one block with equal in_features share them (spec §3). */
export type PairCache = Map<string, { pairs: Int32Array; keep: Float32Array }>;

/** The untrained transform of every linear of block l: α = 1, θ = 0, pairs from seed + l (spec §3). */
export function initialLinears(
  be: Backend, layer: LayerWeights, l: number, seed: number, krot: number, groupSize: number, cache: PairCache,
): Record<LinearKey, ParoLinear> {
  const linears = {} as Record<LinearKey, ParoLinear>;
  for (const k of LINEAR_KEYS) {
    const lw = layer[k];
    const I = lw.inFeatures;
    let pc = cache.get(`${l}:${I}`);
    if (!pc) {
      const sel = selectPairs(I, seed + l, { krot, groupSize });
      pc = { pairs: sel.pairs, keep: Float32Array.from(sel.mask, (m) => 1 - m) };
      cache.set(`${l}:${I}`, pc);
    }
    linears[k] = {
      outFeatures: lw.outFeatures, inFeatures: I, W: lw.weight, bias: lw.bias,
      alpha: be.fromHost(new Float32Array(I).fill(1), [I]),
      theta: be.zeros([krot, I / 2]),
      pairs: be.fromHost(pc.pairs, [krot, I], 'i32'),
      thetaKeep: be.fromHost(pc.keep, [pc.keep.length]),
      krot,
    };
  }
  return linears;
}

export interface BlockOptimization {
  stage1?: StageResult;
  stage2?: StageResult;
  epochs: EpochLog[];
}

export interface OptimizeHooks {
  onStep?: (p: BlockProgress) => void;
  onStageEnd?: (stage: 1 | 2, r: StageResult) => void;
  onWarn?: (msg: string) => void;
}

/**
 * Stage 1 then stage 2 (each when it has epochs) on the block's linears, in place. With several ranks (comm) the
 * stores hold this rank's windows (window-shares.ts) and every rank ends with the same linears.
 */
export function optimizeBlock(
  be: Backend, cfg: ModelConfig, layer: LayerWeights, linears: Record<LinearKey, ParoLinear>, data: BlockData, opt: OptimizerSettings,
  geoFor: (n: number) => BlockGeometry, hooks: OptimizeHooks = {}, comm: Collective = singleRank(),
): BlockOptimization {
  const norms = { inputNorm: layer.inputNorm, postNorm: layer.postNorm, qNorm: layer.qNorm, kNorm: layer.kNorm };
  const o = new BlockOptimizer(be, cfg, { norms, linears }, data, opt, geoFor, (p) => hooks.onStep?.(p), (m) => hooks.onWarn?.(m), comm);
  const r: BlockOptimization = { epochs: [] };
  if (opt.epochs[0] > 0) {
    r.stage1 = o.runStage(1);
    hooks.onStageEnd?.(1, r.stage1);
  }
  if (opt.epochs[1] > 0) {
    r.stage2 = o.runStage(2);
    hooks.onStageEnd?.(2, r.stage2);
  }
  r.epochs = o.log;
  return r;
}

/** Finalize and pack every linear (spec §7.1), freeing the training state. */
export function packBlock(be: Backend, layer: LayerWeights, linears: Record<LinearKey, ParoLinear>, grid: QuantGrid): Record<LinearKey, PackedLinear> {
  const packed = {} as Record<LinearKey, PackedLinear>;
  for (const k of LINEAR_KEYS) {
    const lin = linears[k];
    packed[k] = packLinear(be, lin, grid);
    be.free(lin.alpha, lin.theta, lin.pairs, lin.thetaKeep, lin.scale, lin.zpf);
    if (lin.W !== layer[k].weight) be.free(lin.W);
  }
  return packed;
}

/** Effective weights Ŵ and biases of a packed block, exactly as a loader computes them from the tensors. */
export function effectiveBlock(be: Backend, packed: Record<LinearKey, PackedLinear>): { weights: Record<LinearKey, Tensor>; biases: Partial<Record<LinearKey, Tensor>> } {
  const weights = {} as Record<LinearKey, Tensor>;
  const biases: Partial<Record<LinearKey, Tensor>> = {};
  for (const k of LINEAR_KEYS) {
    weights[k] = effectiveWeight(be, packed[k]);
    const b = biasTensor(be, packed[k]);
    if (b) biases[k] = b;
  }
  return { weights, biases };
}

/** X′ ← the block as written (packed weights, norms in fp16: spec §6.7) applied to X′, in place. */
export function advanceQuantizedInputs(
  be: Backend, cfg: ModelConfig, layer: LayerWeights, eff: ReturnType<typeof effectiveBlock>, xq: ActivationStore, nSamples: number, seqLen: number,
  batch: number, geoFor: (n: number) => BlockGeometry,
): void {
  const h = (t?: Tensor) => (t ? be.cast(t, 'f16') : undefined);
  const p: BlockParams = { inputNorm: h(layer.inputNorm)!, postNorm: h(layer.postNorm)!, qNorm: h(layer.qNorm), kNorm: h(layer.kNorm), ...eff };
  // In place: each batch is read before its rows are overwritten.
  runBlock(be, cfg, p, xq, xq, nSamples, seqLen, batch, geoFor);
  be.free(p.inputNorm, p.postNorm, p.qNorm, p.kNorm);
}
