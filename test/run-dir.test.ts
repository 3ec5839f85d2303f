// The run directory (src/io/run-dir.ts): outputs never touch inputs or the current directory, --force replaces only
// outputs of ours, partials are resumed only with --resume and the same fingerprint, one run per output (lock), stale
// temporaries are cleaned, and every refusal is a one-line UserError naming the path.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { UserError } from '../src/errors.js';
import { fingerprint, fingerprintDiff, sha256Bytes, sha256File, stableJson } from '../src/io/hash.js';
import { MANIFEST_SCHEMA, createManifest, describeInput, readToolManifest } from '../src/io/manifest.js';
import { checkOutputPath, openRunDir, type RunDirSpec } from '../src/io/run-dir.js';
import { scratchDir } from './scratch.js';

const cwd0 = process.cwd();
afterEach(() => process.chdir(cwd0));

function spec(out: string, over: Partial<RunDirSpec> = {}): RunDirSpec {
  return { out, kind: 'dir', tool: 'paro', command: 'quantize', inputs: {}, force: false, resume: false, fingerprint: { a: 1 }, ...over };
}

function userError(fn: () => unknown, re: RegExp, file?: string): UserError {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(UserError);
  const u = err as UserError;
  expect(u.oneLine()).toMatch(re);
  expect(u.oneLine()).not.toContain('\n');
  if (file) expect(u.oneLine()).toContain(file);
  return u;
}

function manifest() {
  return createManifest({ tool: 'paro', version: 't', command: 'quantize', settings: {}, seed: 0, device: 'cpu', backend: 'cpu', inputs: [], metrics: {}, seconds: {} });
}

/** A finished output of ours at `out` holding one file. */
function finished(out: string): void {
  const rd = openRunDir(spec(out));
  fs.writeFileSync(rd.path('model.safetensors'), 'old');
  rd.commit(manifest());
}

describe('hash', () => {
  it('sha256File streams the same digest as hashing the bytes', () => {
    const d = scratchDir('hash-');
    const f = path.join(d, 'x.bin');
    const bytes = Buffer.alloc(40 << 20, 7); // bigger than one read chunk
    bytes[123456] = 1;
    fs.writeFileSync(f, bytes);
    const pieces: number[] = [];
    expect(sha256File(f, (n) => pieces.push(n))).toBe(sha256Bytes(bytes));
    // Progress: every byte reported once, in pieces of at most one read chunk.
    expect(pieces.reduce((a, b) => a + b, 0)).toBe(bytes.length);
    expect(pieces.length).toBeGreaterThan(1);
    expect(Math.max(...pieces)).toBeLessThanOrEqual(16 << 20);
    let seen = 0;
    const dirInput = describeInput('model', d, undefined, (n) => { seen += n; });
    expect(dirInput.files?.map((e) => e.name)).toEqual(['x.bin']);
    expect(seen).toBe(bytes.length);
  });
  it('a device or a pipe is refused, not read forever', () => {
    userError(() => sha256File('/dev/zero'), /not a regular file/, '/dev/zero');
    userError(() => describeInput('calib', '/dev/zero'), /not a regular file/, '/dev/zero');
  });
  it('fingerprint ignores key order and names what differs', () => {
    expect(stableJson({ b: 1, a: { d: 2, c: 3 } })).toBe('{"a":{"c":3,"d":2},"b":1}');
    expect(fingerprint({ x: 1, y: 2 })).toBe(fingerprint({ y: 2, x: 1 }));
    expect(fingerprint({ x: 1 })).not.toBe(fingerprint({ x: 2 }));
    expect(fingerprintDiff({ settings: { seqLen: 128, bits: 4 }, inputs: { model: 'h' } }, { settings: { seqLen: 256, bits: 4 }, inputs: { model: 'h' } })).toEqual(['settings.seqLen']);
  });
  it('describeInput hashes a directory file by file', () => {
    const d = scratchDir('hash-');
    fs.writeFileSync(path.join(d, 'b.json'), 'B');
    fs.writeFileSync(path.join(d, 'a.json'), 'A');
    const i = describeInput('model', d);
    expect(i.files?.map((f) => f.name)).toEqual(['a.json', 'b.json']);
    expect(i.files?.[0].sha256).toBe(sha256Bytes('A'));
    expect(describeInput('calib', path.join(d, 'a.json')).sha256).toBe(sha256Bytes('A'));
  });
});

describe('checkOutputPath', () => {
  it('refuses an output that is, contains or lies inside an input', () => {
    const d = scratchDir('rundir-');
    const model = path.join(d, 'model');
    fs.mkdirSync(model);
    fs.writeFileSync(path.join(model, 'config.json'), '{}');
    userError(() => checkOutputPath({ out: model, kind: 'dir', inputs: { model }, force: true }), /is the model input/, model);
    userError(() => checkOutputPath({ out: path.join(model, 'q'), kind: 'dir', inputs: { model }, force: true }), /lies inside the model input/);
    userError(() => checkOutputPath({ out: d, kind: 'dir', inputs: { model }, force: true }), /contains the model input/);
    const calib = path.join(d, 'calib.jsonl');
    fs.writeFileSync(calib, 'x');
    userError(() => checkOutputPath({ out: calib, kind: 'file', inputs: { prompts: calib }, force: true }), /is the prompts input/);
    // Through a symlink too: the real paths are compared.
    const link = path.join(d, 'link');
    fs.symlinkSync(model, link);
    userError(() => checkOutputPath({ out: path.join(link, 'sub', 'q'), kind: 'dir', inputs: { model }, force: true }), /lies inside the model input/);
    expect(fs.readdirSync(model)).toEqual(['config.json']);
  });

  it('refuses the current directory and any folder containing it', () => {
    const d = scratchDir('rundir-');
    const inner = path.join(d, 'work');
    fs.mkdirSync(inner);
    process.chdir(inner);
    userError(() => checkOutputPath({ out: '.', kind: 'dir', inputs: {}, force: true }), /current directory/);
    userError(() => checkOutputPath({ out: d, kind: 'dir', inputs: {}, force: true }), /current directory/);
    expect(() => checkOutputPath({ out: 'q', kind: 'dir', inputs: {}, force: false })).not.toThrow();
  });

  it('--force replaces only a folder carrying our manifest, and a regular file', () => {
    const d = scratchDir('rundir-');
    const user = path.join(d, 'user');
    fs.mkdirSync(user);
    fs.writeFileSync(path.join(user, 'notes.txt'), 'mine');
    userError(() => checkOutputPath({ out: user, kind: 'dir', inputs: {}, force: false }), /exists; pass --force/, user);
    userError(() => checkOutputPath({ out: user, kind: 'dir', inputs: {}, force: true }), /not written by this tool/, user);
    fs.writeFileSync(path.join(user, 'manifest.json'), JSON.stringify({ tool: 'something else' }));
    userError(() => checkOutputPath({ out: user, kind: 'dir', inputs: {}, force: true }), /not written by this tool/);
    // A manifest of an earlier paro quantize (before the common schema) counts as ours.
    fs.writeFileSync(path.join(user, 'manifest.json'), JSON.stringify({ tool: 'paro quantize', toolVersion: '0.1.0', blocks: [] }));
    expect(() => checkOutputPath({ out: user, kind: 'dir', inputs: {}, force: true })).not.toThrow();
    const f = path.join(d, 'data.jsonl');
    fs.writeFileSync(f, 'x');
    userError(() => checkOutputPath({ out: f, kind: 'file', inputs: {}, force: false }), /exists; pass --force/);
    expect(() => checkOutputPath({ out: f, kind: 'file', inputs: {}, force: true })).not.toThrow();
    userError(() => checkOutputPath({ out: user, kind: 'file', inputs: {}, force: true }), /not a regular file/);
  });

  it('an impossible or unwritable parent is one line naming the path', () => {
    const d = scratchDir('rundir-');
    const f = path.join(d, 'file');
    fs.writeFileSync(f, 'x');
    userError(() => checkOutputPath({ out: path.join(f, 'x'), kind: 'dir', inputs: {}, force: false }), /is not a directory/, path.join(f, 'x'));
    userError(() => checkOutputPath({ out: path.join(d, 'no', 'such', 'x'), kind: 'dir', inputs: {}, force: false }), /does not exist/);
    if (process.getuid?.() !== 0) {
      const ro = path.join(d, 'ro');
      fs.mkdirSync(ro, 0o555);
      userError(() => checkOutputPath({ out: path.join(ro, 'x'), kind: 'dir', inputs: {}, force: false }), /permission denied/, path.join(ro, 'x'));
      fs.chmodSync(ro, 0o755);
    }
  });
});

describe('openRunDir', () => {
  it('builds in <out>.partial and commits with a manifest hashing every file', () => {
    const d = scratchDir('rundir-');
    const out = path.join(d, 'q');
    const rd = openRunDir(spec(out));
    expect(rd.resumed).toBe(false);
    expect(rd.partial).toBe(out + '.partial');
    expect(fs.existsSync(out + '.lock')).toBe(true);
    fs.writeFileSync(rd.path('model.safetensors'), 'weights');
    expect(fs.existsSync(out)).toBe(false);
    rd.commit(manifest());
    expect(fs.readdirSync(d).sort()).toEqual(['q']);
    const m = readToolManifest(out)!;
    expect(m.schema).toBe(MANIFEST_SCHEMA);
    expect(m.outputs).toEqual([{ name: 'model.safetensors', sha256: sha256Bytes('weights'), bytes: 7 }]);
  });

  it('kind file: the file is built inside the partial and renamed onto out', () => {
    const d = scratchDir('rundir-');
    const out = path.join(d, 'data.jsonl');
    const rd = openRunDir(spec(out, { kind: 'file', tool: 'dflash', command: 'generate-data' }));
    fs.writeFileSync(rd.file, 'rows\n');
    rd.commit();
    expect(fs.readFileSync(out, 'utf8')).toBe('rows\n');
    expect(fs.readdirSync(d)).toEqual(['data.jsonl']);
  });

  it('--force replaces an output of ours; the old output stays until the commit', () => {
    const d = scratchDir('rundir-');
    const out = path.join(d, 'q');
    finished(out);
    userError(() => openRunDir(spec(out)), /exists; pass --force/, out);
    const rd = openRunDir(spec(out, { force: true }));
    fs.writeFileSync(rd.path('model.safetensors'), 'new');
    expect(fs.readFileSync(path.join(out, 'model.safetensors'), 'utf8')).toBe('old');
    rd.commit(manifest());
    expect(fs.readFileSync(path.join(out, 'model.safetensors'), 'utf8')).toBe('new');
    expect(fs.readdirSync(d)).toEqual(['q']);
  });

  it('an existing partial: refused without --resume, resumed with the same fingerprint, foreign one named, --force discards', () => {
    const d = scratchDir('rundir-');
    const out = path.join(d, 'q');
    const fp = { settings: { seqLen: 128 }, inputs: { model: 'h1' } };
    const a = openRunDir(spec(out, { fingerprint: fp }));
    a.writeProgress({ blocksDone: 1 });
    fs.writeFileSync(a.path('block-0000.safetensors'), 'b0');
    a.release();
    expect(fs.existsSync(out + '.lock')).toBe(false);
    userError(() => openRunDir(spec(out, { fingerprint: fp })), /pass --resume to continue it or --force to discard it/, out + '.partial');
    expect(fs.existsSync(a.path('block-0000.safetensors'))).toBe(true);
    userError(() => openRunDir(spec(out, { resume: true, fingerprint: { settings: { seqLen: 256 }, inputs: { model: 'h1' } } })), /differs: settings\.seqLen/);
    const b = openRunDir(spec(out, { resume: true, fingerprint: { inputs: { model: 'h1' }, settings: { seqLen: 128 } } }));
    expect(b.resumed).toBe(true);
    expect(b.readProgress<{ blocksDone: number }>()).toEqual({ blocksDone: 1 });
    b.release();
    const c = openRunDir(spec(out, { force: true, fingerprint: { other: true } }));
    expect(c.resumed).toBe(false);
    expect(fs.existsSync(c.path('block-0000.safetensors'))).toBe(false);
    c.discard();
    expect(fs.readdirSync(d)).toEqual([]);
  });

  it('a partial folder that is not ours is never deleted, even with --force', () => {
    const d = scratchDir('rundir-');
    const out = path.join(d, 'q');
    fs.mkdirSync(out + '.partial');
    fs.writeFileSync(path.join(out + '.partial', 'thesis.tex'), 'mine');
    userError(() => openRunDir(spec(out, { force: true })), /not a partial output of this tool/);
    expect(fs.readFileSync(path.join(out + '.partial', 'thesis.tex'), 'utf8')).toBe('mine');
  });

  it('a corrupt progress.json is reported at open with --resume, before the fingerprint comparison', () => {
    const d = scratchDir('rundir-');
    const out = path.join(d, 'q');
    const a = openRunDir(spec(out, { fingerprint: { x: 1 } }));
    fs.writeFileSync(a.path('progress.json'), '{"blo');
    a.release();
    userError(() => openRunDir(spec(out, { resume: true, fingerprint: { x: 2 } })), /corrupt/, path.join(out + '.partial', 'progress.json'));
    expect(fs.existsSync(out + '.lock')).toBe(false);
    const b = openRunDir(spec(out, { force: true, fingerprint: { x: 2 } })); // --force starts over
    expect(b.readProgress()).toBeUndefined();
    b.discard();
  });

  it('a corrupt progress.json is one line naming it', () => {
    const d = scratchDir('rundir-');
    const out = path.join(d, 'q');
    const a = openRunDir(spec(out));
    fs.writeFileSync(a.path('progress.json'), '{"blocks');
    userError(() => a.readProgress(), /corrupt/, a.path('progress.json'));
    a.discard();
  });

  it('a lock keeps a second run off the output; a dead process\'s lock is taken over', () => {
    const d = scratchDir('rundir-');
    const out = path.join(d, 'q');
    const a = openRunDir(spec(out));
    // Another live process on this host (our parent) holds it.
    fs.writeFileSync(out + '.lock', JSON.stringify({ pid: process.ppid, host: os.hostname() }));
    userError(() => openRunDir(spec(out, { resume: true })), new RegExp(`another run \\(pid ${process.ppid}`), out + '.lock');
    // A pid that does not run.
    fs.writeFileSync(out + '.lock', JSON.stringify({ pid: 2 ** 22 + 12345, host: os.hostname() }));
    const b = openRunDir(spec(out, { resume: true }));
    expect(b.resumed).toBe(true);
    expect(JSON.parse(fs.readFileSync(out + '.lock', 'utf8')).pid).toBe(process.pid);
    b.discard();
    a.release();
    expect(fs.existsSync(out + '.lock')).toBe(false);
  });

  it('stale temporaries of an interrupted commit or checkpoint are removed at open; other files are kept', () => {
    const d = scratchDir('rundir-');
    const out = path.join(d, 'q');
    const stale = [`.q.tmp-123-abcdef`, `.q.old-99-0a1b`, `q.old-4242`, `.q.checkpoint.tmp-77-ffee`];
    for (const n of stale) fs.mkdirSync(path.join(d, n));
    fs.writeFileSync(path.join(d, 'q.old-notes.txt'), 'keep');
    const a = openRunDir(spec(out));
    fs.mkdirSync(a.path('checkpoint.tmp-5-aa'));
    fs.writeFileSync(a.path('progress.json.tmp'), 'x');
    a.release();
    const b = openRunDir(spec(out, { resume: true }));
    expect(fs.readdirSync(b.partial).sort()).toEqual(['run.json']);
    expect(fs.readdirSync(d).sort()).toEqual(['q.lock', 'q.old-notes.txt', 'q.partial']);
    b.discard();
  });
});
