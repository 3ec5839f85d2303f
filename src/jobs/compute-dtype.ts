// The `--compute-dtype auto|f32|bf16` setting of the inference and drafter jobs (paro eval, dflash generate-data,
// train-drafter, eval): the GEMM precision of the model's linear layers (model/layer-ops.ts). 'auto' resolves as
// `paro quantize` does: bf16 (tensor cores) on cuda, f32 on the cpu, where f32 is what every output was before.
import { UserError } from '../errors.js';
import type { ComputeDtype } from '../model/layer-ops.js';

export type ComputeDtypeSetting = 'auto' | ComputeDtype;

export const COMPUTE_DTYPE_CHOICES: readonly ComputeDtypeSetting[] = ['auto', 'f32', 'bf16'];

/** A UserError unless v is one of auto, f32, bf16. */
export function checkComputeDtypeSetting(v: unknown): asserts v is ComputeDtypeSetting {
  if (!COMPUTE_DTYPE_CHOICES.includes(v as ComputeDtypeSetting)) {
    throw new UserError(`compute dtype must be auto, f32 or bf16, got "${String(v)}"`);
  }
}

/** 'auto' on a backend: bf16 on cuda, f32 on the cpu; f32 and bf16 as given. */
export function resolveJobComputeDtype(v: ComputeDtypeSetting, backend: string): ComputeDtype {
  return v === 'auto' ? (backend === 'cuda' ? 'bf16' : 'f32') : v;
}
