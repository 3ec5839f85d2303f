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

/** A comma-separated list of distinct GPU indices (--gpus 0,1,2,3). */
export function gpuList(name: string) {
  return (v: string): number[] => {
    const parts = v.split(',').map((s) => s.trim());
    const ids = parts.map(Number);
    if (v.trim() === '' || parts.some((s) => !/^\d+$/.test(s)) || ids.some((n) => !Number.isSafeInteger(n))) {
      throw new InvalidArgumentError(`${name} must be a comma-separated list of GPU indices such as 0,1,2,3, got "${v}"`);
    }
    if (new Set(ids).size !== ids.length) throw new InvalidArgumentError(`${name} lists a GPU twice: "${v}"`);
    return ids;
  };
}
