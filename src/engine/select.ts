// Backend selection for --device auto|cpu|cuda[:N].
import { existsSync } from 'node:fs';
import type { Backend } from './backend.js';
import { CpuBackend } from './cpu/backend.js';
import { cudaAvailability, loadCudaBackend } from './cuda/index.js';
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

/** An NVIDIA driver is loaded on this machine (a GPU exists even if our addon cannot use it). */
function nvidiaDriverPresent(): boolean {
  return existsSync('/proc/driver/nvidia/version') || existsSync('/dev/nvidiactl');
}

/**
 * Create the backend. 'auto' takes the GPU when one is usable and falls back to cpu with a warning only when no
 * GPU exists; a GPU that exists but cannot be used is an error, not a silent fallback.
 */
export async function createBackend(spec: DeviceSpec, warn: (msg: string) => void = () => {}): Promise<Backend> {
  if (spec.kind === 'cpu') return CpuBackend.create();
  if (spec.kind === 'cuda') return loadCudaBackend(spec.index);
  const av = cudaAvailability();
  if (av.available) return loadCudaBackend(0);
  const noGpu = av.code === 'no-gpu' || ((av.code === 'not-built' || av.code === 'load-failed') && !nvidiaDriverPresent());
  if (!noGpu) {
    throw new UserError(`a GPU is present but the CUDA backend cannot use it: ${av.reason ?? av.code ?? 'unknown reason'} (pass --device cpu to run on the cpu)`);
  }
  warn(`no GPU found (${av.reason ?? av.code}); running on the cpu`);
  return CpuBackend.create();
}
