// scripts/backend-ops.ts's withEnvs/withEnv: the GPU benches and checks switch the addon's kernel versions and A/B
// forms through environment variables read at each call, and every pass must leave the environment as it found it —
// set, unset, and when the timed function throws.
import { describe, expect, it } from 'vitest';
import { withEnv, withEnvs } from '../scripts/backend-ops.js';

describe('withEnvs', () => {
  const A = 'PARO_TEST_WITH_ENVS_A', B = 'PARO_TEST_WITH_ENVS_B';

  it('sets every variable for the call and restores set and unset ones after it', () => {
    process.env[A] = 'before';
    delete process.env[B];
    const seen = withEnvs({ [A]: 'x', [B]: 'y' }, () => [process.env[A], process.env[B]]);
    expect(seen).toEqual(['x', 'y']);
    expect(process.env[A]).toBe('before');
    expect(B in process.env).toBe(false);
    delete process.env[A];
  });

  it('restores the environment when the function throws, and nests', () => {
    delete process.env[A];
    expect(() => withEnv(A, 'outer', () => withEnv(A, 'inner', () => {
      expect(process.env[A]).toBe('inner');
      throw new Error('boom');
    }))).toThrow('boom');
    expect(A in process.env).toBe(false);
  });
});
