// `dflash`: DFlash drafter distillation — regenerate responses with the target, train a drafter, evaluate it by real
// speculative decoding. This module maps flags to job settings (src/jobs/) and prints; defaults live in the jobs.
import { Command, Option } from 'commander';
import { gpuList, intOrAuto, nonNegativeInt, nonNegativeNumber, numberOrAuto, positiveInt } from './options.js';
import { deviceForRank, GPUS_HELP, launchIfRequested, RANKS_HELP, rankInfoFromEnv } from './launch.js';
import { createBackend, parseDevice } from '../engine/select.js';
import { openCollectiveFromEnv } from '../engine/open-collective.js';
import { EXIT_CODES, UsageError, UserError } from '../errors.js';
import { DEFAULT_GENERATE_DATA_SETTINGS as GEN, runGenerateData } from '../jobs/generate-data.js';
import { DEFAULT_TRAIN_DRAFTER_SETTINGS as TRAIN, DEFAULT_TRAIN_EVAL as TRAIN_EVAL, runTrainDrafter } from '../jobs/train-drafter.js';
import { DEFAULT_EVAL_DRAFTER_SETTINGS as EVAL, runEvalDrafter } from '../jobs/eval-drafter.js';
import { parseTargetLayerIds } from '../dflash/layer-ids.js';
import { runCommand, runProgram } from './run-command.js';
import { info, Progress, warn } from './progress.js';
import { TOOL_VERSION } from './version.js';
import { addExamples, HELP_GROUPS as G } from './help.js';

const fmt = (x: number | null | undefined, d = 3): string => (x === null || x === undefined || !Number.isFinite(x) ? 'n/a' : x.toFixed(d));
/** Help text of an option whose default the job defines. */
const dflt = (text: string, value: unknown): string => `${text} (default: ${String(value)})`;
const DEVICE_HELP = 'auto, cpu, cuda or cuda:N (default: auto)';
const RUN_INFO = { toolVersion: TOOL_VERSION, argv: ['dflash', ...process.argv.slice(2)] };

interface CommonOpts { device?: string; json?: boolean; debug?: boolean; force?: boolean }

const PROMPTS_HELP = 'prompts: .jsonl, .jsonl.gz or .parquet with {"prompt"}, {"messages": [...]} or {"conversations": [...]} per record ' +
  '(conversations end at their last user turn), or .txt with one prompt per line';

/** Not a data-parallel worker, or its rank 0: the process that prints the --json envelope (one per run, as torchrun shows every rank's stdout). */
const leadRank = (): boolean => (rankInfoFromEnv(process.env)?.rank ?? 0) === 0;

const encodingOf = (o: { chatTemplate: boolean; thinking?: string }): { chatTemplate: 'auto' | 'never'; enableThinking?: boolean } =>
  ({ chatTemplate: o.chatTemplate ? 'auto' : 'never', enableThinking: o.thinking === undefined ? undefined : o.thinking === 'on' });

export function buildDflashProgram(): Command {
  const program = new Command('dflash')
    .description('DFlash block-diffusion drafters: regenerate data with the target, train a drafter, evaluate it by speculative decoding')
    .version(TOOL_VERSION, '-V, --version')
    .showHelpAfterError('(see --help)');

  const generate = program.command('generate-data')
    .description('let the target regenerate the responses of a prompt set (resumable: rerun the same command to continue)')
    .optionsGroup(G.io)
    .requiredOption('--target <model-dir>', 'target model directory (FP, or a paro quantize output)')
    .requiredOption('--prompts <file>', PROMPTS_HELP)
    .requiredOption('--out <file.jsonl>', 'output records {prompt, response, prompt_ids, response_ids}; built in <out>.partial/ until complete')
    .option('--max-prompts <n>', 'only the first n prompts', positiveInt('--max-prompts'))
    .option('--force', 'replace an existing output and discard an unfinished run of other inputs or settings')
    .optionsGroup(G.generation)
    .option('--max-new-tokens <n>', dflt('tokens generated per prompt', GEN.maxNewTokens), positiveInt('--max-new-tokens'))
    .option('--temperature <t>', dflt('sampling temperature (0 = greedy)', GEN.temperature), nonNegativeNumber('--temperature'))
    .option('--ignore-eos', 'do not stop at the end-of-text token')
    .option('--seed <n>', dflt('seed of temperature sampling', GEN.seed), nonNegativeInt('--seed'))
    .option('--batch <n>', dflt('prompts decoded together (one batched target pass per token)', GEN.batch), positiveInt('--batch'))
    .addOption(new Option('--compute-dtype <dtype>', dflt('GEMM precision of the target\'s linear layers and LM head: auto (bf16 on cuda, f32 on cpu), f32, or bf16 (bf16 inputs and weights, f32 results)', GEN.computeDtype)).choices(['auto', 'f32', 'bf16']))
    .optionsGroup(G.encoding)
    .option('--no-chat-template', 'encode prompts as raw text even when the tokenizer has a chat template')
    .addOption(new Option('--thinking <on|off>', 'enable_thinking flag for chat templates that have one').choices(['on', 'off']))
    .optionsGroup(G.device)
    .option('--device <device>', DEVICE_HELP)
    .option('--gpus <list>', GPUS_HELP, gpuList('--gpus'))
    .option('--ranks <n>', RANKS_HELP, positiveInt('--ranks'))
    .optionsGroup(G.format)
    .option('--json', 'print a machine-readable JSON report on stdout')
    .option('--debug', 'show stack traces on errors')
    .action(async (o: CommonOpts & { target: string; prompts: string; out: string; maxNewTokens?: number; temperature?: number; ignoreEos?: boolean; seed?: number; chatTemplate: boolean; thinking?: string; maxPrompts?: number; batch?: number; computeDtype?: 'auto' | 'f32' | 'bf16' }) => {
      await runCommand({ tool: 'dflash', command: 'generate-data', json: o.json && leadRank(), debug: o.debug }, async () => {
        const be = await createBackend(parseDevice(deviceForRank(o.device)), warn);
        // A data-parallel worker (--gpus / --ranks, torchrun) joins its run: each rank generates its share of the prompts.
        const comm = await openCollectiveFromEnv(be);
        let bar: Progress | null = null;
        const { chatTemplate, enableThinking } = encodingOf(o);
        let r;
        try {
          r = runGenerateData(be, {
            targetDir: o.target, promptsFile: o.prompts, outFile: o.out, maxNewTokens: o.maxNewTokens, temperature: o.temperature,
            ignoreEos: o.ignoreEos, seed: o.seed, force: o.force, maxPrompts: o.maxPrompts, batch: o.batch, chatTemplate, enableThinking,
            computeDtype: o.computeDtype,
          }, {
            onProgress: (done, total, tokens) => {
              bar ??= new Progress(comm.worldSize > 1 ? `generate (rank 0's ${total} prompts)` : 'generate', total);
              bar.update(done, { tokens });
            },
          }, RUN_INFO, comm);
        } finally {
          comm.close();
        }
        (bar as Progress | null)?.stop();
        if (!o.json && comm.rank === 0) {
          info(`${r.records} records (${r.generated} generated, ${r.resumed} kept from an earlier run); ${r.responseTokens} response tokens, ${r.stoppedAtEos} stopped at end-of-text`);
          info(`${r.backend} backend (${r.device}), compute dtype ${r.computeDtype}: ${r.seconds.toFixed(1)} s, ${r.tokensPerSecond.toFixed(1)} generated tokens/s; prompts ${r.chatTemplate ? 'with the chat template' : 'as raw text'}`);
          process.stdout.write(`${r.out}\n`);
        }
        return r;
      });
    });

  const train = program.command('train-drafter')
    .description('distill a DFlash drafter from the target on regenerated data and export it (config.json + BF16 model.safetensors)')
    .optionsGroup(G.io)
    .requiredOption('--target <model-dir>', 'target model directory (FP, or a paro quantize output: the drafter then learns the quantized features)')
    .requiredOption('--data <file>', 'training records (.jsonl, .jsonl.gz or .parquet): generate-data output, {"input_ids", "loss_mask"}, {"prompt", "response"}, {"text"}, {"messages": [...]} or {"conversations": [...]}')
    .requiredOption('--out <dir>', 'output drafter directory (built in <dir>.partial/, which holds the checkpoints, until it is complete)')
    .option('--checkpoint-every <steps>', dflt('optimizer steps between checkpoints (0: at epoch ends only)', TRAIN.checkpointEvery), nonNegativeInt('--checkpoint-every'))
    .option('--resume', 'continue the checkpoint of an interrupted run with the same inputs and settings')
    .option('--force', 'replace an existing output of this tool and discard an unfinished run\'s checkpoint')
    .optionsGroup(G.drafter)
    .option('--layers <n|auto>', dflt('draft layers; auto = 5 for targets of 20+ layers, else floor(target layers / 2) (at least 1)', TRAIN.layers), intOrAuto('--layers'))
    .option('--block-size <n>', dflt('block size B (anchor + B−1 drafted tokens)', TRAIN.blockSize), positiveInt('--block-size'))
    .option('--target-layers <auto|i,j,...>', dflt('tapped target layers; auto = the spec formula (5 taps from layer 1 to L−3), or for targets too shallow for it min(5, L−1) distinct layers spread over 0..L−2', TRAIN.targetLayers))
    .option('--mask-token <id|string>', 'mask token: an existing embedding row (default: the first row beyond the tokenizer, else its mask token)')
    .addOption(new Option('--init <how>', dflt('target: start the draft layers as copies of the target\'s last layers, fc/hidden_norm feeding them the deepest tap; random: N(0, 0.02) as the reference trainer', TRAIN.init)).choices(['random', 'target']))
    .optionsGroup(G.training)
    .option('--anchors <n|auto>', dflt('anchors (blocks) per sequence (at most the valid response positions − 1); auto = min(512, half the longest response)', TRAIN.anchors), intOrAuto('--anchors'))
    .option('--gamma <x|auto>', dflt('loss decay γ of exp(−(k−1)/γ); auto = 7/5/4 for B = 16/10/8', TRAIN.gamma), numberOrAuto('--gamma'))
    .option('--epochs <n|auto>', dflt('epochs; auto = 6 (the spec), or as many as make 800 optimizer steps for small data sets (at most 20)', TRAIN.epochs), intOrAuto('--epochs'))
    .option('--lr <x|auto>', dflt('AdamW peak learning rate; auto = 6e-4 × √(4096 / hidden size), between 6e-4 and 3e-3', TRAIN.lr), numberOrAuto('--lr'))
    .option('--warmup <fraction>', dflt('linear warmup as a fraction of all steps, then cosine to 0', TRAIN.warmup), nonNegativeNumber('--warmup'))
    .option('--weight-decay <x>', dflt('AdamW weight decay', TRAIN.weightDecay), nonNegativeNumber('--weight-decay'))
    .option('--seq-len <n>', dflt('truncate sequences to this many tokens', TRAIN.seqLen), positiveInt('--seq-len'))
    .option('--batch <n>', dflt('sequences per optimizer step', TRAIN.batch), positiveInt('--batch'))
    .option('--seed <n>', dflt('seed of initialisation, data order and anchors', TRAIN.seed), nonNegativeInt('--seed'))
    .option('--max-steps <n>', 'stop after n optimizer steps (the schedule still spans all epochs; for quick trials)', positiveInt('--max-steps'))
    .optionsGroup(G.encoding)
    .option('--no-chat-template', 'encode text records and evaluation prompts as raw text even when the tokenizer has a chat template')
    .addOption(new Option('--thinking <on|off>', 'enable_thinking flag for chat templates that have one (text records and evaluation prompts)').choices(['on', 'off']))
    .optionsGroup(G.monitoring)
    .option('--eval-prompts <file>', 'measure τ by speculative decoding on these prompts during training (time reported separately)')
    .option('--eval-every <steps>', dflt('optimizer steps between τ evaluations', TRAIN_EVAL.evalEvery), positiveInt('--eval-every'))
    .option('--eval-max-prompts <n>', 'evaluate on the first n prompts only', positiveInt('--eval-max-prompts'))
    .option('--eval-max-new-tokens <n>', dflt('tokens per evaluation prompt', TRAIN_EVAL.evalMaxNewTokens), positiveInt('--eval-max-new-tokens'))
    .optionsGroup(G.device)
    .option('--device <device>', DEVICE_HELP)
    .option('--feature-cache-mb <n>', dflt('cache the frozen target features in memory up to this size, else recompute them per visit', TRAIN.featureCacheMb), nonNegativeNumber('--feature-cache-mb'))
    .addOption(new Option('--compute-dtype <dtype>', dflt('GEMM precision of the target and the drafter (forward, backward, LM head): auto (bf16 on cuda, f32 on cpu), f32, or bf16 (bf16 inputs and weights cast once per step, f32 results and f32 master weights)', TRAIN.computeDtype)).choices(['auto', 'f32', 'bf16']))
    .option('--gpus <list>', GPUS_HELP, gpuList('--gpus'))
    .option('--ranks <n>', RANKS_HELP, positiveInt('--ranks'))
    .optionsGroup(G.format)
    .option('--json', 'print a machine-readable JSON report on stdout')
    .option('--debug', 'show stack traces on errors')
    .action(async (o: CommonOpts & {
      target: string; data: string; out: string; layers?: number | 'auto'; blockSize?: number; targetLayers?: string; anchors?: number | 'auto'; gamma?: number | 'auto';
      epochs?: number | 'auto'; lr?: number | 'auto'; warmup?: number; weightDecay?: number; seqLen?: number; batch?: number; maskToken?: string; seed?: number;
      checkpointEvery?: number; resume?: boolean; featureCacheMb?: number; evalPrompts?: string; evalEvery?: number; evalMaxPrompts?: number;
      evalMaxNewTokens?: number; maxSteps?: number; init?: 'random' | 'target'; chatTemplate: boolean; thinking?: string;
      computeDtype?: 'auto' | 'f32' | 'bf16';
    }) => {
      await runCommand({ tool: 'dflash', command: 'train-drafter', json: o.json && leadRank(), debug: o.debug }, async () => {
        let targetLayers: 'auto' | number[] | undefined;
        if (o.targetLayers !== undefined && o.targetLayers !== 'auto') {
          try {
            targetLayers = parseTargetLayerIds(o.targetLayers, Number.MAX_SAFE_INTEGER);
          } catch (e) {
            throw new UsageError(`--target-layers: ${(e as Error).message}`);
          }
        } else targetLayers = o.targetLayers;
        const be = await createBackend(parseDevice(deviceForRank(o.device)), warn);
        // A data-parallel worker (--gpus / --ranks, torchrun) joins its run: each rank computes its share of every batch.
        const comm = await openCollectiveFromEnv(be);
        let feat: Progress | null = null;
        let bar: Progress | null = null;
        let r;
        try {
          r = runTrainDrafter(be, {
            targetDir: o.target, dataFile: o.data, outDir: o.out, layers: o.layers, blockSize: o.blockSize, targetLayers,
            anchors: o.anchors, gamma: o.gamma, epochs: o.epochs, lr: o.lr, warmup: o.warmup, weightDecay: o.weightDecay, seqLen: o.seqLen,
            batch: o.batch, maskToken: o.maskToken, seed: o.seed, checkpointEvery: o.checkpointEvery, resume: o.resume, force: o.force,
            featureCacheMb: o.featureCacheMb, evalPrompts: o.evalPrompts, evalEvery: o.evalEvery, evalMaxPrompts: o.evalMaxPrompts,
            evalMaxNewTokens: o.evalMaxNewTokens, maxSteps: o.maxSteps, init: o.init, evalEncoding: encodingOf(o),
            computeDtype: o.computeDtype,
          }, {
            info: (m) => { if (!o.json || process.stderr.isTTY) info(m); },
            warn,
            onFeatures: (d, n) => {
              feat ??= new Progress('target features', n);
              feat.update(d);
              if (d === n) feat.stop();
            },
            onStep: (step, total, s) => {
              bar ??= new Progress('train', total, { fields: { loss: NaN, acc: NaN } });
              bar.update(step, { loss: s.loss, acc: s.acc, lr: s.lr });
            },
            onEval: (e) => info(`step ${e.step}: τ ${fmt(e.tau)} (pooled ${fmt(e.tauPooled)}) over ${e.steps} verify steps, ${e.seconds.toFixed(0)} s`),
          }, RUN_INFO, comm);
        } finally {
          comm.close();
        }
        (bar as Progress | null)?.stop();
        if (!o.json && comm.rank === 0) {
          const d = r.drafter;
          info(`drafter: ${d.layers} layer(s), hidden ${d.hiddenSize}, ${d.heads}/${d.kvHeads} heads, block ${d.blockSize}, taps [${d.targetLayerIds.join(', ')}], mask ${d.maskTokenId}, ${(d.params / 1e6).toFixed(2)} M parameters`);
          info(`${r.dataStats.samples} samples, ${r.steps} steps (${r.settings.epochs} epochs); final loss ${fmt(r.finalLoss, 4)}, accuracy ${fmt(r.finalAcc)}`);
          info(`${r.backend} backend (${r.device}): features ${r.seconds.features.toFixed(1)} s (${r.featureCache}), training ${r.seconds.train.toFixed(1)} s, evaluation ${r.seconds.eval.toFixed(1)} s, total ${r.seconds.total.toFixed(1)} s`);
          process.stdout.write(`${r.out}\n`);
        }
        return r;
      });
    });

  const evaluate = program.command('eval')
    .description('speculative decoding with a drafter: τ (official definition and pooled), acceptance histogram, timings, equality with plain decoding')
    .optionsGroup(G.io)
    .requiredOption('--target <dir>', 'target model directory')
    .requiredOption('--drafter <dir>', 'drafter directory (ours, z-lab or SpecForge format)')
    .requiredOption('--prompts <file>', PROMPTS_HELP)
    .option('--max-prompts <n>', 'only the first n prompts', positiveInt('--max-prompts'))
    .option('--expect <file>', 'a {"generated_ids": [[...], ...]} file the plain greedy outputs must equal (e.g. text/val-prompts-greedy.json)')
    .optionsGroup(G.decoding)
    .option('--max-new-tokens <n>', dflt('tokens generated per prompt', EVAL.maxNewTokens), positiveInt('--max-new-tokens'))
    .option('--temperature <t>', dflt('target sampling temperature (0 = greedy; > 0: drafts stay greedy, the target samples)', EVAL.temperature), nonNegativeNumber('--temperature'))
    .option('--ignore-eos', 'do not stop at the end-of-text token')
    .option('--seed <n>', dflt('seed of temperature sampling', EVAL.seed), nonNegativeInt('--seed'))
    .option('--no-baseline', 'skip plain target decoding (no equality check, no speedup)')
    .addOption(new Option('--weight-dtype <dtype>', dflt('target weights as stored (native: bf16/f16 GEMMs and tensor-core attention on the GPU) or f32 (f32 weights and f32 arithmetic throughout: the PyTorch FP32 protocol on any backend; the cpu computes in f32 either way)', EVAL.weightDtype)).choices(['native', 'f32']))
    .addOption(new Option('--compute-dtype <dtype>', dflt('GEMM precision of the target\'s and the drafter\'s linear layers and LM head: auto (bf16 on cuda, f32 on cpu and with --weight-dtype f32), f32, or bf16 (bf16 inputs and weights, f32 results)', EVAL.computeDtype)).choices(['auto', 'f32', 'bf16']))
    .optionsGroup(G.encoding)
    .option('--no-chat-template', 'encode prompts as raw text even when the tokenizer has a chat template')
    .addOption(new Option('--thinking <on|off>', 'enable_thinking flag for chat templates that have one').choices(['on', 'off']))
    .optionsGroup(G.device)
    .option('--device <device>', DEVICE_HELP)
    .optionsGroup(G.format)
    .option('--json', 'print a machine-readable JSON report on stdout')
    .option('--debug', 'show stack traces on errors')
    .action(async (o: CommonOpts & { target: string; drafter: string; prompts: string; maxNewTokens?: number; temperature?: number; ignoreEos?: boolean; seed?: number; maxPrompts?: number; baseline: boolean; expect?: string; weightDtype?: 'native' | 'f32'; computeDtype?: 'auto' | 'f32' | 'bf16'; chatTemplate: boolean; thinking?: string }) => {
      await runCommand({ tool: 'dflash', command: 'eval', json: o.json, debug: o.debug }, async (ctx) => {
        const be = await createBackend(parseDevice(o.device ?? 'auto'), warn);
        let bar: Progress | null = null;
        const { chatTemplate, enableThinking } = encodingOf(o);
        const r = runEvalDrafter(be, {
          targetDir: o.target, drafterDir: o.drafter, promptsFile: o.prompts, maxNewTokens: o.maxNewTokens, temperature: o.temperature,
          seed: o.seed, ignoreEos: o.ignoreEos, maxPrompts: o.maxPrompts, baseline: o.baseline, expectFile: o.expect, weightDtype: o.weightDtype,
          computeDtype: o.computeDtype, chatTemplate, enableThinking,
        }, {
          onPrompt: (done, total, tau) => {
            bar ??= new Progress('eval prompts', total);
            bar.update(done, { tau });
          },
        });
        (bar as Progress | null)?.stop();
        ctx.result = r;
        if (!o.json) {
          info(`drafter ${r.drafter}: ${r.drafterLayers} layer(s), block ${r.blockSize}, taps [${r.targetLayerIds.join(', ')}]; ${r.promptCount} prompts, ${r.maxNewTokens} new tokens, T = ${r.temperature}`);
          info(`τ ${fmt(r.tau)} (mean over prompts of each prompt's mean acceptance length, bonus counted); pooled ${fmt(r.tauPooled)} over ${r.verifySteps} verify steps`);
          info(`acceptance histogram (1..${r.blockSize} tokens per step): ${r.histogram.map((h) => h.toFixed(3)).join(' ')}`);
          if (r.equalOutputs !== null) info(`outputs equal to plain decoding: ${r.equalOutputs} / ${r.promptCount}`);
          if (r.expectedMatches !== null) info(`outputs equal to ${o.expect}: ${r.expectedMatches} / ${r.promptCount}`);
          info(`draft ${r.draftSeconds.toFixed(2)} s, verify ${r.verifySeconds.toFixed(2)} s; TPOT ${(r.specTpot * 1000).toFixed(2)} ms` +
            (r.baselineTpot !== null ? ` vs ${(r.baselineTpot * 1000).toFixed(2)} ms plain (speedup ${fmt(r.speedup, 2)}×)` : '') + ` on ${r.backend} (${r.device}), compute dtype ${r.computeDtype}`);
          process.stdout.write(`tau ${fmt(r.tau)} pooled ${fmt(r.tauPooled)}\n`);
        }
        if (r.equalOutputs !== null && r.equalOutputs < r.promptCount) {
          throw new UserError(`speculative decoding differed from plain decoding on ${r.promptCount - r.equalOutputs} of ${r.promptCount} prompts`, { exitCode: EXIT_CODES.internal });
        }
        return r;
      });
    });

  addExamples(generate, [
    ['dflash generate-data --target ./Qwen3-8B --prompts prompts.jsonl --out data.jsonl --max-new-tokens 2048 --thinking off --device cuda',
      'regenerate the responses of a prompt set with the target (rerun the same line to continue after a kill)'],
    ['dflash generate-data --target ./qwen3-8b-paro --prompts ultrachat.parquet --out data.jsonl --max-prompts 1000',
      'prompts from a Hugging Face parquet file, answered by a paro quantize output'],
  ]);
  addExamples(train, [
    ['dflash train-drafter --target ./Qwen3-8B --data data.jsonl --out qwen3-8b-dflash --device cuda',
      'train a drafter with the spec\'s defaults (5 layers, block 16) on generate-data records'],
    ['dflash train-drafter --target ./qwen3-8b-paro --data chats.jsonl.gz --out drafter --eval-prompts val.jsonl --eval-every 200',
      'chat records rendered with the target\'s template; τ measured every 200 steps'],
    ['dflash train-drafter --target ./model --data data.jsonl --out drafter --resume', 'continue an interrupted run from its last checkpoint'],
  ]);
  addExamples(evaluate, [
    ['dflash eval --target ./Qwen3-8B --drafter qwen3-8b-dflash --prompts gsm8k.jsonl --max-new-tokens 512 --device cuda',
      'τ and speedup by real speculative decoding (the outputs must equal plain decoding)'],
    ['dflash eval --target ./model --drafter ./drafter --prompts prompts.txt --no-baseline --json', 'τ only, as a JSON report'],
  ]);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  if (await launchIfRequested('dflash', argv)) return; // --gpus / --ranks: this process runs the workers
  await runProgram(buildDflashProgram(), 'dflash', argv);
}
