// Activation stores (paroquant/activation-store) on the cpu backend: a disk-backed store returns exactly what a
// host store returns (f32 and bf16, rows written in any order, in place), its file is removed on free; and the
// placement plan (GPU, then host memory, then disk) for the real-size shapes of docs/scale.md.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Backend } from '../src/engine/backend.js';
import { CpuBackend } from '../src/engine/cpu/backend.js';
import type { ModelConfig } from '../src/io/config.js';
import { createScratchFile } from '../src/io/positional-file.js';
import { createStore, planActivations, storeBytes } from '../src/paroquant/activation-store.js';
import { blockWorkingBytes } from '../src/paroquant/quantize-steps.js';
import { scratchDir } from './scratch.js';

describe('disk activation store', () => {
  let be: Backend;
  beforeAll(async () => {
    be = await CpuBackend.create();
  });

  for (const dtype of ['f32', 'bf16'] as const) {
    it(`round-trips rows like a host store (${dtype})`, () => {
      const rows = 37;
      const cols = 24;
      const file = path.join(scratchDir('disk-store-'), 'a.bin');
      const disk = createStore(be, rows, cols, dtype, 'disk', createScratchFile(file, storeBytes(rows, cols, dtype)));
      const host = createStore(be, rows, cols, dtype, 'host');
      // Batches written out of order, then one batch overwritten in place (read, transformed, written back).
      for (const r0 of [20, 0, 10, 30]) {
        const n = Math.min(10, rows - r0);
        const v = Float32Array.from({ length: n * cols }, (_, i) => Math.cos(r0 * 7.1 + i * 0.013) * 3);
        const t = be.fromHost(v, [n, cols]);
        const td = be.cast(t, dtype);
        disk.write(r0, td);
        host.write(r0, td);
        be.free(t, td);
      }
      for (const st of [disk, host]) {
        const x = st.read(10, 10);
        const y = be.scale(x, 2);
        st.write(10, y);
        be.free(x, y);
      }
      for (const [r0, n] of [[0, rows], [5, 9], [36, 1]]) {
        const a = disk.read(r0, n);
        const b = host.read(r0, n);
        expect(a.shape).toEqual([n, cols]);
        expect(a.dtype).toBe(dtype);
        expect(be.toHost(a)).toEqual(be.toHost(b));
        be.free(a, b);
      }
      expect(existsSync(file)).toBe(true);
      disk.free();
      host.free();
      expect(existsSync(file)).toBe(false);
    });
  }
});

describe('scratch file prefetch', () => {
  it('a prefetched range reads the bytes written before it; a write over it after the prefetch wins', () => {
    const file = path.join(scratchDir('prefetch-'), 'p.bin');
    const f = createScratchFile(file, 4096);
    const block = (v: number) => new Uint8Array(1024).fill(v);
    for (let i = 0; i < 4; i++) f.writeAt(block(i + 1), i * 1024);
    f.prefetch(1024, 1024);
    expect(f.read(1024, 1024)).toEqual(block(2));
    f.prefetch(2048, 1024);
    f.writeAt(block(9), 2048); // overlaps the prefetch: it must not return the old bytes
    expect(f.read(2048, 1024)).toEqual(block(9));
    f.prefetch(3072, 1024);
    expect(f.read(0, 1024)).toEqual(block(1)); // another range: read directly
    expect(f.read(3072, 1024)).toEqual(block(4));
    expect(f.stats()).toEqual({ prefetched: 1, reads: 4 }); // 1024 came from the worker; 2048 (rewritten), 0 and 3072 (superseded) not
    f.prefetch(0, 2048);
    f.close(); // waits for the read in flight before closing the file
    expect(existsSync(file)).toBe(false);
  });
});

// Shapes of docs/scale.md; only what blockWorkingBytes reads.
const shape = (hiddenSize: number, intermediateSize: number, numKvHeads: number, headDim: number, numHeads: number) =>
  ({ hiddenSize, intermediateSize, numKvHeads, headDim, numHeads } as ModelConfig);
const QWEN3_8B = shape(4096, 12288, 8, 128, 32);
const LLAMA_70B = shape(8192, 28672, 8, 128, 64);
const GB = 1e9;

describe('planActivations', () => {
  // Paper settings: 2048 + 64 windows × 2048 tokens, bf16, batch 16; one 80 GB GPU (≈ 79 GB free), 96 GB for host stores.
  const store = (cfg: ModelConfig) => storeBytes(2112 * 2048, cfg.hiddenSize, 'bf16');
  const lim = { freeDeviceBytes: 79 * GB, maxHostBytes: 96 * GB, freeDiskBytes: 500 * GB };

  it('working-set estimate within the measured figures (70B stage 1 ≈ 28 GB, 8B ≈ 12.4 GB) and a fifth above', () => {
    const w70s1 = blockWorkingBytes(LLAMA_70B, 16, 2048, 'bf16', false);
    expect(w70s1).toBeGreaterThan(28 * GB);
    expect(w70s1).toBeLessThan(1.25 * 28 * GB);
    const w8 = blockWorkingBytes(QWEN3_8B, 16, 2048, 'bf16', true);
    expect(w8).toBeGreaterThan(12.4 * GB);
    expect(w8).toBeLessThan(1.25 * 12.4 * GB);
  });

  it('8B: one store on the GPU, one in host memory; 70B: one in host memory, one on disk', () => {
    const p8 = planActivations(2, store(QWEN3_8B), blockWorkingBytes(QWEN3_8B, 16, 2048, 'bf16'), 'auto', lim);
    expect(p8).toMatchObject({ ok: true, placements: ['device', 'host'] });
    const p70 = planActivations(2, store(LLAMA_70B), blockWorkingBytes(LLAMA_70B, 16, 2048, 'bf16'), 'auto', lim);
    expect(p70).toMatchObject({ ok: true, placements: ['host', 'disk'] });
  });

  it('a host-memory backend keeps both stores as device tensors', () => {
    expect(planActivations(2, 1e6, 1e6, 'auto', { maxHostBytes: 0 })).toMatchObject({ ok: true, placements: ['device', 'device'] });
  });

  it('fails with the numbers when the block, a named placement or the disk does not fit', () => {
    const w = blockWorkingBytes(LLAMA_70B, 16, 2048, 'bf16');
    const small = planActivations(2, store(LLAMA_70B), w, 'auto', { ...lim, freeDeviceBytes: 40 * GB });
    expect(small.ok).toBe(false);
    if (!small.ok) expect(small.reason).toMatch(/one decoder block needs about 43\.9 GiB of GPU memory for optimization, but 33\.5 GiB are usable/);
    const dev = planActivations(2, store(QWEN3_8B), blockWorkingBytes(QWEN3_8B, 16, 2048, 'bf16'), 'device', lim);
    expect(dev.ok).toBe(false);
    if (!dev.ok) expect(dev.reason).toMatch(/activations on the GPU need 66\.0 GiB \(2 × 33\.0 GiB\)/);
    const host = planActivations(2, store(LLAMA_70B), w, 'host', lim);
    expect(host.ok).toBe(false);
    if (!host.ok) expect(host.reason).toMatch(/more than the host limit of 89\.4 GiB/);
    const disk = planActivations(2, store(LLAMA_70B), w, 'auto', { ...lim, freeDiskBytes: 10 * GB });
    expect(disk.ok).toBe(false);
    if (!disk.ok) expect(disk.reason).toMatch(/need 66\.0 GiB of disk, but 9\.3 GiB are free/);
  });
});
