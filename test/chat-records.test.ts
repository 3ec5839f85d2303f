// Training and prompt records in the shapes users keep them (plain, OpenAI messages, ShareGPT conversations,
// multi-turn) normalized into one list of turns, with one-line errors naming the file and line.
import { describe, expect, it } from 'vitest';
import { UserError } from '../src/errors.js';
import { hasTrainingTarget, normalizeChatRecord, promptTurns, type ChatRecord } from '../src/io/chat-records.js';

const at = { file: 'train.jsonl', line: 7 };

function errorOf(value: unknown): string {
  try {
    normalizeChatRecord(value, at);
  } catch (e) {
    expect(e).toBeInstanceOf(UserError);
    return (e as UserError).oneLine();
  }
  throw new Error('expected a UserError');
}

describe('normalizeChatRecord', () => {
  it('reads plain prompt/response, with an optional system text, and plain text', () => {
    expect(normalizeChatRecord({ prompt: 'Hi?', response: 'Hello.' }, at)).toEqual({
      kind: 'chat', turns: [{ role: 'user', content: 'Hi?' }, { role: 'assistant', content: 'Hello.' }],
    });
    expect(normalizeChatRecord({ system: 'Be brief.', prompt: 'Hi?', completion: 'Hey.', id: 3 }, at)).toEqual({
      kind: 'chat', turns: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi?' }, { role: 'assistant', content: 'Hey.' }],
    });
    expect(normalizeChatRecord({ prompt: 'Only a prompt' }, at)).toEqual({ kind: 'chat', turns: [{ role: 'user', content: 'Only a prompt' }] });
    expect(normalizeChatRecord({ text: 'a document' }, at)).toEqual({ kind: 'text', text: 'a document' });
    expect(normalizeChatRecord({ response: 'a plain response' }, at)).toEqual({ kind: 'text', text: 'a plain response' });
    expect(normalizeChatRecord('a bare string', at)).toEqual({ kind: 'text', text: 'a bare string' });
  });

  it('reads OpenAI messages, multi-turn, with text parts and the developer role', () => {
    const rec = normalizeChatRecord({
      messages: [
        { role: 'developer', content: 'sys' },
        { role: 'user', content: [{ type: 'text', text: 'part 1, ' }, { type: 'text', text: 'part 2' }] },
        { role: 'assistant', content: 'a1' },
        { role: 'user', content: 'u2' },
        { role: 'assistant', content: 'a2' },
      ],
    }, at);
    expect(rec).toEqual({
      kind: 'chat',
      turns: [
        { role: 'system', content: 'sys' }, { role: 'user', content: 'part 1, part 2' }, { role: 'assistant', content: 'a1' },
        { role: 'user', content: 'u2' }, { role: 'assistant', content: 'a2' },
      ],
    });
  });

  it('reads ShareGPT conversations', () => {
    const rec = normalizeChatRecord({
      id: 'x', conversations: [{ from: 'system', value: 's' }, { from: 'human', value: 'h1' }, { from: 'gpt', value: 'g1' }, { from: 'human', value: 'h2' }],
    }, at);
    expect(rec).toEqual({
      kind: 'chat',
      turns: [{ role: 'system', content: 's' }, { role: 'user', content: 'h1' }, { role: 'assistant', content: 'g1' }, { role: 'user', content: 'h2' }],
    });
  });

  it('rejects malformed records with the file, the line and what is wrong', () => {
    expect(errorOf(42)).toBe('train.jsonl: line 7: a record must be an object, got number');
    expect(errorOf({ foo: 1 })).toMatch(/^train\.jsonl: line 7: unrecognized record \(keys: foo\); expected/);
    expect(errorOf({ messages: [], prompt: 'x' })).toMatch(/has both "messages" and "prompt"/);
    expect(errorOf({ messages: [] })).toMatch(/"messages" is empty/);
    expect(errorOf({ messages: 'hi' })).toMatch(/"messages" must be a list/);
    expect(errorOf({ messages: [{ role: 'tool', content: 'x' }] })).toMatch(/messages\[0\]\.role "tool" is not supported/);
    expect(errorOf({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: {} }] }] })).toMatch(/messages\[0\]\.content\[0\] is a "image_url" part; only text/);
    expect(errorOf({ messages: [{ role: 'user', content: 5 }] })).toMatch(/messages\[0\]\.content must be a string/);
    expect(errorOf({ messages: [{ role: 'assistant', content: 'a' }] })).toMatch(/must start with a user turn/);
    expect(errorOf({ messages: [{ role: 'system', content: 's' }] })).toMatch(/holds only a system turn/);
    expect(errorOf({ messages: [{ role: 'user', content: 'a' }, { role: 'user', content: 'b' }] })).toMatch(/turn 1 is user where assistant was expected/);
    expect(errorOf({ conversations: [{ from: 'observation', value: 'x' }] })).toMatch(/conversations\[0\]\.from "observation" is not supported/);
    expect(errorOf({ conversations: [{ from: 'human', value: 3 }] })).toMatch(/conversations\[0\]\.value must be a string/);
    expect(errorOf({ prompt: 1 })).toMatch(/"prompt" must be a string/);
    expect(errorOf({ prompt: 'p', response: ['x'] })).toMatch(/"response" must be a string/);
    expect(errorOf({ text: 5 })).toMatch(/"text" must be a string/);
    let rowMsg = '';
    try {
      normalizeChatRecord(null, { file: 'd.parquet', row: 3 });
    } catch (e) {
      rowMsg = (e as UserError).oneLine();
    }
    expect(rowMsg).toBe('d.parquet: row 3: a record must be an object, got null');
  });
});

describe('promptTurns and hasTrainingTarget', () => {
  const conv: ChatRecord = {
    kind: 'chat',
    turns: [{ role: 'user', content: 'u1' }, { role: 'assistant', content: 'a1' }, { role: 'user', content: 'u2' }, { role: 'assistant', content: 'a2' }],
  };
  it('keeps the turns up to the last user turn for regeneration', () => {
    expect(promptTurns(conv)).toEqual(conv.turns.slice(0, 3));
    expect(promptTurns({ kind: 'chat', turns: [{ role: 'user', content: 'q' }] })).toEqual([{ role: 'user', content: 'q' }]);
    expect(promptTurns({ kind: 'text', text: 't' })).toBeUndefined();
  });
  it('says whether a record has something to learn', () => {
    expect(hasTrainingTarget(conv)).toBe(true);
    expect(hasTrainingTarget({ kind: 'chat', turns: [{ role: 'user', content: 'q' }] })).toBe(false);
    expect(hasTrainingTarget({ kind: 'text', text: '' })).toBe(false);
  });
});
