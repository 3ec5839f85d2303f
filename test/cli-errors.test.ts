// Bad input through the real CLI: one line on stderr naming the file and the problem, a non-zero exit code, no stack
// trace unless --debug, and no output written.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DEMO = path.join(ROOT, 'examples', 'tiny-qwen3');

function paro(args: string[], cwd = ROOT): { code: number; stderr: string; stdout: string } {
  // tsx by absolute URL, so that a working directory outside the repository still finds it.
  const tsx = pathToFileURL(path.join(ROOT, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;
  const r = spawnSync(process.execPath, ['--import', tsx, path.join(ROOT, 'scripts', 'paro-dev.ts'), ...args], {
    cwd, encoding: 'utf8', env: { ...process.env, PARO_QUIET: '1' }, timeout: 120_000,
  });
  return { code: r.status ?? -1, stderr: r.stderr, stdout: r.stdout };
}

/** A copy of the demo model whose model.safetensors is replaced by `bytes`. */
function modelWith(dir: string, bytes: Buffer | null, config?: Record<string, unknown>): string {
  mkdirSync(dir, { recursive: true });
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(path.join(DEMO, f), path.join(dir, f));
  const cfg = config ?? JSON.parse(readFileSync(path.join(DEMO, 'config.json'), 'utf8'));
  writeFileSync(path.join(dir, 'config.json'), JSON.stringify(cfg));
  if (bytes) writeFileSync(path.join(dir, 'model.safetensors'), bytes);
  else copyFileSync(path.join(DEMO, 'model.safetensors'), path.join(dir, 'model.safetensors'));
  return dir;
}

function header(json: Record<string, unknown>, dataBytes: number): Buffer {
  const h = Buffer.from(JSON.stringify(json));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  return Buffer.concat([len, h, Buffer.alloc(dataBytes)]);
}

function expectOneLineError(r: { code: number; stderr: string }, file: string, re: RegExp): void {
  expect(r.code).not.toBe(0);
  const lines = r.stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^error: /);
  expect(lines[0]).toContain(file);
  expect(lines[0]).toMatch(re);
  expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
}

describe('CLI errors on bad input', () => {
  let tmp: string;
  let data: string;
  beforeAll(() => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'paro-cli-'));
    data = path.join(tmp, 'data.jsonl');
    writeFileSync(data, JSON.stringify({ text: 'def f(x):\n    return x + 1\n'.repeat(200) }) + '\n');
  });
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it('truncated safetensors file', () => {
    const full = readFileSync(path.join(DEMO, 'model.safetensors'));
    const dir = modelWith(path.join(tmp, 'trunc'), full.subarray(0, full.length - 1000));
    expectOneLineError(paro(['eval', dir, '--data', data, '--device', 'cpu']), path.join(dir, 'model.safetensors'), /data section|end of the file|truncat|offset/i);
  });

  it('header whose offsets lie', () => {
    const dir = modelWith(path.join(tmp, 'lie'), header({ 'model.embed_tokens.weight': { dtype: 'BF16', shape: [4096, 256], data_offsets: [0, 4096 * 256 * 2 + 64] } }, 4096 * 256 * 2));
    expectOneLineError(paro(['eval', dir, '--data', data, '--device', 'cpu']), 'model.safetensors', /offset|outside|beyond|end/i);
  });

  it('unknown dtype', () => {
    const dir = modelWith(path.join(tmp, 'dtype'), header({ 'model.embed_tokens.weight': { dtype: 'F8_E4M3', shape: [2], data_offsets: [0, 2] } }, 2));
    expectOneLineError(paro(['eval', dir, '--data', data, '--device', 'cpu']), 'model.safetensors', /unknown dtype.*F8_E4M3/i);
  });

  it('missing tensor', () => {
    const dir = modelWith(path.join(tmp, 'missing'), header({ 'model.embed_tokens.weight': { dtype: 'BF16', shape: [4096, 256], data_offsets: [0, 4096 * 256 * 2] } }, 4096 * 256 * 2));
    expectOneLineError(paro(['eval', dir, '--data', data, '--device', 'cpu']), dir, /missing tensor|model\.layers\.0/i);
  });

  it('config of an unsupported architecture', () => {
    const cfg = { ...JSON.parse(readFileSync(path.join(DEMO, 'config.json'), 'utf8')), architectures: ['MistralForCausalLM'], model_type: 'mistral' };
    const dir = modelWith(path.join(tmp, 'arch'), null, cfg);
    const r = paro(['eval', dir, '--data', data, '--device', 'cpu']);
    expectOneLineError(r, 'config.json', /MistralForCausalLM/);
    expect(r.stderr).toMatch(/Qwen3ForCausalLM/); // lists what is supported
  });

  it('empty data file', () => {
    const empty = path.join(tmp, 'empty.jsonl');
    writeFileSync(empty, '');
    expectOneLineError(paro(['eval', DEMO, '--data', empty, '--device', 'cpu']), empty, /empty|no documents/i);
  });

  it('--debug shows the stack trace', () => {
    const empty = path.join(tmp, 'empty2.jsonl');
    writeFileSync(empty, '');
    const r = paro(['eval', DEMO, '--data', empty, '--device', 'cpu', '--debug']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/\n\s+at /);
  });

  it('quantize: existing output without --force, nothing overwritten', () => {
    const out = path.join(tmp, 'exists');
    mkdirSync(out);
    writeFileSync(path.join(out, 'keep.txt'), 'user data');
    expectOneLineError(paro(['quantize', DEMO, '--out', out, '--device', 'cpu']), out, /exists; pass --force/);
    expect(readFileSync(path.join(out, 'keep.txt'), 'utf8')).toBe('user data');
    expect(existsSync(out + '.partial')).toBe(false);
  });

  it('quantize --demo replaces only its own earlier output, not a folder of that name the user made', () => {
    const cwd = path.join(tmp, 'demo-cwd');
    const out = path.join(cwd, 'paro-demo-out');
    mkdirSync(out, { recursive: true });
    writeFileSync(path.join(out, 'keep.txt'), 'user data');
    expectOneLineError(paro(['quantize', '--demo', '--device', 'cpu'], cwd), out, /exists; pass --force/);
    expect(readFileSync(path.join(out, 'keep.txt'), 'utf8')).toBe('user data');
  });
  it('quantize --force never deletes a folder this tool did not write', () => {
    const out = path.join(tmp, 'user-folder');
    mkdirSync(path.join(out, 'src'), { recursive: true });
    writeFileSync(path.join(out, 'notes.txt'), 'user data');
    expectOneLineError(paro(['quantize', DEMO, '--out', out, '--force', '--method', 'rtn', '--device', 'cpu']), out, /not written by this tool/);
    expect(readFileSync(path.join(out, 'notes.txt'), 'utf8')).toBe('user data');
    expect(existsSync(path.join(out, 'src'))).toBe(true);
  });

  it('quantize --out . (the current directory) is refused before anything is touched', () => {
    const cwd = path.join(tmp, 'work-cwd');
    mkdirSync(cwd);
    writeFileSync(path.join(cwd, 'notes.txt'), 'user data');
    expectOneLineError(paro(['quantize', DEMO, '--out', '.', '--force', '--method', 'rtn', '--device', 'cpu'], cwd), cwd, /current directory/);
    expect(readFileSync(path.join(cwd, 'notes.txt'), 'utf8')).toBe('user data');
    expect(readdirSync(cwd)).toEqual(['notes.txt']);
  });

  it('quantize --out equal to or inside the model folder is refused', () => {
    const model = modelWith(path.join(tmp, 'model-copy'), null);
    const before = readdirSync(model).sort();
    expectOneLineError(paro(['quantize', model, '--out', model, '--force', '--method', 'rtn', '--device', 'cpu']), model, /is the model input/);
    expectOneLineError(paro(['quantize', model, '--out', path.join(model, 'q'), '--method', 'rtn', '--device', 'cpu']), model, /lies inside the model input/);
    expect(readdirSync(model).sort()).toEqual(before);
  });

  it('quantize with a missing --calib file: one line naming it', () => {
    const calib = path.join(tmp, 'no-such-calib.jsonl');
    const out = path.join(tmp, 'q-nocalib');
    expectOneLineError(paro(['quantize', DEMO, '--out', out, '--calib', calib, '--device', 'cpu']), calib, /does not exist/);
    expect(existsSync(out)).toBe(false);
    expect(existsSync(out + '.partial')).toBe(false);
  });

  it('quantize --out under a file, or in a read-only folder: one line naming the path, no ENOTDIR/EACCES', () => {
    const r = paro(['quantize', DEMO, '--out', '/etc/passwd/x', '--method', 'rtn', '--device', 'cpu']);
    expectOneLineError(r, '/etc/passwd/x', /is not a directory/);
    expect(r.stderr).not.toMatch(/ENOTDIR/);
    if (process.getuid?.() !== 0) {
      const ro = path.join(tmp, 'read-only');
      mkdirSync(ro, 0o555);
      const r2 = paro(['quantize', DEMO, '--out', path.join(ro, 'q'), '--method', 'rtn', '--device', 'cpu']);
      expectOneLineError(r2, path.join(ro, 'q'), /permission denied/);
      expect(r2.stderr).not.toMatch(/EACCES/);
    }
  });

  it('quantize --bits 8 and --group-size 96 fail at once, before any work', () => {
    const out = path.join(tmp, 'q-bits');
    const t0 = Date.now();
    const r = paro(['quantize', DEMO, '--out', out, '--bits', '8', '--device', 'cpu']);
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/--bits 8 is not supported/);
    expectOneLineError(paro(['quantize', DEMO, '--out', out, '--group-size', '96', '--device', 'cpu']), DEMO, /not a multiple of the group size 96/);
    expect(Date.now() - t0).toBeLessThan(60_000);
    expect(existsSync(out + '.partial')).toBe(false);
  });

  it('a bad option value prints one line and "see --help", not the whole help', () => {
    for (const args of [['quantize', DEMO, '--out', 'x', '--samples', 'abc'], ['quantize', DEMO, '--krot', '0'], ['eval', DEMO, '--seq-len', '-1'], ['quantize', DEMO, '--method', 'gptq']]) {
      const r = paro(args);
      expect(r.code).not.toBe(0);
      const lines = r.stderr.trim().split('\n');
      expect(lines.length).toBeLessThanOrEqual(2);
      expect(lines[0]).toMatch(/^error: /);
      expect(r.stderr).toMatch(/see --help/);
      expect(r.stderr).not.toMatch(/Usage:|Options:/);
    }
  });
});
