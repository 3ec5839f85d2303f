#!/usr/bin/env node
// Numerics guard for refactors: runs a small cpu `paro quantize`, `paro eval`, `dflash generate-data`,
// `dflash train-drafter` and `dflash eval` on the embedded demo model and compares the output hashes and figures with
// docs/numerics-baseline.json (recorded before a refactor with --write). Usage: node scripts/numerics-check.mjs [--write]
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const baselineFile = path.join(root, 'docs', 'numerics-baseline.json');
const model = path.join(root, 'examples', 'tiny-qwen3');
const calib = path.join(root, 'calib', 'default.jsonl');
const prompts = path.join(root, 'scripts', 'numerics-prompts.txt');
const tmp = mkdtempSync(path.join(tmpdir(), 'paro-numerics-'));
const env = { ...process.env, PARO_QUIET: '1' };

function cli(tool, args) {
  const out = execFileSync(process.execPath, [path.join(root, 'bin', `${tool}.js`), ...args, '--device', 'cpu', '--json'], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  return JSON.parse(out);
}
const sha = (f) => createHash('sha256').update(readFileSync(f)).digest('hex');
const pick = (r, ...keys) => { for (const k of keys) r = r?.[k]; return r; };
/** The command's own report, inside the JSON envelope where there is one. */
const body = (r) => (r && typeof r === 'object' && 'result' in r && 'ok' in r ? r.result : r);

try {
  const q = path.join(tmp, 'q');
  cli('paro', ['quantize', model, '--out', q, '--calib', calib, '--samples', '8', '--val-samples', '4', '--seq-len', '128', '--epochs', '1,1', '--batch-size', '4']);
  const ev = body(cli('paro', ['eval', q, '--data', calib, '--seq-len', '128', '--max-windows', '8']));
  const data = path.join(tmp, 'data.jsonl');
  cli('dflash', ['generate-data', '--target', model, '--prompts', prompts, '--out', data, '--max-new-tokens', '48', '--batch', '4']);
  const dr = path.join(tmp, 'drafter');
  cli('dflash', ['train-drafter', '--target', model, '--data', data, '--out', dr, '--epochs', '2', '--seq-len', '128', '--batch', '2', '--anchors', '8']);
  const de = body(cli('dflash', ['eval', '--target', model, '--drafter', dr, '--prompts', prompts, '--max-new-tokens', '32']));
  const now = {
    quantizedModel: sha(path.join(q, 'model.safetensors')),
    evalPpl: ev.ppl,
    generatedData: sha(data),
    drafterModel: sha(path.join(dr, 'model.safetensors')),
    dflashEval: { tau: de.tau, tauPooled: de.tauPooled, verifySteps: de.verifySteps, histogram: de.histogram, equalOutputs: de.equalOutputs },
  };
  if (process.argv.includes('--write')) {
    writeFileSync(baselineFile, JSON.stringify(now, null, 2) + '\n');
    process.stdout.write(`wrote ${baselineFile}\n`);
  } else {
    const base = JSON.parse(readFileSync(baselineFile, 'utf8'));
    const diffs = Object.keys(base).filter((k) => JSON.stringify(base[k]) !== JSON.stringify(now[k]));
    for (const k of Object.keys(base)) process.stdout.write(`${diffs.includes(k) ? 'DIFFERS' : 'same   '} ${k}: ${JSON.stringify(now[k])}\n`);
    if (diffs.length) { process.stdout.write(`numerics changed: ${diffs.join(', ')}\n`); process.exitCode = 1; }
    else process.stdout.write('numerics unchanged: byte-identical outputs and equal figures\n');
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
