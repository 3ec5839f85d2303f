// The NCCL collective's JS side without a GPU: how it drives the addon (unique-id exchange, dtype/op codes, bytes of a
// broadcast, close), its argument checks, where it looks for libnccl.so.2, and, when the addon is built here, the
// addon's own "not found" message for a PARO_NCCL_LIB that names a missing file.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { UserError } from '../src/errors.js';
import { loadAddon, type NativeAddon } from '../src/engine/cuda/addon.js';
import { loadNccl, NCCL_UNIQUE_ID_BYTES, ncclLibsIn, ncclOverAddon } from '../src/engine/cuda/collective.js';
import { DT_CODE } from '../src/engine/cuda/dtypes.js';
import { CudaStorage, CudaTensor } from '../src/engine/cuda/tensor.js';
import { scratchDir } from './scratch.js';

type Call = [string, ...unknown[]];

/** A stand-in for the addon's NCCL functions that records every call; allReduceHost doubles (two ranks, same data). */
function fakeAddon(loadResult: { ok: boolean; error?: string } = { ok: true }) {
  const calls: Call[] = [];
  const id = new Uint8Array(NCCL_UNIQUE_ID_BYTES).map((_, i) => (i * 7) & 255);
  const addon = {
    ncclLoad: (extra: string[]) => {
      calls.push(['ncclLoad', extra]);
      return loadResult.ok ? { ok: true, path: '/x/libnccl.so.2', version: 22703, versionString: '2.27.3' } : loadResult;
    },
    ncclUniqueId: () => {
      calls.push(['ncclUniqueId']);
      return id;
    },
    ncclInit: (got: Uint8Array, world: number, rank: number) => {
      calls.push(['ncclInit', Array.from(got), world, rank]);
      return 5;
    },
    ncclAllReduce: (...a: unknown[]) => { calls.push(['ncclAllReduce', ...a]); },
    ncclBroadcast: (...a: unknown[]) => { calls.push(['ncclBroadcast', ...a]); },
    ncclAllReduceHost: (comm: number, values: Float64Array, op: number) => {
      calls.push(['ncclAllReduceHost', comm, Array.from(values), op]);
      for (let i = 0; i < values.length; i++) values[i] = op === 1 ? values[i] : values[i] * 2;
    },
    ncclBarrier: (comm: number) => { calls.push(['ncclBarrier', comm]); },
    ncclDestroy: (comm: number) => { calls.push(['ncclDestroy', comm]); },
  };
  return { addon: addon as unknown as NativeAddon, calls, id };
}

const tensor = (shape: number[], dtype: 'f32' | 'bf16' | 'f16' | 'i32', ptr = 4096) =>
  new CudaTensor(shape, dtype, new CudaStorage(ptr, shape.reduce((a, b) => a * b, 1) * (dtype === 'f32' || dtype === 'i32' ? 4 : 2)));

describe('ncclOverAddon', () => {
  it('rank 0 makes the id, hands it to shareId and drives the addon with the right codes', () => {
    const { addon, calls, id } = fakeAddon();
    const shared: (Uint8Array | null)[] = [];
    const c = ncclOverAddon(addon, 0, 2, (mine) => {
      shared.push(mine);
      return mine as Uint8Array;
    });
    expect(c.rank).toBe(0);
    expect(c.worldSize).toBe(2);
    expect(shared).toEqual([id]);
    expect(calls.map((x) => x[0])).toEqual(['ncclLoad', 'ncclUniqueId', 'ncclInit']);
    expect(calls[2]).toEqual(['ncclInit', Array.from(id), 2, 0]);

    const b = tensor([3, 5], 'bf16', 8192);
    c.allReduce(b, 'mean');
    expect(calls.at(-1)).toEqual(['ncclAllReduce', 5, 8192, DT_CODE.bf16, 15, 1]);
    const f = tensor([7], 'f32', 12288);
    c.allReduce(f, 'sum');
    expect(calls.at(-1)).toEqual(['ncclAllReduce', 5, 12288, DT_CODE.f32, 7, 0]);
    c.broadcast(b, 1);
    expect(calls.at(-1)).toEqual(['ncclBroadcast', 5, 8192, 30, 1]); // bytes, not elements

    const values = Float64Array.from([1.25, -3, 1e-300]);
    const summed = c.allReduceNumbers(values, 'sum');
    expect(Array.from(summed)).toEqual([2.5, -6, 2e-300]);
    expect(Array.from(values)).toEqual([1.25, -3, 1e-300]); // the caller's array is left alone
    expect(c.allReduceNumbers(new Float64Array(0), 'sum')).toHaveLength(0);
    expect(calls.filter((x) => x[0] === 'ncclAllReduceHost')).toHaveLength(1); // nothing to reduce: no call

    c.barrier();
    expect(calls.at(-1)).toEqual(['ncclBarrier', 5]);
    c.close();
    c.close();
    expect(calls.filter((x) => x[0] === 'ncclDestroy')).toEqual([['ncclDestroy', 5]]);
    expect(() => c.barrier()).toThrow(/after close/);
    expect(() => c.allReduce(f, 'sum')).toThrow(/after close/);
  });

  it('other ranks take rank 0\'s id from shareId and never make one', () => {
    const { addon, calls } = fakeAddon();
    const theirs = new Uint8Array(NCCL_UNIQUE_ID_BYTES).fill(9);
    const seen: (Uint8Array | null)[] = [];
    ncclOverAddon(addon, 1, 3, (mine) => {
      seen.push(mine);
      return theirs;
    });
    expect(seen).toEqual([null]);
    expect(calls.some((x) => x[0] === 'ncclUniqueId')).toBe(false);
    expect(calls.at(-1)).toEqual(['ncclInit', Array.from(theirs), 3, 1]);
    expect(() => ncclOverAddon(fakeAddon().addon, 1, 2, () => new Uint8Array(16))).toThrow(/128 bytes, got 16/);
  });

  it('rejects bad ranks, roots, dtypes and foreign tensors before calling NCCL', () => {
    expect(() => ncclOverAddon(fakeAddon().addon, 2, 2, (m) => m as Uint8Array)).toThrow(/rank 2 is not in 0\.\.1/);
    expect(() => ncclOverAddon(fakeAddon().addon, 0, 0, (m) => m as Uint8Array)).toThrow(/world size/);
    const { addon, calls } = fakeAddon();
    const c = ncclOverAddon(addon, 0, 2, (m) => m as Uint8Array);
    const before = calls.length;
    expect(() => c.allReduce(tensor([4], 'i32'), 'sum')).toThrow(/i32 tensors are not supported/);
    expect(() => c.broadcast(tensor([4], 'f32'), 2)).toThrow(/root 2 is not a rank/);
    expect(() => c.broadcast(tensor([4], 'f32'), -1)).toThrow(/root -1 is not a rank/);
    const freed = tensor([4], 'f32');
    freed.storage.freed = true;
    expect(() => c.allReduce(freed, 'sum')).toThrow(/used after free/);
    const cpuLike = { shape: [4], dtype: 'f32', size: 4 } as unknown as CudaTensor;
    expect(() => c.allReduce(cpuLike, 'sum')).toThrow(/does not belong to the cuda backend/);
    expect(calls.length).toBe(before);
  });
});

describe('loadNccl', () => {
  it('passes the addon\'s message on as a UserError, and with PARO_NCCL_LIB set tries nothing else', () => {
    const { addon, calls } = fakeAddon({ ok: false, error: 'PARO_NCCL_LIB names /nowhere/libnccl.so.2, which does not exist' });
    let err: unknown;
    try {
      loadNccl(addon, { PARO_NCCL_LIB: '/nowhere/libnccl.so.2' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toContain('/nowhere/libnccl.so.2');
    expect(calls).toEqual([['ncclLoad', []]]);
  });

  it('finds the wheel\'s library under a site-packages folder', () => {
    const dir = scratchDir('paro-nccl-');
    const sp = path.join(dir, 'site-packages');
    mkdirSync(path.join(sp, 'nvidia', 'nccl', 'lib'), { recursive: true });
    writeFileSync(path.join(sp, 'nvidia', 'nccl', 'lib', 'libnccl.so.2'), '');
    expect(ncclLibsIn([path.join(dir, 'missing'), sp])).toEqual([path.join(sp, 'nvidia', 'nccl', 'lib', 'libnccl.so.2')]);
    expect(ncclLibsIn([path.join(dir, 'missing')])).toEqual([]);
  });
});

describe('the built addon (skipped when native/build/paro_cuda.node is absent)', () => {
  const loaded = loadAddon();
  const addon = loaded.addon && typeof loaded.addon.ncclLoad === 'function' ? loaded.addon : null;
  const saved = process.env.PARO_NCCL_LIB;
  afterEach(() => {
    if (saved === undefined) delete process.env.PARO_NCCL_LIB;
    else process.env.PARO_NCCL_LIB = saved;
  });

  it.skipIf(!addon)('names a PARO_NCCL_LIB that does not exist, and where NCCL comes from', () => {
    const missing = path.join(scratchDir('paro-nccl-'), 'no', 'libnccl.so.2');
    process.env.PARO_NCCL_LIB = missing;
    const r = (addon as NativeAddon).ncclLoad([]);
    expect(r.ok).toBe(false);
    expect(r.error).toContain(`PARO_NCCL_LIB names ${missing}, which does not exist`);
    expect(r.error).toMatch(/nvidia-nccl-cu1/);
  });

  it.skipIf(!addon)('says what it tried when no libnccl.so.2 is found (only where none is installed)', () => {
    delete process.env.PARO_NCCL_LIB;
    const r = (addon as NativeAddon).ncclLoad(['/nonexistent-paro/libnccl.so.2']);
    if (r.ok) return; // this machine has NCCL: the message cannot be produced here
    expect(r.error).toMatch(/^NCCL library libnccl\.so\.2 not found/);
    expect(r.error).toContain('PARO_NCCL_LIB');
  });
});
