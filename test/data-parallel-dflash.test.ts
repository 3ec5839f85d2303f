// Data-parallel DFlash jobs (issue 12) on several cpu processes, through the real launcher (`dflash ... --ranks 2
// --device cpu`) against one rank in this process: generate-data writes the same file (prompts split across the ranks,
// merged by rank 0 in prompt order), train-drafter the same step losses and drafter up to the f32 reduction order
// (uneven shares and a batch one rank has no sequence of), only rank 0 writes; a rank failing on a data file only it
// reads ends the run.
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Backend } from '../src/engine/backend.js';
import { CpuBackend } from '../src/engine/cpu/backend.js';
import { SafetensorsFile } from '../src/io/safetensors.js';
import { runGenerateData } from '../src/jobs/generate-data.js';
import { runTrainDrafter, type TrainDrafterInput } from '../src/jobs/train-drafter.js';
import { DEMO_MODEL } from './fixtures-path.js';
import { ROOT, runNode, type ProcResult } from './helpers/dp-procs.js';
import type { DpSpec } from './helpers/dp-jobs.js';
import { scratchDir } from './scratch.js';

const DFLASH = path.join(ROOT, 'scripts', 'dflash-dev.ts');
const DP_JOBS = path.join(ROOT, 'test', 'helpers', 'dp-jobs.ts');

/** A launcher process (not itself a worker); one compute thread per worker, as the ranks share the machine's cores. */
function launcherEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, PARO_CPU_THREADS: '1' };
  for (const k of ['RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT']) delete env[k];
  return env;
}

const dflash = (args: string[]): Promise<ProcResult> => runNode(DFLASH, [...args, '--device', 'cpu', '--ranks', '2'], launcherEnv(), 50);

let be: Backend;
let tmp: string;
let promptsFile: string;
let dataFile: string;

beforeAll(async () => {
  be = await CpuBackend.create();
  tmp = scratchDir('dp-dflash-');
  promptsFile = path.join(tmp, 'prompts.jsonl');
  const prompts = ['def add(a, b):', 'import os\n', 'class Stack:', 'for i in range(', 'The capital of', 'x = [1, 2,', 'print("'];
  writeFileSync(promptsFile, prompts.map((p) => JSON.stringify({ prompt: p })).join('\n') + '\n');
  // 7 training records of the demo target's vocabulary: in batches of 3 the shares are 2 + 1, and the last batch
  // holds 1 sequence (rank 1 has none of it: it contributes zero gradients).
  dataFile = path.join(tmp, 'data.jsonl');
  const records = Array.from({ length: 7 }, (_, i) => JSON.stringify({
    prompt_ids: [10 + i, 20 + i, 30 + i], response_ids: Array.from({ length: 24 }, (_, k) => 40 + ((7 * i + 3 * k) % 50)),
  }));
  writeFileSync(dataFile, records.join('\n') + '\n');
});

describe('dflash generate-data on 2 cpu processes', () => {
  it('writes the file one rank writes (each rank its share, merged in prompt order); only the output and its manifest remain', async () => {
    const settings = { targetDir: DEMO_MODEL, promptsFile, maxNewTokens: 6, batch: 2, chatTemplate: 'never' as const };
    const one = path.join(tmp, 'gen-one.jsonl');
    expect(runGenerateData(be, { ...settings, outFile: one }).generated).toBe(7);
    const dir = path.join(tmp, 'gen-two');
    mkdirSync(dir);
    const two = path.join(dir, 'data.jsonl');
    const r = await dflash(['generate-data', '--target', DEMO_MODEL, '--prompts', promptsFile, '--out', two, '--max-new-tokens', '6', '--batch', '2', '--no-chat-template']);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(two)).toEqual(readFileSync(one));
    expect(readdirSync(dir).sort()).toEqual(['data.jsonl', 'data.jsonl.manifest.json']);
    const m = JSON.parse(readFileSync(two + '.manifest.json', 'utf8')) as { metrics: { worldSize: number; generated: number } };
    expect(m.metrics).toMatchObject({ worldSize: 2, generated: 7 });
  }, 60_000);

  it('continues the records of an interrupted one-rank run: the same file again', async () => {
    const settings = { targetDir: DEMO_MODEL, promptsFile, maxNewTokens: 6, batch: 2, chatTemplate: 'never' as const };
    const one = path.join(tmp, 'gen-one.jsonl');
    const out = path.join(tmp, 'gen-resumed.jsonl');
    // One rank, stopped after 3 records (prompts 0..2, all in rank 0's share of 2 ranks, 0..3).
    const stop = { onProgress: (done: number) => { if (done === 3) throw new Error('interrupted'); } };
    expect(() => runGenerateData(be, { ...settings, outFile: out }, stop)).toThrow(/interrupted/);
    const r = await dflash(['generate-data', '--target', DEMO_MODEL, '--prompts', promptsFile, '--out', out, '--max-new-tokens', '6', '--batch', '2', '--no-chat-template']);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(out)).toEqual(readFileSync(one));
    const m = JSON.parse(readFileSync(out + '.manifest.json', 'utf8')) as { metrics: { generated: number; resumed: number } };
    expect(m.metrics).toMatchObject({ generated: 4, resumed: 3 });
  }, 60_000);
});

/** Step losses of a train-log.csv. */
function stepLosses(dir: string): number[] {
  const [head, ...rows] = readFileSync(path.join(dir, 'train-log.csv'), 'utf8').trim().split('\n');
  const col = head.split(',').indexOf('loss');
  return rows.map((r) => Number(r.split(',')[col]));
}

/** The drafter's tensors as f32 values. */
function drafterValues(dir: string): Map<string, Float32Array> {
  const f = SafetensorsFile.open(path.join(dir, 'model.safetensors'));
  try {
    return new Map(f.names().map((n) => [n, f.readF32(n)]));
  } finally {
    f.close();
  }
}

describe('dflash train-drafter on 2 cpu processes', () => {
  const input = (outDir: string, data = dataFile): TrainDrafterInput => ({
    targetDir: DEMO_MODEL, dataFile: data, outDir, layers: 1, blockSize: 4, anchors: 4, epochs: 2, seqLen: 32, batch: 3, seed: 3,
    featureCacheMb: 64, evalEncoding: { chatTemplate: 'never' },
  });

  /** The one-rank run everything is compared with (made once). */
  let oneDir: string | null = null;
  const single = (): string => {
    if (!oneDir) {
      oneDir = path.join(tmp, 'train-one');
      expect(runTrainDrafter(be, input(oneDir)).steps).toBe(6);
    }
    return oneDir;
  };

  /** The drafter of dir equals one's up to a last-bit bf16 rounding. */
  const expectSameDrafter = (dir: string, one: string): void => {
    const wa = drafterValues(one);
    const wb = drafterValues(dir);
    expect([...wb.keys()].sort()).toEqual([...wa.keys()].sort());
    const far: string[] = [];
    for (const [name, va] of wa) {
      const vb = wb.get(name)!;
      for (let i = 0; i < va.length; i++) if (Math.abs(vb[i] - va[i]) > Math.abs(va[i]) * 2 ** -7) far.push(`${name}[${i}]`);
    }
    expect(far).toEqual([]);
  };

  it('the step losses and the drafter of one rank, up to the f32 reduction order; only rank 0 writes', async () => {
    const one = single();
    const dir = path.join(tmp, 'train-two');
    mkdirSync(dir);
    const out = path.join(dir, 'drafter');
    const r = await dflash(['train-drafter', '--target', DEMO_MODEL, '--data', dataFile, '--out', out, '--layers', '1', '--block-size', '4',
      '--anchors', '4', '--epochs', '2', '--seq-len', '32', '--batch', '3', '--seed', '3', '--feature-cache-mb', '64', '--no-chat-template']);
    expect(r.code, r.stderr).toBe(0);
    const a = stepLosses(one);
    const b = stepLosses(out);
    expect(b.length).toBe(a.length);
    a.forEach((l, i) => expect(Math.abs(b[i] - l) / l).toBeLessThan(1e-5));
    // Training moved the drafter far more than the two runs differ (bf16 export: at most a last-bit rounding apart).
    expectSameDrafter(out, one);
    expect(readdirSync(dir)).toEqual(['drafter']);
    expect(readdirSync(out).sort()).toEqual(readdirSync(one).sort());
    const m = JSON.parse(readFileSync(path.join(out, 'manifest.json'), 'utf8')) as { metrics: { worldSize: number; steps: number } };
    expect(m.metrics).toMatchObject({ worldSize: 2, steps: 6 });
  }, 60_000);

  it('--resume of a one-rank checkpoint on 2 ranks: every rank continues from rank 0\'s state', async () => {
    const one = single();
    const dir = path.join(tmp, 'train-resume');
    mkdirSync(dir);
    const out = path.join(dir, 'drafter');
    // One rank, checkpointing every step, stopped in step 3: the checkpoint of step 2 stays.
    const stop = { onStep: (step: number) => { if (step === 3) throw new Error('interrupted'); } };
    expect(() => runTrainDrafter(be, { ...input(out), checkpointEvery: 1 }, stop)).toThrow(/interrupted/);
    const r = await dflash(['train-drafter', '--target', DEMO_MODEL, '--data', dataFile, '--out', out, '--layers', '1', '--block-size', '4',
      '--anchors', '4', '--epochs', '2', '--seq-len', '32', '--batch', '3', '--seed', '3', '--feature-cache-mb', '64', '--no-chat-template', '--resume']);
    expect(r.code, r.stderr).toBe(0);
    const m = JSON.parse(readFileSync(path.join(out, 'manifest.json'), 'utf8')) as { metrics: { resumedFromStep: number; worldSize: number } };
    expect(m.metrics).toMatchObject({ resumedFromStep: 2, worldSize: 2 });
    const a = stepLosses(one);
    const b = stepLosses(out);
    expect(b.length).toBe(a.length);
    a.forEach((l, i) => expect(Math.abs(b[i] - l) / l).toBeLessThan(1e-5));
    expectSameDrafter(out, one);
  }, 60_000);

  it('every rank ends with the same state; a rank that cannot read its data file ends the run, no output is left', async () => {
    const dir = path.join(tmp, 'train-ranks');
    const results = path.join(dir, 'results');
    mkdirSync(results, { recursive: true });
    const run = (spec: DpSpec<TrainDrafterInput>): Promise<ProcResult> => {
      const specFile = path.join(dir, 'spec.json');
      writeFileSync(specFile, JSON.stringify(spec));
      return runNode(DP_JOBS, ['train-drafter', specFile, results, '--ranks', '2'], launcherEnv(), 50);
    };
    const ok = await run({ input: input(path.join(dir, 'ok')) });
    expect(ok.code, ok.stderr).toBe(0);
    const ranks = [0, 1].map((k) => JSON.parse(readFileSync(path.join(results, `rank-${k}.json`), 'utf8')) as { finalLoss: number; finalAcc: number; steps: number });
    // The last step's loss and accuracy come from the parameters every rank holds: bit-equal on both.
    expect(ranks[1]).toMatchObject({ finalLoss: ranks[0].finalLoss, finalAcc: ranks[0].finalAcc, steps: 6 });
    // A real failure of rank 1 alone: its data file does not exist (rank 0 reads the real one).
    const out = path.join(dir, 'failed');
    const bad = await run({ input: input(out), rankInput: { 1: { dataFile: path.join(dir, 'no-such-data.jsonl') } } });
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/rank 1/);
    expect(bad.stderr).toContain('no-such-data.jsonl');
    expect(existsSync(out)).toBe(false);
  }, 60_000);
});
