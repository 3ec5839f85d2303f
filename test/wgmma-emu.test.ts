// test/cuda-emu/wgmma.cuh's shared-memory operand forms on their own (test/cuda-emu/wgmma-main.cc): the warpgroup
// product with A and B each K-major or MN-major in 128-byte swizzle atoms, written by the layout formulas that
// native/tools/wgmma-probe.cu checks on a device, against a double product. The kernels' emulation tests
// (attention-emu) rely on these reads; an MN-major A (wgmmaSS<1, …>) has no kernel using it yet.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { buildEmulation, hasGpp } from './cuda-emu-build.js';

describe.skipIf(!hasGpp)('wgmma.cuh emulation: K-major and MN-major shared-memory operands (needs g++)', () => {
  it('every combination of A and B layouts gives the double product', () => {
    const bin = buildEmulation({ name: 'wgmma-emu', generated: {}, sources: ['wgmma-main.cc'] });
    const r = spawnSync(bin, [], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines.map((l) => l.split(' ')[0])).toEqual(['00', '01', '10', '11']);
    for (const l of lines) expect(l).toMatch(/ ok$/);
  }, 120_000);
});
