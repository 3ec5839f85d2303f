// `npm run bench -- <name> [--json] [options]`: dispatches to one benchmark module of this folder.
// A benchmark is a module exporting `run(ctx)` (see report.ts); add it to BENCHMARKS under its name.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { BenchContext, BenchModule } from './report.js';

export interface BenchEntry {
  summary: string;
  load: () => Promise<BenchModule>;
}

class MissingBench extends Error {}

/** A module of this folder that may not exist yet in a checkout (loaded by a computed name, so tsc does not ask for it). */
function optional(name: string): () => Promise<BenchModule> {
  return async () => {
    const here = (ext: string) => fileURLToPath(new URL(`./${name}.${ext}`, import.meta.url));
    if (!existsSync(here('ts')) && !existsSync(here('js'))) throw new MissingBench(`benchmark "${name}" is not part of this checkout (bench/${name}.ts is missing)`);
    return (await import(`./${name}.js`)) as BenchModule;
  };
}

/** The registry: name → module exporting run(ctx). */
export const BENCHMARKS: Record<string, BenchEntry> = {
  engine: { summary: 'cpu matmul GFLOP/s (1 vs all threads) and eval tokens/s on the fixture', load: () => import('./engine.js') },
  quantize: { summary: 'ParoQuant block-optimizer step and epoch time on the fixture, projected default run', load: () => import('./quantize.js') },
  gpu: { summary: 'CUDA backend benchmarks (bench/gpu.ts)', load: optional('gpu') },
  dflash: { summary: 'DFlash regeneration tokens/s, drafter training ms/step (projected default run), speculative vs plain decoding', load: () => import('./dflash.js') },
};

function usage(): string {
  const names = Object.entries(BENCHMARKS).map(([n, e]) => `  ${n.padEnd(10)} ${e.summary}`).join('\n');
  return `usage: npm run bench -- <name> [--json] [options]\n${names}`;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h') {
    console.log(usage());
    return name ? 0 : 2;
  }
  const entry = BENCHMARKS[name];
  if (!entry) {
    console.error(`unknown benchmark "${name}"\n${usage()}`);
    return 2;
  }
  let mod: BenchModule;
  try {
    mod = await entry.load();
  } catch (e) {
    if (!(e instanceof MissingBench)) throw e;
    console.error(e.message);
    return 2;
  }
  const json = rest.includes('--json');
  const ctx: BenchContext = {
    args: rest.filter((a) => a !== '--json'),
    json,
    log: json ? (l) => process.stderr.write(l + '\n') : (l) => process.stdout.write(l + '\n'),
  };
  const report = await mod.run(ctx);
  if (json) process.stdout.write(JSON.stringify({ bench: name, ...report }, null, 1) + '\n');
  return 0;
}

const code = await main(process.argv.slice(2));
// Benchmarks may leave worker threads parked; exit explicitly.
process.exit(code);
