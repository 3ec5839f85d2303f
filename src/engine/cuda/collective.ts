// The Collective of a data-parallel run on CUDA GPUs: NCCL (the machine's libnccl.so.2, opened at run time by the
// addon, native/src/collective.cu). One communicator per process; calls are enqueued on the backend's stream like its
// ops, except allReduceNumbers and barrier, which wait for it.
//
// Where libnccl.so.2 is looked for: $PARO_NCCL_LIB only, when set (a file, or a folder holding libnccl.so.2);
// otherwise the system library path, then the nvidia/nccl/lib folders of Python environments in the usual places
// (native/src/nccl_dyn.h lists them), and last the site-packages folders that `python3` itself reports (the wheel
// nvidia-nccl-cu12/-cu13 that a PyTorch install brings), asked only when the rest found nothing.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../../errors.js';
import type { Collective, ReduceOp } from '../collective.js';
import { shapeString, type Tensor } from '../backend.js';
import { loadAddon, type NativeAddon } from './addon.js';
import type { CudaBackend } from './backend.js';
import { DT_CODE, dtypeBytes } from './dtypes.js';
import { CudaTensor } from './tensor.js';

/** Bytes of an ncclUniqueId. */
export const NCCL_UNIQUE_ID_BYTES = 128;

/** Exchanges the unique id: rank 0 passes its id (and may get it back), every other rank passes null and gets rank 0's. */
export type ShareId = (mine: Uint8Array | null) => Uint8Array;

/** libnccl.so.2 files in the nvidia/nccl/lib folder of each site-packages folder that exists. */
export function ncclLibsIn(sitePackages: readonly string[]): string[] {
  return sitePackages
    .map((d) => path.join(d, 'nvidia', 'nccl', 'lib', 'libnccl.so.2'))
    .filter((f) => fs.existsSync(f));
}

/** The site-packages folders of `python3` (empty when there is no python3 or it fails). */
export function pythonSitePackages(python = 'python3'): string[] {
  const script = 'import site, sys\n' +
    'dirs = list(site.getsitepackages()) if hasattr(site, "getsitepackages") else []\n' +
    'dirs.append(site.getusersitepackages())\n' +
    'dirs += [p for p in sys.path if p.endswith("-packages")]\n' +
    'print("\\n".join(dirs))';
  const r = spawnSync(python, ['-c', script], { encoding: 'utf8', timeout: 20_000, stdio: ['ignore', 'pipe', 'ignore'] });
  if (r.status !== 0 || typeof r.stdout !== 'string') return [];
  return [...new Set(r.stdout.split('\n').map((s) => s.trim()).filter(Boolean))];
}

/**
 * Open libnccl.so.2 in the addon (once per process). Throws a UserError naming what was tried and where NCCL comes
 * from when it cannot be found.
 */
export function loadNccl(addon: NativeAddon, env: NodeJS.ProcessEnv = process.env): { path: string; version: string } {
  let r = addon.ncclLoad([]);
  if (!r.ok && !env.PARO_NCCL_LIB) {
    const extra = ncclLibsIn(pythonSitePackages());
    if (extra.length) r = addon.ncclLoad(extra);
  }
  if (!r.ok) throw new UserError(r.error ?? 'NCCL could not be loaded');
  return { path: r.path ?? '?', version: r.versionString ?? '?' };
}

/** The NCCL collective over the addon (ncclCollective without the backend; the tests give it a stand-in addon). */
export function ncclOverAddon(addon: NativeAddon, rank: number, worldSize: number, shareId: ShareId): Collective {
  if (!Number.isInteger(worldSize) || worldSize < 1) throw new Error(`world size must be a positive integer, got ${worldSize}`);
  if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize) throw new Error(`rank ${rank} is not in 0..${worldSize - 1}`);
  loadNccl(addon);
  let id: Uint8Array;
  if (rank === 0) {
    id = addon.ncclUniqueId();
    shareId(id);
  } else {
    id = shareId(null);
  }
  if (!(id instanceof Uint8Array) || id.length !== NCCL_UNIQUE_ID_BYTES) {
    throw new Error(`rank ${rank}: the NCCL unique id must be ${NCCL_UNIQUE_ID_BYTES} bytes, got ${(id as Uint8Array | undefined)?.length ?? typeof id}`);
  }
  const comm = addon.ncclInit(id, worldSize, rank);
  let closed = false;

  const live = (what: string): void => {
    if (closed) throw new Error(`collective ${what} after close()`);
  };
  const tensor = (t: Tensor, what: string): CudaTensor => {
    if (!(t instanceof CudaTensor)) throw new Error(`${what}: the tensor does not belong to the cuda backend`);
    if (t.storage.freed) throw new Error(`${what}: tensor ${shapeString(t.shape)} was used after free()`);
    return t;
  };
  const opCode = (op: ReduceOp): 0 | 1 => {
    if (op === 'sum') return 0;
    if (op === 'mean') return 1;
    throw new Error(`unknown reduce op ${String(op)}`);
  };

  return {
    rank,
    worldSize,
    allReduce(t: Tensor, op: ReduceOp): void {
      live('allReduce');
      const c = tensor(t, 'allReduce');
      if (c.dtype !== 'f32' && c.dtype !== 'bf16' && c.dtype !== 'f16') {
        throw new Error(`allReduce: ${c.dtype} tensors are not supported (f32, bf16, f16)`);
      }
      addon.ncclAllReduce(comm, c.ptr, DT_CODE[c.dtype], c.size, opCode(op));
    },
    broadcast(t: Tensor, root: number): void {
      live('broadcast');
      const c = tensor(t, 'broadcast');
      if (!Number.isInteger(root) || root < 0 || root >= worldSize) {
        throw new Error(`broadcast: root ${root} is not a rank of this run (world size ${worldSize})`);
      }
      addon.ncclBroadcast(comm, c.ptr, c.size * dtypeBytes(c.dtype), root);
    },
    allReduceNumbers(values: Float64Array, op: ReduceOp): Float64Array {
      live('allReduceNumbers');
      const out = Float64Array.from(values);
      const code = opCode(op);
      if (out.length > 0) addon.ncclAllReduceHost(comm, out, code);
      return out;
    },
    barrier(): void {
      live('barrier');
      addon.ncclBarrier(comm);
    },
    close(): void {
      if (closed) return;
      closed = true;
      addon.ncclDestroy(comm);
    },
  };
}

/**
 * The collective of rank `rank` of `worldSize` processes, each with its own CUDA backend `be` (one GPU per process).
 * Rank 0 makes the NCCL unique id and hands it to shareId; the others call shareId(null) and get rank 0's. Blocks
 * until every rank has joined. Throws a UserError when libnccl.so.2 cannot be found.
 */
export function ncclCollective(be: CudaBackend, rank: number, worldSize: number, shareId: ShareId): Collective {
  const loaded = loadAddon();
  if (!loaded.addon) throw new UserError(`CUDA backend unavailable: ${loaded.error}`);
  // The backend opened the device in this process (NCCL binds the communicator to the current device).
  if (be.name !== 'cuda') throw new Error('ncclCollective needs the cuda backend');
  return ncclOverAddon(loaded.addon, rank, worldSize, shareId);
}
