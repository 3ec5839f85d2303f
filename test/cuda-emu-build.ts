// Builds the host emulation of CUDA kernel files for the *-emu tests: a kernel file from native/src rewritten so that
// g++ compiles it against test/cuda-emu/common.cuh (launches through an emulated launcher, dynamic shared memory on
// g_smem), linked with a test's host program into one binary, built once per test file.
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { scratchDir } from './scratch.js';

export const ROOT = path.join(import.meta.dirname, '..');
export const EMU_DIR = path.join(ROOT, 'test/cuda-emu');
export const hasGpp = spawnSync('g++', ['--version']).status === 0;

/** native/src/<file> as text. */
export function kernelSource(file: string): string {
  return readFileSync(path.join(ROOT, 'native/src', file), 'utf8');
}

/** Every kernel<<<grid, block, smem, stream()>>>(args) as launcher(kernel, grid, block, smem)(args); a launch left over throws. */
export function emulatedLaunches(src: string, file: string, launcher = 'emuLaunch'): string {
  const out = src.replace(/(\w+(?:<[^<>]*>)?)<<<(.*?), stream\(\)>>>\(/g, `${launcher}($1, $2)(`);
  if (out.includes('<<<')) throw new Error(`${file}: a launch the rewrite missed`);
  return out;
}

/** A kernel file whose dynamic shared memory is `extern __shared__ float smem[]`, with that on common.cuh's g_smem. */
export function floatSmemEmulation(file: string): string {
  return emulatedLaunches(kernelSource(file).replace(/extern __shared__ float smem\[\];/g, 'float* smem = g_smem;'), file);
}

export interface EmulationBuild {
  /** Scratch-folder prefix, also the key of the once-per-file build. */
  name: string;
  /** Generated translation units: file name in the scratch folder → source text (on the include path too). */
  generated: Record<string, string>;
  /** Translation units, compiled in this order: generated ones by their name, the others from test/cuda-emu. */
  sources: string[];
  /** Headers in test/cuda-emu force-included before every source (g++ -include). */
  includes?: string[];
  /** Compile the sources as C++ whatever their suffix (g++ -x c++). */
  asCxx?: boolean;
  /** No FMA contraction: the host sums round where the kernels' written expressions do. */
  noContract?: boolean;
}

const built = new Map<string, string>();

/** The emulation binary of `b`, built on the first call (g++ errors thrown with their text). */
export function buildEmulation(b: EmulationBuild): string {
  const have = built.get(b.name);
  if (have) return have;
  const dir = scratchDir(`${b.name}-`);
  for (const [file, text] of Object.entries(b.generated)) writeFileSync(path.join(dir, file), text);
  const bin = path.join(dir, 'emu');
  const args = ['-std=c++20', '-O1', ...(b.noContract ? ['-ffp-contract=off'] : []), '-pthread', `-I${EMU_DIR}`,
    `-I${path.join(ROOT, 'native/src')}`, `-I${dir}`, ...(b.includes ?? []).flatMap((h) => ['-include', path.join(EMU_DIR, h)]),
    ...(b.asCxx ? ['-x', 'c++'] : []), ...b.sources.map((f) => path.join(f in b.generated ? dir : EMU_DIR, f)), '-o', bin];
  const r = spawnSync('g++', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`g++ failed: ${r.stderr}`);
  built.set(b.name, bin);
  return bin;
}
