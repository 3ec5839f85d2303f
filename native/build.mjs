#!/usr/bin/env node
// Builds the optional CUDA backend (native/build/paro_cuda.node) with nvcc, or picks the prebuilt addon shipped in
// prebuilds/<platform>-<arch>/. Run at `npm install`: it never fails the install. Whether it builds at all is decided
// by native/install-policy.mjs (PARO_CUDA=0 skips, PARO_CUDA=1 forces; a machine without an NVIDIA driver skips; a
// driver with a shipped prebuilt uses that). Without nvcc, or on any compile error, it prints one line saying why the
// backend was not built and exits 0 (exit 1 only with --strict). The full compiler log goes to native/build/build.log.
//
// Environment: PARO_CUDA (0/1, unset = auto), CUDA_HOME / CUDA_PATH (nvcc in <dir>/bin, else PATH), PARO_CUDA_ARCH
// ("80,90": compute capabilities to build for; default: the GPUs nvidia-smi lists, else 80, 89, 90; with --prebuild
// 80, 86, 89, 90), PARO_NAPI_INCLUDE (folder with node_api.h), PARO_CUDA_BUILD_DIR (output folder instead of
// native/build). Flags: --strict, --force (build even if up to date, whatever the machine), --prebuild (build the
// addon shipped in the package: `npm run build:prebuilt`, run by `prepack`), --verbose.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { decideInstall, nvidiaDriverPresent, PREBUILT_ARCHS, prebuiltDir } from './install-policy.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const srcDir = path.join(here, 'src');
const strict = process.argv.includes('--strict');
const verbose = process.argv.includes('--verbose');
const force = process.argv.includes('--force');
const prebuild = process.argv.includes('--prebuild');
const prebuiltTarget = path.join(here, '..', prebuiltDir(), 'paro_cuda.node');
const localDir = process.env.PARO_CUDA_BUILD_DIR ? path.resolve(process.env.PARO_CUDA_BUILD_DIR) : path.join(here, 'build');
const outDir = prebuild ? path.dirname(prebuiltTarget) : localDir;
const target = path.join(outDir, 'paro_cuda.node');
// The prebuilt folder ships in the package: its log stays in the local build folder.
const logFile = path.join(localDir, prebuild ? 'prebuild.log' : 'build.log');

function giveUp(reason) {
  console.log(`paro: CUDA backend not built: ${reason}`);
  process.exit(strict ? 1 : 0);
}

function isFile(p) {
  try {
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

/** nvcc from CUDA_HOME/CUDA_PATH, else the first on PATH. */
function findNvcc() {
  for (const env of ['CUDA_HOME', 'CUDA_PATH']) {
    const dir = process.env[env];
    if (dir && isFile(path.join(dir, 'bin', 'nvcc'))) return path.join(dir, 'bin', 'nvcc');
  }
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir && isFile(path.join(dir, 'nvcc'))) return path.join(dir, 'nvcc');
  }
  return null;
}

/** A folder holding node_api.h: PARO_NAPI_INCLUDE, the node-api-headers package, or Node's own headers. */
function findNapiInclude() {
  const tries = [];
  if (process.env.PARO_NAPI_INCLUDE) tries.push(process.env.PARO_NAPI_INCLUDE);
  try {
    const require = createRequire(import.meta.url);
    tries.push(path.join(path.dirname(require.resolve('node-api-headers/package.json')), 'include'));
  } catch {
    // not installed: fall through to the system headers
  }
  tries.push(path.join(here, 'napi-include')); // copied in by scripts/gpu-bundle.mjs
  tries.push('/usr/include/node', '/usr/local/include/node');
  tries.push(path.join(path.dirname(process.execPath), '..', 'include', 'node'));
  return tries.find((d) => isFile(path.join(d, 'node_api.h'))) ?? null;
}

/** Compute capabilities as "90" strings: PARO_CUDA_ARCH, the GPUs present, or the default list. */
function findArchs() {
  if (process.env.PARO_CUDA_ARCH) {
    return process.env.PARO_CUDA_ARCH.split(',').map((s) => s.trim().replace('.', '')).filter(Boolean);
  }
  if (prebuild) return [...PREBUILT_ARCHS]; // built for the GPUs users have, not the ones of the building machine
  try {
    const out = execFileSync('nvidia-smi', ['--query-gpu=compute_cap', '--format=csv,noheader'], {
      encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 20_000,
    });
    const caps = [...new Set(out.split('\n').map((s) => s.trim().replace('.', '')).filter((s) => /^\d+$/.test(s)))];
    const usable = caps.filter((c) => Number(c) >= 80);
    if (usable.length) return usable;
  } catch {
    // no nvidia-smi or no GPU
  }
  return ['80', '89', '90'];
}

function gencodeFlags(archs) {
  const sorted = [...archs].sort((a, b) => Number(a) - Number(b));
  const flags = [];
  sorted.forEach((a, i) => {
    const newest = i === sorted.length - 1;
    if (a === '90') {
      // H100/H200 machine code with sm_90a's warpgroup MMA (the attention forward of k_attention.cu); sm_90a code runs
      // on compute capability 9.0 only, so a later GPU gets the plain compute_90 PTX, where those kernels are empty.
      flags.push('-gencode=arch=compute_90a,code=sm_90a');
      if (newest) flags.push('-gencode=arch=compute_90,code=compute_90');
      return;
    }
    // PTX of the newest target too, so a later GPU can still run the addon.
    const code = newest ? `[sm_${a},compute_${a}]` : `sm_${a}`;
    flags.push(`-gencode=arch=compute_${a},code=${code}`);
  });
  // The host side launches the sm_90a kernels only where they were built (and the device is 9.0).
  if (sorted.includes('90')) flags.push('-DPARO_HAVE_SM90A');
  return flags;
}

function run(cmd, args, log) {
  return new Promise((resolve) => {
    log.push(`$ ${cmd} ${args.join(' ')}`);
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    child.stdout.on('data', (d) => { text += d; });
    child.stderr.on('data', (d) => { text += d; });
    child.on('error', (e) => resolve({ code: -1, text: String(e) }));
    child.on('close', (code) => {
      if (text) log.push(text);
      resolve({ code: code ?? -1, text });
    });
  });
}

/** First error line of a compiler log, for the one-line message. */
function firstError(text) {
  const line = text.split('\n').find((l) => /error/i.test(l)) ?? text.split('\n').find((l) => l.trim()) ?? 'unknown error';
  return line.trim().slice(0, 240);
}

function upToDate(sources) {
  if (force || !isFile(target)) return false;
  const built = fs.statSync(target).mtimeMs;
  const inputs = [...sources, path.join(here, 'build.mjs'), ...fs.readdirSync(srcDir).map((f) => path.join(srcDir, f))];
  return inputs.every((f) => fs.statSync(f).mtimeMs <= built);
}

/** The shipped addon's metadata (written by --prebuild), for messages. */
function prebuiltMeta() {
  try {
    return JSON.parse(fs.readFileSync(prebuiltTarget.replace(/\.node$/, '.json'), 'utf8'));
  } catch {
    return null;
  }
}

/**
 * Whether the prebuilt addon loads and the driver accepts its CUDA runtime, checked in a child process so that a
 * broken library cannot take the install down. ok: true also when the driver is there but no GPU is visible.
 */
function probePrebuilt() {
  const script = `const r = require(${JSON.stringify(prebuiltTarget)}).probe();` +
    'process.stdout.write(JSON.stringify({ error: r.error, name: r.errorName, runtime: r.runtimeVersion, driver: r.driverVersion }));';
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) {
    const line = (r.stderr || String(r.error ?? '')).split('\n').find((l) => /error/i.test(l)) ?? 'it failed to load';
    return { ok: false, reason: line.trim().slice(0, 200) };
  }
  try {
    const p = JSON.parse(r.stdout);
    const v = (n) => `${Math.floor(n / 1000)}.${Math.floor((n % 1000) / 10)}`;
    if (p.error === 35 && p.driver > 0) {
      return { ok: false, reason: `the NVIDIA driver supports CUDA ${v(p.driver)}, the prebuilt addon needs CUDA ${v(p.runtime)}` };
    }
    return { ok: true };
  } catch {
    return { ok: false, reason: 'its probe printed no result' };
  }
}

function cudaRelease(nvcc) {
  try {
    const out = execFileSync(nvcc, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 20_000 });
    return /release (\d+\.\d+)/.exec(out)?.[1] ?? null;
  } catch {
    return null;
  }
}

async function main() {
  const decision = decideInstall({
    env: process.env, force, prebuild, driver: nvidiaDriverPresent(), localBuild: isFile(target), prebuilt: isFile(prebuiltTarget),
  });
  if (decision.action === 'skip') {
    console.log(`paro: CUDA backend not built: ${decision.reason}`);
    return;
  }
  if (decision.action === 'use-prebuilt') {
    const check = probePrebuilt();
    const rel = path.relative(process.cwd(), prebuiltTarget) || prebuiltTarget;
    if (check.ok) {
      const meta = prebuiltMeta();
      const what = meta ? ` (sm_${meta.archs.join(', sm_')}; CUDA ${meta.cuda})` : '';
      console.log(`paro: CUDA backend: using the prebuilt addon ${rel}${what}`);
      return;
    }
    if (!findNvcc()) giveUp(`the prebuilt addon cannot run here (${check.reason}) and nvcc was not found`);
    console.log(`paro: the prebuilt addon cannot run here (${check.reason}); building with nvcc`);
  }
  const nvcc = findNvcc();
  if (!nvcc) giveUp('nvcc not found');
  const include = findNapiInclude();
  if (!include) giveUp('Node-API headers not found (install node-api-headers or set PARO_NAPI_INCLUDE)');
  const sources = fs.readdirSync(srcDir).filter((f) => f.endsWith('.cu') || f.endsWith('.cc')).sort()
    .map((f) => path.join(srcDir, f));
  if (upToDate(sources)) {
    console.log(`paro: CUDA backend up to date (${path.relative(process.cwd(), target) || target})`);
    return;
  }
  const archs = findArchs();
  fs.mkdirSync(outDir, { recursive: true });
  const objDir = fs.mkdtempSync(path.join(os.tmpdir(), 'paro-cuda-'));
  const log = [`nvcc: ${nvcc}`, `node-api include: ${include}`, `archs: ${archs.join(',')}`];
  const started = Date.now();
  // -lineinfo: Nsight Compute can then name the source lines where warps stall (the machine code is unchanged:
  // sm_90 cubin sections of the attention and fused-transform kernels hash identical with and without it).
  const common = ['-O3', '-lineinfo', '-std=c++17', '-Xcompiler', '-fPIC', `-I${include}`, `-I${srcDir}`, ...gencodeFlags(archs)];
  // Sources compile in parallel; each nvcc also splits its per-architecture passes over threads.
  const jobs = Math.max(1, Math.min(sources.length, os.cpus().length));
  const threads = Math.max(1, Math.min(archs.length, Math.floor(os.cpus().length / jobs) || 1));
  const queue = [...sources];
  const objects = [];
  let failure = null;
  async function worker() {
    while (queue.length && !failure) {
      const src = queue.shift();
      const obj = path.join(objDir, path.basename(src) + '.o');
      // .cc files include the device helpers of common.cuh, so they compile as CUDA too.
      const lang = src.endsWith('.cc') ? ['-x', 'cu'] : [];
      const args = [...common, '-t', String(threads), ...lang, '-c', src, '-o', obj];
      if (verbose) console.log(`paro: compiling ${path.basename(src)}`);
      const r = await run(nvcc, args, log);
      if (r.code !== 0) failure = `${path.basename(src)}: ${firstError(r.text)}`;
      else objects.push(obj);
    }
  }
  await Promise.all(Array.from({ length: jobs }, worker));
  if (!failure) {
    const tmp = `${target}.tmp-${process.pid}`;
    const r = await run(nvcc, ['-shared', ...gencodeFlags(archs), '-o', tmp, ...objects.sort(), '-cudart', 'static',
      '-ldl', '-lpthread', '-lrt'], log);
    if (r.code !== 0) failure = `link: ${firstError(r.text)}`;
    else fs.renameSync(tmp, target);
  }
  fs.rmSync(objDir, { recursive: true, force: true });
  log.push(`elapsed ${((Date.now() - started) / 1000).toFixed(1)} s`);
  fs.mkdirSync(path.dirname(logFile), { recursive: true });
  fs.writeFileSync(logFile, log.join('\n') + '\n');
  if (failure) giveUp(`${failure} (log: ${path.relative(process.cwd(), logFile) || logFile})`);
  if (prebuild) {
    const meta = { archs, cuda: cudaRelease(nvcc), napi: 8 /* NAPI_VERSION of addon.cc */, platform: `${process.platform}-${process.arch}` };
    fs.writeFileSync(target.replace(/\.node$/, '.json'), JSON.stringify(meta, null, 2) + '\n');
  }
  const what = prebuild ? `prebuilt addon ${path.relative(process.cwd(), target) || target}` : 'CUDA backend';
  console.log(`paro: ${what} built for sm_${archs.join(', sm_')} in ${((Date.now() - started) / 1000).toFixed(0)} s`);
}

main().catch((e) => giveUp(String(e?.message ?? e).split('\n')[0]));
