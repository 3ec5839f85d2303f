// The backend-ops case table of scripts/gpu-check.ts (scripts/backend-ops.ts) under vitest: its cpu self-test (a
// second cpu backend checked against the cpu reference, small shapes) passes, and every method of the Backend
// interface, read from src/engine/backend.ts, has a case that touches it on the backend under test.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { CpuBackend } from '../src/engine/cpu/backend.js';
import { runChecks, type CheckResult } from '../scripts/backend-ops.js';

/**
 * Method names of `interface Backend` in src/engine/backend.ts, optional ones included: member lines `  name(` or
 * `  name?(` at the interface's indentation (properties such as `readonly name` do not match).
 */
function backendInterfaceMethods(): string[] {
  const text = readFileSync(path.join(import.meta.dirname, '../src/engine/backend.ts'), 'utf8');
  const start = text.indexOf('export interface Backend {');
  const end = text.indexOf('\n}\n', start);
  expect(start).toBeGreaterThanOrEqual(0);
  const body = text.slice(start, end);
  return [...body.matchAll(/^ {2}([A-Za-z]\w*)\??\(/gm)].map((m) => m[1]);
}

let result: CheckResult;

beforeAll(async () => {
  const ref = await CpuBackend.create();
  const test = await CpuBackend.create();
  result = runChecks({ test, ref, small: true, noTime: true, seed: 20260101, log: () => {} });
});

describe('backend-ops case table (gpu-check)', () => {
  it('reads the Backend interface: the methods the cpu backend implements are among them', () => {
    const methods = backendInterfaceMethods();
    const implemented = Object.getOwnPropertyNames(CpuBackend.prototype).filter((n) => n !== 'constructor');
    expect(methods.length).toBeGreaterThan(30);
    expect(implemented.filter((n) => !methods.includes(n))).toEqual([]);
  });

  it('has a case for every Backend method', () => {
    const missing = backendInterfaceMethods().filter((m) => !result.touched.has(m));
    expect(missing).toEqual([]);
  });

  it('passes its cpu self-test (cpu backend under test against the cpu reference)', () => {
    const failed = result.rows.filter((r) => !r.ok).map((r) => `${r.group} ${r.op} ${r.shape} ${r.dtype} relFro=${r.relFro} ${r.note ?? ''}`);
    expect(failed).toEqual([]);
    expect(result.rows.length).toBeGreaterThan(100);
  });
});
