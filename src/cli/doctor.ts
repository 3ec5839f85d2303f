// `paro doctor`: which backends this installation can use.
import os from 'node:os';
import { TOOL_VERSION } from './version.js';
import { cudaAvailability } from '../engine/cuda/index.js';

export interface DoctorReport {
  command: 'doctor';
  version: string;
  node: string;
  platform: string;
  cpu: { model: string; threads: number };
  backends: { cpu: { available: true }; cuda: { available: boolean; reason?: string; devices?: unknown[] } };
  lines: string[];
}

interface CudaAvailability { available: boolean; reason?: string; addonPath?: string; devices?: { name: string; totalMemoryBytes: number; computeCapability: string }[] }

export async function runDoctor(): Promise<DoctorReport> {
  const cuda: CudaAvailability = cudaAvailability();
  const cpus = os.cpus();
  const lines = [
    `paro/dflash ${TOOL_VERSION} on Node ${process.version} (${process.platform}-${process.arch})`,
    `cpu backend: available (${cpus[0]?.model ?? 'cpu'}, ${cpus.length} threads)`,
    cuda.available
      ? `cuda backend: available — ${(cuda.devices ?? []).map((d, i) => `cuda:${i} ${d.name} (${(d.totalMemoryBytes / 2 ** 30).toFixed(1)} GiB, sm_${d.computeCapability.replace('.', '')})`).join('; ')}`
      : `cuda backend: not available (${cuda.reason ?? 'unknown'})`,
  ];
  if (cuda.addonPath) lines.push(`cuda addon: ${cuda.addonPath}`);
  return {
    command: 'doctor', version: TOOL_VERSION, node: process.version, platform: `${process.platform}-${process.arch}`,
    cpu: { model: cpus[0]?.model ?? 'cpu', threads: cpus.length },
    backends: { cpu: { available: true }, cuda },
    lines,
  };
}
