// Numeric option parsers: bad values fail with a message naming the option; good ones parse.
import { InvalidArgumentError } from 'commander';
import { describe, expect, it } from 'vitest';
import { intOrAuto, nonNegativeInt, nonNegativeNumber, numberOrAuto, positiveInt, positiveNumber } from '../src/cli/options.js';
import { oneOf, parseEpochs } from '../src/cli/quantize.js';

describe('cli option parsers', () => {
  it('accept what they promise and reject the rest, naming the option', () => {
    expect(positiveInt('--samples')('128')).toBe(128);
    for (const bad of ['0', '-3', '1.5', '', ' ', 'abc', '1e999']) {
      expect(() => positiveInt('--samples')(bad)).toThrow(InvalidArgumentError);
      expect(() => positiveInt('--samples')(bad)).toThrow(/--samples must be a positive integer/);
    }
    expect(nonNegativeInt('--seed')('0')).toBe(0);
    expect(() => nonNegativeInt('--seed')('-1')).toThrow(/--seed/);
    expect(positiveNumber('--lr')('6e-4')).toBeCloseTo(6e-4, 15);
    expect(() => positiveNumber('--lr')('0')).toThrow(/--lr must be a positive number/);
    expect(() => positiveNumber('--lr')('NaN')).toThrow(/--lr/);
    expect(nonNegativeNumber('--weight-decay')('0')).toBe(0);
    expect(() => nonNegativeNumber('--weight-decay')('-0.1')).toThrow(/--weight-decay/);
    expect(intOrAuto('--layers')('auto')).toBe('auto');
    expect(intOrAuto('--layers')('3')).toBe(3);
    expect(() => intOrAuto('--layers')('two')).toThrow(/--layers/);
    expect(numberOrAuto('--gamma')('auto')).toBe('auto');
    expect(numberOrAuto('--gamma')('4.5')).toBe(4.5);
  });
  it('--epochs a,b and value lists', () => {
    expect(parseEpochs('10,0')).toEqual([10, 0]);
    for (const bad of ['1', '1,x', '1,1,1', '-1,2', '']) expect(() => parseEpochs(bad)).toThrow(InvalidArgumentError);
    const method = oneOf('--method', ['paro', 'rtn'] as const);
    expect(method('rtn')).toBe('rtn');
    expect(() => method('gptq')).toThrow(/--method must be paro or rtn, got "gptq"/);
  });
});
