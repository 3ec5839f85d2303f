// The exported drafter in the format the official DFlash code, SGLang, vLLM and MLX load (dflash-spec §5): config.json
// with every field readers look for, and model.safetensors in BF16 with the §5.3 names (no "model." prefix, no
// embeddings or LM head, __metadata__ {"format": "pt"}). This module builds the contents; the job writes the files.
import type { Backend } from '../engine/backend.js';
import type { TensorData } from '../io/safetensors-writer.js';
import { f32ToBf16 } from '../numerics/half.js';
import { drafterConfigJson, type DrafterConfig } from './drafter-config.js';
import { drafterTensors, type DrafterWeights } from './drafter-weights.js';

export interface DrafterExport {
  /** The contents of config.json. */
  config: Record<string, unknown>;
  /** The tensors of model.safetensors (BF16, round-to-nearest-even), in export order. */
  tensors: TensorData[];
  /** The safetensors __metadata__. */
  metadata: Record<string, string>;
}

export function drafterExport(be: Backend, c: DrafterConfig, w: DrafterWeights): DrafterExport {
  const tensors: TensorData[] = drafterTensors(c, w).map(({ spec, tensor }) => ({
    name: spec.name, dtype: 'BF16', shape: spec.shape, data: f32ToBf16(be.toHost(tensor)),
  }));
  return { config: drafterConfigJson(c), tensors, metadata: { format: 'pt' } };
}
