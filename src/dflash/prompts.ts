// Prompt → token ids the way the target is served (dflash-spec §3.1): with the model's chat template when it has
// one (a user turn and the generation prompt), raw text continuation otherwise.
import type { ChatMessage, TextTokenizer } from '../io/tokenizer.js';
import type { Prompt } from '../io/datasets.js';
import { UserError } from '../errors.js';

export interface PromptEncoding {
  /** 'auto': the chat template when the tokenizer has one; 'never': raw text (messages are then refused). */
  chatTemplate: 'auto' | 'never';
  /** Qwen3-style enable_thinking flag passed to the template (undefined: the template's default). */
  enableThinking?: boolean;
}

export interface EncodedPrompt {
  ids: Int32Array;
  /** The text the ids were encoded from (templated or raw). */
  text: string;
  templated: boolean;
}

export function encodePrompt(tok: TextTokenizer, p: Prompt, enc: PromptEncoding): EncodedPrompt {
  const useTemplate = enc.chatTemplate === 'auto' && tok.hasChatTemplate;
  if (useTemplate) {
    const messages: ChatMessage[] = p.kind === 'text' ? [{ role: 'user', content: p.prompt }] : p.messages;
    const text = tok.applyChatTemplate(messages, { addGenerationPrompt: true, enableThinking: enc.enableThinking });
    // The rendered template already holds every special token it needs.
    return { ids: Int32Array.from(tok.encode(text, { addSpecialTokens: false })), text, templated: true };
  }
  if (p.kind === 'messages') {
    throw new UserError(tok.hasChatTemplate
      ? 'a {"messages": [...]} prompt needs the chat template, which the settings turned off (raw-text encoding)'
      : 'a {"messages": [...]} prompt needs a chat template, and this tokenizer has none (use {"prompt": ...} lines)');
  }
  return { ids: Int32Array.from(tok.encode(p.prompt, { addSpecialTokens: true })), text: p.prompt, templated: false };
}
