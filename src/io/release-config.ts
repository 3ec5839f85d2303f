// The settings of `paro release`: release.yaml / release.json, checked key by key against one schema (unknown keys are
// errors with a "did you mean"), with flag overrides (`--set quantize.bits=4`, or explicit flags) applied before the
// check so that every value, whichever way it came, gets the same one-line error naming where it came from.
// Keys keep the file's snake_case spelling in the typed object, so a key reads the same in the file, in `--set` and in
// code. Settings left out are undefined: the stage's own job applies its defaults (defined once, in its job module);
// only the release's own keys have defaults here (RELEASE_DEFAULTS).
import fs from 'node:fs';
import path from 'node:path';
import { parseDocument } from 'yaml';
import { UserError } from '../errors.js';

export type IntOrAuto = number | 'auto';
export type NumberOrAuto = number | 'auto';

export interface QuantizeSection {
  method?: 'paro' | 'rtn';
  bits?: number;
  group_size?: number;
  krot?: number;
  samples?: number;
  val_samples?: number;
  seq_len?: number;
  /** Epochs of stage 1 and stage 2. */
  epochs?: [number, number];
  /** Calibration text (absolute path); undefined: the built-in set. */
  calib?: string;
  shuffle?: boolean;
  batch_size?: number;
  compute_dtype?: 'auto' | 'f32' | 'bf16';
  activations?: 'auto' | 'device' | 'host';
}

export interface EvalSection {
  /** Held-out text for perplexity / KL / top-1 (absolute path). */
  data?: string;
  seq_len?: number;
  max_windows?: number;
  batch?: number;
}

export interface GatesSection {
  /** Largest allowed (ppl_quantized − ppl_fp) / ppl_fp, e.g. 0.05 for +5 %. */
  max_ppl_increase?: number;
  /** Largest allowed mean KL(FP ‖ quantized) per token, in nats. */
  max_kl?: number;
  /** Smallest allowed share of tokens where the FP and quantized argmax agree (0..1). */
  min_top1_agreement?: number;
  /** Smallest allowed mean acceptance length τ of the drafter. */
  min_tau?: number;
}

export interface DrafterGenerateSection {
  max_new_tokens?: number;
  temperature?: number;
  max_prompts?: number;
  batch?: number;
  ignore_eos?: boolean;
  chat_template?: boolean;
}

export interface DrafterTrainSection {
  layers?: IntOrAuto;
  block_size?: number;
  target_layers?: number[] | 'auto';
  anchors?: IntOrAuto;
  gamma?: NumberOrAuto;
  epochs?: IntOrAuto;
  lr?: NumberOrAuto;
  warmup?: number;
  weight_decay?: number;
  seq_len?: number;
  batch?: number;
  mask_token?: number | string;
  checkpoint_every?: number;
  feature_cache_mb?: number;
  max_steps?: number;
}

export interface DrafterEvalSection {
  /** Prompts for τ (absolute path); undefined: drafter.prompts. */
  prompts?: string;
  max_new_tokens?: number;
  max_prompts?: number;
  temperature?: number;
}

export interface DrafterSection {
  enabled: boolean;
  /** Prompts the quantized target answers to make the training data (absolute path); required when enabled. */
  prompts?: string;
  generate: DrafterGenerateSection;
  train: DrafterTrainSection;
  eval: DrafterEvalSection;
}

export interface BundleSection {
  /** Largest safetensors shard in bytes ("5GB" in the file). */
  max_shard_size: number;
  /** Names of the source's licence/notice files to copy into model/ when present. */
  license_files: string[];
  /** Repo id the bundle will be published as, for the model card (e.g. "acme/Qwen3-8B-PARO"). */
  name?: string;
  /** SPDX licence id for the card; undefined: read from the source's README front matter or LICENSE. */
  license?: string;
}

export interface ReleaseConfig {
  /** A local folder or org/name[@revision] in the Hugging Face cache: resolve with io/hf-source relative to sourceBaseDir. */
  source: string;
  /** Bundle folder (absolute path). */
  out: string;
  /** Folder for the stages' outputs (absolute path); undefined: `<out>.work`. */
  work_dir?: string;
  device: string;
  seed: number;
  quantize: QuantizeSection;
  eval: EvalSection;
  gates: GatesSection;
  drafter: DrafterSection;
  bundle: BundleSection;
}

export interface LoadedReleaseConfig {
  config: ReleaseConfig;
  /** The config file (absolute), if one was read. */
  file?: string;
  /** Folder a relative `source` is resolved against: the config file's, or the working directory for a flag. */
  sourceBaseDir: string;
}

/** The release's own defaults (stage settings default in their job modules). */
export const RELEASE_DEFAULTS = {
  device: 'auto',
  seed: 0,
  drafter: { enabled: false },
  bundle: {
    max_shard_size: '5GB',
    license_files: ['LICENSE', 'LICENSE.md', 'LICENSE.txt', 'NOTICE', 'NOTICE.md', 'NOTICE.txt', 'USE_POLICY.md'],
  },
} as const;

// ---------------------------------------------------------------------------------------------------------------
// Schema: one entry per leaf key.

type Kind =
  | { t: 'string' }
  | { t: 'path' }
  | { t: 'int'; min: number }
  | { t: 'number'; min: number; max?: number; exclusiveMin?: boolean }
  | { t: 'bool' }
  | { t: 'enum'; values: readonly string[] }
  | { t: 'size' }
  | { t: 'intOrAuto'; min: number }
  | { t: 'numberOrAuto'; exclusiveMin: number }
  | { t: 'epochPair' }
  | { t: 'layerList' }
  | { t: 'tokenIdOrString' }
  | { t: 'device' }
  | { t: 'stringList' };

const posInt: Kind = { t: 'int', min: 1 };
const nonNegInt: Kind = { t: 'int', min: 0 };
const nonNegNum: Kind = { t: 'number', min: 0 };

const SCHEMA: Record<string, Kind> = {
  source: { t: 'string' },
  out: { t: 'path' },
  work_dir: { t: 'path' },
  device: { t: 'device' },
  seed: nonNegInt,

  'quantize.method': { t: 'enum', values: ['paro', 'rtn'] },
  'quantize.bits': { t: 'int', min: 2 },
  'quantize.group_size': posInt,
  'quantize.krot': posInt,
  'quantize.samples': posInt,
  'quantize.val_samples': posInt,
  'quantize.seq_len': { t: 'int', min: 2 },
  'quantize.epochs': { t: 'epochPair' },
  'quantize.calib': { t: 'path' },
  'quantize.shuffle': { t: 'bool' },
  'quantize.batch_size': posInt,
  'quantize.compute_dtype': { t: 'enum', values: ['auto', 'f32', 'bf16'] },
  'quantize.activations': { t: 'enum', values: ['auto', 'device', 'host'] },

  'eval.data': { t: 'path' },
  'eval.seq_len': { t: 'int', min: 2 },
  'eval.max_windows': posInt,
  'eval.batch': posInt,

  'gates.max_ppl_increase': nonNegNum,
  'gates.max_kl': nonNegNum,
  'gates.min_top1_agreement': { t: 'number', min: 0, max: 1 },
  'gates.min_tau': nonNegNum,

  'drafter.enabled': { t: 'bool' },
  'drafter.prompts': { t: 'path' },
  'drafter.generate.max_new_tokens': posInt,
  'drafter.generate.temperature': nonNegNum,
  'drafter.generate.max_prompts': posInt,
  'drafter.generate.batch': posInt,
  'drafter.generate.ignore_eos': { t: 'bool' },
  'drafter.generate.chat_template': { t: 'bool' },
  'drafter.train.layers': { t: 'intOrAuto', min: 1 },
  'drafter.train.block_size': { t: 'int', min: 2 },
  'drafter.train.target_layers': { t: 'layerList' },
  'drafter.train.anchors': { t: 'intOrAuto', min: 1 },
  'drafter.train.gamma': { t: 'numberOrAuto', exclusiveMin: 0 },
  'drafter.train.epochs': { t: 'intOrAuto', min: 1 },
  'drafter.train.lr': { t: 'numberOrAuto', exclusiveMin: 0 },
  'drafter.train.warmup': { t: 'number', min: 0, max: 1 },
  'drafter.train.weight_decay': nonNegNum,
  'drafter.train.seq_len': { t: 'int', min: 2 },
  'drafter.train.batch': posInt,
  'drafter.train.mask_token': { t: 'tokenIdOrString' },
  'drafter.train.checkpoint_every': nonNegInt,
  'drafter.train.feature_cache_mb': nonNegNum,
  'drafter.train.max_steps': posInt,
  'drafter.eval.prompts': { t: 'path' },
  'drafter.eval.max_new_tokens': posInt,
  'drafter.eval.max_prompts': posInt,
  'drafter.eval.temperature': nonNegNum,

  'bundle.max_shard_size': { t: 'size' },
  'bundle.license_files': { t: 'stringList' },
  'bundle.name': { t: 'string' },
  'bundle.license': { t: 'string' },
};

const LEAVES = Object.keys(SCHEMA);
const SECTIONS = new Set(LEAVES.flatMap((k) => k.split('.').slice(0, -1).map((_, i, parts) => parts.slice(0, i + 1).join('.'))));

/** Every key the file may hold, dotted ("quantize.bits"), for docs and `--help`. */
export const RELEASE_CONFIG_KEYS: readonly string[] = LEAVES;

// ---------------------------------------------------------------------------------------------------------------
// Sizes.

const SIZE_UNITS: Record<string, number> = {
  b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40,
};

/**
 * "5GB" (decimal, as Hugging Face's max_shard_size), "512MiB" (binary), "1.5 GB", or a plain number of bytes, as a
 * whole number of bytes. Throws a plain Error with the reason; callers add the file and key.
 */
export function parseSize(value: unknown): number {
  if (typeof value === 'number') {
    if (!Number.isInteger(value) || value <= 0) throw new Error(`must be a positive size, got ${value}`);
    return value;
  }
  if (typeof value !== 'string') throw new Error(`must be a size such as "5GB" or "500MiB", got ${JSON.stringify(value)}`);
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(value);
  const unit = m ? SIZE_UNITS[(m[2] || 'b').toLowerCase()] : undefined;
  if (!m || unit === undefined) {
    throw new Error(`must be a size such as "5GB" or "500MiB" (units B, KB, MB, GB, TB, KiB, MiB, GiB, TiB), got ${JSON.stringify(value)}`);
  }
  const bytes = Math.floor(Number(m[1]) * unit);
  if (bytes <= 0) throw new Error(`must be a positive size, got ${JSON.stringify(value)}`);
  return bytes;
}

// ---------------------------------------------------------------------------------------------------------------
// Near-miss suggestions.

function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0];
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j];
      prev[j] = Math.min(prev[j] + 1, prev[j - 1] + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length];
}

/** The closest known key to an unknown dotted key: a sibling spelled alike, or the same name in another section. */
function suggest(key: string): string | undefined {
  const parent = key.includes('.') ? key.slice(0, key.lastIndexOf('.') + 1) : '';
  const name = key.slice(parent.length);
  const normalized = name.replace(/-/g, '_').toLowerCase();
  const candidates = [...LEAVES, ...SECTIONS];
  let best: { key: string; d: number } | undefined;
  for (const c of candidates) {
    const cParent = c.includes('.') ? c.slice(0, c.lastIndexOf('.') + 1) : '';
    const cName = c.slice(cParent.length);
    let d: number;
    if (cParent === parent) d = editDistance(normalized, cName);
    else if (cName === normalized) d = 1; // right name, wrong section
    else continue;
    const limit = Math.max(2, Math.floor(name.length / 3));
    if (d <= limit && (!best || d < best.d)) best = { key: c, d };
  }
  return best?.key;
}

// ---------------------------------------------------------------------------------------------------------------
// Checking values.

type Raw = Record<string, unknown>;

function isObject(v: unknown): v is Raw {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function show(v: unknown): string {
  return JSON.stringify(v) ?? String(v);
}

/** The checked value of one leaf; throws a plain Error with the reason. baseDir resolves paths. */
function checkValue(kind: Kind, v: unknown, baseDir: string): unknown {
  switch (kind.t) {
    case 'string':
      if (typeof v !== 'string' || !v.trim()) throw new Error(`must be a non-empty string, got ${show(v)}`);
      return v;
    case 'path':
      if (typeof v !== 'string' || !v.trim()) throw new Error(`must be a path, got ${show(v)}`);
      return path.resolve(baseDir, v);
    case 'int':
      if (typeof v !== 'number' || !Number.isInteger(v) || v < kind.min) {
        throw new Error(`must be an integer ≥ ${kind.min}, got ${show(v)}`);
      }
      return v;
    case 'number': {
      const range = kind.max === undefined ? `≥ ${kind.min}` : `between ${kind.min} and ${kind.max}`;
      if (typeof v !== 'number' || !Number.isFinite(v) || v < kind.min || (kind.max !== undefined && v > kind.max)) {
        throw new Error(`must be a number ${range}, got ${show(v)}`);
      }
      return v;
    }
    case 'bool':
      if (typeof v !== 'boolean') throw new Error(`must be true or false, got ${show(v)}`);
      return v;
    case 'enum':
      if (typeof v !== 'string' || !kind.values.includes(v)) throw new Error(`must be one of ${kind.values.join(', ')}, got ${show(v)}`);
      return v;
    case 'size':
      return parseSize(v);
    case 'intOrAuto':
      if (v === 'auto') return v;
      if (typeof v !== 'number' || !Number.isInteger(v) || v < kind.min) throw new Error(`must be "auto" or an integer ≥ ${kind.min}, got ${show(v)}`);
      return v;
    case 'numberOrAuto':
      if (v === 'auto') return v;
      if (typeof v !== 'number' || !Number.isFinite(v) || v <= kind.exclusiveMin) {
        throw new Error(`must be "auto" or a number > ${kind.exclusiveMin}, got ${show(v)}`);
      }
      return v;
    case 'epochPair': {
      // [10, 10], or "10,10" as the quantize flag spells it
      const parts = typeof v === 'string' ? v.split(',').map((s) => (s.trim() === '' ? NaN : Number(s))) : v;
      if (!Array.isArray(parts) || parts.length !== 2 || !parts.every((n) => typeof n === 'number' && Number.isInteger(n) && n >= 0)) {
        throw new Error(`must be two epoch counts (stage 1, stage 2) such as [10, 10] or "10,10", got ${show(v)}`);
      }
      return parts as [number, number];
    }
    case 'layerList': {
      if (v === 'auto') return v;
      const parts = typeof v === 'string' ? v.split(',').map((s) => (s.trim() === '' ? NaN : Number(s))) : v;
      if (!Array.isArray(parts) || parts.length === 0 || !parts.every((n) => typeof n === 'number' && Number.isInteger(n) && n >= 0)) {
        throw new Error(`must be "auto" or a list of layer indices such as [1, 9, 17], got ${show(v)}`);
      }
      return parts as number[];
    }
    case 'tokenIdOrString':
      if (typeof v === 'number' && Number.isInteger(v) && v >= 0) return v;
      if (typeof v === 'string' && v.length > 0) return v;
      throw new Error(`must be a token id or a token string, got ${show(v)}`);
    case 'device':
      if (typeof v !== 'string' || !/^(auto|cpu|cuda(:\d+)?)$/.test(v)) throw new Error(`must be auto, cpu, cuda or cuda:N, got ${show(v)}`);
      return v;
    case 'stringList':
      if (!Array.isArray(v) || !v.every((s) => typeof s === 'string' && s.length > 0)) {
        throw new Error(`must be a list of file names, got ${show(v)}`);
      }
      return [...v];
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Assembling.

/** Where a value came from, for messages: the config file, a flag, or a default. */
interface Origin {
  label: string;
  baseDir: string;
}

/** Flattens a parsed file into dotted leaves, rejecting unknown keys and non-objects where sections belong. */
function flatten(raw: unknown, prefix: string, origin: Origin, out: Map<string, { value: unknown; origin: Origin }>): void {
  if (!isObject(raw)) {
    throw new UserError(`${prefix || 'the top level'} must be a mapping of keys to values, got ${show(raw)}`, { file: origin.label, exitCode: 2 });
  }
  for (const [k, v] of Object.entries(raw)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (SECTIONS.has(key)) {
      if (v === null || v === undefined) continue; // an empty section ("gates:") means none of its keys
      flatten(v, key, origin, out);
    } else if (key in SCHEMA) {
      if (v === null || v === undefined) continue; // "key:" with no value: the default
      out.set(key, { value: v, origin });
    } else {
      const near = suggest(key);
      throw new UserError(`unknown key ${key}${near ? ` (did you mean ${near}?)` : ''}`, { file: origin.label, exitCode: 2 });
    }
  }
}

/** "quantize.bits=4": the key and its text (typed later by coerceFlagValue, from the key's kind). */
function parseSetting(text: string): { key: string; value: string } {
  const eq = text.indexOf('=');
  if (eq <= 0) throw new UserError(`--set ${text}: expected key=value, e.g. --set quantize.bits=4`, { exitCode: 1 });
  return { key: text.slice(0, eq).trim(), value: text.slice(eq + 1) };
}

function setLeaf(target: Raw, key: string, value: unknown): void {
  const parts = key.split('.');
  let node = target;
  for (const p of parts.slice(0, -1)) {
    if (!isObject(node[p])) node[p] = {};
    node = node[p] as Raw;
  }
  node[parts[parts.length - 1]] = value;
}

/** Flag overrides: dotted key → value (a string from the command line, or an already typed value). */
export type ReleaseOverrides = Record<string, unknown>;

/**
 * The checked configuration from parsed file contents (raw), then `--set key=value` settings, then explicit overrides
 * (dotted keys, e.g. { out: opts.out }; undefined values are ignored). Relative paths in the file resolve against
 * baseDir, those from flags against cwd.
 */
export function buildReleaseConfig(
  raw: unknown,
  opts: { file?: string; baseDir: string; cwd?: string; set?: readonly string[]; overrides?: ReleaseOverrides },
): LoadedReleaseConfig {
  const cwd = opts.cwd ?? process.cwd();
  const fileOrigin: Origin = { label: opts.file ?? 'release config', baseDir: opts.baseDir };
  const leaves = new Map<string, { value: unknown; origin: Origin }>();
  if (raw !== null && raw !== undefined) flatten(raw, '', fileOrigin, leaves);

  const flagged: { key: string; value: unknown; label: string }[] = [];
  for (const s of opts.set ?? []) {
    const { key, value } = parseSetting(s);
    flagged.push({ key, value, label: `--set ${s}` });
  }
  for (const [key, value] of Object.entries(opts.overrides ?? {})) {
    if (value !== undefined) flagged.push({ key, value, label: `--${key.replace(/_/g, '-')}` });
  }
  for (const f of flagged) {
    if (!(f.key in SCHEMA)) {
      const near = suggest(f.key);
      throw new UserError(`${f.label}: unknown key ${f.key}${near ? ` (did you mean ${near}?)` : ''}`, { exitCode: 1 });
    }
    leaves.set(f.key, { value: coerceFlagValue(SCHEMA[f.key], f.value), origin: { label: f.label, baseDir: cwd } });
  }

  const out: Raw = {};
  for (const [key, { value, origin }] of leaves) {
    try {
      setLeaf(out, key, checkValue(SCHEMA[key], value, origin.baseDir));
    } catch (e) {
      if (e instanceof UserError) throw e;
      const flag = origin.label.startsWith('--');
      throw new UserError(`${key} ${(e as Error).message}`, { file: origin.label, exitCode: flag ? 1 : 2 });
    }
  }
  const where = (key: string) => leaves.get(key)?.origin.label ?? fileOrigin.label;
  const config = withDefaults(out);
  crossCheck(config, where);
  const sourceOrigin = leaves.get('source')?.origin;
  return { config, file: opts.file, sourceBaseDir: sourceOrigin?.baseDir ?? opts.baseDir };
}

/** A value typed on the command line is a string: read it as a YAML scalar or flow list (4, true, [1, 9]) unless the key takes text. */
function coerceFlagValue(kind: Kind, v: unknown): unknown {
  if (typeof v !== 'string') return v;
  if (kind.t === 'tokenIdOrString') return /^\d+$/.test(v) ? Number(v) : v; // as the --mask-token flag reads it
  if ((kind.t === 'string' || kind.t === 'path') && v.trim() !== '') return v;
  const doc = parseDocument(v);
  return doc.errors.length ? v : (doc.toJS() as unknown) ?? v;
}

function withDefaults(c: Raw): ReleaseConfig {
  const section = (k: string): Raw => (isObject(c[k]) ? (c[k] as Raw) : {});
  const drafter = section('drafter');
  const sub = (o: Raw, k: string): Raw => (isObject(o[k]) ? (o[k] as Raw) : {});
  const bundle = section('bundle');
  return {
    ...c,
    device: (c.device as string | undefined) ?? RELEASE_DEFAULTS.device,
    seed: (c.seed as number | undefined) ?? RELEASE_DEFAULTS.seed,
    quantize: section('quantize'),
    eval: section('eval'),
    gates: section('gates'),
    drafter: {
      ...drafter,
      enabled: (drafter.enabled as boolean | undefined) ?? RELEASE_DEFAULTS.drafter.enabled,
      generate: sub(drafter, 'generate'),
      train: sub(drafter, 'train'),
      eval: sub(drafter, 'eval'),
    },
    bundle: {
      ...bundle,
      max_shard_size: (bundle.max_shard_size as number | undefined) ?? parseSize(RELEASE_DEFAULTS.bundle.max_shard_size),
      license_files: (bundle.license_files as string[] | undefined) ?? [...RELEASE_DEFAULTS.bundle.license_files],
    },
  } as unknown as ReleaseConfig; // every leaf was checked against SCHEMA, whose kinds match these types
}

/** Rules that involve more than one key. */
function crossCheck(c: ReleaseConfig, where: (key: string) => string): void {
  const fail = (key: string, msg: string) => {
    const label = where(key);
    throw new UserError(`${key} ${msg}`, { file: label, exitCode: label.startsWith('--') ? 1 : 2 });
  };
  if (!c.source) fail('source', 'is required: a model folder or a Hugging Face repo id org/name[@revision]');
  if (!c.out) fail('out', 'is required: the folder the bundle is written to');
  for (const gate of ['max_ppl_increase', 'max_kl', 'min_top1_agreement'] as const) {
    if (c.gates[gate] !== undefined && !c.eval.data) {
      fail(`gates.${gate}`, 'needs eval.data (held-out text the FP and quantized models are compared on)');
    }
  }
  if (c.gates.min_tau !== undefined && !c.drafter.enabled) fail('gates.min_tau', 'needs drafter.enabled: true');
  if (c.drafter.enabled && !c.drafter.prompts) fail('drafter.prompts', 'is required when drafter.enabled is true');
  if (c.work_dir && path.resolve(c.work_dir) === path.resolve(c.out)) fail('work_dir', 'must differ from out');
}

/**
 * Read release.yaml / release.yml / release.json, apply `--set` settings and explicit overrides, and check everything.
 * Errors are one-line UserErrors naming the file (or flag) and the key.
 */
export function loadReleaseConfig(
  file: string,
  opts: { set?: readonly string[]; overrides?: ReleaseOverrides; cwd?: string } = {},
): LoadedReleaseConfig {
  const abs = path.resolve(opts.cwd ?? process.cwd(), file);
  const ext = path.extname(abs).toLowerCase();
  if (!['.yaml', '.yml', '.json'].includes(ext)) {
    throw new UserError('the release config must be a .yaml, .yml or .json file', { file: abs, exitCode: 2 });
  }
  let text: string;
  try {
    text = fs.readFileSync(abs, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UserError(code === 'ENOENT' ? 'no such file' : `cannot read: ${(e as Error).message}`, { file: abs, exitCode: 2 });
  }
  return buildReleaseConfig(parseConfigText(text, abs, ext), {
    file: abs, baseDir: path.dirname(abs), cwd: opts.cwd, set: opts.set, overrides: opts.overrides,
  });
}

function parseConfigText(text: string, file: string, ext: string): unknown {
  if (ext === '.json') {
    try {
      return JSON.parse(text) as unknown;
    } catch (e) {
      throw new UserError(`not valid JSON: ${(e as Error).message}`, { file, exitCode: 2 });
    }
  }
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length) {
    const err = doc.errors[0];
    const before = text.slice(0, err.pos[0]).split('\n');
    const where = `line ${before.length}, column ${before[before.length - 1].length + 1}: `;
    throw new UserError(`not valid YAML: ${where}${err.message.split('\n')[0]}`, { file, exitCode: 2 });
  }
  return doc.toJS() as unknown;
}
