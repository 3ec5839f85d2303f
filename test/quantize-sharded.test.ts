// paro quantize output and memory options on the tiny-qwen3 fixture (cpu): --max-shard-size 1MB writes several shards
// and an index holding exactly the tensors of the single-file output, `paro eval` reads it with the same perplexity;
// an interrupted sharded run resumes to byte-identical shards; activations on disk give the same checkpoint, byte for
// byte, as the default; the report has per-phase seconds and peak memory.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Backend } from '../src/engine/backend.js';
import { CpuBackend } from '../src/engine/cpu/backend.js';
import { Checkpoint } from '../src/io/checkpoint.js';
import { resolveEvalSettings, runEvalJob } from '../src/jobs/eval.js';
import { resolveQuantizeSettings, runQuantizeJob, type QuantizeHooks, type QuantizeJob, type QuantizeSettings } from '../src/jobs/quantize.js';
import { FIXTURES, HAVE_FIXTURES } from './fixtures-path.js';
import { scratchDir } from './scratch.js';

const MODEL = path.join(FIXTURES, 'tiny-qwen3');
const TRAIN = path.join(FIXTURES, 'text/train.jsonl');
const VAL = path.join(FIXTURES, 'text/val.jsonl');

function job(out: string, over: Partial<QuantizeSettings> = {}, extra: Partial<QuantizeJob> = {}): QuantizeJob {
  return {
    modelDir: MODEL, outDir: out, calibFile: TRAIN, resume: false, force: false, toolVersion: 'test',
    settings: resolveQuantizeSettings({ samples: 4, seqLen: 64, valSamples: 2, epochs: [1, 1], batchSize: 2, ...over }),
    ...extra,
  };
}

const bytesOf = (dir: string, f: string) => readFileSync(path.join(dir, f));

describe.skipIf(!HAVE_FIXTURES)('paro quantize: sharded output, disk activations, report', () => {
  let be: Backend;
  let tmp: string;
  let single: string;
  beforeAll(async () => {
    be = await CpuBackend.create();
    tmp = scratchDir('paro-shard-');
    single = path.join(tmp, 'single');
    const progress: Record<string, [number, number][]> = { hashing: [], capture: [] };
    const r = await runQuantizeJob(be, job(single), { onProgress: (phase, done, total) => progress[phase].push([done, total]) });
    expect(r.files).toEqual(['model.safetensors']);
    // Progress of the phases before the blocks: hashing in MiB of the checkpoint (never past its total, ending at it),
    // then the calibration windows.
    const h = progress.hashing;
    expect(h.length).toBeGreaterThan(1);
    expect(h.every(([d, t], i) => t === h[0][1] && d <= t && (i === 0 || d >= h[i - 1][0]))).toBe(true);
    expect(h.at(-1)![0]).toBe(h[0][1]);
    expect(h[0][1]).toBe(Math.ceil(statSync(path.join(MODEL, 'model.safetensors')).size / 2 ** 20));
    expect(progress.capture.at(-1)).toEqual([6, 6]);
    // Report: every phase timed, every block's parts timed, peak host RSS (no GPU here).
    for (const k of ['validate', 'hashInputs', 'tokenize', 'capture', 'blocks', 'write', 'total']) expect(r.phases[k]).toBeGreaterThanOrEqual(0);
    expect(r.phases.capture).toBeGreaterThan(0);
    for (const b of r.blocks) {
      expect(Object.keys(b.phases!).sort()).toEqual(['finalize', 'load', 'propagate', 'stage1', 'stage2', 'targets', 'write']);
      expect(b.phases!.stage1).toBeGreaterThan(0);
      expect(b.phases!.stage2).toBeGreaterThan(0);
    }
    expect(r.peakDeviceBytes).toBeNull();
    expect(r.peakHostRssBytes).toBeGreaterThan(50e6);
    expect(r.activations).toEqual(['device', 'device']);
  }, 120_000);

  it('--max-shard-size 1MB: several shards + index with the same tensors, and eval gives the same perplexity', async () => {
    const out = path.join(tmp, 'sharded');
    const r = await runQuantizeJob(be, job(out, {}, { maxShardSize: 1_000_000 }));
    const shards = readdirSync(out).filter((f) => f.endsWith('.safetensors')).sort();
    expect(shards.length).toBeGreaterThan(2);
    expect(existsSync(path.join(out, 'model.safetensors'))).toBe(false);
    expect(r.files).toEqual([...shards, 'model.safetensors.index.json']);
    const index = JSON.parse(bytesOf(out, 'model.safetensors.index.json').toString('utf8'));
    expect(Object.values(index.weight_map).every((f) => shards.includes(f as string))).toBe(true);
    const a = Checkpoint.open(single);
    const b = Checkpoint.open(out);
    // No shard above the limit unless it holds a single larger tensor (the embedding).
    for (const sh of shards) {
      const names = Object.keys(index.weight_map).filter((n) => index.weight_map[n] === sh);
      const size = names.reduce((t, n) => t + b.info(n).byteLength, 0);
      expect(size <= 1_000_000 || names.length === 1).toBe(true);
    }
    expect(b.sharded).toBe(true);
    expect(b.names().sort()).toEqual(a.names().sort());
    let total = 0;
    for (const n of a.names()) {
      expect(b.info(n).dtype).toBe(a.info(n).dtype);
      expect(Buffer.compare(b.readBytes(n), a.readBytes(n))).toBe(0);
      total += a.info(n).byteLength;
    }
    expect(index.metadata.total_size).toBe(total);
    a.close();
    b.close();
    const settings = resolveEvalSettings({ seqLen: 64, maxWindows: 4, batch: 2 });
    const e1 = runEvalJob(be, { modelDir: single, dataFile: VAL, settings });
    const e2 = runEvalJob(be, { modelDir: out, dataFile: VAL, settings });
    expect(e2.ppl).toBe(e1.ppl);
    expect(Number.isFinite(e2.ppl)).toBe(true);
  }, 120_000);

  it('an interrupted sharded run resumes to byte-identical shards', async () => {
    const full = path.join(tmp, 'sharded');
    const out = path.join(tmp, 'sharded-resumed');
    const interrupt: QuantizeHooks = { onBlockEnd: (l) => { if (l === 2) throw new Error('interrupted after block 2'); } };
    await expect(runQuantizeJob(be, job(out, {}, { maxShardSize: 1_000_000 }), interrupt)).rejects.toThrow(/interrupted/);
    expect(existsSync(out + '.partial')).toBe(true);
    const infos: string[] = [];
    await runQuantizeJob(be, job(out, {}, { maxShardSize: 1_000_000, resume: true }), { onInfo: (m) => infos.push(m) });
    expect(infos.join('\n')).toMatch(/resuming after 3 of 4/);
    const files = readdirSync(full).filter((f) => f.startsWith('model')).sort();
    expect(readdirSync(out).filter((f) => f.startsWith('model')).sort()).toEqual(files);
    for (const f of files) expect(Buffer.compare(bytesOf(out, f), bytesOf(full, f))).toBe(0);
  }, 180_000);

  it('--activations disk gives the default checkpoint byte for byte and leaves no store file', async () => {
    const out = path.join(tmp, 'disk');
    const dir = scratchDir('paro-act-');
    const seen: string[] = [];
    const r = await runQuantizeJob(be, job(out, { activations: 'disk' }, { activationsDir: dir }), {
      onBlockEnd: () => seen.push(...readdirSync(dir)),
    });
    expect(r.activations).toEqual(['disk', 'disk']);
    // Batches are read in order, so the read-ahead serves most reads (the first of each pass over the windows not).
    expect(r.diskReads!.prefetched).toBeGreaterThan(r.diskReads!.reads / 2);
    expect(seen.filter((f) => f.endsWith('.bin')).length).toBeGreaterThan(0); // the stores were files while it ran
    expect(readdirSync(dir)).toEqual([]);
    expect(readdirSync(out).some((f) => f.endsWith('.bin'))).toBe(false);
    expect(Buffer.compare(bytesOf(out, 'model.safetensors'), bytesOf(single, 'model.safetensors'))).toBe(0);
  }, 120_000);
});
