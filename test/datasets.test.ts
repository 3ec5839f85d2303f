import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { scratchDir } from './scratch.js';
import { calibrationWindows, perplexityWindows, readPrompts, readTextDocuments, textDocuments, tokenizeCorpus } from '../src/io/datasets.js';
import { loadTokenizer } from '../src/io/tokenizer.js';
import { charTok } from './char-tokenizer.js';
import { DEMO_MODEL, FIXTURES } from './fixtures-path.js';
import { userError } from './user-error.js';

const haveFixtures = existsSync(join(FIXTURES, 'tiny-qwen3')) && existsSync(join(FIXTURES, 'text'));
if (!haveFixtures) console.warn(`datasets.test: ${FIXTURES} is absent; fixture corpus tests are skipped`);

const scratch = scratchDir('datasets-');
let fileNo = 0;
function tempFile(ext: string, text: string): string {
  const f = join(scratch, `f${fileNo++}${ext}`);
  writeFileSync(f, text);
  return f;
}

describe('readTextDocuments', () => {
  it('.jsonl, .json (strings and {text}), .txt whole and \\f-separated', () => {
    expect(readTextDocuments(tempFile('.jsonl', '{"text": "a\\nb"}\n\n{"text": "", "meta": 1}\r\n{"text": "c"}\n'))).toEqual(['a\nb', '', 'c']);
    expect(readTextDocuments(tempFile('.json', '["x", {"text": "y"}]'))).toEqual(['x', 'y']);
    expect(readTextDocuments(tempFile('.txt', '\ufeffpara one\n\npara two\n'))).toEqual(['para one\n\npara two\n']);
    expect(readTextDocuments(tempFile('.txt', 'doc 1\n\fdoc 2\n\f\n\f'))).toEqual(['doc 1\n', 'doc 2\n']);
  });

  const bad: [string, string, string, RegExp][] = [
    ['invalid JSON line', '.jsonl', '{"text": "a"}\n{"text": \n', /line 2: invalid JSON/],
    ['missing text', '.jsonl', '{"text": "a"}\n\n{"body": "b"}\n', /line 3: expected an object with a "text" field/],
    ['non-string text', '.jsonl', '{"text": 5}\n', /line 1: "text" must be a string, got number/],
    ['array line', '.jsonl', '["a"]\n', /line 1: expected an object/],
    ['empty .jsonl', '.jsonl', '\n  \n', /no documents/],
    ['empty .txt', '.txt', '  \n\f\n', /no documents/],
    ['.json not an array', '.json', '{"text": "a"}', /expected a JSON array/],
    ['.json bad item', '.json', '["a", 3]', /item 1: expected a string/],
    ['.json invalid', '.json', '["a", ', /invalid JSON/],
    ['unknown extension', '.csv', 'a,b\n', /unsupported text file type ".csv"/],
  ];
  it.each(bad)('%s', (_n, ext, text, pattern) => {
    const f = tempFile(ext, text);
    const e = userError(() => readTextDocuments(f));
    expect(e.file).toBe(f);
    expect(e.message).toMatch(pattern);
  });

  it('a missing file', () => {
    const f = join(scratch, 'nope.jsonl');
    const e = userError(() => readTextDocuments(f, 'calibration file'));
    expect(e.oneLine()).toBe(`${f}: the calibration file does not exist`);
  });
});

// Issue 8, defects 6 and 9: endless, huge, binary or non-file inputs fail at once with one line.
describe('inputs that are not text files', () => {
  it.skipIf(!existsSync('/dev/zero'))('/dev/zero (a character device) is refused before reading, even named .txt', () => {
    const t0 = Date.now();
    expect(userError(() => readTextDocuments('/dev/zero')).message).toMatch(/not a regular file/);
    expect(userError(() => textDocuments('/dev/zero', 'data file')).message).toMatch(/the data file is not a regular file/);
    expect(userError(() => readPrompts('/dev/zero')).message).toMatch(/not a regular file/);
    expect(Date.now() - t0).toBeLessThan(1000);
  });

  it.skipIf(process.platform === 'win32')('a FIFO is refused without blocking on open', () => {
    const fifo = join(scratch, 'pipe.txt');
    execFileSync('mkfifo', [fifo]);
    expect(userError(() => readTextDocuments(fifo)).message).toMatch(/not a regular file/);
  });

  it('a directory named like a data file', () => {
    const d = join(scratch, 'dir.jsonl');
    mkdirSync(d);
    expect(userError(() => readTextDocuments(d, 'calibration file')).oneLine()).toBe(`${d}: the calibration file is a directory, not a file`);
  });

  it('binary garbage in a .txt: NUL bytes or invalid UTF-8 are named, not tokenized', () => {
    const nul = join(scratch, 'bin1.txt');
    writeFileSync(nul, Buffer.from([0x68, 0x69, 0x00, 0x01, 0x02]));
    expect(userError(() => readTextDocuments(nul)).message).toMatch(/NUL byte at offset 2: binary data/);
    const bad = join(scratch, 'bin2.txt');
    writeFileSync(bad, Buffer.from([0x68, 0x69, 0xff, 0xfe, 0x41]));
    expect(userError(() => readTextDocuments(bad)).message).toMatch(/not UTF-8 text/);
  });

  it('a multibyte character split across read chunks still decodes', () => {
    const f = join(scratch, 'split.txt');
    const text = 'a'.repeat((1 << 20) - 1) + 'é€漢字\n';
    writeFileSync(f, text);
    expect(readTextDocuments(f)).toEqual([text]);
  });

  it('textDocuments stops reading when the consumer has enough tokens', () => {
    // The line after the first few is broken JSON: never reached when only 10 tokens are wanted.
    const lines = Array.from({ length: 5 }, (_, i) => JSON.stringify({ text: `doc ${i}` }));
    const f = tempFile('.jsonl', lines.join('\n') + '\n{"text": oops\n');
    expect(Array.from(tokenizeCorpus(textDocuments(f), charTok, 0, { maxTokens: 10 }))).toEqual([100, 111, 99, 32, 48, 0, 100, 111, 99, 32]);
    expect(userError(() => tokenizeCorpus(textDocuments(f), charTok, 0)).message).toMatch(/line 6: invalid JSON/);
  });

  it('a line longer than the limit is refused with its number', () => {
    const f = join(scratch, 'long.jsonl');
    writeFileSync(f, '{"text": "a"}\n{"text": "' + 'x'.repeat(64 * 2 ** 20) + '"}\n');
    expect(userError(() => readTextDocuments(f)).message).toMatch(/line 2 is longer than 64 MiB characters/);
  });
});

describe('tokenizeCorpus', () => {
  it('document ids then eos, concatenated; maxTokens keeps a prefix', () => {
    const full = tokenizeCorpus(['ab', '', 'c'], charTok, 0);
    expect(Array.from(full)).toEqual([97, 98, 0, 0, 99, 0]);
    for (let m = 0; m <= 7; m++) {
      expect(Array.from(tokenizeCorpus(['ab', '', 'c'], charTok, 0, { maxTokens: m }))).toEqual(Array.from(full).slice(0, m));
    }
  });
});

describe('perplexityWindows', () => {
  it('matches the REFERENCE.md rule on every small case', () => {
    for (let n = 0; n < 40; n++) {
      for (let seqLen = 1; seqLen < 9; seqLen++) {
        for (let maxW = 0; maxW < 6; maxW++) {
          const expected: number[] = [];
          for (let i = 0; i < n; i++) if (i % seqLen === 0 && i < n - seqLen - 1 && i < maxW * seqLen) expected.push(i);
          expect(perplexityWindows(n, seqLen, maxW)).toEqual(expected);
        }
      }
    }
  });
});

describe('calibrationWindows', () => {
  const tokens = Int32Array.from({ length: 100 }, (_, i) => i * 7);

  it('first nTrain consecutive windows, then nVal', () => {
    const { train, val } = calibrationWindows(tokens, 8, 10, 2);
    expect(train).toHaveLength(10);
    expect(val).toHaveLength(2);
    train.forEach((w, k) => expect(Array.from(w)).toEqual(Array.from(tokens.subarray(k * 8, k * 8 + 8))));
    val.forEach((w, k) => expect(Array.from(w)).toEqual(Array.from(tokens.subarray((10 + k) * 8, (11 + k) * 8))));
    // Copies, not views of the corpus.
    train[0][0] = -1;
    expect(tokens[0]).toBe(0);
  });

  it('shuffleSeed draws distinct aligned windows, reproducibly', () => {
    const a = calibrationWindows(tokens, 8, 9, 3, { shuffleSeed: 5 });
    const b = calibrationWindows(tokens, 8, 9, 3, { shuffleSeed: 5 });
    const c = calibrationWindows(tokens, 8, 9, 3, { shuffleSeed: 6 });
    const startsOf = (r: { train: Int32Array[]; val: Int32Array[] }): number[] => [...r.train, ...r.val].map((w) => {
      const s = w[0] / 7;
      expect(s % 8).toBe(0);
      expect(Array.from(w)).toEqual(Array.from(tokens.subarray(s, s + 8)));
      return s / 8;
    });
    const sa = startsOf(a);
    expect(new Set(sa).size).toBe(12);
    expect(sa).toEqual(startsOf(b));
    expect(sa).not.toEqual(startsOf(c));
    expect(sa).not.toEqual(Array.from({ length: 12 }, (_, i) => i));
  });

  it('errors say how many tokens there are and how many are needed', () => {
    let e = userError(() => calibrationWindows(tokens.subarray(0, 5), 8, 1, 0));
    expect(e.message).toMatch(/has 5 tokens; one sample needs 8/);
    e = userError(() => calibrationWindows(tokens, 8, 10, 3));
    expect(e.message).toMatch(/100 tokens, which make 12 samples of 8; 13 are needed \(10 training \+ 3 validation\), i\.e\. 104 tokens/);
    expect(userError(() => calibrationWindows(tokens, 0, 1, 0)).message).toMatch(/positive integer/);
  });
});

describe('readPrompts', () => {
  it('.jsonl prompts and messages, .txt lines', () => {
    const f = tempFile('.jsonl', '{"prompt": "def f(x):\\n"}\n\n{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n');
    expect(readPrompts(f)).toEqual([
      { kind: 'text', prompt: 'def f(x):\n' },
      { kind: 'text', prompt: 'hi' }, // a conversation is cut after its last user turn: the target answers it
    ]);
    expect(readPrompts(tempFile('.txt', 'first prompt\r\n\n  \nsecond one\n'))).toEqual([
      { kind: 'text', prompt: 'first prompt' },
      { kind: 'text', prompt: 'second one' },
    ]);
  });

  const bad: [string, string, string, RegExp][] = [
    ['invalid JSON', '.jsonl', '{"prompt": "a"}\n{prompt}\n', /line 2: invalid JSON/],
    ['neither field', '.jsonl', '{"question": "a"}\n', /line 1: unrecognized record \(keys: question\)/],
    ['non-string prompt', '.jsonl', '{"prompt": ["a"]}\n', /line 1: "prompt" must be a string/],
    ['empty messages', '.jsonl', '{"prompt": "a"}\n{"messages": []}\n', /line 2: "messages" is empty/],
    ['bad message', '.jsonl', '{"messages": [{"role": "user"}]}\n', /line 1: messages\[0\]\.content must be a string/],
    ['no prompts', '.txt', '\n\n', /no prompts/],
    ['unknown extension', '.md', '# hi\n', /unsupported prompts file type ".md"/],
  ];
  it.each(bad)('%s', (_n, ext, text, pattern) => {
    const f = tempFile(ext, text);
    const e = userError(() => readPrompts(f));
    expect(e.file).toBe(f);
    expect(e.message).toMatch(pattern);
  });
});

describe.skipIf(!haveFixtures)('fixture corpora (REFERENCE.md protocol)', () => {
  const tok = loadTokenizer(DEMO_MODEL); // the fixture's tokenizer, embedded in the repository

  it('val.jsonl: 934,652 tokens and 400 perplexity windows of 512', () => {
    const docs = readTextDocuments(join(FIXTURES, 'text/val.jsonl'));
    const t0 = performance.now();
    const tokens = tokenizeCorpus(docs, tok, 0);
    console.log(`tokenizeCorpus(val.jsonl): ${tokens.length} tokens in ${((performance.now() - t0) / 1000).toFixed(2)} s`);
    expect(tokens.length).toBe(934_652);
    // One eos per document (val.jsonl holds no literal <|endoftext|>), the last token among them.
    expect(tokens.reduce((n, id) => n + (id === 0 ? 1 : 0), 0)).toBe(docs.length);
    expect(tokens[tokens.length - 1]).toBe(0);
    const starts = perplexityWindows(tokens.length, 512, 400);
    expect(starts).toHaveLength(400);
    expect([starts[0], starts[399]]).toEqual([0, 399 * 512]);
  });

  it('train.jsonl: the first 128 windows of 512 for training, the next 16 for validation', () => {
    const docs = readTextDocuments(join(FIXTURES, 'text/train.jsonl'));
    const tokens = tokenizeCorpus(docs, tok, 0, { maxTokens: 144 * 512 });
    const { train, val } = calibrationWindows(tokens, 512, 128, 16);
    expect([train.length, val.length]).toEqual([128, 16]);
    // Decoding the windows back gives the documents in file order, each followed by <|endoftext|>.
    const text = tok.decode(Int32Array.from([...train, ...val].flatMap((w) => Array.from(w))));
    const pieces = text.split('<|endoftext|>');
    for (let d = 0; d < pieces.length - 1; d++) expect(pieces[d]).toBe(docs[d]);
    expect(docs[pieces.length - 1].startsWith(pieces[pieces.length - 1])).toBe(true);
    expect(pieces.length).toBeGreaterThan(2);
    // Fewer tokens than 145 windows: a clear error.
    expect(userError(() => calibrationWindows(tokens, 512, 129, 16)).message).toMatch(/make 144 samples of 512; 145 are needed/);
  });
});

describe('built-in calibration set (calib/default.jsonl)', () => {
  const CALIB = join(import.meta.dirname, '..', 'calib');
  const file = join(CALIB, 'default.jsonl');

  it('parses as documents of a few hundred to a few thousand characters', () => {
    const docs = readTextDocuments(file);
    expect(docs.length).toBeGreaterThan(300);
    for (const d of docs) {
      expect(d.length).toBeGreaterThanOrEqual(300);
      expect(d.length).toBeLessThan(8000);
    }
    // No document repeated verbatim.
    expect(new Set(docs).size).toBe(docs.length);
  });

  it('is reproduced byte for byte by its recipe', () => {
    const out = join(scratch, 'default-rebuilt.jsonl');
    execFileSync(process.execPath, [join(CALIB, 'build-default.mjs'), '--out', out], { stdio: 'pipe' });
    expect(readFileSync(out).equals(readFileSync(file))).toBe(true);
  });

  it.skipIf(!haveFixtures)('holds at least 200,000 tokens with the fixture tokenizer', () => {
    const tok = loadTokenizer(DEMO_MODEL); // the fixture's tokenizer, embedded in the repository
    const tokens = tokenizeCorpus(readTextDocuments(file), tok, 0);
    expect(tokens.length).toBeGreaterThanOrEqual(200_000);
    // Enough for the reference calibration shape: 128 + 16 windows of 512.
    expect(() => calibrationWindows(tokens, 512, 128, 16)).not.toThrow();
  });
});
