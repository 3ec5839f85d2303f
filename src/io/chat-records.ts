// One training or prompt record, whatever shape the user keeps it in, as a typed list of chat turns:
//   {"prompt": ..., "response": ...}                      a single exchange (response optional: a prompt to answer)
//   {"text": ...} or {"response": ...} alone                plain text, no chat template
//   {"messages": [{"role", "content"}, ...]}               OpenAI style, multi-turn; content may be a list of text parts
//   {"conversations": [{"from": "human"|"gpt"|"system", "value"}, ...]}   ShareGPT, multi-turn
// Rendering the turns with the model's chat template is io/tokenizer.ts's job; this module only normalizes.
import { UserError } from '../errors.js';

export type ChatRole = 'system' | 'user' | 'assistant';

/** One turn of a conversation, the input of the chat-template rendering. */
export interface ChatTurn {
  role: ChatRole;
  content: string;
}

export type ChatRecord =
  /** A conversation: the drafter learns the assistant turns; a prompt file's record ends with a user turn. */
  | { kind: 'chat'; turns: ChatTurn[] }
  /** Plain text: tokenized as it is, every token learned. */
  | { kind: 'text'; text: string };

/** Where a record came from, for messages: "data.jsonl: line 12: ..." or "data.parquet: row 3: ...". */
export interface RecordOrigin {
  file: string;
  line?: number;
  row?: number;
}

const OPENAI_ROLES: Record<string, ChatRole> = {
  system: 'system',
  developer: 'system', // OpenAI's newer name for the system turn
  user: 'user',
  assistant: 'assistant',
};

const SHAREGPT_ROLES: Record<string, ChatRole> = {
  system: 'system',
  human: 'user',
  user: 'user',
  gpt: 'assistant',
  assistant: 'assistant',
  chatgpt: 'assistant',
};

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function fail(origin: RecordOrigin, message: string): never {
  const at = origin.line !== undefined ? `line ${origin.line}: ` : origin.row !== undefined ? `row ${origin.row}: ` : '';
  throw new UserError(`${at}${message}`, { file: origin.file, exitCode: 2 });
}

/** OpenAI content: a string, or a list of parts of which only {type: "text", text} are supported. */
function contentText(content: unknown, where: string, origin: RecordOrigin): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content.map((part, j) => {
      if (isObject(part) && part.type === 'text' && typeof part.text === 'string') return part.text;
      const kind = isObject(part) && typeof part.type === 'string' ? `a ${JSON.stringify(part.type)} part` : 'a part that is not {type: "text", text}';
      return fail(origin, `${where}.content[${j}] is ${kind}; only text is supported`);
    }).join('');
  }
  return fail(origin, `${where}.content must be a string or a list of text parts, got ${content === null ? 'null' : typeof content}`);
}

function openAiTurns(messages: unknown, origin: RecordOrigin): ChatTurn[] {
  if (!Array.isArray(messages)) fail(origin, '"messages" must be a list of {role, content}');
  return messages.map((m, i) => {
    const where = `messages[${i}]`;
    if (!isObject(m)) return fail(origin, `${where} must be an object {role, content}`);
    const role = typeof m.role === 'string' ? OPENAI_ROLES[m.role] : undefined;
    if (!role) {
      return fail(origin, `${where}.role ${JSON.stringify(m.role)} is not supported (system, user, assistant)`);
    }
    return { role, content: contentText(m.content, where, origin) };
  });
}

function shareGptTurns(conversations: unknown, origin: RecordOrigin): ChatTurn[] {
  if (!Array.isArray(conversations)) fail(origin, '"conversations" must be a list of {from, value}');
  return conversations.map((m, i) => {
    const where = `conversations[${i}]`;
    if (!isObject(m)) return fail(origin, `${where} must be an object {from, value}`);
    const role = typeof m.from === 'string' ? SHAREGPT_ROLES[m.from.toLowerCase()] : undefined;
    if (!role) {
      return fail(origin, `${where}.from ${JSON.stringify(m.from)} is not supported (human, gpt, system)`);
    }
    if (typeof m.value !== 'string') return fail(origin, `${where}.value must be a string`);
    return { role, content: m.value };
  });
}

/** Turn order a chat template accepts: an optional leading system turn, then user and assistant alternating. */
function checkOrder(turns: ChatTurn[], origin: RecordOrigin, key: string): void {
  if (turns.length === 0) fail(origin, `"${key}" is empty`);
  let i = turns[0].role === 'system' ? 1 : 0;
  if (i === turns.length) fail(origin, `"${key}" holds only a system turn`);
  if (turns[i].role !== 'user') fail(origin, `"${key}" must start with a user turn (after an optional system turn), got ${turns[i].role}`);
  for (let expect: ChatRole = 'user'; i < turns.length; i++, expect = expect === 'user' ? 'assistant' : 'user') {
    if (turns[i].role !== expect) {
      fail(origin, `"${key}" turn ${i} is ${turns[i].role} where ${expect} was expected (turns must alternate user/assistant)`);
    }
  }
}

/**
 * One parsed record (a JSON line, a JSON array element or a parquet row) as a ChatRecord. Other keys (id, source...)
 * are ignored; a record matching no shape, or two at once, is a UserError naming the file and line/row.
 */
export function normalizeChatRecord(value: unknown, origin: RecordOrigin): ChatRecord {
  if (typeof value === 'string') return { kind: 'text', text: value }; // a .json array of strings
  if (!isObject(value)) fail(origin, `a record must be an object, got ${Array.isArray(value) ? 'a list' : value === null ? 'null' : typeof value}`);
  const shapes = ['messages', 'conversations', 'prompt', 'text'].filter((k) => value[k] !== undefined && value[k] !== null);
  if (shapes.length > 1) {
    fail(origin, `the record has both ${shapes.map((s) => `"${s}"`).join(' and ')}; keep one shape per record`);
  }
  if (shapes.includes('messages')) {
    const turns = openAiTurns(value.messages, origin);
    checkOrder(turns, origin, 'messages');
    return { kind: 'chat', turns };
  }
  if (shapes.includes('conversations')) {
    const turns = shareGptTurns(value.conversations, origin);
    checkOrder(turns, origin, 'conversations');
    return { kind: 'chat', turns };
  }
  if (shapes.includes('prompt')) {
    if (typeof value.prompt !== 'string') fail(origin, '"prompt" must be a string');
    const turns: ChatTurn[] = [];
    if (typeof value.system === 'string') turns.push({ role: 'system', content: value.system });
    turns.push({ role: 'user', content: value.prompt });
    const response = value.response ?? value.completion;
    if (response !== undefined && response !== null) {
      if (typeof response !== 'string') fail(origin, `"${value.response !== undefined ? 'response' : 'completion'}" must be a string`);
      turns.push({ role: 'assistant', content: response });
    }
    return { kind: 'chat', turns };
  }
  const text = value.text ?? value.response;
  if (text !== undefined && text !== null) {
    if (typeof text !== 'string') fail(origin, `"${value.text !== undefined ? 'text' : 'response'}" must be a string`);
    return { kind: 'text', text };
  }
  const keys = Object.keys(value);
  return fail(origin, `unrecognized record (keys: ${keys.length ? keys.join(', ') : 'none'}); expected {"prompt", "response"}, ` +
    '{"text"}, {"messages": [{role, content}]} or {"conversations": [{from, value}]}');
}

/**
 * The turns a target model answers when regenerating data: everything up to and including the last user turn (a
 * trailing assistant answer is dropped; the target writes its own). undefined for plain text or a record with no user turn.
 */
export function promptTurns(record: ChatRecord): ChatTurn[] | undefined {
  if (record.kind !== 'chat') return undefined;
  let last = record.turns.length - 1;
  while (last >= 0 && record.turns[last].role !== 'user') last--;
  return last < 0 ? undefined : record.turns.slice(0, last + 1);
}

/** True when the record has something for the drafter to learn (plain text, or at least one assistant turn). */
export function hasTrainingTarget(record: ChatRecord): boolean {
  return record.kind === 'text' ? record.text.length > 0 : record.turns.some((t) => t.role === 'assistant');
}
