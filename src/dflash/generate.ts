// Data regeneration (dflash-spec §3.1): the target regenerates the response of every prompt with KV-cached decoding
// (greedy or temperature sampling), prompts decoded in groups. Each finished prompt becomes one record
// {index, prompt|messages, response, prompt_ids, response_ids, finish, gen}; the job stores and orders them.
import type { Decoder } from '../model/decoder.js';
import type { TextTokenizer } from '../io/tokenizer.js';
import type { Prompt } from '../io/datasets.js';
import { batchGenerate } from './batch-decode.js';

/** The generation settings stored in every record (resumed records must carry the same). */
export interface GenStamp {
  max_new_tokens: number;
  temperature: number;
  ignore_eos: boolean;
  seed: number;
  chat_template: boolean;
  enable_thinking: boolean | null;
}

export interface GeneratedRecord {
  index: number;
  prompt?: string;
  messages?: unknown;
  response: string;
  prompt_ids: number[];
  response_ids: number[];
  finish: 'stop' | 'length';
  gen: GenStamp;
}

/** Seed of prompt i's sampling: independent of which prompts ran before (resumable). */
export function promptSeed(seed: number, index: number): number {
  return (Math.imul(seed, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b)) | 0;
}

export interface PendingPrompt {
  index: number;
  prompt: Prompt;
  ids: Int32Array;
}

export interface RegenerateOptions {
  maxNewTokens: number;
  temperature: number;
  stopTokenIds: number[];
  seed: number;
  /** Prompts decoded together. */
  batch: number;
  stamp: GenStamp;
}

/**
 * Regenerate the responses of `pending` in groups of opts.batch; onRecord receives each record as its prompt
 * finishes, onGroupEnd after each group (a point where everything so far may be flushed to disk).
 */
export function regenerate(
  target: Decoder, tok: TextTokenizer, pending: readonly PendingPrompt[], opts: RegenerateOptions,
  onRecord: (rec: GeneratedRecord) => void, onGroupEnd?: () => void,
): void {
  const stopSet = new Set(opts.stopTokenIds);
  const batch = Math.max(1, opts.batch);
  for (let g = 0; g < pending.length; g += batch) {
    const group = pending.slice(g, g + batch);
    batchGenerate(target, group.map((p) => p.ids), {
      maxNewTokens: opts.maxNewTokens, temperature: opts.temperature, stopTokenIds: opts.stopTokenIds, seeds: group.map((p) => promptSeed(opts.seed, p.index)),
    }, (k, outputIds) => {
      const { index, prompt, ids } = group[k];
      const finish = outputIds.length > 0 && stopSet.has(outputIds[outputIds.length - 1]) ? 'stop' : 'length';
      // Field order is the file format: keep it.
      onRecord({
        index,
        ...(prompt.kind === 'text' ? { prompt: prompt.prompt } : { messages: prompt.messages }),
        response: tok.decode(outputIds, { skipSpecialTokens: false }),
        prompt_ids: Array.from(ids),
        response_ids: outputIds,
        finish,
        gen: opts.stamp,
      });
    });
    onGroupEnd?.();
  }
}
