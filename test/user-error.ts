// Shared test helper: run fn and return the UserError it throws (the test fails on no error or another kind).
import { expect } from 'vitest';
import { UserError } from '../src/errors.js';

export function userError(fn: () => unknown): UserError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(UserError);
    return e as UserError;
  }
  throw new Error('expected a UserError, nothing was thrown');
}
