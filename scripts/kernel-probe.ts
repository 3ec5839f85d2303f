// Runs each kernel of the ParoQuant block step's slow parts once, at the 8B block's sizes, for a hardware profiler
// (scripts/gpu-session.sh step `ncu`): attention forward and backward (causal, batch 16, T 2048, h 32/8, d 128; and
// the forward of versions 4, 4p and 5, the backward of versions 5 and 6), the Givens forward and backward on a gate_proj-sized f32 weight, and one
// stage-1 transform forward + backward of that linear through transform.ts (the composition of the unfused ops, the
// fused forward with the backward that recomputes each row, then with the Gram backward: paroScaleGrad,
// paroMinMaxGram, groupGram). Each op runs twice; the profiler is told to skip the first launch of each kernel (warm
// caches and allocator).
//   node .gpu/kernel-probe.mjs [--only attention|givens|transform]
import type { QuantGrid } from '../src/engine/backend.js';
import { loadCudaBackend } from '../src/engine/cuda/availability.js';
import { blockAttentionInputs, randomPairs, withEnv } from './backend-ops.js';
import { selectPairs } from '../src/paroquant/pairs.js';
import { freeTransformSaved, transformBackward, transformForward, type ParoLinear } from '../src/paroquant/transform.js';
import { setPath } from '../bench/gpu.js';

const argv = process.argv.slice(2);
const onlyAt = argv.indexOf('--only');
const only = onlyAt >= 0 ? argv[onlyAt + 1] : undefined;
const want = (name: string) => only === undefined || only === name;

const gpu = loadCudaBackend(0);
console.log(`kernel probe on ${gpu.device}`);

if (want('attention')) {
  const { shape, mask, q, k, v, dout } = blockAttentionInputs(gpu, 16, 2048);
  for (let rep = 0; rep < 2; rep++) {
    const f = gpu.attention(q, k, v, shape, mask);
    const g = gpu.attentionBackward(dout, q, k, v, f.out, f.lse, shape, mask);
    gpu.free(f.out, f.lse, g.dq, g.dk, g.dv);
  }
  // The forward of each version 4/5 form too (attnFwdTma<false>, <true>, persistent) and version 5's and 6's backward
  // (attnBwdDqTma; the fused attnBwdDkvTma), twice each, for the profiler's second launch.
  for (const version of ['v4', 'v4p', 'v5', 'v6']) {
    withEnv('PARO_ATTN_KERNEL', version, () => {
      for (let rep = 0; rep < 2; rep++) {
        const f = gpu.attention(q, k, v, shape, mask);
        if (version === 'v5' || version === 'v6') {
          const g = gpu.attentionBackward(dout, q, k, v, f.out, f.lse, shape, mask);
          gpu.free(g.dq, g.dk, g.dv);
        }
        gpu.free(f.out, f.lse);
      }
    });
  }
  gpu.synchronize();
  gpu.free(q, k, v, dout);
  console.log('attention done');
}

if (want('givens')) {
  const [R, I, K, gs] = [12288, 4096, 8, 128];
  const pairs = gpu.fromHost(randomPairs(K, I, gs), [K, I], 'i32');
  const theta = gpu.fromHost(Float32Array.from({ length: (K * I) / 2 }, (_, j) => 0.6 * Math.sin(j)), [K, I / 2]);
  const x = gpu.zeros([R, I], 'f32');
  const dy = gpu.zeros([R, I], 'f32');
  gpu.fillRandom(x, 21);
  gpu.fillRandom(dy, 22);
  for (let rep = 0; rep < 2; rep++) {
    const y = gpu.givens(x, pairs, theta, gs, 'forward');
    const r = gpu.givensBackward(dy, y, pairs, theta, gs, 'forward');
    gpu.free(y, r.dx, r.dtheta);
  }
  gpu.synchronize();
  gpu.free(x, dy, pairs, theta);
  console.log('givens done');
}

if (want('transform')) {
  const [O, I, K] = [12288, 4096, 8];
  const grid: QuantGrid = { bits: 4, groupSize: 128 };
  const sel = selectPairs(I, 0, { krot: K, groupSize: grid.groupSize });
  const W = gpu.zeros([O, I], 'f32');
  gpu.fillRandom(W, 31);
  const lin: ParoLinear = {
    outFeatures: O, inFeatures: I, W,
    alpha: gpu.fromHost(Float32Array.from({ length: I }, (_, i) => 0.5 + (i % 97) / 97), [I]),
    theta: gpu.fromHost(Float32Array.from({ length: (K * I) / 2 }, (_, i) => (sel.mask[i] ? 0 : 0.3 * Math.sin(i))), [K, I / 2]),
    pairs: gpu.fromHost(sel.pairs, [K, I], 'i32'),
    thetaKeep: gpu.fromHost(Float32Array.from(sel.mask, (m) => 1 - m), [sel.mask.length]), krot: K,
  };
  // dŴ in bf16, as the block's GEMMs give it.
  const dWhat = gpu.zeros([O, I], 'bf16');
  gpu.fillRandom(dWhat, 32);
  // The composition of the unfused ops, the fused kernels with the recomputing backward, with the Gram backward.
  const before = { fused: gpu.fusedTransform, residual: gpu.paroResidualDtype };
  for (const path of ['composition', 'recompute', 'gram'] as const) {
    setPath(gpu, path);
    for (let rep = 0; rep < 2; rep++) {
      const { What, saved } = transformForward(gpu, lin, grid, 1, true, 'bf16');
      const g = transformBackward(gpu, lin, grid, saved!, dWhat);
      freeTransformSaved(gpu, saved!);
      gpu.free(What, g.dtheta, g.dalpha, g.dW, g.dscale);
    }
  }
  gpu.fusedTransform = before.fused;
  gpu.paroResidualDtype = before.residual;
  gpu.synchronize();
  gpu.free(W, lin.alpha, lin.theta, lin.pairs, lin.thetaKeep, dWhat);
  console.log('transform done');
}
