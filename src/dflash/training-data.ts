// Training records for the drafter (dflash-spec §3.1): token ids with a loss mask that is 1 on response tokens
// only. Accepted records (a JSON line or a parquet row): {"prompt_ids", "response_ids"} (what `dflash generate-data`
// writes), {"input_ids", "loss_mask"}, or text in any shape io/chat-records knows — {"prompt", "response"}, {"text"},
// OpenAI {"messages"}, ShareGPT {"conversations"}, multi-turn — rendered with the target's chat template, the loss
// mask on the assistant turns (chatSequences). Sequences are cut to seqLen; samples with fewer than 2·B response
// tokens are dropped (SpecForge), and none left is an error.
import type { ChatMessage, TextTokenizer } from '../io/tokenizer.js';
import { normalizeChatRecord, type ChatTurn, type RecordOrigin } from '../io/chat-records.js';
import { UserError } from '../errors.js';
import type { PromptEncoding } from './prompts.js';

export interface TrainingSample {
  ids: Int32Array;
  /** 1 on response (assistant) tokens. */
  lossMask: Uint8Array;
  /** 1-based line of the data file (for a parquet file: 1-based row). */
  line: number;
}

export interface TrainingData {
  samples: TrainingSample[];
  records: number;
  /** Records dropped for having fewer than 2·B response tokens (after truncation). */
  droppedShort: number;
  /** Records with no response token at all. */
  droppedEmpty: number;
  truncated: number;
  tokens: number;
  responseTokens: number;
}

function intList(v: unknown, what: string, at: string, file: string, vocab: number): Int32Array {
  if (!Array.isArray(v)) throw new UserError(`${at}: "${what}" must be a list of token ids`, { file });
  const out = new Int32Array(v.length);
  for (let i = 0; i < v.length; i++) {
    const x = v[i];
    if (typeof x !== 'number' || !Number.isInteger(x) || x < 0 || x >= vocab) {
      throw new UserError(`${at}: "${what}"[${i}] = ${JSON.stringify(x)} is not a token id of the target (vocabulary ${vocab})`, { file });
    }
    out[i] = x;
  }
  return out;
}

export interface TrainingDataOptions {
  seqLen: number;
  blockSize: number;
  vocabSize: number;
  tokenizer: TextTokenizer | null;
  /** How text records are encoded: with the chat template when the tokenizer has one ('auto', the default), or raw ('never'). */
  encoding?: PromptEncoding;
}

/** One record of the data file: a parsed JSON line (1-based line) or a parquet row (0-based row). */
export interface TrainingRecord {
  value: unknown;
  line?: number;
  row?: number;
}

/** A token sequence and its loss mask. */
export interface MaskedSequence {
  ids: Int32Array;
  mask: Uint8Array;
}

function concat(parts: { ids: number[]; learn: boolean }[]): MaskedSequence {
  const n = parts.reduce((a, p) => a + p.ids.length, 0);
  const ids = new Int32Array(n);
  const mask = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    ids.set(p.ids, at);
    if (p.learn) mask.fill(1, at, at + p.ids.length);
    at += p.ids.length;
  }
  return { ids, mask };
}

/**
 * A conversation as the target sees it when serving, with the loss mask on what it writes. For each assistant turn j,
 * the context is the template's rendering of turns 0..j−1 with the generation prompt, and the answer is what the
 * rendering of turns 0..j adds to it (the answer and the template's end-of-turn text). Each piece is tokenized on its
 * own, as serving does (the prompt is encoded, the answer generated token by token). Consecutive answers share one
 * sequence while the history renders the same; a template that renders earlier turns differently once a later one
 * exists (Qwen3 drops earlier reasoning blocks) starts a new sequence, so every sequence is one the target sees.
 */
export function chatSequences(tok: TextTokenizer, turns: ChatTurn[], enableThinking: boolean | undefined, at: string, file: string): MaskedSequence[] {
  const render = (upTo: number, gen: boolean): string => {
    const messages: ChatMessage[] = turns.slice(0, upTo).map((t) => ({ role: t.role, content: t.content }));
    return tok.applyChatTemplate(messages, { addGenerationPrompt: gen, enableThinking });
  };
  const encode = (text: string): number[] => tok.encode(text, { addSpecialTokens: false });
  const out: MaskedSequence[] = [];
  let parts: { ids: number[]; learn: boolean }[] = [];
  let rendered = '';
  for (let j = 0; j < turns.length; j++) {
    if (turns[j].role !== 'assistant') continue;
    const context = render(j, true);
    const full = render(j + 1, false);
    if (!full.startsWith(context)) {
      throw new UserError(`${at}: the chat template renders turn ${j} so that the conversation before it is not a prefix of the ` +
        'conversation with it; the assistant text cannot be located', { file });
    }
    if (parts.length > 0 && context.startsWith(rendered)) {
      parts.push({ ids: encode(context.slice(rendered.length)), learn: false });
    } else {
      if (parts.length > 0) out.push(concat(parts));
      parts = [{ ids: encode(context), learn: false }];
    }
    parts.push({ ids: encode(full.slice(context.length)), learn: true });
    rendered = full;
  }
  if (parts.length > 0) out.push(concat(parts));
  return out;
}

/** A text record as sequences: templated, raw (one exchange: prompt then response), or plain text (all learned). */
function textSequences(value: unknown, origin: RecordOrigin, at: string, opts: TrainingDataOptions): MaskedSequence[] {
  const file = origin.file;
  const record = normalizeChatRecord(value, origin);
  const tok = opts.tokenizer;
  if (!tok) throw new UserError(`${at}: text records need the target's tokenizer.json`, { file });
  if (record.kind === 'text') {
    const ids = Int32Array.from(tok.encode(record.text, { addSpecialTokens: true }));
    return [{ ids, mask: new Uint8Array(ids.length).fill(1) }];
  }
  const encoding = opts.encoding ?? { chatTemplate: 'auto' };
  if (encoding.chatTemplate === 'auto' && tok.hasChatTemplate) return chatSequences(tok, record.turns, encoding.enableThinking, at, file);
  const [user, answer] = record.turns;
  if (record.turns.length !== 2 || user.role !== 'user' || answer.role !== 'assistant') {
    throw new UserError(`${at}: a conversation other than one user turn and one answer needs the chat template` +
      (tok.hasChatTemplate ? ', which the settings turned off' : ', and this tokenizer has none'), { file });
  }
  return [concat([
    { ids: tok.encode(user.content, { addSpecialTokens: true }), learn: false },
    { ids: tok.encode(answer.content, { addSpecialTokens: false }), learn: true },
  ])];
}

/** Parse the records of a training data file, in order (file names it in errors). */
export function parseTrainingData(input: Iterable<TrainingRecord>, file: string, opts: TrainingDataOptions): TrainingData {
  const samples: TrainingSample[] = [];
  let records = 0;
  let droppedShort = 0;
  let droppedEmpty = 0;
  let truncated = 0;
  let tokens = 0;
  let responseTokens = 0;
  for (const { value, line: lineNo, row } of input) {
    const at = lineNo !== undefined ? `line ${lineNo}` : `row ${row}`;
    const line = lineNo ?? (row ?? 0) + 1;
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new UserError(`${at}: expected a JSON object`, { file });
    const rec = value as Record<string, unknown>;
    records++;
    let sequences: MaskedSequence[];
    if ('prompt_ids' in rec || 'response_ids' in rec) {
      const p = intList(rec.prompt_ids, 'prompt_ids', at, file, opts.vocabSize);
      const r = intList(rec.response_ids, 'response_ids', at, file, opts.vocabSize);
      const ids = new Int32Array(p.length + r.length);
      ids.set(p);
      ids.set(r, p.length);
      const mask = new Uint8Array(ids.length);
      mask.fill(1, p.length);
      sequences = [{ ids, mask }];
    } else if ('input_ids' in rec) {
      const ids = intList(rec.input_ids, 'input_ids', at, file, opts.vocabSize);
      const m = rec.loss_mask;
      if (!Array.isArray(m) || m.length !== ids.length || m.some((x) => x !== 0 && x !== 1)) {
        throw new UserError(`${at}: "loss_mask" must be a list of 0/1 as long as "input_ids" (${ids.length})`, { file });
      }
      sequences = [{ ids, mask: Uint8Array.from(m as number[]) }];
    } else {
      sequences = textSequences(rec, { file, line: lineNo, row }, at, opts);
    }
    if (sequences.length === 0) droppedEmpty++; // a conversation without an answer
    for (let { ids, mask } of sequences) {
      if (ids.length > opts.seqLen) {
        ids = ids.slice(0, opts.seqLen);
        mask = mask.slice(0, opts.seqLen);
        truncated++;
      }
      let resp = 0;
      for (let k = 0; k < mask.length; k++) resp += mask[k];
      if (resp === 0) {
        droppedEmpty++;
        continue;
      }
      if (resp < 2 * opts.blockSize) {
        droppedShort++;
        continue;
      }
      samples.push({ ids, lossMask: mask, line });
      tokens += ids.length;
      responseTokens += resp;
    }
  }
  if (records === 0) throw new UserError('the training data file holds no records', { file });
  if (samples.length === 0) {
    const why = droppedEmpty === records
      ? `none of its ${records} record(s) has a response token (loss mask all 0)`
      : `all ${records} record(s) have fewer than 2·block_size = ${2 * opts.blockSize} response tokens` +
        (droppedEmpty > 0 ? ` (${droppedEmpty} have none)` : '') + `; a block needs ${opts.blockSize} tokens after its anchor`;
    throw new UserError(`no usable training sample: ${why}`, { file });
  }
  return { samples, records, droppedShort, droppedEmpty, truncated, tokens, responseTokens };
}
