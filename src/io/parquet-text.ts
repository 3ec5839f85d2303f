// Rows and text out of .parquet files (Hugging Face datasets ship as parquet), one row group at a time so a large file
// never sits in memory whole: only the footer and the current row group's chunks of the asked-for columns are read.
// hyparquet decodes; hyparquet-compressors adds the codecs beyond snappy (zstd is polars' default, gzip, brotli, lz4).
// Both load on first use (about 0.3 s), so importing this module costs commands that read no parquet nothing.
import fs from 'node:fs';
import type { AsyncBuffer, FileMetaData, SchemaElement } from 'hyparquet';
import { UserError } from '../errors.js';

export interface ParquetColumnInfo {
  name: string;
  /** Physical type (BYTE_ARRAY, INT64...) or "group" for nested columns (lists, structs). */
  type: string;
  /** True for UTF-8 strings (logical STRING / converted UTF8, or a plain BYTE_ARRAY). */
  text: boolean;
}

export interface ParquetFileInfo {
  rows: number;
  rowGroups: number;
  columns: ParquetColumnInfo[];
}

const MAGIC = 'PAR1';

function fail(file: string, message: string, cause?: unknown): never {
  throw new UserError(message, { file, exitCode: 2, cause });
}

/** A readable parquet file: both ends carry the PAR1 magic (checked before hyparquet's own, less specific, errors). */
function checkMagic(file: string): void {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    fail(file, code === 'ENOENT' ? 'no such file' : `cannot read: ${(e as Error).message}`, e);
  }
  try {
    const size = fs.fstatSync(fd).size;
    if (size < 12) fail(file, `not a parquet file (${size} bytes)`);
    const head = Buffer.alloc(4);
    const tail = Buffer.alloc(4);
    fs.readSync(fd, head, 0, 4, 0);
    fs.readSync(fd, tail, 0, 4, size - 4);
    if (head.toString('latin1') !== MAGIC) fail(file, 'not a parquet file (no PAR1 header)');
    if (tail.toString('latin1') !== MAGIC) fail(file, 'truncated parquet file (no PAR1 footer: was the download cut short?)');
  } finally {
    fs.closeSync(fd);
  }
}

function topLevelColumns(meta: FileMetaData): ParquetColumnInfo[] {
  // schema[0] is the root; its children follow depth-first, each group followed by its num_children descendants.
  const out: ParquetColumnInfo[] = [];
  const schema = meta.schema;
  let i = 1;
  const skip = (idx: number): number => {
    let next = idx + 1;
    for (let c = 0; c < (schema[idx].num_children ?? 0); c++) next = skip(next);
    return next;
  };
  while (i < schema.length) {
    const el: SchemaElement = schema[i];
    const isGroup = (el.num_children ?? 0) > 0;
    out.push({ name: el.name, type: isGroup ? 'group' : (el.type ?? 'unknown'), text: !isGroup && isText(el) });
    i = skip(i);
  }
  return out;
}

function isText(el: SchemaElement): boolean {
  if (el.type !== 'BYTE_ARRAY') return false;
  const logical = el.logical_type?.type;
  if (logical) return logical === 'STRING';
  return el.converted_type === undefined || el.converted_type === 'UTF8';
}

type Hyparquet = typeof import('hyparquet');
type Codecs = typeof import('hyparquet-compressors')['compressors'];
let libs: Promise<{ hp: Hyparquet; compressors: Codecs }> | null = null;

function loadLibs(): Promise<{ hp: Hyparquet; compressors: Codecs }> {
  libs ??= Promise.all([import('hyparquet'), import('hyparquet-compressors')]).then(([hp, c]) => ({ hp, compressors: c.compressors }));
  return libs;
}

async function openParquet(file: string): Promise<{ buffer: AsyncBuffer; meta: FileMetaData; hp: Hyparquet; compressors: Codecs }> {
  checkMagic(file);
  const { hp, compressors } = await loadLibs();
  const buffer = await hp.asyncBufferFromFile(file);
  try {
    return { buffer, meta: await hp.parquetMetadataAsync(buffer), hp, compressors };
  } catch (e) {
    fail(file, `unreadable parquet footer: ${(e as Error).message}`, e);
  }
}

/** Row count, row groups and top-level columns of a parquet file (reads the footer only). */
export async function parquetFileInfo(file: string): Promise<ParquetFileInfo> {
  const { meta } = await openParquet(file);
  return { rows: Number(meta.num_rows), rowGroups: meta.row_groups.length, columns: topLevelColumns(meta) };
}

/**
 * The rows of a parquet file as objects holding the given top-level columns (all when omitted), one row group at a
 * time. Nested columns (e.g. `messages`: list of {role, content}) come out as JS arrays and objects.
 */
export async function* readParquetRows(file: string, opts: { columns?: string[] } = {}): AsyncGenerator<Record<string, unknown>> {
  const { buffer, meta, hp, compressors } = await openParquet(file);
  const names = topLevelColumns(meta).map((c) => c.name);
  for (const c of opts.columns ?? []) {
    if (!names.includes(c)) fail(file, `no column ${JSON.stringify(c)} (columns: ${names.join(', ') || 'none'})`);
  }
  let start = 0;
  for (const group of meta.row_groups) {
    const end = start + Number(group.num_rows);
    let rows: Record<string, unknown>[];
    try {
      rows = (await hp.parquetReadObjects({
        file: buffer, metadata: meta, columns: opts.columns, rowStart: start, rowEnd: end, compressors,
      })) as Record<string, unknown>[];
    } catch (e) {
      fail(file, `cannot decode rows ${start}..${end - 1}: ${(e as Error).message}`, e);
    }
    for (const row of rows) yield row;
    start = end;
  }
}

/**
 * The strings of one text column: `column`, else "text". Null cells are skipped; a column that is missing or does not
 * hold strings is a UserError listing the file's text columns.
 */
export async function* readParquetText(file: string, opts: { column?: string } = {}): AsyncGenerator<string> {
  const { meta } = await openParquet(file);
  const columns = topLevelColumns(meta);
  const textColumns = columns.filter((c) => c.text).map((c) => c.name);
  const name = opts.column ?? 'text';
  const col = columns.find((c) => c.name === name);
  const choices = `text columns: ${textColumns.length ? textColumns.join(', ') : 'none'}`;
  if (!col) {
    fail(file, `no column ${JSON.stringify(name)}${opts.column ? '' : ' (the default text column)'}; name another (${choices})`);
  }
  if (!col.text) fail(file, `column ${JSON.stringify(name)} holds ${col.type} values, not text (${choices})`);
  let row = 0;
  for await (const r of readParquetRows(file, { columns: [name] })) {
    const v = r[name];
    if (typeof v === 'string') yield v;
    else if (v !== null && v !== undefined) fail(file, `row ${row}: column ${JSON.stringify(name)} is not a string`);
    row++;
  }
}
