// The dflash CLI over its jobs: defaults shown in --help come from the jobs' DEFAULTS objects (commander holds none),
// a bad option value is one line plus "see --help" (not the whole help), dangerous or impossible outputs fail at once
// with one line and touch nothing.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { DEFAULT_TRAIN_DRAFTER_SETTINGS } from '../src/jobs/train-drafter.js';
import { scratchDir } from './scratch.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DEMO = path.join(ROOT, 'examples', 'tiny-qwen3');

function dflash(args: string[], cwd = ROOT): { code: number; stderr: string; stdout: string; seconds: number } {
  const tsx = pathToFileURL(path.join(ROOT, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;
  const t0 = performance.now();
  const r = spawnSync(process.execPath, ['--import', tsx, path.join(ROOT, 'scripts', 'dflash-dev.ts'), ...args], {
    cwd, encoding: 'utf8', env: { ...process.env, PARO_QUIET: '1' }, timeout: 120_000,
  });
  return { code: r.status ?? -1, stderr: r.stderr, stdout: r.stdout, seconds: (performance.now() - t0) / 1000 };
}

function expectOneLine(r: { code: number; stderr: string }, re: RegExp): void {
  expect(r.code).not.toBe(0);
  const lines = r.stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^error: /);
  expect(lines[0]).toMatch(re);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

describe('dflash CLI', () => {
  it('--help shows the jobs\' defaults; a bad value prints one line and "see --help"', () => {
    const help = dflash(['train-drafter', '--help']).stdout.replace(/\s+/g, ' ');
    expect(help).toContain(`(default: ${DEFAULT_TRAIN_DRAFTER_SETTINGS.blockSize})`);
    expect(help).toContain(`(default: ${DEFAULT_TRAIN_DRAFTER_SETTINGS.seqLen})`);
    expect(help).toContain(`(default: ${DEFAULT_TRAIN_DRAFTER_SETTINGS.init})`);
    const bad = dflash(['train-drafter', '--target', DEMO, '--data', 'x.jsonl', '--out', 'y', '--batch', 'many']);
    expect(bad.code).not.toBe(0);
    const lines = bad.stderr.trim().split('\n');
    expect(lines.length).toBeLessThanOrEqual(2);
    expect(lines[0]).toMatch(/--batch must be a positive integer, got "many"/);
    expect(bad.stderr).toMatch(/see --help/);
    expect(bad.stderr).not.toMatch(/Usage:/);
  });

  it('train-drafter: an output under a file fails at once; the target as output is refused even with --force', () => {
    const tmp = scratchDir('dflash-cli-');
    const data = path.join(tmp, 'data.jsonl');
    writeFileSync(data, JSON.stringify({ prompt_ids: [1, 2, 3], response_ids: Array.from({ length: 40 }, (_, i) => 5 + i) }) + '\n');
    const file = path.join(tmp, 'a-file');
    writeFileSync(file, 'mine');
    const r = dflash(['train-drafter', '--target', DEMO, '--data', data, '--out', path.join(file, 'x'), '--device', 'cpu']);
    expectOneLine(r, /a-file is not a directory/);
    expect(readFileSync(file, 'utf8')).toBe('mine');
    const before = readFileSync(path.join(DEMO, 'config.json'));
    expectOneLine(dflash(['train-drafter', '--target', DEMO, '--data', data, '--out', DEMO, '--force', '--device', 'cpu']), /is the target input/);
    expect(readFileSync(path.join(DEMO, 'config.json')).equals(before)).toBe(true);
    expect(existsSync(`${DEMO}.partial`)).toBe(false);
    expectOneLine(dflash(['train-drafter', '--target', DEMO, '--data', data, '--out', path.join(tmp, 'd'), '--eval-every', '5', '--device', 'cpu']), /--eval-every needs --eval-prompts/);
  });

  it('generate-data: the prompts file as output is refused even with --force and left as it was', () => {
    const tmp = scratchDir('dflash-cli-');
    const prompts = path.join(tmp, 'prompts.jsonl');
    writeFileSync(prompts, JSON.stringify({ prompt: 'def f():' }) + '\n');
    const before = readFileSync(prompts);
    expectOneLine(dflash(['generate-data', '--target', DEMO, '--prompts', prompts, '--out', prompts, '--force', '--device', 'cpu']), /is the prompts input/);
    expect(readFileSync(prompts).equals(before)).toBe(true);
    expect(existsSync(`${prompts}.partial`)).toBe(false);
  });
});
