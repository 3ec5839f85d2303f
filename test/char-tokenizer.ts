// Shared test helper: a toy tokenizer with one id per character code, so expected corpora can be written down by hand.
import type { TextTokenizer } from '../src/io/tokenizer.js';

export const charTok: TextTokenizer = {
  encode: (t) => Array.from(t, (c) => c.codePointAt(0)!),
  decode: (ids) => String.fromCodePoint(...Array.from(ids)),
  vocabSize: 0x110000,
  tokenId: () => undefined,
  eosTokenId: null,
  hasChatTemplate: false,
  applyChatTemplate: () => '',
};
