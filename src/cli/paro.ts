// `paro`: ParoQuant INT4 quantization and quantized-model evaluation.
import { Command, InvalidArgumentError } from 'commander';
import { createBackend, parseDevice } from '../engine/select.js';
import { runEval } from './eval.js';
import { DEFAULT_CALIB_FILE, DEMO_MODEL_DIR } from './paths.js';
import { printJson, runCommand } from './run-command.js';
import { info, warn } from './progress.js';
import { TOOL_VERSION } from './version.js';
import { runDoctor } from './doctor.js';
import { UserError } from '../errors.js';

export function positiveInt(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive integer, got "${v}"`);
    return n;
  };
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
        const r = runEval(be, { modelDir: dir, dataFile: data, seqLen: o.seqLen, maxWindows, batch: o.batch }, !o.json || process.stderr.isTTY);
        if (o.json) printJson(r);
        else {
          info(`perplexity ${r.ppl.toFixed(4)} on ${r.windows} windows × ${r.seqLen} tokens (${r.tokens} predictions) of ${r.data}`);
          info(`${r.backend} backend (${r.device}): ${r.seconds.toFixed(1)} s, ${Math.round(r.tokensPerSecond)} tokens/s`);
          process.stdout.write(`ppl ${r.ppl.toFixed(4)}\n`);
        }
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
