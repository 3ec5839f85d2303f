// `paro`: ParoQuant INT4 quantization and quantized-model evaluation. This module maps flags to job settings
// (src/jobs/) and prints; defaults live in the jobs (shown in the help from the DEFAULT_… objects).
import { Command } from 'commander';
import path from 'node:path';
import { gpuList, nonNegativeInt, positiveInt } from './options.js';
import { deviceForRank, GPUS_HELP, launchIfRequested, RANKS_HELP, rankInfoFromEnv } from './launch.js';
import { createBackend, parseDevice } from '../engine/select.js';
import { UsageError } from '../errors.js';
import { readToolManifest } from '../io/manifest.js';
import { DEFAULT_EVAL_SETTINGS as EV, DEMO_EVAL_SETTINGS, resolveEvalSettings } from '../jobs/eval.js';
import { DEFAULT_QUANTIZE_SETTINGS as Q, DEMO_QUANTIZE_SETTINGS, resolveQuantizeSettings } from '../jobs/quantize.js';
import { runEval } from './eval.js';
import { DEFAULT_CALIB_FILE, DEMO_MODEL_DIR } from './paths.js';
import { runCommand, runProgram } from './run-command.js';
import { info, warn } from './progress.js';
import { TOOL_VERSION } from './version.js';
import { addExamples, HELP_GROUPS as G } from './help.js';
import { runDoctor } from './doctor.js';
import { addReleaseCommand } from './release.js';
import { explicitQuantizeSettings, oneOf, parseEpochs, parseSizeOption, quantizeJobOptions, runQuantize, type QuantizeCliOptions } from './quantize.js';

/** Help text of an option whose default the job defines. */
const dflt = (text: string, value: unknown): string => `${text} (default: ${Array.isArray(value) ? value.join(',') : String(value)})`;
const DEVICE_HELP = 'auto, cpu, cuda or cuda:N (default: auto)';
const TEXT_DATA = '.jsonl ({"text"} per line), .json, .txt, their .gz forms, or .parquet (a "text" column)';
const DEMO_OUT = 'paro-demo-out';

/** True when dir is the output of an earlier `paro quantize --demo` (its manifest names the embedded demo model). */
function isDemoOutput(dir: string): boolean {
  const m = readToolManifest(dir);
  if (!m) return false;
  const inputs = m.inputs as { role?: string; path?: string }[] | { model?: string } | undefined;
  const model = Array.isArray(inputs) ? inputs.find((i) => i.role === 'model')?.path : inputs?.model;
  return model !== undefined && path.resolve(model) === path.resolve(DEMO_MODEL_DIR);
}

const defined = <T extends object>(o: T): Partial<T> => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;

export function buildParoProgram(): Command {
  const program = new Command('paro')
    .description('ParoQuant: INT4 quantization with pairwise rotations, and evaluation of the result')
    .version(TOOL_VERSION, '-V, --version')
    .showHelpAfterError('(see --help)');

  const evaluate = program.command('eval')
    .description('perplexity of a model directory (FP16/BF16 or ParoQuant INT4) on a text file')
    .argument('[model-dir]', 'Hugging Face model directory (config.json, *.safetensors, tokenizer.json)')
    .optionsGroup(G.io)
    .option('--data <file>', `text data: ${TEXT_DATA}`)
    .option('--compare <fp-dir>', 'also run this FP model (the original of <model-dir>) on the same windows: its perplexity, mean KL(FP ‖ model) per token and top-1 agreement')
    .option('--demo', `use the built-in demo model and text (${DEMO_EVAL_SETTINGS.maxWindows} windows unless --max-windows)`)
    .optionsGroup(G.evaluation)
    .option('--seq-len <n>', dflt('tokens per window', EV.seqLen), positiveInt('--seq-len'))
    .option('--max-windows <n>', dflt('at most this many windows', EV.maxWindows), positiveInt('--max-windows'))
    .option('--batch <n>', dflt('windows per forward pass', EV.batch), positiveInt('--batch'))
    .option('--compute-dtype <dtype>', dflt('GEMM precision of the linear layers and the LM head: auto (bf16 on cuda, f32 on cpu), f32, or bf16 (bf16 inputs and weights, f32 results; residual stream, norms and softmax stay f32)', EV.computeDtype), oneOf('--compute-dtype', ['auto', 'f32', 'bf16'] as const))
    .optionsGroup(G.device)
    .option('--device <device>', DEVICE_HELP)
    .optionsGroup(G.format)
    .option('--json', 'print a machine-readable JSON report on stdout')
    .option('--debug', 'show stack traces on errors')
    .action(async (modelDir: string | undefined, o: { data?: string; seqLen?: number; maxWindows?: number; batch?: number; computeDtype?: 'auto' | 'f32' | 'bf16'; compare?: string; device?: string; demo?: boolean; json?: boolean; debug?: boolean }) => {
      await runCommand({ tool: 'paro', command: 'eval', json: o.json, debug: o.debug }, async () => {
        const dir = modelDir ?? (o.demo ? DEMO_MODEL_DIR : undefined);
        const data = o.data ?? (o.demo ? DEFAULT_CALIB_FILE : undefined);
        if (!dir) throw new UsageError('missing <model-dir> (or pass --demo)');
        if (!data) throw new UsageError('missing --data <file> (or pass --demo)');
        const settings = resolveEvalSettings({ ...(o.demo ? DEMO_EVAL_SETTINGS : {}), ...defined({ seqLen: o.seqLen, maxWindows: o.maxWindows, batch: o.batch, computeDtype: o.computeDtype }) });
        const be = await createBackend(parseDevice(o.device ?? 'auto'), warn);
        const r = runEval(be, { modelDir: dir, dataFile: data, settings, compareDir: o.compare }, true);
        if (!o.json) {
          info(`perplexity ${r.ppl.toFixed(4)} on ${r.windows} windows × ${r.seqLen} tokens (${r.tokens} predictions) of ${r.data}`);
          const c = r.compare;
          if (c) info(`FP ${c.fpModel}: perplexity ${c.fpPpl.toFixed(4)} (${c.pplIncrease >= 0 ? '+' : ''}${(100 * c.pplIncrease).toFixed(2)} %); KL(FP ‖ model) ${c.kl.toExponential(4)} nats/token (max ${c.klMax.toExponential(3)}); top-1 agreement ${(100 * c.top1Agreement).toFixed(2)} %`);
          info(`${r.backend} backend (${r.device}), compute dtype ${r.computeDtype}: ${r.seconds.toFixed(1)} s, ${Math.round(r.tokensPerSecond)} tokens/s`);
          process.stdout.write(`ppl ${r.ppl.toFixed(4)}${r.compare ? ` fp_ppl ${r.compare.fpPpl.toFixed(4)} kl ${r.compare.kl.toExponential(4)} top1 ${r.compare.top1Agreement.toFixed(4)}` : ''}\n`);
        }
        return r;
      });
    });

  const quantize = program.command('quantize')
    .description('quantize an FP16/BF16 checkpoint to INT4 with ParoQuant (or the RTN baseline)')
    .argument('[model-dir]', 'Hugging Face model directory (Llama, Qwen2, Qwen3)')
    .optionsGroup(G.io)
    .option('--out <dir>', 'output directory; built in <out>.partial/ and renamed when complete')
    .option('--calib <file>', `calibration text: ${TEXT_DATA} (default: the built-in set in calib/)`)
    .option('--max-shard-size <size>', 'largest output shard, e.g. 5GB, 500MB, 2GiB (default: 5GB; one shard is written as model.safetensors)', parseSizeOption('--max-shard-size'))
    .option('--resume', 'continue an interrupted run from <out>.partial/ (same inputs and settings only)')
    .option('--force', 'replace an earlier output of this tool at --out, or discard an interrupted run\'s <out>.partial/')
    .option('--demo', `quantize the built-in demo model with the built-in calibration set (samples ${DEMO_QUANTIZE_SETTINGS.samples}, val-samples ${DEMO_QUANTIZE_SETTINGS.valSamples}, epochs ${DEMO_QUANTIZE_SETTINGS.epochs?.join(',')} unless given), then evaluate it`)
    .optionsGroup(G.quantization)
    .option('--method <m>', dflt('paro (ParoQuant) or rtn (round-to-nearest baseline, same format)', Q.method), oneOf('--method', ['paro', 'rtn'] as const))
    .option('--bits <n>', dflt('weight bits: 4, or 3 / 2 in the same 4-bit packing', Q.bits), positiveInt('--bits'))
    .option('--group-size <n>', dflt('input channels per quantization group (even, dividing every in_features)', Q.groupSize), positiveInt('--group-size'))
    .option('--krot <n>', dflt('Givens rotation layers per linear, 1 to 64 (the official CUDA runtime supports 1 and 8)', Q.krot), positiveInt('--krot'))
    .optionsGroup(G.optimization)
    .option('--samples <n>', dflt('calibration windows for training', Q.samples), positiveInt('--samples'))
    .option('--seq-len <n>', dflt('tokens per calibration window', Q.seqLen), positiveInt('--seq-len'))
    .option('--val-samples <n>', dflt('windows after the training ones, for best-epoch selection', Q.valSamples), positiveInt('--val-samples'))
    .option('--epochs <a,b>', dflt('epochs of stage 1 (angles, channel scales) and stage 2 (weights, quantizer)', Q.epochs), parseEpochs)
    .option('--batch-size <n>', dflt('calibration windows per optimizer step', Q.batchSize), positiveInt('--batch-size'))
    .option('--shuffle', 'draw the calibration windows from a seeded permutation instead of the first ones')
    .option('--seed <n>', dflt('seed (rotation pairs of block l use seed + l)', Q.seed), nonNegativeInt('--seed'))
    .optionsGroup(G.device)
    .option('--device <device>', DEVICE_HELP)
    .option('--compute-dtype <dtype>', dflt('dtype of block activations and GEMMs during optimization: auto (bf16 on cuda, f32 on cpu), f32 or bf16', Q.computeDtype), oneOf('--compute-dtype', ['auto', 'f32', 'bf16'] as const))
    .option('--activations <where>', dflt('calibration activations: auto (GPU, then page-locked host memory, then disk, as they fit), device, host or disk', Q.activations), oneOf('--activations', ['auto', 'device', 'host', 'disk'] as const))
    .option('--max-host-memory <size>', 'host memory the activations may take, e.g. 96GB (default: 75% of the machine\'s memory)', parseSizeOption('--max-host-memory'))
    .option('--activations-dir <dir>', 'folder of disk-backed activations (default: the partial output folder)')
    .option('--gpus <list>', GPUS_HELP, gpuList('--gpus'))
    .option('--ranks <n>', RANKS_HELP, positiveInt('--ranks'))
    .optionsGroup(G.format)
    .option('--json', 'print a machine-readable JSON report on stdout')
    .option('--debug', 'show stack traces on errors')
    .action(async (modelDir: string | undefined, o: QuantizeCliOptions & { device?: string; demo?: boolean; json?: boolean; debug?: boolean }) => {
      // In a data-parallel run only rank 0 reports (the envelope, the summary line, the demo's evaluation).
      const lead = (rankInfoFromEnv(process.env)?.rank ?? 0) === 0;
      await runCommand({ tool: 'paro', command: 'quantize', json: o.json && lead, debug: o.debug }, async () => {
        const demo = !!o.demo;
        const dir = modelDir ?? (demo ? DEMO_MODEL_DIR : undefined);
        if (!dir) throw new UsageError('missing <model-dir> (or pass --demo)');
        const out = o.out ?? (demo ? DEMO_OUT : undefined);
        if (!out) throw new UsageError('missing --out <dir>');
        // Explicit flags win over the demo's small settings, which win over the defaults.
        const settings = resolveQuantizeSettings({ ...(demo ? DEMO_QUANTIZE_SETTINGS : {}), ...explicitQuantizeSettings(o) });
        // Rerunning the demo replaces its own previous output, nothing else: a folder of that name made otherwise needs --force.
        const force = !!o.force || (demo && out === DEMO_OUT && isDemoOutput(out));
        if (settings.krot !== 1 && settings.krot !== 8) warn(`--krot ${settings.krot}: the official ParoQuant CUDA runtime kernels are built for K = 1 and 8 only`);
        const be = await createBackend(parseDevice(deviceForRank(o.device)), warn);
        const job = {
          modelDir: dir, outDir: path.resolve(out), calibFile: o.calib ?? DEFAULT_CALIB_FILE, settings,
          resume: !!o.resume, force, toolVersion: TOOL_VERSION, argv: ['paro', ...process.argv.slice(2)], ...quantizeJobOptions(o),
        };
        const r = await runQuantize(be, job, true); // progress on stderr: line-based off a terminal, silenced by PARO_QUIET=1
        const report: Record<string, unknown> = { ...r };
        if (!lead) return report;
        if (demo) {
          // Held-out text: the windows after the ones used for calibration and validation.
          const startToken = (settings.samples + settings.valSamples) * settings.seqLen;
          const ev = { dataFile: DEFAULT_CALIB_FILE, settings: resolveEvalSettings({ seqLen: 512, maxWindows: 16, batch: 4, startToken }) };
          const fp = runEval(be, { modelDir: dir, ...ev }, false);
          const q = runEval(be, { modelDir: job.outDir, ...ev }, false);
          report.demo = { fpPpl: fp.ppl, quantizedPpl: q.ppl, windows: q.windows, startToken };
          if (!o.json) info(`demo: perplexity on ${q.windows} held-out windows of the built-in text: FP ${fp.ppl.toFixed(4)}, ParoQuant W${settings.bits} ${q.ppl.toFixed(4)}`);
        }
        if (!o.json) info(`wrote ${job.outDir} (${r.blocks.length} blocks, ${r.seconds.toFixed(1)} s on ${r.backend})`);
        return report;
      });
    });

  addReleaseCommand(program);

  const doctor = program.command('doctor')
    .description('report the available backends, GPUs and their memory')
    .optionsGroup(G.format)
    .option('--json', 'print a machine-readable JSON report on stdout')
    .option('--debug', 'show stack traces on errors')
    .action(async (o: { json?: boolean; debug?: boolean }) => {
      await runCommand({ tool: 'paro', command: 'doctor', json: o.json, debug: o.debug }, async () => {
        const r = await runDoctor();
        if (!o.json) process.stdout.write(r.lines.join('\n') + '\n');
        return r;
      });
    });

  addExamples(evaluate, [
    ['paro eval ./Qwen3-8B-paro --data wikitext-test.parquet --seq-len 2048 --device cuda', 'perplexity of a quantized model on a Hugging Face parquet split'],
    ['paro eval ./Qwen3-8B-paro --compare ./Qwen3-8B --data eval.jsonl.gz --json', 'quantized vs FP on the same windows: perplexity of both, KL and top-1 agreement, as JSON'],
    ['paro eval --demo', 'the built-in demo model on the built-in text'],
  ]);
  addExamples(quantize, [
    ['paro quantize ./Qwen3-8B --out ./Qwen3-8B-paro --device cuda', 'ParoQuant INT4 with the defaults and the built-in calibration set'],
    ['paro quantize ./Qwen3-8B --out ./Qwen3-8B-paro --calib calib.parquet --samples 512 --seq-len 2048 --max-shard-size 2GB', 'own calibration data, more windows, 2 GB shards'],
    ['paro quantize ./Qwen3-8B --out ./Qwen3-8B-paro --resume', 'continue an interrupted run from ./Qwen3-8B-paro.partial/'],
    ['paro quantize ./Qwen3-8B --out ./Qwen3-8B-rtn --method rtn', 'the round-to-nearest baseline in the same format'],
  ]);
  addExamples(doctor, [['paro doctor --json', 'backends, GPUs and their memory as JSON']]);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  if (await launchIfRequested('paro', argv)) return; // --gpus / --ranks: this process runs the workers
  await runProgram(buildParoProgram(), 'paro', argv);
}
