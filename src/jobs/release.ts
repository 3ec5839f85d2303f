// `paro release`: one resumable, idempotent run from a source checkpoint to a verified bundle. Stages: resolve the
// source → quantize → gates (eval --compare: FP vs quantized perplexity, KL, top-1) → optional drafter (generate-data
// with the quantized target, train-drafter on it, eval → τ) → bundle (model/, drafter/, README.md card, manifest.json).
// The bundle is built in `<out>.partial/` (io/run-dir) and renamed onto `<out>` only when every gate passed. Stage
// outputs go to `<stages>/` (work_dir, default `<out>.partial/stages/`); progress.json of the partial lists each
// finished stage with its key (a hash of its settings, inputs and the keys of the stages it reads) and its manifest's
// sha256, so a rerun skips finished stages whose key is unchanged, continues the unfinished one (the stage jobs resume
// themselves), and a rerun after success does nothing.
import * as fs from 'node:fs';
import path from 'node:path';
import type { Backend } from '../engine/backend.js';
import { GateError, UserError } from '../errors.js';
import { loadModelConfig } from '../io/config.js';
import { fingerprint, sha256File } from '../io/hash.js';
import type { ResolvedSource } from '../io/hf-source.js';
import { createManifest, describeInput, inputIdentity, readToolManifest, MANIFEST_FILE, type ManifestInput } from '../io/manifest.js';
import type { ReleaseConfig } from '../io/release-config.js';
import { openRunDir, PARTIAL_SUFFIX, sidecarManifest, type RunDir } from '../io/run-dir.js';
import type { RunInfo } from './defaults.js';
import { resolveEvalSettings, runEvalJob, type EvalHooks, type EvalReport } from './eval.js';
import { runEvalDrafter, type EvalDrafterHooks, type EvalDrafterReport } from './eval-drafter.js';
import { runGenerateData, type GenerateDataHooks, type GenerateDataReport } from './generate-data.js';
import { detectLicense, renderModelCard, type CardGate, type ModelCardInput } from './model-card.js';
import { describeModelDir } from './model-input.js';
import { resolveQuantizeSettings, runQuantizeJob, type QuantizeHooks, type QuantizeSettings } from './quantize.js';
import { runTrainDrafter, type TrainDrafterHooks, type TrainDrafterReport } from './train-drafter.js';

export type StageName = 'quantize' | 'eval' | 'generate' | 'train' | 'drafter-eval';

export interface ReleaseJob {
  config: ReleaseConfig;
  source: ResolvedSource;
  /** Calibration text when quantize.calib is not set (the built-in set). */
  defaultCalibFile: string;
  /** Replace an existing bundle of other settings at out. */
  force: boolean;
  run: RunInfo;
}

export interface ReleaseHooks {
  onInfo?: (msg: string) => void;
  onWarn?: (msg: string) => void;
  onStageStart?: (stage: StageName) => void;
  /** After a stage finished and was recorded (also for reused ones): a kill here leaves a resumable partial. */
  onStageEnd?: (stage: StageName, reused: boolean) => void;
  quantize?: QuantizeHooks;
  /** Progress of the other stage jobs. */
  eval?: EvalHooks;
  generate?: GenerateDataHooks;
  train?: TrainDrafterHooks;
  drafterEval?: EvalDrafterHooks;
  /** The gates checked so far and the figures, before a failing one stops the release (the CLI keeps them for --json). */
  onGates?: (gates: GateResult[], metrics: ReleaseMetrics, stages: ReleaseReport['stages']) => void;
}

export interface GateResult extends CardGate {
  /** Where the value came from. */
  stage: StageName;
}

export interface ReleaseReport {
  command: 'release';
  out: string;
  /** True when the bundle at out was already complete with these settings and inputs. */
  nothingToDo: boolean;
  manifestSha256: string;
  source: ResolvedSource;
  stages: { name: StageName; reused: boolean; seconds: number }[];
  metrics: ReleaseMetrics;
  gates: GateResult[];
  /** Bundle files (relative to out). */
  files: string[];
  backend: string;
  device: string;
  seconds: number;
}

export interface ReleaseMetrics {
  evalData?: string;
  evalWindows?: number;
  evalSeqLen?: number;
  fpPpl?: number;
  quantizedPpl?: number;
  pplIncrease?: number;
  kl?: number;
  top1Agreement?: number;
  tau?: number;
  tauPooled?: number;
  drafterPrompts?: number;
}

interface StageRecord {
  key: string;
  seconds: number;
  /** sha256 of the stage's manifest (quantize, generate, train) or report file (eval, drafter-eval). */
  manifestSha256: string;
  /** The figures later stages, the gates and the card read. */
  figures: Record<string, unknown>;
}

interface ReleaseProgress {
  stages: Partial<Record<StageName, StageRecord>>;
}

/** The release's key: what a finished bundle was made from (stage keys, bundle settings, gates). */
interface Keys {
  stages: Partial<Record<StageName, string>>;
  release: string;
}

const QUANTIZED = 'quantize';
const DRAFTER = 'drafter';
const DATA = 'drafter-data.jsonl';
const EVAL_FILE = 'eval.json';
const DRAFTER_EVAL_FILE = 'drafter-eval.json';

/** The quantize settings of the config (undefined keys take the quantize job's defaults). */
export function releaseQuantizeSettings(c: ReleaseConfig): QuantizeSettings {
  const q = c.quantize;
  const partial: Partial<QuantizeSettings> = {
    method: q.method, bits: q.bits, groupSize: q.group_size, krot: q.krot, samples: q.samples, valSamples: q.val_samples,
    seqLen: q.seq_len, epochs: q.epochs, shuffle: q.shuffle, batchSize: q.batch_size, computeDtype: q.compute_dtype,
    activations: q.activations, seed: c.seed,
  };
  return resolveQuantizeSettings(partial);
}

function identity(role: string, p: string | undefined): unknown {
  return p === undefined ? null : inputIdentity(describeInput(role, p));
}

/** Keys of every stage the config runs: a stage's key changes when anything it reads changes. */
function stageKeys(c: ReleaseConfig, sourceId: unknown, calibFile: string, backend: string): Keys {
  const stages: Partial<Record<StageName, string>> = {};
  const q = releaseQuantizeSettings(c);
  stages.quantize = fingerprint({
    stage: 'quantize', source: sourceId, calib: q.method === 'paro' ? identity('calib', calibFile) : null, settings: q,
    maxShardSize: c.bundle.max_shard_size, backend,
  });
  if (c.eval.data) stages.eval = fingerprint({ stage: 'eval', quantize: stages.quantize, data: identity('eval data', c.eval.data), settings: { ...c.eval, data: undefined } });
  if (c.drafter.enabled && c.drafter.prompts) {
    const prompts = identity('prompts', c.drafter.prompts);
    stages.generate = fingerprint({ stage: 'generate', quantize: stages.quantize, prompts, settings: c.drafter.generate, seed: c.seed });
    stages.train = fingerprint({ stage: 'train', generate: stages.generate, settings: c.drafter.train, seed: c.seed });
    const evalPrompts = c.drafter.eval.prompts ? identity('drafter eval prompts', c.drafter.eval.prompts) : prompts;
    stages['drafter-eval'] = fingerprint({ stage: 'drafter-eval', train: stages.train, prompts: evalPrompts, settings: { ...c.drafter.eval, prompts: undefined } });
  }
  // The bundle also shows the gates, the bundle settings and where the source came from (card, manifest).
  const release = fingerprint({ stages, gates: c.gates, bundle: c.bundle, source: c.source });
  return { stages, release };
}

function gateResults(c: ReleaseConfig, m: ReleaseMetrics, upTo: 'eval' | 'drafter-eval'): GateResult[] {
  const out: GateResult[] = [];
  const g = c.gates;
  const add = (name: string, value: number | undefined, limit: number | undefined, stage: StageName, min: boolean) => {
    if (limit === undefined || value === undefined) return;
    out.push({ name, value, limit, passed: min ? value >= limit : value <= limit, stage });
  };
  add('max_ppl_increase', m.pplIncrease, g.max_ppl_increase, 'eval', false);
  add('max_kl', m.kl, g.max_kl, 'eval', false);
  add('min_top1_agreement', m.top1Agreement, g.min_top1_agreement, 'eval', true);
  if (upTo === 'drafter-eval') add('min_tau', m.tau, g.min_tau, 'drafter-eval', true);
  return out;
}

/** Fails with exit code 3 on the first failed gate: one line naming the gate, its value and its limit. */
function enforce(gates: GateResult[], partial: string): void {
  const bad = gates.find((x) => !x.passed);
  if (!bad) return;
  const op = bad.name.startsWith('min_') ? '≥' : '≤';
  throw new GateError(bad.name, bad.value, bad.limit,
    `quality gate ${bad.name} failed: ${fmtGate(bad.value)} (limit ${op} ${fmtGate(bad.limit)}); no bundle written, the stage outputs stay in ${partial}`);
}

function fmtGate(x: number): string {
  return Math.abs(x) < 1e-3 && x !== 0 ? x.toExponential(3) : String(Number(x.toFixed(6)));
}

function writeJson(file: string, value: unknown): string {
  fs.writeFileSync(file + '.tmp', JSON.stringify(value, null, 2) + '\n');
  fs.renameSync(file + '.tmp', file);
  return sha256File(file);
}

/** Hard-link (same file system) or copy every regular file of src into dst, recursively. */
function linkTree(src: string, dst: string): void {
  fs.mkdirSync(dst, { recursive: true });
  for (const e of fs.readdirSync(src, { withFileTypes: true })) {
    const from = path.join(src, e.name);
    const to = path.join(dst, e.name);
    if (e.isDirectory()) linkTree(from, to);
    else if (e.isFile()) {
      try {
        fs.linkSync(from, to);
      } catch {
        fs.copyFileSync(from, to);
      }
    }
  }
}

/** A licence file of the source, following a Hugging Face cache link into its blobs; null when absent. */
function sourceFile(dir: string, name: string): string | null {
  try {
    const real = fs.realpathSync(path.join(dir, name));
    return fs.statSync(real).isFile() ? real : null;
  } catch {
    return null;
  }
}

export async function runRelease(be: Backend, job: ReleaseJob, hooks: ReleaseHooks = {}): Promise<ReleaseReport> {
  const t0 = performance.now();
  const c = job.config;
  const info = hooks.onInfo ?? (() => {});
  const out = path.resolve(c.out);
  const calibFile = c.quantize.calib ?? job.defaultCalibFile;
  const sourceInput = describeModelDir('source', job.source.dir);
  const keys = stageKeys(c, inputIdentity(sourceInput), calibFile, be.name);

  // A finished bundle of the same key: nothing to do.
  const done = readToolManifest(out);
  if (done && done.command === 'release') {
    const settings = done.settings as { releaseKey?: string } | undefined;
    const sha = sha256File(path.join(out, MANIFEST_FILE));
    if (settings?.releaseKey === keys.release) {
      info(`release ${out} is complete (manifest sha ${sha.slice(0, 12)}); nothing to do`);
      return finishedReport(out, sha, done, job.source, be, t0);
    }
    if (!job.force) throw new UserError('holds a release made with other settings or inputs; pass --force to replace it', { file: out });
  }

  const inputs: Record<string, string> = { source: job.source.dir };
  if (c.quantize.calib) inputs.calib = c.quantize.calib;
  if (c.eval.data) inputs['eval data'] = c.eval.data;
  if (c.drafter.enabled && c.drafter.prompts) inputs.prompts = c.drafter.prompts;
  // The partial is always continued: the stage keys decide what is reused.
  const rd = openRunDir({ out, kind: 'dir', tool: 'paro', command: 'release', inputs, force: job.force, resume: true, fingerprint: { release: 1 } });
  try {
    return await inRunDir(rd);
  } catch (e) {
    rd.release(); // stage outputs stay for the rerun (and for inspection after a failed gate)
    throw e;
  }

  async function inRunDir(run: RunDir): Promise<ReleaseReport> {
    const stagesDir = c.work_dir ? path.resolve(c.work_dir) : run.path('stages');
    fs.mkdirSync(stagesDir, { recursive: true });
    const progress: ReleaseProgress = run.readProgress<ReleaseProgress>() ?? { stages: {} };
    if (typeof progress !== 'object' || progress === null || typeof progress.stages !== 'object') {
      throw new UserError('is corrupt; remove the partial folder to start over', { file: run.path('progress.json') });
    }
    const report: ReleaseReport['stages'] = [];
    const stageDir = (n: string) => path.join(stagesDir, n);

    /** Run a stage unless its record has the same key; returns its figures. */
    async function stage(name: StageName, outputs: string[], body: () => Promise<{ manifestFile: string; figures: Record<string, unknown> }>): Promise<Record<string, unknown>> {
      const key = keys.stages[name] as string;
      const rec = progress.stages[name];
      // Reused only while its outputs are still there (a work_dir moved or cleaned between runs redoes the stage).
      if (rec && rec.key === key && outputs.every((o) => fs.existsSync(o))) {
        report.push({ name, reused: true, seconds: rec.seconds });
        info(`${name}: done earlier (reused)`);
        hooks.onStageEnd?.(name, true);
        return rec.figures;
      }
      // The key the stage's outputs on disk were started with (a run killed before recording a stage leaves them).
      const marker = path.join(stagesDir, `${name}.key`);
      const started = fs.existsSync(marker) ? fs.readFileSync(marker, 'utf8').trim() : null;
      if (rec || started !== key) {
        // Its inputs or settings changed, or outputs of unknown origin: start the stage over (its partial too).
        for (const o of outputs) for (const p of [o, o + PARTIAL_SUFFIX, sidecarManifest(o)]) fs.rmSync(p, { recursive: true, force: true });
        delete progress.stages[name];
        fs.writeFileSync(marker, key + '\n');
      }
      hooks.onStageStart?.(name);
      info(`${name}: running`);
      const ts = performance.now();
      const r = await body();
      const seconds = (performance.now() - ts) / 1000;
      progress.stages[name] = { key, seconds, manifestSha256: sha256File(r.manifestFile), figures: r.figures };
      run.writeProgress(progress);
      report.push({ name, reused: false, seconds });
      hooks.onStageEnd?.(name, false);
      return r.figures;
    }

    const metrics: ReleaseMetrics = {};
    const quantized = stageDir(QUANTIZED);

    // ── quantize ──
    await stage('quantize', [quantized], async () => {
      // Finished by an earlier run that was killed before recording it: its manifest says so.
      if (!readToolManifest(quantized)) {
        await runQuantizeJob(be, {
          modelDir: job.source.dir, outDir: quantized, calibFile, settings: releaseQuantizeSettings(c), resume: fs.existsSync(quantized + PARTIAL_SUFFIX), force: false,
          toolVersion: job.run.toolVersion ?? 'unknown', argv: job.run.argv, maxShardSize: c.bundle.max_shard_size,
        }, hooks.quantize ?? { onInfo: info, onWarn: hooks.onWarn });
      }
      return { manifestFile: path.join(quantized, MANIFEST_FILE), figures: {} };
    });

    // ── gates on the quantized model ──
    if (c.eval.data) {
      const evalFile = stageDir(EVAL_FILE);
      const f = await stage('eval', [evalFile], async () => {
        const settings = resolveEvalSettings({ seqLen: c.eval.seq_len, maxWindows: c.eval.max_windows, batch: c.eval.batch });
        const r: EvalReport = runEvalJob(be, { modelDir: quantized, dataFile: c.eval.data as string, settings, compareDir: job.source.dir }, hooks.eval);
        writeJson(evalFile, r);
        const cmp = r.compare;
        if (!cmp) throw new Error('internal: eval --compare returned no comparison');
        return {
          manifestFile: evalFile,
          figures: {
            evalData: path.basename(r.data), evalWindows: r.windows, evalSeqLen: r.seqLen, fpPpl: cmp.fpPpl, quantizedPpl: r.ppl,
            pplIncrease: cmp.pplIncrease, kl: cmp.kl, top1Agreement: cmp.top1Agreement,
          },
        };
      });
      Object.assign(metrics, f);
    }
    const early = gateResults(c, metrics, 'eval');
    hooks.onGates?.(early, metrics, report);
    enforce(early, run.partial);

    // ── drafter ──
    let trainFigures: Record<string, unknown> | null = null;
    if (c.drafter.enabled && c.drafter.prompts) {
      const prompts = c.drafter.prompts;
      const data = stageDir(DATA);
      const drafter = stageDir(DRAFTER);
      const g = c.drafter.generate;
      await stage('generate', [data], async () => {
        if (!fs.existsSync(sidecarManifest(data))) {
          const r: GenerateDataReport = runGenerateData(be, {
            targetDir: quantized, promptsFile: prompts, outFile: data, maxNewTokens: g.max_new_tokens, temperature: g.temperature,
            maxPrompts: g.max_prompts, batch: g.batch, ignoreEos: g.ignore_eos, seed: c.seed,
            chatTemplate: g.chat_template === false ? 'never' : 'auto',
          }, hooks.generate ?? {}, job.run);
          info(`generate: ${r.records} records, ${r.responseTokens} response tokens`);
        }
        return { manifestFile: sidecarManifest(data), figures: {} };
      });
      const t = c.drafter.train;
      trainFigures = await stage('train', [drafter], async () => {
        let r: TrainDrafterReport | null = null;
        if (!readToolManifest(drafter)) {
          r = runTrainDrafter(be, {
            targetDir: quantized, dataFile: data, outDir: drafter, layers: t.layers, blockSize: t.block_size,
            targetLayers: t.target_layers, anchors: t.anchors, gamma: t.gamma, epochs: t.epochs, lr: t.lr, warmup: t.warmup,
            weightDecay: t.weight_decay, seqLen: t.seq_len, batch: t.batch,
            maskToken: t.mask_token === undefined ? undefined : String(t.mask_token), checkpointEvery: t.checkpoint_every,
            featureCacheMb: t.feature_cache_mb, maxSteps: t.max_steps, seed: c.seed, resume: fs.existsSync(drafter + PARTIAL_SUFFIX),
          }, hooks.train ?? { info, warn: hooks.onWarn }, job.run);
        }
        const dcfg = JSON.parse(fs.readFileSync(path.join(drafter, 'config.json'), 'utf8')) as { num_hidden_layers?: number; block_size?: number; dflash_config?: { target_layer_ids?: number[] } };
        return {
          manifestFile: path.join(drafter, MANIFEST_FILE),
          figures: {
            layers: r?.drafter.layers ?? dcfg.num_hidden_layers, blockSize: r?.drafter.blockSize ?? dcfg.block_size,
            targetLayerIds: r?.drafter.targetLayerIds ?? dcfg.dflash_config?.target_layer_ids ?? [],
          },
        };
      });
      const e = c.drafter.eval;
      const evalPrompts = e.prompts ?? prompts;
      const dEvalFile = stageDir(DRAFTER_EVAL_FILE);
      const f = await stage('drafter-eval', [dEvalFile], async () => {
        const r: EvalDrafterReport = runEvalDrafter(be, {
          targetDir: quantized, drafterDir: drafter, promptsFile: evalPrompts, maxNewTokens: e.max_new_tokens, maxPrompts: e.max_prompts,
          temperature: e.temperature, seed: c.seed, baseline: false,
        }, hooks.drafterEval ?? {});
        writeJson(dEvalFile, r);
        return { manifestFile: dEvalFile, figures: { tau: r.tau, tauPooled: r.tauPooled, drafterPrompts: r.promptCount, maxNewTokens: r.maxNewTokens, temperature: r.temperature } };
      });
      Object.assign(metrics, { tau: f.tau, tauPooled: f.tauPooled, drafterPrompts: f.drafterPrompts });
      trainFigures = { ...trainFigures, tauData: `${String(f.drafterPrompts)} prompts of ${path.basename(evalPrompts)}, ${String(f.maxNewTokens)} new tokens, T = ${String(f.temperature)}` };
    }
    const gates = gateResults(c, metrics, 'drafter-eval');
    hooks.onGates?.(gates, metrics, report);
    enforce(gates, run.partial);

    // ── bundle ──
    const tb = performance.now();
    for (const n of ['model', 'drafter', 'README.md']) fs.rmSync(run.path(n), { recursive: true, force: true }); // an interrupted bundle step
    linkTree(quantized, run.path('model'));
    const licenseFiles: string[] = [];
    for (const name of c.bundle.license_files) {
      const from = sourceFile(job.source.dir, name);
      if (!from || path.basename(name) !== name) continue;
      fs.copyFileSync(from, run.path(path.join('model', name)));
      licenseFiles.push(name);
    }
    if (trainFigures) linkTree(stageDir(DRAFTER), run.path('drafter'));
    const remoteCode = fs.existsSync(run.path(path.join('drafter', 'dflash.py')));
    const card = cardInput(c, job, metrics, gates, licenseFiles, trainFigures, remoteCode);
    fs.writeFileSync(run.path('README.md'), renderModelCard(card));
    if (!c.work_dir) fs.rmSync(stagesDir, { recursive: true, force: true });
    const stageSeconds: Record<string, number> = Object.fromEntries(Object.entries(progress.stages).map(([k, v]) => [k, (v as StageRecord).seconds]));
    stageSeconds.bundle = (performance.now() - tb) / 1000;
    stageSeconds.total = (performance.now() - t0) / 1000;
    const manifestInputs: ManifestInput[] = [sourceInput];
    if (releaseQuantizeSettings(c).method === 'paro') manifestInputs.push(describeInput('calib', calibFile));
    if (c.eval.data) manifestInputs.push(describeInput('eval data', c.eval.data));
    if (c.drafter.enabled && c.drafter.prompts) manifestInputs.push(describeInput('prompts', c.drafter.prompts));
    if (c.drafter.eval.prompts) manifestInputs.push(describeInput('drafter eval prompts', c.drafter.eval.prompts));
    run.commit(createManifest({
      tool: 'paro', version: job.run.toolVersion ?? 'unknown', command: 'release', argv: job.run.argv,
      settings: {
        config: { ...c, work_dir: c.work_dir ?? null }, quantize: releaseQuantizeSettings(c), releaseKey: keys.release, stageKeys: keys.stages,
        source: job.source,
      },
      seed: c.seed, device: be.device, backend: be.name, inputs: manifestInputs,
      metrics: {
        ...metrics, gates,
        stageManifests: Object.fromEntries(Object.entries(progress.stages).map(([k, v]) => [k, (v as StageRecord).manifestSha256])),
      },
      seconds: stageSeconds,
    }));
    const sha = sha256File(path.join(out, MANIFEST_FILE));
    info(`release ${out} written (manifest sha ${sha.slice(0, 12)})`);
    return {
      command: 'release', out, nothingToDo: false, manifestSha256: sha, source: job.source, stages: report, metrics, gates,
      files: listFiles(out), backend: be.name, device: be.device, seconds: (performance.now() - t0) / 1000,
    };
  }
}

function listFiles(dir: string, rel = ''): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...listFiles(dir, r));
    else out.push(r);
  }
  return out;
}

function finishedReport(out: string, sha: string, m: Record<string, unknown>, source: ResolvedSource, be: Backend, t0: number): ReleaseReport {
  const metrics = (m.metrics ?? {}) as ReleaseMetrics & { gates?: GateResult[] };
  const { gates, ...rest } = metrics;
  const seconds = (m.seconds ?? {}) as Record<string, number>;
  const names: StageName[] = ['quantize', 'eval', 'generate', 'train', 'drafter-eval'];
  return {
    command: 'release', out, nothingToDo: true, manifestSha256: sha, source,
    stages: names.filter((n) => seconds[n] !== undefined).map((n) => ({ name: n, reused: true, seconds: seconds[n] })),
    metrics: rest, gates: gates ?? [], files: listFiles(out), backend: be.name, device: be.device, seconds: (performance.now() - t0) / 1000,
  };
}

function cardInput(
  c: ReleaseConfig, job: ReleaseJob, m: ReleaseMetrics, gates: GateResult[], licenseFiles: string[], drafter: Record<string, unknown> | null,
  remoteCode: boolean,
): ModelCardInput {
  const q = releaseQuantizeSettings(c);
  const arch = loadModelConfig(job.source.dir).architecture;
  const read = (name: string): string | undefined => {
    const f = sourceFile(job.source.dir, name);
    return f ? fs.readFileSync(f, 'utf8') : undefined;
  };
  const detected = c.bundle.license ? { id: c.bundle.license } : detectLicense({ readme: read('README.md'), licenseText: read('LICENSE') ?? read('LICENSE.md') ?? read('LICENSE.txt') });
  const settings: Record<string, string | number | boolean> = {
    samples: q.samples, 'validation samples': q.valSamples, 'sequence length': q.seqLen, epochs: q.epochs.join(', '),
    'calibration data': q.method === 'paro' ? path.basename(c.quantize.calib ?? job.defaultCalibFile) : 'none (RTN)', seed: q.seed,
  };
  return {
    name: c.bundle.name,
    source: { repoId: job.source.repoId, revision: job.source.revision, commit: job.source.commit, localName: job.source.repoId ? undefined : path.basename(job.source.dir), architecture: arch },
    quantization: { method: q.method, bits: q.bits, groupSize: q.groupSize, krot: q.method === 'paro' ? q.krot : undefined, settings },
    quality: m.fpPpl === undefined ? undefined : {
      data: `${m.evalData}: ${m.evalWindows} windows of ${m.evalSeqLen} tokens`,
      fpPerplexity: m.fpPpl, quantizedPerplexity: m.quantizedPpl, kl: m.kl, top1Agreement: m.top1Agreement,
    },
    gates: gates.map(({ name, value, limit, passed }) => ({ name, value, limit, passed })),
    drafter: drafter ? {
      dir: 'drafter', blockSize: Number(drafter.blockSize), layers: Number(drafter.layers), targetLayerIds: drafter.targetLayerIds as number[],
      tau: m.tau, tauData: drafter.tauData as string | undefined, trainingPrompts: c.drafter.prompts ? path.basename(c.drafter.prompts) : undefined,
      remoteCode,
    } : undefined,
    license: detected ? { ...detected, files: licenseFiles } : licenseFiles.length ? { id: 'other', files: licenseFiles } : undefined,
    tool: { name: 'paro-dflash', version: job.run.toolVersion ?? 'unknown' },
    modelDir: 'model',
  };
}
