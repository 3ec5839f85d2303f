// Opens the Collective of a data-parallel run for this process (issue 12): one rank → the identity; cpu backend → the
// rendezvous star (cpu/collective.ts); cuda backend → NCCL (cuda/collective.ts), its unique id handed from rank 0 to
// the others through the rendezvous store. The rank comes from the usual RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR /
// MASTER_PORT variables (set by our launcher, torchrun, or a cluster launcher): rankInfoFromEnv.
import type { Backend } from './backend.js';
import { singleRank, type Collective } from './collective.js';
import { cpuCollective } from './cpu/collective.js';
import { Rendezvous, type RendezvousOptions } from './rendezvous.js';
import type { CudaBackend } from './cuda/backend.js';
import { UsageError } from '../errors.js';

/** Where this process stands in a data-parallel run. */
export interface RankInfo {
  rank: number;
  worldSize: number;
  /** Rank among the processes of this host (torchrun's LOCAL_RANK); picks the GPU when several are visible. */
  localRank: number;
  masterAddr: string;
  masterPort: number;
  /** Pid of our own launcher (PARO_LAUNCHER_PID), when it started this process: workers end when it dies. */
  launcherPid?: number;
}

function envInt(env: NodeJS.ProcessEnv, name: string, min: number): number | undefined {
  const v = env[name];
  if (v === undefined || v.trim() === '') return undefined;
  const n = Number(v);
  if (!/^\s*\d+\s*$/.test(v) || !Number.isSafeInteger(n) || n < min) {
    throw new UsageError(`${name}=${JSON.stringify(v)} in the environment: expected an integer ≥ ${min}`);
  }
  return n;
}

/**
 * The rank of this process from the environment, or null when it is not a data-parallel worker (RANK and WORLD_SIZE
 * unset). A UsageError (one line) on bad values: one of RANK / WORLD_SIZE without the other, RANK ≥ WORLD_SIZE,
 * LOCAL_RANK ≥ WORLD_SIZE, MASTER_ADDR or MASTER_PORT missing when WORLD_SIZE > 1, a port outside 1..65535.
 * LOCAL_RANK defaults to RANK (one host).
 */
export function rankInfoFromEnv(env: NodeJS.ProcessEnv = process.env): RankInfo | null {
  const rank = envInt(env, 'RANK', 0);
  const worldSize = envInt(env, 'WORLD_SIZE', 1);
  if (rank === undefined && worldSize === undefined) return null;
  if (rank === undefined) throw new UsageError('WORLD_SIZE is set in the environment but RANK is not: set both (or neither)');
  if (worldSize === undefined) throw new UsageError('RANK is set in the environment but WORLD_SIZE is not: set both (or neither)');
  if (rank >= worldSize) throw new UsageError(`RANK=${rank} in the environment must be below WORLD_SIZE=${worldSize}`);
  const localRank = envInt(env, 'LOCAL_RANK', 0) ?? rank;
  if (localRank >= worldSize) throw new UsageError(`LOCAL_RANK=${localRank} in the environment must be below WORLD_SIZE=${worldSize}`);
  const masterAddr = (env.MASTER_ADDR ?? '').trim();
  const port = envInt(env, 'MASTER_PORT', 1);
  if (worldSize > 1 && masterAddr === '') throw new UsageError(`WORLD_SIZE=${worldSize} needs MASTER_ADDR in the environment (the host of rank 0)`);
  if (worldSize > 1 && port === undefined) throw new UsageError(`WORLD_SIZE=${worldSize} needs MASTER_PORT in the environment (the port rank 0 listens on)`);
  if (port !== undefined && port > 65535) throw new UsageError(`MASTER_PORT=${port} in the environment is not a port (1..65535)`);
  const launcherPid = envInt(env, 'PARO_LAUNCHER_PID', 1);
  return { rank, worldSize, localRank, masterAddr: masterAddr || '127.0.0.1', masterPort: port ?? 0, ...(launcherPid ? { launcherPid } : {}) };
}

/**
 * The Collective of this process: singleRank() without a run of several ranks (info null or worldSize 1), else it
 * connects to the rendezvous (rank 0 serves it), waits until every rank has connected, and opens the backend's
 * collective. close() of the result also leaves the rendezvous. Collective: every rank calls it.
 */
export async function openCollective(be: Backend, info: RankInfo | null, opts: RendezvousOptions = {}): Promise<Collective> {
  if (!info || info.worldSize === 1) return singleRank();
  const store = Rendezvous.connect(info, { launcherPid: info.launcherPid, ...opts });
  try {
    store.barrier('connected', store.connectTimeoutMs); // every rank is there
    if (be.name === 'cpu') return cpuCollective(be, store);
    // Loaded only for cuda runs (it opens libnccl.so.2 through the addon).
    const { ncclCollective } = await import('./cuda/collective.js');
    const shareId = (mine: Uint8Array | null): Uint8Array => {
      if (info.rank === 0) {
        if (!mine) throw new Error('rank 0 must pass its NCCL unique id');
        store.set('nccl/unique-id', mine);
        return mine;
      }
      return store.get('nccl/unique-id', 0);
    };
    const nccl = ncclCollective(be as CudaBackend, info.rank, info.worldSize, shareId);
    // The store stays open beside NCCL until close(), which ends NCCL first and then leaves the store (rank 0, which
    // serves it, last). A rank that dies mid-run leaves the others blocked in NCCL: the launcher (ours, torchrun)
    // ends them.
    return {
      rank: nccl.rank,
      worldSize: nccl.worldSize,
      allReduce: (t, op) => nccl.allReduce(t, op),
      broadcast: (t, root) => nccl.broadcast(t, root),
      allReduceNumbers: (v, op) => nccl.allReduceNumbers(v, op),
      barrier: () => nccl.barrier(),
      close: () => {
        try {
          nccl.close();
        } finally {
          store.close();
        }
      },
    };
  } catch (e) {
    store.close();
    throw e;
  }
}

/** openCollective for the rank the environment names (singleRank() when it names none). */
export function openCollectiveFromEnv(be: Backend, opts: RendezvousOptions = {}): Promise<Collective> {
  return openCollective(be, rankInfoFromEnv(process.env), opts);
}
