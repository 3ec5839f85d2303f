// `paro quantize`: options → settings, progress bars per block and stage, report.
import path from 'node:path';
import type { Backend, DType } from '../engine/backend.js';
import { DEFAULT_OPTIMIZER, quantize, type QuantMethod, type QuantizeReport, type QuantizeSettings } from '../paroquant/quantize.js';
import { UserError } from '../errors.js';
import { Progress, info, warn } from './progress.js';
import { TOOL_VERSION } from './version.js';

export interface QuantizeCliOptions {
  out?: string;
  calib?: string;
  samples: number;
  seqLen: number;
  valSamples: number;
  epochs: string;
  bits: number;
  groupSize: number;
  krot: number;
  method: string;
  seed: number;
  batchSize: number;
  shuffle?: boolean;
  activations?: string;
  resume?: boolean;
  force?: boolean;
}

export function resolveComputeDtype(v: string, backend: 'cpu' | 'cuda'): DType {
  if (v === 'auto') return backend === 'cuda' ? 'bf16' : 'f32';
  if (v === 'f32' || v === 'bf16') return v;
  throw new UserError(`--compute-dtype must be auto, f32 or bf16, got "${v}"`);
}

export function parseEpochs(v: string): [number, number] {
  const m = /^\s*(\d+)\s*,\s*(\d+)\s*$/.exec(v);
  if (!m) throw new UserError(`--epochs must be two non-negative integers "a,b" (stage 1, stage 2), got "${v}"`);
  return [Number(m[1]), Number(m[2])];
}

export function quantizeSettings(modelDir: string, calibFile: string, o: QuantizeCliOptions): QuantizeSettings {
  if (o.method !== 'paro' && o.method !== 'rtn') throw new UserError(`--method must be paro or rtn, got "${o.method}"`);
  if (![2, 3, 4, 8].includes(o.bits)) throw new UserError(`--bits must be 2, 3, 4 or 8, got ${o.bits}`);
  if (o.krot < 1 || o.krot > 64) throw new UserError(`--krot must be in [1, 64], got ${o.krot}`);
  if (!o.out) throw new UserError('missing --out <dir>');
  const activations = o.activations ?? 'auto';
  if (activations !== 'auto' && activations !== 'device' && activations !== 'host') throw new UserError(`--activations must be auto, device or host, got "${activations}"`);
  return {
    modelDir, outDir: path.resolve(o.out), calibFile,
    samples: o.samples, seqLen: o.seqLen, valSamples: o.valSamples,
    shuffleSeed: o.shuffle ? o.seed : undefined,
    method: o.method as QuantMethod, seed: o.seed, krot: o.krot,
    optimizer: { ...DEFAULT_OPTIMIZER, grid: { bits: o.bits, groupSize: o.groupSize }, epochs: parseEpochs(o.epochs), batchSize: o.batchSize },
    resume: !!o.resume, force: !!o.force, toolVersion: TOOL_VERSION, activations,
  };
}

export async function runQuantize(be: Backend, s: QuantizeSettings, showProgress: boolean): Promise<QuantizeReport> {
  let bar: Progress | null = null;
  let barKey = '';
  const stepsPerEpoch = Math.ceil(s.samples / s.optimizer.batchSize);
  const report = await quantize(be, s, {
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
  return report;
}
