// The real jobs on several cpu processes, for test/data-parallel-{quantize,dflash}.test.ts: `dp-jobs.ts <job> <spec.json>
// <results-dir> --ranks N` runs the real launcher (src/cli/launch.ts); each worker opens the real cpu Collective, runs
// the job (quantize, train-drafter or generate-data) with it and writes what the test compares to
// <results-dir>/rank-<r>.json. The spec holds the job's input; `rankInput[r]` replaces fields for rank r only (a test
// gives one rank an input file of its own that cannot be read: a real failure of that rank alone).
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { CpuBackend } from '../../src/engine/cpu/backend.js';
import { openCollectiveFromEnv } from '../../src/engine/open-collective.js';
import { launchIfRequested } from '../../src/cli/launch.js';
import { runCommand } from '../../src/cli/run-command.js';
import { resolveQuantizeSettings, runQuantizeJob, type QuantizeJob, type QuantizeSettings } from '../../src/jobs/quantize.js';
import { runTrainDrafter, type TrainDrafterInput } from '../../src/jobs/train-drafter.js';
import { runGenerateData, type GenerateDataInput } from '../../src/jobs/generate-data.js';

export interface DpSpec<T> {
  input: T;
  rankInput?: Record<number, Partial<T>>;
}

export type QuantizeSpec = DpSpec<Omit<QuantizeJob, 'settings'> & { settings: Partial<QuantizeSettings> }>;

const argv = process.argv;
const JOBS = ['quantize', 'train-drafter', 'generate-data'];
if (!(await launchIfRequested('paro', argv, JOBS))) {
  const [job, specFile, resultsDir] = argv.slice(2);
  await runCommand({ tool: 'paro', command: job, json: false }, async () => {
    const be = await CpuBackend.create();
    const comm = await openCollectiveFromEnv(be, { timeoutMs: 60_000 });
    try {
      const spec = JSON.parse(readFileSync(specFile, 'utf8')) as DpSpec<Record<string, unknown>>;
      const input = { ...spec.input, ...(spec.rankInput?.[comm.rank] ?? {}) };
      let result: unknown;
      if (job === 'quantize') {
        const q = input as unknown as QuantizeSpec['input'];
        const r = await runQuantizeJob(be, { ...q, settings: resolveQuantizeSettings(q.settings) }, {}, comm);
        result = { worldSize: r.worldSize, files: r.files, blocks: r.blocks.map((b) => b.epochs.map((e) => ({ stage: e.stage, epoch: e.epoch, valLoss: e.valLoss, trainLoss: e.trainLoss }))) };
      } else if (job === 'train-drafter') {
        const losses: number[] = []; // rank 0's hooks only
        const r = runTrainDrafter(be, input as unknown as TrainDrafterInput, { onStep: (_i, _n, st) => losses.push(st.loss) }, { toolVersion: 'test' }, comm);
        result = { worldSize: r.worldSize, steps: r.steps, finalLoss: r.finalLoss, finalAcc: r.finalAcc, losses };
      } else if (job === 'generate-data') {
        const r = runGenerateData(be, input as unknown as GenerateDataInput, {}, { toolVersion: 'test' }, comm);
        result = { worldSize: r.worldSize, generated: r.generated, records: r.records };
      } else throw new Error(`unknown job ${job}`);
      writeFileSync(path.join(resultsDir, `rank-${comm.rank}.json`), JSON.stringify(result));
    } finally {
      comm.close();
    }
  });
}
