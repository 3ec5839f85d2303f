// Entry point bundled for the GPU machine: `node .gpu/bench-gpu.mjs [--json] [bench options]` runs bench/gpu.ts.
import { run } from '../bench/gpu.js';

const args = process.argv.slice(2);
const json = args.includes('--json');
const report = await run({ args: args.filter((a) => a !== '--json'), json, log: (l) => process.stderr.write(l + '\n') });
if (json) process.stdout.write(JSON.stringify({ bench: 'gpu', ...report }, null, 1) + '\n');
process.exit(0);
