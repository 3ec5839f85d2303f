// io/text-file: whole-file and streamed line reading with one-line errors naming the file.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readJsonFile, readLines, readTextFile } from '../src/io/text-file.js';
import { scratchDir } from './scratch.js';
import { userError } from './user-error.js';

describe('text files', () => {
  it('streams lines across 1 MiB reads, multi-byte characters split between reads included', () => {
    const dir = scratchDir('text-file-');
    const f = path.join(dir, 'lines.jsonl');
    // A line of 3-byte characters longer than one read, so a read boundary falls inside a character.
    const long = '€'.repeat(400_000);
    const want = ['first', long, '', 'λ last without newline'];
    writeFileSync(f, want.join('\n'));
    expect([...readLines(f, 'the data')]).toEqual(want);
    writeFileSync(f, 'a\nb\n');
    expect([...readLines(f, 'the data')]).toEqual(['a', 'b']);
  });

  it('refuses what is not a regular UTF-8 file, naming it', () => {
    const dir = scratchDir('text-file-');
    const bad = path.join(dir, 'bad.jsonl');
    writeFileSync(bad, Buffer.from([0x7b, 0xff, 0xfe, 0x7d, 0x0a]));
    const e = userError(() => [...readLines(bad, 'the data')]);
    expect(e.oneLine()).toMatch(/bad\.jsonl: the data is not UTF-8 text/);
    const sub = path.join(dir, 'sub');
    mkdirSync(sub);
    expect(userError(() => readLines(sub, 'the data')).oneLine()).toMatch(/sub: the data is a directory/);
    expect(userError(() => readTextFile('/dev/zero', 'the data')).oneLine()).toMatch(/\/dev\/zero: the data is not a regular file/);
    expect(userError(() => readTextFile(path.join(dir, 'nope'), 'the data')).oneLine()).toMatch(/nope: the data does not exist/);
    const json = path.join(dir, 'x.json');
    writeFileSync(json, '{"a": ');
    expect(userError(() => readJsonFile(json, 'the config')).oneLine()).toMatch(/x\.json: the config is not valid JSON/);
  });
});
