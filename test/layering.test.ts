// The layering of src/ as a checked rule (docs/architecture.md): every import between folders runs down the floors
// cli → jobs → paroquant, dflash → model → engine → numerics, with io beside (used from model upwards, importing only
// numerics); paroquant and dflash compute only: no file system, no printing, no flag names.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = fileURLToPath(new URL('../src', import.meta.url));

/** What each folder of src/ may import from the others (src/errors.ts: anyone). */
const MAY_IMPORT: Record<string, readonly string[]> = {
  cli: ['jobs', 'paroquant', 'dflash', 'model', 'engine', 'io', 'numerics'],
  jobs: ['paroquant', 'dflash', 'model', 'engine', 'io', 'numerics'],
  paroquant: ['model', 'engine', 'io', 'numerics'],
  dflash: ['model', 'engine', 'io', 'numerics'],
  model: ['engine', 'io', 'numerics'],
  engine: ['numerics'],
  io: ['numerics'],
  numerics: [],
};
const COMPUTE_ONLY = ['paroquant', 'dflash'];

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(p);
    return /\.(ts|mts|js|mjs)$/.test(e.name) && !e.name.endsWith('.d.ts') ? [p] : [];
  });
}

/** Specifiers of static imports and re-exports (type-only ones too: they are dependencies as well) and import(). */
function importsOf(text: string): string[] {
  const out: string[] = [];
  const patterns = [
    /^\s*(?:import|export)\b[^;'"]*?\bfrom\s*['"]([^'"]+)['"]/gms, // import x from '…', import {\n…\n} from '…', export … from '…'
    /^\s*import\s*['"]([^'"]+)['"]/gm, // import '…' (side effects)
    /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g, // import('…')
  ];
  for (const re of patterns) for (const m of text.matchAll(re)) out.push(m[1]);
  return out;
}

/** The string literals of a source text (quotes and template text, ${} parts included as written). */
function stringLiterals(text: string): string[] {
  return [...text.matchAll(/'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*"|`(?:[^`\\]|\\.)*`/g)].map((m) => m[0]);
}

interface SourceFile {
  file: string;
  rel: string;
  folder: string;
  text: string;
}

function sourceFile(file: string, text: string): SourceFile {
  const rel = path.relative(SRC, file);
  return { file, rel, folder: rel.split(path.sep)[0], text };
}

/** Imports that run up or across the floors, or out of src/. */
function importViolations(files: readonly SourceFile[]): string[] {
  const wrong: string[] = [];
  for (const f of files) {
    for (const spec of importsOf(f.text)) {
      if (!spec.startsWith('.')) continue; // packages and node: built-ins (checked below for the compute floors)
      const rel = path.relative(SRC, path.resolve(path.dirname(f.file), spec));
      if (rel.startsWith('..')) {
        wrong.push(`${f.rel} imports ${spec}, outside src/`);
        continue;
      }
      const to = rel.split(path.sep)[0];
      if (to.startsWith('errors.')) continue;
      if (f.rel === 'errors.ts') wrong.push(`errors.ts imports ${spec}`);
      else if (to !== f.folder && !MAY_IMPORT[f.folder]?.includes(to)) wrong.push(`${f.rel} imports ${spec} (${f.folder} → ${to})`);
    }
  }
  return wrong;
}

/** What paroquant and dflash may not do: touch files or the process, print, name a flag. */
function computeViolations(files: readonly SourceFile[]): string[] {
  const wrong: string[] = [];
  for (const f of files.filter((x) => COMPUTE_ONLY.includes(x.folder))) {
    for (const spec of importsOf(f.text)) {
      if (/^(node:)?(fs|fs\/promises|child_process|readline|process|worker_threads)$/.test(spec)) wrong.push(`${f.rel} imports ${spec}`);
    }
    if (/\bconsole\.|\bprocess\.(stdout|stderr|exit|argv|env)\b/.test(f.text)) wrong.push(`${f.rel} prints or reads the process`);
    for (const lit of stringLiterals(f.text)) {
      if (/(^|[\s'"`(])--[a-z][a-z-]+/.test(lit)) wrong.push(`${f.rel} names a flag: ${lit.slice(0, 60)}`);
    }
  }
  return wrong;
}

const files = sourceFiles(SRC).map((file) => sourceFile(file, readFileSync(file, 'utf8')));

describe('layering of src/', () => {
  it('every source file lies in a known floor (or is src/errors.ts), and the parser sees the imports', () => {
    expect(files.length).toBeGreaterThan(50);
    for (const f of files) {
      if (f.rel === 'errors.ts') continue;
      expect(Object.keys(MAY_IMPORT), f.rel).toContain(f.folder);
    }
    // A multi-line import and an import type are seen (the parser is what this whole test stands on).
    expect(importsOf("import {\n  a,\n  b,\n} from '../io/x.js';\nimport type { T } from '../model/y.js';\nexport { c } from './z.js';"))
      .toEqual(['../io/x.js', '../model/y.js', './z.js']);
    const jobs = files.find((f) => f.rel === path.join('jobs', 'quantize.ts'));
    expect(jobs && importsOf(jobs.text).some((s) => s.startsWith('../paroquant/'))).toBe(true);
  });

  it('imports between folders run only down the floors; paroquant and dflash do not import each other; io imports none above it', () => {
    expect(importViolations(files)).toEqual([]);
  });

  it('paroquant and dflash compute only: no file system or process access, no printing, no flag names', () => {
    expect(computeViolations(files)).toEqual([]);
  });

  it('the checks catch what they are meant to: upward and cross imports, node:fs, printing, a flag name', () => {
    const planted = [
      sourceFile(path.join(SRC, 'paroquant', 'planted.ts'), "import { x } from '../jobs/quantize.js';\nimport type { D } from '../dflash/drafter.js';\nimport * as fs from 'node:fs';\nconsole.log('try --group-size 64');"),
      sourceFile(path.join(SRC, 'io', 'planted.ts'), "import {\n  loadModel,\n} from '../model/load.js';\nimport { UserError } from '../errors.js';"),
      sourceFile(path.join(SRC, 'engine', 'cpu', 'planted.ts'), "import { Rng } from '../../numerics/rng.js';\nconst x = await import('../../cli/paro.js');"),
    ];
    expect(importViolations(planted)).toEqual([
      'paroquant/planted.ts imports ../jobs/quantize.js (paroquant → jobs)',
      'paroquant/planted.ts imports ../dflash/drafter.js (paroquant → dflash)',
      'io/planted.ts imports ../model/load.js (io → model)',
      'engine/cpu/planted.ts imports ../../cli/paro.js (engine → cli)',
    ]);
    expect(computeViolations(planted)).toEqual([
      'paroquant/planted.ts imports node:fs',
      'paroquant/planted.ts prints or reads the process',
      "paroquant/planted.ts names a flag: 'try --group-size 64'",
    ]);
  });
});
