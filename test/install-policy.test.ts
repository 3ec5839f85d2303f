// What `npm install` does about the CUDA backend on each kind of machine (native/install-policy.mjs), and
// native/build.mjs carrying it out in a temporary copy of the package: skip on a cpu-only machine, use a shipped
// prebuilt addon where a driver is present, fall back to nvcc when the prebuilt cannot load.
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cudaMode, decideInstall, nvidiaDriverPresent, prebuiltDir, type InstallFacts } from '../native/install-policy.mjs';
import { scratchDir } from './scratch.js';

const NATIVE = path.resolve(__dirname, '..', 'native');
const LOCAL_ADDON = path.join(NATIVE, 'build', 'paro_cuda.node');

const base: InstallFacts = { env: {}, force: false, prebuild: false, driver: false, localBuild: false, prebuilt: false };

describe('decideInstall', () => {
  it('skips a cpu-only machine unless asked, and PARO_CUDA=0 always', () => {
    expect(decideInstall(base)).toMatchObject({ action: 'skip', reason: expect.stringMatching(/no NVIDIA driver/) });
    expect(decideInstall({ ...base, prebuilt: true })).toMatchObject({ action: 'skip' });
    expect(decideInstall({ ...base, env: { PARO_CUDA: '1' } })).toMatchObject({ action: 'build' });
    expect(decideInstall({ ...base, force: true })).toMatchObject({ action: 'build' });
    for (const facts of [{ ...base, driver: true }, { ...base, force: true }, { ...base, prebuild: true }, { ...base, localBuild: true }]) {
      expect(decideInstall({ ...facts, env: { PARO_CUDA: '0' } })).toEqual({ action: 'skip', reason: 'PARO_CUDA=0' });
    }
  });

  it('uses a shipped prebuilt where a driver is present, else builds', () => {
    expect(decideInstall({ ...base, driver: true, prebuilt: true }).action).toBe('use-prebuilt');
    expect(decideInstall({ ...base, driver: true }).action).toBe('build');
    // a developer's local build wins over the prebuilt (it is rebuilt when its sources change)
    expect(decideInstall({ ...base, driver: true, prebuilt: true, localBuild: true }).action).toBe('build');
    expect(decideInstall({ ...base, driver: true, prebuilt: true, env: { PARO_CUDA: '1' } }).action).toBe('build');
    expect(decideInstall({ ...base, prebuild: true }).action).toBe('build');
  });

  it('reads PARO_CUDA spellings', () => {
    for (const v of ['0', 'false', 'OFF', 'no']) expect(cudaMode(v)).toBe('0');
    for (const v of ['1', 'true', 'On', 'yes']) expect(cudaMode(v)).toBe('1');
    for (const v of [undefined, '', 'auto']) expect(cudaMode(v)).toBeUndefined();
  });

  it('finds a driver library on LD_LIBRARY_PATH and names the prebuilt folder by platform', () => {
    const lib = scratchDir('paro-fakedrv-');
    writeFileSync(path.join(lib, 'libcuda.so.1'), '');
    expect(nvidiaDriverPresent({ LD_LIBRARY_PATH: `/nonexistent:${lib}` })).toBe(true);
    expect(prebuiltDir('linux', 'x64')).toBe(path.join('prebuilds', 'linux-x64'));
  });
});

/** A copy of the package's native/ (scripts only) in a temp folder, with an optional fake prebuilt and nvcc. */
function packageCopy(opts: { prebuilt?: 'real' | 'broken'; nvcc?: 'failing' | 'recording' }) {
  const root = scratchDir('paro-pkgcopy-');
  mkdirSync(path.join(root, 'native', 'src'), { recursive: true });
  for (const f of ['build.mjs', 'install-policy.mjs']) copyFileSync(path.join(NATIVE, f), path.join(root, 'native', f));
  writeFileSync(path.join(root, 'native', 'src', 'x.cu'), '// placeholder source\n');
  const prebuilt = path.join(root, prebuiltDir(), 'paro_cuda.node');
  if (opts.prebuilt) {
    mkdirSync(path.dirname(prebuilt), { recursive: true });
    if (opts.prebuilt === 'real') copyFileSync(LOCAL_ADDON, prebuilt);
    else writeFileSync(prebuilt, 'not a shared library');
  }
  const bin = path.join(root, 'bin');
  mkdirSync(bin);
  if (opts.nvcc === 'recording') {
    // answers --version like CUDA 13.0, logs each call's arguments and writes an empty file at -o
    writeFileSync(path.join(bin, 'nvcc'), [
      '#!/bin/sh',
      'if [ "$1" = "--version" ]; then echo "Cuda compilation tools, release 13.0, V13.0.88"; exit 0; fi',
      'echo "$@" >> "$NVCC_LOG"',
      'out=""; prev=""',
      'for a in "$@"; do if [ "$prev" = "-o" ]; then out="$a"; fi; prev="$a"; done',
      ': > "$out"',
      '',
    ].join('\n'));
    chmodSync(path.join(bin, 'nvcc'), 0o755);
  }
  if (opts.nvcc === 'failing') {
    writeFileSync(path.join(bin, 'nvcc'), '#!/bin/sh\necho "x.cu(1): error: simulated compiler failure" >&2\nexit 2\n');
    chmodSync(path.join(bin, 'nvcc'), 0o755);
  }
  const driverLib = path.join(root, 'fake-driver');
  mkdirSync(driverLib);
  writeFileSync(path.join(driverLib, 'libcuda.so.1'), ''); // makes nvidiaDriverPresent() true; never loaded as a library
  return { root, bin, driverLib, prebuilt };
}

function run(root: string, env: Record<string, string | undefined>) {
  const e: NodeJS.ProcessEnv = { ...process.env, ...env };
  for (const k of ['CUDA_HOME', 'CUDA_PATH', 'PARO_CUDA', 'PARO_CUDA_ARCH', 'PARO_CUDA_BUILD_DIR']) if (!(k in env)) delete e[k];
  return spawnSync(process.execPath, [path.join(root, 'native', 'build.mjs')], { env: e, encoding: 'utf8', timeout: 60_000, cwd: root });
}

const driverHere = nvidiaDriverPresent();

describe('native/build.mjs carries out the policy', () => {
  it.skipIf(driverHere)('on a machine without a driver: one line, nothing built, nvcc never looked for', () => {
    const c = packageCopy({ nvcc: 'failing' });
    const r = run(c.root, { PATH: c.bin });
    expect(r.status).toBe(0);
    expect(r.stdout).toBe('paro: CUDA backend not built: no NVIDIA driver found, the cpu backend is used (PARO_CUDA=1 builds it anyway)\n');
    expect(existsSync(path.join(c.root, 'native', 'build'))).toBe(false);
  });

  it('PARO_CUDA=0 skips even with a driver', () => {
    const c = packageCopy({ nvcc: 'failing' });
    const r = run(c.root, { PATH: c.bin, LD_LIBRARY_PATH: c.driverLib, PARO_CUDA: '0' });
    expect(r.stdout).toBe('paro: CUDA backend not built: PARO_CUDA=0\n');
  });

  it.skipIf(!existsSync(LOCAL_ADDON))('with a driver and a loadable prebuilt: uses it without nvcc', () => {
    const c = packageCopy({ prebuilt: 'real' });
    writeFileSync(c.prebuilt.replace(/\.node$/, '.json'), JSON.stringify({ archs: ['80', '86', '89', '90'], cuda: '13.0' }));
    const r = run(c.root, { PATH: c.bin, LD_LIBRARY_PATH: c.driverLib });
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(`paro: CUDA backend: using the prebuilt addon ${path.join(prebuiltDir(), 'paro_cuda.node')} (sm_80, sm_86, sm_89, sm_90; CUDA 13.0)\n`);
    expect(existsSync(path.join(c.root, 'native', 'build'))).toBe(false);
  });

  it('with a driver and a prebuilt that cannot load: says why, then falls back to nvcc', () => {
    const broken = packageCopy({ prebuilt: 'broken' });
    const noNvcc = run(broken.root, { PATH: broken.bin, LD_LIBRARY_PATH: broken.driverLib });
    expect(noNvcc.status).toBe(0);
    expect(noNvcc.stdout).toMatch(/^paro: CUDA backend not built: the prebuilt addon cannot run here \(.+\) and nvcc was not found\n$/);
    const withNvcc = packageCopy({ prebuilt: 'broken', nvcc: 'failing' });
    const r = run(withNvcc.root, { PATH: withNvcc.bin, LD_LIBRARY_PATH: withNvcc.driverLib, PARO_NAPI_INCLUDE: path.resolve(__dirname, '..', 'node_modules', 'node-api-headers', 'include') });
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^paro: the prebuilt addon cannot run here \(.+\); building with nvcc$/);
    expect(lines[1]).toMatch(/^paro: CUDA backend not built: .*simulated compiler failure/);
  });

  it('--prebuild builds the shipped addon for sm_80/86/89/90 into prebuilds/ with its metadata, on a machine without a GPU', () => {
    const c = packageCopy({ nvcc: 'recording' });
    const log = path.join(c.root, 'nvcc.log');
    const napi = path.resolve(__dirname, '..', 'node_modules', 'node-api-headers', 'include');
    const r = spawnSync(process.execPath, [path.join(c.root, 'native', 'build.mjs'), '--prebuild', '--strict'], {
      env: { PATH: `${c.bin}:/usr/bin:/bin`, NVCC_LOG: log, PARO_NAPI_INCLUDE: napi }, encoding: 'utf8', timeout: 60_000, cwd: c.root,
    });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^paro: prebuilt addon ${path.join(prebuiltDir(), 'paro_cuda.node').replace(/[/.]/g, '\\$&')} built for sm_80, sm_86, sm_89, sm_90 in \\d+ s\n$`));
    expect(existsSync(c.prebuilt)).toBe(true);
    expect(JSON.parse(readFileSync(c.prebuilt.replace(/\.node$/, '.json'), 'utf8'))).toMatchObject({ archs: ['80', '86', '89', '90'], cuda: '13.0' });
    const calls = readFileSync(log, 'utf8').trim().split('\n');
    expect(calls.length).toBe(2); // one source, then the link
    for (const a of ['80', '86', '89']) expect(calls[0]).toContain(`-gencode=arch=compute_${a},code=sm_${a}`);
    // sm_90a machine code (Hopper's warpgroup MMA for attention version 3) plus compute_90 PTX for later GPUs.
    expect(calls[0]).toContain('-gencode=arch=compute_90a,code=sm_90a');
    expect(calls[0]).toContain('-gencode=arch=compute_90,code=compute_90');
    expect(calls[0]).toContain('-DPARO_HAVE_SM90A');
    expect(calls[1]).toMatch(/-shared .*-cudart static/);
    expect(existsSync(path.join(c.root, 'native', 'build', 'prebuild.log'))).toBe(true); // the log stays out of prebuilds/
    expect(existsSync(path.join(c.root, prebuiltDir(), 'build.log'))).toBe(false);
  });

  it('with a driver and no prebuilt: builds with nvcc, or says nvcc is missing', () => {
    const c = packageCopy({});
    const r = run(c.root, { PATH: c.bin, LD_LIBRARY_PATH: c.driverLib });
    expect(r.stdout).toBe('paro: CUDA backend not built: nvcc not found\n');
  });
});
