// Atomic outputs: written under a temporary sibling, renamed into place on commit, removed on abort, and never
// replacing an existing output without force.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { UserError } from '../src/errors.js';
import { prepareOutput } from '../src/io/atomic-output.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'atomic-output-test-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

let count = 0;
function freshParent(): string {
  const d = path.join(tmp, `p${count++}`);
  fs.mkdirSync(d);
  return d;
}

describe('prepareOutput', () => {
  it('file: temp sibling, invisible until commit, then in place with no leftovers', () => {
    const parent = freshParent();
    const final = path.join(parent, 'model.safetensors');
    const out = prepareOutput(final, { force: false, kind: 'file' });
    expect(path.dirname(out.tmpPath)).toBe(parent);
    expect(out.tmpPath).not.toBe(final);
    fs.writeFileSync(out.tmpPath, 'payload');
    expect(fs.existsSync(final)).toBe(false);
    out.commit();
    expect(fs.readFileSync(final, 'utf8')).toBe('payload');
    expect(fs.readdirSync(parent)).toEqual(['model.safetensors']);
    out.abort(); // no-op after commit
    expect(fs.existsSync(final)).toBe(true);
    expect(() => out.commit()).toThrow(/already committed/);
  });

  it('dir: the temp directory exists from the start and becomes the output', () => {
    const parent = freshParent();
    const final = path.join(parent, 'out-model');
    const out = prepareOutput(final, { force: false, kind: 'dir' });
    expect(fs.statSync(out.tmpPath).isDirectory()).toBe(true);
    fs.writeFileSync(path.join(out.tmpPath, 'config.json'), '{"a":1}');
    fs.mkdirSync(path.join(out.tmpPath, 'sub'));
    fs.writeFileSync(path.join(out.tmpPath, 'sub', 'x'), 'y');
    out.commit();
    expect(fs.readFileSync(path.join(final, 'config.json'), 'utf8')).toBe('{"a":1}');
    expect(fs.readFileSync(path.join(final, 'sub', 'x'), 'utf8')).toBe('y');
    expect(fs.readdirSync(parent)).toEqual(['out-model']);
  });

  it('abort removes the temp output and leaves nothing behind', () => {
    const parent = freshParent();
    const final = path.join(parent, 'out');
    const out = prepareOutput(final, { force: false, kind: 'dir' });
    fs.writeFileSync(path.join(out.tmpPath, 'partial.bin'), new Uint8Array(1000));
    out.abort();
    out.abort();
    expect(fs.readdirSync(parent)).toEqual([]);
    expect(() => out.commit()).toThrow(/already aborted/);
  });

  it('two outputs prepared for the same path get different temp names', () => {
    const parent = freshParent();
    const a = prepareOutput(path.join(parent, 'x'), { force: false, kind: 'dir' });
    const b = prepareOutput(path.join(parent, 'x'), { force: false, kind: 'dir' });
    expect(a.tmpPath).not.toBe(b.tmpPath);
    a.abort();
    b.abort();
  });

  it('an existing output without force is a UserError before any temp is created', () => {
    for (const kind of ['dir', 'file'] as const) {
      const parent = freshParent();
      const final = path.join(parent, 'existing');
      if (kind === 'dir') fs.mkdirSync(final);
      else fs.writeFileSync(final, 'old');
      let err: unknown;
      try {
        prepareOutput(final, { force: false, kind });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(UserError);
      expect((err as UserError).message).toBe('exists; pass --force to overwrite');
      expect((err as UserError).file).toBe(final);
      expect(fs.readdirSync(parent)).toEqual(['existing']);
    }
  });

  it('with force, the old output is replaced only at commit, and its leftovers removed', () => {
    const parent = freshParent();
    const final = path.join(parent, 'model');
    fs.mkdirSync(final);
    fs.writeFileSync(path.join(final, 'old.txt'), 'old');
    const out = prepareOutput(final, { force: true, kind: 'dir' });
    fs.writeFileSync(path.join(out.tmpPath, 'new.txt'), 'new');
    expect(fs.readFileSync(path.join(final, 'old.txt'), 'utf8')).toBe('old'); // untouched until commit
    out.commit();
    expect(fs.readdirSync(final)).toEqual(['new.txt']);
    expect(fs.readdirSync(parent)).toEqual(['model']);
  });

  it('with force and an aborted run, the old output survives', () => {
    const parent = freshParent();
    const final = path.join(parent, 'f.safetensors');
    fs.writeFileSync(final, 'old');
    const out = prepareOutput(final, { force: true, kind: 'file' });
    fs.writeFileSync(out.tmpPath, 'half-written');
    out.abort();
    expect(fs.readFileSync(final, 'utf8')).toBe('old');
    expect(fs.readdirSync(parent)).toEqual(['f.safetensors']);
  });

  it('an output that appears during the run is not replaced at commit without force', () => {
    const parent = freshParent();
    const final = path.join(parent, 'race');
    const out = prepareOutput(final, { force: false, kind: 'file' });
    fs.writeFileSync(out.tmpPath, 'mine');
    fs.writeFileSync(final, 'someone else');
    expect(() => out.commit()).toThrow(/exists; pass --force/);
    expect(fs.readFileSync(final, 'utf8')).toBe('someone else');
    out.abort();
    expect(fs.readdirSync(parent)).toEqual(['race']);
  });

  it('creates missing parent directories', () => {
    const final = path.join(freshParent(), 'a', 'b', 'out.json');
    const out = prepareOutput(final, { force: false, kind: 'file' });
    fs.writeFileSync(out.tmpPath, '{}');
    out.commit();
    expect(fs.readFileSync(final, 'utf8')).toBe('{}');
  });
});
