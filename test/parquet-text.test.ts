// Text and rows out of parquet files written here with hyparquet-writer: several row groups, nulls, gzip (decoded by
// hyparquet-compressors), nested list<struct> chat columns, and the errors for missing/non-text columns and bad files.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { describe, expect, it } from 'vitest';
import { UserError } from '../src/errors.js';
import { normalizeChatRecord } from '../src/io/chat-records.js';
import { parquetFileInfo, readParquetRows, readParquetText } from '../src/io/parquet-text.js';
import { scratchDir } from './scratch.js';

const dir = scratchDir('paro-parquet-');

const SCHEMA = [
  { name: 'root', num_children: 3 },
  { name: 'id', type: 'INT32', repetition_type: 'REQUIRED' },
  { name: 'text', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
  { name: 'messages', repetition_type: 'OPTIONAL', converted_type: 'LIST', num_children: 1 },
  { name: 'list', repetition_type: 'REPEATED', num_children: 1 },
  { name: 'element', repetition_type: 'OPTIONAL', num_children: 2 },
  { name: 'role', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
  { name: 'content', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
] as const;

const TEXTS = ['first document', null, 'third — with ünïcode', 'fourth', 'fifth\nwith a newline'];
const MESSAGES = TEXTS.map((t, i) => (t === null ? null : [{ role: 'user', content: `q${i}` }, { role: 'assistant', content: t }]));

function writeFixture(name: string, codec: 'SNAPPY' | 'GZIP'): string {
  const buf = parquetWriteBuffer({
    schema: SCHEMA.map((s) => ({ ...s })),
    codec,
    compressors: { GZIP: (b: Uint8Array) => new Uint8Array(zlib.gzipSync(b)) },
    rowGroupSize: 2,
    columnData: [
      { name: 'id', data: TEXTS.map((_, i) => i) },
      { name: 'text', data: TEXTS },
      { name: 'messages', data: MESSAGES },
    ],
  });
  const file = path.join(dir, name);
  writeFileSync(file, new Uint8Array(buf));
  return file;
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

async function rejection(p: Promise<unknown>): Promise<UserError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(UserError);
    return e as UserError;
  }
  throw new Error('expected a UserError');
}

describe('parquet text', () => {
  const snappy = writeFixture('data.parquet', 'SNAPPY');
  const gzip = writeFixture('data-gzip.parquet', 'GZIP');

  it('describes the file from its footer', async () => {
    const info = await parquetFileInfo(snappy);
    expect(info).toEqual({
      rows: 5,
      rowGroups: 3,
      columns: [
        { name: 'id', type: 'INT32', text: false },
        { name: 'text', type: 'BYTE_ARRAY', text: true },
        { name: 'messages', type: 'group', text: false },
      ],
    });
  });

  it('reads the text column across row groups in order, skipping nulls, for snappy and gzip', async () => {
    const expected = TEXTS.filter((t): t is string => t !== null);
    expect(await collect(readParquetText(snappy))).toEqual(expected);
    expect(await collect(readParquetText(gzip))).toEqual(expected);
  });

  it('reads rows with nested chat columns that normalize into turns', async () => {
    const rows = await collect(readParquetRows(gzip, { columns: ['id', 'messages'] }));
    expect(rows.map((r) => r.id)).toEqual([0, 1, 2, 3, 4]);
    expect(Object.keys(rows[0]).sort()).toEqual(['id', 'messages']);
    const rec = normalizeChatRecord(rows[2], { file: gzip, row: 2 });
    expect(rec).toEqual({ kind: 'chat', turns: [{ role: 'user', content: 'q2' }, { role: 'assistant', content: TEXTS[2] }] });
  });

  it('stops reading when the consumer stops', async () => {
    const it = readParquetText(snappy);
    expect((await it.next()).value).toBe('first document');
    await it.return(undefined);
  });

  it('names the file and the problem: missing column, non-text column, not parquet, truncated, absent', async () => {
    const missing = await rejection(collect(readParquetText(snappy, { column: 'body' })));
    expect(missing.oneLine()).toBe(`${snappy}: no column "body"; name another (text columns: text)`);
    const numeric = await rejection(collect(readParquetText(snappy, { column: 'id' })));
    expect(numeric.oneLine()).toMatch(/column "id" holds INT32 values, not text \(text columns: text\)/);
    expect((await rejection(collect(readParquetRows(snappy, { columns: ['nope'] })))).oneLine()).toMatch(/no column "nope" \(columns: id, text, messages\)/);

    const notParquet = path.join(dir, 'data.jsonl.parquet');
    writeFileSync(notParquet, '{"text": "this is json"}\n');
    expect((await rejection(collect(readParquetText(notParquet)))).oneLine()).toMatch(/not a parquet file \(no PAR1 header\)/);
    const truncated = path.join(dir, 'cut.parquet');
    writeFileSync(truncated, readFileSync(snappy).subarray(0, 200));
    expect((await rejection(parquetFileInfo(truncated))).oneLine()).toMatch(/truncated parquet file/);
    expect((await rejection(parquetFileInfo(path.join(dir, 'none.parquet')))).oneLine()).toMatch(/none\.parquet: no such file/);
  });
});
