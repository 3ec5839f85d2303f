// Data where users keep it: calibration/eval documents, prompts and records from .jsonl.gz and .parquet (written here
// with node:zlib and hyparquet-writer) read by the same synchronous readers as .jsonl, with the same bounds.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import zlib from 'node:zlib';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { CpuBackend } from '../src/engine/cpu/backend.js';
import { dataRecords, readPrompts, readTextDocuments, textDocuments, tokenizeCorpus } from '../src/io/datasets.js';
import { runGenerateData } from '../src/jobs/generate-data.js';
import { readTrainingData } from '../src/jobs/train-drafter.js';
import { charTok } from './char-tokenizer.js';
import { DEMO_MODEL } from './fixtures-path.js';
import { scratchDir } from './scratch.js';
import { userError } from './user-error.js';

const dir = scratchDir('data-formats-');
let n = 0;
const file = (name: string, data: string | Uint8Array): string => {
  const f = join(dir, `${n++}-${name}`);
  writeFileSync(f, data);
  return f;
};
const gz = (text: string): Uint8Array => new Uint8Array(zlib.gzipSync(Buffer.from(text)));

type Column = { name: string; data: unknown[]; type?: 'STRING' | 'INT32' | 'INT64' | 'BOOLEAN' | 'JSON' };
function parquet(name: string, columnData: Column[], rowGroupSize = 2): string {
  return file(name, new Uint8Array(parquetWriteBuffer({ columnData, rowGroupSize } as Parameters<typeof parquetWriteBuffer>[0])));
}

const DOCS = ['first doc', 'second — ünïcode', 'third\nwith\nlines', 'fourth', 'fifth'];

describe('documents', () => {
  const jsonl = DOCS.map((t) => JSON.stringify({ text: t })).join('\n') + '\n';

  it('.jsonl.gz, .txt.gz, .json.gz and .parquet give the documents of the plain file', () => {
    const plain = readTextDocuments(file('d.jsonl', jsonl));
    expect(plain).toEqual(DOCS);
    expect(readTextDocuments(file('d.jsonl.gz', gz(jsonl)))).toEqual(plain);
    expect(readTextDocuments(file('d.JSONL.GZ', gz(jsonl)))).toEqual(plain);
    expect(readTextDocuments(file('d.txt.gz', gz(DOCS.join('\f'))))).toEqual(plain);
    expect(readTextDocuments(file('d.json.gz', gz(JSON.stringify(DOCS))))).toEqual(plain);
    // A "text" column among others, several row groups, nulls skipped.
    const withNull = [DOCS[0], null, ...DOCS.slice(1)];
    const p = parquet('d.parquet', [{ name: 'id', data: withNull.map((_, i) => i), type: 'INT32' }, { name: 'text', data: withNull, type: 'STRING' }]);
    expect(readTextDocuments(p)).toEqual(plain);
    // The only string column, whatever its name.
    expect(readTextDocuments(parquet('c.parquet', [{ name: 'content', data: DOCS, type: 'STRING' }]))).toEqual(plain);
    // Same tokens as the plain file.
    expect(Array.from(tokenizeCorpus(textDocuments(p), charTok, 0))).toEqual(Array.from(tokenizeCorpus(plain, charTok, 0)));
  });

  it('a consumer that stops early stops the gzip and parquet reading', () => {
    const big = Array.from({ length: 5000 }, (_, i) => JSON.stringify({ text: `doc ${i}` })).join('\n');
    expect(Array.from(tokenizeCorpus(textDocuments(file('big.jsonl.gz', gz(big))), charTok, 0, { maxTokens: 12 }))).toEqual(
      Array.from(tokenizeCorpus(['doc 0', 'doc 1'], charTok, 0)).slice(0, 12));
    const p = parquet('big.parquet', [{ name: 'text', data: Array.from({ length: 3000 }, (_, i) => `doc ${i}`), type: 'STRING' }], 1000);
    const it = textDocuments(p)[Symbol.iterator]();
    expect(it.next().value).toBe('doc 0');
    it.return?.();
  });

  it('a gzip bomb hits the line and size limits, not memory', () => {
    // 80 MiB of one line compress to ~80 KiB: the line limit (64 MiB) stops it while it streams.
    const bomb = file('bomb.jsonl.gz', new Uint8Array(zlib.gzipSync(Buffer.alloc(80 * 2 ** 20, 'a'), { level: 9 })));
    expect(userError(() => readTextDocuments(bomb)).message).toMatch(/line 1 is longer than 64 MiB/);
    // The total limit for .txt.gz (one document of \f-separated pieces under the line limit each).
    const pieces = Buffer.alloc(40 * 2 ** 20, 'b');
    for (let i = 2 ** 20; i < pieces.length; i += 2 ** 20) pieces[i] = 0x0c;
    const many = file('many.txt.gz', new Uint8Array(zlib.gzipSync(pieces)));
    expect(userError(() => [...textDocuments(many, 'text file', 8 * 2 ** 20)]).message).toMatch(/holds more than 8 MiB of text/);
  });

  it('bad compressed or parquet files are one-line errors naming the file', () => {
    const cut = gz(JSON.stringify({ text: 'x'.repeat(1000) }));
    const f1 = file('cut.jsonl.gz', cut.subarray(0, cut.length - 20));
    const e1 = userError(() => readTextDocuments(f1));
    expect(e1.file).toBe(f1);
    expect(e1.message).toMatch(/cannot read the text file: .*(end|truncat)/i);
    const f2 = file('plain.jsonl.gz', '{"text": "not compressed"}\n');
    expect(userError(() => readTextDocuments(f2)).message).toMatch(/cannot read the text file: .*header/i);
    const f3 = file('fake.parquet', 'PAR1 this is not parquet');
    expect(userError(() => readTextDocuments(f3, 'calibration file')).message).toMatch(/calibration file is a truncated parquet file|cannot read the calibration file/);
    const f4 = file('notpq.parquet', '{"text": "a"}');
    expect(userError(() => readTextDocuments(f4)).message).toMatch(/not a parquet file/);
    const f5 = parquet('two.parquet', [{ name: 'a', data: ['x'], type: 'STRING' }, { name: 'b', data: ['y'], type: 'STRING' }]);
    expect(userError(() => readTextDocuments(f5)).message).toMatch(/no "text" column and several string columns \(a, b\)/);
    const f6 = parquet('num.parquet', [{ name: 'text', data: [1, 2], type: 'INT32' }]);
    expect(userError(() => readTextDocuments(f6)).message).toMatch(/"text" column does not hold strings/);
  });
});

describe('records and prompts', () => {
  const records = [
    { prompt: 'p0' },
    { messages: [{ role: 'system', content: 's' }, { role: 'user', content: 'u1' }, { role: 'assistant', content: 'a1' }, { role: 'user', content: 'u2' }, { role: 'assistant', content: 'a2' }] },
    { conversations: [{ from: 'human', value: 'h1' }, { from: 'gpt', value: 'g1' }] },
    { text: 'plain text prompt' },
  ];
  const expected = [
    { kind: 'text', prompt: 'p0' },
    { kind: 'messages', messages: [{ role: 'system', content: 's' }, { role: 'user', content: 'u1' }, { role: 'assistant', content: 'a1' }, { role: 'user', content: 'u2' }] },
    { kind: 'text', prompt: 'h1' },
    { kind: 'text', prompt: 'plain text prompt' },
  ];
  const jsonl = records.map((r) => JSON.stringify(r)).join('\n') + '\n';

  it('prompts from .jsonl, .jsonl.gz and .parquet: conversations cut after the last user turn', () => {
    expect(readPrompts(file('p.jsonl', jsonl))).toEqual(expected);
    expect(readPrompts(file('p.jsonl.gz', gz(jsonl)))).toEqual(expected);
    // messages as Hugging Face stores them: list<struct<role, content>>.
    const p = file('p.parquet', new Uint8Array(parquetWriteBuffer({
      schema: [
        { name: 'root', num_children: 1 },
        { name: 'messages', repetition_type: 'OPTIONAL', converted_type: 'LIST', num_children: 1 },
        { name: 'list', repetition_type: 'REPEATED', num_children: 1 },
        { name: 'element', repetition_type: 'OPTIONAL', num_children: 2 },
        { name: 'role', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
        { name: 'content', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
      ],
      columnData: [{ name: 'messages', data: [records[1].messages] }],
    })));
    expect(readPrompts(p)).toEqual(expected.slice(1, 2));
    const q = parquet('q.parquet', [{ name: 'prompt', data: ['a', 'b', 'c'], type: 'STRING' }, { name: 'id', data: [1n, 2n, 3n], type: 'INT64' }]);
    expect(readPrompts(q)).toEqual(['a', 'b', 'c'].map((prompt) => ({ kind: 'text', prompt })));
  });

  it('parquet records keep their row numbers and plain values', () => {
    const q = parquet('r.parquet', [{ name: 'prompt', data: ['a', 'b', 'c'], type: 'STRING' }, { name: 'id', data: [1n, 2n, 3n], type: 'INT64' }]);
    expect([...dataRecords(q, 'data', 'hint')]).toEqual([
      { row: 0, value: { prompt: 'a', id: 1 } }, { row: 1, value: { prompt: 'b', id: 2 } }, { row: 2, value: { prompt: 'c', id: 3 } },
    ]);
  });

  it('a bad record names the file and the line or row', () => {
    const f = file('bad.jsonl.gz', gz('{"prompt": "a"}\n{"messages": [{"role": "assistant", "content": "x"}]}\n'));
    const e = userError(() => readPrompts(f));
    expect(e.file).toBe(f);
    expect(e.message).toMatch(/^line 2: "messages" must start with a user turn/);
    const p = parquet('badrow.parquet', [{ name: 'question', data: ['a', 'b'], type: 'STRING' }]);
    expect(userError(() => readPrompts(p)).message).toMatch(/^row 0: unrecognized record \(keys: question\)/);
    expect(userError(() => readPrompts(file('x.csv', 'a,b\n'))).message).toMatch(/unsupported prompts file type ".csv"; use .jsonl, .jsonl.gz or .parquet/);
  });
});

describe('dflash jobs on compressed and parquet inputs', () => {
  it('generate-data gives the same records from .jsonl, .jsonl.gz and .parquet prompts, and train-drafter reads them back from .gz', async () => {
    const be = await CpuBackend.create();
    const prompts = ['def add(a, b):', 'import os', 'class Foo:'];
    const jsonl = prompts.map((p) => JSON.stringify({ prompt: p })).join('\n') + '\n';
    const sources = {
      jsonl: file('prompts.jsonl', jsonl),
      gz: file('prompts.jsonl.gz', gz(jsonl)),
      parquet: parquet('prompts.parquet', [{ name: 'prompt', data: prompts, type: 'STRING' }]),
    };
    const outputs: Record<string, string> = {};
    for (const [k, promptsFile] of Object.entries(sources)) {
      const outFile = join(dir, `gen-${k}.jsonl`);
      runGenerateData(be, { targetDir: DEMO_MODEL, promptsFile, outFile, maxNewTokens: 6, ignoreEos: true, batch: 2, chatTemplate: 'never' });
      outputs[k] = readFileSync(outFile, 'utf8');
    }
    expect(outputs.jsonl.trim().split('\n')).toHaveLength(3);
    expect(outputs.gz).toBe(outputs.jsonl);
    expect(outputs.parquet).toBe(outputs.jsonl);
    const records = file('records.jsonl.gz', gz(outputs.jsonl));
    const opts = { seqLen: 64, blockSize: 2, vocabSize: 1 << 20, tokenizer: null };
    const fromGz = readTrainingData(records, opts);
    const fromPlain = readTrainingData(file('records.jsonl', outputs.jsonl), opts);
    expect(fromGz.samples.map((x) => Array.from(x.ids))).toEqual(fromPlain.samples.map((x) => Array.from(x.ids)));
    expect(fromGz.responseTokens).toBe(18);
  });
});
