#!/usr/bin/env node
// Builds calib/default.jsonl, the built-in calibration set: generated worked math, source code, structured data,
// dialogues and prose, plus the hand-written texts in calib/handwritten/. Deterministic: same script, same bytes.
// Usage: node calib/build-default.mjs [--out FILE]   (default: calib/default.jsonl next to this script)

import { readdirSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cDocument, goDocument, rustDocument, shellDocument, sqlDocument } from './recipe/code-other.mjs';
import { jsDocument } from './recipe/code-js.mjs';
import { pythonDocument } from './recipe/code-python.mjs';
import { dataDocument } from './recipe/data.mjs';
import { dialogueDocument } from './recipe/dialogue.mjs';
import { mathDocument } from './recipe/math.mjs';
import { proseDocument } from './recipe/prose.mjs';
import { Rng, streamSeed } from './recipe/rng.mjs';

const SEED = 20240611;
/** Characters of generated text; about 2.7 characters per token with a small code-trained BPE. */
const TARGET_CHARS = 680_000;
const MIN_DOC_CHARS = 300;

/** Generator, share of the mix (weights). */
const KINDS = {
  math: [mathDocument, 16],
  python: [pythonDocument, 10],
  javascript: [jsDocument, 6],
  c: [cDocument, 4],
  go: [goDocument, 1.5],
  rust: [rustDocument, 1],
  sql: [sqlDocument, 1.5],
  shell: [shellDocument, 1],
  data: [dataDocument, 10],
  dialogue: [dialogueDocument, 26],
  prose: [proseDocument, 32],
};

const here = dirname(fileURLToPath(import.meta.url));

/** Hand-written documents: each file in handwritten/, split at lines holding only "===". */
function handwrittenDocuments() {
  const dir = join(here, 'handwritten');
  const files = readdirSync(dir).filter((f) => f.endsWith('.txt')).sort();
  return files.flatMap((f) => readFileSync(join(dir, f), 'utf8').replace(/\r\n/g, '\n').split(/\n===\n/)
    .map((d) => `${d.trim()}\n`).filter((d) => d.trim() !== ''));
}

export function buildDocuments() {
  const streams = Object.fromEntries(Object.keys(KINDS).map((k) => [k, new Rng(streamSeed(SEED, k))]));
  const mix = new Rng(streamSeed(SEED, 'mix'));
  const names = Object.keys(KINDS);
  const totalWeight = names.reduce((s, k) => s + KINDS[k][1], 0);
  const docs = handwrittenDocuments().map((text) => ({ kind: 'handwritten', text }));
  let chars = 0;
  while (chars < TARGET_CHARS) {
    let r = mix.next() * totalWeight;
    const kind = names.find((k) => (r -= KINDS[k][1]) < 0) ?? names[names.length - 1];
    const [make] = KINDS[kind];
    let text = make(streams[kind]);
    // Very short pieces are joined with another of the same kind, so every document has some context.
    while (text.length < MIN_DOC_CHARS) text += `\n${make(streams[kind])}`;
    docs.push({ kind, text });
    chars += text.length;
  }
  // Interleave kinds, so any prefix of the file (calibration takes the first windows) is a mix.
  mix.shuffle(docs);
  return docs;
}

function main() {
  const args = process.argv.slice(2);
  const at = args.indexOf('--out');
  const out = at >= 0 ? args[at + 1] : join(here, 'default.jsonl');
  if (!out) throw new Error('--out needs a file name');
  const docs = buildDocuments();
  writeFileSync(out, docs.map((d) => JSON.stringify({ text: d.text })).join('\n') + '\n');
  const perKind = {};
  for (const d of docs) perKind[d.kind] = (perKind[d.kind] ?? 0) + d.text.length;
  const total = docs.reduce((s, d) => s + d.text.length, 0);
  console.log(`${out}: ${docs.length} documents, ${total} characters`);
  for (const [k, c] of Object.entries(perKind).sort((a, b) => b[1] - a[1])) console.log(`  ${k.padEnd(12)} ${String(c).padStart(8)} chars (${((100 * c) / total).toFixed(1)} %)`);
}

// Run only as a script, not when imported.
if (process.argv[1] && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url))) main();
