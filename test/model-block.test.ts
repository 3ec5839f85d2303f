// The ParoQuant block (src/model/block.ts, assembled from src/model/layer-ops.ts): blockBackward's effective-weight
// gradients match central finite differences of a weighted sum of the block output, with Qwen3 q/k norms and with
// Qwen2 q/k/v biases; the block forward equals the decoder's layer forward on the same weights.
import { beforeAll, describe, expect, it } from 'vitest';
import { CpuBackend } from '../src/engine/cpu/backend.js';
import type { Backend, Tensor } from '../src/engine/backend.js';
import { normalizeConfig, type ModelConfig } from '../src/io/config.js';
import { blockBackward, blockForward, freeSaved, positionsFor, type BlockGeometry, type BlockParams } from '../src/model/block.js';
import { Decoder } from '../src/model/decoder.js';
import { denseLinear } from '../src/model/layer-ops.js';
import { ropeInvFreq } from '../src/model/rope-freq.js';
import { LINEAR_KEYS, linearShapes, type LayerWeights, type LinearKey } from '../src/model/weights.js';
import { Rng } from '../src/numerics/rng.js';
import { randn } from './numeric.js';
import { tinyTargetRawConfig } from './dflash-helpers.js';

let be: Backend;

beforeAll(async () => {
  be = await CpuBackend.create();
});

const CONFIGS: [string, Record<string, unknown>][] = [
  ['qwen3 (q/k norms)', tinyTargetRawConfig()],
  ['qwen2 (q/k/v biases)', tinyTargetRawConfig({ architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2' })],
];

function randomBlock(cfg: ModelConfig, rng: Rng): BlockParams {
  const H = cfg.hiddenSize;
  const shapes = linearShapes(cfg);
  const weights = {} as Record<LinearKey, Tensor>;
  const biases: Partial<Record<LinearKey, Tensor>> = {};
  for (const k of LINEAR_KEYS) {
    const s = shapes[k];
    weights[k] = be.fromHost(randn(rng, s.out * s.in, 0.3), [s.out, s.in]);
    if (s.bias) biases[k] = be.fromHost(randn(rng, s.out, 0.3), [s.out]);
  }
  const norm = (n: number) => be.fromHost(Float32Array.from(randn(rng, n, 0.2), (x) => 1 + x), [n]);
  const p: BlockParams = { inputNorm: norm(H), postNorm: norm(H), weights, biases };
  if (cfg.qkNorm) {
    p.qNorm = norm(cfg.headDim);
    p.kNorm = norm(cfg.headDim);
  }
  return p;
}

describe.each(CONFIGS)('ParoQuant block, %s', (_label, raw) => {
  const cfg = normalizeConfig(raw, 'config.json');
  const nSeq = 2;
  const seqLen = 7;
  const geo: BlockGeometry = { nSeq, seqLen, positions: positionsFor(nSeq, seqLen), invFreq: ropeInvFreq(cfg, 'f32') };

  it('blockBackward matches central finite differences for every linear', () => {
    const rng = new Rng(11);
    const p = randomBlock(cfg, rng);
    const rows = nSeq * seqLen;
    const x = be.fromHost(randn(rng, rows * cfg.hiddenSize), [rows, cfg.hiddenSize]);
    const wOut = randn(rng, rows * cfg.hiddenSize);
    const loss = (): number => {
      const { y } = blockForward(be, cfg, p, x, geo, false);
      const h = be.toHost(y);
      be.free(y);
      let s = 0;
      for (let i = 0; i < h.length; i++) s += wOut[i] * h[i];
      return s;
    };
    const { y, saved } = blockForward(be, cfg, p, x, geo, true);
    const dy = be.fromHost(wOut, y.shape);
    const grads = blockBackward(be, cfg, p, saved!, dy, geo);
    freeSaved(be, saved!);
    for (const k of LINEAR_KEYS) {
      const w0 = be.toHost(p.weights[k]);
      const dir = randn(rng, w0.length);
      const g = be.toHost(grads[k]);
      let analytic = 0;
      for (let i = 0; i < g.length; i++) analytic += g[i] * dir[i];
      const eps = 1e-2;
      const lossWith = (s: number): number => {
        be.free(p.weights[k]);
        p.weights[k] = be.fromHost(Float32Array.from(w0, (v, i) => v + s * eps * dir[i]), [...grads[k].shape]);
        return loss();
      };
      const numeric = (lossWith(1) - lossWith(-1)) / (2 * eps);
      lossWith(0);
      const scale = Math.max(Math.abs(numeric), Math.abs(analytic), 1e-3);
      expect(Math.abs(numeric - analytic) / scale, `${k}: analytic ${analytic}, numeric ${numeric}`).toBeLessThan(1e-2);
    }
  });

  it('blockForward equals the decoder layer forward on the same weights (bit for bit)', () => {
    const rng = new Rng(12);
    const p = randomBlock(cfg, rng);
    const rows = nSeq * seqLen;
    const x = be.fromHost(randn(rng, rows * cfg.hiddenSize), [rows, cfg.hiddenSize]);
    const layer: LayerWeights = {
      inputNorm: p.inputNorm, postNorm: p.postNorm, qNorm: p.qNorm, kNorm: p.kNorm,
      q: denseLinear(p.weights.q, p.biases.q), k: denseLinear(p.weights.k, p.biases.k), v: denseLinear(p.weights.v, p.biases.v),
      o: denseLinear(p.weights.o, p.biases.o), gate: denseLinear(p.weights.gate, p.biases.gate),
      up: denseLinear(p.weights.up, p.biases.up), down: denseLinear(p.weights.down, p.biases.down),
    };
    const embed = be.zeros([cfg.vocabSize, cfg.hiddenSize]);
    const dec = new Decoder(be, cfg, { embed, lmHead: embed, finalNorm: p.postNorm, layers: [layer] });
    const viaDecoder = be.toHost(dec.layerForward(0, layer, x, geo.positions, nSeq, seqLen));
    const viaBlock = be.toHost(blockForward(be, cfg, p, x, geo, false).y);
    expect(Array.from(viaBlock)).toEqual(Array.from(viaDecoder));
  });
});
