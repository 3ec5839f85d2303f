#!/usr/bin/env node
// Entry point of `paro`: the compiled CLI lives in dist/ (built by `npm ci` / `npm run build`).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const entry = new URL('../dist/cli/paro.js', import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  process.stderr.write('error: dist/ is missing; run `npm ci` or `npm run build` in the paro-dflash folder first\n');
  process.exit(2);
}
const { main } = await import(entry.href);
await main(process.argv);
