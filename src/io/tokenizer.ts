// Text ⇄ token ids for a Hugging Face model folder: tokenizer.json through @huggingface/tokenizers, chat templates
// (tokenizer_config.json `chat_template` or a chat_template.jinja file) through @huggingface/jinja.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SandboxedTemplate } from './chat-template.js';
import { Tokenizer } from '@huggingface/tokenizers';
import { UserError } from '../errors.js';
import { readSideFile } from './input-file.js';

export interface ChatMessage {
  role: string;
  content: string;
}

export interface TextTokenizer {
  encode(text: string, opts?: { addSpecialTokens?: boolean }): number[];
  decode(ids: ArrayLike<number>, opts?: { skipSpecialTokens?: boolean }): string;
  /** One past the largest id the tokenizer can produce (model vocabulary and added tokens). */
  readonly vocabSize: number;
  tokenId(token: string): number | undefined;
  /** Id of tokenizer_config.json's eos_token, or null when it names none. */
  readonly eosTokenId: number | null;
  readonly hasChatTemplate: boolean;
  applyChatTemplate(messages: ChatMessage[], opts?: { addGenerationPrompt?: boolean; enableThinking?: boolean }): string;
}

type Json = Record<string, unknown>;

function readJson(file: string, what: string): unknown {
  const text = readSideFile(file, `the ${what}`);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new UserError(`the ${what} is not valid JSON: ${(e as Error).message}`, { file, cause: e });
  }
}

/** A special-token entry of tokenizer_config.json: a string or an AddedToken-like {content}. */
function tokenContent(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (typeof v === 'object' && v !== null && typeof (v as Json).content === 'string') return (v as Json).content as string;
  return null;
}

/** The chat template and its file: chat_template.jinja wins over tokenizer_config.json (as transformers saves them). */
function readChatTemplate(dir: string, config: Json, configFile: string): { source: string; file: string } | null {
  const jinjaFile = join(dir, 'chat_template.jinja');
  if (existsSync(jinjaFile)) return { source: readSideFile(jinjaFile, 'the chat template', 16 * 2 ** 20), file: jinjaFile };
  const t = config.chat_template;
  if (t === undefined || t === null) return null;
  if (typeof t === 'string') return { source: t, file: configFile };
  // A list of named templates: the one named "default", else the first.
  if (Array.isArray(t)) {
    const named = t.filter((e): e is { name: string; template: string } =>
      typeof e === 'object' && e !== null && typeof (e as Json).template === 'string');
    if (named.length === 0) throw new UserError('chat_template is a list without any {name, template} entry', { file: configFile });
    return { source: (named.find((e) => e.name === 'default') ?? named[0]).template, file: configFile };
  }
  throw new UserError('chat_template must be a string or a list of {name, template}', { file: configFile });
}

/** Loads `<dir>/tokenizer.json` (+ `tokenizer_config.json`, `chat_template.jinja` when present). Synchronous. */
export function loadTokenizer(dir: string): TextTokenizer {
  const tokFile = join(dir, 'tokenizer.json');
  if (!existsSync(tokFile)) throw new UserError('tokenizer.json not found; the model folder needs one', { file: tokFile });
  const tokJson = readJson(tokFile, 'tokenizer file');
  if (typeof tokJson !== 'object' || tokJson === null || typeof (tokJson as Json).model !== 'object') {
    throw new UserError('tokenizer.json has no "model" section; is it a Hugging Face tokenizers file?', { file: tokFile });
  }
  const cfgFile = join(dir, 'tokenizer_config.json');
  const cfgRaw = existsSync(cfgFile) ? readJson(cfgFile, 'tokenizer config') : {};
  if (typeof cfgRaw !== 'object' || cfgRaw === null || Array.isArray(cfgRaw)) {
    throw new UserError('tokenizer_config.json must hold a JSON object', { file: cfgFile });
  }
  const config: Json = { ...(cfgRaw as Json) };
  // transformers 5 no longer cleans up spaces by default; tokenizers.js still would, which breaks round trips on code.
  config.clean_up_tokenization_spaces ??= false;
  // The template is rendered here, not by tokenizers.js.
  const chatTemplate = readChatTemplate(dir, config, cfgFile);
  delete config.chat_template;

  let tok: Tokenizer;
  try {
    tok = new Tokenizer(tokJson, config);
  } catch (e) {
    throw new UserError(`cannot build the tokenizer: ${(e as Error).message}`, { file: tokFile, cause: e });
  }
  const text = new HfTextTokenizer(tok, config, chatTemplate);
  checkVocabFitsModel(text.vocabSize, dir, tokFile);
  return text;
}

/**
 * A tokenizer that can produce ids at or above config.json's vocab_size would index past the embedding
 * (gatherRows: index outside [0, V)) deep inside a run; refuse it at load time, naming both files. Checked only when
 * the folder's config.json is readable and declares vocab_size (its own errors come from the config loader).
 */
function checkVocabFitsModel(tokenizerVocab: number, dir: string, tokFile: string): void {
  const cfgFile = join(dir, 'config.json');
  let vocab: unknown;
  try {
    vocab = (JSON.parse(readFileSync(cfgFile, 'utf8')) as Json).vocab_size;
  } catch {
    return;
  }
  if (typeof vocab !== 'number' || !Number.isInteger(vocab) || vocab <= 0) return;
  if (tokenizerVocab > vocab) {
    throw new UserError(
      `the tokenizer produces token ids up to ${tokenizerVocab - 1}, but ${cfgFile} says vocab_size ${vocab}: ` +
        'the tokenizer does not belong to this model',
      { file: tokFile },
    );
  }
}

class HfTextTokenizer implements TextTokenizer {
  readonly vocabSize: number;
  readonly eosTokenId: number | null;
  readonly hasChatTemplate: boolean;
  private readonly bosToken: string | null;
  private readonly eosToken: string | null;
  private readonly template: SandboxedTemplate | null;

  constructor(private readonly tok: Tokenizer, config: Json, chatTemplate: { source: string; file: string } | null) {
    let maxId = -1;
    for (const id of tok.get_vocab(true).values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;
    this.bosToken = tokenContent(config.bos_token);
    this.eosToken = tokenContent(config.eos_token);
    this.eosTokenId = this.eosToken === null ? null : (tok.token_to_id(this.eosToken) ?? null);
    this.hasChatTemplate = chatTemplate !== null;
    this.template = chatTemplate && new SandboxedTemplate(chatTemplate.source, chatTemplate.file);
  }

  encode(text: string, opts: { addSpecialTokens?: boolean } = {}): number[] {
    return this.tok.encode(text, { add_special_tokens: opts.addSpecialTokens ?? true }).ids;
  }

  decode(ids: ArrayLike<number>, opts: { skipSpecialTokens?: boolean } = {}): string {
    // tokenizers.js rejects an empty list; the empty string is its decoding.
    if (ids.length === 0) return '';
    return this.tok.decode(Array.from(ids), { skip_special_tokens: opts.skipSpecialTokens ?? false });
  }

  tokenId(token: string): number | undefined {
    return this.tok.token_to_id(token);
  }

  applyChatTemplate(messages: ChatMessage[], opts: { addGenerationPrompt?: boolean; enableThinking?: boolean } = {}): string {
    if (this.template === null) {
      throw new UserError('this tokenizer has no chat template (tokenizer_config.json chat_template or chat_template.jinja)');
    }
    const vars: Json = {
      messages,
      add_generation_prompt: opts.addGenerationPrompt ?? false,
      bos_token: this.bosToken ?? '',
      eos_token: this.eosToken ?? '',
    };
    // Only defined when asked: Qwen3's template tests `enable_thinking is defined`.
    if (opts.enableThinking !== undefined) vars.enable_thinking = opts.enableThinking;
    // Rendered in a worker under time, memory and output limits (chat-template.ts): the template is untrusted code.
    return this.template.render(vars);
  }
}
