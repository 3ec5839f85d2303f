// Synchronous, pull-based reading of sources whose Node.js readers are asynchronous: gzip streams (node:zlib has no
// streaming synchronous API) and parquet files (hyparquet's API is async). The jobs that read data are synchronous, so a
// worker thread does the async reading and hands over one piece per request while the main thread blocks on
// Atomics.wait (io/sync-worker.ts). The worker reads the next piece only when asked: a consumer that
// stops early (a gzip bomb hitting a size limit, a tokenizer with enough tokens) stops the reading, and memory stays at
// one piece. The worker's heap is capped, so a pathological row group ends the worker, not the process.
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { receiveMessageOnPort } from 'node:worker_threads';
import { UserError } from '../errors.js';
import { startSyncWorker, waitWhile } from './sync-worker.js';

/** Time for one piece (a 64 KiB gzip chunk, or a parquet row group decoded and sliced). */
const PIECE_TIMEOUT_MS = 300_000;
/** Heap of the reading worker: a parquet row group must fit in it. */
const WORKER_HEAP_MB = 2048;
/** Rows handed over per parquet piece. */
const ROWS_PER_PIECE = 512;
/** Bytes per gzip piece (decompressed). */
const GZIP_CHUNK = 1 << 16;

// Control word: a request is pending, or it is answered.
const PENDING = 0;
const ANSWERED = 1;

type Answer<T> = { value: T } | { done: true } | { error: string };

const WORKER_SOURCE = `'use strict';
const { workerData } = require('node:worker_threads');
const fs = require('node:fs');
const zlib = require('node:zlib');
const { pipeline } = require('node:stream');
const ctrl = new Int32Array(workerData.ctrl);
const port = workerData.port;

async function* gunzipPieces(file) {
  const gz = zlib.createGunzip({ chunkSize: ${GZIP_CHUNK} });
  pipeline(fs.createReadStream(file, { highWaterMark: ${GZIP_CHUNK} }), gz, () => {});
  for await (const chunk of gz) yield new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}

// BigInt (INT64 columns) becomes a number when it is exact, else a decimal string; typed arrays become plain lists.
function plain(v) {
  if (typeof v === 'bigint') return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString();
  if (ArrayBuffer.isView(v) && !(v instanceof DataView)) return Array.from(v, plain);
  if (Array.isArray(v)) return v.map(plain);
  if (v instanceof Date) return v.toISOString();
  if (v !== null && typeof v === 'object') {
    const o = {};
    for (const k of Object.keys(v)) o[k] = plain(v[k]);
    return o;
  }
  return v;
}

async function* parquetPieces(file, columns) {
  const hp = await import(workerData.hyparquet);
  const { compressors } = await import(workerData.compressors);
  const buffer = await hp.asyncBufferFromFile(file);
  let meta;
  try {
    meta = await hp.parquetMetadataAsync(buffer);
  } catch (e) {
    throw new Error('unreadable parquet footer: ' + ((e && e.message) || e));
  }
  yield { schema: meta.schema.map((s) => ({ name: s.name, type: s.type, children: s.num_children || 0, logical: s.logical_type ? s.logical_type.type : undefined, converted: s.converted_type })) };
  let start = 0;
  for (const group of meta.row_groups) {
    const end = start + Number(group.num_rows);
    let rows;
    try {
      rows = await hp.parquetReadObjects({ file: buffer, metadata: meta, columns: columns || undefined, rowStart: start, rowEnd: end, compressors });
    } catch (e) {
      throw new Error('cannot decode rows ' + start + '..' + (end - 1) + ': ' + ((e && e.message) || e));
    }
    for (let i = 0; i < rows.length; i += ${ROWS_PER_PIECE}) yield { rows: rows.slice(i, i + ${ROWS_PER_PIECE}).map(plain), first: start + i };
    start = end;
  }
}

const it = workerData.kind === 'gzip' ? gunzipPieces(workerData.file) : parquetPieces(workerData.file, workerData.columns);
port.on('message', async () => {
  let answer;
  try {
    const r = await it.next();
    answer = r.done ? { done: true } : { value: r.value };
  } catch (e) {
    answer = { error: String((e && e.message) || e).split('\\n')[0] };
  }
  port.postMessage(answer);
  Atomics.store(ctrl, 0, ${ANSWERED});
  Atomics.notify(ctrl, 0);
});
`;

function resolveModule(name: string): string {
  try {
    return pathToFileURL(createRequire(import.meta.url).resolve(name)).href;
  } catch {
    return '';
  }
}

/** Pieces produced by a worker, pulled one at a time; the worker ends when the consumer stops or reading fails. */
function* workerPieces<T>(data: Record<string, unknown>, file: string, what: string): Generator<T> {
  const { worker, port, ctrl } = startSyncWorker(WORKER_SOURCE, { ...data, file }, { initial: PENDING, heapMb: WORKER_HEAP_MB, youngMb: 64 });
  try {
    for (;;) {
      Atomics.store(ctrl, 0, PENDING);
      port.postMessage(null);
      if (!waitWhile(ctrl, PENDING, PIECE_TIMEOUT_MS)) {
        throw new UserError(`reading the ${what} stopped: no progress within ${PIECE_TIMEOUT_MS / 1000} s or more than the reader's ` +
          `${WORKER_HEAP_MB} MiB of memory needed for one piece`, { file });
      }
      const msg = receiveMessageOnPort(port);
      if (!msg) throw new UserError(`reading the ${what} failed: the reader gave no answer`, { file });
      const answer = msg.message as Answer<T>;
      if ('error' in answer) throw new UserError(`cannot read the ${what}: ${answer.error}`, { file });
      if ('done' in answer) return;
      yield answer.value;
    }
  } finally {
    void worker.terminate();
    port.close();
  }
}

/** The decompressed bytes of a .gz file in chunks of at most 64 KiB, read as they are consumed. */
export function gunzipChunks(file: string, what: string): Generator<Uint8Array> {
  return workerPieces<Uint8Array>({ kind: 'gzip' }, file, what);
}

export interface ParquetColumn {
  name: string;
  /** UTF-8 string column (logical STRING / converted UTF8, or a plain BYTE_ARRAY). */
  text: boolean;
}

/** One parquet row with its 0-based row number. */
export interface ParquetRow {
  row: number;
  value: Record<string, unknown>;
}

interface SchemaPiece { schema: { name: string; type?: string; children: number; logical?: string; converted?: string }[] }
interface RowsPiece { rows: Record<string, unknown>[]; first: number }

function topLevel(schema: SchemaPiece['schema']): ParquetColumn[] {
  const out: ParquetColumn[] = [];
  const skip = (i: number): number => {
    let next = i + 1;
    for (let c = 0; c < schema[i].children; c++) next = skip(next);
    return next;
  };
  for (let i = 1; i < schema.length; i = skip(i)) {
    const el = schema[i];
    const text = el.children === 0 && el.type === 'BYTE_ARRAY' &&
      (el.logical !== undefined ? el.logical === 'STRING' : el.converted === undefined || el.converted === 'UTF8');
    out.push({ name: el.name, text });
  }
  return out;
}

/**
 * The rows of a parquet file, read one row group at a time as they are consumed (integers as numbers, lists as
 * arrays). pick chooses the columns to decode from the file's top-level columns (all when it returns undefined); it
 * runs before any row is read, so a missing column is reported at once.
 */
export function* parquetRows(file: string, what: string, pick?: (columns: ParquetColumn[]) => string[] | undefined): Generator<ParquetRow> {
  const hyparquet = resolveModule('hyparquet');
  const compressors = resolveModule('hyparquet-compressors');
  if (!hyparquet || !compressors) throw new UserError(`cannot read the ${what}: the hyparquet packages are not installed`, { file });
  // The schema comes first; the columns to decode are then fixed for a second reader (the footer is read twice: cheap).
  let columns: string[] | undefined;
  if (pick) {
    const schemaReader = workerPieces<SchemaPiece>({ kind: 'parquet', hyparquet, compressors, columns: [] }, file, what);
    let first: IteratorResult<SchemaPiece>;
    try {
      first = schemaReader.next();
    } finally {
      schemaReader.return(undefined); // ends the worker
    }
    if (first.done) throw new UserError(`cannot read the ${what}: no parquet schema`, { file });
    columns = pick(topLevel(first.value.schema));
  }
  const pieces = workerPieces<SchemaPiece | RowsPiece>({ kind: 'parquet', hyparquet, compressors, columns: columns ?? null }, file, what);
  for (const piece of pieces) {
    if (!('rows' in piece)) continue;
    for (let i = 0; i < piece.rows.length; i++) yield { row: piece.first + i, value: piece.rows[i] };
  }
}
