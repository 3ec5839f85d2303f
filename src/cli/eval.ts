// `paro eval`: perplexity of a model directory (FP or ParoQuant INT4) on a text file, REFERENCE.md protocol.
import type { Backend } from '../engine/backend.js';
import { loadModel } from '../model/load.js';
import { perplexity } from '../model/perplexity.js';
import { loadTokenizer } from '../io/tokenizer.js';
import { perplexityWindows, readTextDocuments, tokenizeCorpus } from '../io/datasets.js';
import { UserError } from '../errors.js';
import { Progress } from './progress.js';

export interface EvalSettings {
  modelDir: string;
  dataFile: string;
  seqLen: number;
  maxWindows: number;
  batch: number;
  /** Skip this many leading tokens of the data (e.g. text already used for calibration). */
  startToken?: number;
}

export interface EvalReport {
  command: 'eval';
  model: string;
  data: string;
  device: string;
  backend: string;
  ppl: number;
  meanNll: number;
  windows: number;
  seqLen: number;
  /** Tokens in the tokenized data file. */
  dataTokens: number;
  /** Next-token predictions scored (windows × (seqLen − 1)). */
  tokens: number;
  quantized: boolean;
  seconds: number;
  tokensPerSecond: number;
}

export function runEval(be: Backend, s: EvalSettings, showProgress = true): EvalReport {
  const t0 = performance.now();
  const model = loadModel(be, s.modelDir);
  const tok = loadTokenizer(s.modelDir);
  const docs = readTextDocuments(s.dataFile);
  const eos = model.cfg.eosTokenIds[0] ?? tok.eosTokenId;
  if (eos === null || eos === undefined) throw new UserError('cannot tell the end-of-text token: config.json has no eos_token_id', { file: s.modelDir });
  const tokens = tokenizeCorpus(docs, tok, eos).subarray(s.startToken ?? 0);
  const starts = perplexityWindows(tokens.length, s.seqLen, s.maxWindows);
  if (starts.length === 0) {
    throw new UserError(`too little text for one window: ${tokens.length} tokens, need more than ${s.seqLen + 1}`, { file: s.dataFile });
  }
  const bar = showProgress ? new Progress('eval windows', starts.length) : null;
  const tEval = performance.now();
  const r = perplexity(model.decoder, tokens, {
    seqLen: s.seqLen, starts, batch: s.batch,
    onProgress: (done) => bar?.update(done),
  });
  bar?.stop();
  const evalSeconds = (performance.now() - tEval) / 1000;
  return {
    command: 'eval',
    model: s.modelDir,
    data: s.dataFile,
    device: be.device,
    backend: be.name,
    ppl: r.ppl,
    meanNll: r.meanNll,
    windows: r.windows,
    seqLen: s.seqLen,
    dataTokens: tokens.length,
    tokens: r.tokens,
    quantized: model.cfg.quantization !== null,
    seconds: (performance.now() - t0) / 1000,
    tokensPerSecond: (r.windows * s.seqLen) / evalSeconds,
  };
}
