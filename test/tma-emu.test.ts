// The host emulation of Hopper's TMA and mbarriers (test/cuda-emu/tma.cuh, standing in for native/src/tma.cuh in
// test/attention-emu.test.ts) checked on its own by test/cuda-emu/tma-main.cc: boxes of a random tensor with padded
// strides land in the 128-byte swizzle layout (bf16) or densely (f32) with zeros outside the tensor, counted against
// an mbarrier over two phases, with copies done at issue and done late (then a read before the phase completes sees
// the 0xff fill); named barriers pass turns between thread groups; a wait that can never return (an mbarrier wait, a
// bar.sync or __syncthreads: test/cuda-emu/common.cuh's scheduler reports the deadlock), a destination off the swizzle
// atoms or the 128-byte alignment, a block that leaves its copies unwaited or a named-barrier arrival unconsumed throw.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { buildEmulation, hasGpp } from './cuda-emu-build.js';

function run(mode: string, late: boolean): string {
  const bin = buildEmulation({ name: 'tma-emu', generated: {}, sources: ['tma-main.cc'] });
  const r = spawnSync(bin, [mode], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, EMU_LATE_COPIES: late ? '1' : '0' } });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout.trim();
}

describe.skipIf(!hasGpp)('tma.cuh emulation: TMA box copies and mbarriers (needs g++)', () => {
  for (const late of [false, true]) {
    const how = late ? 'copies late' : 'copies at issue';
    it(`two phases of boxes read back through the swizzle, ${how}`, () => {
      // A box read right after its issue, before the phase's arrivals: landed at issue, or still the fill when late.
      expect(run('data', late)).toBe(`ok seen=${late ? 'fill' : 'data'}`);
    }, 120_000);
    it(`named barriers: two thread groups take turns; an arrival a block leaves unconsumed throws, ${how}`, () => {
      expect(run('named', late)).toBe('ok caught=0');
      expect(run('leftover', late)).toMatch(/^caught=128 msg=emu: named barrier 1: block 0 ended with 64 of 128 arrivals unconsumed$/);
    }, 120_000);
    it(`a wait for a phase that never completes throws in every thread (the scheduler's deadlock report), ${how}`, () => {
      expect(run('timeout', late)).toMatch(/^caught=128 msg=emu: mbarrier .*wait for parity 0 deadlocked \(every live thread of the block waits/);
    }, 120_000);
    it(`a bar.sync or __syncthreads that threads which returned never reach: the deadlock report, ${how}`, () => {
      expect(run('stuck', late)).toMatch(
        /^caught=64 msg=emu: named barrier 3 \(block 0, 64 of 128 arrived\): bar\.sync deadlocked .* threw=emu: __syncthreads deadlocked in block \(0,0,0\), thread \d+: 63 of 64 threads arrived/);
    }, 120_000);
    it(`destinations off the swizzle atoms or the 128-byte alignment and copies a block never waited for throw, ${how}`, () => {
      expect(run('misaligned', late)).toMatch(
        /^caught=2 msg=emu: tmaLoad4 destination at shared offset 512 not 1024-byte aligned \(128-byte swizzle\) \| emu: tmaLoad4 destination at shared offset 64 not 128-byte aligned$/);
      expect(run('unwaited', late)).toMatch(/^caught=1 msg=emu: mbarrier .* re-initialised: the previous block (left|never waited)/);
    }, 120_000);
  }
});
