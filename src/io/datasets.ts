// Text datasets: documents for calibration and perplexity, prompts for generation, records for drafter training, and
// the token windows cut from them (the REFERENCE.md protocol: each document's tokens, then the eos id, all concatenated).
// Files may be .jsonl, .json, .txt, their .gz forms, or .parquet (Hugging Face datasets); gzip and parquet are read by a
// worker (io/worker-source.ts) so the readers stay synchronous and streamed.

import { closeSync, fstatSync, openSync, readSync, statSync } from 'node:fs';
import { basename, extname } from 'node:path';
import { UserError } from '../errors.js';
import { normalizeChatRecord, promptTurns } from './chat-records.js';
import type { ChatMessage, TextTokenizer } from './tokenizer.js';
import { gunzipChunks, parquetRows, type ParquetColumn } from './worker-source.js';

export type Prompt = { kind: 'text'; prompt: string } | { kind: 'messages'; messages: ChatMessage[] };

// Text inputs are read in chunks, never whole: a device (/dev/zero), a FIFO, a huge file or a gzip bomb must not hang
// the command or exhaust memory, and a caller that needs only the first N tokens stops reading there (textDocuments).
const CHUNK_BYTES = 1 << 20;
/** Longest line of a .jsonl file or document of a .txt file, in UTF-16 units. */
export const MAX_LINE_CHARS = 64 * 2 ** 20;
/** Largest .json file (parsed whole); for .json.gz, the most decompressed text. */
export const MAX_JSON_BYTES = 256 * 2 ** 20;
/** Most text read from one file when all of it is wanted (readTextDocuments, readPrompts). */
export const MAX_TOTAL_CHARS = 512 * 2 ** 20;

const mib = (n: number): string => `${Math.round(n / 2 ** 20)} MiB`;

/** The file's extension, lowercased, with a .gz suffix kept whole: "data.JSONL.gz" -> ".jsonl.gz". */
export function dataExtension(file: string): string {
  const name = basename(file).toLowerCase();
  if (name.endsWith('.gz')) return extname(name.slice(0, -3)) + '.gz';
  return extname(name);
}

/**
 * Checks that file is an existing regular file with one of the extensions before anything is read; returns the
 * extension (see dataExtension). `what` names the file's role, e.g. "calibration file".
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
  const ext = dataExtension(file);
  if (!extensions.includes(ext)) {
    throw new UserError(`unsupported ${what} type "${ext}"; use ${hint}`, { file });
  }
  if (ext === '.parquet') checkParquetMagic(file, what);
  return ext;
}

/** Both ends of a parquet file carry PAR1: a clearer message than the reader's for a wrong or cut-short file. */
function checkParquetMagic(file: string, what: string): void {
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    const head = Buffer.alloc(4);
    const tail = Buffer.alloc(4);
    if (size >= 12) {
      readSync(fd, head, 0, 4, 0);
      readSync(fd, tail, 0, 4, size - 4);
    }
    if (head.toString('latin1') !== 'PAR1') throw new UserError(`the ${what} is not a parquet file (no PAR1 header)`, { file });
    if (tail.toString('latin1') !== 'PAR1') throw new UserError(`the ${what} is a truncated parquet file (no PAR1 footer)`, { file });
  } finally {
    closeSync(fd);
  }
}

/** The bytes of a regular file in chunks of CHUNK_BYTES (the buffer is reused: each chunk is valid until the next). */
function* fileBytes(file: string, what: string): Generator<Uint8Array> {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (e) {
    throw new UserError(`cannot read the ${what} (${(e as NodeJS.ErrnoException).code ?? String(e)})`, { file, cause: e });
  }
  try {
    // The kind again on the open descriptor: the path may have been swapped since the check.
    if (!fstatSync(fd).isFile()) throw new UserError(`the ${what} is not a regular file`, { file });
    const buf = new Uint8Array(CHUNK_BYTES);
    for (;;) {
      let n: number;
      try {
        n = readSync(fd, buf, 0, buf.length, null);
      } catch (e) {
        throw new UserError(`cannot read the ${what} (${(e as NodeJS.ErrnoException).code ?? String(e)})`, { file, cause: e });
      }
      if (n === 0) return;
      yield buf.subarray(0, n);
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * The text of a file (decompressed when gz) in decoded chunks: UTF-8 checked, binary data (NUL bytes) refused, a
 * leading BOM dropped, at most maxChars (checked as the text arrives, so a gzip bomb stops at the limit).
 */
function* textChunks(file: string, what: string, maxChars: number, gz = false): Generator<string> {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let offset = 0;
  let chars = 0;
  const decode = (bytes: Uint8Array, stream: boolean): string => {
    try {
      return decoder.decode(bytes, { stream });
    } catch {
      throw new UserError(`the ${what} is not UTF-8 text (an invalid byte sequence within bytes ${offset}..${offset + bytes.length})`, { file });
    }
  };
  const count = (text: string): void => {
    chars += text.length;
    if (chars > maxChars) throw new UserError(`the ${what} holds more than ${mib(maxChars)} of text, more than this tool reads from one file`, { file });
  };
  for (const bytes of gz ? gunzipChunks(file, what) : fileBytes(file, what)) {
    const nul = bytes.indexOf(0);
    if (nul >= 0) throw new UserError(`the ${what} holds a NUL byte at offset ${offset + nul}: binary data, not text`, { file });
    let text = decode(bytes, true);
    if (offset === 0 && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    offset += bytes.length;
    count(text);
    if (text !== '') yield text;
  }
  const rest = decode(new Uint8Array(0), false);
  count(rest);
  if (rest !== '') yield rest;
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

const TEXT_EXTENSIONS = ['.jsonl', '.jsonl.gz', '.json', '.json.gz', '.txt', '.txt.gz', '.parquet'];
const TEXT_HINT = '.jsonl ({"text": ...} per line), .json, .txt, their .gz forms, or .parquet (a "text" column)';

/**
 * Documents of a text file, read lazily (a consumer that stops early stops the reading):
 * - `.jsonl`: one `{"text": string}` per line (blank lines skipped);
 * - `.json`: an array of strings or of `{"text": string}` (at most MAX_JSON_BYTES, parsed whole);
 * - `.txt`: the whole file is one document, unless it holds form feeds (\f), which separate documents
 *   (blank lines are common inside prose and code, so they cannot mark document ends). Blank pieces are dropped;
 * - the same gzip-compressed (`.jsonl.gz`, `.json.gz`, `.txt.gz`), decompressed as it is read, under the same bounds;
 * - `.parquet`: the strings of its "text" column, or of its only string column (null cells skipped).
 * The file's kind and extension are checked at the call; content errors come while iterating.
 */
export function textDocuments(file: string, what = 'text file', maxChars = Infinity): Iterable<string> {
  const ext = checkTextInput(file, what, TEXT_EXTENSIONS, TEXT_HINT);
  if (ext === '.json' && statSync(file).size > MAX_JSON_BYTES) {
    throw new UserError(`the ${what} is larger than ${mib(MAX_JSON_BYTES)}; use .jsonl (one {"text": ...} per line) for large sets`, { file });
  }
  if (ext === '.parquet') return parquetDocuments(file, what, maxChars);
  const gz = ext.endsWith('.gz');
  const plain = gz ? ext.slice(0, -3) : ext;
  return documentsOf(file, what, plain, plain === '.json' ? Math.min(maxChars, MAX_JSON_BYTES) : maxChars, gz);
}

function* documentsOf(file: string, what: string, ext: string, maxChars: number, gz: boolean): Generator<string> {
  const chunks = textChunks(file, what, maxChars, gz);
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

/** The text column of a parquet file: "text", else its only string column. */
function textColumn(file: string, what: string, columns: ParquetColumn[]): string {
  const text = columns.filter((c) => c.text).map((c) => c.name);
  const named = columns.find((c) => c.name === 'text');
  if (named) {
    if (!named.text) throw new UserError(`the ${what}'s "text" column does not hold strings`, { file });
    return 'text';
  }
  if (text.length === 1) return text[0];
  throw new UserError(`the ${what} has no "text" column and ${text.length === 0 ? 'no string column' : `several string columns (${text.join(', ')})`}; ` +
    'name the text column "text"', { file });
}

function* parquetDocuments(file: string, what: string, maxChars: number): Generator<string> {
  let column = '';
  let chars = 0;
  let count = 0;
  for (const { row, value } of parquetRows(file, what, (cols) => [(column = textColumn(file, what, cols))])) {
    const v = value[column];
    if (v === null || v === undefined) continue;
    if (typeof v !== 'string') throw new UserError(`row ${row}: column "${column}" is not a string`, { file });
    if (v.length > MAX_LINE_CHARS) throw new UserError(`row ${row} is longer than ${mib(MAX_LINE_CHARS)} characters`, { file });
    chars += v.length;
    if (chars > maxChars) throw new UserError(`the ${what} holds more than ${mib(maxChars)} of text, more than this tool reads from one file`, { file });
    count++;
    yield v;
  }
  if (count === 0) throw new UserError('no documents in the file', { file });
}

/** Checks a documents file (calibration or evaluation data) before any work: exists, regular file, known extension. */
export function checkTextDocumentsFile(file: string, what = 'text file'): void {
  checkTextInput(file, what, TEXT_EXTENSIONS, TEXT_HINT);
}

/** One record of a data file: a parsed JSON line (1-based line) or a parquet row (0-based row). */
export interface DataRecord {
  value: unknown;
  line?: number;
  row?: number;
}

/** Extensions of record files (prompts, training data). */
export const RECORD_EXTENSIONS = ['.jsonl', '.jsonl.gz', '.parquet'];

/**
 * The records of a `.jsonl` / `.jsonl.gz` file (one JSON value per non-blank line) or of a `.parquet` file (one object
 * per row, its columns as keys), streamed. The file's kind and extension are checked at the call.
 */
export function dataRecords(file: string, what: string, hint: string, maxChars = Infinity): Iterable<DataRecord> {
  const ext = checkTextInput(file, what, RECORD_EXTENSIONS, hint);
  return recordsOf(file, what, ext, maxChars);
}

function* recordsOf(file: string, what: string, ext: string, maxChars: number): Generator<DataRecord> {
  if (ext === '.parquet') {
    for (const { row, value } of parquetRows(file, what)) yield { value, row };
    return;
  }
  yield* jsonLines(file, pieces(textChunks(file, what, maxChars, ext === '.jsonl.gz'), '\n', file, 'line'));
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

const PROMPTS_HINT = '.jsonl, .jsonl.gz or .parquet ({"prompt"}, {"messages": [...]} or {"conversations": [...]} per record) or .txt';

/**
 * Prompts for generation: records of `.jsonl`, `.jsonl.gz` or `.parquet` in any shape io/chat-records knows
 * (`{"prompt"}`, `{"text"}`, OpenAI `{"messages"}`, ShareGPT `{"conversations"}`; multi-turn conversations are cut after
 * their last user turn: the target writes the answer), or `.txt` with one prompt per line (empty lines skipped).
 * A single user turn is a text prompt (raw-text encoding remains possible); longer conversations are messages.
 */
export function readPrompts(file: string, what = 'prompts file'): Prompt[] {
  const ext = checkTextInput(file, what, [...RECORD_EXTENSIONS, '.txt'], PROMPTS_HINT);
  const prompts: Prompt[] = [];
  if (ext !== '.txt') {
    for (const { value, line, row } of recordsOf(file, what, ext, MAX_TOTAL_CHARS)) {
      const record = normalizeChatRecord(value, { file, line, row });
      if (record.kind === 'text') {
        prompts.push({ kind: 'text', prompt: record.text });
        continue;
      }
      const turns = promptTurns(record);
      const at = line !== undefined ? `line ${line}` : `row ${row}`;
      if (!turns) throw new UserError(`${at}: the conversation has no user turn to answer`, { file });
      if (turns.length === 1) prompts.push({ kind: 'text', prompt: turns[0].content });
      else prompts.push({ kind: 'messages', messages: turns.map((t) => ({ role: t.role, content: t.content })) });
    }
  } else {
    for (const raw of pieces(textChunks(file, what, MAX_TOTAL_CHARS), '\n', file, 'line')) {
      const s = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
      if (s.trim() !== '') prompts.push({ kind: 'text', prompt: s });
    }
  }
  if (prompts.length === 0) throw new UserError('no prompts in the file', { file });
  return prompts;
}
