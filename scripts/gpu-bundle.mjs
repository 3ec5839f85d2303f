#!/usr/bin/env node
// Packs what a GPU machine without npm needs into .gpu/ (git-ignored): gpu-check.mjs (scripts/gpu-check.ts bundled
// with esbuild, all npm dependencies inside), wasm/ (the tfjs-backend-wasm binaries the cpu backend loads through
// PARO_TFJS_WASM_DIR), native/ (the addon sources, build.mjs and the Node-API headers, so nvcc can build it there) and
// node.xz (this machine's Node binary), and run.sh, which on the GPU machine unpacks Node, builds the addon and runs
// the check:  bash .gpu/run.sh --isolate --bench   (logs in $OUT)
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const out = path.join(root, '.gpu');
const require = createRequire(import.meta.url);

fs.mkdirSync(out, { recursive: true });

// 1. The harness (gpu-check.mjs), the CLI (paro, dflash), the GPU benchmark and the checkpoint synthesizer, each one ESM file. CommonJS
// dependencies inside an ESM bundle need require/__dirname in scope, hence the banner.
const banner = [
  "import { createRequire as __paroCreateRequire } from 'node:module';",
  "import { fileURLToPath as __paroFileURLToPath } from 'node:url';",
  "import { dirname as __paroDirname } from 'node:path';",
  'const require = __paroCreateRequire(import.meta.url);',
  'const __filename = __paroFileURLToPath(import.meta.url);',
  'const __dirname = __paroDirname(__filename);',
].join('\n');
const entries = [['scripts/gpu-check.ts', 'gpu-check.mjs'], ['scripts/cli-entry.ts', 'cli.mjs'], ['scripts/gpu-bench-entry.ts', 'bench-gpu.mjs'],
  ['scripts/synth-checkpoint.ts', 'synth-checkpoint.mjs'], ['bench/dflash-8b.ts', 'bench-dflash-8b.mjs'], ['scripts/kernel-probe.ts', 'kernel-probe.mjs']];
// The several-GPU NCCL check (issue 12).
entries.push(['scripts/nccl-check.ts', 'nccl-check.mjs']);
for (const [entry, file] of entries) {
  await build({
    entryPoints: [path.join(root, entry)], outfile: path.join(out, file), bundle: true, platform: 'node', format: 'esm',
    target: 'node20', logLevel: 'warning', banner: { js: banner },
  });
}

// 2. The tfjs-backend-wasm binaries.
const wasmSrc = path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist');
fs.mkdirSync(path.join(out, 'wasm'), { recursive: true });
for (const f of fs.readdirSync(wasmSrc).filter((n) => n.endsWith('.wasm'))) {
  fs.copyFileSync(path.join(wasmSrc, f), path.join(out, 'wasm', f));
}

// 3. The native sources, the build script and the Node-API headers (found by build.mjs as native/napi-include).
const nativeOut = path.join(out, 'native');
fs.rmSync(nativeOut, { recursive: true, force: true });
fs.mkdirSync(path.join(nativeOut, 'src'), { recursive: true });
// build.mjs and the modules it imports (install-policy.mjs): every .mjs beside it.
for (const f of fs.readdirSync(path.join(root, 'native')).filter((n) => n.endsWith('.mjs'))) {
  fs.copyFileSync(path.join(root, 'native', f), path.join(nativeOut, f));
}
for (const f of fs.readdirSync(path.join(root, 'native', 'src'))) {
  fs.copyFileSync(path.join(root, 'native', 'src', f), path.join(nativeOut, 'src', f));
}
// Device probes compiled apart from the addon (native/tools: the wgmma layout probe of gpu-session.sh's wgprobe step).
fs.cpSync(path.join(root, 'native', 'tools'), path.join(nativeOut, 'tools'), { recursive: true });
const napiSrc = path.join(path.dirname(require.resolve('node-api-headers/package.json')), 'include');
fs.cpSync(napiSrc, path.join(nativeOut, 'napi-include'), { recursive: true });

// 4. Node itself, compressed (skipped when an up-to-date copy exists).
const nodeXz = path.join(out, 'node.xz');
const stamp = path.join(out, 'node.version');
if (!fs.existsSync(nodeXz) || !fs.existsSync(stamp) || fs.readFileSync(stamp, 'utf8') !== process.version) {
  const xz = execFileSync('xz', ['-T2', '-6', '-c', process.execPath], { maxBuffer: 1 << 30 });
  fs.writeFileSync(nodeXz, xz);
  fs.writeFileSync(stamp, process.version);
}

// 5. The driver script for the GPU machine (run from the repository root; logs go to $OUT).
const runSh = `#!/bin/bash
# bash .gpu/run.sh [gpu-check arguments]: unpack Node, build the addon with nvcc, run gpu-check; logs in $OUT.
# TIMING=1 adds a CUDA-only timing pass with the benchmarks; SANITIZE=1 adds compute-sanitizer memcheck and
# racecheck runs of the small attention and ParoQuant cases.
set -o pipefail
OUT=\${OUT:-/tmp/paro-gpu-out}; mkdir -p "$OUT"
xz -dc .gpu/node.xz > /tmp/node && chmod +x /tmp/node || exit 3
mkdir -p /tmp/nodebin && ln -sf /tmp/node /tmp/nodebin/node && export PATH=/tmp/nodebin:$PATH
if [ -z "$(command -v nvcc)" ] && [ -x /usr/local/cuda/bin/nvcc ]; then export CUDA_HOME=/usr/local/cuda PATH=$PATH:/usr/local/cuda/bin; fi
{ date -u; nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total,clocks.max.sm --format=csv; command -v nvcc;
  nvcc --version | tail -2; find /usr/local /opt /usr/lib -name 'libcublas.so*' 2>/dev/null | head -5; nproc; } 2>&1 | tee "$OUT/env.txt"
SECONDS=0
node .gpu/native/build.mjs --strict --verbose --force 2>&1 | tee "$OUT/build.txt"; rc=$?
cp .gpu/native/build/build.log "$OUT/" 2>/dev/null; echo "build: rc=$rc in \${SECONDS}s" | tee -a "$OUT/build.txt"
[ $rc -eq 0 ] || exit 4
export PARO_TFJS_WASM_DIR=$PWD/.gpu/wasm
timeout \${CHECK_TIMEOUT:-420} node .gpu/gpu-check.mjs "$@" 2>&1 | tee "$OUT/check.txt"; rc=$?
if [ "\${TIMING:-0}" = 1 ]; then
  # CUDA-only timings of every op (no cpu reference) and the benchmarks, one process, nothing else on the GPU.
  env -u PARO_CUDA_DEBUG timeout \${TIMING_TIMEOUT:-240} node .gpu/gpu-check.mjs --no-ref --bench 2>&1 | tee "$OUT/timing.txt" || rc=1
fi
if [ "\${SANITIZE:-0}" = 1 ]; then
  CS=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
  for tool in memcheck racecheck; do
    timeout \${SANITIZE_TIMEOUT:-120} "$CS" --tool $tool --print-limit 10 node .gpu/gpu-check.mjs --no-time --quick --group attention --only tiny 2>&1 | tail -25
    timeout \${SANITIZE_TIMEOUT:-120} "$CS" --tool $tool --print-limit 10 node .gpu/gpu-check.mjs --no-time --quick --group paroquant --only '[256' 2>&1 | tail -25
  done 2>&1 | tee "$OUT/sanitizer.txt"
fi
exit $rc
`;
fs.writeFileSync(path.join(out, 'run.sh'), runSh, { mode: 0o755 });

let total = 0;
const walk = (d) => {
  for (const e of fs.readdirSync(d, { withFileTypes: true })) {
    const p = path.join(d, e.name);
    if (e.isDirectory()) walk(p);
    else total += fs.statSync(p).size;
  }
};
walk(out);
console.log(`gpu bundle: ${path.relative(root, out)}/ ${(total / 2 ** 20).toFixed(1)} MiB (gpu-check.mjs, wasm/, native/, node.xz)`);
