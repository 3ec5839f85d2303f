// `paro quantize`: flags → job settings (defaults live in src/jobs/quantize.ts), progress bars per block and stage.
import { InvalidArgumentError } from 'commander';
import type { Backend } from '../engine/backend.js';
import type { Collective } from '../engine/collective.js';
import { openCollectiveFromEnv } from '../engine/open-collective.js';
import { parseSize } from '../io/release-config.js';
import { runQuantizeJob, type QuantizeJob, type QuantizeReport, type QuantizeSettings } from '../jobs/quantize.js';
import { Progress, info, warn } from './progress.js';

/** The quantize flags as commander parses them: undefined when not given (the job's defaults then apply). */
export interface QuantizeCliOptions {
  out?: string;
  calib?: string;
  samples?: number;
  seqLen?: number;
  valSamples?: number;
  epochs?: [number, number];
  bits?: number;
  groupSize?: number;
  krot?: number;
  method?: string;
  seed?: number;
  batchSize?: number;
  shuffle?: boolean;
  computeDtype?: string;
  activations?: string;
  /** Bytes (parsed by parseSizeOption). */
  maxShardSize?: number;
  maxHostMemory?: number;
  activationsDir?: string;
  resume?: boolean;
  force?: boolean;
}

/** `--epochs a,b`. */
export function parseEpochs(v: string): [number, number] {
  const m = /^\s*(\d+)\s*,\s*(\d+)\s*$/.exec(v);
  if (!m) throw new InvalidArgumentError(`--epochs must be two non-negative integers "a,b" (stage 1, stage 2), got "${v}"`);
  return [Number(m[1]), Number(m[2])];
}

/** A size such as 5GB, 500MB, 2GiB or a number of bytes, for commander (units as --max-shard-size documents). */
export function parseSizeOption(flag: string) {
  return (v: string): number => {
    try {
      return parseSize(v);
    } catch (e) {
      throw new InvalidArgumentError(`${flag} ${(e as Error).message}`);
    }
  };
}

/** The job's file and memory options from the flags (not settings: they change neither the result nor the fingerprint). */
export function quantizeJobOptions(o: QuantizeCliOptions): Pick<QuantizeJob, 'maxShardSize' | 'maxHostMemory' | 'activationsDir'> {
  return { maxShardSize: o.maxShardSize, maxHostMemory: o.maxHostMemory, activationsDir: o.activationsDir };
}

/** "1h 02m", "3m 05s", "12s". */
export function formatDuration(sec: number): string {
  if (!Number.isFinite(sec) || sec < 0) return '?';
  const s = Math.round(sec);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  return h > 0 ? `${h}h ${String(m).padStart(2, '0')}m` : m > 0 ? `${m}m ${String(r).padStart(2, '0')}s` : `${r}s`;
}

/** ETA of the remaining blocks from the mean time of the blocks this run optimized (resumed ones are cheaper). */
export class BlockEta {
  private sum = 0;
  private n = 0;

  constructor(private readonly blocks: number) {}

  /** Record block l's time; returns the estimated seconds left after it, NaN while no block was optimized yet. */
  done(l: number, seconds: number, resumed: boolean): number {
    if (!resumed) {
      this.sum += seconds;
      this.n++;
    }
    return this.n > 0 ? (this.sum / this.n) * (this.blocks - l - 1) : NaN;
  }
}

/** A value out of a fixed list, for commander. */
export function oneOf<T extends string>(name: string, values: readonly T[]) {
  return (v: string): T => {
    if (!(values as readonly string[]).includes(v)) throw new InvalidArgumentError(`${name} must be ${values.join(', ').replace(/, ([^,]*)$/, ' or $1')}, got "${v}"`);
    return v as T;
  };
}

/** The settings the user gave explicitly (flags that were not given stay out, so defaults and --demo apply). */
export function explicitQuantizeSettings(o: QuantizeCliOptions): Partial<QuantizeSettings> {
  const s: Partial<QuantizeSettings> = {
    method: o.method as QuantizeSettings['method'] | undefined, bits: o.bits, groupSize: o.groupSize, krot: o.krot,
    samples: o.samples, valSamples: o.valSamples, seqLen: o.seqLen, shuffle: o.shuffle, seed: o.seed,
    epochs: o.epochs, batchSize: o.batchSize,
    computeDtype: o.computeDtype as QuantizeSettings['computeDtype'] | undefined,
    activations: o.activations as QuantizeSettings['activations'] | undefined,
  };
  return Object.fromEntries(Object.entries(s).filter(([, v]) => v !== undefined)) as Partial<QuantizeSettings>;
}

/**
 * The quantize job with progress on stderr. A data-parallel worker (RANK / WORLD_SIZE in the environment, set by
 * --gpus / --ranks or torchrun) joins the run's Collective here; only rank 0 reports progress and writes.
 */
export async function runQuantize(be: Backend, job: QuantizeJob, showProgress: boolean): Promise<QuantizeReport> {
  const comm = await openCollectiveFromEnv(be);
  try {
    return await quantizeWithProgress(be, job, showProgress && comm.rank === 0, comm);
  } finally {
    comm.close();
  }
}

async function quantizeWithProgress(be: Backend, job: QuantizeJob, showProgress: boolean, comm: Collective): Promise<QuantizeReport> {
  let bar: Progress | null = null;
  let barKey = '';
  let capture: Progress | null = null;
  let eta: BlockEta | null = null;
  const tBlocks = { start: 0 };
  const stepsPerEpoch = Math.ceil(job.settings.samples / job.settings.batchSize);
  return runQuantizeJob(be, job, {
    onInfo: info,
    onWarn: warn,
    onProgress: (phase, done, total) => {
      if (!showProgress) return;
      capture ??= new Progress(phase === 'capture' ? 'calibration embeddings (windows)' : 'hashing the inputs (MiB)', total);
      capture.update(done);
      if (done >= total) {
        capture.stop();
        capture = null;
      }
    },
    onBlockStart: (l, n) => {
      eta ??= new BlockEta(n);
      if (tBlocks.start === 0) tBlocks.start = Date.now();
      if (showProgress) info(`block ${l + 1}/${n}`);
    },
    onStep: (l, p) => {
      if (!showProgress) return;
      const key = `${l}:${p.stage}`;
      if (key !== barKey) {
        bar?.stop();
        bar = new Progress(`block ${l + 1} stage ${p.stage}`, p.epochs * stepsPerEpoch);
        barKey = key;
      }
      bar?.update((p.epoch - 1) * stepsPerEpoch + p.step, { epoch: `${p.epoch}/${p.epochs}`, loss: p.loss });
    },
    onStageEnd: (l, stage, r) => {
      bar?.stop();
      bar = null;
      barKey = '';
      if (showProgress) info(`block ${l + 1} stage ${stage}: val loss ${r.initialValLoss.toExponential(4)} → ${r.bestValLoss.toExponential(4)} (best epoch ${r.bestEpoch})${r.diverged ? ' [diverged; best state restored]' : ''}`);
    },
    onBlockEnd: (l, sec, resumed) => {
      const left = eta?.done(l, sec, resumed) ?? NaN;
      if (!showProgress) return;
      const elapsed = (Date.now() - tBlocks.start) / 1000;
      info(`block ${l + 1} ${resumed ? 'recomputed (resumed)' : 'done'} in ${sec.toFixed(1)} s | elapsed ${formatDuration(elapsed)} | ETA ${Number.isFinite(left) ? formatDuration(left) : '?'}`);
    },
  }, comm);
}
