// `paro`: ParoQuant INT4 quantization and quantized-model evaluation.
import { Command } from 'commander';
import { nonNegativeInt, positiveInt } from './options.js';
import { createBackend, parseDevice } from '../engine/select.js';
import { runEval } from './eval.js';
import { DEFAULT_CALIB_FILE, DEMO_MODEL_DIR } from './paths.js';
import { printJson, runCommand } from './run-command.js';
import { info, warn } from './progress.js';
import { TOOL_VERSION } from './version.js';
import { runDoctor } from './doctor.js';
import { resolveComputeDtype, runQuantize, quantizeSettings, type QuantizeCliOptions } from './quantize.js';
import { UserError } from '../errors.js';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

/** True when dir is the output of an earlier `paro quantize --demo` (its manifest names the embedded demo model). */
function isDemoOutput(dir: string): boolean {
  const manifest = path.join(dir, 'manifest.json');
  if (!existsSync(manifest)) return false;
  try {
    const m = JSON.parse(readFileSync(manifest, 'utf8')) as { inputs?: { model?: string } };
    return m.inputs?.model !== undefined && path.resolve(m.inputs.model) === path.resolve(DEMO_MODEL_DIR);
  } catch {
    return false;
  }
}

export function buildParoProgram(): Command {
  const program = new Command('paro')
    .description('ParoQuant: INT4 quantization with pairwise rotations, and evaluation of the result')
    .version(TOOL_VERSION, '-V, --version')
    .showHelpAfterError(true);

  program.command('eval')
    .description('perplexity of a model directory (FP16/BF16 or ParoQuant INT4) on a text file')
    .argument('[model-dir]', 'Hugging Face model directory (config.json, *.safetensors, tokenizer.json)')
    .option('--data <file>', 'text data: .jsonl with {"text": ...} per line, .json, or .txt')
    .option('--seq-len <n>', 'tokens per window', positiveInt('--seq-len'), 512)
    .option('--max-windows <n>', 'at most this many windows', positiveInt('--max-windows'), 400)
    .option('--batch <n>', 'windows per forward pass', positiveInt('--batch'), 4)
    .option('--device <device>', 'auto, cpu, cuda or cuda:N', 'auto')
    .option('--demo', 'use the built-in demo model and text')
    .option('--json', 'print a machine-readable JSON report on stdout')
    .option('--debug', 'show stack traces on errors')
    .action(async (modelDir: string | undefined, o: { data?: string; seqLen: number; maxWindows: number; batch: number; device: string; demo?: boolean; json?: boolean; debug?: boolean }) => {
      await runCommand(!!o.debug, async () => {
        const dir = modelDir ?? (o.demo ? DEMO_MODEL_DIR : undefined);
        const data = o.data ?? (o.demo ? DEFAULT_CALIB_FILE : undefined);
        if (!dir) throw new UserError('missing <model-dir> (or pass --demo)');
        if (!data) throw new UserError('missing --data <file> (or pass --demo)');
        const maxWindows = o.demo && o.maxWindows === 400 ? 32 : o.maxWindows;
        const be = await createBackend(parseDevice(o.device), warn);
        const r = runEval(be, { modelDir: dir, dataFile: data, seqLen: o.seqLen, maxWindows, batch: o.batch }, true);
        if (o.json) printJson(r);
        else {
          info(`perplexity ${r.ppl.toFixed(4)} on ${r.windows} windows × ${r.seqLen} tokens (${r.tokens} predictions) of ${r.data}`);
          info(`${r.backend} backend (${r.device}): ${r.seconds.toFixed(1)} s, ${Math.round(r.tokensPerSecond)} tokens/s`);
          process.stdout.write(`ppl ${r.ppl.toFixed(4)}\n`);
        }
      });
    });

  program.command('quantize')
    .description('quantize an FP16/BF16 checkpoint to INT4 with ParoQuant (or the RTN baseline)')
    .argument('[model-dir]', 'Hugging Face model directory (Llama, Qwen2, Qwen3)')
    .option('--out <dir>', 'output directory (written atomically; must not exist unless --force)')
    .option('--calib <file>', 'calibration text (.jsonl {"text"} / .json / .txt); default: the built-in set in calib/')
    .option('--samples <n>', 'calibration windows for training', positiveInt('--samples'), 128)
    .option('--seq-len <n>', 'tokens per calibration window', positiveInt('--seq-len'), 512)
    .option('--val-samples <n>', 'windows after the training ones, for best-epoch selection', positiveInt('--val-samples'), 16)
    .option('--epochs <a,b>', 'epochs of stage 1 (angles, channel scales) and stage 2 (weights, quantizer)', '10,10')
    .option('--bits <n>', 'weight bits', positiveInt('--bits'), 4)
    .option('--group-size <n>', 'input channels per quantization group', positiveInt('--group-size'), 128)
    .option('--krot <n>', 'Givens rotation layers per linear (the official CUDA runtime supports 1 and 8)', positiveInt('--krot'), 8)
    .option('--method <m>', 'paro (ParoQuant) or rtn (round-to-nearest baseline, same format)', 'paro')
    .option('--seed <n>', 'seed (rotation pairs of block l use seed + l)', nonNegativeInt('--seed'), 0)
    .option('--batch-size <n>', 'calibration windows per optimizer step', positiveInt('--batch-size'), 16)
    .option('--shuffle', 'draw the calibration windows from a seeded permutation instead of the first ones')
    .option('--device <device>', 'auto, cpu, cuda or cuda:N', 'auto')
    .option('--compute-dtype <dtype>', 'dtype of block activations and GEMMs during optimization: auto (bf16 on cuda, f32 on cpu), f32 or bf16', 'auto')
    .option('--activations <where>', 'calibration activations: auto (on the GPU when they fit), device, or host (streamed from page-locked host memory)', 'auto')
    .option('--angle-gradient <g>', 'exact (default) or upstream: upstream main\'s derivative-at-2θ, for A/B comparisons only', 'exact')
    .option('--resume', 'continue an interrupted run from its last finished block')
    .option('--force', 'overwrite an existing output directory')
    .option('--demo', 'quantize the built-in demo model with the built-in calibration set (small settings), then evaluate it')
    .option('--json', 'print a machine-readable JSON report on stdout')
    .option('--debug', 'show stack traces on errors')
    .action(async (modelDir: string | undefined, o: QuantizeCliOptions & { device: string; computeDtype: string; angleGradient: string; demo?: boolean; json?: boolean; debug?: boolean }) => {
      await runCommand(!!o.debug, async () => {
        const demo = !!o.demo;
        const dir = modelDir ?? (demo ? DEMO_MODEL_DIR : undefined);
        if (!dir) throw new UserError('missing <model-dir> (or pass --demo)');
        const opts = { ...o };
        if (demo) {
          opts.out = o.out ?? 'paro-demo-out';
          // Small defaults so the demo finishes in a minute or two on a laptop cpu.
          if (o.samples === 128) opts.samples = 32;
          if (o.valSamples === 16) opts.valSamples = 8;
          if (o.epochs === '10,10') opts.epochs = '4,2';
          // Rerunning the demo replaces its own previous output, nothing else: a folder of that name made otherwise needs --force.
          if (opts.out === 'paro-demo-out' && isDemoOutput(opts.out)) opts.force = true;
        }
        const settings = quantizeSettings(dir, o.calib ?? DEFAULT_CALIB_FILE, opts);
        if (settings.krot !== 1 && settings.krot !== 8) warn(`--krot ${settings.krot}: the official ParoQuant CUDA runtime kernels are built for K = 1 and 8 only`);
        const be = await createBackend(parseDevice(o.device), warn);
        settings.optimizer.computeDtype = resolveComputeDtype(o.computeDtype, be.name);
        if (o.angleGradient !== 'exact' && o.angleGradient !== 'upstream') throw new UserError(`--angle-gradient must be exact or upstream, got "${o.angleGradient}"`);
        settings.optimizer.angleGradient = o.angleGradient;
        const showProgress = true; // on stderr: line-based off a terminal, silenced by PARO_QUIET=1
        const r = await runQuantize(be, settings, showProgress);
        const report: Record<string, unknown> = { ...r };
        delete report.effective;
        if (demo) {
          // Held-out text: the windows after the ones used for calibration and validation.
          const startToken = (settings.samples + settings.valSamples) * settings.seqLen;
          const ev = { dataFile: DEFAULT_CALIB_FILE, seqLen: 512, maxWindows: 16, batch: 4, startToken };
          const fp = runEval(be, { modelDir: dir, ...ev }, false);
          const q = runEval(be, { modelDir: settings.outDir, ...ev }, false);
          report.demo = { fpPpl: fp.ppl, quantizedPpl: q.ppl, windows: q.windows, startToken };
          if (!o.json) info(`demo: perplexity on ${q.windows} held-out windows of the built-in text: FP ${fp.ppl.toFixed(4)}, ParoQuant W${settings.optimizer.grid.bits} ${q.ppl.toFixed(4)}`);
        }
        if (o.json) printJson(report);
        else info(`wrote ${settings.outDir} (${r.blocks.length} blocks, ${r.seconds.toFixed(1)} s on ${r.backend})`);
      });
    });

  program.command('doctor')
    .description('report the available backends, GPUs and their memory')
    .option('--json', 'print a machine-readable JSON report on stdout')
    .option('--debug', 'show stack traces on errors')
    .action(async (o: { json?: boolean; debug?: boolean }) => {
      await runCommand(!!o.debug, async () => {
        const r = await runDoctor();
        if (o.json) printJson(r);
        else process.stdout.write(r.lines.join('\n') + '\n');
      });
    });

  return program;
}

export async function main(argv: string[]): Promise<void> {
  await buildParoProgram().parseAsync(argv);
}
