// `paro quantize`: flags → job settings (defaults live in src/jobs/quantize.ts), progress bars per block and stage.
import { InvalidArgumentError } from 'commander';
import type { Backend } from '../engine/backend.js';
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
  resume?: boolean;
  force?: boolean;
}

/** `--epochs a,b`. */
export function parseEpochs(v: string): [number, number] {
  const m = /^\s*(\d+)\s*,\s*(\d+)\s*$/.exec(v);
  if (!m) throw new InvalidArgumentError(`--epochs must be two non-negative integers "a,b" (stage 1, stage 2), got "${v}"`);
  return [Number(m[1]), Number(m[2])];
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

export async function runQuantize(be: Backend, job: QuantizeJob, showProgress: boolean): Promise<QuantizeReport> {
  let bar: Progress | null = null;
  let barKey = '';
  const stepsPerEpoch = Math.ceil(job.settings.samples / job.settings.batchSize);
  return runQuantizeJob(be, job, {
    onInfo: info,
    onWarn: warn,
    onBlockStart: (l, n) => { if (showProgress) info(`block ${l + 1}/${n}`); },
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
    onBlockEnd: (l, sec) => { if (showProgress) info(`block ${l + 1} done in ${sec.toFixed(1)} s`); },
  });
}
