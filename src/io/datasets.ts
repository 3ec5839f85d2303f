// Text datasets: documents for calibration and perplexity, prompts for generation, and the token windows cut from
// them (the REFERENCE.md protocol: each document's tokens, then the eos id, all concatenated).

import { closeSync, fstatSync, openSync, readSync, statSync } from 'node:fs';
import { extname } from 'node:path';
import { UserError } from '../errors.js';
import type { ChatMessage, TextTokenizer } from './tokenizer.js';

export type Prompt = { kind: 'text'; prompt: string } | { kind: 'messages'; messages: ChatMessage[] };

// Text inputs are read in chunks, never whole: a device (/dev/zero), a FIFO or a huge file must not hang the command
// or exhaust memory, and a caller that needs only the first N tokens stops reading there (textDocuments).
const CHUNK_BYTES = 1 << 20;
/** Longest line of a .jsonl file or document of a .txt file, in UTF-16 units. */
export const MAX_LINE_CHARS = 64 * 2 ** 20;
/** Largest .json file (parsed whole). */
export const MAX_JSON_BYTES = 256 * 2 ** 20;
/** Most text read from one file when all of it is wanted (readTextDocuments, readPrompts). */
export const MAX_TOTAL_CHARS = 512 * 2 ** 20;

const mib = (n: number): string => `${Math.round(n / 2 ** 20)} MiB`;

/**
 * Checks that file is an existing regular file with one of the extensions before anything is read; returns the
 * extension. `what` names the file's role, e.g. "calibration file".
 */
export function checkTextInput(file: string, what: string, extensions: readonly string[], hint: string): string {
  let st;
  try {
    st = statSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new UserError(`the ${what} does not exist`, { file, cause: e });
    throw new UserError(`cannot read the ${what} (${code ?? String(e)})`, { file, cause: e });
  }
  if (st.isDirectory()) throw new UserError(`the ${what} is a directory, not a file`, { file });
  if (!st.isFile()) throw new UserError(`the ${what} is not a regular file (a device, FIFO or socket cannot be read as text)`, { file });
  const ext = extname(file).toLowerCase();
  if (!extensions.includes(ext)) {
    throw new UserError(`unsupported ${what} type "${ext}"; use ${hint}`, { file });
  }
  return ext;
}

/** The file's text in decoded chunks: UTF-8 checked, binary data (NUL bytes) refused, a leading BOM dropped. */
function* textChunks(file: string, what: string, maxChars: number): Generator<string> {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (e) {
    throw new UserError(`cannot read the ${what} (${(e as NodeJS.ErrnoException).code ?? String(e)})`, { file, cause: e });
  }
  try {
    // The kind again on the open descriptor: the path may have been swapped since the check.
    if (!fstatSync(fd).isFile()) throw new UserError(`the ${what} is not a regular file`, { file });
    const decoder = new TextDecoder('utf-8', { fatal: true });
    const buf = new Uint8Array(CHUNK_BYTES);
    let offset = 0;
    let chars = 0;
    for (;;) {
      let n: number;
      try {
        n = readSync(fd, buf, 0, buf.length, null);
      } catch (e) {
        throw new UserError(`cannot read the ${what} (${(e as NodeJS.ErrnoException).code ?? String(e)})`, { file, cause: e });
      }
      const bytes = buf.subarray(0, n);
      const nul = bytes.indexOf(0);
      if (nul >= 0) throw new UserError(`the ${what} holds a NUL byte at offset ${offset + nul}: binary data, not text`, { file });
      let text: string;
      try {
        text = decoder.decode(bytes, { stream: n > 0 });
      } catch {
        throw new UserError(`the ${what} is not UTF-8 text (an invalid byte sequence within bytes ${offset}..${offset + n})`, { file });
      }
      if (offset === 0 && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
      offset += n;
      chars += text.length;
      if (chars > maxChars) throw new UserError(`the ${what} holds more than ${mib(maxChars)} of text, more than this tool reads from one file`, { file });
      if (text !== '') yield text;
      if (n === 0) return;
    }
  } finally {
    closeSync(fd);
  }
}

/** Pieces of the text between separators (the last one possibly empty), each at most MAX_LINE_CHARS long. */
function* pieces(chunks: Iterable<string>, sep: string, file: string, unit: string): Generator<string> {
  let pending = '';
  let count = 0;
  const tooLong = (): never => {
    throw new UserError(`${unit} ${count + 1} is longer than ${mib(MAX_LINE_CHARS)} characters`, { file });
  };
  for (const chunk of chunks) {
    let start = 0;
    let at: number;
    while ((at = chunk.indexOf(sep, start)) >= 0) {
      const piece = pending + chunk.slice(start, at);
      if (piece.length > MAX_LINE_CHARS) tooLong();
      yield piece;
      pending = '';
      count++;
      start = at + 1;
    }
    pending += chunk.slice(start);
    if (pending.length > MAX_LINE_CHARS) tooLong();
  }
  yield pending;
}

/** Non-blank lines of a .jsonl stream, parsed, with their 1-based line numbers. */
function* jsonLines(file: string, lines: Iterable<string>): Generator<{ line: number; value: unknown }> {
  let i = 0;
  for (const raw of lines) {
    i++;
    const s = raw.trim();
    if (s === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(s);
    } catch (e) {
      throw new UserError(`line ${i}: invalid JSON (${(e as Error).message})`, { file, cause: e });
    }
    yield { line: i, value };
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const TEXT_EXTENSIONS = ['.jsonl', '.json', '.txt'];
const TEXT_HINT = '.jsonl ({"text": ...} per line), .json or .txt';

/**
 * Documents of a text file, read lazily (a consumer that stops early stops the reading):
 * - `.jsonl`: one `{"text": string}` per line (blank lines skipped);
 * - `.json`: an array of strings or of `{"text": string}` (at most MAX_JSON_BYTES, parsed whole);
 * - `.txt`: the whole file is one document, unless it holds form feeds (\f), which separate documents
 *   (blank lines are common inside prose and code, so they cannot mark document ends). Blank pieces are dropped.
 * The file's kind and extension are checked at the call; content errors come while iterating.
 */
export function textDocuments(file: string, what = 'text file', maxChars = Infinity): Iterable<string> {
  const ext = checkTextInput(file, what, TEXT_EXTENSIONS, TEXT_HINT);
  if (ext === '.json' && statSync(file).size > MAX_JSON_BYTES) {
    throw new UserError(`the ${what} is larger than ${mib(MAX_JSON_BYTES)}; use .jsonl (one {"text": ...} per line) for large sets`, { file });
  }
  return documentsOf(file, what, ext, maxChars);
}

function* documentsOf(file: string, what: string, ext: string, maxChars: number): Generator<string> {
  const chunks = textChunks(file, what, maxChars);
  let count = 0;
  if (ext === '.jsonl') {
    for (const { line, value } of jsonLines(file, pieces(chunks, '\n', file, 'line'))) {
      if (!isObject(value) || !('text' in value)) throw new UserError(`line ${line}: expected an object with a "text" field`, { file });
      if (typeof value.text !== 'string') throw new UserError(`line ${line}: "text" must be a string, got ${typeof value.text}`, { file });
      count++;
      yield value.text;
    }
  } else if (ext === '.json') {
    let value: unknown;
    try {
      value = JSON.parse([...chunks].join(''));
    } catch (e) {
      if (e instanceof UserError) throw e;
      throw new UserError(`invalid JSON (${(e as Error).message})`, { file, cause: e });
    }
    if (!Array.isArray(value)) throw new UserError('expected a JSON array of strings or of {"text": string}', { file });
    for (let i = 0; i < value.length; i++) {
      const item: unknown = value[i];
      count++;
      if (typeof item === 'string') yield item;
      else if (isObject(item) && typeof item.text === 'string') yield item.text;
      else throw new UserError(`item ${i}: expected a string or an object with a string "text" field`, { file });
    }
  } else {
    for (const piece of pieces(chunks, '\f', file, 'document')) {
      if (piece.trim() === '') continue;
      count++;
      yield piece;
    }
  }
  if (count === 0) throw new UserError('no documents in the file', { file });
}

/** Checks a documents file (calibration or evaluation data) before any work: exists, regular file, known extension. */
export function checkTextDocumentsFile(file: string, what = 'text file'): void {
  checkTextInput(file, what, TEXT_EXTENSIONS, TEXT_HINT);
}

/** All documents of a text file (see textDocuments), at most MAX_TOTAL_CHARS of text. */
export function readTextDocuments(file: string, what = 'text file'): string[] {
  return [...textDocuments(file, what, MAX_TOTAL_CHARS)];
}

/**
 * Each document encoded without special tokens, followed by eosId, all concatenated: [Σ (len_d + 1)].
 * With maxTokens, only that many leading tokens are produced (and later documents are not tokenized).
 */
export function tokenizeCorpus(docs: Iterable<string>, tok: TextTokenizer, eosId: number, opts: { maxTokens?: number } = {}): Int32Array {
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
export function readPrompts(file: string, what = 'prompts file'): Prompt[] {
  const ext = checkTextInput(file, what, ['.jsonl', '.txt'], '.jsonl ({"prompt": ...} or {"messages": [...]}) or .txt');
  const lines = pieces(textChunks(file, what, MAX_TOTAL_CHARS), '\n', file, 'line');
  const prompts: Prompt[] = [];
  if (ext === '.jsonl') {
    for (const { line, value } of jsonLines(file, lines)) {
      if (isObject(value) && 'prompt' in value) {
        if (typeof value.prompt !== 'string') throw new UserError(`line ${line}: "prompt" must be a string`, { file });
        prompts.push({ kind: 'text', prompt: value.prompt });
      } else if (isObject(value) && 'messages' in value) {
        prompts.push({ kind: 'messages', messages: parseMessages(value.messages, file, line) });
      } else {
        throw new UserError(`line ${line}: expected {"prompt": string} or {"messages": [{"role", "content"}, ...]}`, { file });
      }
    }
  } else {
    for (const raw of lines) {
      const s = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
      if (s.trim() !== '') prompts.push({ kind: 'text', prompt: s });
    }
  }
  if (prompts.length === 0) throw new UserError('no prompts in the file', { file });
  return prompts;
}
