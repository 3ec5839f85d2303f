// `dflash generate-data` (dflash-spec §3.1): the target regenerates the response of every prompt with KV-cached
// decoding (greedy or temperature sampling), prompts encoded as served (chat template when present, raw continuation
// otherwise). Records {index, prompt|messages, response, prompt_ids, response_ids, finish, gen} go one per line to
// "<out>.partial" as prompts finish; a rerun resumes from it (done indices skipped). When all are done, <out> is
// written in prompt order (atomically) and the partial file removed.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Backend } from '../engine/backend.js';
import { loadModel } from '../model/load.js';
import { loadTokenizer } from '../io/tokenizer.js';
import { readPrompts } from '../io/datasets.js';
import { UserError } from '../errors.js';
import { encodePrompt, type PromptEncoding } from './prompts.js';
import { batchGenerate } from './batch-decode.js';
import { prepareOutput } from '../io/atomic-output.js';

export interface GenerateDataSettings {
  targetDir: string;
  promptsFile: string;
  outFile: string;
  maxNewTokens: number;
  temperature: number;
  ignoreEos: boolean;
  seed: number;
  encoding: PromptEncoding;
  force: boolean;
  /** Only the first n prompts. */
  maxPrompts?: number;
  /** Prompts decoded together (default 32). */
  batch?: number;
}

export interface GenerateDataReport {
  command: 'dflash generate-data';
  target: string;
  prompts: string;
  out: string;
  device: string;
  backend: string;
  records: number;
  /** Records found in the partial file from an earlier run and kept. */
  resumed: number;
  generated: number;
  promptTokens: number;
  responseTokens: number;
  stoppedAtEos: number;
  chatTemplate: boolean;
  seconds: number;
  tokensPerSecond: number;
}

/** The generation settings stored in every record; a resume with different ones is refused. */
interface GenStamp {
  max_new_tokens: number;
  temperature: number;
  ignore_eos: boolean;
  seed: number;
  chat_template: boolean;
  enable_thinking: boolean | null;
}

/** Seed of prompt i's sampling: independent of which prompts ran before (resumable). */
export function promptSeed(seed: number, index: number): number {
  return (Math.imul(seed, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b)) | 0;
}

/** Complete records of a partial file; a torn last line (crash mid-write) is cut off the file. */
function readPartial(file: string, stamp: GenStamp): Map<number, unknown> {
  const done = new Map<number, unknown>();
  if (!fs.existsSync(file)) return done;
  const text = fs.readFileSync(file, 'utf8');
  let good = 0;
  let pos = 0;
  while (pos < text.length) {
    const nl = text.indexOf('\n', pos);
    if (nl < 0) break; // no newline: torn write
    const line = text.slice(pos, nl);
    let rec: { index?: unknown; gen?: unknown };
    try {
      rec = JSON.parse(line) as { index?: unknown; gen?: unknown };
    } catch {
      break;
    }
    if (typeof rec.index !== 'number') break;
    if (JSON.stringify(rec.gen) !== JSON.stringify(stamp)) {
      throw new UserError(`the unfinished output was generated with other settings (${JSON.stringify(rec.gen)}); pass --force to start over`, { file });
    }
    done.set(rec.index, rec);
    pos = nl + 1;
    good = Buffer.byteLength(text.slice(0, pos));
  }
  if (good < Buffer.byteLength(text)) fs.truncateSync(file, good);
  return done;
}

export function runGenerateData(be: Backend, s: GenerateDataSettings, onProgress?: (done: number, total: number, tokens: number) => void): GenerateDataReport {
  const t0 = performance.now();
  const out = path.resolve(s.outFile);
  const partial = `${out}.partial`;
  if (fs.existsSync(out)) {
    if (!s.force) throw new UserError('exists; pass --force to overwrite', { file: s.outFile });
  }
  if (s.force) fs.rmSync(partial, { force: true });
  const model = loadModel(be, s.targetDir);
  const tok = loadTokenizer(s.targetDir);
  let prompts = readPrompts(s.promptsFile);
  if (s.maxPrompts !== undefined) prompts = prompts.slice(0, s.maxPrompts);
  const templated = s.encoding.chatTemplate === 'auto' && tok.hasChatTemplate;
  const stamp: GenStamp = {
    max_new_tokens: s.maxNewTokens, temperature: s.temperature, ignore_eos: s.ignoreEos, seed: s.seed,
    chat_template: templated, enable_thinking: s.encoding.enableThinking ?? null,
  };
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const done = readPartial(partial, stamp);
  const eos = model.cfg.eosTokenIds.length > 0 ? model.cfg.eosTokenIds : tok.eosTokenId !== null ? [tok.eosTokenId] : [];
  const stopTokenIds = s.ignoreEos ? [] : eos;
  const stopSet = new Set(stopTokenIds);
  let promptTokens = 0;
  let responseTokens = 0;
  let stoppedAtEos = 0;
  let generated = 0;
  let genTokens = 0;
  const tGen = performance.now();
  // Records already in the partial file count as done; the rest run in groups of `batch` prompts decoded together.
  const encoded = new Map<number, Int32Array>();
  const pending: number[] = [];
  prompts.forEach((p, i) => {
    const prev = done.get(i) as { prompt_ids?: number[]; response_ids?: number[]; finish?: string } | undefined;
    if (prev) {
      promptTokens += prev.prompt_ids?.length ?? 0;
      responseTokens += prev.response_ids?.length ?? 0;
      if (prev.finish === 'stop') stoppedAtEos++;
      return;
    }
    const enc = encodePrompt(tok, p, s.encoding);
    if (enc.ids.length === 0) throw new UserError(`prompt ${i + 1} encodes to no tokens`, { file: s.promptsFile });
    encoded.set(i, enc.ids);
    pending.push(i);
  });
  let finished = prompts.length - pending.length;
  onProgress?.(finished, prompts.length, 0);
  const fd = fs.openSync(partial, 'a');
  try {
    const batch = Math.max(1, s.batch ?? 32);
    for (let g = 0; g < pending.length; g += batch) {
      const group = pending.slice(g, g + batch);
      batchGenerate(model.decoder, group.map((i) => encoded.get(i)!), {
        maxNewTokens: s.maxNewTokens, temperature: s.temperature, stopTokenIds, seeds: group.map((i) => promptSeed(s.seed, i)),
      }, (k, outputIds) => {
        const i = group[k];
        const p = prompts[i];
        const ids = encoded.get(i)!;
        const finish = outputIds.length > 0 && stopSet.has(outputIds[outputIds.length - 1]) ? 'stop' : 'length';
        const rec = {
          index: i,
          ...(p.kind === 'text' ? { prompt: p.prompt } : { messages: p.messages }),
          response: tok.decode(outputIds, { skipSpecialTokens: false }),
          prompt_ids: Array.from(ids),
          response_ids: outputIds,
          finish,
          gen: stamp,
        };
        // One write per record: a crash leaves at most one torn line, which the next run cuts off.
        fs.writeSync(fd, JSON.stringify(rec) + '\n');
        generated++;
        genTokens += outputIds.length;
        promptTokens += ids.length;
        responseTokens += outputIds.length;
        if (finish === 'stop') stoppedAtEos++;
        finished++;
        onProgress?.(finished, prompts.length, genTokens);
      });
      fs.fsyncSync(fd);
    }
  } finally {
    fs.closeSync(fd);
  }
  const genSeconds = (performance.now() - tGen) / 1000;
  // The complete file, in prompt order, replaces <out> atomically; the partial file goes away afterwards.
  const lines = fs.readFileSync(partial, 'utf8').split('\n').filter((l) => l !== '');
  lines.sort((a, b) => (JSON.parse(a) as { index: number }).index - (JSON.parse(b) as { index: number }).index);
  const final = prepareOutput(out, { force: true, kind: 'file' });
  try {
    fs.writeFileSync(final.tmpPath, lines.join('\n') + '\n');
    final.commit();
  } catch (e) {
    final.abort();
    throw e;
  }
  fs.rmSync(partial, { force: true });
  return {
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
    seconds: (performance.now() - t0) / 1000,
    tokensPerSecond: genSeconds > 0 ? genTokens / genSeconds : 0,
  };
}
