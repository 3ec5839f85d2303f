// What ptxas makes of the Hopper attention kernels (native/src/k_attention.cu, sm_90a), checked wherever nvcc is
// installed (no GPU needed): no kernel spills or keeps a stack frame, and none has its warpgroup MMAs serialized.
// ptxas reports the latter only as an info line under -v (C7515: "wgmma.mma_async instructions are serialized ..."):
// it made the overlapped backward kernels of session 11 wait for every wgmma (run 31: ≈ 3 % slower instead of
// faster) and nothing failed.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './cuda-emu-build.js';
import { scratchDir } from './scratch.js';

/** nvcc from CUDA_HOME/CUDA_PATH, else the first on PATH; null where none is installed. */
function findNvcc(): string | null {
  for (const dir of [process.env.CUDA_HOME, process.env.CUDA_PATH]) {
    if (dir && existsSync(path.join(dir, 'bin', 'nvcc'))) return path.join(dir, 'bin', 'nvcc');
  }
  return spawnSync('nvcc', ['--version']).status === 0 ? 'nvcc' : null;
}

interface KernelReport {
  name: string;
  registers: number;
  spillBytes: number;
  stackBytes: number;
}

/** ptxas -v's per-kernel lines: registers, stack frame and spill stores + loads of each entry function. */
function parseReport(log: string): KernelReport[] {
  const out: KernelReport[] = [];
  let cur: KernelReport | null = null;
  for (const line of log.split('\n')) {
    const entry = /Compiling entry function '([^']+)'/.exec(line);
    if (entry) {
      cur = { name: entry[1], registers: -1, spillBytes: 0, stackBytes: 0 };
      out.push(cur);
      continue;
    }
    if (!cur) continue;
    const spill = /(\d+) bytes spill stores, (\d+) bytes spill loads/.exec(line);
    if (spill) cur.spillBytes = Number(spill[1]) + Number(spill[2]);
    const stack = /(\d+) bytes stack frame/.exec(line);
    if (stack) cur.stackBytes = Number(stack[1]);
    const regs = /Used (\d+) registers/.exec(line);
    if (regs) cur.registers = Number(regs[1]);
  }
  return out;
}

const nvcc = findNvcc();
if (!nvcc) console.warn('wgmma-ptxas: skipped, nvcc not found (CUDA_HOME, CUDA_PATH, PATH)');

describe.skipIf(!nvcc)('ptxas on the sm_90a attention kernels', () => {
  it('spills nothing, keeps no stack frame and serializes no warpgroup MMA', () => {
    const dir = scratchDir('paro-ptxas-');
    const src = path.join(ROOT, 'native/src');
    const r = spawnSync(
      nvcc!,
      ['-std=c++17', '-O3', '-gencode=arch=compute_90a,code=sm_90a', '-DPARO_HAVE_SM90A', `-I${src}`,
        '-Xptxas', '-v', '-cubin', '-o', path.join(dir, 'k_attention.cubin'), path.join(src, 'k_attention.cu')],
      { encoding: 'utf8', timeout: 300_000 },
    );
    expect(r.status, r.stderr.slice(-2000)).toBe(0);
    const log = r.stdout + r.stderr;
    const serialized = log.split('\n').filter((l) => l.includes('C7515')).map((l) => /function '([^']+)'/.exec(l)?.[1] ?? l);
    expect(serialized, 'kernels whose wgmma ptxas serializes').toEqual([]);
    const kernels = parseReport(log);
    // Every version's forward and backward kernels are compiled (27 entry functions today); the wgmma ones by name.
    expect(kernels.length).toBeGreaterThanOrEqual(20);
    for (const name of ['attnFwdTma', 'attnFwdWg', 'attnBwdDqWg', 'attnBwdDkvWg', 'attnBwdDkvTma']) {
      expect(kernels.some((k) => k.name.includes(name)), name).toBe(true);
    }
    const spilling = kernels.filter((k) => k.spillBytes > 0).map((k) => `${k.name}: ${k.spillBytes} bytes`);
    expect(spilling, 'kernels that spill').toEqual([]);
    // Local memory without a spill: an array indexed at run time, or a kernel parameter whose address escapes.
    const stacked = kernels.filter((k) => k.stackBytes > 0).map((k) => `${k.name}: ${k.stackBytes} bytes`);
    expect(stacked, 'kernels with a stack frame').toEqual([]);
    for (const k of kernels) expect(k.registers, k.name).toBeGreaterThan(0);
  }, 360_000);
});
