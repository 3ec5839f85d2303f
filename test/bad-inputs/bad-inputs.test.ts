// Runs the bad-input corpus (cases.ts) through the real CLIs, a few cases at a time. Per case: exit code ≠ 0 from a
// UserError (no internal error), one or two stderr lines naming the file/option and the problem, no raw
// Node error text, no stack trace (no --debug), every input byte-identical, no output or partial left behind.
// Review the messages: BAD_INPUTS_LOG=/tmp/bad-inputs.md npx vitest run test/bad-inputs/
import { appendFileSync, chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CASES, type Ctx, type Shared, quantize, train, trainKilled } from './cases.js';
import { DEMO, ROOT, limiter, runCli, snapshot, snapshotDiff, withOpt } from './harness.js';

const base = mkdtempSync(path.join(os.tmpdir(), 'paro-bad-inputs-'));
const sharedDir = path.join(base, 'shared');
let shared: Shared;

// Whole documents of the built-in calibration set: enough tokens for 3 windows of 32 (quantize) and 2 (eval).
function smallText(): string {
  const lines = readFileSync(path.join(ROOT, 'calib', 'default.jsonl'), 'utf8').split('\n');
  let out = '';
  for (const l of lines) {
    if (out.length > 4000) break;
    out += l + '\n';
  }
  return out;
}
const PROMPTS = ['Write a function that adds two numbers.', 'What is the capital of France?', 'Tell me a short story.'].map((p) => JSON.stringify({ prompt: p })).join('\n') + '\n';
const LONG_PROMPTS = Array.from({ length: 12 }, (_, i) => JSON.stringify({ prompt: `Prompt number ${i}: explain item ${i * 7}.` })).join('\n') + '\n';

/** The case folder; the drafter (2 MB) is copied only for the cases that use it. */
function fillCtx(root: string, withDrafter = true): Ctx {
  mkdirSync(root, { recursive: true });
  const c: Ctx = {
    root, model: path.join(root, 'model'), data: path.join(root, 'data.jsonl'), prompts: path.join(root, 'prompts.jsonl'),
    records: path.join(root, 'records.jsonl'), drafter: path.join(root, 'drafter'), out: path.join(root, 'out'),
    outJsonl: path.join(root, 'out.jsonl'), shared,
  };
  cpSync(DEMO, c.model, { recursive: true });
  writeFileSync(c.data, smallText());
  writeFileSync(c.prompts, PROMPTS);
  copyFileSync(shared.records, c.records);
  if (withDrafter && shared.drafter) cpSync(shared.drafter, c.drafter, { recursive: true });
  return c;
}

/** Runs a CLI command and SIGKILLs it as soon as `ready()` holds; resolves with whether the kill came first. */
function runUntil(tool: 'paro' | 'dflash', args: string[], ready: () => boolean, timeoutS: number): Promise<boolean> {
  const tsx = pathToFileURL(path.join(ROOT, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;
  const script = path.join(ROOT, 'scripts', tool === 'paro' ? 'paro-dev.ts' : 'dflash-dev.ts');
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', tsx, script, ...args], { env: { ...process.env, PARO_QUIET: '1' }, stdio: 'ignore' });
    let killed = false;
    const poll = setInterval(() => {
      if (!killed && ready()) { killed = true; child.kill('SIGKILL'); }
    }, 20);
    const timer = setTimeout(() => { killed = true; child.kill('SIGKILL'); }, timeoutS * 1000);
    child.on('close', () => { clearInterval(poll); clearTimeout(timer); resolve(killed); });
  });
}

/** True when `p` (a file, or a folder holding a .jsonl) has at least one complete record. */
function hasRecords(p: string): boolean {
  try {
    if (!existsSync(p)) return false;
    if (statSync(p).isFile()) return readFileSync(p, 'utf8').includes('\n');
    return readdirSync(p).some((n) => n.endsWith('.jsonl') && readFileSync(path.join(p, n), 'utf8').includes('\n'));
  } catch {
    return false;
  }
}

// Training records for train-drafter: prompt/response pairs cut from the built-in text (no generate-data needed).
function trainingRecords(): string {
  const docs = readFileSync(path.join(ROOT, 'calib', 'default.jsonl'), 'utf8').split('\n').slice(0, 6).filter((l) => l.trim() !== '');
  return docs.map((l) => { const t = (JSON.parse(l) as { text: string }).text; return JSON.stringify({ prompt: t.slice(0, 16), response: t.slice(16, 600) }); }).join('\n') + '\n';
}

beforeAll(async () => {
  // A drafter and the partial outputs of interrupted runs, made by the real CLI once. Where a run fails, the cases
  // that need its artifact fail (saying why); the others still run.
  const records = path.join(sharedDir, 'records.jsonl');
  mkdirSync(sharedDir, { recursive: true });
  writeFileSync(records, trainingRecords());
  const longPrompts = path.join(sharedDir, 'prompts-long.jsonl');
  writeFileSync(longPrompts, LONG_PROMPTS);
  const genPartialArgs = ['generate-data', '--target', '<target>', '--prompts', '<prompts>', '--out', '<out>', '--max-new-tokens', '48', '--batch', '1', '--ignore-eos', '--device', 'cpu'];
  shared = { records, drafter: null, quantPartial: null, genPartial: null, trainLeftovers: null, genPartialPrompts: longPrompts, genPartialArgs, why: {} };
  const c = fillCtx(path.join(sharedDir, 'work'));

  const drafter = path.join(sharedDir, 'drafter');
  const tr = await runCli('dflash', withOpt(train(c), '--out', drafter), sharedDir, 120);
  if (tr.code === 0) shared.drafter = drafter;
  else shared.why.drafter = `train-drafter failed (exit ${tr.code}): ${tr.stderr.trim().slice(-1000)}`;

  const tOut = path.join(sharedDir, 't');
  const killedTrain = await runUntil('dflash', withOpt(trainKilled(c), '--out', tOut), () => existsSync(path.join(tOut + '.partial', 'progress.json')), 120);
  const leftovers = readdirSync(sharedDir).filter((n) => /^\.?t\./.test(n)).map((n) => path.join(sharedDir, n));
  if (killedTrain && leftovers.length > 0 && !existsSync(tOut)) shared.trainLeftovers = leftovers;
  else shared.why.trainLeftovers = `the train-drafter run to interrupt ${existsSync(tOut) ? 'finished before the kill' : 'left nothing'}`;

  const qOut = path.join(sharedDir, 'q');
  const qArgs = withOpt(withOpt(withOpt(quantize(c), '--out', qOut), '--epochs', '3,3'), '--samples', '4');
  const progress = path.join(qOut + '.partial', 'progress.json');
  await runUntil('paro', qArgs, () => existsSync(progress), 120);
  if (existsSync(progress)) shared.quantPartial = qOut + '.partial';
  else shared.why.quantPartial = 'the interrupted quantize run left no partial with progress.json';

  const gOut = path.join(sharedDir, 'g.jsonl');
  const fill = (a: string): string => (a === '<target>' ? c.model : a === '<prompts>' ? longPrompts : a === '<out>' ? gOut : a);
  await runUntil('dflash', genPartialArgs.map(fill), () => hasRecords(gOut + '.partial'), 120);
  if (hasRecords(gOut + '.partial')) shared.genPartial = gOut + '.partial';
  else if (existsSync(gOut)) {
    // The run finished before the kill: a partial as the issue made it (head of a complete output).
    writeFileSync(gOut + '.partial', readFileSync(gOut, 'utf8').split('\n').slice(0, 2).join('\n') + '\n');
    shared.genPartial = gOut + '.partial';
  } else shared.why.genPartial = 'the interrupted generate-data run left neither records in a partial nor an output';
}, 300_000);

afterAll(() => rmSync(base, { recursive: true, force: true }));

const pool = limiter(3);
let caseNo = 0;

describe.concurrent('bad-input corpus (issue 8)', () => {
  it('holds at least 60 cases across the five commands', () => {
    expect(CASES.length).toBeGreaterThanOrEqual(60);
    expect(new Set(CASES.map((k) => k.name.split(':')[0]))).toEqual(new Set(['eval', 'quantize', 'generate-data', 'train-drafter', 'dflash eval']));
    expect(new Set(CASES.map((k) => k.name)).size).toBe(CASES.length); // names are unique
  });

  for (const k of CASES) {
    it(`#${k.defect} ${k.name}`, () => pool(async () => {
      const root = path.join(base, `case-${++caseNo}`);
      const c = fillCtx(root, k.name.startsWith('dflash eval'));
      try {
        k.setup?.(c);
        const before = snapshot(root);
        const r = await runCli(k.tool, k.args(c), k.cwd?.(c) ?? root, k.timeoutS ?? 60);
        const after = snapshot(root);
        // BAD_INPUTS_LOG=<file>: every case's outcome, to review the messages.
        if (process.env.BAD_INPUTS_LOG) appendFileSync(process.env.BAD_INPUTS_LOG, `## ${k.name}\nexit ${r.code ?? r.signal} in ${r.seconds.toFixed(1)} s\n${r.stderr.trim()}\n\n`);
        const problems: string[] = [];
        const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
        if (r.timedOut) problems.push(`still running after ${k.timeoutS ?? 60} s (killed)`);
        else if (r.code === 0) problems.push('exit code 0');
        // An error that is not a UserError: exit 4 (EXIT_CODES.internal; 2 before 04d0029), always with this hint.
        if (r.code === 4 || r.stderr.includes('(run with --debug for details)')) problems.push('an internal error, not a UserError');
        if (/\bE[A-Z]{2,}: [a-z ]+, [a-z]+ '/.test(r.stderr)) problems.push('a raw Node error text (ENOENT: ..., open \'...\')');
        if (lines.length === 0) problems.push('nothing on stderr');
        if (lines.length > 2) problems.push(`${lines.length} lines on stderr`);
        if (/^\s+at /m.test(r.stderr)) problems.push('stack trace on stderr');
        for (const n of k.names(c)) if (typeof n === 'string' ? !r.stderr.includes(n) : !n.test(r.stderr)) problems.push(`stderr does not name ${typeof n === 'string' ? JSON.stringify(n) : n}`);
        if (!k.problem.test(r.stderr)) problems.push(`stderr does not match ${k.problem}`);
        problems.push(...snapshotDiff(before, after, k.remain ?? [], k.mayGo));
        const shown = r.stderr.length > 600 ? `${r.stderr.slice(0, 300)} … ${r.stderr.slice(-300)}` : r.stderr;
        expect(problems, `exit ${r.code}${r.signal ? ` (${r.signal})` : ''} after ${r.seconds.toFixed(1)} s; stderr: ${shown.trim()}`).toEqual([]);
      } finally {
        if (existsSync(path.join(root, 'readonly'))) chmodSync(path.join(root, 'readonly'), 0o755);
        rmSync(root, { recursive: true, force: true });
      }
    }), 240_000);
  }
});
