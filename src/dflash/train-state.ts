// Resumable training state: drafter weights and AdamW moments (f32 safetensors) plus the step, the settings they
// belong to and the log so far (JSON). Saved into a sibling directory of the output and replaced atomically, so an
// interrupted run resumes from its last checkpoint with the same trajectory (anchors and order depend only on the
// seed, epoch and sample index).
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Backend } from '../engine/backend.js';
import { prepareOutput } from '../io/atomic-output.js';
import { writeSafetensors, type TensorData } from '../io/safetensors-writer.js';
import { Checkpoint } from '../io/checkpoint.js';
import { UserError } from '../errors.js';
import type { DrafterConfig } from './drafter-config.js';
import { buildDrafterWeights, drafterTensors, type DrafterWeights } from './drafter-weights.js';

export interface TrainState {
  weights: DrafterWeights;
  m: DrafterWeights;
  v: DrafterWeights;
  /** Optimizer steps done. */
  step: number;
}

export interface StateMeta<Log> {
  /** Identifies the settings + data the state belongs to; a resume with another key is refused. */
  key: string;
  step: number;
  totalSteps: number;
  log: Log;
  savedAt: string;
}

const STATE_FILE = 'state.safetensors';
const META_FILE = 'state.json';

export function checkpointDirFor(outDir: string): string {
  const abs = path.resolve(outDir);
  return path.join(path.dirname(abs), `${path.basename(abs)}.checkpoint`);
}

export function saveTrainState<Log>(be: Backend, dir: string, c: DrafterConfig, st: TrainState, meta: StateMeta<Log>): void {
  const out = prepareOutput(dir, { force: true, kind: 'dir' });
  try {
    const tensors: TensorData[] = [];
    for (const [prefix, w] of [['w', st.weights], ['m', st.m], ['v', st.v]] as const) {
      for (const { spec, tensor } of drafterTensors(c, w)) tensors.push({ name: `${prefix}.${spec.name}`, dtype: 'F32', shape: spec.shape, data: be.toHost(tensor) });
    }
    writeSafetensors(path.join(out.tmpPath, STATE_FILE), tensors);
    fs.writeFileSync(path.join(out.tmpPath, META_FILE), JSON.stringify(meta) + '\n');
    out.commit();
  } catch (e) {
    out.abort();
    throw e;
  }
}

export function hasTrainState(dir: string): boolean {
  return fs.existsSync(path.join(dir, META_FILE)) && fs.existsSync(path.join(dir, STATE_FILE));
}

export function readStateMeta<Log>(dir: string): StateMeta<Log> {
  const file = path.join(dir, META_FILE);
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as StateMeta<Log>;
  } catch (e) {
    throw new UserError(`cannot read the training checkpoint: ${(e as Error).message}`, { file, cause: e });
  }
}

export function loadTrainState(be: Backend, dir: string, c: DrafterConfig, step: number): TrainState {
  const ck = Checkpoint.open(dir);
  try {
    const load = (prefix: string): DrafterWeights => buildDrafterWeights(c, (s) => {
      const info = ck.require(`${prefix}.${s.name}`);
      if (info.shape.join(',') !== s.shape.join(',')) throw new UserError(`checkpoint tensor ${prefix}.${s.name} has shape [${info.shape.join(', ')}], expected [${s.shape.join(', ')}]`, { file: ck.source });
      return be.fromHost(ck.readF32(`${prefix}.${s.name}`), s.shape, 'f32');
    });
    return { weights: load('w'), m: load('m'), v: load('v'), step };
  } finally {
    ck.close();
  }
}
