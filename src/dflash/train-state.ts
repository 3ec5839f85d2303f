// Resumable training state: drafter weights and AdamW moments as f32 tensors plus the step, the run they belong to
// and the log so far. This module converts the state to and from tensors; the job stores them (anchors and order
// depend only on the seed, epoch and sample index, so a resumed run follows the same trajectory).
import type { Backend, Tensor } from '../engine/backend.js';
import type { TensorData } from '../io/safetensors-writer.js';
import { UserError } from '../errors.js';
import type { DrafterConfig } from './drafter-config.js';
import { buildDrafterWeights, drafterTensors, freeDrafterWeights, type DrafterWeights } from './drafter-weights.js';

export interface TrainState {
  weights: DrafterWeights;
  m: DrafterWeights;
  v: DrafterWeights;
  /** Optimizer steps done. */
  step: number;
}

/** Gives the weights and both moments back to the backend. */
export function freeTrainState(be: Backend, c: DrafterConfig, st: TrainState): void {
  for (const w of [st.weights, st.m, st.v]) freeDrafterWeights(be, c, w);
}

export interface StateMeta<Log> {
  /** Identifies the settings + data the state belongs to; a resume with another key is refused. */
  key: string;
  step: number;
  totalSteps: number;
  log: Log;
  savedAt: string;
}

/** Weights (w.), first (m.) and second (v.) moments as f32 tensors. */
export function trainStateTensors(be: Backend, c: DrafterConfig, st: TrainState): TensorData[] {
  const tensors: TensorData[] = [];
  for (const [prefix, w] of [['w', st.weights], ['m', st.m], ['v', st.v]] as const) {
    for (const { spec, tensor } of drafterTensors(c, w)) tensors.push({ name: `${prefix}.${spec.name}`, dtype: 'F32', shape: spec.shape, data: be.toHost(tensor) });
  }
  return tensors;
}

/** A stored tensor as the reader gives it. */
export interface StoredTensor {
  shape: readonly number[];
  read(): Float32Array;
}

/** Rebuild the state from stored tensors (get returns undefined for a missing name); source names the store in errors. */
export function trainStateFromTensors(
  be: Backend, c: DrafterConfig, get: (name: string) => StoredTensor | undefined, step: number, source: string,
): TrainState {
  // A tensor refused half way (missing, wrong shape, unreadable) must not strand those already on the backend.
  const uploaded: Tensor[] = [];
  const load = (prefix: string): DrafterWeights => buildDrafterWeights(c, (s) => {
    const name = `${prefix}.${s.name}`;
    const t = get(name);
    if (!t) throw new UserError(`checkpoint tensor ${name} is missing`, { file: source });
    if (t.shape.join(',') !== s.shape.join(',')) throw new UserError(`checkpoint tensor ${name} has shape [${t.shape.join(', ')}], expected [${s.shape.join(', ')}]`, { file: source });
    const u = be.fromHost(t.read(), s.shape, 'f32');
    uploaded.push(u);
    return u;
  });
  try {
    return { weights: load('w'), m: load('m'), v: load('v'), step };
  } catch (e) {
    be.free(...uploaded);
    throw e;
  }
}
