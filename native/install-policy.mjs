// What `npm install` does about the CUDA backend, decided from a few facts about the machine (kept apart from
// native/build.mjs so the rule can be tested without a GPU, a driver or nvcc):
//   PARO_CUDA=0                        skip (nothing is built or checked)
//   --prebuild                         build the shipped addon for sm_80/86/89/90 into prebuilds/<platform>-<arch>/
//   PARO_CUDA=1 or --force             build with nvcc, whatever the machine
//   an earlier local build exists      rebuild it if its sources changed (a developer's checkout)
//   no NVIDIA driver                   skip: a cpu-only machine (CI) pays no CUDA build
//   a prebuilt addon for this platform use it (no nvcc needed); build.mjs falls back to nvcc if the driver rejects it
//   otherwise                          build with nvcc (or say that nvcc is missing)
import fs from 'node:fs';
import path from 'node:path';

/** Compute capabilities the shipped addon carries (SASS for each; PTX of the last for newer GPUs). */
export const PREBUILT_ARCHS = ['80', '86', '89', '90'];

/** prebuilds/<platform>-<arch>: the folder of the shipped addon, relative to the package root. */
export function prebuiltDir(platform = process.platform, arch = process.arch) {
  return path.join('prebuilds', `${platform}-${arch}`);
}

function exists(p) {
  try {
    fs.accessSync(p);
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether an NVIDIA driver is installed: the kernel module's files (/proc/driver/nvidia, /dev/nvidiactl), WSL2's
 * driver library, or libcuda.so.1 in a library folder. No GPU call is made.
 */
export function nvidiaDriverPresent(env = process.env) {
  const paths = ['/proc/driver/nvidia/version', '/dev/nvidiactl', '/usr/lib/wsl/lib/libcuda.so.1'];
  const libDirs = ['/usr/lib/x86_64-linux-gnu', '/usr/lib64', '/usr/lib/aarch64-linux-gnu', '/usr/local/nvidia/lib64',
    ...(env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean)];
  return paths.some(exists) || libDirs.some((d) => exists(path.join(d, 'libcuda.so.1')));
}

/** PARO_CUDA as '0', '1' or undefined (unset or "auto"); the usual spellings of yes and no are accepted. */
export function cudaMode(value) {
  const v = (value ?? '').trim().toLowerCase();
  if (['0', 'false', 'no', 'off'].includes(v)) return '0';
  if (['1', 'true', 'yes', 'on'].includes(v)) return '1';
  return undefined;
}

/**
 * @param {{ env: Record<string, string | undefined>, force: boolean, prebuild: boolean, driver: boolean,
 *   localBuild: boolean, prebuilt: boolean }} facts
 * @returns {{ action: 'skip' | 'build' | 'use-prebuilt', reason: string }}
 */
export function decideInstall(facts) {
  const mode = cudaMode(facts.env.PARO_CUDA);
  if (mode === '0') return { action: 'skip', reason: 'PARO_CUDA=0' };
  if (facts.prebuild) return { action: 'build', reason: 'building the prebuilt addon' };
  if (mode === '1' || facts.force) return { action: 'build', reason: mode === '1' ? 'PARO_CUDA=1' : '--force' };
  if (facts.localBuild) return { action: 'build', reason: 'a local build exists' };
  if (!facts.driver) {
    return { action: 'skip', reason: 'no NVIDIA driver found, the cpu backend is used (PARO_CUDA=1 builds it anyway)' };
  }
  if (facts.prebuilt) return { action: 'use-prebuilt', reason: 'a prebuilt addon ships for this platform' };
  return { action: 'build', reason: 'NVIDIA driver found and no prebuilt addon for this platform' };
}
