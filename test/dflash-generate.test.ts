// Data regeneration (dflash-spec §3.1): batched decoding equals one-by-one decoding (greedy and seeded sampling, with
// stops), generate-data's records and its resume from a partial file (torn last line cut off, other settings refused).
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CpuBackend } from '../src/engine/cpu/backend.js';
import type { Backend } from '../src/engine/backend.js';
import { Rng } from '../src/numerics/rng.js';
import { batchGenerate } from '../src/dflash/batch-decode.js';
import { plainGenerate } from '../src/dflash/spec-decode.js';
import { promptSeed, runGenerateData, type GenerateDataSettings } from '../src/dflash/generate.js';
import { readTrainingData } from '../src/dflash/training-data.js';
import { tinyTargetDecoder } from './dflash-helpers.js';

const FIX = fileURLToPath(new URL('../../shared/fixtures', import.meta.url));
const haveFix = existsSync(`${FIX}/tiny-qwen3`);
if (!haveFix) console.warn(`skipping generate-data file tests: fixtures not found at ${FIX}`);

let be: Backend;
let tmp: string;
beforeAll(async () => {
  be = await CpuBackend.create();
  tmp = mkdtempSync(path.join(os.tmpdir(), 'dflash-gen-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('batched decoding', () => {
  it('gives the same tokens as decoding each prompt alone, greedy and sampled, with stops', () => {
    const target = tinyTargetDecoder(be, 11);
    const rng = new Rng(1);
    const prompts = Array.from({ length: 5 }, (_, i) => Int32Array.from({ length: 3 + 2 * i }, () => 2 + rng.nextInt(18)));
    for (const temperature of [0, 0.8]) {
      for (const stopTokenIds of [[], [7]]) {
        const seeds = prompts.map((_, i) => 100 + i);
        const opts = { maxNewTokens: 20, temperature, stopTokenIds };
        const batched = batchGenerate(target, prompts, { ...opts, seeds });
        prompts.forEach((p, i) => expect(batched[i]).toEqual(plainGenerate(target, p, { ...opts, seed: seeds[i] }).outputIds));
      }
    }
  });
});

describe.skipIf(!haveFix)('generate-data', () => {
  const promptsFile = () => {
    const f = path.join(tmp, 'prompts.jsonl');
    writeFileSync(f, ['def add(a, b):', 'import os\n', 'class Foo:\n    def'].map((p) => JSON.stringify({ prompt: p })).join('\n') + '\n');
    return f;
  };
  const settings = (out: string, over: Partial<GenerateDataSettings> = {}): GenerateDataSettings => ({
    targetDir: `${FIX}/tiny-qwen3`, promptsFile: promptsFile(), outFile: out, maxNewTokens: 12, temperature: 0, ignoreEos: true, seed: 0,
    encoding: { chatTemplate: 'auto' }, force: false, batch: 2, ...over,
  });

  it('writes one record per prompt with ids the trainer reads, and resumes from a torn partial file', () => {
    const full = path.join(tmp, 'full.jsonl');
    const r = runGenerateData(be, settings(full));
    expect(r.records).toBe(3);
    expect(r.generated).toBe(3);
    expect(r.chatTemplate).toBe(false);
    const lines = readFileSync(full, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((l) => l.index)).toEqual([0, 1, 2]);
    for (const l of lines) {
      expect(l.response_ids).toHaveLength(12);
      expect(l.finish).toBe('length');
      expect(typeof l.response).toBe('string');
    }
    const data = readTrainingData(full, { seqLen: 64, blockSize: 4, vocabSize: 4096, tokenizer: null });
    expect(data.samples[0].lossMask.reduce((a, b) => a + b, 0)).toBe(12);
    // An interrupted run: record 1 done, then a torn line.
    const cut = path.join(tmp, 'cut.jsonl');
    const fullText = readFileSync(full, 'utf8').split('\n');
    writeFileSync(`${cut}.partial`, fullText[1] + '\n' + fullText[2].slice(0, 20));
    const r2 = runGenerateData(be, settings(cut));
    expect(r2.generated).toBe(2);
    expect(r2.resumed).toBe(1);
    expect(readFileSync(cut, 'utf8')).toBe(readFileSync(full, 'utf8'));
    expect(existsSync(`${cut}.partial`)).toBe(false);
    // A partial file of other settings is refused; an existing output needs --force.
    const other = path.join(tmp, 'other.jsonl');
    writeFileSync(`${other}.partial`, fullText[0] + '\n');
    expect(() => runGenerateData(be, settings(other, { maxNewTokens: 5 }))).toThrow(/other settings/);
    expect(() => runGenerateData(be, settings(full))).toThrow(/exists/);
  });

  it('seeds sampling per prompt, so a resumed sampled run equals an uninterrupted one', () => {
    expect(promptSeed(3, 0)).not.toBe(promptSeed(3, 1));
    const a = path.join(tmp, 'sa.jsonl');
    runGenerateData(be, settings(a, { temperature: 1, seed: 5, batch: 3 }));
    const b = path.join(tmp, 'sb.jsonl');
    writeFileSync(`${b}.partial`, readFileSync(a, 'utf8').split('\n')[2] + '\n');
    runGenerateData(be, settings(b, { temperature: 1, seed: 5, batch: 1 }));
    expect(readFileSync(b, 'utf8')).toBe(readFileSync(a, 'utf8'));
  });
});
