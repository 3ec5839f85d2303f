// The synchronising profiler (src/engine/profile.ts) names each row by op, operand dtypes and, for a GEMM, its
// transposes and size class: one cpu backend run checks the rows against the calls made.
import { describe, expect, it } from 'vitest';
import { createBackend } from '../src/engine/select.js';
import { ProfiledBackend, opKey } from '../src/engine/profile.js';
import type { Tensor } from '../src/engine/backend.js';

describe('ProfiledBackend row names', () => {
  it('splits matmul by dtype, transposes and size, and other ops by dtype', async () => {
    const be = await createBackend({ kind: 'cpu' });
    const prof = new ProfiledBackend(be);
    const p = prof.backend;
    const a = p.fromHost(new Float32Array(64 * 32).fill(0.5), [64, 32]);
    const b = p.fromHost(new Float32Array(16 * 32).fill(0.25), [16, 32]);
    const c = p.matmul(a, b, { transB: true });
    const d = p.matmul(a, b, { transB: true });
    const e = p.add(c, d);
    expect(be.toHost(e)[0]).toBeCloseTo(2 * 32 * 0.125, 5);
    const rows = new Map(prof.table().map(([n, calls]) => [n, calls]));
    expect(rows.get('matmul(f32,f32) NT <1 GFLOP')).toBe(2);
    expect(rows.get('add(f32,f32)')).toBe(1);
    expect(rows.get('fromHost')).toBe(2);
    const shares = prof.table().reduce((s, r) => s + r[3], 0);
    expect(shares).toBeCloseTo(1, 9);
    be.free(a, b, c, d, e);
  });

  it('puts a large GEMM in its power-of-two GFLOP class with the output dtype', () => {
    const t = (shape: number[], dtype: 'bf16' | 'f32'): Tensor => ({ shape, dtype }) as unknown as Tensor;
    // 2·4096·4096·8192 = 275 GFLOP → class 256
    expect(opKey('matmul', [t([8192, 4096], 'bf16'), t([4096, 4096], 'bf16'), { transB: true, outDtype: 'f32' }]))
      .toBe('matmul(bf16,bf16→f32) NT ~256 GFLOP');
    expect(opKey('matmul', [t([4096, 8192], 'bf16'), t([4096, 4096], 'bf16'), { transA: true }]))
      .toBe('matmul(bf16,bf16) TN ~256 GFLOP');
    expect(opKey('synchronize', [])).toBe('synchronize');
  });
});
