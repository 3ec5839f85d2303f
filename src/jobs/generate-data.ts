// `dflash generate-data`: the target regenerates the responses of a prompt set (dflash/generate.ts). Records go one
// per line to records.jsonl inside the run directory `<out>.partial/` as prompts finish; a rerun of the same command
// continues from there (the partial's fingerprint — prompt file, target files and every setting that changes a record
// — must match, else it is refused naming what differs). When all prompts are done the file is written in prompt
// order and renamed onto <out>, with `<out>.manifest.json` beside it.
// Data parallel (issue 12, a Collective of W ranks): rank r regenerates its rankShare of the prompts into its own
// records file in the partial folder (records-rank-<r>.jsonl; rank 0 keeps records.jsonl), and rank 0, which alone
// holds the lock, writes the output in prompt order from all of them once every rank is done: the same file as one
// rank writes when decoding is deterministic. Ranks other than 0 need the partial folder on a file system they share.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Backend } from '../engine/backend.js';
import { rankShare, singleRank, type Collective } from '../engine/collective.js';
import { loadModel, type LoadedModel } from '../model/load.js';
import { freeModelWeights } from '../model/weights.js';
import { loadModelConfig } from '../io/config.js';
import { loadTokenizer } from '../io/tokenizer.js';
import { readPrompts } from '../io/datasets.js';
import { inputIdentity, createManifest, describeInput } from '../io/manifest.js';
import { checkOutputPath, openRunDir, PARTIAL_SUFFIX } from '../io/run-dir.js';
import { readLines } from '../io/text-file.js';
import { UserError } from '../errors.js';
import { encodePrompt } from '../dflash/prompts.js';
import { regenerate, type GenStamp, type GeneratedRecord, type PendingPrompt } from '../dflash/generate.js';
import { describeModelDir } from './model-input.js';
import { withDefaults, type RunInfo } from './defaults.js';
import { checkComputeDtypeSetting, resolveJobComputeDtype, type ComputeDtypeSetting } from './compute-dtype.js';
import type { ComputeDtype } from '../model/layer-ops.js';

export interface GenerateDataSettings {
  targetDir: string;
  promptsFile: string;
  outFile: string;
  /** Tokens generated per prompt. */
  maxNewTokens: number;
  /** Sampling temperature (0: greedy). */
  temperature: number;
  /** Do not stop at the end-of-text token. */
  ignoreEos: boolean;
  seed: number;
  /** 'auto': the chat template when the tokenizer has one; 'never': raw text. */
  chatTemplate: 'auto' | 'never';
  /** enable_thinking for templates that have it (undefined: the template's default). */
  enableThinking?: boolean;
  /** Only the first n prompts. */
  maxPrompts?: number;
  /** Prompts decoded together (does not change the records). */
  batch: number;
  /** GEMM precision of the target's linear layers and head (compute-dtype.ts): auto = bf16 on cuda, f32 on the cpu. */
  computeDtype: ComputeDtypeSetting;
  /** Replace an existing output, discard a partial of other settings. */
  force: boolean;
}

type Required = 'targetDir' | 'promptsFile' | 'outFile';
export type GenerateDataInput = Pick<GenerateDataSettings, Required> & Partial<Omit<GenerateDataSettings, Required>>;

export const DEFAULT_GENERATE_DATA_SETTINGS = {
  maxNewTokens: 512,
  temperature: 0,
  ignoreEos: false,
  seed: 0,
  chatTemplate: 'auto',
  batch: 32,
  computeDtype: 'auto',
  force: false,
} as const satisfies Partial<GenerateDataSettings>;

export interface GenerateDataHooks {
  /** Prompts done (kept + generated) of total, tokens generated so far in this run. */
  onProgress?: (done: number, total: number, tokens: number) => void;
}

export interface GenerateDataReport {
  command: 'dflash generate-data';
  target: string;
  prompts: string;
  out: string;
  device: string;
  backend: string;
  records: number;
  /** Records found in the partial output of an earlier run and kept. */
  resumed: number;
  generated: number;
  promptTokens: number;
  responseTokens: number;
  stoppedAtEos: number;
  chatTemplate: boolean;
  /** The resolved compute dtype the target ran at. */
  computeDtype: ComputeDtype;
  seconds: number;
  tokensPerSecond: number;
  /** Ranks of the data-parallel run (1: one device). */
  worldSize: number;
}

const RECORDS_FILE = 'records.jsonl';
/** A records file of the partial folder: rank 0's (or a single rank's) and the other ranks' of this or an earlier run. */
const RECORDS_FILES = /^records(-rank-\d+)?\.jsonl$/;

/** The records file rank r appends to. */
function recordsFileOf(rank: number): string {
  return rank === 0 ? RECORDS_FILE : `records-rank-${rank}.jsonl`;
}

/** Every records file of the partial folder, rank 0's first (the first record of an index is the one kept). */
function recordsFiles(partial: string): string[] {
  const names = fs.existsSync(partial) ? fs.readdirSync(partial).filter((n) => RECORDS_FILES.test(n)) : [];
  const rankOf = (n: string) => (n === RECORDS_FILE ? 0 : Number(/(\d+)/.exec(n)![1]));
  return names.sort((a, b) => rankOf(a) - rankOf(b)).map((n) => path.join(partial, n));
}

/** Defaults filled in and every setting checked; nothing is read. */
export function resolveGenerateDataSettings(input: GenerateDataInput): GenerateDataSettings {
  const s: GenerateDataSettings = withDefaults(DEFAULT_GENERATE_DATA_SETTINGS, input);
  const posInt = (v: number | undefined, flag: string): void => {
    if (v !== undefined && !(Number.isInteger(v) && v > 0)) throw new UserError(`${flag} must be a positive integer, got ${v}`);
  };
  posInt(s.maxNewTokens, '--max-new-tokens');
  posInt(s.batch, '--batch');
  posInt(s.maxPrompts, '--max-prompts');
  if (!(Number.isFinite(s.temperature) && s.temperature >= 0)) throw new UserError(`--temperature must be a non-negative number, got ${s.temperature}`);
  if (!(Number.isInteger(s.seed) && s.seed >= 0)) throw new UserError(`--seed must be a non-negative integer, got ${s.seed}`);
  checkComputeDtypeSetting(s.computeDtype);
  return s;
}

/** Where one record lies in a partial records file (its line and "\n"), and the counts the report needs. */
interface RecordLine {
  file: string;
  offset: number;
  bytes: number;
  promptTokens: number;
  responseTokens: number;
  stopped: boolean;
}

/**
 * The complete records of a partial records file not yet in `done`, added to it, streamed line by line (the file
 * grows with the prompt set). A torn tail (a crash mid-write: a line without "\n", cut JSON or a cut UTF-8
 * character) is cut off the file when `repair` (only the lock holder repairs), so appending continues on a line boundary.
 */
function scanRecords(file: string, total: number, done = new Map<number, RecordLine>(), repair = true): Map<number, RecordLine> {
  if (!fs.existsSync(file)) return done;
  const size = fs.statSync(file).size;
  let good = 0; // bytes of complete lines read
  try {
    for (const line of readLines(file, 'the partial records file')) {
      const bytes = Buffer.byteLength(line) + 1;
      if (good + bytes > size) break; // the last line has no "\n": torn
      let rec: GeneratedRecord;
      try {
        rec = JSON.parse(line) as GeneratedRecord;
      } catch {
        break;
      }
      if (typeof rec !== 'object' || rec === null || !Number.isInteger(rec.index)) break;
      // The fingerprint fixes the prompt set, so an index beyond it cannot come from a matching run: ignore it.
      if (rec.index >= 0 && rec.index < total && !done.has(rec.index)) {
        done.set(rec.index, {
          file, offset: good, bytes,
          promptTokens: rec.prompt_ids?.length ?? 0, responseTokens: rec.response_ids?.length ?? 0, stopped: rec.finish === 'stop',
        });
      }
      good += bytes;
    }
  } catch (e) {
    // Bytes that are not UTF-8 or an endless line: the tail of a torn write, cut off below like a torn JSON line.
    if (!(e instanceof UserError)) throw e;
  }
  if (repair && good < size) fs.truncateSync(file, good);
  return done;
}

/** The records of every records file of the partial folder, first of each index. */
function scanAllRecords(partial: string, total: number, repair: boolean): Map<number, RecordLine> {
  const done = new Map<number, RecordLine>();
  for (const f of recordsFiles(partial)) scanRecords(f, total, done, repair);
  return done;
}

/** The output file: each prompt's record line copied from its partial records file, in prompt order. */
function writeInPromptOrder(lines: Map<number, RecordLine>, total: number, outFile: string): void {
  if (lines.size !== total) throw new Error(`internal: ${lines.size} records for ${total} prompts`);
  const sources = new Map<string, number>();
  const dst = fs.openSync(outFile, 'w');
  try {
    for (let i = 0; i < total; i++) {
      const at = lines.get(i)!;
      let src = sources.get(at.file);
      if (src === undefined) sources.set(at.file, (src = fs.openSync(at.file, 'r')));
      const buf = Buffer.alloc(at.bytes);
      if (fs.readSync(src, buf, 0, at.bytes, at.offset) !== at.bytes) throw new Error(`internal: record ${i} of ${at.file} is cut short`);
      fs.writeSync(dst, buf);
    }
  } finally {
    for (const fd of sources.values()) fs.closeSync(fd);
    fs.closeSync(dst);
  }
}

/**
 * The generate-data job. With a Collective of several ranks every rank calls it with the same input; rank 0 holds the
 * run directory, writes the output and calls the hooks (its progress counts its own share of the prompts).
 */
export function runGenerateData(
  be: Backend, input: GenerateDataInput, hooksIn: GenerateDataHooks = {}, run: RunInfo = {}, comm: Collective = singleRank(),
): GenerateDataReport {
  const t0 = performance.now();
  const lead = comm.rank === 0;
  const hooks: GenerateDataHooks = lead ? hooksIn : {};
  const s = resolveGenerateDataSettings(input);
  const inputs = { target: s.targetDir, prompts: s.promptsFile };
  // The output path first: a bad --out fails before the target is read (rank 0's: it writes the output).
  if (lead) checkOutputPath({ out: s.outFile, kind: 'file', inputs, force: s.force });
  const cfg = loadModelConfig(s.targetDir);
  const tok = loadTokenizer(s.targetDir);
  let prompts = readPrompts(s.promptsFile);
  if (s.maxPrompts !== undefined) prompts = prompts.slice(0, s.maxPrompts);
  const encoding = { chatTemplate: s.chatTemplate, enableThinking: s.enableThinking };
  const templated = s.chatTemplate === 'auto' && tok.hasChatTemplate;
  const encoded = prompts.map((p, i) => {
    const { ids } = encodePrompt(tok, p, encoding);
    if (ids.length === 0) throw new UserError(`prompt ${i + 1} encodes to no tokens`, { file: s.promptsFile });
    return ids;
  });
  const stamp: GenStamp = {
    max_new_tokens: s.maxNewTokens, temperature: s.temperature, ignore_eos: s.ignoreEos, seed: s.seed,
    chat_template: templated, enable_thinking: s.enableThinking ?? null,
  };
  const manifestInputs = lead ? [describeModelDir('target', s.targetDir), describeInput('prompts', s.promptsFile)] : [];
  // The compute dtype changes the records: a partial of another one is not continued (f32, the earlier numerics, adds no key).
  const computeDtype = resolveJobComputeDtype(s.computeDtype, be.name);
  const fingerprint = {
    inputs: Object.fromEntries(manifestInputs.map((i) => [i.role, inputIdentity(i)])),
    settings: { ...stamp, max_prompts: s.maxPrompts ?? null, ...(computeDtype === 'f32' ? {} : { compute_dtype: computeDtype }) },
  };
  // A matching partial is always continued (rerunning the command resumes); a foreign one is refused.
  const rd = lead ? openRunDir({ out: s.outFile, kind: 'file', tool: 'dflash', command: 'generate-data', inputs, force: s.force, resume: true, fingerprint }) : null;
  const partial = rd?.partial ?? path.resolve(s.outFile) + PARTIAL_SUFFIX;
  let model: LoadedModel | null = null;
  try {
    // Rank 0 cuts the torn tails an interrupted run left; then every rank reads the records there before any appends.
    let done = rd ? scanAllRecords(partial, prompts.length, true) : new Map<number, RecordLine>();
    if (comm.worldSize > 1) {
      comm.barrier();
      if (!lead) done = scanAllRecords(partial, prompts.length, false);
      comm.barrier();
    }
    // At bf16 the float weights are read as bf16 (a bf16 checkpoint as stored; dequantized INT4 weights at half the memory).
    model = loadModel(be, s.targetDir, computeDtype === 'bf16' ? { weightDtype: 'bf16' } : {});
    model.decoder.setComputeDtype(computeDtype);
    const eos = cfg.eosTokenIds.length > 0 ? cfg.eosTokenIds : tok.eosTokenId !== null ? [tok.eosTokenId] : [];
    const mine = rankShare(prompts.length, comm.rank, comm.worldSize);
    const pending: PendingPrompt[] = [];
    for (let index = mine.start; index < mine.end; index++) {
      if (!done.has(index)) pending.push({ index, prompt: prompts[index], ids: encoded[index] });
    }
    const shareTotal = mine.end - mine.start;
    let finished = shareTotal - pending.length;
    let generated = 0;
    let genTokens = 0;
    hooks.onProgress?.(finished, shareTotal, 0);
    const tGen = performance.now();
    const fd = fs.openSync(path.join(partial, recordsFileOf(comm.rank)), 'a');
    try {
      regenerate(model.decoder, tok, pending, {
        maxNewTokens: s.maxNewTokens, temperature: s.temperature, stopTokenIds: s.ignoreEos ? [] : eos, seed: s.seed, batch: s.batch, stamp,
      }, (rec) => {
        // One write per record: a crash leaves at most one torn line, which the next run cuts off.
        fs.writeSync(fd, JSON.stringify(rec) + '\n');
        generated++;
        genTokens += rec.response_ids.length;
        finished++;
        hooks.onProgress?.(finished, shareTotal, genTokens);
      }, () => fs.fsyncSync(fd));
    } finally {
      fs.closeSync(fd);
    }
    // Every rank's records are in (the sum waits for the slowest rank).
    if (comm.worldSize > 1) [generated, genTokens] = comm.allReduceNumbers(Float64Array.of(generated, genTokens), 'sum');
    const genSeconds = (performance.now() - tGen) / 1000;
    // The complete file in prompt order, exactly one record per prompt of this run (rank 0).
    const lines = rd ? scanAllRecords(partial, prompts.length, false) : done;
    if (rd) {
      writeInPromptOrder(lines, prompts.length, rd.file);
      for (const f of recordsFiles(partial)) fs.rmSync(f, { force: true });
    }
    let promptTokens = 0;
    let responseTokens = 0;
    let stoppedAtEos = 0;
    for (const l of lines.values()) {
      promptTokens += l.promptTokens;
      responseTokens += l.responseTokens;
      if (l.stopped) stoppedAtEos++;
    }
    const seconds = (performance.now() - t0) / 1000;
    const report: GenerateDataReport = {
      command: 'dflash generate-data',
      target: s.targetDir,
      prompts: s.promptsFile,
      out: s.outFile,
      device: be.device,
      backend: be.name,
      records: prompts.length,
      resumed: prompts.length - generated,
      generated,
      promptTokens,
      responseTokens,
      stoppedAtEos,
      chatTemplate: templated,
      computeDtype,
      seconds,
      tokensPerSecond: genSeconds > 0 ? genTokens / genSeconds : 0,
      worldSize: comm.worldSize,
    };
    rd?.commit(createManifest({
      tool: 'dflash', version: run.toolVersion ?? 'unknown', command: 'generate-data', argv: run.argv,
      settings: { ...s, targetDir: path.resolve(s.targetDir), promptsFile: path.resolve(s.promptsFile), outFile: path.resolve(s.outFile), chatTemplateUsed: templated, computeDtypeUsed: computeDtype },
      seed: s.seed, device: be.device, backend: be.name, inputs: manifestInputs,
      metrics: { records: report.records, generated, resumed: report.resumed, promptTokens, responseTokens, stoppedAtEos, worldSize: comm.worldSize },
      seconds: { total: seconds, generate: genSeconds },
    }));
    comm.barrier(); // every rank returns once rank 0 has committed the output (a later step may read it)
    return report;
  } catch (e) {
    // Records of an interrupted run (any rank's) are kept for the rerun; a run that failed before any is cleaned up.
    if (rd) {
      if (recordsFiles(partial).some((f) => fs.statSync(f).size > 0)) rd.release();
      else rd.discard();
    }
    throw e;
  } finally {
    // `paro release` runs every stage in one process: the target must not stay on the GPU after this one.
    if (model) freeModelWeights(be, model.decoder.weights);
  }
}
