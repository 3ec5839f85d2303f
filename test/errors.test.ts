// UserError.oneLine(): what the CLI prints is always one line, whatever the message or file name holds.
import { describe, expect, it } from 'vitest';
import { UserError } from '../src/errors.js';

describe('UserError.oneLine', () => {
  it('joins the file and the message', () => {
    expect(new UserError('is broken', { file: '/m/config.json' }).oneLine()).toBe('/m/config.json: is broken');
    expect(new UserError('no file').oneLine()).toBe('no file');
  });

  it('turns line breaks in the message and in the file name into spaces', () => {
    const e = new UserError('first line\n  second\r\nthird\u2028fourth\n', { file: 'evil\nname.jsonl' });
    expect(e.oneLine()).toBe('evil name.jsonl: first line second third fourth');
    expect(e.oneLine()).not.toMatch(/[\r\n\u2028\u2029]/);
  });
});
