// The Givens kernels of native/src/k_paro.cu run on the cpu under the host emulation of test/cuda-emu (g++, one fiber
// per CUDA thread, barriers, emulated shuffles, shared memory filled with NaN patterns): the v2 kernels
// (the default for f32) against v1 (PARO_GIVENS_KERNEL=v1, the kernels the GPU check
// validated against the cpu backend). The forward output and dx must be bit-identical (same arithmetic per element),
// dθ equal up to its summation order.
// This checks v2's indexing, strip/row split, padded pair slots, layer order, reduce-scatter and row chunks; not the
// device's own arithmetic (FMA contraction: scripts/backend-ops.ts compares both versions on the GPU).
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Rng } from '../src/numerics/rng.js';
import { scratchDir } from './scratch.js';
import { randomPairs } from '../scripts/backend-ops.js';
import { buildEmulation, floatSmemEmulation, hasGpp } from './cuda-emu-build.js';


function buildGivensEmulation(): string {
  return buildEmulation({
    name: 'givens-emu', generated: { 'k_paro_emu.cc': floatSmemEmulation('k_paro.cu') }, sources: ['givens-main.cc'], asCxx: true,
  });
}

interface Case {
  rows: number;
  I: number;
  K: number;
  gs: number;
  inverse: boolean;
  dt: 'f32' | 'bf16';
}

function run(c: Case, seed: number): Record<string, Float32Array> {
  const bin = buildGivensEmulation();
  const dir = scratchDir('givens-emu-run-');
  const rng = new Rng(seed);
  const n = c.rows * c.I;
  const files: Record<string, Float32Array | Int32Array> = {
    x: Float32Array.from({ length: n }, () => rng.normal()),
    dy: Float32Array.from({ length: n }, () => rng.normal()),
    pairs: randomPairs(c.K, c.I, c.gs, rng),
    theta: Float32Array.from({ length: (c.K * c.I) / 2 }, () => rng.nextFloat() * 1.2 - 0.6),
  };
  for (const [name, a] of Object.entries(files)) writeFileSync(path.join(dir, name), new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  const args = [dir, c.rows, c.I, c.K, c.gs, c.inverse ? 1 : 0, c.dt === 'bf16' ? 1 : 0].map(String);
  const r = spawnSync(bin, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`emulation failed (${r.status}): ${r.stderr}`);
  // v2 must have run (a geometry that does not fit falls back to v1, which would compare v1 with itself).
  const warps = /v2 warps: forward (\d+) backward (\d+)/.exec(r.stdout);
  expect(warps && warps.slice(1).every((w) => Number(w) > 0), r.stdout).toBe(true);
  const out: Record<string, Float32Array> = {};
  for (const v of ['v1', 'v2']) {
    for (const name of ['y', 'dx', 'dtheta']) {
      const b = readFileSync(path.join(dir, `${v}.${name}`));
      out[`${v}.${name}`] = new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length));
    }
  }
  return out;
}

/**
 * 'identical' when got and ref hold the same bits, else how many elements differ and the first of them: a failure
 * reads in one line (a toEqual of two 800k-element arrays spends minutes building its diff).
 */
function bitDiff(got: Float32Array, ref: Float32Array): string {
  if (got.length !== ref.length) return `lengths ${got.length} vs ${ref.length}`;
  const g = new Uint32Array(got.buffer, got.byteOffset, got.length);
  const r = new Uint32Array(ref.buffer, ref.byteOffset, ref.length);
  let n = 0, first = -1;
  for (let i = 0; i < g.length; i++) {
    if (g[i] !== r[i]) {
      n++;
      if (first < 0) first = i;
    }
  }
  return n === 0 ? 'identical' : `${n} of ${g.length} elements differ, the first [${first}]: ${got[first]} vs ${ref[first]}`;
}

function relFro(ref: Float32Array, got: Float32Array): number {
  let num = 0, den = 0;
  for (let i = 0; i < ref.length; i++) {
    num += (got[i] - ref[i]) ** 2;
    den += ref[i] ** 2;
  }
  return Math.sqrt(num / Math.max(den, 1e-300));
}

describe.skipIf(!hasGpp)('k_paro.cu Givens kernels v2 vs v1 under a host emulation (needs g++)', () => {
  // Partial last strips (70, 33, 5 rows), groups narrower than a warp with padded pair slots (gs 6), row chunks of
  // several strips per warp (6200 rows: 33 chunks of 6 strips, 3 warps per block), both directions and dtypes.
  const cases: Case[] = [
    { rows: 70, I: 256, K: 8, gs: 128, inverse: false, dt: 'f32' },
    { rows: 70, I: 256, K: 8, gs: 128, inverse: true, dt: 'bf16' },
    { rows: 33, I: 192, K: 3, gs: 64, inverse: false, dt: 'bf16' },
    { rows: 5, I: 60, K: 2, gs: 6, inverse: true, dt: 'f32' },
    { rows: 6200, I: 128, K: 2, gs: 128, inverse: false, dt: 'f32' },
  ];
  for (const [k, c] of cases.entries()) {
    it(`rows ${c.rows} I${c.I} K${c.K} g${c.gs} ${c.inverse ? 'inverse' : 'forward'} ${c.dt}`, () => {
      const o = run(c, 500 + k);
      expect(o['v1.y'].every(Number.isFinite)).toBe(true);
      expect(bitDiff(o['v2.y'], o['v1.y'])).toBe('identical');
      expect(bitDiff(o['v2.dx'], o['v1.dx'])).toBe('identical');
      expect(o['v2.dtheta'].every(Number.isFinite)).toBe(true);
      expect(relFro(o['v1.dtheta'], o['v2.dtheta'])).toBeLessThan(1e-5);
    }, 300_000);
  }
});
