// The one --json envelope and the documented exit codes through the real CLIs: a success, a usage error (commander's
// and ours), an input error, and the mapping of error classes to codes.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { EXIT_CODES, GateError, UsageError, UserError, errorCodeOf } from '../src/errors.js';
import { scratchDir } from './scratch.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const tmp = scratchDir('paro-envelope-');

interface Envelope {
  schema: string; tool: string; version: string; command: string; ok: boolean;
  error?: { message: string; code: string; exitCode: number; file?: string };
  result: unknown; seconds: number;
}

function cli(tool: 'paro' | 'dflash', args: string[]): { code: number; stdout: string; stderr: string } {
  const tsx = pathToFileURL(path.join(ROOT, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;
  const r = spawnSync(process.execPath, ['--import', tsx, path.join(ROOT, 'scripts', `${tool}-dev.ts`), ...args], {
    cwd: tmp, encoding: 'utf8', env: { ...process.env, PARO_QUIET: '1' }, timeout: 120_000,
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** stdout holds exactly one JSON line: the envelope. */
function envelopeOf(stdout: string): Envelope {
  const lines = stdout.trim().split('\n');
  expect(lines).toHaveLength(1);
  const e = JSON.parse(lines[0]) as Envelope;
  expect(e.schema).toBe('paro-dflash/envelope@1');
  expect(typeof e.version).toBe('string');
  expect(e.seconds).toBeGreaterThanOrEqual(0);
  return e;
}

describe('--json envelope and exit codes', () => {
  it('success: ok, the report in result, exit 0', () => {
    const r = cli('paro', ['eval', '--demo', '--max-windows', '1', '--seq-len', '32', '--device', 'cpu', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const e = envelopeOf(r.stdout);
    expect(e).toMatchObject({ tool: 'paro', command: 'eval', ok: true });
    expect(e.error).toBeUndefined();
    const res = e.result as { ppl: number; windows: number };
    expect(Number.isFinite(res.ppl) && res.ppl > 1).toBe(true);
    expect(res.windows).toBe(1);
  }, 120_000);

  it('usage errors exit 1 with a failed envelope: an unknown flag (commander) and a missing argument (ours)', () => {
    const unknown = cli('dflash', ['eval', '--target', 't', '--drafter', 'd', '--prompts', 'p', '--bogus', '--json']);
    expect(unknown.code).toBe(EXIT_CODES.usage);
    const e1 = envelopeOf(unknown.stdout);
    expect(e1).toMatchObject({ tool: 'dflash', command: 'eval', ok: false, result: null, error: { code: 'usage', exitCode: 1 } });
    expect(e1.error?.message).toMatch(/--bogus/);

    const missing = cli('paro', ['eval', '--json']);
    expect(missing.code).toBe(EXIT_CODES.usage);
    expect(envelopeOf(missing.stdout).error).toMatchObject({ code: 'usage', message: expect.stringMatching(/model-dir/) });
    expect(missing.stderr.trim().split('\n')).toHaveLength(1);

    const noConfig = cli('paro', ['release', '--json']);
    expect(noConfig.code).toBe(EXIT_CODES.usage);
    expect(envelopeOf(noConfig.stdout).error?.message).toMatch(/--config/);
  }, 120_000);

  it('input errors exit 2; the envelope names the file; stdout stays one JSON line', () => {
    const missingData = path.join(tmp, 'no-such.jsonl');
    const r = cli('paro', ['eval', path.join(ROOT, 'examples', 'tiny-qwen3'), '--data', missingData, '--device', 'cpu', '--json']);
    expect(r.code).toBe(EXIT_CODES.input);
    const e = envelopeOf(r.stdout);
    expect(e).toMatchObject({ ok: false, error: { code: 'input', exitCode: 2, file: missingData } });
    expect(r.stderr).toContain(`error: ${missingData}:`);

    const badConfig = cli('paro', ['release', '--config', path.join(tmp, 'absent.yaml'), '--json']);
    expect(badConfig.code).toBe(EXIT_CODES.input);
    expect(envelopeOf(badConfig.stdout).error?.file).toBe(path.join(tmp, 'absent.yaml'));
  }, 120_000);

  it('error classes map to the documented codes', () => {
    expect(new UserError('x').exitCode).toBe(2);
    expect(new UsageError('x').exitCode).toBe(1);
    const g = new GateError('max_kl', 0.2, 0.1, 'quality gate max_kl failed');
    expect([g.exitCode, g.gate, g.value, g.limit]).toEqual([3, 'max_kl', 0.2, 0.1]);
    expect([0, 1, 2, 3, 4, 99].map(errorCodeOf)).toEqual(['internal', 'usage', 'input', 'gate', 'internal', 'internal']);
  });
});
