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
import { promptSeed } from '../src/dflash/generate.js';
import { runGenerateData, type GenerateDataInput } from '../src/jobs/generate-data.js';
import { readTrainingData } from '../src/jobs/train-drafter.js';
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
  const promptsFile = (name = 'prompts.jsonl', texts = ['def add(a, b):', 'import os\n', 'class Foo:\n    def']) => {
    const f = path.join(tmp, name);
    writeFileSync(f, texts.map((p) => JSON.stringify({ prompt: p })).join('\n') + '\n');
    return f;
  };
  const settings = (out: string, over: Partial<GenerateDataInput> = {}): GenerateDataInput => ({
    targetDir: `${FIX}/tiny-qwen3`, promptsFile: promptsFile(), outFile: out, maxNewTokens: 12, temperature: 0, ignoreEos: true, seed: 0,
    batch: 2, ...over,
  });
  /** A run killed after its first record: the partial output keeps that record. */
  const interrupted = (out: string, over: Partial<GenerateDataInput> = {}): void => {
    expect(() => runGenerateData(be, settings(out, over), {
      onProgress: (done) => { if (done === 1) throw new Error('simulated crash'); },
    })).toThrow(/simulated crash/);
    expect(existsSync(out)).toBe(false);
    expect(readFileSync(path.join(`${out}.partial`, 'records.jsonl'), 'utf8').trim().split('\n')).toHaveLength(1);
  };

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
    const manifest = JSON.parse(readFileSync(`${full}.manifest.json`, 'utf8'));
    expect(manifest).toMatchObject({ tool: 'dflash', command: 'generate-data', metrics: { records: 3 } });
    expect(existsSync(`${full}.partial`)).toBe(false);
    // An interrupted run: one record done, then a torn line.
    const cut = path.join(tmp, 'cut.jsonl');
    interrupted(cut);
    const records = path.join(`${cut}.partial`, 'records.jsonl');
    writeFileSync(records, readFileSync(records, 'utf8') + readFileSync(full, 'utf8').split('\n')[2].slice(0, 20));
    const r2 = runGenerateData(be, settings(cut));
    expect(r2.generated).toBe(2);
    expect(r2.resumed).toBe(1);
    expect(readFileSync(cut, 'utf8')).toBe(readFileSync(full, 'utf8'));
    expect(existsSync(`${cut}.partial`)).toBe(false);
    // An existing output needs --force.
    expect(() => runGenerateData(be, settings(full))).toThrow(/exists/);
  });

  it('resume cuts off any torn tail: a whole record without its newline, a cut UTF-8 character, duplicate and foreign lines', () => {
    const full = path.join(tmp, 'tails-full.jsonl');
    runGenerateData(be, settings(full));
    const fullLines = readFileSync(full, 'utf8').split('\n');
    // Each tail follows the one record of an interrupted run (its line is `kept`).
    const tails: [string, (kept: string) => Buffer][] = [
      // Complete JSON of another prompt, but the write of its "\n" never happened.
      ['no-newline', (kept) => Buffer.from(fullLines.find((l) => l !== '' && l !== kept)!)],
      ['cut-utf8', () => Buffer.concat([Buffer.from('{"index":1,"response":"'), Buffer.from([0xe2, 0x82])])],
      // The same record twice (the first is used) and an index beyond the prompt set (ignored).
      ['duplicate', (kept) => Buffer.from(`${kept}\n${JSON.stringify({ index: 99 })}\n`)],
    ];
    for (const [name, tail] of tails) {
      const out = path.join(tmp, `tails-${name}.jsonl`);
      interrupted(out);
      const records = path.join(`${out}.partial`, 'records.jsonl');
      const kept = readFileSync(records, 'utf8').trimEnd();
      expect(fullLines).toContain(kept);
      writeFileSync(records, Buffer.concat([readFileSync(records), tail(kept)]));
      const r = runGenerateData(be, settings(out));
      expect(r.resumed).toBe(1);
      expect(r.generated).toBe(2);
      expect(readFileSync(out, 'utf8')).toBe(readFileSync(full, 'utf8'));
    }
  });

  it('refuses a partial output of other prompts, target settings or --max-prompts, naming what differs, and keeps it', () => {
    const out = path.join(tmp, 'foreign.jsonl');
    interrupted(out);
    const before = readFileSync(path.join(`${out}.partial`, 'records.jsonl'));
    const cases: [Partial<GenerateDataInput>, RegExp][] = [
      [{ maxNewTokens: 5 }, /differs: settings\.max_new_tokens/],
      [{ promptsFile: promptsFile('other.jsonl', ['x = 1', 'y = 2', 'z = 3']) }, /differs: inputs\.prompts/],
      [{ maxPrompts: 1 }, /differs: settings\.max_prompts/],
      [{ temperature: 0.5 }, /differs: settings\.temperature/],
      [{ seed: 9 }, /differs: settings\.seed/],
    ];
    for (const [over, msg] of cases) {
      expect(() => runGenerateData(be, settings(out, over))).toThrow(msg);
      expect(readFileSync(path.join(`${out}.partial`, 'records.jsonl')).equals(before)).toBe(true);
      expect(existsSync(out)).toBe(false);
    }
    // --force discards it and starts over; report and file agree with --max-prompts.
    const r = runGenerateData(be, settings(out, { maxPrompts: 1, force: true }));
    expect(r.records).toBe(1);
    expect(r.generated).toBe(1);
    expect(readFileSync(out, 'utf8').trim().split('\n')).toHaveLength(1);
  });

  it('refuses an output that is an input, even with --force, and an unwritable one before loading the target', () => {
    const prompts = promptsFile('mine.jsonl');
    const before = readFileSync(prompts);
    expect(() => runGenerateData(be, settings(prompts, { promptsFile: prompts, force: true }))).toThrow(/prompts input/);
    expect(readFileSync(prompts).equals(before)).toBe(true);
    expect(() => runGenerateData(be, settings(path.join(prompts, 'x.jsonl')))).toThrow(/not a directory/);
    expect(() => runGenerateData(be, settings(path.join(`${FIX}/tiny-qwen3`, 'data.jsonl'), { force: true }))).toThrow(/target input/);
    // A bad input fails without leaving a partial behind.
    const out = path.join(tmp, 'bad-in.jsonl');
    expect(() => runGenerateData(be, settings(out, { promptsFile: promptsFile('empty.jsonl', ['']) }))).toThrow(/no tokens/);
    expect(existsSync(`${out}.partial`)).toBe(false);
    expect(existsSync(`${out}.lock`)).toBe(false);
  });

  it('seeds sampling per prompt, so a resumed sampled run equals an uninterrupted one', () => {
    expect(promptSeed(3, 0)).not.toBe(promptSeed(3, 1));
    const a = path.join(tmp, 'sa.jsonl');
    runGenerateData(be, settings(a, { temperature: 1, seed: 5, batch: 3 }));
    const b = path.join(tmp, 'sb.jsonl');
    interrupted(b, { temperature: 1, seed: 5, batch: 1 });
    runGenerateData(be, settings(b, { temperature: 1, seed: 5, batch: 2 }));
    expect(readFileSync(b, 'utf8')).toBe(readFileSync(a, 'utf8'));
  });
});
