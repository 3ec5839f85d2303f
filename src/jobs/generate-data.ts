// `dflash generate-data`: the target regenerates the responses of a prompt set (dflash/generate.ts). Records go one
// per line to records.jsonl inside the run directory `<out>.partial/` as prompts finish; a rerun of the same command
// continues from there (the partial's fingerprint — prompt file, target files and every setting that changes a record
// — must match, else it is refused naming what differs). When all prompts are done the file is written in prompt
// order and renamed onto <out>, with `<out>.manifest.json` beside it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Backend } from '../engine/backend.js';
import { loadModel, type LoadedModel } from '../model/load.js';
import { freeModelWeights } from '../model/weights.js';
import { loadModelConfig } from '../io/config.js';
import { loadTokenizer } from '../io/tokenizer.js';
import { readPrompts } from '../io/datasets.js';
import { inputIdentity, createManifest, describeInput } from '../io/manifest.js';
import { checkOutputPath, openRunDir } from '../io/run-dir.js';
import { readLines } from '../io/text-file.js';
import { UserError } from '../errors.js';
import { encodePrompt } from '../dflash/prompts.js';
import { regenerate, type GenStamp, type GeneratedRecord, type PendingPrompt } from '../dflash/generate.js';
import { describeModelDir } from './model-input.js';
import { withDefaults, type RunInfo } from './defaults.js';

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
  seconds: number;
  tokensPerSecond: number;
}

const RECORDS_FILE = 'records.jsonl';

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
  return s;
}

/** Where one record lies in the partial records file (its line and "\n"), and the counts the report needs. */
interface RecordLine {
  offset: number;
  bytes: number;
  promptTokens: number;
  responseTokens: number;
  stopped: boolean;
}

/**
 * The complete records of the partial records file, first of each index, streamed line by line (the file grows with
 * the prompt set). A torn tail (a crash mid-write: a line without "\n", cut JSON or a cut UTF-8 character) is cut
 * off the file, so appending continues on a line boundary.
 */
function scanRecords(file: string, total: number): Map<number, RecordLine> {
  const done = new Map<number, RecordLine>();
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
          offset: good, bytes,
          promptTokens: rec.prompt_ids?.length ?? 0, responseTokens: rec.response_ids?.length ?? 0, stopped: rec.finish === 'stop',
        });
      }
      good += bytes;
    }
  } catch (e) {
    // Bytes that are not UTF-8 or an endless line: the tail of a torn write, cut off below like a torn JSON line.
    if (!(e instanceof UserError)) throw e;
  }
  if (good < size) fs.truncateSync(file, good);
  return done;
}

/** The output file: each prompt's record line copied from the partial records file, in prompt order. */
function writeInPromptOrder(recordsFile: string, lines: Map<number, RecordLine>, total: number, outFile: string): void {
  if (lines.size !== total) throw new Error(`internal: ${lines.size} records for ${total} prompts`);
  const src = fs.openSync(recordsFile, 'r');
  const dst = fs.openSync(outFile, 'w');
  try {
    for (let i = 0; i < total; i++) {
      const at = lines.get(i)!;
      const buf = Buffer.alloc(at.bytes);
      if (fs.readSync(src, buf, 0, at.bytes, at.offset) !== at.bytes) throw new Error(`internal: record ${i} of ${recordsFile} is cut short`);
      fs.writeSync(dst, buf);
    }
  } finally {
    fs.closeSync(src);
    fs.closeSync(dst);
  }
}

export function runGenerateData(be: Backend, input: GenerateDataInput, hooks: GenerateDataHooks = {}, run: RunInfo = {}): GenerateDataReport {
  const t0 = performance.now();
  const s = resolveGenerateDataSettings(input);
  const inputs = { target: s.targetDir, prompts: s.promptsFile };
  // The output path first: a bad --out fails before the target is read.
  checkOutputPath({ out: s.outFile, kind: 'file', inputs, force: s.force });
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
  const manifestInputs = [describeModelDir('target', s.targetDir), describeInput('prompts', s.promptsFile)];
  const fingerprint = {
    inputs: Object.fromEntries(manifestInputs.map((i) => [i.role, inputIdentity(i)])),
    settings: { ...stamp, max_prompts: s.maxPrompts ?? null },
  };
  // A matching partial is always continued (rerunning the command resumes); a foreign one is refused.
  const rd = openRunDir({ out: s.outFile, kind: 'file', tool: 'dflash', command: 'generate-data', inputs, force: s.force, resume: true, fingerprint });
  const recordsFile = rd.path(RECORDS_FILE);
  let wroteRecords = false;
  let model: LoadedModel | null = null;
  try {
    const done = scanRecords(recordsFile, prompts.length);
    wroteRecords = done.size > 0;
    model = loadModel(be, s.targetDir);
    const eos = cfg.eosTokenIds.length > 0 ? cfg.eosTokenIds : tok.eosTokenId !== null ? [tok.eosTokenId] : [];
    let promptTokens = 0;
    let responseTokens = 0;
    let stoppedAtEos = 0;
    const pending: PendingPrompt[] = [];
    prompts.forEach((prompt, index) => {
      const prev = done.get(index);
      if (!prev) {
        pending.push({ index, prompt, ids: encoded[index] });
        return;
      }
      promptTokens += prev.promptTokens;
      responseTokens += prev.responseTokens;
      if (prev.stopped) stoppedAtEos++;
    });
    let finished = prompts.length - pending.length;
    let generated = 0;
    let genTokens = 0;
    hooks.onProgress?.(finished, prompts.length, 0);
    const tGen = performance.now();
    const fd = fs.openSync(recordsFile, 'a');
    try {
      regenerate(model.decoder, tok, pending, {
        maxNewTokens: s.maxNewTokens, temperature: s.temperature, stopTokenIds: s.ignoreEos ? [] : eos, seed: s.seed, batch: s.batch, stamp,
      }, (rec) => {
        // One write per record: a crash leaves at most one torn line, which the next run cuts off.
        fs.writeSync(fd, JSON.stringify(rec) + '\n');
        wroteRecords = true;
        generated++;
        genTokens += rec.response_ids.length;
        promptTokens += rec.prompt_ids.length;
        responseTokens += rec.response_ids.length;
        if (rec.finish === 'stop') stoppedAtEos++;
        finished++;
        hooks.onProgress?.(finished, prompts.length, genTokens);
      }, () => fs.fsyncSync(fd));
    } finally {
      fs.closeSync(fd);
    }
    const genSeconds = (performance.now() - tGen) / 1000;
    // The complete file in prompt order, exactly one record per prompt of this run.
    writeInPromptOrder(recordsFile, scanRecords(recordsFile, prompts.length), prompts.length, rd.file);
    fs.rmSync(recordsFile, { force: true });
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
      seconds,
      tokensPerSecond: genSeconds > 0 ? genTokens / genSeconds : 0,
    };
    rd.commit(createManifest({
      tool: 'dflash', version: run.toolVersion ?? 'unknown', command: 'generate-data', argv: run.argv,
      settings: { ...s, targetDir: path.resolve(s.targetDir), promptsFile: path.resolve(s.promptsFile), outFile: path.resolve(s.outFile), chatTemplateUsed: templated },
      seed: s.seed, device: be.device, backend: be.name, inputs: manifestInputs,
      metrics: { records: report.records, generated, resumed: report.resumed, promptTokens, responseTokens, stoppedAtEos },
      seconds: { total: seconds, generate: genSeconds },
    }));
    return report;
  } catch (e) {
    // Records of an interrupted run are kept for the rerun; a run that failed before any is cleaned up.
    if (wroteRecords) rd.release();
    else rd.discard();
    throw e;
  } finally {
    // `paro release` runs every stage in one process: the target must not stay on the GPU after this one.
    if (model) freeModelWeights(be, model.decoder.weights);
  }
}
