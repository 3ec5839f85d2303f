// `paro release`: the config file and flag overrides → a checked release config, the source resolved offline, the
// release job run with progress on stderr, and a summary (or the --json envelope's result).
import { Command } from 'commander';
import { createBackend, parseDevice } from '../engine/select.js';
import { UsageError } from '../errors.js';
import { resolveSource } from '../io/hf-source.js';
import { loadReleaseConfig } from '../io/release-config.js';
import { runRelease, type ReleaseReport } from '../jobs/release.js';
import { DEFAULT_CALIB_FILE } from './paths.js';
import { addExamples, HELP_GROUPS as G } from './help.js';
import { info, Progress, warn } from './progress.js';
import { runCommand } from './run-command.js';
import { TOOL_VERSION } from './version.js';

interface ReleaseCliOptions {
  config?: string;
  set?: string[];
  out?: string;
  source?: string;
  device?: string;
  force?: boolean;
  json?: boolean;
  debug?: boolean;
}

const collect = (v: string, prev: string[] | undefined): string[] => [...(prev ?? []), v];

export function addReleaseCommand(program: Command): void {
  const cmd = program.command('release')
    .description('one resumable run from a checkpoint to a verified bundle: quantize → quality gates → optional DFlash drafter → model/, drafter/, README.md card, manifest.json (docs/release.md)')
    .optionsGroup(G.io)
    .option('--config <file>', 'release.yaml / release.json (docs/release.md lists every key)')
    .option('--set <key=value>', 'override a config key, e.g. --set quantize.bits=4 --set gates.max_kl=0.05 (repeatable)', collect)
    .option('--out <dir>', 'bundle folder (overrides out)')
    .option('--source <model>', 'a model folder or org/name[@revision] in the Hugging Face cache (overrides source)')
    .option('--force', 'replace a bundle at out made with other settings or inputs')
    .optionsGroup(G.device)
    .option('--device <device>', 'auto, cpu, cuda or cuda:N (overrides device)')
    .optionsGroup(G.format)
    .option('--json', 'print the JSON envelope with the release report on stdout')
    .option('--debug', 'show stack traces on errors')
    .addHelpText('after', `
Exit codes: 0 released or nothing to do, 1 usage, 2 input or environment, 3 quality gate failed (no bundle),
4 internal error. Config keys, stages and the bundle layout: docs/release.md; a CI job: docs/ci.md.`);
  addExamples(cmd, [
    ['paro release --config release.yaml --json > release.json', 'the CI step: exit 3 when a gate fails, the envelope on stdout'],
    ['paro release --config release.yaml --set gates.max_kl=0.08', 'loosen a gate and rerun: finished stages are reused'],
    ['paro release --config release.yaml --source Qwen/Qwen3-8B@main --out dist/Qwen3-8B-PARO --device cuda', 'source, output and device from flags'],
  ]);
  cmd
    .action(async (o: ReleaseCliOptions) => {
      await runCommand({ tool: 'paro', command: 'release', json: o.json, debug: o.debug }, async (ctx) => {
        if (!o.config) throw new UsageError('missing --config <release.yaml>');
        const loaded = loadReleaseConfig(o.config, { set: o.set, overrides: { out: o.out, source: o.source, device: o.device } });
        const source = resolveSource(loaded.config.source, { cwd: loaded.sourceBaseDir });
        const be = await createBackend(parseDevice(loaded.config.device), warn);
        const bars: Partial<Record<'eval' | 'generate' | 'train' | 'drafterEval', Progress>> = {};
        const r = await runRelease(be, {
          config: loaded.config, source, defaultCalibFile: DEFAULT_CALIB_FILE, force: !!o.force,
          run: { toolVersion: TOOL_VERSION, argv: ['paro', ...process.argv.slice(2)] },
        }, {
          onInfo: info, onWarn: warn,
          // A failed gate's envelope still carries the figures and every gate checked.
          onGates: (gates, metrics, stages) => { ctx.result = { command: 'release', out: loaded.config.out, gates, metrics, stages }; },
          onStageEnd: () => { for (const b of Object.values(bars)) b?.stop(); },
          onStageStart: (stage) => {
            if (stage === 'quantize') info(`quantizing ${source.repoId ?? source.dir}${source.commit ? `@${source.commit.slice(0, 12)}` : ''}`);
          },
          quantize: {
            onInfo: info, onWarn: warn,
            onBlockEnd: (l, sec) => info(`quantize: block ${l + 1} done in ${sec.toFixed(1)} s`),
          },
          eval: {
            onStart: (n) => { bars.eval = new Progress('eval FP vs quantized (windows)', n); },
            onProgress: (done) => bars.eval?.update(done),
            onEnd: () => bars.eval?.stop(),
          },
          generate: {
            onProgress: (done, total, tokens) => {
              bars.generate ??= new Progress('generate (prompts)', total);
              bars.generate.update(done, { tokens });
              if (done === total) bars.generate.stop();
            },
          },
          train: {
            info, warn,
            onStep: (step, total, st) => {
              bars.train ??= new Progress('train drafter (steps)', total, { fields: { loss: NaN } });
              bars.train.update(step, { loss: st.loss });
              if (step === total) bars.train.stop();
            },
          },
          drafterEval: {
            onPrompt: (done, total, tau) => {
              bars.drafterEval ??= new Progress('drafter τ (prompts)', total);
              bars.drafterEval.update(done, { tau });
              if (done === total) bars.drafterEval.stop();
            },
          },
        });
        ctx.result = r;
        if (!o.json) printSummary(r);
        return r;
      });
    });
}

function printSummary(r: ReleaseReport): void {
  if (r.nothingToDo) {
    process.stdout.write(`${r.out}\n`); // the job said "… is complete …; nothing to do" on stderr
    return;
  }
  const m = r.metrics;
  if (m.fpPpl !== undefined) {
    info(`perplexity FP ${m.fpPpl.toFixed(4)} → quantized ${m.quantizedPpl?.toFixed(4)} (${((m.pplIncrease ?? 0) * 100).toFixed(2)} %), KL ${m.kl?.toExponential(3)}, top-1 ${((m.top1Agreement ?? 0) * 100).toFixed(2)} %`);
  }
  if (m.tau !== undefined) info(`drafter τ ${m.tau.toFixed(3)}`);
  for (const g of r.gates) info(`gate ${g.name}: ${Number(g.value.toPrecision(5))} (limit ${g.name.startsWith('min_') ? '≥' : '≤'} ${g.limit}) ${g.passed ? 'pass' : 'FAIL'}`);
  info(`stages: ${r.stages.map((s) => `${s.name} ${s.reused ? 'reused' : `${s.seconds.toFixed(1)} s`}`).join(', ')}`);
  process.stdout.write(`${r.out}\n`);
}
