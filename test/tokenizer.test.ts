import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { scratchDir } from './scratch.js';
import { loadTokenizer } from '../src/io/tokenizer.js';
import { DEMO_MODEL, FIXTURES } from './fixtures-path.js';
import { userError } from './user-error.js';

const TOK_DIR = DEMO_MODEL; // the fixture's tokenizer files, embedded in the repository
const haveText = existsSync(join(FIXTURES, 'text/val.jsonl'));
if (!haveText) console.warn(`tokenizer.test: ${FIXTURES}/text is absent; the val.jsonl round-trip is skipped`);

// REFERENCE.md "Exact-forward probe".
const PROBE = 'def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n';
const PROBE_IDS = [326, 285, 473, 264, 1149, 1424, 9, 79, 318, 268, 341, 290, 812, 400, 27, 265, 369, 290, 268, 369, 285,
  473, 264, 1149, 1424, 9, 79, 348, 333, 10, 398, 285, 473, 264, 1149, 1424, 9, 79, 348, 400, 10, 200];

// A small ChatML template in the style of Qwen's, with Qwen3's enable_thinking switch.
const CHATML = [
  '{%- for m in messages %}{{ "<|im_start|>" + m.role + "\\n" + m.content + "<|im_end|>\\n" }}{%- endfor %}',
  '{%- if add_generation_prompt %}{{ "<|im_start|>assistant\\n" }}',
  '{%- if enable_thinking is defined and enable_thinking is false %}{{ "<think>\\n\\n</think>\\n\\n" }}{%- endif %}',
  '{%- endif %}',
].join('');

/** A temp model folder with the fixture tokenizer.json and the given extra files. */
function tempTokenizerDir(files: Record<string, string>): string {
  const dir = scratchDir('tok-');
  copyFileSync(join(TOK_DIR, 'tokenizer.json'), join(dir, 'tokenizer.json'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

describe('fixture tokenizer (tiny-qwen3)', () => {
  const tok = loadTokenizer(TOK_DIR);

  it('tokenizes the REFERENCE.md probe to the 42 listed ids', () => {
    expect(tok.encode(PROBE, { addSpecialTokens: false })).toEqual(PROBE_IDS);
    // No template adds BOS/EOS for this tokenizer.
    expect(tok.encode(PROBE)).toEqual(PROBE_IDS);
    expect(tok.decode(PROBE_IDS)).toBe(PROBE);
  });

  it('special tokens: <|endoftext|> = 0 = eos, <|mask|> = 1, vocabulary 4096', () => {
    expect(tok.tokenId('<|endoftext|>')).toBe(0);
    expect(tok.tokenId('<|mask|>')).toBe(1);
    expect(tok.tokenId('no such token')).toBeUndefined();
    expect(tok.eosTokenId).toBe(0);
    expect(tok.vocabSize).toBe(4096);
    // Added tokens inside text are matched as one token, and skipped on request.
    const ids = tok.encode('x = 1<|endoftext|>y', { addSpecialTokens: false });
    expect(ids.filter((i) => i === 0)).toHaveLength(1);
    expect(tok.decode(ids)).toBe('x = 1<|endoftext|>y');
    expect(tok.decode(ids, { skipSpecialTokens: true })).toBe('x = 1y');
    expect(tok.decode([])).toBe('');
  });

  it.skipIf(!haveText)('decode(encode(x)) round-trips on val.jsonl documents', () => {
    const lines = readFileSync(join(FIXTURES, 'text/val.jsonl'), 'utf8').split('\n').filter((l) => l !== '');
    // Every 10th of the first 400 documents: a spread of files, a fraction of a second.
    for (let i = 0; i < Math.min(400, lines.length); i += 10) {
      const text = (JSON.parse(lines[i]) as { text: string }).text;
      const ids = tok.encode(text, { addSpecialTokens: false });
      expect(ids.every((id) => Number.isInteger(id) && id >= 0 && id < tok.vocabSize)).toBe(true);
      expect(tok.decode(ids)).toBe(text);
    }
    // Code-like spacing that a "clean up tokenization spaces" pass would alter.
    for (const s of ['f(a , b) ; x = y . z', "don 't  stop !", 'a ?b', 'ünïcödé → ∑ 😀']) {
      expect(tok.decode(tok.encode(s))).toBe(s);
    }
  });

  it('has no chat template, and says so when asked to render one', () => {
    expect(tok.hasChatTemplate).toBe(false);
    expect(userError(() => tok.applyChatTemplate([{ role: 'user', content: 'hi' }])).message).toMatch(/no chat template/);
  });
});

describe('chat templates', () => {
  const msgs = [
    { role: 'system', content: 'You are terse.' },
    { role: 'user', content: 'Add 2 and 3.' },
  ];
  const expected =
    '<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nAdd 2 and 3.<|im_end|>\n';

  it('renders a string chat_template from tokenizer_config.json', () => {
    const dir = tempTokenizerDir({ 'tokenizer_config.json': JSON.stringify({ eos_token: '<|endoftext|>', chat_template: CHATML }) });
    const tok = loadTokenizer(dir);
    expect(tok.hasChatTemplate).toBe(true);
    expect(tok.applyChatTemplate(msgs)).toBe(expected);
    expect(tok.applyChatTemplate(msgs, { addGenerationPrompt: true })).toBe(`${expected}<|im_start|>assistant\n`);
    expect(tok.applyChatTemplate(msgs, { addGenerationPrompt: true, enableThinking: true })).toBe(`${expected}<|im_start|>assistant\n`);
    expect(tok.applyChatTemplate(msgs, { addGenerationPrompt: true, enableThinking: false }))
      .toBe(`${expected}<|im_start|>assistant\n<think>\n\n</think>\n\n`);
  });

  it('picks the "default" entry of a list of named templates, and eos_token as {content}', () => {
    const dir = tempTokenizerDir({
      'tokenizer_config.json': JSON.stringify({
        eos_token: { content: '<|mask|>', special: true },
        chat_template: [{ name: 'tool_use', template: 'TOOLS' }, { name: 'default', template: '{{ messages[0].content }}|{{ eos_token }}' }],
      }),
    });
    const tok = loadTokenizer(dir);
    expect(tok.eosTokenId).toBe(1);
    expect(tok.applyChatTemplate(msgs)).toBe('You are terse.|<|mask|>');
  });

  it('chat_template.jinja takes precedence over tokenizer_config.json', () => {
    const dir = tempTokenizerDir({
      'tokenizer_config.json': JSON.stringify({ chat_template: 'FROM CONFIG' }),
      'chat_template.jinja': CHATML,
    });
    expect(loadTokenizer(dir).applyChatTemplate(msgs)).toBe(expected);
  });

  it('a template that raises becomes a UserError', () => {
    const dir = tempTokenizerDir({ 'tokenizer_config.json': JSON.stringify({ chat_template: "{{ raise_exception('roles must alternate') }}" }) });
    expect(userError(() => loadTokenizer(dir).applyChatTemplate(msgs)).message).toMatch(/roles must alternate/);
  });

  // Issue 8, defect 5: a hostile template grew the process to 2.4 GB and killed it (V8 fatal error, exit 133).
  it('a loop over range(10**9) fails with one line naming tokenizer_config.json; the process lives on', () => {
    const dir = tempTokenizerDir({ 'tokenizer_config.json': JSON.stringify({ chat_template: '{% for i in range(1000000000) %}{% endfor %}x' }) });
    const t0 = Date.now();
    const e = userError(() => loadTokenizer(dir).applyChatTemplate(msgs));
    expect(e.file).toBe(join(dir, 'tokenizer_config.json'));
    expect(e.oneLine()).toMatch(/the chat template did not render within 5 s or exceeded the 256 MiB memory limit/);
    expect(e.oneLine()).not.toContain('\n');
    expect(Date.now() - t0).toBeLessThan(20_000);
  }, 30_000);

  it('an output over the size limit is refused, naming chat_template.jinja', () => {
    const dir = tempTokenizerDir({ 'chat_template.jinja': '{{ messages[0].content }}' });
    const e = userError(() => loadTokenizer(dir).applyChatTemplate([{ role: 'user', content: 'x'.repeat(4_200_000) }]));
    expect(e.file).toBe(join(dir, 'chat_template.jinja'));
    expect(e.message).toMatch(/rendered 4200000 characters, more than the 4194304 accepted/);
  });

  it('a syntax error is named with the file at the first render', () => {
    const dir = tempTokenizerDir({ 'chat_template.jinja': '{% for m in messages %}' });
    const e = userError(() => loadTokenizer(dir).applyChatTemplate(msgs));
    expect(e.file).toBe(join(dir, 'chat_template.jinja'));
    expect(e.message).toMatch(/failed to render/);
  });

  it('normal renders stay fast (one worker, reused)', () => {
    const dir = tempTokenizerDir({ 'tokenizer_config.json': JSON.stringify({ chat_template: CHATML }) });
    const tok = loadTokenizer(dir);
    tok.applyChatTemplate(msgs); // starts the worker
    const t0 = performance.now();
    for (let i = 0; i < 200; i++) expect(tok.applyChatTemplate(msgs)).toBe(expected);
    expect((performance.now() - t0) / 200).toBeLessThan(5);
  });
});

describe('tokenizer against the model', () => {
  // Issue 8, defect 9: ids beyond vocab_size failed late as "gatherRows: index 2437 outside [0, 2048)".
  it('a tokenizer larger than config.json vocab_size is refused at load time, naming both files', () => {
    const dir = tempTokenizerDir({ 'config.json': JSON.stringify({ vocab_size: 2048 }) });
    const e = userError(() => loadTokenizer(dir));
    expect(e.file).toBe(join(dir, 'tokenizer.json'));
    expect(e.oneLine()).toContain(`token ids up to 4095, but ${join(dir, 'config.json')} says vocab_size 2048`);
  });

  it('a padded embedding (vocab_size above the tokenizer, as Qwen ships) is fine', () => {
    const dir = tempTokenizerDir({ 'config.json': JSON.stringify({ vocab_size: 4224 }) });
    expect(loadTokenizer(dir).vocabSize).toBe(4096);
  });
});

describe('tokenizer file errors name the file', () => {
  it('missing tokenizer.json', () => {
    const dir = scratchDir('tok-');
    const e = userError(() => loadTokenizer(dir));
    expect(e.file).toBe(join(dir, 'tokenizer.json'));
    expect(e.message).toMatch(/not found/);
  });

  it('invalid JSON and a JSON file that is not a tokenizer', () => {
    const dir = scratchDir('tok-');
    writeFileSync(join(dir, 'tokenizer.json'), '{"model": ');
    let e = userError(() => loadTokenizer(dir));
    expect([e.file, /not valid JSON/.test(e.message)]).toEqual([join(dir, 'tokenizer.json'), true]);
    writeFileSync(join(dir, 'tokenizer.json'), '{"version": "1.0"}');
    e = userError(() => loadTokenizer(dir));
    expect(e.message).toMatch(/no "model" section/);
  });

  it('invalid tokenizer_config.json', () => {
    const dir = tempTokenizerDir({ 'tokenizer_config.json': '[1,' });
    expect(userError(() => loadTokenizer(dir)).file).toBe(join(dir, 'tokenizer_config.json'));
  });
});
