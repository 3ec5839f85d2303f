// Batched decoding (dflash/batch-decode.ts) on the tiny-qwen3 fixture: the tokens of every prompt equal decoding it
// alone (plainGenerate) at compute dtype f32 and bf16, greedy and sampled with per-prompt seeds, with prompts of
// different lengths and a stop token that ends some of them while others run on (so finished slots are refilled);
// and a decoding step costs the same backend calls whatever the number of prompts, greedy bringing no logits to the host.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { CpuBackend } from '../src/engine/cpu/backend.js';
import type { Backend } from '../src/engine/backend.js';
import { ProfiledBackend } from '../src/engine/profile.js';
import { loadModel } from '../src/model/load.js';
import type { Decoder } from '../src/model/decoder.js';
import { Rng } from '../src/numerics/rng.js';
import { batchGenerate } from '../src/dflash/batch-decode.js';
import { plainGenerate } from '../src/dflash/spec-decode.js';
import { FIXTURES } from './fixtures-path.js';

const TINY = path.join(FIXTURES, 'tiny-qwen3');
const haveTiny = existsSync(TINY);
if (!haveTiny) console.warn(`skipping batched decoding tests: fixture not found at ${TINY}`);

let be: Backend;
beforeAll(async () => {
  be = await CpuBackend.create();
});

function prompts(seed: number, lengths: readonly number[], vocab: number): Int32Array[] {
  const rng = new Rng(seed);
  return lengths.map((n) => Int32Array.from({ length: n }, () => 1 + rng.nextInt(vocab - 1)));
}

/**
 * A stop token that ends some outputs early and leaves at least one later prompt running to the end: a token of an
 * output (before its last position) that a later prompt's output does not hold.
 */
function splittingStop(outs: readonly number[][]): number {
  for (let i = 0; i < outs.length; i++) {
    for (const t of outs[i].slice(0, -1)) {
      if (outs.some((o, j) => j > i && !o.includes(t))) return t;
    }
  }
  throw new Error('no token ends some outputs but not all');
}

describe.skipIf(!haveTiny)('batchGenerate (tiny-qwen3)', () => {
  const maxNewTokens = 16;
  for (const cd of ['f32', 'bf16'] as const) {
    it(`equals decoding each prompt alone, compute dtype ${cd}, greedy and sampled, with a stop token`, () => {
      const { decoder } = loadModel(be, TINY);
      decoder.setComputeDtype(cd);
      const ps = prompts(11, [3, 17, 1, 9, 30, 5, 12], decoder.cfg.vocabSize);
      const seeds = ps.map((_, i) => 1000 + 7 * i);
      for (const temperature of [0, 0.9]) {
        const free = batchGenerate(decoder, ps, { maxNewTokens, temperature, stopTokenIds: [], seeds });
        const stop = splittingStop(free);
        const finished: number[] = [];
        const opts = { maxNewTokens, temperature, stopTokenIds: [stop] };
        const outs = batchGenerate(decoder, ps, { ...opts, seeds }, (i, tokens) => {
          finished.push(i);
          expect(tokens).toEqual(free[i].slice(0, tokens.length));
        });
        // Some prompts stopped early, a later one ran to the end: a slot was refilled mid-run.
        const early = outs.findIndex((o) => o.length < maxNewTokens);
        expect(early).toBeGreaterThanOrEqual(0);
        expect(outs.slice(early + 1).some((o) => o.length === maxNewTokens)).toBe(true);
        expect([...finished].sort((a, b) => a - b)).toEqual(ps.map((_, i) => i));
        // Reported as they finish: never a longer output before a shorter one.
        const lengths = finished.map((i) => outs[i].length);
        expect(lengths).toEqual([...lengths].sort((a, b) => a - b));
        ps.forEach((p, i) => expect(outs[i]).toEqual(plainGenerate(decoder, p, { ...opts, seed: seeds[i] }).outputIds));
      }
    });
  }

  it('runs a decoding step in the same number of backend calls for 2 and 9 prompts; greedy reads no logits', () => {
    const prof = new ProfiledBackend(be);
    const { decoder } = loadModel(prof.backend, TINY);
    const calls = (op?: string): number =>
      [...prof.stats.entries()].filter(([k]) => !op || k.startsWith(op)).reduce((a, [, s]) => a + s.calls, 0);
    /** Calls (all, toHost) of `steps` decoding steps of n prompts: a run of 2 + steps tokens less one of 2 tokens. */
    const stepCalls = (target: Decoder, n: number, steps: number): { all: number; toHost: number } => {
      const ps = prompts(n, Array.from({ length: n }, (_, i) => 2 + 3 * i), target.cfg.vocabSize);
      const run = (maxNewTokens: number): { all: number; toHost: number } => {
        prof.stats.clear();
        batchGenerate(target, ps, { maxNewTokens, temperature: 0, stopTokenIds: [] });
        return { all: calls(), toHost: calls('toHost') };
      };
      const base = run(2);
      const more = run(2 + steps);
      return { all: more.all - base.all, toHost: more.toHost - base.toHost };
    };
    const two = stepCalls(decoder, 2, 3);
    const nine = stepCalls(decoder, 9, 3);
    expect(two.all).toBeGreaterThan(0);
    expect(nine.all).toBe(two.all);
    expect(nine.toHost).toBe(0);
  });
});
