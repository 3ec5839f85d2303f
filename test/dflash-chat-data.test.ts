// Drafter training data in the shapes users keep: {prompt, response}, {text}, OpenAI messages, ShareGPT conversations,
// multi-turn, from .jsonl, .jsonl.gz and .parquet, rendered with the target's chat template (a real tokenizer folder
// with a template written here) and the loss mask on the assistant turns only.
import { copyFileSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { describe, expect, it } from 'vitest';
import { parseTrainingData, type TrainingData, type TrainingRecord } from '../src/dflash/training-data.js';
import { readTrainingData } from '../src/jobs/train-drafter.js';
import { loadTokenizer, type TextTokenizer } from '../src/io/tokenizer.js';
import { DEMO_MODEL } from './fixtures-path.js';
import { scratchDir } from './scratch.js';
import { userError } from './user-error.js';

const dir = scratchDir('chat-data-');

// Every turn: <|endoftext|>role\ncontent\n; the generation prompt opens an assistant turn.
const PLAIN_TEMPLATE =
  '{% for m in messages %}<|endoftext|>{{ m.role }}\n{{ m.content }}\n{% endfor %}' +
  '{% if add_generation_prompt %}<|endoftext|>assistant\n{% endif %}';
// Like Qwen3: the final assistant turn carries an empty reasoning block that earlier turns lose in the history.
const REASONING_TEMPLATE =
  '{% for m in messages %}<|endoftext|>{{ m.role }}\n{% if m.role == "assistant" and loop.last %}[think][/think]{% endif %}{{ m.content }}\n{% endfor %}' +
  '{% if add_generation_prompt %}<|endoftext|>assistant\n[think][/think]{% endif %}';

function tokenizerWith(name: string, template: string | null): TextTokenizer {
  const d = path.join(dir, name);
  mkdirSync(d);
  copyFileSync(path.join(DEMO_MODEL, 'tokenizer.json'), path.join(d, 'tokenizer.json'));
  const cfg = JSON.parse(readFileSync(path.join(DEMO_MODEL, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
  if (template !== null) cfg.chat_template = template;
  writeFileSync(path.join(d, 'tokenizer_config.json'), JSON.stringify(cfg));
  return loadTokenizer(d);
}

const plainTok = tokenizerWith('plain', PLAIN_TEMPLATE);
const reasoningTok = tokenizerWith('reasoning', REASONING_TEMPLATE);
const rawTok = tokenizerWith('raw', null);

const LONG_A1 = 'the first answer, long enough to hold two blocks of four tokens at least';
const LONG_A2 = 'the second answer also runs over a good number of tokens for the drafter';
const conversation = [
  { role: 'system', content: 'be brief' },
  { role: 'user', content: 'first question' },
  { role: 'assistant', content: LONG_A1 },
  { role: 'user', content: 'second question' },
  { role: 'assistant', content: LONG_A2 },
];
const shareGpt = { conversations: conversation.map((t) => ({ from: { system: 'system', user: 'human', assistant: 'gpt' }[t.role], value: t.content })) };

const opts = (tokenizer: TextTokenizer, chatTemplate: 'auto' | 'never' = 'auto') =>
  ({ seqLen: 4096, blockSize: 4, vocabSize: 4096, tokenizer, encoding: { chatTemplate } });
const parse = (values: unknown[], tok: TextTokenizer, chatTemplate: 'auto' | 'never' = 'auto'): TrainingData =>
  parseTrainingData(values.map((value, i): TrainingRecord => ({ value, line: i + 1 })), 'data.jsonl', opts(tok, chatTemplate));

/** The text of the sample, and the text of its learned (mask 1) tokens. */
function texts(tok: TextTokenizer, d: TrainingData, i: number): { all: string; learned: string } {
  const s = d.samples[i];
  return { all: tok.decode(Array.from(s.ids)), learned: tok.decode(Array.from(s.ids).filter((_, k) => s.lossMask[k] === 1)) };
}

describe('chat records as training samples', () => {
  it('multi-turn messages: one sequence as the template renders it, the mask on both assistant turns only', () => {
    const d = parse([{ messages: conversation }], plainTok);
    expect(d.samples).toHaveLength(1);
    const t = texts(plainTok, d, 0);
    expect(t.all).toBe(plainTok.applyChatTemplate(conversation));
    expect(t.learned).toBe(`${LONG_A1}\n${LONG_A2}\n`);
    // ShareGPT gives the same sample.
    const g = parse([shareGpt], plainTok);
    expect(Array.from(g.samples[0].ids)).toEqual(Array.from(d.samples[0].ids));
    expect(Array.from(g.samples[0].lossMask)).toEqual(Array.from(d.samples[0].lossMask));
  });

  it('a template that rewrites earlier turns (Qwen3 reasoning) gives one sequence per answer, each as served', () => {
    const d = parse([{ messages: conversation }], reasoningTok);
    expect(d.samples).toHaveLength(2);
    expect(texts(reasoningTok, d, 0).all).toBe(reasoningTok.applyChatTemplate(conversation.slice(0, 3)));
    expect(texts(reasoningTok, d, 1).all).toBe(reasoningTok.applyChatTemplate(conversation));
    // What the target writes: the reasoning block comes from the generation prompt, the answer and end of turn are learned.
    expect(texts(reasoningTok, d, 0).learned).toBe(`${LONG_A1}\n`);
    expect(texts(reasoningTok, d, 1).learned).toBe(`${LONG_A2}\n`);
  });

  it('{prompt, response} with the template, raw without one or with it turned off; {text} is learned whole', () => {
    const rec = { prompt: 'a question', response: LONG_A1 };
    const templ = texts(plainTok, parse([rec], plainTok), 0);
    expect(templ.all).toBe(plainTok.applyChatTemplate([{ role: 'user', content: rec.prompt }, { role: 'assistant', content: rec.response }]));
    expect(templ.learned).toBe(`${LONG_A1}\n`);
    for (const [tok, mode] of [[rawTok, 'auto'], [plainTok, 'never']] as const) {
      const s = parse([rec], tok, mode).samples[0];
      const p = tok.encode(rec.prompt, { addSpecialTokens: true });
      expect(Array.from(s.ids)).toEqual([...p, ...tok.encode(rec.response, { addSpecialTokens: false })]);
      expect(Array.from(s.lossMask).indexOf(1)).toBe(p.length);
    }
    const text = parse([{ text: LONG_A2 }], plainTok).samples[0];
    expect(Array.from(text.ids)).toEqual(plainTok.encode(LONG_A2, { addSpecialTokens: true }));
    expect(text.lossMask.every((m) => m === 1)).toBe(true);
  });

  it('token-id records are untouched; a conversation without an answer has nothing to learn', () => {
    const d = parse([{ prompt_ids: [1, 2], response_ids: [3, 4, 5, 6, 7, 8, 9, 10] }, { messages: conversation.slice(0, 2) }], plainTok);
    expect(d.samples).toHaveLength(1);
    expect(d.droppedEmpty).toBe(1);
    expect(Array.from(d.samples[0].ids)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  it('multi-turn data needs a chat template: one-line errors naming the line', () => {
    const e = userError(() => parse([{ prompt: 'a', response: LONG_A1 }, { messages: conversation }], rawTok));
    expect(e.oneLine()).toBe('data.jsonl: line 2: a conversation other than one user turn and one answer needs the chat template, and this tokenizer has none');
    expect(userError(() => parse([{ messages: conversation }], plainTok, 'never')).message).toMatch(/which the settings turned off/);
    expect(userError(() => parse([{ question: 'q' }], plainTok)).message).toMatch(/^line 1: unrecognized record \(keys: question\)/);
  });

  it('.jsonl, .jsonl.gz and .parquet files give the same samples', () => {
    const records = [{ messages: conversation }, { prompt: 'q', response: LONG_A2 }];
    const jsonl = records.map((r) => JSON.stringify(r)).join('\n') + '\n';
    const plain = path.join(dir, 'd.jsonl');
    writeFileSync(plain, jsonl);
    const gz = path.join(dir, 'd.jsonl.gz');
    writeFileSync(gz, zlib.gzipSync(jsonl));
    const pq = path.join(dir, 'd.parquet');
    writeFileSync(pq, new Uint8Array(parquetWriteBuffer({
      columnData: [
        { name: 'prompt', data: [null, 'q'], type: 'STRING' },
        { name: 'response', data: [null, LONG_A2], type: 'STRING' },
        { name: 'messages', data: [JSON.stringify(conversation), null], type: 'STRING' },
      ],
    })));
    const o = opts(plainTok);
    const want = readTrainingData(plain, o);
    expect(want.samples).toHaveLength(2);
    const strip = (d: TrainingData) => d.samples.map((s) => [Array.from(s.ids), Array.from(s.lossMask)]);
    expect(strip(readTrainingData(gz, o))).toEqual(strip(want));
    // A messages column stored as a JSON string is not a list: refused with the row.
    expect(userError(() => readTrainingData(pq, o)).message).toMatch(/^row 0: "messages" must be a list/);
    writeFileSync(pq, new Uint8Array(parquetWriteBuffer({
      columnData: [{ name: 'prompt', data: ['q'], type: 'STRING' }, { name: 'response', data: [LONG_A2], type: 'STRING' }],
    })));
    const fromParquet = readTrainingData(pq, o);
    expect(strip(fromParquet)).toEqual(strip(want).slice(1));
    expect(fromParquet.samples[0].line).toBe(1);
    expect(userError(() => readTrainingData(path.join(dir, 'd.csv'), o)).message).toMatch(/does not exist/);
  });
});
