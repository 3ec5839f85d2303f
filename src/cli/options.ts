// Parsers of numeric command-line values for commander: each rejects a bad value with a message naming the option.
import { InvalidArgumentError } from 'commander';

type Check = (n: number) => boolean;

function numeric(name: string, ok: Check, what: string) {
  return (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !ok(n)) throw new InvalidArgumentError(`${name} must be ${what}, got "${v}"`);
    return n;
  };
}

export const positiveInt = (name: string) => numeric(name, (n) => Number.isInteger(n) && n > 0, 'a positive integer');
export const nonNegativeInt = (name: string) => numeric(name, (n) => Number.isInteger(n) && n >= 0, 'a non-negative integer');
export const positiveNumber = (name: string) => numeric(name, (n) => Number.isFinite(n) && n > 0, 'a positive number');
export const nonNegativeNumber = (name: string) => numeric(name, (n) => Number.isFinite(n) && n >= 0, 'a non-negative number');

/** A positive integer or the word auto. */
export function intOrAuto(name: string) {
  return (v: string): number | 'auto' => (v === 'auto' ? 'auto' : positiveInt(name)(v));
}

/** A positive number or the word auto. */
export function numberOrAuto(name: string) {
  return (v: string): number | 'auto' => (v === 'auto' ? 'auto' : positiveNumber(name)(v));
}
