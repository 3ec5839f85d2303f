// Text datasets: documents for calibration and perplexity, prompts for generation, and the token windows cut from
// them (the REFERENCE.md protocol: each document's tokens, then the eos id, all concatenated).

import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { UserError } from '../errors.js';
import type { ChatMessage, TextTokenizer } from './tokenizer.js';

export type Prompt = { kind: 'text'; prompt: string } | { kind: 'messages'; messages: ChatMessage[] };

function readText(file: string, what: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new UserError(`cannot read the ${what} (${(e as NodeJS.ErrnoException).code ?? String(e)})`, { file, cause: e });
  }
  // A UTF-8 byte-order mark is not part of the first document.
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/** Non-blank lines of a .jsonl file, parsed, with their 1-based line numbers. */
function* jsonLines(file: string, text: string): Generator<{ line: number; value: unknown }> {
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const s = lines[i].trim();
    if (s === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(s);
    } catch (e) {
      throw new UserError(`line ${i + 1}: invalid JSON (${(e as Error).message})`, { file, cause: e });
    }
    yield { line: i + 1, value };
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Documents of a text file:
 * - `.jsonl`: one `{"text": string}` per line (blank lines skipped);
 * - `.json`: an array of strings or of `{"text": string}`;
 * - `.txt`: the whole file is one document, unless it holds form feeds (\f), which separate documents
 *   (blank lines are common inside prose and code, so they cannot mark document ends). Blank pieces are dropped.
 */
export function readTextDocuments(file: string): string[] {
  const text = readText(file, 'text file');
  const ext = extname(file).toLowerCase();
  const docs: string[] = [];
  if (ext === '.jsonl') {
    for (const { line, value } of jsonLines(file, text)) {
      if (!isObject(value) || !('text' in value)) throw new UserError(`line ${line}: expected an object with a "text" field`, { file });
      if (typeof value.text !== 'string') throw new UserError(`line ${line}: "text" must be a string, got ${typeof value.text}`, { file });
      docs.push(value.text);
    }
  } else if (ext === '.json') {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (e) {
      throw new UserError(`invalid JSON (${(e as Error).message})`, { file, cause: e });
    }
    if (!Array.isArray(value)) throw new UserError('expected a JSON array of strings or of {"text": string}', { file });
    value.forEach((item: unknown, i) => {
      if (typeof item === 'string') docs.push(item);
      else if (isObject(item) && typeof item.text === 'string') docs.push(item.text);
      else throw new UserError(`item ${i}: expected a string or an object with a string "text" field`, { file });
    });
  } else if (ext === '.txt') {
    for (const piece of text.split('\f')) if (piece.trim() !== '') docs.push(piece);
  } else {
    throw new UserError(`unsupported text file type "${ext}"; use .jsonl ({"text": ...} per line), .json or .txt`, { file });
  }
  if (docs.length === 0) throw new UserError('no documents in the file', { file });
  return docs;
}

/**
 * Each document encoded without special tokens, followed by eosId, all concatenated: [Σ (len_d + 1)].
 * With maxTokens, only that many leading tokens are produced (and later documents are not tokenized).
 */
export function tokenizeCorpus(docs: string[], tok: TextTokenizer, eosId: number, opts: { maxTokens?: number } = {}): Int32Array {
  const limit = opts.maxTokens ?? Infinity;
  const parts: number[][] = [];
  let total = 0;
  for (const doc of docs) {
    if (total >= limit) break;
    const ids = tok.encode(doc, { addSpecialTokens: false });
    ids.push(eosId);
    parts.push(ids);
    total += ids.length;
  }
  const out = new Int32Array(Math.min(total, limit));
  let at = 0;
  for (const ids of parts) {
    const n = Math.min(ids.length, out.length - at);
    for (let i = 0; i < n; i++) out[at + i] = ids[i];
    at += n;
  }
  return out;
}

/** Starts of the perplexity windows: 0, seqLen, 2·seqLen, … while start < min(n − seqLen − 1, maxWindows·seqLen). */
export function perplexityWindows(n: number, seqLen: number, maxWindows: number): number[] {
  const end = Math.min(n - seqLen - 1, maxWindows * seqLen);
  const starts: number[] = [];
  for (let i = 0; i < end; i += seqLen) starts.push(i);
  return starts;
}

/** splitmix32: a small seeded generator for window shuffling, uniform in [0, 1). */
function splitmix32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return ((z ^ (z >>> 16)) >>> 0) / 4294967296;
  };
}

/**
 * Calibration samples: non-overlapping windows of seqLen tokens, the first nTrain for training and the next nVal for
 * validation (the reference recipe). With shuffleSeed, the windows are drawn instead from a seeded permutation of all
 * non-overlapping windows of the text (train = first nTrain of it, val = the next nVal). Each window is a copy.
 */
export function calibrationWindows(
  tokens: Int32Array, seqLen: number, nTrain: number, nVal: number, opts: { shuffleSeed?: number } = {},
): { train: Int32Array[]; val: Int32Array[] } {
  if (!Number.isInteger(seqLen) || seqLen <= 0) throw new UserError(`the sample length must be a positive integer, got ${seqLen}`);
  if (!Number.isInteger(nTrain) || nTrain < 0 || !Number.isInteger(nVal) || nVal < 0) {
    throw new UserError(`sample counts must be non-negative integers, got ${nTrain} training and ${nVal} validation`);
  }
  const available = Math.floor(tokens.length / seqLen);
  const needed = nTrain + nVal;
  if (available === 0) {
    throw new UserError(`the calibration text has ${tokens.length} tokens; one sample needs ${seqLen}`);
  }
  if (available < needed) {
    throw new UserError(
      `the calibration text has ${tokens.length} tokens, which make ${available} samples of ${seqLen}; ` +
        `${needed} are needed (${nTrain} training + ${nVal} validation), i.e. ${needed * seqLen} tokens`,
    );
  }
  const order = Array.from({ length: available }, (_, i) => i);
  if (opts.shuffleSeed !== undefined) {
    const rand = splitmix32(opts.shuffleSeed);
    for (let i = available - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [order[i], order[j]] = [order[j], order[i]];
    }
  }
  const take = (k: number): Int32Array => tokens.slice(order[k] * seqLen, (order[k] + 1) * seqLen);
  const train: Int32Array[] = [];
  const val: Int32Array[] = [];
  for (let k = 0; k < nTrain; k++) train.push(take(k));
  for (let k = nTrain; k < needed; k++) val.push(take(k));
  return { train, val };
}

function parseMessages(v: unknown, file: string, line: number): ChatMessage[] {
  if (!Array.isArray(v) || v.length === 0) throw new UserError(`line ${line}: "messages" must be a non-empty list`, { file });
  return v.map((m: unknown, i) => {
    if (!isObject(m) || typeof m.role !== 'string' || typeof m.content !== 'string') {
      throw new UserError(`line ${line}: messages[${i}] must be {"role": string, "content": string}`, { file });
    }
    return { role: m.role, content: m.content };
  });
}

/**
 * Prompts for generation: `.jsonl` with `{"prompt": string}` or `{"messages": [{role, content}, ...]}` per line,
 * or `.txt` with one prompt per line (empty lines skipped).
 */
export function readPrompts(file: string): Prompt[] {
  const text = readText(file, 'prompts file');
  const ext = extname(file).toLowerCase();
  const prompts: Prompt[] = [];
  if (ext === '.jsonl') {
    for (const { line, value } of jsonLines(file, text)) {
      if (isObject(value) && 'prompt' in value) {
        if (typeof value.prompt !== 'string') throw new UserError(`line ${line}: "prompt" must be a string`, { file });
        prompts.push({ kind: 'text', prompt: value.prompt });
      } else if (isObject(value) && 'messages' in value) {
        prompts.push({ kind: 'messages', messages: parseMessages(value.messages, file, line) });
      } else {
        throw new UserError(`line ${line}: expected {"prompt": string} or {"messages": [{"role", "content"}, ...]}`, { file });
      }
    }
  } else if (ext === '.txt') {
    for (const raw of text.split('\n')) {
      const s = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
      if (s.trim() !== '') prompts.push({ kind: 'text', prompt: s });
    }
  } else {
    throw new UserError(`unsupported prompts file type "${ext}"; use .jsonl ({"prompt": ...} or {"messages": [...]}) or .txt`, { file });
  }
  if (prompts.length === 0) throw new UserError('no prompts in the file', { file });
  return prompts;
}
