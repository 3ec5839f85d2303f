// Training records for the drafter (dflash-spec §3.1): token ids with a loss mask that is 1 on response tokens
// only. Accepted lines: {"prompt_ids", "response_ids"} (what `dflash generate-data` writes), {"input_ids",
// "loss_mask"}, or {"prompt", "response"} text (tokenized here, raw: prompt then response). Sequences are cut to
// seqLen; samples with fewer than 2·B response tokens are dropped (SpecForge), and none left is an error.
import type { TextTokenizer } from '../io/tokenizer.js';
import { UserError } from '../errors.js';

export interface TrainingSample {
  ids: Int32Array;
  /** 1 on response (assistant) tokens. */
  lossMask: Uint8Array;
  /** 1-based line of the data file. */
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

function intList(v: unknown, what: string, line: number, file: string, vocab: number): Int32Array {
  if (!Array.isArray(v)) throw new UserError(`line ${line}: "${what}" must be a list of token ids`, { file });
  const out = new Int32Array(v.length);
  for (let i = 0; i < v.length; i++) {
    const x = v[i];
    if (typeof x !== 'number' || !Number.isInteger(x) || x < 0 || x >= vocab) {
      throw new UserError(`line ${line}: "${what}"[${i}] = ${JSON.stringify(x)} is not a token id of the target (vocabulary ${vocab})`, { file });
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
}

/** Parse the lines of a training data file, in order (file names it in errors). */
export function parseTrainingData(lines: Iterable<string>, file: string, opts: TrainingDataOptions): TrainingData {
  const samples: TrainingSample[] = [];
  let records = 0;
  let droppedShort = 0;
  let droppedEmpty = 0;
  let truncated = 0;
  let tokens = 0;
  let responseTokens = 0;
  let line = 0;
  for (const raw of lines) {
    line++;
    const s = raw.trim();
    if (s === '') continue;
    let rec: Record<string, unknown>;
    try {
      rec = JSON.parse(s) as Record<string, unknown>;
    } catch (e) {
      throw new UserError(`line ${line}: invalid JSON (${(e as Error).message})`, { file, cause: e });
    }
    if (typeof rec !== 'object' || rec === null || Array.isArray(rec)) throw new UserError(`line ${line}: expected a JSON object`, { file });
    records++;
    let ids: Int32Array;
    let mask: Uint8Array;
    if ('prompt_ids' in rec || 'response_ids' in rec) {
      const p = intList(rec.prompt_ids, 'prompt_ids', line, file, opts.vocabSize);
      const r = intList(rec.response_ids, 'response_ids', line, file, opts.vocabSize);
      ids = new Int32Array(p.length + r.length);
      ids.set(p);
      ids.set(r, p.length);
      mask = new Uint8Array(ids.length);
      mask.fill(1, p.length);
    } else if ('input_ids' in rec) {
      ids = intList(rec.input_ids, 'input_ids', line, file, opts.vocabSize);
      const m = rec.loss_mask;
      if (!Array.isArray(m) || m.length !== ids.length || m.some((x) => x !== 0 && x !== 1)) {
        throw new UserError(`line ${line}: "loss_mask" must be a list of 0/1 as long as "input_ids" (${ids.length})`, { file });
      }
      mask = Uint8Array.from(m as number[]);
    } else if (typeof rec.prompt === 'string' && typeof rec.response === 'string') {
      if (!opts.tokenizer) throw new UserError(`line ${line}: text records need the target's tokenizer.json`, { file });
      const p = opts.tokenizer.encode(rec.prompt, { addSpecialTokens: true });
      const r = opts.tokenizer.encode(rec.response, { addSpecialTokens: false });
      ids = Int32Array.from([...p, ...r]);
      mask = new Uint8Array(ids.length);
      mask.fill(1, p.length);
    } else {
      throw new UserError(`line ${line}: expected {"prompt_ids", "response_ids"}, {"input_ids", "loss_mask"} or {"prompt", "response"} (strings)`, { file });
    }
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
