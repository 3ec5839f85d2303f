// native/src/k_attention.cu's tensor-core attention kernels (versions 1 to 4 and 4p: PARO_ATTN_KERNEL) compiled with
// g++ against a host emulation (test/cuda-emu/common.cuh + attention-emu.cuh: a fiber per CUDA thread, ldmatrix,
// mma.sync m16n8k16, cp.async and warp votes emulated; wgmma.cuh: the warpgroup MMA of versions 3 and 4, head dim 128;
// tma.cuh: version 4's TMA box copies, mbarriers and named barriers, test/tma-emu.test.ts) and compared with a
// double-precision reference in test/cuda-emu/attention-main.cc: forward out and lse, backward dq, dk, dv, for every
// mask kind, GQA, head dims 64 and 128, partial query/key tiles, spare cache rows (kvStride > tk, holding NaN) and fully
// masked rows. This checks the fragment layouts, tiling, masking and pipeline order of the kernels (cp.async copies are
// done once at issue and once only at the wait that must complete them; TMA copies at issue or as late as their
// mbarrier allows), not the device's arithmetic, timing or limits.
import { spawnSync } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildEmulation, emulatedLaunches, hasGpp, kernelSource } from './cuda-emu-build.js';


/** The inline-PTX helpers of k_attention.cu, supplied by attention-emu.cuh instead. */
const PTX_HELPERS = ['smemAddr', 'ldsm4', 'ldsm4t', 'mma', 'opaque', 'ldsm4a', 'ldsm4ta', 'cpAsync16', 'cpAsyncCommit', 'cpAsyncWait',
  'ex2Ftz'];

/** k_attention.cu with its inline-PTX helpers removed, dynamic shared memory on g_smem and launches emulated. */
function emulationSource(): string {
  const lines = kernelSource('k_attention.cu').split('\n');
  const out: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const m = /^__device__ __forceinline__ \w+ (\w+)\(/.exec(lines[i]);
    if (m && PTX_HELPERS.includes(m[1])) {
      if (out.length && out[out.length - 1].startsWith('template <int N>')) out.pop();
      if (!lines[i].trimEnd().endsWith('}')) while (lines[i] !== '}') i++;
      continue;
    }
    out.push(lines[i]);
  }
  const src = out.join('\n')
    .replace('cudaFuncSetAttribute(kernel,', 'cudaFuncSetAttribute((const void*)kernel,')
    .replace(/extern __shared__ __align__\(16\) unsigned char smRaw\[\];/g, 'unsigned char* smRaw = reinterpret_cast<unsigned char*>(g_smem);');
  const launched = emulatedLaunches(src, 'k_attention.cu', 'emuLaunch3');
  expect(launched).not.toMatch(/\basm\b/);
  return launched;
}

function buildAttentionEmulation(): string {
  return buildEmulation({
    name: 'paro-attn-emu', generated: { 'k_attention_emu.cc': emulationSource() },
    sources: ['k_attention_emu.cc', 'attention-main.cc'], includes: ['common.cuh', 'attention-emu.cuh'], asCxx: true,
  });
}

interface EmuCase {
  label: string;
  D: 64 | 128;
  batch: number;
  tq: number;
  tk: number;
  kvStride: number;
  heads: number;
  kvHeads: number;
  /** 0 causal, 1 full, 2 DFlash block mask (MaskKind of native/src/ops.h). */
  mask: 0 | 1 | 2;
  qOffset?: number;
  dflash?: { ctxLen: number; blockSize: number; nBlocks: number };
  /** Output dtype of the forward (DType code: 0 f32, 1 bf16). */
  odt: 0 | 1;
  lateCopies?: boolean;
  /** SMs the launchers see (default 132): 1 makes dK/dV run per KV head instead of per query head (dkvSplit). */
  smCount?: number;
  /**
   * PARO_ATTN_KERNEL versions to run, a character each: 1 to 6 for v1 to v6, p for v4p (default 1234p). Each case
   * runs the versions whose code it reaches (head dim 64 has no version 3 or 4: they fall back to version 2; the
   * DFlash mask's v1/v2 paths are covered at head dim 64); the emulation costs about a minute per d128 version.
   */
  versions?: string;
  /** Extra environment of the run (k_attention.cu's switches: PARO_ATTN_SERIAL, PARO_ATTN_BWD_WAVES). */
  env?: Record<string, string>;
}

const CASES: EmuCase[] = [
  { label: 'd128 causal qOffset, GQA, tq 129 (2nd query tile: one valid row), kvStride > tk', D: 128, batch: 1, tq: 129, tk: 229, kvStride: 260, heads: 2, kvHeads: 1, mask: 0, qOffset: 100, odt: 1, versions: '123p5' },
  { label: 'd128 decode tq 1, qOffset, f32 out, copies at the wait', D: 128, batch: 1, tq: 1, tk: 77, kvStride: 96, heads: 4, kvHeads: 1, mask: 0, qOffset: 76, odt: 0, lateCopies: true, versions: '123p' },
  { label: 'd128 full tq 100 tk 203', D: 128, batch: 1, tq: 100, tk: 203, kvStride: 203, heads: 2, kvHeads: 1, mask: 1, odt: 1, versions: '123p' },
  { label: 'd64 DFlash blocks (dropped blocks: fully masked rows), copies at the wait, dK/dV per KV head', D: 64, batch: 2, tq: 160, tk: 250, kvStride: 250, heads: 4, kvHeads: 2, mask: 2, dflash: { ctxLen: 90, blockSize: 32, nBlocks: 5 }, odt: 1, lateCopies: true, smCount: 1, versions: '12' },
  // 8 CTAs of 128 keys for 1 SM: the DFlash mask through version 3's dK/dV kernel too.
  { label: 'd128 DFlash blocks of 16, f32 out, GQA, dK/dV by version 3', D: 128, batch: 2, tq: 128, tk: 256, kvStride: 256, heads: 4, kvHeads: 2, mask: 2, dflash: { ctxLen: 128, blockSize: 16, nBlocks: 8 }, odt: 0, smCount: 1, versions: '34p56' },
  { label: 'd64 causal tq 300 (three 128-row tiles, the last partial), no GQA', D: 64, batch: 1, tq: 300, tk: 300, kvStride: 300, heads: 2, kvHeads: 2, mask: 0, odt: 1, versions: '12' },
  // 6 CTAs of 128 keys for 1 SM: version 3's dK/dV kernel runs (wgmmaBackward asks for 4 waves), copies at the wait.
  { label: 'd128 causal tq 300 GQA, dK/dV by version 3 (wgmma)', D: 128, batch: 1, tq: 300, tk: 300, kvStride: 300, heads: 4, kvHeads: 2, mask: 0, odt: 1, lateCopies: true, smCount: 1, versions: '2356' },
  // 5 key tiles for version 4's 3 TMA stages, up to 6 items for its dK/dV kernel's 2 (5 CTAs for 1 SM: it runs):
  // buffers refilled on the warps' releases, mbarrier phases of parity 1.
  // Causal with qOffset 0 and tk > tq: no query sees the last two key tiles, whose dK/dV CTAs have no items but loaded
  // K and V (they must wait for those copies before leaving); 3 CTAs for 1 SM.
  { label: 'd128 causal tq 128 tk 384: dK/dV CTAs whose keys no query sees', D: 128, batch: 1, tq: 128, tk: 384, kvStride: 384, heads: 2, kvHeads: 2, mask: 0, odt: 1, smCount: 1, versions: '34' },
  { label: 'd128 causal qOffset tk 515: version 4 refills its TMA stages', D: 128, batch: 1, tq: 130, tk: 515, kvStride: 520, heads: 2, kvHeads: 1, mask: 0, qOffset: 385, odt: 1, smCount: 1, versions: '4p56' },
  // Version 5 (persistent forward and dQ): on 1 SM one CTA streams every item's tiles, the stages (the forward's 3,
  // the dQ kernel's 4) reaching across items of 3, 2, 1 and 0 key tiles (rows before the offset see no key: an item with none still loads and releases its
  // Q); on 7, 12 items in a full round and a partial one taken backwards (snake order).
  { label: 'd128 causal qOffset −200, batch 2: query tiles with no visible key, version 5', D: 128, batch: 2, tq: 300, tk: 300, kvStride: 300, heads: 2, kvHeads: 1, mask: 0, qOffset: -200, odt: 1, smCount: 1, versions: '56' },
  { label: 'd128 causal qOffset −200, batch 2, version 5 on 7 SMs (snake order)', D: 128, batch: 2, tq: 300, tk: 300, kvStride: 300, heads: 2, kvHeads: 1, mask: 0, qOffset: -200, odt: 1, smCount: 7, versions: '5', env: { PARO_ATTN_BWD_WAVES: '0' } },
  // 2 key tiles × 1 KV head for 1 SM: short of 4 waves per KV head (version 4 takes version 2's backward), 8 per query
  // head: version 5's dK/dV kernel per query head with partial sums and the reduction over the group of 4.
  { label: 'd128 causal GQA 4:1 on a short grid: version 5 dK/dV per query head', D: 128, batch: 1, tq: 200, tk: 256, kvStride: 256, heads: 4, kvHeads: 1, mask: 0, qOffset: 56, odt: 1, smCount: 1, versions: '45' },
  // The serial A/B variants of the backward (PARO_ATTN_SERIAL), and versions 3/4's backward on a grid of under 4 waves.
  { label: 'd128 causal qOffset tk 515, serial dQ and dK/dV steps', D: 128, batch: 1, tq: 130, tk: 515, kvStride: 520, heads: 2, kvHeads: 1, mask: 0, qOffset: 385, odt: 1, smCount: 1, versions: '345', env: { PARO_ATTN_SERIAL: 'dq,dkv' } },
  { label: 'd128 DFlash blocks, versions 3/4 backward on a short grid (PARO_ATTN_BWD_WAVES=0)', D: 128, batch: 1, tq: 96, tk: 224, kvStride: 224, heads: 4, kvHeads: 2, mask: 2, dflash: { ctxLen: 128, blockSize: 16, nBlocks: 6 }, odt: 1, versions: '34', env: { PARO_ATTN_BWD_WAVES: '0' } },
];

describe.skipIf(!hasGpp)('k_attention.cu tensor-core kernels under a host emulation vs a double reference (needs g++)', () => {
  // The g++ build of the whole kernel file takes a while on a loaded machine: once, before the cases.
  beforeAll(() => {
    buildAttentionEmulation();
  }, 600_000);
  for (const [n, c] of CASES.entries()) {
    it(c.label, () => {
      const bin = buildAttentionEmulation();
      const f = c.dflash ?? { ctxLen: 0, blockSize: 1, nBlocks: 0 };
      const args = [c.D, c.batch, c.tq, c.tk, c.kvStride, c.heads, c.kvHeads, c.mask, c.qOffset ?? 0, f.ctxLen, f.blockSize,
        f.nBlocks, c.odt, 100 + n, c.versions ?? '1234p'].map(String);
      const r = spawnSync(bin, args, { encoding: 'utf8', env: { ...process.env, ...c.env, EMU_LATE_COPIES: c.lateCopies ? '1' : '0', EMU_SM_COUNT: String(c.smCount ?? 132) } });
      expect(r.status, r.stderr).toBe(0);
      const lines = r.stdout.trim().split('\n');
      // Per version (PARO_ATTN_KERNEL v1 to v6): out, lse, dq, dk, dv; v4p (version 4's backward): out, lse.
      const versions = [...(c.versions ?? '1234p')];
      expect(lines.length).toBe(versions.reduce((n, v) => n + (v === 'p' ? 2 : 5), 0));
      for (const line of lines) {
        const m = /^(v[1-6]|v4p) (\w+) relFro=(\S+) maxAbs=(\S+) pattern=(\w+)$/.exec(line);
        expect(m, line).not.toBeNull();
        // bf16 inputs and P rounded to bf16 for the second product: ~2e-3 here; a layout or mask error gives O(1).
        expect(Number(m![3]), line).toBeLessThan(1e-2);
        expect(m![5], line).toBe('ok');
      }
    }, 600_000);
  }
});
