// Open a model directory: config, checkpoint (lazy) and weights on a backend, ready for the decoder.
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Backend } from '../engine/backend.js';
import { loadModelConfig, type ModelConfig } from '../io/config.js';
import { Checkpoint } from '../io/checkpoint.js';
import { UserError } from '../errors.js';
import { Decoder } from './decoder.js';
import type { RopePrecision } from './rope-freq.js';
import { loadModelWeights, type LoadOptions } from './weights.js';

export interface LoadedModel {
  dir: string;
  cfg: ModelConfig;
  decoder: Decoder;
}

export function checkModelDir(dir: string): void {
  if (!existsSync(dir)) throw new UserError('model directory does not exist', { file: dir });
  if (!statSync(dir).isDirectory()) throw new UserError('expected a model directory (config.json + *.safetensors)', { file: dir });
  if (!existsSync(path.join(dir, 'config.json'))) throw new UserError('no config.json in the model directory', { file: dir });
}

export function loadModel(be: Backend, dir: string, opts: LoadOptions & { ropePrecision?: RopePrecision } = {}): LoadedModel {
  checkModelDir(dir);
  const cfg = loadModelConfig(dir);
  const ck = Checkpoint.open(dir);
  try {
    const weights = loadModelWeights(be, ck, cfg, opts);
    return { dir, cfg, decoder: new Decoder(be, cfg, weights, opts.ropePrecision) };
  } finally {
    ck.close();
  }
}
