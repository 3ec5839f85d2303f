// Backend selection for --device auto|cpu|cuda[:N].
import type { Backend } from './backend.js';
import { CpuBackend } from './cpu/backend.js';
import { UserError } from '../errors.js';

export type DeviceSpec = { kind: 'auto' } | { kind: 'cpu' } | { kind: 'cuda'; index: number };

export function parseDevice(s: string): DeviceSpec {
  const v = s.trim().toLowerCase();
  if (v === 'auto') return { kind: 'auto' };
  if (v === 'cpu') return { kind: 'cpu' };
  const m = /^cuda(?::(\d+))?$/.exec(v);
  if (m) return { kind: 'cuda', index: m[1] ? Number(m[1]) : 0 };
  throw new UserError(`unknown --device "${s}": use auto, cpu, cuda or cuda:N`);
}

interface CudaModule {
  cudaAvailability(): { available: boolean; reason?: string; gpuPresent?: boolean };
  loadCudaBackend(index: number): Backend;
}

async function cudaModule(): Promise<CudaModule | null> {
  try {
    return (await import('./cuda/index.js')) as CudaModule;
  } catch {
    return null;
  }
}

/**
 * Create the backend. 'auto' takes the GPU when one is usable and falls back to cpu with a warning only when no
 * GPU exists; a GPU that exists but cannot be used is an error, not a silent fallback.
 */
export async function createBackend(spec: DeviceSpec, warn: (msg: string) => void = () => {}): Promise<Backend> {
  if (spec.kind === 'cpu') return CpuBackend.create();
  const mod = await cudaModule();
  if (spec.kind === 'cuda') {
    if (!mod) throw new UserError('--device cuda: the CUDA backend is not part of this build');
    return mod.loadCudaBackend(spec.index);
  }
  if (mod) {
    const av = mod.cudaAvailability();
    if (av.available) return mod.loadCudaBackend(0);
    if (av.gpuPresent) throw new UserError(`a GPU is present but the CUDA backend cannot use it: ${av.reason ?? 'unknown reason'} (pass --device cpu to run on the cpu)`);
    warn(`no usable GPU (${av.reason ?? 'CUDA backend unavailable'}); running on the cpu`);
  } else {
    warn('CUDA backend not available in this build; running on the cpu');
  }
  return CpuBackend.create();
}
