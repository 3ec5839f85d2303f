// The optional warm start (--init target): draft layers copy the target's last layers, with ParoQuant linears folded
// to their effective dense weight, and the first draft layer then computes the context keys/values of the target
// layer it copies.
import { beforeAll, describe, expect, it } from 'vitest';
import { CpuBackend } from '../src/engine/cpu/backend.js';
import type { Backend } from '../src/engine/backend.js';
import { Rng } from '../src/numerics/rng.js';
import { applyLinear } from '../src/model/layer-ops.js';
import type { Linear } from '../src/model/weights.js';
import { effectiveWeight, initDrafterFromTarget } from '../src/dflash/init-from-target.js';
import { contextFeatures } from '../src/dflash/drafter.js';
import { targetTaps } from '../src/dflash/features.js';
import { randn, smallDrafterConfig, tinyTargetDecoder } from './dflash-helpers.js';

let be: Backend;
beforeAll(async () => {
  be = await CpuBackend.create();
});

describe('init from target', () => {
  it('folds a ParoQuant linear (channel scales + Givens layers) into its effective dense weight', () => {
    const rng = new Rng(1);
    const inF = 16;
    const outF = 12;
    const K = 3;
    const pairs = new Int32Array(K * inF);
    for (let r = 0; r < K; r++) {
      const perm = rng.shuffle(Int32Array.from({ length: inF }, (_, i) => i));
      pairs.set(perm, r * inF);
    }
    const lin: Linear = {
      kind: 'rotated', weight: be.fromHost(randn(rng, outF * inF), [outF, inF]), channelScales: be.fromHost(Float32Array.from(randn(rng, inF, 0.2), (x) => 1 + x), [inF]),
      theta: be.fromHost(randn(rng, K * inF / 2, 0.5), [K, inF / 2]), pairs: be.fromHost(pairs, [K, inF], 'i32'), groupSize: inF, outFeatures: outF, inFeatures: inF,
    };
    const x = be.fromHost(randn(rng, 5 * inF), [5, inF]);
    const want = be.toHost(applyLinear(be, x, lin));
    const got = be.toHost(be.matmul(x, effectiveWeight(be, lin), { transB: true }));
    for (let i = 0; i < want.length; i++) expect(got[i]).toBeCloseTo(want[i], 5);
  });

  it('copies the last target layers and makes the first draft layer see that layer\'s context keys', () => {
    const target = tinyTargetDecoder(be, 3); // 3 layers
    const c = smallDrafterConfig({ numLayers: 1, targetLayerIds: [0, 1], numTargetLayers: 3 });
    const w = initDrafterFromTarget(be, c, target.weights);
    const tl = target.weights.layers[2];
    expect(be.toHost(w.layers[0].q)).toEqual(be.toHost(tl.q.weight));
    expect(be.toHost(w.norm)).toEqual(be.toHost(target.weights.finalNorm));
    // Context features C = hidden_norm(fc([F0 ‖ F1])) = input_layernorm_2(F1): the input of target layer 2's K/V.
    const ids = Int32Array.from([3, 7, 11, 2, 5]);
    const taps = targetTaps(target, ids, [0, 1]);
    const { ctx } = contextFeatures(be, c, w, taps);
    const f1 = be.toHost(targetTaps(target, ids, [1]));
    const want = be.toHost(be.rmsnorm(be.fromHost(f1, [5, 16]), tl.inputNorm, 1e-6).y);
    const got = be.toHost(ctx);
    for (let i = 0; i < want.length; i++) expect(got[i]).toBeCloseTo(want[i], 5);
  });
});
