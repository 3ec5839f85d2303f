#!/usr/bin/env node
// Packs what a GPU machine without npm needs into .gpu/ (git-ignored): gpu-check.mjs (scripts/gpu-check.ts bundled
// with esbuild, all npm dependencies inside), wasm/ (the tfjs-backend-wasm binaries the cpu backend loads through
// PARO_TFJS_WASM_DIR), native/ (the addon sources, build.mjs and the Node-API headers, so nvcc can build it there) and
// node.xz (this machine's Node binary). On the GPU machine:
//   xz -dc .gpu/node.xz > /tmp/node && chmod +x /tmp/node
//   /tmp/node .gpu/native/build.mjs --strict && PARO_TFJS_WASM_DIR=$PWD/.gpu/wasm /tmp/node .gpu/gpu-check.mjs
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

// 1. The harness, one ESM file. CommonJS dependencies inside an ESM bundle need require/__dirname in scope.
await build({
  entryPoints: [path.join(root, 'scripts', 'gpu-check.ts')],
  outfile: path.join(out, 'gpu-check.mjs'),
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  logLevel: 'warning',
  banner: {
    js: [
      "import { createRequire as __paroCreateRequire } from 'node:module';",
      "import { fileURLToPath as __paroFileURLToPath } from 'node:url';",
      "import { dirname as __paroDirname } from 'node:path';",
      'const require = __paroCreateRequire(import.meta.url);',
      'const __filename = __paroFileURLToPath(import.meta.url);',
      'const __dirname = __paroDirname(__filename);',
    ].join('\n'),
  },
});

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
fs.copyFileSync(path.join(root, 'native', 'build.mjs'), path.join(nativeOut, 'build.mjs'));
for (const f of fs.readdirSync(path.join(root, 'native', 'src'))) {
  fs.copyFileSync(path.join(root, 'native', 'src', f), path.join(nativeOut, 'src', f));
}
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
